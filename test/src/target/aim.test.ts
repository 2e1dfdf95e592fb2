// DatabricksAimTarget against the Databricks emulator over HTTPS, automatic identity management on:
// principals and groups resolved by Entra object id (created in the account when missing), no membership
// ever written, the warm path free, single-flight, both path spellings and response generations, AIM off,
// and throttling.
import t from 'tap'
import { aimEnv, DEFAULT_ACCOUNT_ID, T } from '../../helpers/target-aim.ts'
import { entraRequest } from '../../helpers/target.ts'
import { AimDisabledError, parseResolved } from '../../../src/target/aim.ts'
import { DatabricksNotFoundError, TargetConfigurationError } from '../../../src/target/errors.ts'
import { TargetUnavailableError } from '../../../src/target/port.ts'

const RESOLVE = {
  user: 'POST /api/2.0/identity/accounts/:accountId/users/resolve-by-external-id',
  sp: 'POST /api/2.0/identity/accounts/:accountId/service-principals/resolve-by-external-id',
  group: 'POST /api/2.0/identity/accounts/:accountId/groups/resolve-by-external-id',
  pages: 'GET /api/2.0/identity/accounts/:accountId/principals/:principalId/transitive-parent-groups'
}

t.test('a first materialization creates the user and its groups in the account; the second makes no call', async t => {
  const env = await aimEnv(t)
  const request = env.request(T.alice)
  t.equal(request.groups.length, 4, 'alice: Data Platform, Engineering, All Staff (nested) and the Newsletter')
  const before = await env.state()
  t.equal(before.users.length, 0, 'the account starts empty')

  const result = await env.target.materialize(request)
  const state = await env.state()
  t.equal(state.users.length, 1, 'one user')
  const alice = state.users[0]
  t.match(alice, { externalId: T.alice, userName: 'alice@contoso-test.onmicrosoft.com', status: 'INACTIVE' })
  t.equal(result.principalId, alice?.id, 'the account\'s id is returned')
  t.equal(result.active, false, 'active as the account reports it: INACTIVE until the first login')
  t.equal(result.groupIds.size, request.groups.length, 'every group of the request has an id')
  for (const g of request.groups) {
    const made = state.groups.find(x => x.externalId === g.id)
    t.ok(made !== undefined, `${g.displayName} exists in the account`)
    t.equal(result.groupIds.get(g.id), made?.id, `${g.displayName}: its id is returned`)
  }
  // Entra stays the source of record: memberships come from the identity provider, none are written. The
  // groups come from the account's own answer (one page); the Newsletter, a distribution list the account
  // did not learn with alice, is resolved alone.
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1, [RESOLVE.pages]: 1, [RESOLVE.group]: 1 }, 'only resolves and one page of parent groups')
  const written = [...state.users, ...state.groups].flatMap(p => p.groups).filter(m => m.source !== 'IDENTITY_PROVIDER')
  t.same(written, [], 'no INTERNAL membership exists')
  t.same(alice?.groups.map(g => g.id).sort(), request.directGroupIds.map(id => result.groupIds.get(id)).sort(), 'alice is in her direct Entra groups, through Entra (AIM)')
  const dataPlatform = state.groups.find(g => g.externalId === T.dataPlatform)
  t.same(dataPlatform?.groups.map(g => g.externalId), [T.engineering], 'and the nesting comes from Entra too')

  env.resetCalls()
  const again = await env.target.materialize(env.request(T.alice))
  t.equal(env.dbCalls().total, 0, 'a warm materialization of an unchanged request makes zero Databricks calls')
  t.same(again, result)
})

t.test('active follows the account: re-read after the principal TTL, once the user has logged in', async t => {
  const env = await aimEnv(t)
  const first = await env.target.materialize(env.request(T.alice))
  t.equal(first.active, false)
  // Alice uses the account (her first call with a token of her own).
  const token = (await env.db.control('POST', '/tokens', { principalId: first.principalId })).body.token as string
  await env.db.api('GET', '/api/2.0/preview/scim/v2/Me', undefined, { token })
  t.equal((await env.state()).users[0]?.status, 'ACTIVE', 'the account reports her ACTIVE now')

  env.resetCalls()
  t.equal((await env.target.materialize(env.request(T.alice))).active, false, 'within the TTL the remembered status is served')
  t.equal(env.dbCalls().total, 0)
  env.clock.advance(10 * 60_000 + 1)
  const later = await env.target.materialize(env.request(T.alice))
  t.equal(later.active, true, 'after the principal TTL: ACTIVE')
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1 }, 'one resolve of the user; the group ids are still known')
  t.same(later.groupIds, first.groupIds)

  // Disabled in Entra: asked again at once, whatever the TTL.
  const disabled = env.request(T.alice)
  disabled.principal.accountEnabled = false
  env.resetCalls()
  await env.target.materialize(disabled)
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1 }, 'an accountEnabled change re-reads the principal')
})

