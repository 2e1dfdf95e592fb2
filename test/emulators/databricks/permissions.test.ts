// The Permissions API and Lakeview dashboards: level sets per object type, PUT replaces and PATCH merges,
// a grant on a folder is inherited by the dashboard inside it, the workspace admins group's CAN_MANAGE,
// unknown principals get the documented error, publishing with embed_credentials; who may change what:
// one owner (never a group) on jobs, pipelines and warehouses, transferred by admins only, the previous
// owner keeping CAN_MANAGE; cluster policies managed by admins only.
import t from 'tap'
import { DEFAULT_WORKSPACE_ID, IDENTITY, SCIM, T, assertApiError, createGroup, createUser, startDatabricks } from '../../helpers/databricks.ts'

const LEVELS: Record<string, string[]> = {
  dashboards: ['CAN_READ', 'CAN_RUN', 'CAN_EDIT', 'CAN_MANAGE'],
  directories: ['CAN_READ', 'CAN_RUN', 'CAN_EDIT', 'CAN_MANAGE'],
  notebooks: ['CAN_READ', 'CAN_RUN', 'CAN_EDIT', 'CAN_MANAGE'],
  jobs: ['CAN_VIEW', 'CAN_MANAGE_RUN', 'CAN_MANAGE', 'IS_OWNER'],
  clusters: ['CAN_ATTACH_TO', 'CAN_RESTART', 'CAN_MANAGE'],
  'sql/warehouses': ['CAN_VIEW', 'CAN_MONITOR', 'CAN_USE', 'CAN_MANAGE', 'IS_OWNER']
}

t.test('a grant on a folder shows up as inherited on a dashboard inside it', async t => {
  const { api, control } = await startDatabricks(t)
  await createGroup(api, 'Analysts')
  t.equal((await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.alice })).status, 200)

  t.same((await api('POST', '/api/2.0/workspace/mkdirs', { path: '/Workspace/Shared/Finance/Reports' })).body, {})
  const folder = (await api('GET', `/api/2.0/workspace/get-status?path=${encodeURIComponent('/Shared/Finance')}`)).body
  t.match(folder, { object_type: 'DIRECTORY', path: '/Shared/Finance', object_id: Number })

  const dashboard = await api('POST', '/api/2.0/lakeview/dashboards', { display_name: 'Revenue', parent_path: '/Shared/Finance/Reports', warehouse_id: 'wh-1' })
  t.equal(dashboard.status, 200)
  t.match(dashboard.body, { display_name: 'Revenue', parent_path: '/Shared/Finance/Reports', path: '/Shared/Finance/Reports/Revenue.lvdash.json', lifecycle_state: 'ACTIVE', warehouse_id: 'wh-1' })
  t.match(dashboard.body.dashboard_id, /^[0-9a-f]{32}$/)
  const id = dashboard.body.dashboard_id as string

  const granted = await api('PATCH', `/api/2.0/permissions/directories/${String(folder.object_id)}`, {
    access_control_list: [{ group_name: 'Analysts', permission_level: 'CAN_EDIT' }, { user_name: 'ALICE@contoso-test.onmicrosoft.com', permission_level: 'CAN_READ' }]
  })
  t.equal(granted.status, 200)
  t.match(granted.body, { object_id: `/directories/${String(folder.object_id)}`, object_type: 'directory' })

  const perms = await api('GET', `/api/2.0/permissions/dashboards/${id}`)
  t.equal(perms.status, 200)
  t.equal(perms.body.object_id, `/dashboards/${id}`)
  t.equal(perms.body.object_type, 'dashboard')
  const entry = (key: string, value: string): any => perms.body.access_control_list.find((e: any) => e[key] === value)
  t.same(entry('group_name', 'Analysts'), {
    group_name: 'Analysts',
    display_name: 'Analysts',
    all_permissions: [{ permission_level: 'CAN_EDIT', inherited: true, inherited_from_object: [`/directories/${String(folder.object_id)}`] }]
  })
  t.same(entry('user_name', 'alice@contoso-test.onmicrosoft.com').all_permissions, [{ permission_level: 'CAN_READ', inherited: true, inherited_from_object: [`/directories/${String(folder.object_id)}`] }])
  t.same(entry('group_name', 'admins').all_permissions, [{ permission_level: 'CAN_MANAGE', inherited: true, inherited_from_object: ['/directories/'] }], 'the workspace admins group always manages')

  // A direct grant next to the inherited one; PUT on the folder replaces its grants and the dashboard follows.
  await api('PATCH', `/api/2.0/permissions/dashboards/${id}`, { access_control_list: [{ group_name: 'Analysts', permission_level: 'CAN_MANAGE' }] })
  const after = (await api('GET', `/api/2.0/permissions/dashboards/${id}`)).body.access_control_list.find((e: any) => e.group_name === 'Analysts')
  t.same(after.all_permissions, [
    { permission_level: 'CAN_MANAGE', inherited: false },
    { permission_level: 'CAN_EDIT', inherited: true, inherited_from_object: [`/directories/${String(folder.object_id)}`] }
  ])
  await api('PUT', `/api/2.0/permissions/directories/${String(folder.object_id)}`, { access_control_list: [] })
  const cleared = (await api('GET', `/api/2.0/permissions/dashboards/${id}`)).body.access_control_list
  t.same(cleared.map((e: any) => e.group_name ?? e.user_name).sort(), ['Analysts', 'admins'], 'only the direct grant and admins remain')

  const state = (await control('GET', '/state')).body
  const ws = state.workspaces.find((w: any) => w.id === DEFAULT_WORKSPACE_ID)
  t.match(ws.objects.find((o: any) => o.type === 'dashboards'), { id, path: '/Shared/Finance/Reports/Revenue.lvdash.json', acl: [{ principal: { name: 'Analysts' }, level: 'CAN_MANAGE' }] })
})

