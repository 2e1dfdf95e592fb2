// The official Databricks JavaScript SDK (@databricks/sdk-experimental), pointed at the emulator: it
// lists users with a filter, creates a group, adds members with PATCH, reads a dashboard's permissions,
// resolves a user by external id, surfaces a 409, and retries a 429 until it gets through.
//
// Test set-up, not emulator behaviour:
// - The account client only works with a host that starts with `https://accounts.`. It gets
//   `https://accounts.localhost:<port>` and an https.Agent whose `lookup` sends every name to 127.0.0.1
//   and which checks the emulator's certificate as `localhost` (so TLS stays verified).
// - SDK 0.17.0 never sends PATCH bodies: `ApiClient.request` attaches a body to POST and PUT only, and
//   its `fetch` asserts that. Without help every SDK PATCH reaches the server empty (the emulator answers
//   400 invalidSyntax, shown below). The shim keeps the SDK's request path and only carries the body the
//   SDK built to the wire for PATCH.
// - Its SCIM list iterators never advance `startIndex`: they re-read page one until it is empty, so
//   `firstPass` stops when an id repeats.
import t from 'tap'
import dns from 'node:dns'
import https from 'node:https'
import tls from 'node:tls'
import { AsyncLocalStorage } from 'node:async_hooks'
import { createRequire } from 'node:module'
import { AccountClient, ApiClient, ApiError, WorkspaceClient } from '@databricks/sdk-experimental'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, SCIM, T, startDatabricks } from '../../helpers/databricks.ts'

const require = createRequire(import.meta.url)

interface SdkResponse {
  ok: boolean
  status: number
  statusText: string
  headers: Headers
  text: () => Promise<string>
}
type SdkFetch = (input: string | URL, init?: { method?: string, headers?: Headers, agent?: https.Agent, body?: unknown }) => Promise<SdkResponse>

const patchBodies = new AsyncLocalStorage<string>()
let shimmed = false

function shimPatchBodies (): void {
  if (shimmed) return
  shimmed = true
  const fetchModule = require('@databricks/sdk-experimental/dist/fetch.js') as { fetch: SdkFetch }
  const sdkFetch = fetchModule.fetch
  const request = ApiClient.prototype.request
  ApiClient.prototype.request = async function (this: ApiClient, options: Parameters<ApiClient['request']>[0], context?: Parameters<ApiClient['request']>[1]) {
    if (options.method !== 'PATCH' || options.payload === undefined) return await request.call(this, options, context)
    return await patchBodies.run(JSON.stringify(options.payload), async () => await request.call(this, options, context))
  }
  fetchModule.fetch = async (input, init) => {
    const body = patchBodies.getStore()
    if (init?.method !== 'PATCH' || body === undefined) return await sdkFetch(input, init)
    const headers: Record<string, string> = {}
    init.headers?.forEach((value, key) => { headers[key] = value })
    headers['content-length'] = String(Buffer.byteLength(body))
    return await new Promise<SdkResponse>((resolve, reject) => {
      const req = https.request(new URL(input), { method: 'PATCH', headers, agent: init.agent }, res => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => { text += chunk })
        res.on('end', () => {
          const responseHeaders = new Headers()
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') responseHeaders.set(k, v)
          const status = res.statusCode ?? 500
          resolve({ ok: status < 400, status, statusText: res.statusMessage ?? '', headers: responseHeaders, text: async () => text })
        })
      })
      req.on('error', reject)
      req.end(body)
    })
  }
}

/** Resolves every host name to the emulator and verifies its certificate as `localhost`. */
function emulatorAgent (): https.Agent {
  return new https.Agent({
    lookup: ((_hostname: string, options: dns.LookupOptions, callback: (...args: unknown[]) => void) => {
      dns.lookup('127.0.0.1', options, callback as never)
    }) as never,
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity('localhost', cert)
  })
}

/** The SDK's SCIM iterators repeat page one forever: take items until one comes back. */
async function firstPass<T extends { id?: string }> (iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  const seen = new Set<string | undefined>()
  for await (const item of iterable) {
    if (seen.has(item.id) || out.length > 1000) break
    seen.add(item.id)
    out.push(item)
  }
  return out
}

