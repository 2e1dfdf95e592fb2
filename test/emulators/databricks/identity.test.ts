// The identity API of automatic identity management: resolve-by-external-id (both path spellings, both
// scopes, both response field generations), transitive parent groups, direct members with their source,
// workspace access details, the v1 workspace permission assignments they depend on; and the control API:
// the state endpoint (so tests can assert "no duplicates, memberships equal Entra"), seeding workspaces,
// folders, objects, dashboards, ACLs and assignments, reset.
import t from 'tap'
import { databricksAccount } from '../../../emulators/databricks/routes.ts'
import {
  ACCOUNT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID, IDENTITY, SCIM, T, assertApiError, createGroup, createUser, entraToken, patchBody, startDatabricks
} from '../../helpers/databricks.ts'

t.test('resolve-by-external-id: users, groups, service principals; kebab and camel; account and workspace', async t => {
  const emulator = await startDatabricks(t)
  const { api } = emulator
  const alice = await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.alice })
  t.equal(alice.status, 200)
  t.match(alice.body.user, {
    account_id: DEFAULT_ACCOUNT_ID,
    external_id: T.alice,
    username: 'alice@contoso-test.onmicrosoft.com',
    account_user_status: 'INACTIVE'
  }, 'created, inactive until first login')
  t.match(alice.body.user.user_id, /^\d{16}$/, 'the current generation: user_id as a string')
  t.equal(alice.body.user.internal_id, Number(alice.body.user.user_id), 'the first generation: internal_id as a number')
  t.ok('full_name' in alice.body.user && 'name' in alice.body.user, 'full_name and the older name')

  const again = await api('POST', `${IDENTITY}/users/resolveByExternalId`, { external_id: T.alice })
  t.equal(again.body.user.user_id, alice.body.user.user_id, 'camelCase path, idempotent: the same user')
  const ws = await api('POST', '/api/2.0/identity/users/resolve-by-external-id', { external_id: T.alice }, { headers: { 'X-Databricks-Workspace-Id': DEFAULT_WORKSPACE_ID } })
  t.equal(ws.body.user.user_id, alice.body.user.user_id, 'workspace (proxy) form')
  t.equal((await api('GET', `${SCIM}/Users?filter=${encodeURIComponent(`externalId eq "${T.alice}"`)}`)).body.totalResults, 1, 'no duplicate')

  const group = await api('POST', `${IDENTITY}/groups/resolve-by-external-id`, { external_id: T.finance })
  t.match(group.body.group, { account_id: DEFAULT_ACCOUNT_ID, external_id: T.finance, group_name: 'Finance' })
  t.equal(group.body.group.internal_id, Number(group.body.group.group_id))
  for (const path of ['service-principals/resolve-by-external-id', 'servicePrincipals/resolveByExternalId']) {
    const sp = await api('POST', `${IDENTITY}/${path}`, { external_id: T.etlSp })
    t.match(sp.body.service_principal, { application_id: T.etlAppId, display_name: 'Nightly ETL', external_id: T.etlSp, account_sp_status: 'INACTIVE' }, path)
  }
  const wsSp = await api('POST', '/api/2.0/identity/servicePrincipals/resolveByExternalId', { external_id: T.etlSp })
  t.equal(wsSp.status, 200)

  // The first use by the user makes it ACTIVE (it has no workspace access, so Me is refused, but it signed in).
  const token = await entraToken(emulator, { oid: T.alice, appid: T.resolverAppId, scp: 'user_impersonation' })
  t.equal((await api('GET', '/api/2.0/preview/scim/v2/Me', undefined, { token })).status, 403)
  const active = await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.alice })
  t.equal(active.body.user.account_user_status, 'ACTIVE')

  assertApiError(t, await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: 'f0000000-0000-4000-8000-000000000999' }), 404, 'RESOURCE_DOES_NOT_EXIST')
  assertApiError(t, await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.finance }), 404, 'RESOURCE_DOES_NOT_EXIST', /User with external ID/)
  assertApiError(t, await api('POST', `${IDENTITY}/users/resolve-by-external-id`, {}), 400, 'INVALID_PARAMETER_VALUE', /external_id/)
  assertApiError(t, await api('POST', '/api/2.0/identity/accounts/00000000-0000-0000-0000-000000000000/users/resolve-by-external-id', { external_id: T.alice }), 404, 'RESOURCE_DOES_NOT_EXIST', /Account/)
})

