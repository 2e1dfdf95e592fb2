// Issue 14, Redis trouble: three replicas (child processes running src/server.ts) reach Redis through a
// proxy the test cuts in the middle of a storm of first logins and restores a moment later. In the gap the
// replicas serve on their own (each paces its writes at its share of the budget, /readyz says `degraded`),
// callers see nothing but 200s and 503s with a Retry-After, every user ends up in the account once, and
// afterwards the replicas cooperate again without a restart: each is subscribed, and a share on one is
// seen by the others at once.
import t from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { startFleet, until, type Replica } from '../../helpers/fleet.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { tokenFor } from '../../helpers/service.ts'
import { TcpProxy } from '../../helpers/tcp-proxy.ts'
import { accountState, control, occurrences } from '../../helpers/registrations.ts'

const USERS = 9
const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')
const userIds = Array.from({ length: USERS }, (_, i) => `f9000000-0000-4000-8000-${hex(i, 12)}`)
const groupIds = Array.from({ length: 3 }, (_, g) => `fa000000-0000-4000-8000-${hex(g, 12)}`)
const base = smallTenant()
const emulator = await startTestEmulator(t, {
  tenants: [{
    ...base,
    users: [...base.users, ...userIds.map((id, i) => ({ id, userPrincipalName: `outage${i}@contoso-test.onmicrosoft.com`, displayName: `Outage ${i}` }))],
    groups: [...base.groups, ...groupIds.map((id, g) => ({ id, displayName: `Outage team ${g}`, members: userIds.filter((_, i) => i % 3 !== g) }))]
  }]
})
await control(emulator, 'POST', '/databricks/reset')
await control(emulator, 'PUT', '/databricks/settings', { aimEnabled: false })
await control(emulator, 'PUT', '/databricks/rate-limits', { enabled: true })

const proxy = new TcpProxy()
await proxy.start()
t.teardown(async () => { await proxy.stop() })
const fleet = await startFleet(t, emulator, 3, {
  REDIS_URL: proxy.url,
  REPLICAS: '3',
  DATABRICKS_HOST: emulator.origin,
  DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
  DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
  DATABRICKS_MODE: 'scim',
  CACHE_ACL_TTL_SECONDS: '3600',
  // Short deadlines, so callers waiting through the gap get their 503s.
  REQUEST_TIMEOUT_MS: '4000',
  UPSTREAM_TIMEOUT_MS: '2000'
})
const replicas = fleet.replicas as [Replica, Replica, Replica]

async function readiness (r: Replica): Promise<{ status: number, body: { status?: string, checks?: Record<string, string> } }> {
  const res = await fetch(`${r.url}/readyz`)
  return { status: res.status, body: await res.json() as { status?: string, checks?: Record<string, string> } }
}

t.test('Redis cut and restored in the middle of a login storm', async t => {
  for (const r of replicas) await until(`${r.name} to be subscribed`, async () => (await readiness(r)).body.status === 'ready' ? true : undefined, r.output)
  const tokens = await Promise.all(userIds.map(async id => await tokenFor(emulator, id)))
  const answers: Array<{ status: number, code?: string, retryAfter: string | null }> = []
  const login = async (r: Replica, token: string): Promise<void> => {
    for (;;) {
      const res = await fetch(`${r.url}/v1/login`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
      const body = await res.json() as { code?: string }
      answers.push({ status: res.status, ...(body.code !== undefined ? { code: body.code } : {}), retryAfter: res.headers.get('retry-after') })
      if (res.status !== 503) return
      await new Promise(resolve => setTimeout(resolve, Number(res.headers.get('retry-after') ?? 1) * 1000))
    }
  }
  const storm = Promise.all(tokens.flatMap(token => replicas.map(async r => { await login(r, token) })))

  // Once the storm is writing, Redis goes away for a while.
  await until('the storm to be writing', async () => (await accountState(emulator)).users.length >= 3 ? true : undefined)
  await proxy.stop()
  const during = await until('a replica to report Redis away', async () => {
    const r = await readiness(replicas[0])
    return r.body.status === 'degraded' ? r : undefined
  })
  t.equal(during.status, 200, 'the replica stays in service')
  t.match(during.body.checks, { 'entra-signing-keys': 'ok', fleet: /not hearing the other replicas/ })
  await new Promise(resolve => setTimeout(resolve, 2000))
  await proxy.start()
  await storm

  const others = answers.filter(a => a.status !== 200 && a.status !== 503)
  t.same(others, [], 'nothing but 200s and 503s')
  const unavailable = answers.filter(a => a.status === 503)
  t.ok(unavailable.every(a => a.retryAfter !== null && Number(a.retryAfter) >= 1), `every 503 says when to retry (${unavailable.length})`)
  const state = await accountState(emulator)
  const seen = occurrences(state)
  t.ok(userIds.every(id => seen.get(id) === 1), 'every user exists once in the account')

  // Cooperation again, without restarting anyone.
  for (const r of replicas) await until(`${r.name} to hear the others again`, async () => (await readiness(r)).body.status === 'ready' ? true : undefined, r.output)
  t.pass('every replica is subscribed again')
  const bob = await tokenFor(emulator, T.bob)
  for (const r of replicas) {
    const res = await fetch(`${r.url}/v1/login`, { method: 'POST', headers: { authorization: `Bearer ${bob}` } })
    t.equal(res.status, 200, `bob signs in through ${r.name}`)
  }
  const dashboard = await control(emulator, 'POST', `/databricks/workspaces/${DEFAULT_WORKSPACE_ID}/dashboards`, { displayName: 'After the outage' }) as { dashboard_id: string }
  await control(emulator, 'PUT', `/databricks/workspaces/${DEFAULT_WORKSPACE_ID}/acls`, { type: 'dashboards', id: dashboard.dashboard_id, access_control_list: [{ user_name: 'bob@contoso-test.onmicrosoft.com', permission_level: 'CAN_MANAGE' }] })
  const alice = async (r: Replica): Promise<string | null> => {
    const res = await fetch(`${r.url}/v1/permissions/dashboards/${dashboard.dashboard_id}?workspaceId=${DEFAULT_WORKSPACE_ID}&principal=${encodeURIComponent('alice@contoso-test.onmicrosoft.com')}`, { headers: { authorization: `Bearer ${bob}` } })
    return ((await res.json()) as { level?: string | null }).level ?? null
  }
  const [a, b, c] = replicas
  for (const r of [b, c]) t.equal(await alice(r), null, `${r.name} caches the dashboard's ACL`)
  const shared = await fetch(`${a.url}/v1/shares`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bob}`, 'content-type': 'application/json' },
    body: JSON.stringify({ workspaceId: DEFAULT_WORKSPACE_ID, objectType: 'dashboards', objectId: dashboard.dashboard_id, principal: 'alice@contoso-test.onmicrosoft.com', level: 'CAN_READ' })
  })
  t.equal(shared.status, 200, 'bob shares with alice through A')
  t.equal(await alice(b), 'CAN_READ', 'B sees the share at once')
  t.equal(await alice(c), 'CAN_READ', 'C sees the share at once')
})
