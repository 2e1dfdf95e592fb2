// WorkspaceObjects against the Databricks emulator over HTTPS (AIM on, so principals come from Entra): an
// object's ACL with grants inherited from its folder, the short cache (hits, TTL on the injected clock,
// coalescing, fresh reads), grants and the cache they replace, the typed errors (unknown principal, object,
// workspace, no access), dashboard publication, and how workspace calls are addressed (workspaceUrls,
// X-Databricks-Org-Id, no account SCIM write budget).
import t, { type Test } from 'tap'
import { rootCertificates } from 'node:tls'
import { Agent, type Dispatcher } from 'undici'
import { aimEnv, DEFAULT_WORKSPACE_ID, T, type AimEnv } from '../../helpers/target-aim.ts'
import { DEFAULT_ACCOUNT_ID, DATABRICKS_ADMIN_PAT, QUICK } from '../../helpers/target.ts'
import { spyingDispatcher } from '../../helpers/graph-directory.ts'
import { WorkspaceObjects, permissionsPath, type ObjectAcl } from '../../../src/target/workspace-objects.ts'
import { ObjectAccessDeniedError, ObjectNotFoundError, PrincipalUnknownToDatabricksError, TargetConfigurationError } from '../../../src/target/errors.ts'
import { WorkspaceNotFoundError } from '../../../src/target/assignments.ts'
import { TargetUnavailableError } from '../../../src/target/port.ts'
import { DatabricksClient } from '../../../src/target/databricks-client.ts'
import { UpstreamClient } from '../../../src/upstream/client.ts'
import type { Materialized } from '../../../src/target/port.ts'

const ACL_GET = 'GET /api/2.0/permissions/*'
const ACL_PATCH = 'PATCH /api/2.0/permissions/*'
const PUBLISHED = 'GET /api/2.0/lakeview/dashboards/:dashboardId/published'
const ALICE = 'alice@contoso-test.onmicrosoft.com'
const BOB = 'bob@contoso-test.onmicrosoft.com'
const SECOND_WORKSPACE = '2718281828459045'

interface World {
  env: AimEnv
  alice: Materialized
  bob: Materialized
  folderId: string
  dashboardId: string
  /** The cache's clock: stands still until moved (real time passing must not expire entries mid-test). */
  clock: { now: () => number, advance: (ms: number) => void }
  objects: WorkspaceObjects
}

/** alice and bob in the account; /Shared/Finance (Finance: CAN_EDIT) holding the dashboard "Q3" (alice: CAN_READ). */
async function world (t: Test, workspaceId = DEFAULT_WORKSPACE_ID): Promise<World> {
  const env = await aimEnv(t)
  const [alice, bob] = await Promise.all([T.alice, T.bob].map(async id => await env.target.materialize(env.request(id)))) as [Materialized, Materialized]
  if (workspaceId !== DEFAULT_WORKSPACE_ID) await control(env, 'POST', '/workspaces', { id: workspaceId })
  const folder = await control(env, 'POST', `/workspaces/${workspaceId}/objects`, { type: 'directories', path: '/Shared/Finance' })
  const dashboard = await control(env, 'POST', `/workspaces/${workspaceId}/dashboards`, { displayName: 'Q3', parentPath: '/Shared/Finance' })
  await control(env, 'PUT', `/workspaces/${workspaceId}/acls`, { type: 'directories', id: folder.id, access_control_list: [{ group_name: 'Finance', permission_level: 'CAN_EDIT' }] })
  await control(env, 'PUT', `/workspaces/${workspaceId}/acls`, { type: 'dashboards', id: dashboard.dashboard_id, access_control_list: [{ user_name: ALICE, permission_level: 'CAN_READ' }] })
  env.resetCalls()
  let now = 1_700_000_000_000
  const clock = { now: () => now, advance: (ms: number) => { now += ms } }
  return { env, alice, bob, folderId: folder.id, dashboardId: dashboard.dashboard_id, clock, objects: new WorkspaceObjects({ client: env.client, clock }) }
}

async function control (env: AimEnv, method: string, path: string, body?: unknown): Promise<any> {
  const res = await env.db.control(method, path, body)
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body
}