t.test('a changed group set resolves only the new group; a group Entra no longer has is left out', async t => {
  const env = await aimEnv(t)
  await env.target.materialize(env.request(T.alice))
  const fixture = { ...env.fixture, groups: env.fixture.groups.map(g => g.id === T.finance ? { ...g, members: [...(g.members ?? []), T.alice] } : g) }
  const joined = entraRequest(fixture, T.alice)
  env.resetCalls()
  const result = await env.target.materialize(joined)
  t.same(env.dbCalls().routes, { [RESOLVE.group]: 1 }, 'one resolve: Finance')
  const finance = (await env.state()).groups.find(g => g.externalId === T.finance)
  t.equal(result.groupIds.get(T.finance), finance?.id)

  const ghost = 'dead0000-0000-4000-8000-000000000000'
  const withGhost = { ...joined, groups: [...joined.groups, { id: ghost, displayName: 'Deleted meanwhile', securityEnabled: true }] }
  env.resetCalls()
  const partial = await env.target.materialize(withGhost)
  t.equal(partial.groupIds.has(ghost), false, 'the unknown group has no id')
  t.equal(partial.groupIds.size, joined.groups.length, 'the others do')
  t.same(env.dbCalls().routes, { [RESOLVE.group]: 1 })
  env.resetCalls()
  await env.target.materialize(withGhost)
  t.equal(env.dbCalls().total, 0, '"not in the identity provider" is remembered briefly')
})

t.test('50 concurrent materializations of one principal → one user, one resolve each', async t => {
  const env = await aimEnv(t)
  const results = await Promise.all(Array.from({ length: 50 }, async () => await env.target.materialize(env.request(T.alice))))
  t.equal(new Set(results.map(r => r.principalId)).size, 1, 'one id')
  const calls = env.dbCalls().routes
  t.equal(calls[RESOLVE.user], 1, 'single-flight: one resolve of the user')
  t.equal(calls[RESOLVE.pages], 1, 'one page of its groups')
  t.equal(calls[RESOLVE.group], 1, 'one resolve of the group the account did not report')
  const state = await env.state()
  t.equal(state.users.filter(u => u.externalId === T.alice).length, 1, 'exactly one alice')

  // Different principals sharing groups: each reads its own page; no group is resolved twice.
  const fresh = env.aim()
  env.resetCalls()
  await Promise.all([fresh.materialize(env.request(T.alice)), fresh.materialize(env.request(T.bob)), fresh.materialize(env.request(T.etlSp))])
  t.equal(env.dbCalls().routes[RESOLVE.pages], 3, 'one page per principal')
  t.notOk(env.dbCalls().routes[RESOLVE.group], 'no group resolve: the Newsletter, in the account since the first run, is reported too')
  const after = await env.state()
  const externalIds = after.groups.map(g => g.externalId)
  t.equal(new Set(externalIds).size, externalIds.length, 'no duplicate groups')
})

t.test('forget() and clear() during a materialization: its answer is returned, not remembered', async t => {
  const env = await aimEnv(t)
  // Runs `fn` the moment the emulator receives the next call of `route`: before it has answered.
  const onArrival = (route: string, fn: () => void): void => {
    const calls = env.db.ctx.calls
    const count = calls.count.bind(calls)
    calls.count = (r: string) => {
      count(r)
      if (r !== route) return
      calls.count = count
      fn()
    }
  }
  const request = env.request(T.alice)
  onArrival(RESOLVE.user, () => { env.target.forget(T.tenantId, T.alice) })
  const first = await env.target.materialize(request)
  env.resetCalls()
  t.same(await env.target.materialize(request), first, 'the same principal')
  t.equal(env.dbCalls().routes[RESOLVE.user], 1, 'forgotten while it was resolved: resolved again')

  const disabled = { ...request, principal: { ...request.principal, accountEnabled: false } }
  onArrival(RESOLVE.user, () => { env.target.clear() })
  await env.target.materialize(disabled)
  env.resetCalls()
  await env.target.materialize(disabled)
  t.equal(env.dbCalls().routes[RESOLVE.user], 1, 'cleared while it ran: the principal is resolved again')
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1, [RESOLVE.pages]: 1 }, 'and its groups are read again, in one page')
})

