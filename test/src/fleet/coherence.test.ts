// Issue 14, coherent caches: three replicas (child processes running src/server.ts) sharing the real Redis.
// ACLs are cached for an hour here, so only the replicas' channel can make another replica see a change:
// - a share on A is seen by B and C at the very next question;
// - an Entra change applied by the change feed on whichever replica runs the round is seen by all three;
// - a replica whose connection to Redis was cut cannot know what it missed: once its subscription is back,
//   it forgets what it cached, so a change nobody announced (an ACL edited in Databricks) shows there,
//   while a replica that heard nothing amiss keeps its cache.
import t from 'tap'
import { Queue, QueueEvents } from 'bullmq'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { startFleet, until, type Replica } from '../../helpers/fleet.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { tokenFor } from '../../helpers/service.ts'
import { syncHarness } from '../../helpers/sync.ts'

const WS = DEFAULT_WORKSPACE_ID
const UPN = { bob: 'bob@contoso-test.onmicrosoft.com', carol: 'carol@contoso-test.onmicrosoft.com' }
const carol = { id: 'a0000000-0000-4000-8000-0000000000c1', userPrincipalName: UPN.carol, displayName: 'Carol Never-Signed-In' }
const emulator = await startTestEmulator(t, { tenants: [smallTenant({ users: [...smallTenant().users, carol] })] })
const { tenant, control, freshAccount } = syncHarness(emulator)
await freshAccount()

const fleet = await startFleet(t, emulator, 3, {
  DATABRICKS_HOST: emulator.origin,
  DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
  DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
  CACHE_ACL_TTL_SECONDS: '3600',
  SYNC_ENABLED: 'true',
  SYNC_INTERVAL_SECONDS: '3600'
})
const [a, b, c] = fleet.replicas as [Replica, Replica, Replica]

// The change feed's queue: the first round (cursors at "now") runs at start; the test asks for the others.
const connection = { host: '127.0.0.1', port: 6379 }
const queue = new Queue('entra-sync', { connection, prefix: `${fleet.prefix}bull` })
const events = new QueueEvents('entra-sync', { connection, prefix: `${fleet.prefix}bull` })
t.teardown(async () => { await events.close(); await queue.close() })
await events.waitUntilReady()
await until('the first round to store the cursors', async () => await fleet.redis.hlen(`${fleet.prefix}sync:cursors`) === 3 ? true : undefined)

const tokens = {
  alice: await tokenFor(emulator, T.alice),
  bob: await tokenFor(emulator, T.bob)
}
// (Set-up outside any subtest asserts nothing: tap ends the root test at its first top-level assertion.)
for (const [who, token] of Object.entries(tokens)) {
  const res = await fetch(`${a.url}/v1/login`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
  if (res.status !== 200) throw new Error(`${who} could not sign in through A: ${res.status} ${await res.text()}`)
}
// bob manages a dashboard in /Shared/Sales, whose folder grants CAN_EDIT to All Staff (alice: Data Platform ⊂ Engineering ⊂ All Staff).
const allStaff = `All Staff (${T.allStaff.slice(0, 8)})`
const folder = await control('POST', `/databricks/workspaces/${WS}/objects`, { type: 'directories', path: '/Shared/Sales' })
const dashboard = await control('POST', `/databricks/workspaces/${WS}/dashboards`, { displayName: 'Pipeline', parentPath: '/Shared/Sales' })
const dashboardId = dashboard.dashboard_id as string
await control('PUT', `/databricks/workspaces/${WS}/acls`, { type: 'directories', id: folder.id, access_control_list: [{ group_name: allStaff, permission_level: 'CAN_EDIT' }] })
await control('PUT', `/databricks/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboardId, access_control_list: [{ user_name: UPN.bob, permission_level: 'CAN_MANAGE' }] })

/** What `principal` may do on the dashboard, as bob asks replica `r`. */
async function level (r: Replica, principal: string): Promise<string | null> {
  const res = await fetch(`${r.url}/v1/permissions/dashboards/${dashboardId}?workspaceId=${WS}&principal=${encodeURIComponent(principal)}`, { headers: { authorization: `Bearer ${tokens.bob}` } })
  const body = await res.json() as { level?: string | null }
  if (res.status !== 200) throw new Error(`${r.name} answered ${res.status}: ${JSON.stringify(body)}`)
  return body.level ?? null
}

t.test('a share on replica A is seen by B and C at the very next question', async t => {
  for (const r of [a, b, c]) t.equal(await level(r, UPN.carol), null, `carol has nothing, as ${r.name} caches it`)
  const res = await fetch(`${a.url}/v1/shares`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokens.bob}`, 'content-type': 'application/json' },
    body: JSON.stringify({ workspaceId: WS, objectType: 'dashboards', objectId: dashboardId, principal: UPN.carol, level: 'CAN_READ' })
  })
  t.equal(res.status, 200, 'bob shares with carol through A')
  t.equal(await level(b, UPN.carol), 'CAN_READ', 'B sees the grant at once')
  t.equal(await level(c, UPN.carol), 'CAN_READ', 'C sees the grant at once')
  t.equal(await level(a, UPN.carol), 'CAN_READ', 'and A, which wrote it')
})

t.test('an Entra change applied by the round on one replica is seen by all three', async t => {
  for (const r of [a, b, c]) t.equal(await level(r, T.alice), 'CAN_EDIT', `alice edits through All Staff, as ${r.name} caches it`)
  tenant().removeMember(T.engineering, T.dataPlatform)
  t.teardown(() => { tenant().addMember(T.engineering, T.dataPlatform) })
  const job = await queue.add('round', {})
  await job.waitUntilFinished(events, 120_000)
  const ran = (await queue.getJob(job.id ?? ''))?.processedBy ?? ''
  t.ok(ran !== '', `one replica ran the round (${ran})`)
  for (const r of [a, b, c]) t.equal(await level(r, T.alice), null, `${r.name} no longer credits alice with All Staff's grant`)
})

t.test('a replica whose subscription was cut forgets what it cached; the others keep theirs', async t => {
  for (const r of [b, c]) t.equal(await level(r, UPN.bob), 'CAN_MANAGE', `bob manages, as ${r.name} caches it`)
  // Changed in Databricks directly: nobody announces it.
  await control('PUT', `/databricks/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboardId, access_control_list: [{ user_name: UPN.bob, permission_level: 'CAN_MANAGE' }, { user_name: UPN.carol, permission_level: 'CAN_RUN' }] })
  t.equal(await level(b, UPN.carol), 'CAN_READ', 'B still serves its cached ACL (an hour\'s TTL)')

  // B's subscriber connection is cut (found by the name it gives itself); ioredis reconnects at once.
  const clients = await fleet.redis.client('LIST') as string
  const pid = String(b.child.pid)
  const ids = clients.split('\n').filter(l => l.includes(`name=${fleet.prefix}fleet:${pid}`)).map(l => /\bid=(\d+)/.exec(l)?.[1]).filter((id): id is string => id !== undefined)
  t.equal(ids.length, 1, 'B has one subscription')
  for (const id of ids) await fleet.redis.client('KILL', 'ID', id)

  await until('B to forget its cached ACL once it hears the others again', async () => await level(b, UPN.carol) === 'CAN_RUN' ? true : undefined, b.output)
  t.pass('B answers from the ACL as it is now')
  t.equal(await level(c, UPN.carol), 'CAN_READ', 'C, which missed nothing, still serves its cache')
})