const entry = (acl: ObjectAcl, key: 'user_name' | 'group_name' | 'service_principal_name', name: string): ObjectAcl['accessControlList'][number] | undefined =>
  acl.accessControlList.find(e => e[key] === name)

t.test('an ACL with grants inherited from the folder, its direct grants and the admins', async t => {
  const { env, folderId, dashboardId, objects } = await world(t)
  const acl = await objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId)
  t.equal(acl.objectType, 'dashboard')
  t.equal(acl.objectId, `/dashboards/${dashboardId}`)
  t.same(entry(acl, 'group_name', 'Finance')?.all_permissions, [{ permission_level: 'CAN_EDIT', inherited: true, inherited_from_object: [`/directories/${folderId}`] }], 'Finance: CAN_EDIT from the folder')
  t.same(entry(acl, 'user_name', ALICE)?.all_permissions, [{ permission_level: 'CAN_READ', inherited: false }], 'alice: CAN_READ on the dashboard itself')
  t.match(entry(acl, 'user_name', ALICE), { display_name: 'Alice Adams' })
  t.match(entry(acl, 'group_name', 'admins')?.all_permissions, [{ permission_level: 'CAN_MANAGE', inherited: true }], 'the workspace admins')
  t.same(env.dbCalls().routes, { [ACL_GET]: 1 }, 'one Permissions API call')

  // Other spellings of the type name the same object (and the same cache entry).
  t.same(await objects.acl(DEFAULT_WORKSPACE_ID, 'Dashboard', dashboardId), acl)
  const folder = await objects.acl(DEFAULT_WORKSPACE_ID, 'folders', folderId)
  t.equal(folder.objectType, 'directory')
  t.same(entry(folder, 'group_name', 'Finance')?.all_permissions, [{ permission_level: 'CAN_EDIT', inherited: false }], 'on the folder itself the grant is direct')
  t.same(env.dbCalls().routes, { [ACL_GET]: 2 }, 'the dashboard came from the cache, the folder was read')
})

t.test('the cache: hits make no call, the TTL (injected clock) re-reads, concurrent reads coalesce, fresh reads again', async t => {
  const { env, dashboardId, objects, clock } = await world(t)
  const first = await objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId)
  t.throws(() => { first.accessControlList.length = 0 }, TypeError, 'callers share one frozen ACL: none can change the cache')
  env.resetCalls()
  const hit = await objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId)
  t.equal(env.dbCalls().total, 0, 'a hit makes no call')
  t.ok(hit.accessControlList.length > 0)

  // A grant made behind the cache's back shows once the TTL (10 s) has passed.
  await control(env, 'PUT', `/workspaces/${DEFAULT_WORKSPACE_ID}/acls`, { type: 'dashboards', id: dashboardId, mode: 'merge', access_control_list: [{ user_name: BOB, permission_level: 'CAN_RUN' }] })
  clock.advance(9_999)
  t.notOk(entry(await objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId), 'user_name', BOB), 'within the TTL: the cached ACL')
  t.equal(env.dbCalls().total, 0)
  clock.advance(2)
  t.ok(entry(await objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId), 'user_name', BOB), 'after the TTL: read again')
  t.same(env.dbCalls().routes, { [ACL_GET]: 1 })

  env.resetCalls()
  clock.advance(10_001)
  const many = await Promise.all(Array.from({ length: 20 }, async () => await objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId)))
  t.same(env.dbCalls().routes, { [ACL_GET]: 1 }, '20 concurrent reads of one object: one call')
  t.ok(many.every(a => entry(a, 'user_name', BOB) !== undefined))

  env.resetCalls()
  await control(env, 'PUT', `/workspaces/${DEFAULT_WORKSPACE_ID}/acls`, { type: 'dashboards', id: dashboardId, mode: 'merge', access_control_list: [{ user_name: BOB, permission_level: 'CAN_EDIT' }] })
  const fresh = await objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId, { fresh: true })
  t.same(entry(fresh, 'user_name', BOB)?.all_permissions, [{ permission_level: 'CAN_EDIT', inherited: false }], 'fresh: read again at once')
  t.same(entry(await objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId), 'user_name', BOB)?.all_permissions, [{ permission_level: 'CAN_EDIT', inherited: false }], 'and the cache holds the fresh ACL')
  t.same(env.dbCalls().routes, { [ACL_GET]: 1 })
})

