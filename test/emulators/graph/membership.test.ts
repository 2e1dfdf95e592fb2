// Membership reads: transitiveMemberOf paging (default 100, $top, Prefer: odata.maxpagesize, nextLink
// keeping $select, tampered tokens, stability under concurrent changes), deep nesting and cycles,
// service principals, casts, $count, getMemberGroups / getMemberObjects (11,000 cap) and
// checkMemberGroups / checkMemberObjects (20 ids).
import t from 'tap'
import type { GroupFixture, TenantFixture } from '../../../emulators/tenant/model.ts'
import { type GraphResponse, T, assertGraphError, graphToken, guids, smallTenant, startGraph } from '../../helpers/graph.ts'

const PAGER = 'a0000000-0000-4000-8000-0000000000a1'
const DEEP = 'a0000000-0000-4000-8000-0000000000a2'
const LOOPY = 'a0000000-0000-4000-8000-0000000000a3'
const pagerGroups = guids('e1', 250)
const chain = guids('e2', 10)
const cycle = guids('e3', 3)

const tenant = smallTenant()
tenant.users.push(
  { id: PAGER, userPrincipalName: 'pager@contoso-test.onmicrosoft.com', displayName: 'Pat Pager' },
  { id: DEEP, userPrincipalName: 'deep@contoso-test.onmicrosoft.com', displayName: 'Dee Deep' },
  { id: LOOPY, userPrincipalName: 'loopy@contoso-test.onmicrosoft.com', displayName: 'Lou Loopy' }
)
tenant.groups.push(...pagerGroups.map((id, i): GroupFixture => ({ id, displayName: `Pager group ${String(i).padStart(3, '0')}`, members: [PAGER] })))
// chain[0] ∋ chain[1] ∋ … ∋ chain[9] ∋ DEEP: ten levels of nesting.
tenant.groups.push(...chain.map((id, i): GroupFixture => ({ id, displayName: `Level ${i}`, members: [i === 9 ? DEEP : chain[i + 1] as string] })))
// cycle[0] ∋ cycle[1] ∋ cycle[2] ∋ cycle[0], and LOOPY in cycle[2].
tenant.groups.push(...cycle.map((id, i): GroupFixture => ({ id, displayName: `Cycle ${i}`, members: i === 2 ? [cycle[0] as string, LOOPY] : [cycle[i + 1] as string] })))

// A second tenant for the getMemberGroups cap: one user in 11,001 groups, another in 11,000.
const BIG_TENANT = '33333333-3333-4333-8333-333333333333'
const OVER = 'f0000000-0000-4000-8000-000000000001'
const AT_CAP = 'f0000000-0000-4000-8000-000000000002'
const bigGroups = guids('e4', 11_001)
const big: TenantFixture = {
  tenantId: BIG_TENANT,
  domain: 'big-test.onmicrosoft.com',
  users: [
    { id: OVER, userPrincipalName: 'over@big-test.onmicrosoft.com', displayName: 'Over' },
    { id: AT_CAP, userPrincipalName: 'cap@big-test.onmicrosoft.com', displayName: 'Cap' }
  ],
  servicePrincipals: [],
  groups: bigGroups.map((id, i) => ({ id, displayName: `Big ${i}`, members: i === 0 ? [OVER] : [OVER, AT_CAP] })),
  applications: [{ appId: T.resolverAppId, displayName: 'jit-identity-resolver', roles: ['User.Read.All', 'GroupMember.Read.All'] }]
}

const env = await startGraph(t, [tenant, big])
const { call, origin } = env

interface Page { '@odata.context': string, '@odata.nextLink'?: string, value: Array<Record<string, unknown>> }

async function allPages (first: string, headers: Record<string, string> = {}): Promise<Page[]> {
  const pages: Page[] = []
  let url: string | undefined = first
  while (url !== undefined) {
    const res: GraphResponse<Page> = await call<Page>(url, { headers })
    if (res.status !== 200) throw new Error(`${url} → ${res.status} ${res.text}`)
    pages.push(res.body)
    url = res.body['@odata.nextLink']
  }
  return pages
}

const idsOf = (pages: Page[]): string[] => pages.flatMap(p => p.value.map(v => v.id as string))

