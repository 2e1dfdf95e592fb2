// GET /v1/permissions/{objectType}/{objectId} and POST /v1/shares against the emulated account, in both
// materialization modes: effective permissions with their reasons, and sharing with anyone in Entra.
import t, { type Test } from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'

const UPN = {
  alice: 'alice@contoso-test.onmicrosoft.com',
  bob: 'bob@contoso-test.onmicrosoft.com',
  carol: 'carol@contoso-test.onmicrosoft.com'
}
const carol = { id: 'a0000000-0000-4000-8000-0000000000c1', userPrincipalName: UPN.carol, displayName: 'Carol Never-Signed-In' }
const WS = DEFAULT_WORKSPACE_ID

const emulator = await startTestEmulator(t, { tenants: [smallTenant({ users: [...smallTenant().users, carol] })] })
const { ctx, origin } = emulator

async function control (method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${origin}/_emulator/databricks${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const json = await res.json()
  if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

interface State { users: Array<{ externalId: string | null, userName: string }>, workspaces: Array<{ id: string, assignments: unknown[] }> }
const state = async (): Promise<State> => await control('GET', '/state') as State
const permissionCalls = (method: string): number => Object.entries(ctx.calls.snapshot().routes)
  .filter(([r]) => r.startsWith(`${method} /api/2.0/permissions/`)).reduce((n, [, c]) => n + c, 0)

/**
 * A fresh account: bob manages a dashboard in /Shared/Sales, published with embedded credentials; the
 * folder grants CAN_EDIT to "All Staff" (alice is in it three groups deep). bob signed in once, so he and
 * his groups exist; alice did too, so "Data Platform" exists.
 */
async function setUp (t: Test, mode: 'scim' | 'aim') {
  await control('POST', '/reset')
  await control('PUT', '/rate-limits', { enabled: false })
  await control('PUT', '/settings', { aimEnabled: mode === 'aim' })
  const service = await startService(t, emulator, {
    DATABRICKS_HOST: origin,
    DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
    DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
    DATABRICKS_MODE: mode,
    // The account's limits are off: the service's write budgets would only pace the test, not prove more.
    DATABRICKS_SCIM_PATCHES_PER_SECOND: '1000',
    DATABRICKS_SCIM_WRITES_PER_SECOND: '1000'
  })
  const { app } = service
  const tokens = {
    alice: await tokenFor(emulator, T.alice),
    bob: await tokenFor(emulator, T.bob),
    carol: await tokenFor(emulator, carol.id),
    admin: await tokenFor(emulator, T.etlSp, { claims: { roles: ['Identity.Admin'] } })
  }
  for (const token of [tokens.alice, tokens.bob]) {
    const login = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
    t.equal(login.statusCode, 200, 'signed in')
  }
  const folder = await control('POST', `/workspaces/${WS}/objects`, { type: 'directories', path: '/Shared/Sales' })
  const dashboard = await control('POST', `/workspaces/${WS}/dashboards`, { displayName: 'Pipeline', parentPath: '/Shared/Sales', published: { embedCredentials: true } })
  // The account's name for the group: named with its object id in SCIM mode (the default naming), as Entra names it under AIM.
  const allStaff = mode === 'scim' ? `All Staff (${T.allStaff.slice(0, 8)})` : 'All Staff'
  await control('PUT', `/workspaces/${WS}/acls`, { type: 'directories', id: folder.id, access_control_list: [{ group_name: allStaff, permission_level: 'CAN_EDIT' }] })
  await control('PUT', `/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboard.dashboard_id, access_control_list: [{ user_name: UPN.bob, permission_level: 'CAN_MANAGE' }] })
  const dashboardId = dashboard.dashboard_id as string
  const permissions = async (token: string, query = '', id = dashboardId, type = 'dashboards') => await app.inject({
    method: 'GET',
    url: `/v1/permissions/${type}/${id}?workspaceId=${WS}${query}`,
    headers: { authorization: `Bearer ${token}` }
  })
  const share = async (token: string, payload: Record<string, unknown>) => await app.inject({
    method: 'POST',
    url: '/v1/shares',
    headers: { authorization: `Bearer ${token}` },
    payload: { workspaceId: WS, objectType: 'dashboards', objectId: dashboardId, ...payload }
  })
  return { app, tokens, folderId: folder.id as string, dashboardId, permissions, share, allStaff }
}

for (const mode of ['scim', 'aim'] as const) {
  t.test(`${mode}: three groups deep under a folder grant: CAN_EDIT on the dashboard, with the path and the inheritance`, async t => {
    const { tokens, folderId, permissions, allStaff } = await setUp(t, mode)
    const res = await permissions(tokens.alice)
    t.equal(res.statusCode, 200)
    const body = res.json()
    t.equal(body.level, 'CAN_EDIT')
    t.equal(body.principal.id, T.alice)
    t.match(body.grants[0], {
      level: 'CAN_EDIT',
      via: 'group',
      group: allStaff,
      groupPath: ['Data Platform', 'Engineering', allStaff],
      inherited: true,
      inheritedFrom: [`/directories/${folderId}`]
    })
    t.match(body.grants[0].reason, /All Staff.*Data Platform ⊂ Engineering ⊂ All Staff.*inherited from \/directories\//)
    t.same(body.workspace, { access: 'NONE' }, 'alice has no workspace assignment')
    t.match(body.dashboard, { published: true, embedCredentials: true, canViewPublished: true })
  })

  t.test(`${mode}: sharing with a user who never signed in; their effective permission is the grant`, async t => {
    const { tokens, permissions, share } = await setUp(t, mode)
    t.notOk((await state()).users.some(u => u.externalId === carol.id), 'carol is not in the account yet')
    const shared = await share(tokens.bob, { principal: UPN.carol })
    t.equal(shared.statusCode, 200, JSON.stringify(shared.json()))
    t.match(shared.json(), {
      grant: { objectType: 'dashboards', level: 'CAN_READ', principalName: UPN.carol, changed: true },
      principal: { id: carol.id, kind: 'user' },
      workspace: { access: 'NONE' },
      dashboard: { canViewPublished: true }
    })
    const s = await state()
    t.equal(s.users.filter(u => u.externalId === carol.id).length, 1, 'materialized at account level once')
    t.notOk(JSON.stringify(s.workspaces.find(w => w.id === WS)?.assignments).includes(shared.json().databricks.principalId), 'not assigned to the workspace')

    const asked = await permissions(tokens.bob, `&principal=${encodeURIComponent(UPN.carol)}`)
    t.equal(asked.statusCode, 200)
    t.equal(asked.json().level, 'CAN_READ')
    t.match(asked.json().grants, [{ level: 'CAN_READ', via: 'user', inherited: false, reason: `CAN_READ granted to user '${UPN.carol}', directly on the object` }])

    // Sharing twice changes nothing: no PATCH, same ACL.
    ctx.calls.reset()
    const again = await share(tokens.bob, { principal: carol.id })
    t.equal(again.statusCode, 200)
    t.equal(again.json().grant.changed, false)
    t.equal(permissionCalls('PATCH'), 0, 'no write')
    t.equal((await state()).users.filter(u => u.externalId === carol.id).length, 1, 'still one carol')

    // Carol, with CAN_READ only, cannot share on.
    const refused = await share(tokens.carol, { principal: UPN.alice })
    t.equal(refused.statusCode, 403)
    t.equal(refused.headers['content-type'], 'application/problem+json; charset=utf-8')
    t.match(refused.json(), { code: 'SHARE_FORBIDDEN', detail: /needs CAN_MANAGE.*you have CAN_READ/ })
  })
}

t.test('aim: sharing with a group reaches its members; with a service principal by appId', async t => {
  const { tokens, permissions, share } = await setUp(t, 'aim')
  const group = await share(tokens.bob, { principal: T.finance, level: 'CAN_RUN' })
  t.equal(group.statusCode, 200, JSON.stringify(group.json()))
  t.match(group.json(), { grant: { level: 'CAN_RUN', changed: true }, principal: { kind: 'group', id: T.finance } })
  const gina = await permissions(tokens.admin, `&principal=${T.guest}`)
  t.equal(gina.statusCode, 200, 'Identity.Admin may ask about anyone')
  t.equal(gina.json().level, 'CAN_EDIT', 'All Staff ⊃ Finance still wins through the folder')
  t.match(gina.json().grants.map((g: { level: string, group: string, groupPath: string[] }) => [g.level, g.group, g.groupPath]), [
    ['CAN_EDIT', 'All Staff', ['Finance', 'All Staff']],
    ['CAN_RUN', group.json().grant.principalName, [group.json().grant.principalName]]
  ])

  const sp = await share(tokens.bob, { principal: T.etlAppId, by: 'appId', level: 'CAN_EDIT' })
  t.equal(sp.statusCode, 200, JSON.stringify(sp.json()))
  t.match(sp.json().grant, { principalName: T.etlAppId, level: 'CAN_EDIT' })
  const etl = await permissions(tokens.admin, `&principal=${T.etlAppId}&by=appId`)
  t.match(etl.json().grants[0], { via: 'servicePrincipal', level: 'CAN_EDIT', inherited: false })
})

t.test('refusals and bad input, each with a code that says what to fix', async t => {
  const { app, tokens, dashboardId, permissions, share } = await setUp(t, 'aim')
  const cases: Array<[string, Awaited<ReturnType<typeof share>>, number, string]> = [
    ['target not in the directory', await share(tokens.bob, { principal: 'nobody@contoso-test.onmicrosoft.com' }), 404, 'SHARE_TARGET_NOT_FOUND'],
    ['disabled target', await share(tokens.bob, { principal: T.disabled }), 409, 'SHARE_TARGET_DISABLED'],
    ['level the type does not have', await share(tokens.bob, { principal: UPN.carol, level: 'CAN_ATTACH_TO' }), 400, 'INVALID_PERMISSION_LEVEL'],
    ['unknown object type', await share(tokens.bob, { principal: UPN.carol, objectType: 'spaceships' }), 400, 'UNKNOWN_OBJECT_TYPE'],
    ['unknown dashboard', await share(tokens.bob, { principal: UPN.carol, objectId: '0123456789abcdef0123456789abcdef' }), 404, 'OBJECT_NOT_FOUND'],
    ['unknown workspace', await share(tokens.bob, { principal: UPN.carol, workspaceId: '42' }), 404, 'WORKSPACE_NOT_FOUND'],
    ['no CAN_MANAGE (alice has CAN_EDIT)', await share(tokens.alice, { principal: UPN.carol }), 403, 'SHARE_FORBIDDEN'],
    ['no token', await share('', { principal: UPN.carol }), 401, 'TOKEN_MISSING'],
    ['asking about someone else without CAN_MANAGE', await permissions(tokens.alice, `&principal=${UPN.bob}`), 403, 'PERMISSION_QUERY_FORBIDDEN'],
    ['asking about a group', await permissions(tokens.bob, `&principal=${T.finance}`), 400, 'UNSUPPORTED_PRINCIPAL_KIND'],
    ['asking about nobody', await permissions(tokens.bob, '&principal=nobody@contoso-test.onmicrosoft.com'), 404, 'PRINCIPAL_NOT_FOUND'],
    ['no workspace id', await app.inject({ method: 'GET', url: `/v1/permissions/dashboards/${dashboardId}`, headers: { authorization: `Bearer ${tokens.bob}` } }), 400, 'INVALID_REQUEST']
  ]
  for (const [name, res, status, code] of cases) {
    t.equal(res.statusCode, status, `${name}: ${status}`)
    t.equal(res.json().code, code, `${name}: ${code}`)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
  }
  // A principal disabled in Entra can do nothing, whatever it was granted; the grants are still shown.
  const resolved = await fetch(`${origin}/api/2.0/identity/accounts/${DEFAULT_ACCOUNT_ID}/users/resolve-by-external-id`, {
    method: 'POST',
    headers: { authorization: `Bearer ${DATABRICKS_ADMIN_PAT}`, 'content-type': 'application/json' },
    body: JSON.stringify({ external_id: T.disabled })
  })
  t.equal(resolved.status, 200, 'dan is in the account (from before he left)')
  await control('PUT', `/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboardId, mode: 'merge', access_control_list: [{ user_name: 'dan@contoso-test.onmicrosoft.com', permission_level: 'CAN_EDIT' }] })
  ctx.clock.advance(11_000) // past the ACL cache's TTL
  const dan = await permissions(tokens.admin, `&principal=${T.disabled}`)
  t.equal(dan.statusCode, 200)
  t.match(dan.json(), { level: null, blocked: /disabled in Entra/, principal: { accountEnabled: false }, grants: [{ level: 'CAN_EDIT', via: 'user' }] })

  // Asking about oneself by name is always allowed.
  t.equal((await permissions(tokens.alice, `&principal=${UPN.alice}`)).json().level, 'CAN_EDIT')
})

