// The service as an attacker tries it, against the emulated Entra, Graph and Databricks: ordinary users
// who hold a level on an object and try to grant more, use an admin-only type, borrow a workspace-local
// group's rights through an Entra group of the same name, name a group like a system group, squat a name,
// break others' logins with control characters, or probe the directory through permission questions.
import t, { type Test } from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'
import { callsMatching } from '../../helpers/registrations.ts'

const WS = DEFAULT_WORKSPACE_ID
const D = 'contoso-test.onmicrosoft.com'
const user = (n: number, name: string): { id: string, userPrincipalName: string, displayName: string } =>
  ({ id: `a0000000-0000-4000-8000-0000000005${String(n).padStart(2, '0')}`, userPrincipalName: `${name.toLowerCase()}@${D}`, displayName: name })
const U = { mallory: user(1, 'Mallory'), uma: user(2, 'Uma'), pat: user(3, 'Pat'), ctl: user(4, 'Ctl'), nobody: user(5, 'Nobody') }
const G = {
  ops: 'e0000000-0000-4000-8000-000000000001',
  users: 'e0000000-0000-4000-8000-000000000002',
  admins: 'e0000000-0000-4000-8000-000000000003',
  payroll: 'f1000000-0000-4000-8000-000000000001',
  payrollFake: 'f2000000-0000-4000-8000-000000000002',
  newline: 'e1000000-0000-4000-8000-000000000001',
  tab: 'e1000000-0000-4000-8000-000000000002',
  bell: 'e1000000-0000-4000-8000-000000000003',
  backslash: 'e1000000-0000-4000-8000-000000000004'
}
const CONTROL_NAMES: Record<string, string> = { [G.newline]: 'Night\nShift', [G.tab]: 'Tab\tTeam', [G.bell]: 'Bell\u0001\u001f', [G.backslash]: 'Trailing\\' }
const base = smallTenant()
const tenant = smallTenant({
  users: [...base.users, ...Object.values(U)],
  groups: [
    ...base.groups,
    // Made by Mallory, an ordinary user: Entra lets users create security groups.
    { id: G.ops, displayName: 'Ops', members: [U.mallory.id] },
    { id: G.payrollFake, displayName: 'Payroll', members: [U.mallory.id] },
    { id: G.payroll, displayName: 'Payroll', members: [U.pat.id] },
    { id: G.users, displayName: 'users', members: [U.uma.id] },
    { id: G.admins, displayName: 'admins', members: [U.uma.id] },
    ...Object.entries(CONTROL_NAMES).map(([id, displayName]) => ({ id, displayName, members: [U.ctl.id] }))
  ]
})
const emulator = await startTestEmulator(t, { tenants: [tenant] })
const { origin } = emulator
const withId = (name: string, id: string): string => `${name} (${id.slice(0, 8)})`

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
interface AclState { type: string, id: string, acl: Array<{ principal: { id: string, name?: string }, level: string }> }
const objectAcl = async (type: string, id: string): Promise<AclState['acl']> =>
  ((await control('GET', '/state')).workspaces.find((w: { id: string }) => w.id === WS).objects as AclState[]).find(o => o.type === type && o.id === id)?.acl ?? []