t.test('a grant PATCHes one entry, keeps the other grants, and replaces the cached ACL', async t => {
  const { env, dashboardId, objects } = await world(t)
  await objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId)
  env.resetCalls()
  const after = await objects.grant(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId, { user_name: BOB, permission_level: 'CAN_RUN' })
  t.same(entry(after, 'user_name', BOB)?.all_permissions, [{ permission_level: 'CAN_RUN', inherited: false }], 'bob: CAN_RUN')
  t.ok(entry(after, 'user_name', ALICE), 'alice keeps her grant (PATCH merges)')
  t.ok(entry(after, 'group_name', 'Finance'), 'the inherited grant is still there')
  t.same(env.dbCalls().routes, { [ACL_PATCH]: 1 })

  const cached = await objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId)
  t.same(cached, after, 'the next read is the ACL the grant answered')
  t.same(env.dbCalls().routes, { [ACL_PATCH]: 1 }, 'without a call')

  // A group and a service principal (by application id), then a change of level.
  const withGroup = await objects.grant(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId, { group_name: 'Engineering', permission_level: 'CAN_EDIT' })
  t.same(entry(withGroup, 'group_name', 'Engineering')?.all_permissions, [{ permission_level: 'CAN_EDIT', inherited: false }])
  const etl = await env.target.materialize(env.request(T.etlSp))
  const withSp = await objects.grant(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId, { service_principal_name: etl.principalName, permission_level: 'CAN_READ' })
  t.match(entry(withSp, 'service_principal_name', T.etlAppId), { display_name: 'Nightly ETL' })
  const raised = await objects.grant(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId, { user_name: BOB, permission_level: 'CAN_MANAGE' })
  t.same(entry(raised, 'user_name', BOB)?.all_permissions, [{ permission_level: 'CAN_MANAGE', inherited: false }], 'a second grant to bob changes his level')
  const state = await env.state() as unknown as { workspaces: Array<{ id: string, objects: Array<{ id: string, acl: Array<{ principal: { name: string }, level: string }> }> }> }
  const stored = state.workspaces.find(w => w.id === DEFAULT_WORKSPACE_ID)?.objects.find(o => o.id === dashboardId)?.acl
  t.same(new Set(stored?.map(a => `${a.principal.name}:${a.level}`)), new Set([`${ALICE}:CAN_READ`, `${BOB}:CAN_MANAGE`, 'Engineering:CAN_EDIT', `${T.etlAppId}:CAN_READ`]), 'Databricks holds every grant')

  t.rejects(objects.grant(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId, { user_name: BOB, group_name: 'Finance', permission_level: 'CAN_RUN' }), TypeError, 'exactly one principal name')
})

/**
 * A dispatcher that holds back the answers to the requests `hold` picks until `release()`: Databricks has
 * answered (with the state of that moment), the caller has not heard yet. `held()` resolves once one is.
 */
function holdingDispatcher (ca: string, hold: (opts: Dispatcher.DispatchOptions) => boolean): { dispatcher: Dispatcher, held: () => Promise<void>, release: () => void } {
  const waiting: Array<() => void> = []
  let released = false
  let onHeld: () => void = () => {}
  const firstHeld = new Promise<void>(resolve => { onHeld = resolve })
  // Both handler APIs' response callbacks: whichever the request handler implements.
  const answers = new Set(['onHeaders', 'onData', 'onComplete', 'onError', 'onResponseStart', 'onResponseData', 'onResponseEnd', 'onResponseError'])
  const dispatcher = new Agent({ connect: { ca: [...rootCertificates, ca] } }).compose(dispatch => (opts, handler) => {
    if (!hold(opts)) return dispatch(opts, handler)
    const deferred = new Proxy(handler, {
      get (target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver)
        if (typeof value !== 'function') return value
        if (typeof prop !== 'string' || !answers.has(prop)) return value.bind(target)
        return (...args: unknown[]) => {
          if (released) return value.apply(target, args)
          waiting.push(() => value.apply(target, args))
          onHeld()
          return true
        }
      }
    })
    return dispatch(opts, deferred)
  })
  return {
    dispatcher,
    held: async () => await firstHeld,
    release: () => {
      released = true
      for (const answer of waiting.splice(0)) answer()
    }
  }
}

