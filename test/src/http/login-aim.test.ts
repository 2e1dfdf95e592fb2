// POST /v1/login with DATABRICKS_MODE=aim: the account resolves the caller and its groups from Entra by
// external id (automatic identity management); the service writes no membership.
import t from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'

interface StatePrincipal { externalId: string | null }
interface State { users: StatePrincipal[], groups: StatePrincipal[] }

const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
const { ctx, origin } = emulator
const aim = { DATABRICKS_HOST: origin, DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID, DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT, DATABRICKS_MODE: 'aim' }
const state = async (): Promise<State> => await (await fetch(`${origin}/_emulator/databricks/state`)).json() as State
const upstreamCalls = (): number => Object.entries(ctx.calls.snapshot().routes).filter(([r]) => / \/(v1\.0|api)\//.test(r)).reduce((n, [, c]) => n + c, 0)

t.test('first login resolves the user and its groups in the account; the second makes no upstream call', async t => {
  const { app } = await startService(t, emulator, aim)
  const token = await tokenFor(emulator, T.alice)
  const login = async () => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  ctx.calls.reset()
  const first = await login()
  t.equal(first.statusCode, 200)
  t.equal(first.json().databricks.groups.length, 4)
  const writes = Object.keys(ctx.calls.snapshot().routes).filter(r => /^(PATCH|PUT|DELETE) \/api\//.test(r) || /^POST \/api\/.*scim/.test(r))
  t.same(writes, [], 'no SCIM write: AIM keeps Entra the source of memberships')
  const s = await state()
  t.equal(s.users.filter(u => u.externalId === T.alice).length, 1)
  t.ok([T.allStaff, T.engineering, T.dataPlatform].every(g => s.groups.some(x => x.externalId === g)), 'groups exist in the account')

  ctx.calls.reset()
  t.equal((await login()).statusCode, 200)
  t.equal(upstreamCalls(), 0)
})

// 100 at once prove single-flight as well as 500 did; large numbers belong to the benchmarks.
t.test('100 concurrent cold logins of one user: one user in the account', async t => {
  const { app } = await startService(t, emulator, aim)
  const token = await tokenFor(emulator, T.bob)
  const answers = await Promise.all(Array.from({ length: 100 }, async () => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })))
  t.same(answers.filter(a => a.statusCode !== 200).map(a => `${a.statusCode} ${a.body}`), [], 'every login answered 200')
  t.equal((await state()).users.filter(u => u.externalId === T.bob).length, 1)
})

t.test('a 429 storm: the login completes once it passes, with bounded calls', async t => {
  const { app } = await startService(t, emulator, aim)
  // A short (fractional) Retry-After: the storm is ridden out whatever its length.
  ctx.faults.add({ route: '/api/*', status: 429, retryAfter: 0.1, times: 3 })
  t.teardown(() => ctx.faults.remove())
  ctx.calls.reset()
  const res = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, T.etlSp)}` } })
  t.equal(res.statusCode, 200)
  t.ok(upstreamCalls() < 40, 'bounded')
})

t.test('a membership change in Entra shows at the next login after the TTL', async t => {
  const { app } = await startService(t, emulator, aim)
  const token = await tokenFor(emulator, T.guest)
  const login = async () => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  const groupsOf = (res: Awaited<ReturnType<typeof login>>): string[] => (res.json().databricks.groups as Array<{ id: string }>).map(g => g.id).sort()
  t.same(groupsOf(await login()), [T.allStaff, T.finance].sort())
  const directory = ctx.tenants.get(T.tenantId)
  directory?.addMember(T.dataPlatform, T.guest)
  t.teardown(() => { directory?.removeMember(T.dataPlatform, T.guest) })
  ctx.clock.advance(301_000)
  t.same(groupsOf(await login()), [T.allStaff, T.engineering, T.dataPlatform, T.finance].sort(), 'the new groups resolved in the account')
})

t.test('a fault half-way through a first login, then a retry: no duplicates', async t => {
  const { app } = await startService(t, emulator, aim)
  const directory = ctx.tenants.get(T.tenantId)
  const person = { id: 'a1000000-0000-4000-8000-0000000000a9', userPrincipalName: 'aimhalfway@contoso-test.onmicrosoft.com', displayName: 'Aim Half Way' }
  directory?.addUser(person)
  directory?.addMember(T.finance, person.id)
  const token = await tokenFor(emulator, person.id)
  const login = async () => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  ctx.faults.add({ route: '/api/*', status: 500, skip: 1, times: 20 })
  t.equal((await login()).statusCode, 503)
  ctx.faults.remove()
  t.equal((await login()).statusCode, 200)
  t.equal((await state()).users.filter(u => u.externalId === person.id).length, 1)
})

t.test('workspace access decided the same way in AIM mode', async t => {
  const { app } = await startService(t, emulator, aim)
  const res = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, T.etlSp)}` }, payload: { workspaceId: DEFAULT_WORKSPACE_ID } })
  t.equal(res.statusCode, 200)
  t.match(res.json().workspace, { access: 'NONE', decision: 'deny' })
})

t.test('AIM switched off in the account: a 502 that tells the operator what to do', async t => {
  const { app } = await startService(t, emulator, aim)
  await fetch(`${origin}/_emulator/databricks/settings`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ aimEnabled: false }) })
  t.teardown(async () => { await fetch(`${origin}/_emulator/databricks/settings`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ aimEnabled: true }) }) })
  const res = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, T.guest)}` } })
  t.equal(res.statusCode, 502)
  t.match(res.json(), { code: 'TARGET_MISCONFIGURED', detail: /DATABRICKS_MODE=scim|automatic identity management/ })
})

t.test('a cold login of a user in 1,500 groups: its resolve and 2 pages of its parent groups, no group resolved alone', async t => {
  const { app } = await startService(t, emulator, aim)
  const directory = ctx.tenants.get(T.tenantId)
  const person = { id: 'a1000000-0000-4000-8000-0000000000b1', userPrincipalName: 'aimmany@contoso-test.onmicrosoft.com', displayName: 'Aim Many Groups' }
  directory?.addUser(person)
  const groups = Array.from({ length: 1500 }, (_, i) => `e1000000-0000-4000-8000-${(i + 1).toString(16).padStart(12, '0')}`)
  // Half direct, half through nesting (each odd group holds the even one before it).
  groups.forEach((id, i) => directory?.addGroup({ id, displayName: `Aim Many ${i + 1}`, members: i % 2 === 1 ? [groups[i - 1] as string] : [person.id] }))
  const token = await tokenFor(emulator, person.id)
  ctx.calls.reset()
  const res = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  t.equal(res.statusCode, 200)
  t.equal(res.json().databricks.groups.length, 1500, 'every group has its Databricks id')
  const identity = Object.fromEntries(Object.entries(ctx.calls.snapshot().routes).filter(([r]) => r.includes(' /api/2.0/identity/')))
  t.same(identity, {
    'POST /api/2.0/identity/accounts/:accountId/users/resolve-by-external-id': 1,
    'GET /api/2.0/identity/accounts/:accountId/principals/:principalId/transitive-parent-groups': Math.ceil(1500 / 1000)
  }, '1 resolve + ⌈1500 / 1000⌉ pages')
  const s = await state()
  t.equal(s.groups.filter(g => g.externalId !== null && groups.includes(g.externalId)).length, 1500, 'each group once in the account')
})
