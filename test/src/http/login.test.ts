// POST /v1/login and GET /v1/principals/{id}, end to end: the service built as in production, against the
// emulated Entra tenant and Microsoft Graph over HTTPS.
import t from 'tap'
import type { GroupFixture, TenantFixture } from '../../../emulators/tenant/model.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'

const id = (prefix: string, n: number): string => `${prefix}-0000-4000-8000-${n.toString(16).padStart(12, '0')}`
const X = {
  heavy: id('a1000000', 1),
  overaged: id('a1000000', 2),
  chainUser: id('a1000000', 3),
  cycleUser: id('a1000000', 4),
  chain: Array.from({ length: 10 }, (_, i) => id('e1000000', i + 1)),
  cycle: [id('f1000000', 1), id('f1000000', 2), id('f1000000', 3)]
}
const TRANSITIVE = 'GET /v1.0/users/:id/transitiveMemberOf/:cast'

function tenant (): TenantFixture {
  const base = smallTenant()
  const upn = (name: string): string => `${name}@contoso-test.onmicrosoft.com`
  const heavyGroups: GroupFixture[] = Array.from({ length: 2500 }, (_, i) => ({ id: id('c1000000', i + 1), displayName: `Project ${i + 1}`, members: [X.heavy, ...(i < 250 ? [X.overaged] : [])] }))
  const chain: GroupFixture[] = X.chain.map((g, i) => ({ id: g, displayName: `Level ${i + 1}`, members: [i < 9 ? X.chain[i + 1] as string : X.chainUser] }))
  const cycle: GroupFixture[] = X.cycle.map((g, i) => ({ id: g, displayName: `Ring ${i + 1}`, members: [X.cycle[(i + 1) % 3] as string, ...(i === 2 ? [X.cycleUser] : [])] }))
  return {
    ...base,
    users: [
      ...base.users,
      { id: X.heavy, userPrincipalName: upn('heavy'), displayName: 'Heavy User' },
      { id: X.overaged, userPrincipalName: upn('overaged'), displayName: 'Overaged User' },
      { id: X.chainUser, userPrincipalName: upn('deep'), displayName: 'Deep User' },
      { id: X.cycleUser, userPrincipalName: upn('ring'), displayName: 'Ring User' }
    ],
    groups: [...base.groups, ...heavyGroups, ...chain, ...cycle]
  }
}

const emulator = await startTestEmulator(t, { tenants: [tenant(), smallTenant({ tenantId: T.otherTenantId, domain: 'fabrikam-test.onmicrosoft.com' })] })
const { ctx } = emulator
const login = async (app: Awaited<ReturnType<typeof startService>>['app'], token: string) =>
  await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
const groupIds = (body: { groups: Array<{ id: string }> }): string[] => body.groups.map(g => g.id).sort()

t.test('a user logs in: principal and every transitive group', async t => {
  const { app } = await startService(t, emulator)
  const res = await login(app, await tokenFor(emulator, T.alice))
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.match(body.principal, { id: T.alice, tenantId: T.tenantId, kind: 'user', displayName: 'Alice Adams', userPrincipalName: 'alice@contoso-test.onmicrosoft.com', accountEnabled: true })
  t.same(groupIds(body), [T.allStaff, T.engineering, T.dataPlatform, T.distribution].sort(), 'nested groups included')
  t.equal(body.groupCount, 4)
  t.equal(body.groupsSource, 'graph')
})

t.test('a service principal logs in with an app-only token', async t => {
  const { app } = await startService(t, emulator)
  const res = await login(app, await tokenFor(emulator, T.etlSp))
  t.equal(res.statusCode, 200)
  t.match(res.json().principal, { id: T.etlSp, kind: 'servicePrincipal', appId: T.etlAppId })
  t.same(groupIds(res.json()), [T.allStaff, T.engineering, T.dataPlatform].sort())
})

t.test('a user in 2,500 groups gets all of them, in 1 + ⌈2500/999⌉ Graph calls', async t => {
  const { app } = await startService(t, emulator)
  const token = await tokenFor(emulator, X.heavy)
  ctx.calls.reset()
  const res = await login(app, token)
  t.equal(res.statusCode, 200)
  t.equal(res.json().groupCount, 2500)
  t.equal(new Set(groupIds(res.json())).size, 2500, 'each group once')
  const routes = ctx.calls.snapshot().routes
  t.equal(routes[TRANSITIVE], 3, 'three pages of transitiveMemberOf')
  t.equal(routes['POST /v1.0/$batch'], 1, 'one principal read')
})

t.test('a 10-level nesting chain and a nesting cycle', async t => {
  const { app } = await startService(t, emulator)
  const deep = await login(app, await tokenFor(emulator, X.chainUser))
  t.same(groupIds(deep.json()), [...X.chain].sort(), 'all ten levels')
  const ring = await login(app, await tokenFor(emulator, X.cycleUser))
  t.same(groupIds(ring.json()), [...X.cycle].sort(), 'the cycle ends, each group once')
})

