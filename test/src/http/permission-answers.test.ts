// Remembered permission answers (src/resolver/answer-cache.ts) are never staler than the caches they were
// computed from: a warm question is served remembered, and the next question after a share, an Entra change
// the sync applies, the ACL's TTL, the assignments' TTL or a workspace-local group taking a name gets the
// new answer, exactly when it did before answers were remembered. Time moves on the emulator's clock.
import t, { type Test } from 'tap'
import { DEFAULT_WORKSPACE_ID } from '../../../emulators/databricks/account.ts'
import type { Service } from '../../../src/service.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { tokenFor } from '../../helpers/service.ts'
import { round, syncDir, syncHarness } from '../../helpers/sync.ts'

const WS = DEFAULT_WORKSPACE_ID
const UPN = { alice: 'alice@contoso-test.onmicrosoft.com', bob: 'bob@contoso-test.onmicrosoft.com', carol: 'carol@contoso-test.onmicrosoft.com' }
const carol = { id: 'a0000000-0000-4000-8000-0000000000c1', userPrincipalName: UPN.carol, displayName: 'Carol Never-Signed-In' }
const emulator = await startTestEmulator(t, { tenants: [smallTenant({ users: [...smallTenant().users, carol] })] })
const { tenant, control, start, login, freshAccount } = syncHarness(emulator)
const clock = emulator.ctx.clock

/**
 * A fresh SCIM-mode account and a service with the change feed (rounds when the test asks): bob manages a
 * dashboard in /Shared/Sales, whose folder grants CAN_EDIT to All Staff (alice: Data Platform ⊂
 * Engineering ⊂ All Staff). alice and bob signed in, so they and their groups exist in the account.
 */