t.test('a service principal', async t => {
  const env = await aimEnv(t)
  const request = env.request(T.etlSp)
  const result = await env.target.materialize(request)
  const state = await env.state()
  t.equal(state.users.length, 0)
  t.equal(state.servicePrincipals.length, 1)
  t.match(state.servicePrincipals[0], { id: result.principalId, applicationId: T.etlAppId, externalId: T.etlSp, displayName: 'Nightly ETL' })
  t.equal(result.active, false, 'INACTIVE until it calls the account')
  t.same(env.dbCalls().routes[RESOLVE.sp], 1, 'resolved as a service principal')
  t.same([...result.groupIds.keys()].sort(), request.groups.map(g => g.id).sort())
  for (const [entraId, id] of result.groupIds) t.equal(state.groups.find(g => g.id === id)?.externalId, entraId)
})

t.test('the first SDKs\' camelCase paths work the same', async t => {
  const env = await aimEnv(t)
  const camel = env.aim({ pathStyle: 'camel' })
  const sp = await camel.materialize(env.request(T.etlSp))
  const user = await camel.materialize(env.request(T.alice))
  const routes = env.dbCalls().routes
  t.equal(routes['POST /api/2.0/identity/accounts/:accountId/servicePrincipals/resolveByExternalId'], 1)
  t.equal(routes['POST /api/2.0/identity/accounts/:accountId/users/resolveByExternalId'], 1)
  t.notOk(routes[RESOLVE.user], 'no kebab-case call')
  // The kebab-case adapter finds the same principals.
  const kebab = env.aim()
  t.equal((await kebab.materialize(env.request(T.etlSp))).principalId, sp.principalId)
  t.same(await kebab.materialize(env.request(T.alice)), user)
  t.equal((await env.state()).users.length, 1)
})

t.test('both response generations are read', async t => {
  t.same(parseResolved('user', { user: { user_id: '1234567890123456', internal_id: 1234567890123456, account_user_status: 'ACTIVE' } }), { id: '1234567890123456', status: 'ACTIVE' })
  t.same(parseResolved('user', { user: { internal_id: 42, account_user_status: 'INACTIVE', external_id: 'x' } }), { id: '42', status: 'INACTIVE', externalId: 'x' }, 'internal_id as a number')
  t.same(parseResolved('group', { group: { internal_id: '77' } }), { id: '77' }, 'internal_id as a string')
  t.same(parseResolved('servicePrincipal', { service_principal: { service_principal_id: '9', account_sp_status: 'ACTIVE' } }), { id: '9', status: 'ACTIVE' })
  t.throws(() => parseResolved('user', { group: { group_id: '1' } }), TypeError, 'the wrong wrapper')
  t.throws(() => parseResolved('user', { user: { internal_id: 2 ** 60 } }), TypeError, 'an int64 past 2^53 is not silently rounded')
})

t.test('AIM disabled → a configuration error naming DATABRICKS_MODE=scim', async t => {
  const env = await aimEnv(t)
  await env.db.control('PUT', '/settings', { aimEnabled: false })
  const err = await env.target.materialize(env.request(T.alice)).catch((e: unknown) => e)
  t.type(err, AimDisabledError)
  t.type(err, TargetConfigurationError, 'a TargetConfigurationError (the operator must act)')
  t.equal((err as AimDisabledError).code, 'TARGET_MISCONFIGURED')
  t.equal((err as AimDisabledError).reason, 'AIM_DISABLED')
  t.match((err as Error).message, /DATABRICKS_MODE=scim/)
  t.match((err as Error).message, /enable automatic identity management/)
  t.equal((await env.state()).users.length, 0, 'nothing was created')
  // Enabled again: works without a restart.
  await env.db.control('PUT', '/settings', { aimEnabled: true })
  const result = await env.target.materialize(env.request(T.alice))
  t.equal((await env.state()).users[0]?.id, result.principalId)
})