t.test('transitiveMemberOf pages 100 at a time by default, nextLink absolute, last page without one', async t => {
  const pages = await allPages(`/v1.0/users/${PAGER}/transitiveMemberOf`)
  t.same(pages.map(p => p.value.length), [100, 100, 50])
  const first = pages[0] as Page
  t.equal(first['@odata.context'], `${origin}/v1.0/$metadata#directoryObjects`)
  t.match(first['@odata.nextLink'], new RegExp(`^${origin.replace(/[.]/g, '\\.')}/v1\\.0/users/${PAGER}/transitiveMemberOf\\?\\$skiptoken=[A-Za-z0-9_.-]+$`))
  t.notOk('@odata.nextLink' in (pages[2] as Page), 'the last page has no nextLink')
  const ids = idsOf(pages)
  t.equal(new Set(ids).size, 250, 'every group exactly once')
  t.same([...ids].sort(), [...pagerGroups].sort())
  t.ok(first.value.every(v => v['@odata.type'] === '#microsoft.graph.group'), 'polymorphic items carry @odata.type')
  t.ok('securityEnabled' in (first.value[0] as object), 'groups in their default property set')
})

t.test('$top sets the page size and nextLink keeps $select and $top', async t => {
  const pages = await allPages(`/v1.0/users/${PAGER}/transitiveMemberOf?$select=id,displayName&$top=7`)
  t.equal(pages.length, Math.ceil(250 / 7))
  t.ok(pages.every(p => p.value.length <= 7))
  t.equal(new Set(idsOf(pages)).size, 250)
  const next = new URL((pages[0] as Page)['@odata.nextLink'] as string)
  t.equal(next.searchParams.get('$select'), 'id,displayName')
  t.equal(next.searchParams.get('$top'), '7')
  t.ok(pages.every(p => p.value.every(v => Object.keys(v).join() === '@odata.type,id,displayName')), 'only the selected properties on every page')
  t.ok(pages.every(p => p['@odata.context'] === `${origin}/v1.0/$metadata#directoryObjects(id,displayName)`))

  const one = await allPages(`/v1.0/users/${PAGER}/transitiveMemberOf?$top=999&$select=id`)
  t.equal(one.length, 1)
  t.equal((one[0] as Page).value.length, 250)
})

t.test('Prefer: odata.maxpagesize sets the page size', async t => {
  const res = await call<Page>(`/v1.0/users/${PAGER}/transitiveMemberOf?$select=id`, { headers: { Prefer: 'odata.maxpagesize=60' } })
  t.equal(res.body.value.length, 60)
  t.equal(res.headers.get('preference-applied'), 'odata.maxpagesize=60')
  const pages = await allPages(`/v1.0/users/${PAGER}/transitiveMemberOf?$select=id`, { Prefer: 'odata.maxpagesize=60' })
  t.same(pages.map(p => p.value.length), [60, 60, 60, 60, 10])
  t.equal(new Set(idsOf(pages)).size, 250)
})

t.test('tampered or foreign page tokens are refused with 400', async t => {
  const res = await call<Page>(`/v1.0/users/${PAGER}/transitiveMemberOf?$select=id`)
  const next = new URL(res.body['@odata.nextLink'] as string)
  const token = next.searchParams.get('$skiptoken') as string
  const [body, mac] = token.split('.') as [string, string]
  const cursor = JSON.parse(Buffer.from(body, 'base64url').toString())
  cursor.k = ['00000000-0000-0000-0000-000000000000']
  const forged = `${Buffer.from(JSON.stringify(cursor)).toString('base64url')}.${mac}`
  for (const bad of [forged, token.slice(0, -2) + (token.endsWith('A') ? 'BB' : 'AA'), 'garbage', '']) {
    if (bad === '') continue
    const r = await call(`/v1.0/users/${PAGER}/transitiveMemberOf?$select=id&$skiptoken=${encodeURIComponent(bad)}`)
    assertGraphError(t, r, 400, 'Directory_ExpiredPageToken')
  }
  // A token from one collection does not page another.
  const other = await call(`/v1.0/users/${PAGER}/memberOf?$skiptoken=${encodeURIComponent(token)}`)
  assertGraphError(t, other, 400, 'Directory_ExpiredPageToken')
})