t.test('level sets per object type; PUT replaces, PATCH merges; permissionLevels', async t => {
  const { api, control } = await startDatabricks(t)
  await createUser(api, 'owner@contoso.com')
  await api('POST', `${SCIM}/ServicePrincipals`, { applicationId: T.etlAppId, displayName: 'Nightly ETL' })
  const ids: Record<string, string> = {}
  for (const [type, body] of [['notebooks', { path: '/Shared/etl' }], ['jobs', { id: '42' }], ['clusters', { id: '0123-456789-abcdefg1' }], ['sql/warehouses', { name: 'wh' }]] as const) {
    const created = await control('POST', `/workspaces/${DEFAULT_WORKSPACE_ID}/objects`, { type, ...body })
    t.equal(created.status, 201, `seeded a ${type}`)
    ids[type] = created.body.id
  }
  ids.directories = (await api('GET', '/api/2.0/workspace/get-status?path=/Shared')).body.object_id
  ids.dashboards = (await control('POST', `/workspaces/${DEFAULT_WORKSPACE_ID}/dashboards`, { displayName: 'Seeded' })).body.dashboard_id

  for (const [type, levels] of Object.entries(LEVELS)) {
    const res = await api('GET', `/api/2.0/permissions/${type}/${String(ids[type])}/permissionLevels`)
    t.equal(res.status, 200, type)
    t.same(res.body.permission_levels.map((l: any) => l.permission_level), levels, `${type} levels`)
    const bad = await api('PATCH', `/api/2.0/permissions/${type}/${String(ids[type])}`, { access_control_list: [{ user_name: 'owner@contoso.com', permission_level: 'CAN_FLY' }] })
    assertApiError(t, bad, 400, 'INVALID_PARAMETER_VALUE', /CAN_FLY is not supported/)
  }
  t.equal((await api('GET', `/api/2.0/permissions/warehouses/${String(ids['sql/warehouses'])}`)).body.object_type, 'warehouses', 'the warehouses alias')
  t.equal((await api('GET', `/api/2.0/permissions/clusters/${String(ids.clusters)}`)).body.object_type, 'cluster')

  const job = `/api/2.0/permissions/jobs/${String(ids.jobs)}`
  const put = await api('PUT', job, { access_control_list: [{ user_name: 'owner@contoso.com', permission_level: 'IS_OWNER' }, { service_principal_name: T.etlAppId, permission_level: 'CAN_MANAGE_RUN' }] })
  t.same(put.body.access_control_list.map((e: any) => [e.user_name ?? e.service_principal_name ?? e.group_name, e.all_permissions[0].permission_level]), [
    ['owner@contoso.com', 'IS_OWNER'], [T.etlAppId, 'CAN_MANAGE_RUN'], ['admins', 'CAN_MANAGE']
  ])
  t.same(put.body.access_control_list[2].all_permissions, [{ permission_level: 'CAN_MANAGE', inherited: true, inherited_from_object: ['/jobs/'] }])
  const merged = await api('PATCH', job, { access_control_list: [{ group_name: 'users', permission_level: 'CAN_VIEW' }] })
  t.equal(merged.body.access_control_list.length, 4, 'PATCH keeps the others')
  const replaced = await api('PUT', job, { access_control_list: [{ user_name: 'owner@contoso.com', permission_level: 'IS_OWNER' }, { group_name: 'users', permission_level: 'CAN_VIEW' }] })
  t.same(replaced.body.access_control_list.map((e: any) => e.group_name ?? e.user_name), ['owner@contoso.com', 'users', 'admins'], 'PUT replaces')
  const notebook = `/api/2.0/permissions/notebooks/${String(ids.notebooks)}`
  await api('PATCH', notebook, { access_control_list: [{ group_name: 'users', permission_level: 'CAN_READ' }] })
  const emptied = await api('PUT', notebook, {})
  t.same(emptied.body.access_control_list.map((e: any) => e.group_name), ['admins'], 'PUT with nothing deletes every direct grant')
})