t.test('a grant while a read of the same ACL is in flight: the read is not cancelled, and the grant is what stays cached', async t => {
  // The race behind "Error: replaced" (issue 11): lru-cache aborts a fetch() in flight when its key is set().
  const { env, dashboardId, clock } = await world(t)
  const gate = holdingDispatcher(env.db.ca, opts => opts.method === 'GET' && opts.path.startsWith('/api/2.0/permissions/'))
  let onPatched: () => void = () => {}
  const patched = new Promise<void>(resolve => { onPatched = resolve })
  const http = new UpstreamClient({
    name: 'databricks',
    dispatcher: gate.dispatcher,
    observer: { onResponse: e => { if (e.method === 'PATCH') onPatched() } },
    ...QUICK,
    timeoutMs: 60_000
  })
  t.teardown(async () => { await http.close() })
  const client = new DatabricksClient({ host: env.db.origin, accountId: DEFAULT_ACCOUNT_ID, token: DATABRICKS_ADMIN_PAT, http, writeBudgets: false })
  const objects = new WorkspaceObjects({ client, clock })

  // A permission question's read: Databricks answers before the grant, the answer is held on its way back.
  const reading = objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId)
  const outcome = reading.then(acl => ({ acl }), (err: unknown) => ({ err }))
  await gate.held()
  // Meanwhile a share grants bob CAN_RUN (its PATCH is not held); once its answer is in and handled, the
  // read's answer arrives.
  const granted = objects.grant(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId, { user_name: BOB, permission_level: 'CAN_RUN' })
  await patched
  await new Promise(resolve => setImmediate(resolve))
  gate.release()

  const read = await outcome
  t.notOk('err' in read, `the read in flight completes (${'err' in read ? String(read.err) : 'ok'})`)
  if ('acl' in read) {
    t.ok(entry(read.acl, 'user_name', ALICE), 'with the ACL Databricks answered it')
    t.notOk(entry(read.acl, 'user_name', BOB), 'as it was before the grant')
  }
  const after = await granted
  t.same(entry(after, 'user_name', BOB)?.all_permissions, [{ permission_level: 'CAN_RUN', inherited: false }], 'the grant answers the ACL with bob')
  env.resetCalls()
  const cached = await objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId)
  t.same(cached, after, 'the cache holds the grant\'s ACL, not the older read\'s')
  t.equal(env.dbCalls().total, 0, 'without a call')
})

t.test('a grant to a principal the account does not know is a typed error', async t => {
  const { env, dashboardId, objects } = await world(t)
  const nobody = await objects.grant(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId, { user_name: 'nobody@contoso-test.onmicrosoft.com', permission_level: 'CAN_READ' }).catch((e: unknown) => e)
  t.type(nobody, PrincipalUnknownToDatabricksError)
  t.match(nobody, { code: 'PRINCIPAL_UNKNOWN_TO_DATABRICKS', kind: 'user', principalName: 'nobody@contoso-test.onmicrosoft.com', workspaceId: DEFAULT_WORKSPACE_ID })
  t.match((nobody as Error).message, /does not know the user nobody@contoso-test\.onmicrosoft\.com/)
  const ghosts = await objects.grant(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId, { group_name: 'Ghosts', permission_level: 'CAN_READ' }).catch((e: unknown) => e)
  t.match(ghosts, { kind: 'group', principalName: 'Ghosts' })
  const sp = await objects.grant(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId, { service_principal_name: T.resolverAppId, permission_level: 'CAN_READ' }).catch((e: unknown) => e)
  t.match(sp, { kind: 'servicePrincipal', principalName: T.resolverAppId })

  // Once the principal is in the account, the same grant works.
  const guest = await env.target.materialize(env.request(T.guest))
  const ok = await objects.grant(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId, { user_name: guest.principalName, permission_level: 'CAN_READ' })
  t.ok(entry(ok, 'user_name', 'gina_fabrikam.com#EXT#@contoso-test.onmicrosoft.com'), 'a guest (#EXT#) once materialized')
})

