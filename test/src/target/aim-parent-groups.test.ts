// DatabricksAimTarget and the identity API's own group resolution (issue 13): a cold principal is resolved,
// then its transitive parent groups are read from the account a page at a time instead of resolving each
// group; groups the account does not report are resolved one by one; groups it reports that Entra does not
// list for the principal are never credited. Against the Databricks emulator over HTTPS, AIM on.
import t from 'tap'
import { aimEnv, DEFAULT_ACCOUNT_ID, T } from '../../helpers/target-aim.ts'
import { smallTenant } from '../../helpers/target.ts'
import type { GroupFixture, TenantFixture } from '../../../emulators/tenant/model.ts'
import type { DatabricksClient } from '../../../src/target/databricks-client.ts'
import { parseParentGroupsPage } from '../../../src/target/aim.ts'
import { TargetUnavailableError } from '../../../src/target/port.ts'

const IDENTITY = '/api/2.0/identity/accounts/:accountId'
const RESOLVE = {
  user: `POST ${IDENTITY}/users/resolve-by-external-id`,
  group: `POST ${IDENTITY}/groups/resolve-by-external-id`
}
const PAGES = `GET ${IDENTITY}/principals/:principalId/transitive-parent-groups`
const PAGES_CAMEL = `GET ${IDENTITY}/principals/:principalId/transitiveParentGroups`

const many = 'a0000000-0000-4000-8000-0000000000f1'
const other = 'a0000000-0000-4000-8000-0000000000f2'
const gid = (i: number): string => `e0000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`

/**
 * The small tenant plus `many`, in `n` security groups (even ones directly, each odd one holding the even
 * one before it), and `other`, directly in the first `shared` even groups.
 */
function manyGroups (n: number, shared = 0): TenantFixture {
  const base = smallTenant()
  const groups: GroupFixture[] = Array.from({ length: n }, (_, i) => ({
    id: gid(i + 1),
    displayName: `Many ${i + 1}`,
    members: i % 2 === 1 ? [gid(i)] : [many, ...(i < shared * 2 ? [other] : [])]
  }))
  return {
    ...base,
    users: [...base.users, { id: many, userPrincipalName: 'many@contoso-test.onmicrosoft.com', displayName: 'In Many Groups' }, { id: other, userPrincipalName: 'other@contoso-test.onmicrosoft.com', displayName: 'Other' }],
    groups: [...base.groups, ...groups]
  }
}

/** The client with its identity calls rewritten on the way out and their answers on the way back. */
function shim (client: DatabricksClient, how: { path?: (path: string) => string, json?: (path: string, json: unknown) => unknown }): DatabricksClient {
  const wrapped = Object.create(client) as DatabricksClient
  wrapped.identity = async (method, path, request) => {
    const res = await client.identity(method, how.path?.(path) ?? path, request)
    return how.json === undefined ? res : { ...res, json: how.json(path, res.json) as any }
  }
  return wrapped
}

t.test('a cold user in 2,500 groups: 1 resolve + 3 pages, no group resolve; its groups serve other principals', async t => {
  const env = await aimEnv(t, { tenant: manyGroups(2500, 300) })
  const request = env.request(many)
  t.equal(request.groups.length, 2500)
  const result = await env.target.materialize(request)
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1, [PAGES]: Math.ceil(2500 / 1000) }, 'one resolve, ⌈2500 / 1000⌉ pages, nothing else')
  const state = await env.state()
  const byExternal = new Map(state.groups.map(g => [g.externalId, g.id]))
  t.equal(result.groupIds.size, 2500, 'every group of the request has an id')
  t.ok(request.groups.every(g => result.groupIds.get(g.id) === byExternal.get(g.id)), 'each the account\'s id of that Entra group')
  t.same([...result.groupIds.keys()], request.groups.map(g => g.id), 'in the request\'s order')
  t.equal(result.principalId, state.users.find(u => u.externalId === many)?.id)

  env.resetCalls()
  t.same(await env.target.materialize(env.request(many)), result)
  t.equal(env.dbCalls().total, 0, 'warm: no call')

  // Another user in 600 of those groups: only itself is resolved, its groups are known from the pages.
  const second = await env.target.materialize(env.request(other))
  t.equal(second.groupIds.size, 600)
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1 }, 'the pages filled the group cache for every principal')
})