/** `[name, level]` of each direct grant, in response order. */
function direct (body: any): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (const e of body.access_control_list) {
    for (const p of e.all_permissions) if (p.inherited === false) out.push([e.user_name ?? e.service_principal_name ?? e.group_name, p.permission_level])
  }
  return out
}

t.test('jobs, pipelines and warehouses: exactly one owner, never a group; only admins transfer it', async t => {
  const { api, control } = await startDatabricks(t)
  const ws = `/workspaces/${DEFAULT_WORKSPACE_ID}`
  const token = async (userName: string, level: 'USER' | 'ADMIN'): Promise<string> => {
    const id = await createUser(api, userName)
    await control('PUT', `${ws}/assignments`, { principalId: id, permissions: [level] })
    return (await control('POST', '/tokens', { principalId: id })).body.token
  }
  await createUser(api, 'owner@contoso.com')
  const manager = await token('manager@contoso.com', 'USER')
  const wsAdmin = await token('wsadmin@contoso.com', 'ADMIN')
  await api('POST', `${SCIM}/ServicePrincipals`, { applicationId: T.etlAppId, displayName: 'Nightly ETL' })
  await createGroup(api, 'Analysts')

  const seeded = await control('POST', `${ws}/objects`, { type: 'jobs', id: '7', owner: { user_name: 'owner@contoso.com' } })
  t.equal(seeded.status, 201)
  const job = '/api/2.0/permissions/jobs/7'
  t.same(direct((await api('GET', job)).body), [['owner@contoso.com', 'IS_OWNER']], 'the seeded owner')
  await api('PATCH', job, { access_control_list: [{ user_name: 'manager@contoso.com', permission_level: 'CAN_MANAGE' }] })

  // A CAN_MANAGE holder manages grants but cannot take or give ownership.
  const take = await api('PATCH', job, { access_control_list: [{ user_name: 'manager@contoso.com', permission_level: 'IS_OWNER' }] }, { token: manager })
  assertApiError(t, take, 403, 'PERMISSION_DENIED', 'Only workspace admins can change the owner of job 7. manager@contoso.com is not a workspace admin.')
  assertApiError(t, await api('PUT', job, { access_control_list: [{ service_principal_name: T.etlAppId, permission_level: 'IS_OWNER' }, { user_name: 'manager@contoso.com', permission_level: 'CAN_MANAGE' }] }, { token: manager }), 403, 'PERMISSION_DENIED', /change the owner/)
  const restated = await api('PUT', job, { access_control_list: [{ user_name: 'owner@contoso.com', permission_level: 'IS_OWNER' }, { user_name: 'manager@contoso.com', permission_level: 'CAN_MANAGE' }, { group_name: 'Analysts', permission_level: 'CAN_VIEW' }] }, { token: manager })
  t.equal(restated.status, 200, 'naming the current owner is not a change')
  t.same(direct(restated.body), [['owner@contoso.com', 'IS_OWNER'], ['manager@contoso.com', 'CAN_MANAGE'], ['Analysts', 'CAN_VIEW']])

  // Never a group, never two owners, never none.
  assertApiError(t, await api('PATCH', job, { access_control_list: [{ group_name: 'Analysts', permission_level: 'IS_OWNER' }] }, { token: manager }), 400, 'INVALID_PARAMETER_VALUE', /a group cannot be the owner/)
  assertApiError(t, await api('PATCH', job, { access_control_list: [{ group_name: 'Analysts', permission_level: 'IS_OWNER' }] }), 400, 'INVALID_PARAMETER_VALUE', /a group cannot be the owner/)
  assertApiError(t, await api('PATCH', job, { access_control_list: [{ user_name: 'owner@contoso.com', permission_level: 'CAN_VIEW' }] }, { token: manager }), 400, 'INVALID_PARAMETER_VALUE', 'The job must have exactly one owner.')
  assertApiError(t, await api('PUT', job, { access_control_list: [{ user_name: 'manager@contoso.com', permission_level: 'CAN_MANAGE' }] }, { token: manager }), 400, 'INVALID_PARAMETER_VALUE', 'The job must have exactly one owner.')
  assertApiError(t, await api('PUT', job, {}), 400, 'INVALID_PARAMETER_VALUE', 'The job must have exactly one owner.')
  assertApiError(t, await api('PATCH', job, { access_control_list: [{ user_name: 'manager@contoso.com', permission_level: 'IS_OWNER' }, { service_principal_name: T.etlAppId, permission_level: 'IS_OWNER' }] }), 400, 'INVALID_PARAMETER_VALUE', 'The job must have exactly one owner.')
  t.same(direct((await api('GET', job)).body), [['owner@contoso.com', 'IS_OWNER'], ['manager@contoso.com', 'CAN_MANAGE'], ['Analysts', 'CAN_VIEW']], 'refused requests changed nothing')

  // A workspace admin transfers ownership (PATCH): the previous owner keeps CAN_MANAGE.
  const transferred = await api('PATCH', job, { access_control_list: [{ service_principal_name: T.etlAppId, permission_level: 'IS_OWNER' }] }, { token: wsAdmin })
  t.equal(transferred.status, 200)
  t.same(direct(transferred.body), [['owner@contoso.com', 'CAN_MANAGE'], ['manager@contoso.com', 'CAN_MANAGE'], ['Analysts', 'CAN_VIEW'], [T.etlAppId, 'IS_OWNER']])
  // …and by PUT: the previous owner is not named, still it keeps CAN_MANAGE; the other grants are replaced.
  const back = await api('PUT', job, { access_control_list: [{ user_name: 'owner@contoso.com', permission_level: 'IS_OWNER' }, { group_name: 'Analysts', permission_level: 'CAN_MANAGE_RUN' }] })
  t.same(direct(back.body), [['owner@contoso.com', 'IS_OWNER'], ['Analysts', 'CAN_MANAGE_RUN'], [T.etlAppId, 'CAN_MANAGE']])
  // Named in the same request, the previous owner gets the level asked for.
  const named = await api('PATCH', job, { access_control_list: [{ user_name: 'manager@contoso.com', permission_level: 'IS_OWNER' }, { user_name: 'owner@contoso.com', permission_level: 'CAN_VIEW' }] }, { token: wsAdmin })
  t.same(direct(named.body).filter(([, l]) => l === 'IS_OWNER' || l === 'CAN_VIEW'), [['owner@contoso.com', 'CAN_VIEW'], ['manager@contoso.com', 'IS_OWNER']])
  t.equal(direct(named.body).filter(([, l]) => l === 'IS_OWNER').length, 1, 'one owner')

  // Pipelines follow the jobs rule.
  await control('POST', `${ws}/objects`, { type: 'pipelines', id: 'p-1', owner: { service_principal_name: T.etlAppId } })
  const pipeline = '/api/2.0/permissions/pipelines/p-1'
  assertApiError(t, await api('PUT', pipeline, { access_control_list: [{ group_name: 'Analysts', permission_level: 'CAN_RUN' }] }), 400, 'INVALID_PARAMETER_VALUE', 'The pipeline must have exactly one owner.')
  await api('PATCH', pipeline, { access_control_list: [{ user_name: 'manager@contoso.com', permission_level: 'CAN_MANAGE' }] })
  assertApiError(t, await api('PATCH', pipeline, { access_control_list: [{ user_name: 'manager@contoso.com', permission_level: 'IS_OWNER' }] }, { token: manager }), 403, 'PERMISSION_DENIED', 'Only workspace admins can change the owner of pipeline p-1. manager@contoso.com is not a workspace admin.')
  t.same(direct((await api('PATCH', pipeline, { access_control_list: [{ user_name: 'owner@contoso.com', permission_level: 'IS_OWNER' }] })).body),
    [[T.etlAppId, 'CAN_MANAGE'], ['manager@contoso.com', 'CAN_MANAGE'], ['owner@contoso.com', 'IS_OWNER']], 'the account admin transfers it')

  // Warehouses: a PUT keeps the owner; one on a warehouse without an owner must name one.
  await control('POST', `${ws}/objects`, { type: 'warehouses', id: 'wh-1' })
  const warehouse = '/api/2.0/permissions/sql/warehouses/wh-1'
  t.equal((await api('PATCH', warehouse, { access_control_list: [{ group_name: 'Analysts', permission_level: 'CAN_USE' }] })).status, 200, 'PATCH on an ownerless warehouse')
  assertApiError(t, await api('PUT', warehouse, { access_control_list: [{ group_name: 'Analysts', permission_level: 'CAN_USE' }] }), 400, 'INVALID_PARAMETER_VALUE', 'PUT requests for warehouse wh-1 with no existing owner must provide a new owner.')
  t.equal((await api('PUT', warehouse, { access_control_list: [{ user_name: 'owner@contoso.com', permission_level: 'IS_OWNER' }] }, { token: wsAdmin })).status, 200)
  await api('PATCH', warehouse, { access_control_list: [{ user_name: 'manager@contoso.com', permission_level: 'CAN_MANAGE' }] })
  const kept = await api('PUT', '/api/2.0/permissions/warehouses/wh-1', { access_control_list: [{ group_name: 'Analysts', permission_level: 'CAN_USE' }, { user_name: 'manager@contoso.com', permission_level: 'CAN_MANAGE' }] }, { token: manager })
  t.same(direct(kept.body), [['Analysts', 'CAN_USE'], ['manager@contoso.com', 'CAN_MANAGE'], ['owner@contoso.com', 'IS_OWNER']], 'a PUT without an owner keeps it')
  assertApiError(t, await api('PATCH', warehouse, { access_control_list: [{ user_name: 'manager@contoso.com', permission_level: 'IS_OWNER' }] }, { token: manager }), 403, 'PERMISSION_DENIED', 'Only workspace admins can change the owner of warehouse wh-1. manager@contoso.com is not a workspace admin.')
  assertApiError(t, await api('PATCH', warehouse, { access_control_list: [{ group_name: 'users', permission_level: 'IS_OWNER' }] }, { token: wsAdmin }), 400, 'INVALID_PARAMETER_VALUE', /a group cannot be the owner/)
})