t.test('an unknown object, an unknown workspace, and no access are typed errors', async t => {
  const { env, dashboardId, objects } = await world(t)
  const missing = await objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', 'nope').catch((e: unknown) => e)
  t.type(missing, ObjectNotFoundError)
  t.match(missing, { code: 'OBJECT_NOT_FOUND', workspaceId: DEFAULT_WORKSPACE_ID, objectType: 'dashboards', objectId: 'nope' })
  t.match((missing as Error).message, new RegExp(`dashboards nope in Databricks workspace ${DEFAULT_WORKSPACE_ID}`))
  t.type(await objects.grant(DEFAULT_WORKSPACE_ID, 'jobs', '123', { user_name: ALICE, permission_level: 'CAN_VIEW' }).catch((e: unknown) => e), ObjectNotFoundError, 'a grant on a missing object')

  const ws = await objects.acl('999999', 'dashboards', dashboardId).catch((e: unknown) => e)
  t.type(ws, WorkspaceNotFoundError, 'the emulator\'s 400 for an unknown X-Databricks-Org-Id')
  t.match(ws, { code: 'WORKSPACE_NOT_FOUND', workspaceId: '999999' })
  t.type(await objects.publication('999999', dashboardId).catch((e: unknown) => e), WorkspaceNotFoundError, 'publication too')
  env.resetCalls()
  t.type(await objects.acl('adb-123', 'dashboards', dashboardId).catch((e: unknown) => e), WorkspaceNotFoundError, 'not a workspace id at all')
  t.equal(env.dbCalls().total, 0, 'without a call')

  // The service's identity without access to the workspace.
  const token = (await control(env, 'POST', '/tokens', { userName: BOB })).token as string
  const http = new UpstreamClient({ name: 'databricks', ca: env.db.ca, ...QUICK })
  const bobClient = new DatabricksClient({ host: env.db.origin, accountId: DEFAULT_ACCOUNT_ID, token, http })
  t.teardown(async () => { await http.close() })
  const denied = await new WorkspaceObjects({ client: bobClient }).acl(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId).catch((e: unknown) => e)
  t.type(denied, ObjectAccessDeniedError)
  t.type(denied, TargetConfigurationError, 'a configuration problem of the service')
  t.match(denied, { code: 'TARGET_MISCONFIGURED', reason: 'OBJECT_ACCESS_DENIED' })
  t.match((denied as Error).message, /may not read the permissions of dashboards/)
})

t.test('publication: with and without embedded credentials, and not published', async t => {
  const { env, dashboardId, objects } = await world(t)
  const embedded = await control(env, 'POST', `/workspaces/${DEFAULT_WORKSPACE_ID}/dashboards`, { displayName: 'Embedded', published: { embedCredentials: true } })
  const own = await control(env, 'POST', `/workspaces/${DEFAULT_WORKSPACE_ID}/dashboards`, { displayName: 'Own credentials', published: { embedCredentials: false } })
  env.resetCalls()
  t.same(await objects.publication(DEFAULT_WORKSPACE_ID, embedded.dashboard_id), { published: true, embedCredentials: true })
  t.same(await objects.publication(DEFAULT_WORKSPACE_ID, own.dashboard_id), { published: true, embedCredentials: false })
  t.same(await objects.publication(DEFAULT_WORKSPACE_ID, dashboardId), { published: false, embedCredentials: false }, 'a draft (404) is not published')
  t.same(env.dbCalls().routes, { [PUBLISHED]: 3 })
  t.same(await objects.publication(DEFAULT_WORKSPACE_ID, embedded.dashboard_id), { published: true, embedCredentials: true })
  t.same(env.dbCalls().routes, { [PUBLISHED]: 3 }, 'cached like ACLs')

  // Published through the Lakeview API: fresh sees it at once.
  const pub = await env.db.api('POST', `/api/2.0/lakeview/dashboards/${dashboardId}/published`, { embed_credentials: true })
  t.equal(pub.status, 200)
  t.same(await objects.publication(DEFAULT_WORKSPACE_ID, dashboardId, { fresh: true }), { published: true, embedCredentials: true })
})

