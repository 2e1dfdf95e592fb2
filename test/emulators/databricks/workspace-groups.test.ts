// Workspace-local groups next to account groups: the control API makes one (members, entitlements) and
// grants it on an object; the workspace SCIM API lists both kinds under one name with their
// meta.resourceType ("WorkspaceGroup" / "Group"), projections included; the Permissions API reads a
// group_name as the workspace-local group first, and an ACL read names both entries by display name.
import t from 'tap'
import { DEFAULT_WORKSPACE_ID, SCIM, WS_SCIM, assertApiError, createGroup, createUser, startDatabricks } from '../../helpers/databricks.ts'

const WS = `/workspaces/${DEFAULT_WORKSPACE_ID}`
const OPS_EXTERNAL_ID = '0a0a0a0a-0000-4000-8000-00000000000a'

t.test('one name, two groups: workspace SCIM, projections, the Permissions API', async t => {
  const { api, control } = await startDatabricks(t)
  const alice = await createUser(api, 'alice@contoso.com')
  const bob = await createUser(api, 'bob@contoso.com')
  for (const id of [alice, bob]) await control('PUT', `${WS}/assignments`, { principalId: id, permissions: ['USER'] })
  const accountOps = await createGroup(api, 'Ops', { externalId: OPS_EXTERNAL_ID })
  await control('PUT', `${WS}/assignments`, { principalId: accountOps, permissions: ['USER'] })

  const made = await control('POST', `${WS}/groups`, { displayName: 'Ops', members: [alice], entitlements: ['workspace-access'] })
  t.equal(made.status, 201)
  t.same(made.body, { id: made.body.id, displayName: 'Ops', workspaceId: DEFAULT_WORKSPACE_ID, members: [alice], entitlements: ['workspace-access'] })
  t.match(made.body.id, /^\d{16}$/)
  const localOps = made.body.id as string
  const added = await control('POST', `${WS}/groups/${localOps}/members`, { members: [bob] })
  t.same(added.body.members, [alice, bob], 'members added')

  // Workspace SCIM: both, each with its resourceType.
  const filter = encodeURIComponent('displayName eq "Ops"')
  const listed = await api('GET', `${WS_SCIM}/Groups?filter=${filter}`)
  t.equal(listed.status, 200)
  const byId = new Map<string, any>(listed.body.Resources.map((g: any) => [g.id, g]))
  t.same([...byId.keys()].sort(), [accountOps, localOps].sort())
  t.match(byId.get(localOps), { displayName: 'Ops', meta: { resourceType: 'WorkspaceGroup' } })
  t.same(byId.get(localOps).members.map((m: any) => m.value), [alice, bob])
  t.notOk('externalId' in byId.get(localOps), 'a workspace-local group has no externalId')
  t.match(byId.get(accountOps), { displayName: 'Ops', externalId: OPS_EXTERNAL_ID, meta: { resourceType: 'Group' } })

  // Projections: meta stays when asked for (alone or with externalId); RFC 7643 §3.1 makes meta
  // "returned: default", so a projection that does not name it leaves it out.
  for (const attributes of ['id,displayName,meta', 'id,displayName,externalId,meta', 'displayName,meta.resourceType']) {
    const projected = (await api('GET', `${WS_SCIM}/Groups?filter=${filter}&attributes=${attributes}`)).body.Resources
    t.same(projected.map((g: any) => [g.id, g.meta.resourceType]).sort(), [[accountOps, 'Group'], [localOps, 'WorkspaceGroup']].sort(), `attributes=${attributes}`)
    for (const g of projected) t.notOk('members' in g, `attributes=${attributes}: only what was asked for`)
  }
  const withExternalId = (await api('GET', `${WS_SCIM}/Groups?filter=${filter}&attributes=id,displayName,externalId,meta`)).body.Resources
  t.equal(withExternalId.find((g: any) => g.id === accountOps).externalId, OPS_EXTERNAL_ID)
  const noMeta = (await api('GET', `${WS_SCIM}/Groups?filter=${filter}&attributes=id,displayName,externalId`)).body.Resources
  t.same(noMeta.map((g: any) => Object.keys(g).sort()).sort(), [['displayName', 'externalId', 'id', 'schemas'], ['displayName', 'id', 'schemas']])
  const one = await api('GET', `${WS_SCIM}/Groups/${localOps}?attributes=id,meta`)
  t.same(one.body, { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], id: localOps, meta: { resourceType: 'WorkspaceGroup' } })

  // The account API knows only the account group; a member sees the local group among its groups.
  t.same((await api('GET', `${SCIM}/Groups?filter=${filter}`)).body.Resources.map((g: any) => g.id), [accountOps])
  const bobInWs = (await api('GET', `${WS_SCIM}/Users/${bob}`)).body
  t.ok(bobInWs.groups.some((g: any) => g.value === localOps && g.type === 'direct'), 'the local group among the member\'s groups')

  // The Permissions API: group_name "Ops" is the workspace-local group; the account group is reachable
  // only by id through the control API. An ACL read names both "Ops".
  const job = (await control('POST', `${WS}/objects`, { type: 'jobs', id: '77', owner: { user_name: 'alice@contoso.com' } })).body
  const url = `/api/2.0/permissions/jobs/${String(job.id)}`
  t.equal((await api('PATCH', url, { access_control_list: [{ group_name: 'Ops', permission_level: 'CAN_MANAGE_RUN' }] })).status, 200)
  const seeded = await control('PUT', `${WS}/acls`, { type: 'jobs', id: job.id, mode: 'merge', access_control_list: [{ principal_id: accountOps, permission_level: 'CAN_VIEW' }] })
  t.equal(seeded.status, 200)
  const acl = (await api('GET', url)).body.access_control_list
  t.same(acl.filter((e: any) => e.group_name === 'Ops'), [
    { group_name: 'Ops', display_name: 'Ops', all_permissions: [{ permission_level: 'CAN_MANAGE_RUN', inherited: false }] },
    { group_name: 'Ops', display_name: 'Ops', all_permissions: [{ permission_level: 'CAN_VIEW', inherited: false }] }
  ])
  const state = (await control('GET', '/state')).body.workspaces.find((w: any) => w.id === DEFAULT_WORKSPACE_ID)
  t.same(state.objects.find((o: any) => o.type === 'jobs' && o.id === '77').acl.map((e: any) => [e.principal.id, e.level]), [
    [alice, 'IS_OWNER'], [localOps, 'CAN_MANAGE_RUN'], [accountOps, 'CAN_VIEW']
  ], 'the grant by name went to the workspace-local group')
  t.match(state.groups.find((g: any) => g.id === localOps), { displayName: 'Ops', system: null, members: [{ id: alice }, { id: bob }] })
  // The control API's group_name also means the workspace-local group first.
  const byName = await control('PUT', `${WS}/acls`, { type: 'jobs', id: job.id, mode: 'merge', access_control_list: [{ group_name: 'ops', permission_level: 'CAN_MANAGE' }] })
  t.equal(byName.body.access_control_list.filter((e: any) => e.group_name === 'Ops').length, 2)
  const after = (await control('GET', '/state')).body.workspaces[0].objects.find((o: any) => o.id === '77').acl
  t.same(after.find((e: any) => e.principal.id === localOps).level, 'CAN_MANAGE')
})