t.test('cluster policies: only admins change their permissions', async t => {
  const { api, control } = await startDatabricks(t)
  const ws = `/workspaces/${DEFAULT_WORKSPACE_ID}`
  const user = await createUser(api, 'user@contoso.com')
  const admin = await createUser(api, 'wsadmin@contoso.com')
  await control('PUT', `${ws}/assignments`, { principalId: user, permissions: ['USER'] })
  await control('PUT', `${ws}/assignments`, { principalId: admin, permissions: ['ADMIN'] })
  const userToken = (await control('POST', '/tokens', { principalId: user })).body.token
  const adminToken = (await control('POST', '/tokens', { principalId: admin })).body.token
  await control('POST', `${ws}/objects`, { type: 'cluster-policies', id: 'ABC123' })
  const policy = '/api/2.0/permissions/cluster-policies/ABC123'
  t.equal((await api('PATCH', policy, { access_control_list: [{ user_name: 'user@contoso.com', permission_level: 'CAN_USE' }] }, { token: adminToken })).status, 200, 'a workspace admin')
  assertApiError(t, await api('PATCH', policy, { access_control_list: [{ group_name: 'users', permission_level: 'CAN_USE' }] }, { token: userToken }), 403, 'PERMISSION_DENIED', 'Only workspace admins can change the permissions of cluster policy ABC123. user@contoso.com is not a workspace admin.')
  assertApiError(t, await api('PUT', policy, { access_control_list: [] }, { token: userToken }), 403, 'PERMISSION_DENIED')
  // Whatever the policy grants a user (CAN_USE is its only level), the user cannot change its grants.
  t.same(direct((await api('GET', policy, undefined, { token: userToken })).body), [['user@contoso.com', 'CAN_USE']], 'reading is allowed')
  assertApiError(t, await api('PATCH', policy, { access_control_list: [{ user_name: 'user@contoso.com', permission_level: 'CAN_USE' }] }, { token: userToken }), 403, 'PERMISSION_DENIED')
  t.equal((await api('PATCH', policy, { access_control_list: [{ group_name: 'users', permission_level: 'CAN_USE' }] })).status, 200, 'an account admin')
})