t.test('groups the account does not report are resolved one by one; a few unknown groups are resolved without a page', async t => {
  const env = await aimEnv(t)
  const request = env.request(T.alice)
  const result = await env.target.materialize(request)
  // The account learns alice's security groups from Entra; the Newsletter (a distribution list) it does not.
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1, [PAGES]: 1, [RESOLVE.group]: 1 }, 'the Newsletter is resolved alone')
  const state = await env.state()
  t.equal(result.groupIds.size, 4)
  for (const g of request.groups) t.equal(result.groupIds.get(g.id), state.groups.find(x => x.externalId === g.id)?.id, `${g.displayName}`)

  // A warm principal with one new group: one resolve beats a page.
  const withFinance = { ...request, groups: [...request.groups, { id: T.finance, displayName: 'Finance', securityEnabled: true }] }
  env.resetCalls()
  const more = await env.target.materialize(withFinance)
  t.same(env.dbCalls().routes, { [RESOLVE.group]: 1 }, 'one group resolve, no page')
  t.ok(more.groupIds.has(T.finance))
})

t.test('a group the account reports that the request does not hold is not credited', async t => {
  const env = await aimEnv(t)
  // Someone made alice a member of the account group linked to Finance, in Databricks only (INTERNAL).
  const finance = await env.db.api('POST', `/api/2.0/identity/accounts/${DEFAULT_ACCOUNT_ID}/groups/resolve-by-external-id`, { external_id: T.finance })
  const aliceRes = await env.db.api('POST', `/api/2.0/identity/accounts/${DEFAULT_ACCOUNT_ID}/users/resolve-by-external-id`, { external_id: T.alice })
  const financeId = finance.body.group.group_id as string
  const added = await env.db.api('POST', `/api/2.0/identity/accounts/${DEFAULT_ACCOUNT_ID}/groups/${financeId}/direct-members`, { principal_id: aliceRes.body.user.user_id })
  t.equal(added.status, 200)
  const page = await env.db.api('GET', `/api/2.0/identity/accounts/${DEFAULT_ACCOUNT_ID}/principals/${aliceRes.body.user.user_id as string}/transitive-parent-groups`)
  t.ok((page.body.transitive_parent_groups as Array<{ external_id: string }>).some(g => g.external_id === T.finance), 'the account reports Finance for alice')

  // Entra says alice is in Data Platform, Engineering and the Newsletter; All Staff is left out too (as a
  // group filter would), though the account reports it.
  const request = env.request(T.alice)
  const filtered = { ...request, groups: request.groups.filter(g => g.id !== T.allStaff) }
  env.resetCalls()
  const result = await env.target.materialize(filtered)
  t.same([...result.groupIds.keys()].sort(), filtered.groups.map(g => g.id).sort(), 'exactly the request\'s groups')
  t.notOk(result.groupIds.has(T.finance), 'Finance: reported by the account, not in Entra: not credited')
  t.notOk(result.groupIds.has(T.allStaff), 'All Staff: reported, not in the request: not credited')
  t.notOk([...result.groupIds.values()].includes(financeId), 'not under any Entra id either')
  t.equal(env.dbCalls().routes[RESOLVE.group], 1, 'only the Newsletter is resolved')
})