t.test('resolving adopts SCIM-provisioned principals instead of duplicating them', async t => {
  const { api } = await startDatabricks(t)
  const scimUser = await createUser(api, 'BOB@contoso-test.onmicrosoft.com')
  const scimGroup = await createGroup(api, 'Engineering')
  const bob = await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.bob })
  t.equal(bob.body.user.user_id, scimUser, 'matched by user name, linked by external id')
  t.equal(bob.body.user.external_id, T.bob)
  const eng = await api('POST', `${IDENTITY}/groups/resolve-by-external-id`, { external_id: T.engineering })
  t.equal(eng.body.group.group_id, scimGroup)
})

t.test('"AIM disabled" makes resolve return the error', async t => {
  const { api, control } = await startDatabricks(t)
  t.same((await control('PUT', '/settings', { aimEnabled: false })).body, { aimEnabled: false })
  for (const path of [`${IDENTITY}/users/resolve-by-external-id`, `${IDENTITY}/groups/resolveByExternalId`, '/api/2.0/identity/service-principals/resolve-by-external-id']) {
    assertApiError(t, await api('POST', path, { external_id: T.alice }), 400, 'FEATURE_DISABLED', /Automatic identity management is not enabled/)
  }
  t.equal((await control('GET', '/state')).body.users.length, 0, 'nothing was created')
})

t.test('transitive parent groups (nested, Entra-sourced and internal) with page_token', async t => {
  const { api } = await startDatabricks(t)
  const alice = (await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.alice })).body.user
  const internal = await createGroup(api, 'Internal reviewers', { members: [{ value: alice.user_id }] })
  const all = await api('GET', `${IDENTITY}/principals/${alice.user_id as string}/transitive-parent-groups`)
  t.equal(all.status, 200)
  const names = (list: any[]): string[] => list.map(g => g.group_name).sort()
  // Data Platform ⊂ Engineering ⊂ All Staff in Entra; the Newsletter is a distribution list (not synced).
  t.same(names(all.body.transitive_parent_groups), ['All Staff', 'Data Platform', 'Engineering', 'Internal reviewers'])
  t.match(all.body.transitive_parent_groups.find((g: any) => g.group_name === 'Engineering'), { account_id: DEFAULT_ACCOUNT_ID, external_id: T.engineering })
  t.notOk('next_page_token' in all.body)

  const pages: any[] = []
  let token: string | undefined
  do {
    const res = await api('GET', `${IDENTITY}/principals/${alice.user_id as string}/transitive-parent-groups?page_size=1${token === undefined ? '' : `&page_token=${token}`}`)
    pages.push(...res.body.transitive_parent_groups)
    token = res.body.next_page_token
  } while (token !== undefined)
  t.same(names(pages), names(all.body.transitive_parent_groups), 'page by page, the same groups')
  t.equal(pages.length, 4)

  const ws = await api('GET', `/api/2.0/identity/principals/${alice.user_id as string}/transitive-parent-groups`)
  t.equal(ws.body.transitive_parent_groups.length, 4, 'workspace form')
  t.ok(internal)
  assertApiError(t, await api('GET', `${IDENTITY}/principals/${alice.user_id as string}/transitive-parent-groups?page_size=1001`), 400, 'INVALID_PARAMETER_VALUE')
  assertApiError(t, await api('GET', `${IDENTITY}/principals/${alice.user_id as string}/transitive-parent-groups?page_token=garbage`), 400, 'INVALID_PARAMETER_VALUE')
  assertApiError(t, await api('GET', `${IDENTITY}/principals/1234567890123456/transitive-parent-groups`), 404, 'RESOURCE_DOES_NOT_EXIST')
})