t.test('control API: owners of seeded objects keep the one-owner rule', async t => {
  const { api, control } = await startDatabricks(t)
  const ws = `/workspaces/${DEFAULT_WORKSPACE_ID}`
  const owner = await createUser(api, 'owner@contoso.com')
  const other = await createUser(api, 'other@contoso.com')
  const group = await createGroup(api, 'Analysts')
  const groupOwned = await control('POST', `${ws}/objects`, { type: 'jobs', id: '1', owner: { principal_id: group } })
  t.equal(groupOwned.status, 400)
  t.match(groupOwned.body.error.message, /a group cannot be the owner/)
  t.equal((await control('POST', `${ws}/objects`, { type: 'notebooks', path: '/Shared/nb', owner: { principal_id: owner } })).status, 400, 'notebooks have no owner')
  t.equal((await control('POST', `${ws}/objects`, { type: 'jobs', id: '1', owner: { user_name: 'nobody@contoso.com' } })).status, 404)
  const created = await control('POST', `${ws}/objects`, { type: 'jobs', id: '1', owner: { principal_id: owner } })
  t.match(created.body, { type: 'jobs', id: '1', owner })

  const acls = async (body: Record<string, unknown>): Promise<any> => await control('PUT', `${ws}/acls`, { type: 'jobs', id: '1', ...body })
  const two = await acls({ access_control_list: [{ principal_id: owner, permission_level: 'IS_OWNER' }, { principal_id: other, permission_level: 'IS_OWNER' }] })
  t.equal(two.status, 400)
  t.equal(two.body.error.message, 'The job must have exactly one owner.')
  t.equal((await acls({ access_control_list: [{ group_name: 'Analysts', permission_level: 'IS_OWNER' }] })).status, 400)
  const moved = await acls({ mode: 'merge', access_control_list: [{ user_name: 'other@contoso.com', permission_level: 'IS_OWNER' }] })
  t.same(direct(moved.body), [['owner@contoso.com', 'CAN_MANAGE'], ['other@contoso.com', 'IS_OWNER']], 'a transfer by merge keeps one owner')
  const ownerless = await acls({ access_control_list: [{ group_name: 'Analysts', permission_level: 'CAN_VIEW' }] })
  t.same(direct(ownerless.body), [['Analysts', 'CAN_VIEW']], 'seeding may leave a legacy job without an owner')
  // The Permissions API then needs an admin to give it one.
  assertApiError(t, await api('PUT', '/api/2.0/permissions/jobs/1', { access_control_list: [{ group_name: 'Analysts', permission_level: 'CAN_VIEW' }] }), 400, 'INVALID_PARAMETER_VALUE', 'The job must have exactly one owner.')
  t.same(direct((await api('PATCH', '/api/2.0/permissions/jobs/1', { access_control_list: [{ user_name: 'owner@contoso.com', permission_level: 'IS_OWNER' }] })).body), [['Analysts', 'CAN_VIEW'], ['owner@contoso.com', 'IS_OWNER']])
})