t.test('membership in a workspace-local group counts for managing an object', async t => {
  const { api, control } = await startDatabricks(t)
  const bob = await createUser(api, 'bob@contoso.com')
  await control('PUT', `${WS}/assignments`, { principalId: bob, permissions: ['USER'] })
  const token = (await control('POST', '/tokens', { principalId: bob })).body.token as string
  const local = (await control('POST', `${WS}/groups`, { displayName: 'Runbook editors', members: [bob] })).body.id as string
  const notebook = (await control('POST', `${WS}/objects`, { type: 'notebooks', path: '/Shared/runbook' })).body
  await control('PUT', `${WS}/acls`, { type: 'notebooks', id: notebook.id, access_control_list: [{ group_name: 'Runbook editors', permission_level: 'CAN_MANAGE' }] })
  const url = `/api/2.0/permissions/notebooks/${String(notebook.id)}`
  t.equal((await api('PATCH', url, { access_control_list: [{ group_name: 'users', permission_level: 'CAN_READ' }] }, { token })).status, 200, 'a member manages through the group')
  const removed = await control('DELETE', `${WS}/groups/${local}/members`, { members: [bob] })
  t.same(removed.body.members, [])
  assertApiError(t, await api('PATCH', url, { access_control_list: [{ group_name: 'users', permission_level: 'CAN_READ' }] }, { token }), 403, 'PERMISSION_DENIED')
})