t.test('pages neither repeat nor skip items when the membership changes between pages', async t => {
  const directory = env.ctx.tenants.get(T.tenantId)
  if (directory === undefined) throw new Error('tenant')
  const first = await call<Page>(`/v1.0/users/${PAGER}/memberOf?$select=id&$top=100`)
  const seen = first.body.value.map(v => v.id as string)
  // Leave a group already served and join a new one that sorts before the cursor.
  directory.removeMember(seen[0] as string, PAGER)
  const early = 'e0ffffff-0000-4000-8000-000000000000'
  directory.addGroup({ id: early, displayName: 'Joined mid-listing', members: [PAGER] })
  const rest = await allPages(first.body['@odata.nextLink'] as string)
  const restIds = idsOf(rest)
  t.equal(restIds.length, 150)
  t.notOk(restIds.some(id => seen.includes(id)), 'no repeats')
  t.same([...seen, ...restIds].sort(), [...pagerGroups].sort(), 'no skips')
  directory.delete(early)
  directory.addMember(seen[0] as string, PAGER)
})

t.test('ten levels of nesting and a cycle terminate, each group listed once', async t => {
  const deep = idsOf(await allPages(`/v1.0/users/${DEEP}/transitiveMemberOf?$select=id`))
  t.same(deep.sort(), [...chain].sort())
  const direct = idsOf(await allPages(`/v1.0/users/${DEEP}/memberOf?$select=id`))
  t.same(direct, [chain[9]], 'memberOf is direct membership only')

  const loopy = idsOf(await allPages(`/v1.0/users/${LOOPY}/transitiveMemberOf?$select=id`))
  t.same(loopy.sort(), [...cycle].sort())
  const members = idsOf(await allPages(`/v1.0/groups/${cycle[0] as string}/transitiveMembers?$select=id`))
  t.equal(new Set(members).size, members.length, 'no duplicates')
  t.same(members.sort(), [cycle[1], cycle[2], LOOPY].sort())
  const groupParents = idsOf(await allPages(`/v1.0/groups/${chain[5] as string}/transitiveMemberOf?$select=id`))
  t.same(groupParents.sort(), chain.slice(0, 5).sort())
})

t.test('service principals: transitiveMemberOf by id and by appId', async t => {
  const byId = idsOf(await allPages(`/v1.0/servicePrincipals/${T.etlSp}/transitiveMemberOf?$select=id`))
  t.same(byId.sort(), [T.dataPlatform, T.engineering, T.allStaff].sort())
  const byAppId = idsOf(await allPages(`/v1.0/servicePrincipals(appId='${T.etlAppId}')/transitiveMemberOf/microsoft.graph.group?$select=id,displayName`))
  t.same(byAppId.sort(), byId.sort())
  const direct = await call<Page>(`/v1.0/servicePrincipals/${T.etlSp}/memberOf`)
  t.same(direct.body.value.map(v => v.id), [T.dataPlatform])
  t.equal(direct.headers.get('x-ms-resource-unit'), '2')
})

t.test('OData casts filter by type and set the context', async t => {
  const members = async (path: string): Promise<Page> => (await call<Page>(`/v1.0/groups/${T.allStaff}/${path}`)).body
  const users = await members('transitiveMembers/microsoft.graph.user?$select=id')
  t.equal(users['@odata.context'], `${origin}/v1.0/$metadata#users(id)`)
  t.same(users.value.map(v => v.id).sort(), [T.alice, T.bob, T.guest].sort())
  t.ok(users.value.every(v => v['@odata.type'] === '#microsoft.graph.user'))
  const groups = await members('transitiveMembers/microsoft.graph.group')
  t.equal(groups['@odata.context'], `${origin}/v1.0/$metadata#groups`)
  t.same(groups.value.map(v => v.id).sort(), [T.engineering, T.finance, T.dataPlatform].sort())
  const sps = await members('transitiveMembers/microsoft.graph.servicePrincipal?$select=appId')
  t.same(sps.value, [{ '@odata.type': '#microsoft.graph.servicePrincipal', appId: T.etlAppId }])
  const direct = await members('members?$select=id')
  t.same(direct.value.map(v => v.id).sort(), [T.engineering, T.finance].sort())
  const directUsers = await members('members/microsoft.graph.user')
  t.same(directUsers.value, [])
  const roles = await call<Page>(`/v1.0/users/${T.alice}/transitiveMemberOf/microsoft.graph.directoryRole`)
  t.equal(roles.status, 200)
  t.same(roles.body.value, [])
  t.equal(roles.body['@odata.context'], `${origin}/v1.0/$metadata#directoryRoles`)

  assertGraphError(t, await call(`/v1.0/users/${T.alice}/transitiveMemberOf/microsoft.graph.printer`), 400, 'BadRequest', 'Resource not found for the segment \'microsoft.graph.printer\'.')
  const wrongSelect = await call(`/v1.0/users/${T.alice}/transitiveMemberOf/microsoft.graph.group?$select=userPrincipalName`)
  assertGraphError(t, wrongSelect, 400, 'Request_BadRequest', 'Parsing OData Select and Expand failed: Could not find a property named \'userPrincipalName\' on type \'microsoft.graph.group\'.')
  const badSelect = await call(`/v1.0/users/${T.alice}/transitiveMemberOf?$select=nope`)
  assertGraphError(t, badSelect, 400, 'Request_BadRequest', 'Parsing OData Select and Expand failed: Could not find a property named \'nope\' on type \'microsoft.graph.directoryObject\'.')
})