t.test('unknown principals and objects get the documented errors', async t => {
  const { api } = await startDatabricks(t)
  const dashboard = (await api('POST', '/api/2.0/lakeview/dashboards', { display_name: 'Mine' })).body
  t.equal(dashboard.parent_path, '/Users/admin@databricks-emulator.local', 'default parent: the caller\'s home folder')
  const url = `/api/2.0/permissions/dashboards/${dashboard.dashboard_id as string}`
  assertApiError(t, await api('PATCH', url, { access_control_list: [{ user_name: 'alice@contoso-test.onmicrosoft.com', permission_level: 'CAN_READ' }] }), 400, 'BAD_REQUEST', 'Principal: UserName(alice@contoso-test.onmicrosoft.com) does not exist')
  assertApiError(t, await api('PATCH', url, { access_control_list: [{ group_name: 'Nobody', permission_level: 'CAN_READ' }] }), 400, 'BAD_REQUEST', 'Principal: GroupName(Nobody) does not exist')
  assertApiError(t, await api('PUT', url, { access_control_list: [{ service_principal_name: T.etlAppId, permission_level: 'CAN_READ' }] }), 400, 'BAD_REQUEST', `Principal: ServicePrincipalName(${T.etlAppId}) does not exist`)
  t.equal((await api('GET', url)).body.access_control_list.length, 1, 'a failed PUT changes nothing')
  // Once resolved (materialised), the same grant works: the resolver's order of operations.
  await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.alice })
  t.equal((await api('PATCH', url, { access_control_list: [{ user_name: 'alice@contoso-test.onmicrosoft.com', permission_level: 'CAN_READ' }] })).status, 200)

  assertApiError(t, await api('GET', '/api/2.0/permissions/dashboards/0000'), 404, 'RESOURCE_DOES_NOT_EXIST', 'Dashboard 0000 does not exist.')
  assertApiError(t, await api('GET', '/api/2.0/permissions/notebooks/1234'), 404, 'RESOURCE_DOES_NOT_EXIST')
  assertApiError(t, await api('GET', '/api/2.0/permissions/spaceships/1'), 400, 'INVALID_PARAMETER_VALUE', /spaceships is not a valid request object type/)
  assertApiError(t, await api('GET', `${url}/permissionLevels/extra`), 404, 'ENDPOINT_NOT_FOUND')
  assertApiError(t, await api('PATCH', url, { access_control_list: [{ permission_level: 'CAN_READ' }] }), 400, 'INVALID_PARAMETER_VALUE', /exactly one of/)
  assertApiError(t, await api('PATCH', url, { access_control_list: 'all' }), 400, 'INVALID_PARAMETER_VALUE')
})