t.test('direct members with membership_source; IdP memberships are read-only', async t => {
  const { api } = await startDatabricks(t)
  const bob = (await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.bob })).body.user
  const guest = (await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.guest })).body.user
  const finance = (await api('POST', `${IDENTITY}/groups/resolve-by-external-id`, { external_id: T.finance })).body.group
  const extra = await createUser(api, 'contractor@contoso.com')
  const added = await api('PATCH', `${SCIM}/Groups/${finance.group_id as string}`, patchBody({ op: 'add', path: 'members', value: [{ value: extra }] }))
  t.equal(added.status, 200)

  const list = await api('GET', `${IDENTITY}/groups/${finance.group_id as string}/direct-members`)
  t.equal(list.status, 200)
  const bySource = Object.fromEntries(list.body.direct_group_members.map((m: any) => [m.principal_id, m.membership_source]))
  t.same(bySource, { [Number(bob.user_id)]: 'IDENTITY_PROVIDER', [Number(guest.user_id)]: 'IDENTITY_PROVIDER', [Number(extra)]: 'INTERNAL' })
  t.match(list.body.direct_group_members.find((m: any) => m.principal_id === Number(bob.user_id)), {
    display_name: 'Bob Brown', external_id: T.bob, group_id: Number(finance.group_id), principal_type: 'USER'
  })
  const camel = await api('GET', `${IDENTITY}/groups/${finance.group_id as string}/directMembers?page_size=1`)
  t.equal(camel.body.direct_group_members.length, 1)
  t.type(camel.body.next_page_token, 'string')

  assertApiError(t, await api('DELETE', `${IDENTITY}/groups/${finance.group_id as string}/direct-members/${bob.user_id as string}`), 400, 'INVALID_PARAMETER_VALUE', /read-only/)
  t.same((await api('DELETE', `${IDENTITY}/groups/${finance.group_id as string}/direct-members/${extra}`)).body, {})
  const one = await api('GET', `${IDENTITY}/groups/${finance.group_id as string}/direct-members/${bob.user_id as string}`)
  t.equal(one.body.membership_source, 'IDENTITY_PROVIDER')
  assertApiError(t, await api('GET', `${IDENTITY}/groups/${finance.group_id as string}/direct-members/${extra}`), 404, 'RESOURCE_DOES_NOT_EXIST')
  const posted = await api('POST', `${IDENTITY}/groups/${finance.group_id as string}/direct-members`, { principal_id: Number(extra) })
  t.match(posted.body, { principal_id: Number(extra), membership_source: 'INTERNAL', principal_type: 'USER' })
  assertApiError(t, await api('GET', `${IDENTITY}/groups/${bob.user_id as string}/direct-members`), 404, 'RESOURCE_DOES_NOT_EXIST', /Group/)
})