t.test('$count on relationships', async t => {
  const eventual = { ConsistencyLevel: 'eventual' }
  assertGraphError(t, await call(`/v1.0/users/${PAGER}/transitiveMemberOf/$count`), 400, 'Request_BadRequest', '$count is not currently supported.')
  assertGraphError(t, await call(`/v1.0/users/${PAGER}/transitiveMemberOf/microsoft.graph.group/$count`), 400, 'Request_BadRequest', '$count is not currently supported.')
  const count = await call(`/v1.0/users/${PAGER}/transitiveMemberOf/$count`, { headers: eventual })
  t.equal(count.status, 200)
  t.match(count.headers.get('content-type'), /^text\/plain/)
  t.equal(count.text, '250')
  t.equal((await call(`/v1.0/users/${PAGER}/transitiveMemberOf/microsoft.graph.group/$count`, { headers: eventual })).text, '250')
  t.equal((await call(`/v1.0/groups/${T.allStaff}/transitiveMembers/microsoft.graph.user/$count`, { headers: eventual })).text, '3')
  t.equal((await call(`/v1.0/groups/${T.allStaff}/members/$count`, { headers: eventual })).text, '2')

  const noHeader = await call<Page & { '@odata.count'?: number }>(`/v1.0/users/${PAGER}/transitiveMemberOf?$count=true&$select=id`)
  t.equal(noHeader.status, 200)
  t.notOk('@odata.count' in noHeader.body)
  const counted = await call<Page & { '@odata.count'?: number }>(`/v1.0/users/${PAGER}/transitiveMemberOf/microsoft.graph.group?$count=true&$select=id`, { headers: eventual })
  t.equal(counted.body['@odata.count'], 250)
  t.equal(counted.body.value.length, 100)

  // $filter on a relationship is an advanced query.
  const filter = encodeURIComponent('startswith(displayName,\'Pager group 00\')')
  assertGraphError(t, await call(`/v1.0/users/${PAGER}/transitiveMemberOf/microsoft.graph.group?$filter=${filter}`), 400, 'Request_UnsupportedQuery', 'The specified filter to the reference property query is currently not supported.')
  const filtered = await call<Page & { '@odata.count'?: number }>(`/v1.0/users/${PAGER}/transitiveMemberOf/microsoft.graph.group?$filter=${filter}&$count=true&$select=displayName`, { headers: eventual })
  t.equal(filtered.body['@odata.count'], 10)
})