t.test('the Databricks JavaScript SDK against the emulator', async t => {
  const { api, origin, control } = await startDatabricks(t)
  const port = new URL(origin).port
  const noSdkPatch = new AccountClient({ host: `https://accounts.localhost:${port}`, accountId: DEFAULT_ACCOUNT_ID, token: DATABRICKS_ADMIN_PAT, authType: 'pat' }, { agent: emulatorAgent() })
  const probe = await createGroupWithSdk(noSdkPatch, 'Before the shim')
  // Unshimmed, the SDK's PATCH arrives without a body and gets Databricks' 400.
  const unshimmed = await noSdkPatch.accountGroupsV2.patch({ id: probe, schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'add', path: 'members', value: [] }] }).then(() => null, (e: unknown) => e)
  t.ok(unshimmed instanceof ApiError, 'the SDK surfaces an ApiError')
  t.equal((unshimmed as ApiError).statusCode, 400)

  shimPatchBodies()
  const account = new AccountClient({ host: `https://accounts.localhost:${port}`, accountId: DEFAULT_ACCOUNT_ID, token: DATABRICKS_ADMIN_PAT, authType: 'pat' }, { agent: emulatorAgent() })
  const workspace = new WorkspaceClient({ host: origin, token: DATABRICKS_ADMIN_PAT, authType: 'pat' }, { agent: emulatorAgent() })

  // Users: create, then list with a filter.
  const alice = await account.accountUsersV2.create({ userName: 'alice@contoso.com', displayName: 'Alice Adams' })
  await account.accountUsersV2.create({ userName: 'bob@contoso.com', displayName: 'Bob Brown' })
  t.match(alice, { userName: 'alice@contoso.com', id: /^\d{16}$/ })
  const filtered = await firstPass(account.accountUsersV2.list({ filter: 'userName eq "ALICE@contoso.com"' }))
  t.same(filtered.map(u => u.id), [alice.id], 'a filtered list')
  t.equal((await firstPass(account.accountUsersV2.list({ filter: 'userName sw "nobody"' }))).length, 0, 'an empty result ends the iterator')

  // A duplicate is a 409 the SDK reports as an ApiError.
  const dup = await account.accountUsersV2.create({ userName: 'ALICE@contoso.com' }).then(() => null, (e: unknown) => e)
  t.ok(dup instanceof ApiError)
  t.equal((dup as ApiError).statusCode, 409)

  // Groups: create, add members with PATCH, read them back.
  const group = await account.accountGroupsV2.create({ displayName: 'SDK group' })
  t.match(group, { displayName: 'SDK group', id: /^\d{16}$/ })
  await account.accountGroupsV2.patch({
    id: group.id as string,
    schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
    Operations: [{ op: 'add', path: 'members', value: [{ value: alice.id }] }]
  })
  const read = await account.accountGroupsV2.get({ id: group.id as string })
  t.same(read.members?.map(m => m.value), [alice.id], 'the member the SDK added')
  t.notOk('members' in (await api('GET', `${SCIM}/Groups/${probe}`)).body, 'the bodiless PATCH changed nothing')

  // Identity API: resolve a user by external id (the SDK still uses the camelCase path).
  const resolved = await account.accountIamV2.resolveUser({ external_id: T.alice })
  t.match(resolved.user, { username: 'alice@contoso-test.onmicrosoft.com', external_id: T.alice, account_user_status: 'INACTIVE' })
  t.type(resolved.user?.internal_id, 'number', 'internal_id as the SDK types it')

  // Workspace: a dashboard and its permissions.
  const dashboard = await workspace.lakeview.create({ dashboard: { display_name: 'SDK dashboard', parent_path: '/Shared' } })
  await workspace.permissions.update({
    request_object_type: 'dashboards',
    request_object_id: dashboard.dashboard_id as string,
    access_control_list: [{ user_name: 'alice@contoso.com', permission_level: 'CAN_RUN' }]
  })
  const permissions = await workspace.permissions.get({ request_object_type: 'dashboards', request_object_id: dashboard.dashboard_id as string })
  t.equal(permissions.object_id, `/dashboards/${dashboard.dashboard_id as string}`)
  t.equal(permissions.object_type, 'dashboard')
  t.same(permissions.access_control_list?.find(e => e.user_name === 'alice@contoso.com')?.all_permissions, [{ permission_level: 'CAN_RUN', inherited: false }])
  t.ok(permissions.access_control_list?.some(e => e.group_name === 'admins'), 'the admins group')
  const published = await workspace.lakeview.publish({ dashboard_id: dashboard.dashboard_id as string, embed_credentials: true })
  t.equal(published.embed_credentials, true)
  const me = await workspace.currentUser.me()
  t.equal(me.userName, 'admin@databricks-emulator.local')

  // Throttled, the SDK retries the 429 and gets through.
  await control('PUT', '/rate-limits', { enabled: true, limits: { 'account-scim-get': 1 } })
  const first = await account.accountUsersV2.get({ id: alice.id as string })
  const second = await account.accountUsersV2.get({ id: alice.id as string })
  t.equal(second.id, first.id)
  t.ok((await control('GET', '/rate-limits')).body.refused.throttled >= 1, 'the second read was throttled first')
})

async function createGroupWithSdk (client: AccountClient, name: string): Promise<string> {
  const g = await client.accountGroupsV2.create({ displayName: name })
  return g.id as string
}