const accountGroupNames = async (): Promise<string[]> => ((await control('GET', '/state')).groups as Array<{ displayName: string }>).map(g => g.displayName)
const graphCalls = (): number => callsMatching(emulator, / \/v1\.0\//)

/**
 * A fresh account in SCIM mode: bob manages a dashboard, a notebook and a job (owned by alice), edits a
 * notebook, may use a cluster policy; alice is a workspace admin; bob, alice and mallory use the
 * workspace; the workspace has a local group `Ops` that manages the dashboard.
 */
async function setUp (t: Test, env: Record<string, string> = {}, mode: 'scim' | 'aim' = 'scim') {
  await control('POST', '/reset')
  await control('PUT', '/rate-limits', { enabled: false })
  await control('PUT', '/settings', { aimEnabled: mode === 'aim' })
  const service = await startService(t, emulator, {
    DATABRICKS_HOST: origin,
    DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
    DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
    DATABRICKS_MODE: mode,
    // The account's limits are off, so the service's write budgets (2 PATCHes a second) only slow the
    // logins down: what is under test is who may do what, not pacing.
    DATABRICKS_SCIM_PATCHES_PER_SECOND: '1000',
    DATABRICKS_SCIM_WRITES_PER_SECOND: '1000',
    ...env
  })
  const { app } = service
  const token = async (id: string, claims: Record<string, unknown> = {}): Promise<string> => await tokenFor(emulator, id, { claims })
  const tokens = { alice: await token(T.alice), bob: await token(T.bob), mallory: await token(U.mallory.id), uma: await token(U.uma.id), ctl: await token(U.ctl.id), pat: await token(U.pat.id) }
  const login = async (tok: string) => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${tok}` } })
  const ids: Record<string, string> = {}
  for (const [name, tok] of [['alice', tokens.alice], ['bob', tokens.bob]] as const) {
    const res = await login(tok)
    t.equal(res.statusCode, 200, `${name} signed in`)
    ids[name] = res.json().databricks.principalId
  }
  await control('PUT', `/workspaces/${WS}/assignments`, { principalId: ids.alice, permissions: ['ADMIN'] })
  await control('PUT', `/workspaces/${WS}/assignments`, { principalId: ids.bob, permissions: ['USER'] })
  const local = await control('POST', `/workspaces/${WS}/groups`, { displayName: 'Ops' })
  const dashboard = await control('POST', `/workspaces/${WS}/dashboards`, { displayName: 'Ops board', parentPath: '/Shared' })
  const dashboardId = dashboard.dashboard_id as string
  await control('PUT', `/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboardId, mode: 'merge', access_control_list: [{ principal_id: local.id, permission_level: 'CAN_MANAGE' }, { principal_id: ids.bob, permission_level: 'CAN_MANAGE' }] })
  const notebook = await control('POST', `/workspaces/${WS}/objects`, { type: 'notebooks', path: '/Shared/etl' })
  await control('PUT', `/workspaces/${WS}/acls`, { type: 'notebooks', id: notebook.id, mode: 'merge', access_control_list: [{ principal_id: ids.bob, permission_level: 'CAN_EDIT' }] })
  const job = await control('POST', `/workspaces/${WS}/objects`, { type: 'jobs', owner: { principal_id: ids.alice } })
  await control('PUT', `/workspaces/${WS}/acls`, { type: 'jobs', id: job.id, mode: 'merge', access_control_list: [{ principal_id: ids.bob, permission_level: 'CAN_MANAGE' }] })
  const policy = await control('POST', `/workspaces/${WS}/objects`, { type: 'cluster-policies' })
  await control('PUT', `/workspaces/${WS}/acls`, { type: 'cluster-policies', id: policy.id, mode: 'merge', access_control_list: [{ principal_id: ids.bob, permission_level: 'CAN_USE' }] })
  const share = async (tok: string, payload: Record<string, unknown>) => await app.inject({
    method: 'POST', url: '/v1/shares', headers: { authorization: `Bearer ${tok}` }, payload: { workspaceId: WS, ...payload }
  })
  const ask = async (tok: string, type: string, id: string, query = '') => await app.inject({
    method: 'GET', url: `/v1/permissions/${type}/${encodeURIComponent(id)}?workspaceId=${WS}${query}`, headers: { authorization: `Bearer ${tok}` }
  })
  return { app, service, tokens, ids, login, share, ask, localOps: local.id as string, dashboardId, notebookId: notebook.id as string, jobId: job.id as string, policyId: policy.id as string }
}