t.test('getMemberGroups and getMemberObjects', async t => {
  const groups = async (path: string, securityEnabledOnly: boolean): Promise<string[]> => {
    const res = await call(path, { body: { securityEnabledOnly } })
    t.equal(res.status, 200, path)
    t.equal(res.body['@odata.context'], `${origin}/v1.0/$metadata#Collection(Edm.String)`)
    return [...res.body.value].sort()
  }
  t.same(await groups(`/v1.0/users/${T.alice}/getMemberGroups`, false), [T.dataPlatform, T.engineering, T.allStaff, T.distribution].sort())
  t.same(await groups(`/v1.0/users/${T.alice}/getMemberGroups`, true), [T.dataPlatform, T.engineering, T.allStaff].sort(), 'security groups only')
  t.same(await groups('/v1.0/users/alice@contoso-test.onmicrosoft.com/getMemberObjects', true), [T.dataPlatform, T.engineering, T.allStaff].sort())
  t.same(await groups(`/v1.0/servicePrincipals/${T.etlSp}/getMemberGroups`, true), [T.dataPlatform, T.engineering, T.allStaff].sort())
  t.same(await groups(`/v1.0/directoryObjects/${T.bob}/getMemberObjects`, false), [T.engineering, T.finance, T.allStaff].sort())
  t.same(await groups(`/v1.0/groups/${T.dataPlatform}/getMemberGroups`, false), [T.engineering, T.allStaff].sort())
  t.same(await groups(`/v1.0/users/${LOOPY}/getMemberGroups`, false), [...cycle].sort())

  const cost = await call(`/v1.0/users/${T.alice}/getMemberGroups`, { body: { securityEnabledOnly: true } })
  t.equal(cost.headers.get('x-ms-resource-unit'), '2')
  assertGraphError(t, await call(`/v1.0/users/${T.alice}/getMemberGroups`, { body: {} }), 400, 'Request_BadRequest', /securityEnabledOnly/)
  assertGraphError(t, await call(`/v1.0/users/${T.alice}/getMemberGroups`, { body: 'securityEnabledOnly=true', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 400, 'BadRequest', /^Unable to read JSON request payload/)
  assertGraphError(t, await call('/v1.0/users/ghost@contoso-test.onmicrosoft.com/getMemberGroups', { body: { securityEnabledOnly: true } }), 404, 'Request_ResourceNotFound')
})

t.test('getMemberGroups answers at most 11,000 ids', async t => {
  const token = await graphToken(env.ctx, { tid: BIG_TENANT })
  const atCap = await call(`/v1.0/users/${AT_CAP}/getMemberGroups`, { body: { securityEnabledOnly: false }, token })
  t.equal(atCap.status, 200)
  t.equal(atCap.body.value.length, 11_000)
  const over = await call(`/v1.0/users/${OVER}/getMemberGroups`, { body: { securityEnabledOnly: false }, token })
  assertGraphError(t, over, 400, 'Directory_ResultSizeLimitExceeded')
  const objects = await call(`/v1.0/users/${OVER}/getMemberObjects`, { body: { securityEnabledOnly: true }, token })
  assertGraphError(t, objects, 400, 'Directory_ResultSizeLimitExceeded')
  // Paging transitiveMemberOf still works for that user.
  const page = await call(`/v1.0/users/${OVER}/transitiveMemberOf?$select=id&$top=999`, { token })
  t.equal(page.body.value.length, 999)
})

t.test('checkMemberGroups and checkMemberObjects (at most 20 ids)', async t => {
  const unknownGroup = 'd0000000-0000-4000-8000-0000000000ff'
  const res = await call(`/v1.0/users/${T.alice}/checkMemberGroups`, { body: { groupIds: [T.dataPlatform, T.finance, T.allStaff.toUpperCase(), unknownGroup] } })
  t.equal(res.status, 200)
  t.same(res.body.value, [T.dataPlatform, T.allStaff.toUpperCase()], 'the transitive subset, as given')
  t.equal(res.headers.get('x-ms-resource-unit'), '4')
  const sp = await call(`/v1.0/servicePrincipals/${T.etlSp}/checkMemberObjects`, { body: { ids: [T.allStaff, T.finance] } })
  t.same(sp.body.value, [T.allStaff])
  const group = await call(`/v1.0/groups/${T.finance}/checkMemberGroups`, { body: { groupIds: [T.allStaff, T.engineering] } })
  t.same(group.body.value, [T.allStaff])

  const twenty = await call(`/v1.0/users/${PAGER}/checkMemberGroups`, { body: { groupIds: pagerGroups.slice(0, 20) } })
  t.equal(twenty.status, 200)
  t.equal(twenty.body.value.length, 20)
  assertGraphError(t, await call(`/v1.0/users/${PAGER}/checkMemberGroups`, { body: { groupIds: pagerGroups.slice(0, 21) } }), 400, 'Request_BadRequest', /limit of 20/)
  assertGraphError(t, await call(`/v1.0/users/${PAGER}/checkMemberGroups`, { body: { groupIds: ['not-a-guid'] } }), 400, 'Request_BadRequest', 'Invalid object identifier \'not-a-guid\'.')
  assertGraphError(t, await call(`/v1.0/users/${PAGER}/checkMemberGroups`, { body: { ids: [T.allStaff] } }), 400, 'Request_BadRequest', /groupIds/)
})