t.test('paging follows page_token to the end, and stops once every unknown group is found', async t => {
  const env = await aimEnv(t)
  const small = env.aim({ parentGroupsPageSize: 2 })
  // alice: the account reports Data Platform, Engineering, All Staff (two pages of 2).
  const result = await small.materialize(env.request(T.alice))
  t.equal(env.dbCalls().routes[PAGES], 2, 'both pages')
  t.equal(env.dbCalls().routes[RESOLVE.group], 1, 'only the Newsletter resolved: All Staff came from the second page')
  t.equal(result.groupIds.size, 4)

  // Only Data Platform and Engineering wanted (the first page, breadth first): the second page is not read.
  const request = env.request(T.etlSp)
  const wanted = { ...request, groups: request.groups.filter(g => g.id !== T.allStaff) }
  env.resetCalls()
  const etl = await env.aim({ parentGroupsPageSize: 2 }).materialize(wanted)
  t.same(env.dbCalls().routes, { 'POST /api/2.0/identity/accounts/:accountId/service-principals/resolve-by-external-id': 1, [PAGES]: 1 })
  t.same([...etl.groupIds.keys()].sort(), [T.dataPlatform, T.engineering].sort())
})

t.test('the first SDKs\' camelCase path: transitiveParentGroups', async t => {
  const env = await aimEnv(t, { tenant: manyGroups(1200) })
  const camel = env.aim({ pathStyle: 'camel' })
  const result = await camel.materialize(env.request(many))
  t.same(env.dbCalls().routes, { [`POST ${IDENTITY}/users/resolveByExternalId`]: 1, [PAGES_CAMEL]: 2 }, 'camelCase only')
  t.equal(result.groupIds.size, 1200)
})

t.test('a throttled page is retried (Retry-After honoured); a storm past the retries fails typed', async t => {
  const env = await aimEnv(t, { tenant: manyGroups(1500) })
  env.db.ctx.faults.add({ route: '/api/2.0/identity/accounts/*/principals/*/transitive-parent-groups', method: 'GET', status: 429, retryAfter: 0.2, times: 2, skip: 1 })
  const started = Date.now()
  const result = await env.target.materialize(env.request(many))
  t.ok(Date.now() - started >= 400, 'two waits of 0.2 s')
  t.equal(result.groupIds.size, 1500)
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1, [PAGES]: 2 + 2 }, 'two pages plus the two refused attempts of the second, no group resolve')

  // A storm longer than the retries: a typed, throttled error (the caller's 503), not a loop, and no
  // resolve of each group behind it.
  env.db.ctx.faults.add({ route: '/api/2.0/identity/accounts/*/principals/*/transitive-parent-groups', method: 'GET', status: 429, retryAfter: 0.05 })
  env.resetCalls()
  const err = await env.aim().materialize(env.request(many)).catch((e: unknown) => e)
  t.type(err, TargetUnavailableError)
  t.equal((err as TargetUnavailableError).throttled, true)
  const routes = env.dbCalls().routes
  t.ok((routes[PAGES] ?? 0) > 1 && (routes[PAGES] ?? 0) <= 8, `bounded: ${routes[PAGES] ?? 0} attempts`)
  t.notOk(routes[RESOLVE.group], 'no group resolved one by one')
})

t.test('a page the account answers 404 (a stale principal id): the groups are resolved one by one, the principal again next time', async t => {
  const env = await aimEnv(t)
  env.db.ctx.faults.add({ route: '/api/2.0/identity/accounts/*/principals/*/transitive-parent-groups', method: 'GET', status: 404, times: 1 })
  const request = env.request(T.alice)
  const result = await env.target.materialize(request)
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1, [PAGES]: 1, [RESOLVE.group]: 4 })
  t.equal(result.groupIds.size, 4, 'still every group')
  env.resetCalls()
  await env.target.materialize(request)
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1 }, 'the principal is resolved again; the groups are known')
})