t.test('a share never grants more than the caller holds', async t => {
  const { tokens, share, jobId, notebookId, ids } = await setUp(t)
  const owner = await share(tokens.bob, { objectType: 'jobs', objectId: jobId, principal: `pat@${D}`, level: 'IS_OWNER' })
  t.equal(owner.statusCode, 403, 'CAN_MANAGE on a job: IS_OWNER is refused')
  t.equal(owner.json().code, 'SHARE_LEVEL_FORBIDDEN')
  t.match(owner.json().detail, /only a workspace admin/)
  t.equal(owner.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.notOk((await objectAcl('jobs', jobId)).some(e => e.principal.name === `pat@${D}`), 'nothing was written')

  const manage = await share(tokens.bob, { objectType: 'jobs', objectId: jobId, principal: `pat@${D}`, level: 'CAN_MANAGE' })
  t.equal(manage.statusCode, 200, 'CAN_MANAGE is his to grant')
  t.equal(manage.json().grant.level, 'CAN_MANAGE')

  const editor = await share(tokens.bob, { objectType: 'notebooks', objectId: notebookId, principal: `pat@${D}`, level: 'CAN_MANAGE' })
  t.equal(editor.statusCode, 403, 'CAN_EDIT on a notebook: may not grant CAN_MANAGE')
  t.equal(editor.json().code, 'SHARE_FORBIDDEN')
  const editorRead = await share(tokens.bob, { objectType: 'notebooks', objectId: notebookId, principal: `pat@${D}`, level: 'CAN_READ' })
  t.equal(editorRead.json().code, 'SHARE_FORBIDDEN', 'nor share it at all (Databricks: managing permissions needs CAN_MANAGE)')

  const admin = await share(tokens.alice, { objectType: 'notebooks', objectId: notebookId, principal: `pat@${D}`, level: 'CAN_MANAGE' })
  t.equal(admin.statusCode, 200, 'a workspace admin can')

  const transfer = await share(tokens.alice, { objectType: 'jobs', objectId: jobId, principal: `bob@${D}`, level: 'IS_OWNER' })
  t.equal(transfer.statusCode, 200, 'a workspace admin transfers ownership')
  const acl = await objectAcl('jobs', jobId)
  t.same(acl.filter(e => e.level === 'IS_OWNER').map(e => e.principal.id), [ids.bob], 'exactly one owner')
  t.ok(acl.some(e => e.principal.id === ids.alice && e.level === 'CAN_MANAGE'), 'the previous owner keeps CAN_MANAGE')

  const groupOwner = await share(tokens.alice, { objectType: 'jobs', objectId: jobId, principal: T.finance, level: 'IS_OWNER' })
  t.equal(groupOwner.statusCode, 400, 'a group cannot own a job')
  t.equal(groupOwner.json().code, 'INVALID_OWNER')
})

t.test('a cluster policy: using it is not managing it', async t => {
  const { tokens, share, ask, policyId } = await setUp(t)
  const shared = await share(tokens.bob, { objectType: 'cluster-policies', objectId: policyId, principal: `pat@${D}` })
  t.equal(shared.statusCode, 403)
  t.equal(shared.json().code, 'SHARE_FORBIDDEN')
  t.match(shared.json().detail, /Only workspace admins/)
  const asked = await ask(tokens.bob, 'cluster-policies', policyId, `&principal=${T.alice}`)
  t.equal(asked.statusCode, 403)
  t.equal(asked.json().code, 'PERMISSION_QUERY_FORBIDDEN')
  const own = await ask(tokens.bob, 'cluster-policies', policyId)
  t.equal(own.statusCode, 200, 'asking about oneself needs no right')
  t.equal(own.json().level, 'CAN_USE')
  const admin = await share(tokens.alice, { objectType: 'cluster-policies', objectId: policyId, principal: `pat@${D}` })
  t.equal(admin.statusCode, 200, 'a workspace admin shares it')
})

for (const names of ['display-with-id', 'display'] as const) {
  t.test(`${names}: an Entra group named like a workspace-local group gets none of its rights`, async t => {
    const { tokens, ask, share, login, dashboardId } = await setUp(t, { DATABRICKS_GROUP_NAMES: names, DATABRICKS_WORKSPACE_URLS: `${WS}=${origin}` })
    const before = await ask(tokens.mallory, 'dashboards', dashboardId)
    t.equal(before.statusCode, 200)
    t.equal(before.json().level, null, 'before she signs in: nothing')
    t.equal((await login(tokens.mallory)).statusCode, 200, 'Mallory signs in; her Entra group Ops is materialized')
    t.notOk((await accountGroupNames()).includes('Ops'), 'no account group takes the name the local group holds')
    t.ok((await accountGroupNames()).includes(withId('Ops', G.ops)))
    const after = await ask(tokens.mallory, 'dashboards', dashboardId)
    t.equal(after.json().level, null, 'after she signs in: still nothing from the local Ops group')
    t.same(after.json().grants, [])
    const grab = await share(tokens.mallory, { objectType: 'dashboards', objectId: dashboardId, principal: `mallory@${D}`, level: 'CAN_MANAGE' })
    t.equal(grab.statusCode, 403, 'and she cannot share it to herself')
    t.notOk((await objectAcl('dashboards', dashboardId)).some(e => e.principal.name === `mallory@${D}`), 'nothing written')
  })
}

t.test('Entra groups named users and admins: materialized under other names; a share reaches exactly their members', async t => {
  const { app, tokens, share, ask, dashboardId } = await setUp(t, { DATABRICKS_GROUP_NAMES: 'display' })
  for (const [id, name] of [[G.users, 'users'], [G.admins, 'admins']] as const) {
    const res = await share(tokens.bob, { objectType: 'dashboards', objectId: dashboardId, principal: id, level: 'CAN_RUN' })
    t.equal(res.statusCode, 200, `shared with the Entra group ${name}`)
    t.equal(res.json().grant.principalName, withId(name, id), 'under a name of its own')
    t.not(res.json().grant.principalName, name)
  }
  const acl = await objectAcl('dashboards', dashboardId)
  t.notOk(acl.some(e => ['users', 'admins'].includes(e.principal.name ?? '') && e.level === 'CAN_RUN'), 'the system groups got nothing')
  const uma = await ask(tokens.alice, 'dashboards', dashboardId, `&principal=${U.uma.id}`)
  t.equal(uma.json().level, 'CAN_RUN', 'a member of the Entra group has it')
  t.same(uma.json().grants.map((g: { group: string }) => g.group).sort(), [withId('admins', G.admins), withId('users', G.users)], 'through both of her groups')
  const pat = await ask(tokens.alice, 'dashboards', dashboardId, `&principal=${U.pat.id}`)
  t.equal(pat.json().level, null, 'someone else has not')
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /databricks_group_name_collisions_total\{reason="reserved"\} 2/, 'both collisions are counted')
})

