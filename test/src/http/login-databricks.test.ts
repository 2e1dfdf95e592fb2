// POST /v1/login with a Databricks account configured (SCIM mode): the caller, its groups and Entra's
// nesting are materialized in the emulated account, and warm logins cost no upstream call at all.
import t from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'

interface StatePrincipal { id: string, externalId: string | null, active?: boolean, userName?: string, groups: Array<{ externalId: string | null }> }
interface State { users: StatePrincipal[], servicePrincipals: StatePrincipal[], groups: StatePrincipal[] }

const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
const { ctx, origin } = emulator
const control = async (method: string, path: string, body?: unknown): Promise<Response> =>
  await fetch(`${origin}/_emulator/databricks${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
// SCIM mode: with AIM on, the emulated account would report Entra's memberships by itself.
await control('PUT', '/settings', { aimEnabled: false })
// What is under test is what a login writes, not how fast it may: the account's rate limits are off and
// the service's write budgets (2 PATCHes a second by default) out of the way. Pacing under the limits is
// proven in test/src/target/ and measured by bench/databricks.ts.
const noRateLimits = async (): Promise<void> => { await control('PUT', '/rate-limits', { enabled: false }) }
await noRateLimits()
const state = async (): Promise<State> => await (await control('GET', '/state')).json() as State
const parentsIn = (s: State, externalId: string): string[] =>
  [...s.users, ...s.servicePrincipals, ...s.groups].find(p => p.externalId === externalId)?.groups.map(g => g.externalId ?? 'internal').sort() ?? ['<missing>']
const upstreamCalls = (): number => Object.entries(ctx.calls.snapshot().routes).filter(([r]) => / \/(v1\.0|api)\//.test(r)).reduce((n, [, c]) => n + c, 0)

const databricks = {
  DATABRICKS_HOST: origin,
  DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
  DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
  DATABRICKS_SCIM_PATCHES_PER_SECOND: '1000',
  DATABRICKS_SCIM_WRITES_PER_SECOND: '1000'
}

t.test('first login creates the user, its groups and the nesting; the second makes no upstream call', async t => {
  const { app } = await startService(t, emulator, databricks)
  const token = await tokenFor(emulator, T.alice)
  const login = async () => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  const first = await login()
  t.equal(first.statusCode, 200)
  const body = first.json()
  t.match(body.databricks, { principalId: String, active: true })
  t.equal(body.databricks.groups.length, 4, 'every transitive group has a Databricks id')

  const s = await state()
  t.equal(s.users.filter(u => u.externalId === T.alice).length, 1)
  t.same(parentsIn(s, T.alice), [T.dataPlatform, T.distribution].sort(), 'direct memberships as in Entra')
  t.same(parentsIn(s, T.dataPlatform), [T.engineering], 'nesting mirrored')
  t.same(parentsIn(s, T.engineering), [T.allStaff])

  ctx.calls.reset()
  t.equal((await login()).statusCode, 200)
  t.equal(upstreamCalls(), 0, 'a warm login calls neither Graph nor Databricks')
})

t.test('a membership change in Entra shows at the next login after the TTL, writing only the difference', async t => {
  const { app } = await startService(t, emulator, databricks)
  const token = await tokenFor(emulator, T.bob)
  const login = async () => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  t.equal((await login()).statusCode, 200)
  t.same(parentsIn(await state(), T.bob), [T.engineering, T.finance].sort())

  const directory = ctx.tenants.get(T.tenantId)
  directory?.removeMember(T.finance, T.bob)
  directory?.addMember(T.dataPlatform, T.bob)
  t.teardown(() => { directory?.addMember(T.finance, T.bob); directory?.removeMember(T.dataPlatform, T.bob) })
  ctx.clock.advance(301_000)
  ctx.calls.reset()
  t.equal((await login()).statusCode, 200)
  t.same(parentsIn(await state(), T.bob), [T.dataPlatform, T.engineering].sort(), 'added and removed')
  const writes = Object.entries(ctx.calls.snapshot().routes).filter(([r]) => /^(POST|PUT|PATCH|DELETE) \/api\//.test(r)).reduce((n, [, c]) => n + c, 0)
  t.ok(writes <= 2, `only the two changed groups are written (${writes})`)
})

// 100 at once are as many as 500 for single-flight (all arrive before the first materialization ends);
// the benchmarks are where large numbers belong.
t.test('100 concurrent cold logins of one user leave exactly one user in Databricks', async t => {
  const { app } = await startService(t, emulator, databricks)
  const token = await tokenFor(emulator, T.guest)
  const answers = await Promise.all(Array.from({ length: 100 }, async () => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })))
  t.same(answers.filter(a => a.statusCode !== 200).map(a => `${a.statusCode} ${a.body}`), [], 'every login answered 200')
  t.equal((await state()).users.filter(u => u.externalId === T.guest).length, 1)
})

t.test('concurrent cold logins of different principals sharing groups all succeed', async t => {
  const { app } = await startService(t, emulator, databricks)
  const tokens = await Promise.all([T.alice, T.bob, T.guest, T.etlSp].map(async id => await tokenFor(emulator, id)))
  const answers = await Promise.all(tokens.flatMap(token => [1, 2, 3].map(async () => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } }))))
  t.same(answers.map(a => a.statusCode), answers.map(() => 200))
})

t.test('a service principal logs in and is materialized with its groups', async t => {
  const { app } = await startService(t, emulator, databricks)
  const res = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, T.etlSp)}` } })
  t.equal(res.statusCode, 200)
  t.same(parentsIn(await state(), T.etlSp), [T.dataPlatform])
})