async function setUp (t: Test, env: Record<string, string> = {}) {
  await freshAccount()
  const { service } = await start(t, syncDir(t), env)
  t.teardown(service.close)
  const signedIn = { alice: await login(service, T.alice), bob: await login(service, T.bob) }
  t.equal(signedIn.alice.statusCode, 200)
  t.equal(signedIn.bob.statusCode, 200)
  const allStaff = `All Staff (${T.allStaff.slice(0, 8)})`
  const folder = await control('POST', `/databricks/workspaces/${WS}/objects`, { type: 'directories', path: '/Shared/Sales' })
  const dashboard = await control('POST', `/databricks/workspaces/${WS}/dashboards`, { displayName: 'Pipeline', parentPath: '/Shared/Sales', published: { embedCredentials: true } })
  await control('PUT', `/databricks/workspaces/${WS}/acls`, { type: 'directories', id: folder.id, access_control_list: [{ group_name: allStaff, permission_level: 'CAN_EDIT' }] })
  await control('PUT', `/databricks/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboard.dashboard_id, access_control_list: [{ user_name: 'bob@contoso-test.onmicrosoft.com', permission_level: 'CAN_MANAGE' }] })
  const tokens = {
    alice: await tokenFor(emulator, T.alice),
    bob: await tokenFor(emulator, T.bob),
    admin: await tokenFor(emulator, T.etlSp, { claims: { roles: ['Identity.Admin'] } })
  }
  const dashboardId = dashboard.dashboard_id as string
  const ask = async (token: string, principal?: string): Promise<any> => {
    const res = await service.app.inject({
      method: 'GET',
      url: `/v1/permissions/dashboards/${dashboardId}?workspaceId=${WS}${principal === undefined ? '' : `&principal=${encodeURIComponent(principal)}`}`,
      headers: { authorization: `Bearer ${token}` }
    })
    t.equal(res.statusCode, 200, res.body)
    return res.json()
  }
  const share = async (token: string, principal: string, level: string): Promise<void> => {
    const res = await service.app.inject({ method: 'POST', url: '/v1/shares', headers: { authorization: `Bearer ${token}` }, payload: { workspaceId: WS, objectType: 'dashboards', objectId: dashboardId, principal, level } })
    t.equal(res.statusCode, 200, res.body)
  }
  return { service, tokens, ask, share, dashboardId, allStaff, aliceId: signedIn.alice.json().databricks.principalId as string }
}

/** Answers served remembered so far (the service's own metrics). */
async function remembered (service: Service): Promise<number> {
  const text = (await service.app.inject('/metrics')).body
  return Number(/^resolver_cache_lookups_total\{cache="answers",result="hit"\} (\d+)/m.exec(text)?.[1] ?? 0)
}

t.test('a warm question is served remembered; a share changes the answer at once', async t => {
  const { service, tokens, ask, share } = await setUp(t)
  t.equal((await ask(tokens.bob, UPN.carol)).level, null, 'carol has nothing yet')
  const before = await remembered(service)
  t.equal((await ask(tokens.bob, UPN.carol)).level, null)
  t.equal(await remembered(service), before + 2, 'asked again: bob\'s standing and the answer about carol, both remembered')

  await share(tokens.bob, UPN.carol, 'CAN_READ')
  const after = await ask(tokens.bob, UPN.carol)
  t.equal(after.level, 'CAN_READ', 'the share shows at the very next question, with no time passed')
  t.match(after.grants, [{ level: 'CAN_READ', via: 'user', inherited: false }])
  await share(tokens.bob, UPN.carol, 'CAN_EDIT')
  t.equal((await ask(tokens.bob, UPN.carol)).level, 'CAN_EDIT', 'and a higher grant too')
})

t.test('an Entra change applied by the sync changes the answer at the next question', async t => {
  const { service, tokens, ask, allStaff } = await setUp(t)
  const first = await ask(tokens.alice)
  t.equal(first.level, 'CAN_EDIT')
  t.same(first.grants[0].groupPath, ['Data Platform', 'Engineering', allStaff])
  const before = await remembered(service)
  t.equal((await ask(tokens.alice)).level, 'CAN_EDIT')
  t.equal(await remembered(service), before + 1, 'served remembered')

  // Data Platform also joins All Staff directly: the same groups, the same level, a shorter path.
  tenant().addMember(T.allStaff, T.dataPlatform)
  t.equal((await round(service)).applied.membershipAdded, 1)
  const shorter = await ask(tokens.alice)
  t.equal(shorter.level, 'CAN_EDIT')
  t.same(shorter.grants[0].groupPath, ['Data Platform', allStaff], 'the shortest path, at the next question')
  tenant().removeMember(T.allStaff, T.dataPlatform)
  t.equal((await round(service)).applied.membershipRemoved, 1)
  t.same((await ask(tokens.alice)).grants[0].groupPath, ['Data Platform', 'Engineering', allStaff], 'and back')

  // Data Platform leaves Engineering: alice is no longer in All Staff.
  tenant().removeMember(T.engineering, T.dataPlatform)
  t.teardown(() => { tenant().addMember(T.engineering, T.dataPlatform) })
  t.equal((await round(service)).applied.membershipRemoved, 1)
  const unNested = await ask(tokens.alice)
  t.equal(unNested.level, null, 'no grant reaches her any more, with no time passed')
  t.same(unNested.grants, [])

  // Back in, through another path: Data Platform joins Finance ⊂ All Staff.
  tenant().addMember(T.finance, T.dataPlatform)
  t.teardown(() => { tenant().removeMember(T.finance, T.dataPlatform) })
  t.equal((await round(service)).applied.membershipAdded, 1)
  const renested = await ask(tokens.alice)
  t.equal(renested.level, 'CAN_EDIT')
  t.same(renested.grants[0].groupPath, ['Data Platform', 'Finance', allStaff], 'through the new nesting')
})

t.test('a principal disabled in Entra is blocked at the next question after the sync applies it', async t => {
  const { service, tokens, ask } = await setUp(t)
  t.equal((await ask(tokens.admin, UPN.alice)).level, 'CAN_EDIT')
  const before = await remembered(service)
  t.equal((await ask(tokens.admin, UPN.alice)).level, 'CAN_EDIT')
  t.ok(await remembered(service) > before, 'served remembered')

  tenant().updateUser(T.alice, { accountEnabled: false })
  t.teardown(() => { tenant().updateUser(T.alice, { accountEnabled: true }) })
  t.same((await round(service)).errors, [])
  t.match(await ask(tokens.admin, UPN.alice), { level: null, blocked: /disabled in Entra/, principal: { accountEnabled: false } })
})

t.test('a grant made in Databricks shows once the ACL\'s cache expires, as before answers were remembered', async t => {
  const { tokens, ask, dashboardId } = await setUp(t)
  t.equal((await ask(tokens.alice)).level, 'CAN_EDIT')
  await control('PUT', `/databricks/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboardId, mode: 'merge', access_control_list: [{ user_name: UPN.alice, permission_level: 'CAN_MANAGE' }] })
  clock.advance(9_000)
  t.equal((await ask(tokens.alice)).level, 'CAN_EDIT', 'within CACHE_ACL_TTL_SECONDS (10 s): the cached ACL, as ever')
  clock.advance(2_000)
  const after = await ask(tokens.alice)
  t.equal(after.level, 'CAN_MANAGE', 'past it: read again, answered anew')
  t.match(after.grants[0], { via: 'user', inherited: false })
})