t.test('squatting: with the default names, an administrator\'s grant to the real Payroll never reaches a look-alike made first', async t => {
  const { tokens, login, ask, dashboardId } = await setUp(t)
  t.equal((await login(tokens.mallory)).statusCode, 200, 'Mallory signs in first, with her own group "Payroll"')
  t.equal((await login(tokens.pat)).statusCode, 200, 'then a member of the real Payroll')
  const names = await accountGroupNames()
  t.notOk(names.includes('Payroll'), 'nobody holds the bare name: there is nothing to squat')
  t.ok(names.includes(withId('Payroll', G.payroll)) && names.includes(withId('Payroll', G.payrollFake)), 'each name says which Entra group it is')
  // The administrator grants in the Databricks UI to the group named with the real group's id.
  await control('PUT', `/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboardId, mode: 'merge', access_control_list: [{ group_name: withId('Payroll', G.payroll), permission_level: 'CAN_READ' }] })
  t.equal((await ask(tokens.pat, 'dashboards', dashboardId)).json().level, 'CAN_READ', 'the real member has it')
  t.equal((await ask(tokens.mallory, 'dashboards', dashboardId)).json().level, null, 'the squatter has not')
})

t.test('control characters in group names: logins, shares and questions work', async t => {
  const { tokens, login, share, ask, dashboardId, localOps } = await setUp(t, { DATABRICKS_GROUP_NAMES: 'display' })
  const res = await login(tokens.ctl)
  t.equal(res.statusCode, 200, 'a member of four such groups signs in')
  t.equal(res.json().databricks.groups.length, 4, 'every group materialized')
  const names = await accountGroupNames()
  for (const name of Object.values(CONTROL_NAMES)) t.ok(names.includes(name), `${JSON.stringify(name)} as it is`)
  for (const id of Object.keys(CONTROL_NAMES)) {
    const shared = await share(tokens.bob, { objectType: 'dashboards', objectId: dashboardId, principal: id })
    t.equal(shared.statusCode, 200, `shared with ${JSON.stringify(CONTROL_NAMES[id])}`)
  }
  const asked = await ask(tokens.ctl, 'dashboards', dashboardId)
  t.equal(asked.json().level, 'CAN_READ', 'and the grants count')
  // A workspace-local group whose name has a newline, in the ACL of an object everybody asks about.
  const odd = await control('POST', `/workspaces/${WS}/groups`, { displayName: 'Local\nline' })
  await control('PUT', `/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboardId, mode: 'merge', access_control_list: [{ principal_id: odd.id, permission_level: 'CAN_READ' }] })
  const again = await ask(tokens.bob, 'dashboards', dashboardId)
  t.equal(again.statusCode, 200, 'a question about that object answers')
  t.equal(again.json().level, 'CAN_MANAGE')
  t.ok(localOps)
})

t.test('the right to ask is checked before the subject is looked up: no oracle, no Graph call', async t => {
  const { tokens, ask, dashboardId } = await setUp(t)
  const asked = await ask(tokens.mallory, 'dashboards', dashboardId)
  t.equal(asked.statusCode, 200, 'mallory is cached')
  const answers = []
  const before = graphCalls()
  for (const query of [`&principal=${T.alice}`, '&principal=a0000000-0000-4000-8000-00000000dead', `&principal=alice@${D}`, '&principal=ghost@nowhere.example', `&principal=${T.finance}`, '&principal=alice@contoso.com&by=mail', `&principal=${T.etlAppId}&by=appId`]) {
    const res = await ask(tokens.mallory, 'dashboards', dashboardId, query)
    answers.push([res.statusCode, res.json().code, res.json().detail])
  }
  t.equal(graphCalls(), before, 'no Graph call for any of them')
  t.same(new Set(answers.map(a => JSON.stringify(a))).size, 1, 'one and the same answer for an existing user, a missing one, a group, by any key')
  t.same(answers[0]!.slice(0, 2), [403, 'PERMISSION_QUERY_FORBIDDEN'])
})

