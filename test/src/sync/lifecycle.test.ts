// Deletion, restore, rename and un-nesting as Entra does them, followed into the emulated Databricks
// account by the change feed (SCIM mode), and the caches in step under automatic identity management.
import t from 'tap'
import { DEFAULT_WORKSPACE_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { tokenFor } from '../../helpers/service.ts'
import { groupOf, round, syncDir, syncHarness, userOf } from '../../helpers/sync.ts'

const WS = DEFAULT_WORKSPACE_ID
const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
const { tenant, control, scim, account, start, login, freshAccount } = syncHarness(emulator)

t.test('a user soft-deleted, restored, then deleted for good: inactive, active, inactive — never removed', async t => {
  await freshAccount()
  const { service } = await start(t, syncDir(t))
  t.teardown(service.close)
  t.equal((await login(service, T.bob)).statusCode, 200)
  const id = userOf(await account(), T.bob)?.id
  const token = await tokenFor(emulator, T.bob)

  await control('DELETE', `/tenant/users/${T.bob}`)
  t.equal((await round(service)).applied.deactivated, 1, 'soft-deleted: deactivated')
  t.equal(userOf(await account(), T.bob)?.active, false)
  const refused = await service.app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  t.equal(refused.json().code, 'PRINCIPAL_NOT_FOUND', 'its still-valid token is refused at once: Entra no longer has it')

  await control('POST', `/tenant/users/${T.bob}/restore`)
  t.equal((await round(service)).applied.activated, 1, 'restored: active again')
  const restored = userOf(await account(), T.bob)
  t.equal(restored?.active, true)
  t.equal(restored?.id, id, 'the same account user: grants to it survived')

  await control('DELETE', `/tenant/users/${T.bob}?permanent=true`)
  t.equal((await round(service)).applied.deactivated, 1, 'deleted for good: deactivated')
  t.equal(userOf(await account(), T.bob)?.active, false, 'kept, inactive (an operator removes it)')
})

t.test('a group renamed in Entra is renamed in Databricks, and an ACL that names it keeps applying', async t => {
  await freshAccount()
  const { service } = await start(t, syncDir(t))
  t.teardown(service.close)
  t.equal((await login(service, T.alice)).statusCode, 200)
  const dataPlatform = groupOf(await account(), T.dataPlatform)
  if (dataPlatform === undefined) throw new Error('Data Platform not materialized')
  t.equal(dataPlatform.displayName, `Data Platform (${T.dataPlatform.slice(0, 8)})`)
  const dashboard = await control('POST', `/databricks/workspaces/${WS}/dashboards`, { displayName: 'Costs' }) as { dashboard_id: string }
  await control('PUT', `/databricks/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboard.dashboard_id, mode: 'merge', access_control_list: [{ group_name: dataPlatform.displayName, permission_level: 'CAN_EDIT' }] })
  await control('PUT', `/databricks/workspaces/${WS}/assignments`, { principalId: dataPlatform.id, permissions: ['USER'] })

  await control('PATCH', `/tenant/groups/${T.dataPlatform}`, { displayName: 'Data Engineering' })
  t.equal((await round(service)).applied.groupRenamed, 1)
  const renamed = groupOf(await account(), T.dataPlatform)
  t.equal(renamed?.id, dataPlatform.id, 'the same account group')
  t.equal(renamed?.displayName, `Data Engineering (${T.dataPlatform.slice(0, 8)})`, 'named after Entra\'s new name, by the naming rules')

  const answer = await service.app.inject({ method: 'GET', url: `/v1/permissions/dashboards/${dashboard.dashboard_id}?workspaceId=${WS}`, headers: { authorization: `Bearer ${await tokenFor(emulator, T.alice)}` } })
  t.equal(answer.statusCode, 200, answer.body)
  t.equal(answer.json().level, 'CAN_EDIT', 'the grant to the group still applies')
  t.match(answer.json().grants[0], { via: 'group', group: renamed?.displayName }, 'and is shown under the group\'s new name')
})

t.test('a group named plainly before (another policy, another tool) keeps its name when its members change', async t => {
  await freshAccount()
  await scim('POST', '/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Finance', externalId: T.finance })
  const { service } = await start(t, syncDir(t))
  t.teardown(service.close)
  t.equal((await login(service, T.alice)).statusCode, 200)
  tenant().addMember(T.finance, T.alice)
  const report = await round(service)
  t.same(report.errors, [])
  t.equal(report.applied.membershipAdded, 1, 'alice added to the group, whose change carries its (unchanged) name')
  t.equal(groupOf(await account(), T.finance)?.displayName, 'Finance', 'not renamed to the display-with-id form')

  // Delta repeats the group's name with every membership change: once applied, it is not read again.
  await control('DELETE', '/calls')
  tenant().removeMember(T.finance, T.alice)
  const again = await round(service)
  t.equal(again.applied.membershipRemoved, 1)
  const calls = await control('GET', '/calls') as { routes: Record<string, number> }
  const groupReads = Object.entries(calls.routes).filter(([route]) => /^GET .*\/scim\/v2\/Groups$/.test(route)).reduce((n, [, c]) => n + c, 0)
  t.equal(groupReads, 1, "one read of the group (the membership's end), none for its unchanged name")
})

t.test('un-nesting in Entra: the permission answer no longer lists the grant through the parent', async t => {
  await freshAccount()
  const { service } = await start(t, syncDir(t))
  t.teardown(service.close)
  t.equal((await login(service, T.alice)).statusCode, 200)
  const engineering = groupOf(await account(), T.engineering)
  if (engineering === undefined) throw new Error('Engineering not materialized')
  const dashboard = await control('POST', `/databricks/workspaces/${WS}/dashboards`, { displayName: 'Roadmap' }) as { dashboard_id: string }
  await control('PUT', `/databricks/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboard.dashboard_id, mode: 'merge', access_control_list: [{ group_name: engineering.displayName, permission_level: 'CAN_READ' }] })
  await control('PUT', `/databricks/workspaces/${WS}/assignments`, { principalId: engineering.id, permissions: ['USER'] })
  const ask = async (): Promise<any> => (await service.app.inject({ method: 'GET', url: `/v1/permissions/dashboards/${dashboard.dashboard_id}?workspaceId=${WS}`, headers: { authorization: `Bearer ${await tokenFor(emulator, T.alice)}` } })).json()
  t.equal((await ask()).level, 'CAN_READ', 'alice reads it through Data Platform ⊂ Engineering')

  tenant().removeMember(T.engineering, T.dataPlatform)
  t.equal((await round(service)).applied.membershipRemoved, 1)
  const after = await ask()
  t.equal(after.level, null, 'no grant reaches her any more')
  t.same(after.grants, [])
  tenant().addMember(T.engineering, T.dataPlatform)
})