t.test('ACLs are cached briefly: a second question makes no Permissions API call until the TTL passes', async t => {
  const { tokens, permissions } = await setUp(t, 'aim')
  t.equal((await permissions(tokens.alice)).statusCode, 200)
  ctx.calls.reset()
  t.equal((await permissions(tokens.alice)).json().level, 'CAN_EDIT')
  t.equal(permissionCalls('GET'), 0, 'served from cache')
  ctx.clock.advance(11_000)
  t.equal((await permissions(tokens.alice)).json().level, 'CAN_EDIT')
  t.equal(permissionCalls('GET'), 1, 're-read after the TTL')
})

t.test('a workspace admin manages everything, as a reason of its own', async t => {
  const { app, tokens, permissions } = await setUp(t, 'aim')
  const login = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${tokens.carol}` } })
  await control('PUT', `/workspaces/${WS}/assignments`, { principalId: login.json().databricks.principalId, permissions: ['ADMIN'] })
  ctx.clock.advance(31_000)
  const res = await permissions(tokens.carol)
  t.equal(res.json().level, 'CAN_MANAGE')
  t.match(res.json().workspace, { access: 'DIRECT', permission: 'ADMIN' })
  t.match(res.json().grants[0], { via: 'admins', reason: /workspace admin/ })
})

t.test('without a Databricks account: 400 DATABRICKS_NOT_CONFIGURED', async t => {
  const { app } = await startService(t, emulator)
  const res = await app.inject({ method: 'GET', url: `/v1/permissions/dashboards/x?workspaceId=${WS}`, headers: { authorization: `Bearer ${await tokenFor(emulator, T.alice)}` } })
  t.equal(res.statusCode, 400)
  t.equal(res.json().code, 'DATABRICKS_NOT_CONFIGURED')
})