t.test('permission assignments and workspace access details (DIRECT / INDIRECT)', async t => {
  const { api } = await startDatabricks(t)
  const base = `${ACCOUNT}/workspaces/${DEFAULT_WORKSPACE_ID}/permissionassignments`
  const bob = (await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.bob })).body.user
  const eng = (await api('POST', `${IDENTITY}/groups/resolve-by-external-id`, { external_id: T.engineering })).body.group
  const carol = await createUser(api, 'carol@contoso.com')

  const put = await api('PUT', `${base}/principals/${eng.group_id as string}`, { permissions: ['USER'] })
  t.same(put.body, { principal: { principal_id: Number(eng.group_id), display_name: 'Engineering', group_name: 'Engineering' }, permissions: ['USER'], error: null })
  const admin = await api('PUT', `${base}/principals/${carol}`, { permissions: ['USER', 'ADMIN'] })
  t.same(admin.body.permissions, ['ADMIN'], 'ADMIN takes precedence')
  t.equal(admin.body.principal.user_name, 'carol@contoso.com')

  const listed = await api('GET', base)
  t.same(listed.body.permission_assignments.map((a: any) => [a.principal.principal_id, a.permissions]).sort(), [[Number(eng.group_id), ['USER']], [Number(carol), ['ADMIN']]].sort())
  t.same((await api('GET', `${base}/permissions`)).body.permissions.map((p: any) => p.permission_level), ['USER', 'ADMIN'])

  const details = `${IDENTITY}/workspaces/${DEFAULT_WORKSPACE_ID}/workspace-access-details`
  const indirect = await api('GET', `${details}/${bob.user_id as string}`)
  t.same(indirect.body, {
    access_type: 'INDIRECT',
    account_id: DEFAULT_ACCOUNT_ID,
    permissions: ['USER_PERMISSION'],
    principal_id: Number(bob.user_id),
    principal_type: 'USER',
    status: 'INACTIVE',
    workspace_id: Number(DEFAULT_WORKSPACE_ID)
  }, 'bob is in Engineering (Entra), which is assigned')
  const direct = await api('GET', `/api/2.0/identity/accounts/${DEFAULT_ACCOUNT_ID}/workspaces/${DEFAULT_WORKSPACE_ID}/workspaceAccessDetails/${carol}?view=FULL`)
  t.match(direct.body, { access_type: 'DIRECT', permissions: ['ADMIN_PERMISSION'], status: 'ACTIVE' })
  const local = await api('GET', `/api/2.0/identity/workspace-access-details/${eng.group_id as string}`)
  t.match(local.body, { access_type: 'DIRECT', principal_type: 'GROUP' })
  t.notOk('status' in local.body, 'no status for groups')
  t.equal((await api('GET', details)).body.workspace_access_details.length, 3)
  assertApiError(t, await api('GET', `${details}/${bob.user_id as string}?view=ALL`), 400, 'INVALID_PARAMETER_VALUE')

  t.same((await api('DELETE', `${base}/principals/${eng.group_id as string}`)).body, {})
  assertApiError(t, await api('GET', `${details}/${bob.user_id as string}`), 404, 'RESOURCE_DOES_NOT_EXIST', /does not have access/)
  const cleared = await api('PUT', `${base}/principals/${carol}`, { permissions: [] })
  t.same(cleared.body.permissions, [], 'an empty list deletes the assignment')
  t.same((await api('GET', base)).body.permission_assignments, [])

  assertApiError(t, await api('PUT', `${base}/principals/1234567890123456`, { permissions: ['USER'] }), 404, 'RESOURCE_DOES_NOT_EXIST', 'Principal not found in account')
  assertApiError(t, await api('DELETE', `${base}/principals/not-a-number`), 404, 'RESOURCE_DOES_NOT_EXIST', 'Principal not found in account')
  assertApiError(t, await api('PUT', `${ACCOUNT}/workspaces/42/permissionassignments/principals/${carol}`, { permissions: ['USER'] }), 404, 'RESOURCE_DOES_NOT_EXIST', /Workspace 42/)
})

t.test('state: the account with memberships that equal Entra after resolving', async t => {
  const { api, control, ctx, origin } = await startDatabricks(t)
  const empty = (await control('GET', '/state')).body
  t.match(empty, { accountId: DEFAULT_ACCOUNT_ID, tenantId: T.tenantId, settings: { aimEnabled: true }, users: [], servicePrincipals: [], groups: [] })
  t.same(empty.workspaces.map((w: any) => w.id), [DEFAULT_WORKSPACE_ID], 'one seeded workspace')
  t.same(empty.workspaces[0].groups.map((g: any) => g.displayName), ['admins', 'users'], 'with its system groups')
  t.equal(databricksAccount(ctx).id, DEFAULT_ACCOUNT_ID, 'reachable from tests through the context')

  for (const id of [T.alice, T.bob, T.guest]) await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: id })
  await api('POST', `${IDENTITY}/service-principals/resolve-by-external-id`, { external_id: T.etlSp })
  const state = (await control('GET', '/state')).body
  const tenant = ctx.tenants.get(T.tenantId)
  if (tenant === undefined) throw new Error('no tenant')
  t.equal(new Set(state.users.map((u: any) => u.externalId)).size, state.users.length, 'no duplicate users')
  t.equal(new Set(state.groups.map((g: any) => g.externalId)).size, state.groups.length, 'no duplicate groups')
  for (const g of state.groups) {
    const entra = tenant.directMembers(g.externalId).filter(m => state.users.concat(state.servicePrincipals, state.groups).some((p: any) => p.externalId === m)).sort()
    t.same(g.members.map((m: any) => m.externalId).sort(), entra, `${g.displayName as string}: members equal Entra's (those in the account)`)
    t.ok(g.members.every((m: any) => m.source === 'IDENTITY_PROVIDER'))
  }
  t.same(state.groups.map((g: any) => g.displayName).sort(), ['All Staff', 'Data Platform', 'Engineering', 'Finance'], 'parents resolved transitively; the distribution list is not')
  t.match(state.servicePrincipals, [{ applicationId: T.etlAppId, externalId: T.etlSp, status: 'INACTIVE', groups: [{ name: 'Data Platform', source: 'IDENTITY_PROVIDER' }] }])

  // Membership changes in Entra are respected (AIM reads them at request time).
  const bob = state.users.find((u: any) => u.externalId === T.bob)
  const dataPlatform = state.groups.find((g: any) => g.externalId === T.dataPlatform)
  const added = await fetch(`${origin}/_emulator/tenant/members`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ groupId: T.dataPlatform, memberId: T.bob })
  })
  t.equal(added.status, 200)
  const members = (await api('GET', `${SCIM}/Groups/${dataPlatform.id as string}`)).body.members.map((m: any) => m.value)
  t.ok(members.includes(bob.id), 'bob, added in Entra, is a member in Databricks')
})