t.test('a workspace assignment shows once the assignments\' cache expires, even while the ACL is still cached', async t => {
  const { tokens, ask, aliceId } = await setUp(t, { CACHE_ACL_TTL_SECONDS: '3600' })
  t.same((await ask(tokens.alice)).workspace, { access: 'NONE' })
  await control('PUT', `/databricks/workspaces/${WS}/assignments`, { principalId: aliceId, permissions: ['ADMIN'] })
  clock.advance(29_000)
  t.same((await ask(tokens.alice)).workspace, { access: 'NONE' }, 'within the assignments\' 30 s: cached, as ever')
  clock.advance(2_000)
  const admin = await ask(tokens.alice)
  t.same(admin.workspace, { access: 'DIRECT', permission: 'ADMIN' }, 'past them: answered anew')
  t.equal(admin.level, 'CAN_MANAGE')
  t.match(admin.grants[0], { via: 'admins' })
})

t.test('a workspace-local group taking the ACL\'s group name shows once the names\' cache expires', async t => {
  const { tokens, ask, allStaff } = await setUp(t, { CACHE_ACL_TTL_SECONDS: '3600' })
  t.equal((await ask(tokens.alice)).level, 'CAN_EDIT')
  // Databricks resolves an ACL's group name to the workspace-local group first: All Staff's grant is no longer Entra's.
  await control('POST', `/databricks/workspaces/${WS}/groups`, { displayName: allStaff })
  t.equal((await ask(tokens.alice)).level, 'CAN_EDIT', 'no local group was known by that name: remembered for 30 s, as ever')
  clock.advance(31_000)
  const shadowed = await ask(tokens.alice)
  t.equal(shadowed.level, null, 'past it: the local group holds the name, and the grant is not alice\'s')
  t.same(shadowed.grants, [])
})

t.test('a caller whose right to manage was revoked may no longer ask about others, though its answers were remembered', async t => {
  const { service, tokens, ask, dashboardId } = await setUp(t)
  t.equal((await ask(tokens.bob, UPN.carol)).level, null)
  const before = await remembered(service)
  t.equal((await ask(tokens.bob, UPN.carol)).level, null)
  t.equal(await remembered(service), before + 2, 'bob\'s standing and the answer about carol, both served from memory')

  // bob's CAN_MANAGE is taken away in Databricks (replace, not merge): once the ACL is read again, the
  // remembered standing is for an ACL that is no longer cached, so it can never be served.
  await control('PUT', `/databricks/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboardId, access_control_list: [{ user_name: UPN.alice, permission_level: 'CAN_READ' }] })
  clock.advance(11_000)
  const refused = await service.app.inject({
    method: 'GET',
    url: `/v1/permissions/dashboards/${dashboardId}?workspaceId=${WS}&principal=${encodeURIComponent(UPN.carol)}`,
    headers: { authorization: `Bearer ${tokens.bob}` }
  })
  t.equal(refused.statusCode, 403)
  t.equal(refused.json().code, 'PERMISSION_QUERY_FORBIDDEN')
  const again = await service.app.inject({
    method: 'GET',
    url: `/v1/permissions/dashboards/${dashboardId}?workspaceId=${WS}&principal=${encodeURIComponent(UPN.carol)}`,
    headers: { authorization: `Bearer ${tokens.bob}` }
  })
  t.equal(again.statusCode, 403, 'refused again from memory, never answered')
})

t.test('a caller without the right to manage is refused every time, also once its own standing is remembered', async t => {
  const { service, tokens, dashboardId } = await setUp(t)
  const askAbout = async (principal: string) => await service.app.inject({
    method: 'GET',
    url: `/v1/permissions/dashboards/${dashboardId}?workspaceId=${WS}&principal=${encodeURIComponent(principal)}`,
    headers: { authorization: `Bearer ${tokens.alice}` }
  })
  // alice holds CAN_EDIT through All Staff: she may see her own access, not ask about bob's.
  for (const attempt of ['first', 'second (her standing remembered)', 'third']) {
    const res = await askAbout(UPN.bob)
    t.equal(res.statusCode, 403, `${attempt} question refused`)
    t.equal(res.json().code, 'PERMISSION_QUERY_FORBIDDEN')
  }
  const self = await askAbout(UPN.alice)
  t.equal(self.statusCode, 200, 'asking about herself by name is her own question')
  t.equal(self.json().level, 'CAN_EDIT')
})