t.test('an account without transitive-parent-groups: resolves each group, and never asks again', async t => {
  const env = await aimEnv(t)
  // The emulator's own "No API found" for a path it does not serve.
  const client = shim(env.client, { path: p => p.replace('/transitive-parent-groups', '/transitive-parent-groupz') })
  const target = env.aim({ client })
  const alice = await target.materialize(env.request(T.alice))
  const routes = env.dbCalls().routes
  const missing = (r: Record<string, number>): number => Object.entries(r).filter(([route]) => route.includes('/transitive-parent-groupz')).reduce((n, [, c]) => n + c, 0)
  t.equal(missing(routes), 1, 'asked once: 404 ENDPOINT_NOT_FOUND')
  t.equal(routes[RESOLVE.group], 4, 'then each group resolved')
  t.equal(alice.groupIds.size, 4)
  t.equal(target.pathStyle, 'kebab', 'the resolves keep their spelling')

  // Each shared group is resolved once across principals, single-flight.
  env.resetCalls()
  await Promise.all([target.materialize(env.request(T.bob)), target.materialize(env.request(T.etlSp)), target.materialize(env.request(T.guest))])
  t.equal(missing(env.dbCalls().routes), 0, 'no page asked for again')
  t.equal(env.dbCalls().routes[RESOLVE.group], 1, 'Finance, once for bob and the guest; the others were known')
})

t.test('a page the account refuses (400): the groups are resolved one by one, and no page is asked for again', async t => {
  const env = await aimEnv(t)
  env.db.ctx.faults.add({ route: '/api/2.0/identity/accounts/*/principals/*/transitive-parent-groups', method: 'GET', status: 400 })
  const result = await env.target.materialize(env.request(T.alice))
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1, [PAGES]: 1, [RESOLVE.group]: 4 })
  t.equal(result.groupIds.size, 4, 'the login does not fail for it')
  env.resetCalls()
  await env.target.materialize(env.request(T.bob))
  t.notOk(env.dbCalls().routes[PAGES], 'not asked again')
})

t.test('materializeGroup after a page without names: resolved once for the account\'s name', async t => {
  const env = await aimEnv(t)
  const client = shim(env.client, {
    json: (path, json) => {
      if (!path.includes('transitive-parent-groups')) return json
      const body = json as { transitive_parent_groups?: Array<Record<string, unknown>> }
      return { ...body, transitive_parent_groups: body.transitive_parent_groups?.map(({ group_name: _n, ...g }) => g) }
    }
  })
  const target = env.aim({ client })
  await target.materialize(env.request(T.bob))
  env.resetCalls()
  const made = await target.materializeGroup(T.tenantId, { id: T.engineering, displayName: 'Engineering (Entra)', securityEnabled: true })
  t.equal(made.name, 'Engineering', 'the account\'s name, not Entra\'s')
  t.same(env.dbCalls().routes, { [RESOLVE.group]: 1 })
  env.resetCalls()
  await target.materializeGroup(T.tenantId, { id: T.engineering, displayName: 'Engineering', securityEnabled: true })
  t.equal(env.dbCalls().total, 0, 'then known')
})

t.test('clear() while a page is read: its answer is returned, not remembered', async t => {
  const env = await aimEnv(t)
  const calls = env.db.ctx.calls
  const count = calls.count.bind(calls)
  calls.count = (r: string) => {
    count(r)
    if (r !== PAGES) return
    calls.count = count
    env.target.clear()
  }
  const request = env.request(T.bob)
  const first = await env.target.materialize(request)
  t.equal(first.groupIds.size, 3)
  env.resetCalls()
  t.same(await env.target.materialize(request), first)
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1, [PAGES]: 1 }, 'the principal and its groups are read again')
})

t.test('parseParentGroupsPage: both id generations, entries without an Entra id skipped, no list = empty', async t => {
  t.same(parseParentGroupsPage({
    transitive_parent_groups: [
      { account_id: 'a', group_id: '12', external_id: 'E1' },
      { account_id: 'a', internal_id: 13, external_id: 'e2', group_name: 'G2' },
      { account_id: 'a', group_id: '14' },
      { external_id: 'e4' },
      'junk'
    ],
    next_page_token: 'tok'
  }), { groups: [{ id: '12', externalId: 'E1' }, { id: '13', externalId: 'e2', name: 'G2' }], next: 'tok' })
  t.same(parseParentGroupsPage({ next_page_token: '' }), { groups: [] }, 'an empty token ends the pages')
  t.same(parseParentGroupsPage({}), { groups: [] })
  t.throws(() => parseParentGroupsPage('x'), TypeError)
})
