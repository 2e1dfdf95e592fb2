// Issue 14, registrations on the queue engine: a registration accepted by one replica is registered by
// all three (its items are BullMQ jobs any replica takes, src/registrations/fleet-runner.ts), and when one
// of them is killed (SIGKILL) in the middle, the others pick up its part: the job completes with every
// member registered once, its progress read on any replica. AIM mode, the emulator's rate limits off: the
// subject is how the work is shared, not how fast Databricks lets it through.
import t from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { startFleet, until, type Replica } from '../../helpers/fleet.ts'
import { accountState, adminToken, bigGroupTenant, control, occurrences } from '../../helpers/registrations.ts'

const MEMBERS = 2000
const { fixture, root, memberIds } = bigGroupTenant(MEMBERS)
const emulator = await startTestEmulator(t, { tenants: [fixture] })

interface Progress { status: string, total: number, registered: number, failed: number, pending: number }

async function progressOn (r: Replica, token: string, id: string): Promise<Progress> {
  const res = await fetch(`${r.url}/v1/registrations/${id}`, { headers: { authorization: `Bearer ${token}` } })
  if (res.status !== 200) throw new Error(`GET on ${r.name}: ${res.status} ${await res.text()}`)
  return await res.json() as Progress
}

/** Items this replica registered (its metrics). */
async function registeredBy (r: Replica): Promise<number> {
  const text = await (await fetch(`${r.url}/metrics`)).text()
  return Number(/^registration_items_total\{state="registered"\} (\S+)$/m.exec(text)?.[1] ?? 0)
}

await control(emulator, 'PUT', '/databricks/rate-limits', { enabled: false })
const { replicas } = await startFleet(t, emulator, 3, {
  DATABRICKS_HOST: emulator.origin,
  DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
  DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
  DATABRICKS_MODE: 'aim',
  REPLICAS: '3',
  REGISTRATIONS_CONCURRENCY: '8',
  GRAPH_MAX_REQUESTS_PER_SECOND: '600'
})
const [a, b, c] = replicas as [Replica, Replica, Replica]
const admin = await adminToken(emulator)

t.test(`a group of ${MEMBERS} members, registered by three replicas, one of them killed midway`, async t => {
  const posted = await fetch(`${a.url}/v1/registrations`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ group: root }) })
  t.equal(posted.status, 202, 'accepted by A')
  const { id } = await posted.json() as { id: string }

  // Under way on all three before one dies.
  await until('every replica to register items', async () => (await Promise.all(replicas.map(registeredBy))).every(n => n > 0) ? true : undefined)
  const midway = await progressOn(b, admin, id)
  t.equal(midway.status, 'running', 'running, as B reads it')
  t.ok(midway.registered < MEMBERS, `part-way when C is killed: ${midway.registered} of ${MEMBERS}`)
  await c.kill()

  const done = await until('the job to end', async () => {
    const p = await progressOn(a, admin, id)
    return p.status === 'completed' || p.status === 'failed' ? p : undefined
  })
  t.match(done, { status: 'completed', total: MEMBERS, registered: MEMBERS, failed: 0, pending: 0 })
  t.match(await progressOn(b, admin, id), { status: 'completed', registered: MEMBERS }, 'the same answer on B')
  const [byA, byB] = await Promise.all([registeredBy(a), registeredBy(b)])
  t.ok(byA > 0 && byB > 0, `both survivors registered items: A ${byA}, B ${byB} (C was killed)`)
  const counts = occurrences(await accountState(emulator))
  t.equal(memberIds.filter(m => counts.get(m) === 1).length, MEMBERS, 'every member once in the account')
})