t.test('workspace calls: the origin from workspaceUrls (else the accounts host) and X-Databricks-Org-Id', async t => {
  const { env, dashboardId: first, objects: unified } = await world(t)
  // A second workspace with its own folder, dashboard and grants.
  await control(env, 'POST', '/workspaces', { id: SECOND_WORKSPACE })
  const other = await control(env, 'POST', `/workspaces/${SECOND_WORKSPACE}/dashboards`, { displayName: 'Elsewhere' })
  await control(env, 'PUT', `/workspaces/${SECOND_WORKSPACE}/acls`, { type: 'dashboards', id: other.dashboard_id, access_control_list: [{ user_name: BOB, permission_level: 'CAN_EDIT' }] })

  // On the unified host (no workspaceUrls), the header alone picks the workspace.
  t.ok(entry(await unified.acl(SECOND_WORKSPACE, 'dashboards', other.dashboard_id), 'user_name', BOB))
  t.type(await unified.acl(SECOND_WORKSPACE, 'dashboards', first).catch((e: unknown) => e), ObjectNotFoundError, 'the first workspace\'s dashboard is not in the second')

  // With workspaceUrls: the second workspace on its own origin (the same server, named `localhost`).
  const seen: Array<{ origin: string, path: string, org?: string }> = []
  const spy = (opts: Dispatcher.DispatchOptions): void => {
    const headers = opts.headers as Record<string, string> | string[] | undefined
    let org: string | undefined
    if (Array.isArray(headers)) {
      for (let i = 0; i < headers.length; i += 2) if (headers[i]?.toLowerCase() === 'x-databricks-org-id') org = headers[i + 1]
    } else if (headers !== undefined) {
      org = Object.entries(headers).find(([k]) => k.toLowerCase() === 'x-databricks-org-id')?.[1]
    }
    seen.push({ origin: String(opts.origin), path: opts.path, ...(org !== undefined ? { org } : {}) })
  }
  const http = new UpstreamClient({ name: 'databricks', dispatcher: spyingDispatcher(env.db.ca, spy), ...QUICK })
  t.teardown(async () => { await http.close() })
  const port = new URL(env.db.origin).port
  const client = new DatabricksClient({
    host: env.db.origin,
    accountId: DEFAULT_ACCOUNT_ID,
    token: DATABRICKS_ADMIN_PAT,
    http,
    workspaceUrls: new Map([[SECOND_WORKSPACE, `https://localhost:${port}/`]])
  })
  t.equal(client.workspaceOrigin(SECOND_WORKSPACE), `https://localhost:${port}`)
  t.equal(client.workspaceOrigin(DEFAULT_WORKSPACE_ID), env.db.origin)
  const objects = new WorkspaceObjects({ client })
  t.ok(entry(await objects.acl(SECOND_WORKSPACE, 'dashboards', other.dashboard_id), 'user_name', BOB))
  t.ok(entry(await objects.acl(DEFAULT_WORKSPACE_ID, 'dashboards', first), 'user_name', ALICE))
  t.same(seen, [
    { origin: `https://localhost:${port}`, path: `/api/2.0/permissions/dashboards/${other.dashboard_id}`, org: SECOND_WORKSPACE },
    { origin: env.db.origin, path: `/api/2.0/permissions/dashboards/${first}`, org: DEFAULT_WORKSPACE_ID }
  ], 'each call on its workspace\'s origin, with its id in X-Databricks-Org-Id')

  // A workspace URL that cannot be reached is an outage, not a missing object.
  const nowhere = new DatabricksClient({ host: env.db.origin, accountId: DEFAULT_ACCOUNT_ID, token: DATABRICKS_ADMIN_PAT, http, workspaceUrls: new Map([[SECOND_WORKSPACE, 'https://127.0.0.1:1']]) })
  t.type(await new WorkspaceObjects({ client: nowhere }).acl(SECOND_WORKSPACE, 'dashboards', other.dashboard_id).catch((e: unknown) => e), TargetUnavailableError)

  t.throws(() => new DatabricksClient({ host: env.db.origin, accountId: DEFAULT_ACCOUNT_ID, token: 'x', http, workspaceUrls: new Map([['abc', 'https://x']]) }), TypeError)
  t.throws(() => new DatabricksClient({ host: env.db.origin, accountId: DEFAULT_ACCOUNT_ID, token: 'x', http, workspaceUrls: new Map([['1', 'https://x/path']]) }), TypeError)
  await t.rejects(client.workspace('1', 'GET', '/scim/v2/Users'), TypeError, 'workspace paths start with /api/')
})