t.test('control API: workspace-local groups stay in their workspace', async t => {
  const { api, control } = await startDatabricks(t)
  const alice = await createUser(api, 'alice@contoso.com')
  const other = (await control('POST', '/workspaces', { name: 'second' })).body
  const mine = (await control('POST', `${WS}/groups`, { displayName: 'Ops' })).body.id as string
  const theirs = (await control('POST', `/workspaces/${String(other.id)}/groups`, { displayName: 'Ops', members: [alice] })).body
  t.match(theirs, { displayName: 'Ops', workspaceId: other.id }, 'the same name in another workspace')

  const dup = await control('POST', `${WS}/groups`, { displayName: 'ops' })
  t.equal(dup.status, 409, 'names are unique in a workspace, any case')
  t.equal((await control('POST', `${WS}/groups`, { displayName: 'admins' })).status, 409, 'the system groups are taken')
  t.equal((await control('POST', `${WS}/groups`, { displayName: 'X', members: [theirs.id] })).status, 404, 'a member from another workspace')
  t.equal((await control('POST', `${WS}/groups`, { displayName: 'X', members: ['1234567890123456'] })).status, 404, 'an unknown member')
  t.equal((await control('POST', `${WS}/groups`, { displayName: 'X', entitlements: ['fly'] })).status, 400)
  t.notOk((await control('GET', '/state')).body.workspaces[0].groups.some((g: any) => g.displayName === 'X'), 'a refused create makes nothing')
  t.equal((await control('POST', `${WS}/groups/${String(theirs.id)}/members`, { members: [alice] })).status, 404, 'another workspace\'s group')
  t.equal((await control('POST', `${WS}/groups/${String(other.usersGroupId)}/members`, { members: [alice] })).status, 404)
  const ws = (await control('GET', '/state')).body.workspaces[0]
  const admins = ws.groups.find((g: any) => g.system === 'admins').id as string
  t.equal((await control('POST', `${WS}/groups/${admins}/members`, { members: [alice] })).status, 400, 'system groups follow the assignments')
  t.equal((await control('POST', `${WS}/groups/${mine}/members`, { members: [mine] })).status, 400, 'not a member of itself')

  const job = (await control('POST', `${WS}/objects`, { type: 'jobs' })).body
  const grant = await control('PUT', `${WS}/acls`, { type: 'jobs', id: job.id, access_control_list: [{ principal_id: theirs.id, permission_level: 'CAN_VIEW' }] })
  t.equal(grant.status, 404, 'another workspace\'s local group cannot be granted here')
  // The Permissions API cannot name it either: "Ops" here is this workspace's group.
  await api('PATCH', `/api/2.0/permissions/jobs/${String(job.id)}`, { access_control_list: [{ group_name: 'Ops', permission_level: 'CAN_VIEW' }] })
  const state = (await control('GET', '/state')).body.workspaces[0].objects.find((o: any) => o.type === 'jobs' && o.id === job.id)
  t.same(state.acl.map((e: any) => e.principal.id), [mine])
})