t.test('a 429 storm: completes once it passes, with bounded calls', async t => {
  const env = await aimEnv(t)
  env.db.ctx.faults.add({ route: '/api/2.0/identity/accounts/*/groups/resolve-by-external-id', method: 'POST', status: 429, retryAfter: 0.25, times: 3 })
  const started = Date.now()
  const result = await env.target.materialize(env.request(T.alice))
  t.ok(Date.now() - started >= 250, 'Retry-After honoured (a fractional one: short, as waits in tests should be)')
  t.equal(result.groupIds.size, 4)
  t.equal(env.dbCalls().routes[RESOLVE.group], 1 + 3, 'one resolve (the Newsletter) plus three refused ones')

  // A storm longer than the retries: a typed, throttled error, no loop; afterwards it completes.
  env.db.ctx.faults.add({ route: '/api/2.0/identity/*', status: 429, retryAfter: 0.05 })
  env.resetCalls()
  const cold = env.aim()
  const err = await cold.materialize(env.request(T.bob)).catch((e: unknown) => e)
  t.type(err, TargetUnavailableError)
  t.equal((err as TargetUnavailableError).throttled, true)
  t.ok((err as TargetUnavailableError).retryAfterSeconds !== undefined, 'retryAfterSeconds for the caller\'s 503')
  const refused = env.dbCalls().total
  t.ok(refused > 0 && refused <= 4 * 8, `bounded: ${refused} calls`)
  env.db.ctx.faults.remove()
  const bob = await cold.materialize(env.request(T.bob))
  t.equal((await env.state()).users.find(u => u.externalId === T.bob)?.id, bob.principalId)
})

t.test('principalName: the account\'s username or application id, kept on the warm path', async t => {
  const env = await aimEnv(t)
  const alice = await env.target.materialize(env.request(T.alice))
  t.equal(alice.principalName, 'alice@contoso-test.onmicrosoft.com')
  const etl = await env.target.materialize(env.request(T.etlSp))
  t.equal(etl.principalName, T.etlAppId)
  env.resetCalls()
  t.equal((await env.target.materialize(env.request(T.alice))).principalName, 'alice@contoso-test.onmicrosoft.com')
  t.equal((await env.target.materialize(env.request(T.etlSp))).principalName, T.etlAppId)
  t.equal(env.dbCalls().total, 0, 'warm: no call')
  t.match(parseResolved('user', { user: { user_id: '1', username: 'x@y' } }), { id: '1', name: 'x@y' })
  t.match(parseResolved('group', { group: { group_id: '2', group_name: 'G (1)' } }), { id: '2', name: 'G (1)' })
  t.match(parseResolved('servicePrincipal', { service_principal: { service_principal_id: '3', application_id: 'app' } }), { id: '3', name: 'app' })
})

t.test('materializeGroup: resolved by external id, named as the account names it, cached', async t => {
  const env = await aimEnv(t)
  const made = await env.target.materializeGroup(T.tenantId, { id: T.finance, displayName: 'Finance', securityEnabled: true })
  const state = await env.state()
  t.match(state.groups.find(g => g.id === made.groupId), { displayName: 'Finance', externalId: T.finance })
  t.equal(made.name, 'Finance')
  t.same(env.dbCalls().routes, { [RESOLVE.group]: 1 })
  env.resetCalls()
  t.same(await env.target.materializeGroup(T.tenantId, { id: T.finance, displayName: 'Finance', securityEnabled: true }), made)
  const bob = await env.target.materialize(env.request(T.bob))
  t.equal(bob.groupIds.get(T.finance), made.groupId, 'a member\'s materialization shares the group')
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1, [RESOLVE.pages]: 1 }, 'bob\'s other groups came from one page: no group resolve')

  // Concurrent calls share one resolve.
  env.resetCalls()
  const fresh = env.aim()
  const all = await Promise.all(Array.from({ length: 10 }, async () => await fresh.materializeGroup(T.tenantId, { id: T.engineering, displayName: 'Engineering', securityEnabled: true })))
  t.equal(new Set(all.map(g => g.groupId)).size, 1)
  t.same(env.dbCalls().routes, { [RESOLVE.group]: 1 })

  // A group the identity provider does not know.
  const err = await fresh.materializeGroup(T.tenantId, { id: 'dead0000-0000-4000-8000-000000000000', displayName: 'Gone', securityEnabled: true }).catch((e: unknown) => e)
  t.type(err, DatabricksNotFoundError)
  t.match((err as Error).message, /does not know Entra group dead0000-0000-4000-8000-000000000000 \(Gone\)/)
})

t.test('materializeGroup: a second Entra group with a taken name gets the account\'s disambiguated name', async t => {
  const env = await aimEnv(t)
  // Another Entra group already holds the name "Finance" in the account.
  const other = await env.db.api('POST', `/api/2.0/accounts/${DEFAULT_ACCOUNT_ID}/scim/v2/Groups`, { displayName: 'Finance', externalId: 'dffff000-0000-4000-8000-000000000000' })
  t.equal(other.status, 201)
  const made = await env.target.materializeGroup(T.tenantId, { id: T.finance, displayName: 'Finance', securityEnabled: true })
  t.not(made.groupId, other.body.id)
  t.equal(made.name, `Finance (${T.finance})`, 'the name from the response, not Entra\'s')
})