t.test('workspace calls do not take the account SCIM write budgets', async t => {
  const { env, dashboardId } = await world(t)
  // Budgets of one PATCH and one write per ~17 minutes: a second account SCIM PATCH would wait that long.
  const client = new DatabricksClient({ host: env.db.origin, accountId: DEFAULT_ACCOUNT_ID, token: DATABRICKS_ADMIN_PAT, http: env.client.http, writeBudgets: { patch: 0.001, write: 0.001 } })
  const objects = new WorkspaceObjects({ client })
  for (const level of ['CAN_READ', 'CAN_RUN', 'CAN_EDIT', 'CAN_MANAGE']) {
    const acl = await objects.grant(DEFAULT_WORKSPACE_ID, 'dashboards', dashboardId, { user_name: BOB, permission_level: level })
    t.same(entry(acl, 'user_name', BOB)?.all_permissions, [{ permission_level: level, inherited: false }])
  }
  const lakeview = await client.workspace<{ embed_credentials: boolean }>(DEFAULT_WORKSPACE_ID, 'POST', `/api/2.0/lakeview/dashboards/${dashboardId}/published`, { body: { embed_credentials: false } })
  const again = await client.workspace<{ embed_credentials: boolean }>(DEFAULT_WORKSPACE_ID, 'POST', `/api/2.0/lakeview/dashboards/${dashboardId}/published`, { body: { embed_credentials: true } })
  t.same([lakeview.json?.embed_credentials, again.json?.embed_credentials], [false, true], 'four PATCHes and two POSTs went straight through')
})

t.test('Permissions API path segments', async t => {
  t.equal(permissionsPath('dashboards', 'a b/c'), '/api/2.0/permissions/dashboards/a%20b%2Fc', 'ids are encoded')
  t.equal(permissionsPath('warehouses', 'w1'), '/api/2.0/permissions/warehouses/w1')
  t.equal(permissionsPath('queries', 'q1'), '/api/2.0/permissions/sql/queries/q1')
  t.equal(permissionsPath('alerts', 'a1'), '/api/2.0/permissions/sql/alerts/a1')
  t.equal(permissionsPath('directories', '7'), '/api/2.0/permissions/directories/7')
})

t.test('other object types: a warehouse and a query, by any spelling', async t => {
  const { env, objects } = await world(t)
  await control(env, 'POST', `/workspaces/${DEFAULT_WORKSPACE_ID}/objects`, { type: 'warehouses', id: 'wh1' })
  await control(env, 'POST', `/workspaces/${DEFAULT_WORKSPACE_ID}/objects`, { type: 'queries', id: 'q1' })
  const wh = await objects.grant(DEFAULT_WORKSPACE_ID, 'sql/warehouses', 'wh1', { group_name: 'Finance', permission_level: 'CAN_USE' })
  t.same(entry(wh, 'group_name', 'Finance')?.all_permissions, [{ permission_level: 'CAN_USE', inherited: false }])
  t.same(await objects.acl(DEFAULT_WORKSPACE_ID, 'warehouse', 'wh1'), wh, 'the same cache entry')
  const q = await objects.grant(DEFAULT_WORKSPACE_ID, 'query', 'q1', { user_name: ALICE, permission_level: 'CAN_RUN' })
  t.ok(entry(q, 'user_name', ALICE))
  t.same(Object.keys(env.dbCalls().routes), [ACL_PATCH], 'no read needed after the grants')
})