t.test('Lakeview: create, get, publish with embed_credentials; non-admins', async t => {
  const emulator = await startDatabricks(t)
  const { api, control } = emulator
  const created = (await api('POST', '/api/2.0/lakeview/dashboards', { display_name: 'Sales', parent_path: '/Shared', serialized_dashboard: '{"pages":[{"name":"p"}]}' })).body
  const id = created.dashboard_id as string
  const got = await api('GET', `/api/2.0/lakeview/dashboards/${id}`)
  t.same(got.body, created)
  assertApiError(t, await api('GET', `/api/2.0/lakeview/dashboards/${id}/published`), 404, 'RESOURCE_DOES_NOT_EXIST')
  const published = await api('POST', `/api/2.0/lakeview/dashboards/${id}/published`, { embed_credentials: true, warehouse_id: 'wh-9' })
  t.equal(published.status, 200)
  t.match(published.body, { display_name: 'Sales', embed_credentials: true, warehouse_id: 'wh-9', revision_create_time: String })
  t.same((await api('GET', `/api/2.0/lakeview/dashboards/${id}/published`)).body, published.body)
  const viewerCreds = await api('POST', `/api/2.0/lakeview/dashboards/${id}/published`, { embed_credentials: false })
  t.equal(viewerCreds.body.embed_credentials, false)
  assertApiError(t, await api('POST', `/api/2.0/lakeview/dashboards/${id}/published`, { embed_credentials: 'yes' }), 400, 'INVALID_PARAMETER_VALUE')
  t.match((await control('GET', '/state')).body.workspaces[0].dashboards, [{ dashboard_id: id, published: { embedCredentials: false } }])
  t.same((await api('DELETE', `/api/2.0/lakeview/dashboards/${id}/published`)).body, {})
  t.equal((await api('GET', '/api/2.0/lakeview/dashboards')).body.dashboards.length, 1)
  assertApiError(t, await api('POST', '/api/2.0/lakeview/dashboards', { display_name: 'Sales', parent_path: '/Shared' }), 409, 'RESOURCE_ALREADY_EXISTS')
  assertApiError(t, await api('POST', '/api/2.0/lakeview/dashboards', { display_name: 'X', parent_path: '/Nowhere' }), 404, 'RESOURCE_DOES_NOT_EXIST', 'Path (/Nowhere) doesn\'t exist.')
  assertApiError(t, await api('POST', '/api/2.0/lakeview/dashboards', {}), 400, 'INVALID_PARAMETER_VALUE', /display_name/)
  assertApiError(t, await api('GET', '/api/2.0/lakeview/dashboards/nope'), 404, 'RESOURCE_DOES_NOT_EXIST')

  // A workspace user (not an admin) creates a dashboard in its home folder and manages it; it cannot
  // change grants on a dashboard it does not manage.
  const user = await createUser(api, 'worker@contoso.com')
  await control('PUT', `/workspaces/${DEFAULT_WORKSPACE_ID}/assignments`, { principalId: user, permissions: ['USER'] })
  const token = (await control('POST', '/tokens', { principalId: user })).body.token as string
  t.match(token, /^dapi[0-9a-f]{32}$/)
  const own = await api('POST', '/api/2.0/lakeview/dashboards', { display_name: 'Own' }, { token })
  t.equal(own.body.parent_path, '/Users/worker@contoso.com')
  const ownPerms = await api('PATCH', `/api/2.0/permissions/dashboards/${own.body.dashboard_id as string}`, { access_control_list: [{ group_name: 'users', permission_level: 'CAN_READ' }] }, { token })
  t.equal(ownPerms.status, 200, 'the creator manages its dashboard')
  t.match(ownPerms.body.access_control_list.find((e: any) => e.user_name === 'worker@contoso.com').all_permissions, [
    { permission_level: 'CAN_MANAGE', inherited: false },
    { permission_level: 'CAN_MANAGE', inherited: true }
  ], 'direct on the dashboard, inherited from the home folder')
  t.equal((await api('GET', `/api/2.0/permissions/dashboards/${id}`, undefined, { token })).status, 200, 'reading grants is allowed')
  assertApiError(t, await api('PATCH', `/api/2.0/permissions/dashboards/${id}`, { access_control_list: [] }, { token }), 403, 'PERMISSION_DENIED')
})