t.test('the groups claim is used only when enabled and complete, never when overaged', async t => {
  const { app } = await startService(t, emulator, { USE_TOKEN_GROUPS_CLAIM: 'true' })
  const small = await login(app, await tokenFor(emulator, T.alice, { groups: true }))
  t.equal(small.json().groupsSource, 'token')
  t.same(groupIds(small.json()), [T.allStaff, T.engineering, T.dataPlatform].sort(), 'the claim holds security groups only')

  const overagedToken = await tokenFor(emulator, X.overaged, { groups: true })
  const claims = JSON.parse(Buffer.from(overagedToken.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>
  t.notOk('groups' in claims, 'the token is overaged')
  t.ok('_claim_names' in claims)
  const overaged = await login(app, overagedToken)
  t.equal(overaged.statusCode, 200)
  t.equal(overaged.json().groupsSource, 'graph')
  t.equal(overaged.json().groupCount, 250)
})

// 200 at once prove single-flight as well as 1,000 (all are in before the first Graph answer); how many a
// replica takes is the benchmarks' subject.
t.test('200 concurrent cold logins of one user make one Graph fetch of its groups', async t => {
  const { app } = await startService(t, emulator)
  const token = await tokenFor(emulator, T.bob)
  ctx.calls.reset()
  const answers = await Promise.all(Array.from({ length: 200 }, async () => await login(app, token)))
  t.same(answers.filter(a => a.statusCode !== 200).map(a => `${a.statusCode} ${a.body}`), [], 'all succeed')
  const routes = ctx.calls.snapshot().routes
  t.equal(routes[TRANSITIVE], 1, 'one transitiveMemberOf')
  t.equal(routes['POST /v1.0/$batch'], 1, 'one principal read')
  t.ok((routes['GET /:tenant/discovery/v2.0/keys'] ?? 0) <= 1, 'the signing keys were fetched once at most')
})

t.test('disabled and deleted principals are refused once the cache entry expires', async t => {
  const { app } = await startService(t, emulator)
  const directory = ctx.tenants.get(T.tenantId)
  t.ok(directory)
  const newcomer = { id: id('a1000000', 0x99), userPrincipalName: 'newcomer@contoso-test.onmicrosoft.com', displayName: 'New Comer' }
  directory?.addUser(newcomer)
  t.teardown(() => { if (directory?.user(newcomer.id) !== undefined) directory.delete(newcomer.id) })
  const token = await tokenFor(emulator, newcomer.id)
  t.equal((await login(app, token)).statusCode, 200)

  directory?.updateUser(newcomer.id, { accountEnabled: false })
  t.equal((await login(app, token)).statusCode, 200, 'still cached')
  ctx.clock.advance(301_000)
  const disabled = await login(app, token)
  t.equal(disabled.statusCode, 403)
  t.match(disabled.json(), { code: 'PRINCIPAL_DISABLED', detail: /disabled in Entra/ })
  t.match(disabled.headers['content-type'], /application\/problem\+json/)

  directory?.delete(newcomer.id)
  ctx.clock.advance(301_000)
  const deleted = await login(app, token)
  t.equal(deleted.statusCode, 403)
  t.equal(deleted.json().code, 'PRINCIPAL_NOT_FOUND')
})

t.test('Graph down: cached principals are served stale, cold ones get 503 with Retry-After, then it recovers', async t => {
  const { app } = await startService(t, emulator)
  const warm = await tokenFor(emulator, T.alice)
  const cold = await tokenFor(emulator, T.bob)
  t.equal((await login(app, warm)).statusCode, 200)

  ctx.faults.add({ route: '/v1.0/*', status: 503, retryAfter: 0 })
  t.teardown(() => ctx.faults.remove())
  ctx.clock.advance(400_000) // past the TTL, within the maximum staleness
  const stale = await login(app, warm)
  t.equal(stale.statusCode, 200, 'served from the stale entry')
  t.equal(stale.json().groupCount, 4)

  const unavailable = await login(app, cold)
  t.equal(unavailable.statusCode, 503)
  t.match(unavailable.json(), { code: 'UPSTREAM_UNAVAILABLE', detail: /Microsoft Graph is unavailable/ })
  t.match(unavailable.headers['retry-after'], /^\d+$/)

  ctx.faults.remove()
  ctx.faults.add({ route: '/v1.0/*', status: 429, retryAfter: 120 })
  const throttled = await login(app, cold)
  t.equal(throttled.statusCode, 503)
  t.equal(throttled.json().code, 'UPSTREAM_THROTTLED')
  t.equal(throttled.headers['retry-after'], '120', 'Graph\'s own Retry-After is passed on')

  ctx.faults.remove()
  t.equal((await login(app, cold)).statusCode, 200, 'recovers by itself')
})

t.test('bad tokens are 401 with a precise code, and cause no Graph call', async t => {
  const { app } = await startService(t, emulator)
  await login(app, await tokenFor(emulator, T.alice)) // keys loaded
  ctx.calls.reset()
  const expected: Record<string, string> = {
    'bad-signature': 'TOKEN_SIGNATURE_INVALID',
    expired: 'TOKEN_EXPIRED',
    'nbf-future': 'TOKEN_NOT_YET_VALID',
    'wrong-audience': 'TOKEN_AUDIENCE_INVALID',
    'wrong-issuer': 'TOKEN_ISSUER_INVALID',
    'tid-mismatch': 'TOKEN_TENANT_MISMATCH',
    'alg-none': 'TOKEN_ALGORITHM_NOT_ALLOWED',
    'hs256-public-key': 'TOKEN_ALGORITHM_NOT_ALLOWED',
    'unknown-kid': 'TOKEN_UNKNOWN_KEY',
    'tid-not-guid': 'TOKEN_TENANT_INVALID'
  }
  for (const [variant, code] of Object.entries(expected)) {
    const res = await login(app, await tokenFor(emulator, T.alice, { break: variant }))
    t.equal(res.statusCode, 401, variant)
    t.equal(res.json().code, code, variant)
  }
  const garbage = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: 'Bearer not.a.token' } })
  t.equal(garbage.json().code, 'TOKEN_MALFORMED')
  const missing = await app.inject({ method: 'POST', url: '/v1/login' })
  t.equal(missing.json().code, 'TOKEN_MISSING')
  const huge = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${'a'.repeat(40_000)}` } })
  t.equal(huge.json().code, 'TOKEN_TOO_LARGE')
  const other = await login(app, await tokenFor(emulator, T.alice, { tenantId: T.otherTenantId }))
  t.equal(other.json().code, 'TOKEN_TENANT_NOT_ALLOWED', 'a token from another tenant')
  const calls = ctx.calls.snapshot().routes
  t.same(Object.keys(calls).filter(r => r.includes('/v1.0/')), [], 'no Graph call for any bad token')
  t.ok((calls['GET /:tenant/discovery/v2.0/keys'] ?? 0) <= 1, 'at most the one rate-limited key refresh')
})

t.test('GET /v1/principals/{id} needs Identity.Admin and finds anyone in the directory', async t => {
  const { app } = await startService(t, emulator)
  const admin = await tokenFor(emulator, T.etlSp, { claims: { roles: ['Identity.Admin'] } })
  const get = async (path: string, token = admin) => await app.inject({ method: 'GET', url: path, headers: { authorization: `Bearer ${token}` } })

  const byUpn = await get('/v1/principals/bob@contoso-test.onmicrosoft.com')
  t.equal(byUpn.statusCode, 200)
  t.match(byUpn.json(), { principal: { id: T.bob, kind: 'user' }, groupCount: 3 })
  t.equal((await get(`/v1/principals/${T.dataPlatform}`)).json().principal.kind, 'group')
  t.equal((await get(`/v1/principals/${T.disabled}`)).json().principal.accountEnabled, false, 'disabled principals are reported, not refused')
  t.equal((await get(`/v1/principals/${T.etlAppId}?by=appId`)).json().principal.id, T.etlSp)
  t.equal((await get('/v1/principals/alice@contoso.com?by=mail')).json().principal.id, T.alice)

  const unknown = await get('/v1/principals/99999999-9999-4999-8999-999999999999')
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.json().code, 'PRINCIPAL_NOT_FOUND')
  t.equal((await get('/v1/principals/x?by=shoeSize')).statusCode, 400)

  const notAdmin = await get(`/v1/principals/${T.bob}`, await tokenFor(emulator, T.alice))
  t.equal(notAdmin.statusCode, 403)
  t.match(notAdmin.json(), { code: 'MISSING_ROLE', detail: /Identity\.Admin/ })
})

t.test('/metrics reports requests, cache results and upstream calls', async t => {
  const { app } = await startService(t, emulator)
  const token = await tokenFor(emulator, T.alice)
  await login(app, token)
  await login(app, token)
  const text = (await app.inject('/metrics')).body
  t.match(text, /resolver_cache_lookups_total\{cache="principals",result="miss"\} 1/)
  t.match(text, /resolver_cache_lookups_total\{cache="principals",result="hit"\} 1/)
  t.match(text, /upstream_request_duration_seconds_count\{upstream="graph",method="POST",route="[^"]+",status="200"\} 1/)
  t.match(text, /http_request_duration_seconds_count\{route="\/v1\/login",method="POST",status="200"\} 2/)
})