t.test('a user disabled in Entra is deactivated in Databricks and refused', async t => {
  const { app } = await startService(t, emulator, databricks)
  const directory = ctx.tenants.get(T.tenantId)
  const newcomer = { id: 'a1000000-0000-4000-8000-0000000000d1', userPrincipalName: 'leaver@contoso-test.onmicrosoft.com', displayName: 'Soon Gone' }
  directory?.addUser(newcomer)
  directory?.addMember(T.finance, newcomer.id)
  const token = await tokenFor(emulator, newcomer.id)
  const login = async () => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  t.equal((await login()).statusCode, 200)
  directory?.updateUser(newcomer.id, { accountEnabled: false })
  ctx.clock.advance(301_000)
  const refused = await login()
  t.equal(refused.statusCode, 403)
  t.equal(refused.json().code, 'PRINCIPAL_DISABLED')
  t.equal((await state()).users.find(u => u.externalId === newcomer.id)?.active, false, 'deactivated in Databricks')
})

t.test('Databricks down: a cold login is a 503 with Retry-After, then it recovers', async t => {
  const { app } = await startService(t, emulator, databricks)
  ctx.faults.add({ route: '/api/*', status: 429, retryAfter: 120 })
  t.teardown(() => ctx.faults.remove())
  const token = await tokenFor(emulator, T.bob)
  const res = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  t.equal(res.statusCode, 503)
  t.match(res.json(), { code: 'UPSTREAM_THROTTLED', detail: /Databricks/ })
  t.equal(res.headers['retry-after'], '120')
  ctx.faults.remove()
  t.equal((await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })).statusCode, 200)
})

t.test('with the groups claim enabled, materialized groups still get their names from Graph', async t => {
  const { app } = await startService(t, emulator, { ...databricks, USE_TOKEN_GROUPS_CLAIM: 'true' })
  const res = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, T.alice, { groups: true })}` } })
  t.equal(res.statusCode, 200)
  t.equal(res.json().groupsSource, 'graph')
  t.ok((res.json().groups as Array<{ displayName: string }>).every(g => g.displayName !== ''))
})

t.test('without DATABRICKS_TOKEN the service signs in to Databricks with its Entra app', async t => {
  const { DATABRICKS_TOKEN: _token, ...entraOnly } = databricks
  const { app } = await startService(t, emulator, entraOnly)
  const res = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, T.alice)}` } })
  t.equal(res.statusCode, 200)
  t.type(res.json().databricks.principalId, 'string')
})