t.test('a group soft-deleted loses its memberships but stays; deleted for good, it is deleted', async t => {
  await freshAccount()
  const { service } = await start(t, syncDir(t))
  t.teardown(service.close)
  t.equal((await login(service, T.alice)).statusCode, 200)
  const before = groupOf(await account(), T.dataPlatform)
  if (before === undefined) throw new Error('Data Platform not materialized')
  t.ok(before.members.length > 0 && before.groups.length > 0, 'it has members and a parent')

  await control('DELETE', `/tenant/groups/${T.dataPlatform}`)
  const soft = await round(service)
  t.same(soft.errors, [])
  const kept = groupOf(await account(), T.dataPlatform)
  t.equal(kept?.id, before.id, 'the group stays (its grants survive a restore)')
  t.same(kept?.members, [], 'nobody is in it any more')
  t.same(kept?.groups, [], 'and it is in no Entra group')
  t.notOk(userOf(await account(), T.alice)?.groups.some(g => g.id === before.id), 'alice has no access through it')

  await control('DELETE', `/tenant/groups/${T.dataPlatform}?permanent=true`)
  t.equal((await round(service)).applied.groupDeleted, 1)
  t.notOk(groupOf(await account(), T.dataPlatform), 'deleted for good: gone from the account')
})

t.test('automatic identity management: nothing is written, and a disabled user is refused at once', async t => {
  await freshAccount({ aim: true })
  const { service } = await start(t, syncDir(t), { DATABRICKS_MODE: 'aim' })
  t.teardown(service.close)
  const token = await tokenFor(emulator, T.alice)
  const signIn = async (): Promise<number> => (await service.app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })).statusCode
  t.equal(await signIn(), 200, 'alice signs in (her principal is cached)')
  const writes = (): number => Object.entries(emulator.ctx.calls.snapshot().routes).filter(([r]) => /^(POST|PATCH|PUT|DELETE) \/api\/2\.0\/accounts\/[^/]+\/scim/.test(r)).reduce((n, [, c]) => n + c, 0)
  const before = writes()
  tenant().updateUser(T.alice, { accountEnabled: false })
  const report = await round(service)
  t.same(report.errors, [])
  t.equal(report.applied.mirrored, 1, 'Databricks follows Entra itself')
  t.equal(writes(), before, 'no SCIM write')
  t.equal(await signIn(), 403, 'refused at once, not after the cache TTL')
  tenant().updateUser(T.alice, { accountEnabled: true })
})