t.test('seeding workspaces, folders, objects, dashboards, ACLs and assignments', async t => {
  const { api, control } = await startDatabricks(t)
  const ws = await control('POST', '/workspaces', { id: '2718281828459045', name: 'analytics' })
  t.equal(ws.status, 201)
  t.match(ws.body, { id: '2718281828459045', name: 'analytics', adminsGroupId: /^\d+$/ })
  t.equal((await control('POST', '/workspaces', { id: '2718281828459045' })).status, 409)
  const generated = await control('POST', '/workspaces', {})
  t.match(generated.body.id, /^\d{16}$/)

  const inWs = { headers: { 'X-Databricks-Workspace-Id': '2718281828459045' } }
  const folder = await control('POST', '/workspaces/2718281828459045/objects', { type: 'directories', path: '/Shared/Team', id: '555' })
  t.match(folder.body, { type: 'directories', id: '555', path: '/Shared/Team' })
  const notebook = await control('POST', '/workspaces/2718281828459045/objects', { type: 'notebooks', path: '/Shared/Team/Deep/etl' })
  t.match(notebook.body, { type: 'notebooks', name: 'etl', path: '/Shared/Team/Deep/etl' })
  t.equal((await control('POST', '/workspaces/2718281828459045/objects', { type: 'notebooks', path: '/Shared/Team/Deep/etl' })).status, 409)
  t.equal((await control('POST', '/workspaces/2718281828459045/objects', { type: 'notebooks' })).status, 400, 'tree objects need a path')
  t.equal((await control('POST', '/workspaces/2718281828459045/objects', { type: 'spaceships', id: '1' })).status, 400)
  t.equal((await control('POST', '/workspaces/999/objects', { type: 'jobs', id: '1' })).status, 404)
  t.equal((await control('POST', '/workspaces/2718281828459045/objects', { type: 'dashboards', path: '/x' })).status, 400)
  const dash = await control('POST', '/workspaces/2718281828459045/dashboards', { displayName: 'Team KPIs', parentPath: '/Shared/Team', dashboardId: '01ef00000000000000000000000000aa', published: { embedCredentials: true } })
  t.match(dash.body, { dashboard_id: '01ef00000000000000000000000000aa', path: '/Shared/Team/Team KPIs.lvdash.json', published: { embedCredentials: true } })
  t.equal((await api('GET', '/api/2.0/lakeview/dashboards/01ef00000000000000000000000000aa/published', undefined, inWs)).body.embed_credentials, true)
  t.equal((await api('GET', '/api/2.0/lakeview/dashboards/01ef00000000000000000000000000aa')).status, 404, 'the other workspace does not have it')

  const user = await createUser(api, 'seeded@contoso.com')
  const acl = await control('PUT', '/workspaces/2718281828459045/acls', { type: 'directories', id: '555', access_control_list: [{ user_name: 'seeded@contoso.com', permission_level: 'CAN_MANAGE' }, { group_name: 'users', permission_level: 'CAN_READ' }] })
  t.equal(acl.status, 200)
  t.equal(acl.body.object_id, '/directories/555')
  t.equal((await control('PUT', '/workspaces/2718281828459045/acls', { type: 'directories', id: '555', mode: 'merge', access_control_list: [{ principal_id: user, permission_level: 'CAN_EDIT' }] })).status, 200)
  t.equal((await control('PUT', '/workspaces/2718281828459045/acls', { type: 'directories', id: '555', access_control_list: [{ user_name: 'ghost@contoso.com', permission_level: 'CAN_READ' }] })).status, 404)
  t.equal((await control('PUT', '/workspaces/2718281828459045/acls', { type: 'directories', id: '555', access_control_list: [{ user_name: 'seeded@contoso.com', permission_level: 'IS_OWNER' }] })).status, 400)
  t.equal((await control('PUT', '/workspaces/2718281828459045/acls', { type: 'jobs', id: '1', access_control_list: [] })).status, 404)
  const inherited = (await api('GET', '/api/2.0/permissions/dashboards/01ef00000000000000000000000000aa', undefined, inWs)).body.access_control_list
  t.same(inherited.find((e: any) => e.user_name === 'seeded@contoso.com').all_permissions, [{ permission_level: 'CAN_EDIT', inherited: true, inherited_from_object: ['/directories/555'] }])
  t.same(inherited.find((e: any) => e.group_name === 'users').all_permissions, [{ permission_level: 'CAN_READ', inherited: true, inherited_from_object: ['/directories/555'] }])

  const assigned = await control('PUT', '/workspaces/2718281828459045/assignments', { principalId: user, permissions: ['ADMIN'] })
  t.same(assigned.body, { principalId: user, permissions: ['ADMIN'] })
  const state = (await control('GET', '/state')).body
  const analytics = state.workspaces.find((w: any) => w.id === '2718281828459045')
  t.match(analytics.assignments, [{ principal: { id: user, name: 'seeded@contoso.com' }, permissions: ['ADMIN'] }])
  t.same(analytics.groups.find((g: any) => g.displayName === 'admins').members.map((m: any) => m.id), [user])
  t.match(analytics.objects.find((o: any) => o.id === '555').acl, [{ principal: { name: 'seeded@contoso.com' }, level: 'CAN_EDIT' }, { principal: { name: 'users' }, level: 'CAN_READ' }])
  t.same((await control('PUT', '/workspaces/2718281828459045/assignments', { principalId: user, permissions: [] })).body.permissions, [])
  t.equal((await control('PUT', '/workspaces/2718281828459045/assignments', { principalId: '1234567890123456', permissions: ['USER'] })).status, 404)
  t.equal((await control('PUT', '/workspaces/2718281828459045/assignments', { principalId: user, permissions: ['OWNER'] })).status, 400)
})

t.test('reset, settings, and the account SCIM state after a PATCH', async t => {
  const { api, control } = await startDatabricks(t)
  const user = await createUser(api, 'x@contoso.com')
  const group = (await api('POST', `${SCIM}/Groups`, { displayName: 'G', members: [{ value: user }] })).body.id
  const before = (await control('GET', '/state')).body
  t.match(before.groups, [{ id: group, members: [{ id: user, kind: 'user', name: 'x@contoso.com', source: 'INTERNAL' }] }])
  t.match(before.users, [{ id: user, groups: [{ id: group, source: 'INTERNAL' }] }])
  await api('PATCH', `${SCIM}/Groups/${group as string}`, patchBody({ op: 'remove', path: `members[value eq "${user}"]` }))
  t.same((await control('GET', '/state')).body.groups[0].members, [])
  t.same((await control('GET', '/settings')).body, { aimEnabled: true })
  t.equal((await control('PUT', '/settings', { aim: false })).status, 400, 'unknown settings are refused')
  const reset = await control('POST', '/reset')
  t.same([reset.body.users, reset.body.groups], [[], []])
  t.equal((await api('GET', `${SCIM}/Users/${user}`)).status, 404)
})