t.test('the login decides workspace access: NONE, INDIRECT through a nested group, DIRECT', async t => {
  const assign = async (principalId: string, permission: 'USER' | 'ADMIN'): Promise<void> => {
    const res = await fetch(`${origin}/api/2.0/accounts/${DEFAULT_ACCOUNT_ID}/workspaces/${DEFAULT_WORKSPACE_ID}/permissionassignments/principals/${principalId}`, {
      method: 'PUT', headers: { authorization: `Bearer ${DATABRICKS_ADMIN_PAT}`, 'content-type': 'application/json' }, body: JSON.stringify({ permissions: [permission] })
    })
    t.equal(res.status, 200)
  }
  const token = await tokenFor(emulator, T.alice)
  // A fresh service for each step: workspace assignments are cached for 30 s.
  const decide = async (workspaceId = DEFAULT_WORKSPACE_ID) => {
    const { app } = await startService(t, emulator, databricks)
    return await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` }, payload: { workspaceId } })
  }

  const none = await decide()
  t.equal(none.statusCode, 200)
  t.match(none.json().workspace, { workspaceId: DEFAULT_WORKSPACE_ID, decision: 'deny', access: 'NONE', reason: /No permission assignment/ })

  const allStaff = (none.json().databricks.groups as Array<{ id: string, databricksId: string }>).find(g => g.id === T.allStaff)
  t.ok(allStaff, 'All Staff was materialized')
  await assign(allStaff?.databricksId ?? '', 'USER')
  const indirect = (await decide()).json().workspace
  t.match(indirect, { decision: 'allow', access: 'INDIRECT', permission: 'USER', via: [{ id: T.allStaff, displayName: 'All Staff' }], reason: /through group 'All Staff'/ })

  await assign(none.json().databricks.principalId, 'ADMIN')
  t.match((await decide()).json().workspace, { decision: 'allow', access: 'DIRECT', permission: 'ADMIN' })

  const unknown = await decide('12345')
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.json().code, 'WORKSPACE_NOT_FOUND')
  const bad = await decide('not-a-number')
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'INVALID_REQUEST')
})

t.test('a workspace decision without a Databricks account is a 400 that says what to configure', async t => {
  const { app } = await startService(t, emulator)
  const res = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, T.alice)}` }, payload: { workspaceId: DEFAULT_WORKSPACE_ID } })
  t.equal(res.statusCode, 400)
  t.match(res.json(), { code: 'DATABRICKS_NOT_CONFIGURED', detail: /DATABRICKS_HOST/ })
})

t.test('a 429 storm and the 500 concurrency quirk: logins complete once they pass, without looping', async t => {
  const { app } = await startService(t, emulator, databricks)
  const directory = ctx.tenants.get(T.tenantId)
  const people = Array.from({ length: 4 }, (_, i) => ({ id: `a1000000-0000-4000-8000-0000000000e${i}`, userPrincipalName: `storm${i}@contoso-test.onmicrosoft.com`, displayName: `Storm ${i}` }))
  for (const p of people) {
    directory?.addUser(p)
    directory?.addMember(T.finance, p.id)
  }
  const login = async (id: string) => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, id)}` } })

  // A short (fractional) Retry-After: what counts is that it is honoured and the storm ends, not the wait.
  ctx.faults.add({ route: '/api/*', status: 429, retryAfter: 0.1, times: 3 })
  ctx.calls.reset()
  t.equal((await login(people[0]?.id ?? '')).statusCode, 200, 'completes after the storm')
  const calls = Object.entries(ctx.calls.snapshot().routes).filter(([r]) => r.includes(' /api/')).reduce((n, [, c]) => n + c, 0)
  t.ok(calls < 30, `bounded: ${calls} Databricks calls`)
  ctx.faults.remove()

  // The quirk: more than 4 SCIM requests in flight → 500 REQUEST_LIMIT_EXCEEDED.
  await control('PUT', '/rate-limits', { concurrency: { enabled: true, limit: 2, holdMs: 20 } })
  t.teardown(async () => { await control('DELETE', '/rate-limits'); await noRateLimits() })
  const answers = await Promise.all(people.slice(1).map(async p => await login(p.id)))
  t.same(answers.map(a => a.statusCode), [200, 200, 200])
  const s = await state()
  t.ok(people.every(p => s.users.filter(u => u.externalId === p.id).length === 1), 'each exactly once')
})

t.test('a fault half-way through a first login, then a retry: no duplicates, memberships equal Entra\'s', async t => {
  const { app } = await startService(t, emulator, databricks)
  const directory = ctx.tenants.get(T.tenantId)
  const person = { id: 'a1000000-0000-4000-8000-0000000000f1', userPrincipalName: 'halfway@contoso-test.onmicrosoft.com', displayName: 'Half Way' }
  directory?.addUser(person)
  directory?.addMember(T.finance, person.id)
  directory?.addMember(T.dataPlatform, person.id)
  const token = await tokenFor(emulator, person.id)
  const login = async () => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  ctx.faults.add({ route: '/api/2.0/accounts/*/scim/v2/Groups/*', method: 'PATCH', status: 500, skip: 1, times: 10 })
  const failed = await login()
  t.equal(failed.statusCode, 503, 'the caller is told to retry')
  ctx.faults.remove()
  t.equal((await login()).statusCode, 200)
  const s = await state()
  t.equal(s.users.filter(u => u.externalId === person.id).length, 1, 'no duplicate user')
  t.same(parentsIn(s, person.id), [T.dataPlatform, T.finance].sort(), 'memberships equal Entra\'s')
  t.equal(new Set(s.groups.map(g => g.externalId).filter(x => x !== null)).size, s.groups.filter(g => g.externalId !== null).length, 'no duplicate group')
})