t.test('lookups of other principals in Entra are budgeted per caller', async t => {
  const { tokens, ask, share, dashboardId } = await setUp(t, { PRINCIPAL_LOOKUPS_PER_MINUTE: '2' })
  t.equal((await ask(tokens.bob, 'dashboards', dashboardId, `&principal=${U.uma.id}`)).statusCode, 200, 'one lookup')
  t.equal((await share(tokens.bob, { objectType: 'dashboards', objectId: dashboardId, principal: `pat@${D}` })).statusCode, 200, 'two')
  const third = await ask(tokens.bob, 'dashboards', dashboardId, `&principal=${U.mallory.id}`)
  t.equal(third.statusCode, 429, 'the third is refused')
  t.equal(third.json().code, 'PRINCIPAL_LOOKUPS_THROTTLED')
  t.ok(Number(third.headers['retry-after']) >= 1, 'says when to retry')
  t.equal((await ask(tokens.bob, 'dashboards', dashboardId, `&principal=bob@${D}`)).statusCode, 200, 'asking about oneself costs nothing')
  t.equal((await ask(tokens.bob, 'dashboards', dashboardId, `&principal=${U.uma.id}`)).statusCode, 200, 'nor does asking again about someone cached')
  t.equal((await ask(tokens.alice, 'dashboards', dashboardId, `&principal=${U.mallory.id}`)).statusCode, 200, 'another caller has a budget of its own')
  const automation = await tokenFor(emulator, T.etlSp, { claims: { roles: ['Identity.Admin'] } })
  for (const id of [U.ctl.id, U.nobody.id, T.guest]) t.equal((await ask(automation, 'dashboards', dashboardId, `&principal=${id}`)).statusCode, 200, 'Identity.Admin is not limited')
})

t.test('AIM: a group the account names like a system group cannot be shared to under that name', async t => {
  const { tokens, share, dashboardId } = await setUp(t, {}, 'aim')
  const res = await share(tokens.bob, { objectType: 'dashboards', objectId: dashboardId, principal: G.users })
  t.equal(res.statusCode, 409)
  t.equal(res.json().code, 'SHARE_TARGET_NAME_TAKEN')
  t.match(res.json().detail, /Rename the group in Entra/)
  t.notOk((await objectAcl('dashboards', dashboardId)).some(e => e.principal.name === 'users' && e.level === 'CAN_READ'), 'nothing written')
})

t.test('the group filter: groups outside it are not materialized, nor shared to', async t => {
  const { tokens, login, share, dashboardId } = await setUp(t, { DATABRICKS_GROUP_PARENTS: T.allStaff })
  const res = await login(tokens.mallory)
  t.equal(res.statusCode, 200)
  t.same(res.json().databricks.groups, [], 'none of her groups is under All Staff')
  const names = await accountGroupNames()
  t.notOk(names.some(n => n.startsWith('Ops') || n.startsWith('Payroll')))
  const shared = await share(tokens.bob, { objectType: 'dashboards', objectId: dashboardId, principal: G.payroll })
  t.equal(shared.statusCode, 409)
  t.equal(shared.json().code, 'SHARE_TARGET_EXCLUDED')
  const ok = await share(tokens.bob, { objectType: 'dashboards', objectId: dashboardId, principal: T.finance })
  t.equal(ok.statusCode, 200, 'a group under All Staff is shared to')
})

t.test('a right revoked a moment ago writes no grant, though questions may still be answered from the cached ACL', async t => {
  const { tokens, share, ask, dashboardId, ids } = await setUp(t)
  t.equal((await ask(tokens.bob, 'dashboards', dashboardId)).json().level, 'CAN_MANAGE', 'the ACL is cached')
  await control('PUT', `/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboardId, mode: 'merge', access_control_list: [{ principal_id: ids.bob, permission_level: 'CAN_READ' }] })
  const res = await share(tokens.bob, { objectType: 'dashboards', objectId: dashboardId, principal: `pat@${D}` })
  t.equal(res.statusCode, 403, 'sharing reads the caller\'s standing afresh')
  t.equal(res.json().code, 'SHARE_FORBIDDEN')
})
