// Strict contracts (issue 11): an unknown property is a 400 naming it, never silently dropped; ids are
// strings, never coerced; GUIDs in any case; blank ids and control characters refused; an object id is
// checked against its type's shape (400 with the shape) before Databricks is asked, and one of the right
// shape that names nothing is 404 OBJECT_NOT_FOUND. Against the emulators, in AIM mode.
import { connect } from 'node:net'
import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'
import { adminToken } from '../../helpers/registrations.ts'

const WS = DEFAULT_WORKSPACE_ID
const UPN = { alice: 'alice@contoso-test.onmicrosoft.com', bob: 'bob@contoso-test.onmicrosoft.com' }
/** What a detail never shows: a raw regular expression. */
const REGEX = /\^\[|\]\{|\$$|\\[dsS]/

const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
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

await control('POST', '/reset')
await control('PUT', '/rate-limits', { enabled: false })
const { app } = await startService(t, emulator, { DATABRICKS_HOST: origin, DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID, DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT, DATABRICKS_MODE: 'aim' })
const tokens = { alice: await tokenFor(emulator, T.alice), bob: await tokenFor(emulator, T.bob), admin: await adminToken(emulator) }
for (const token of [tokens.alice, tokens.bob]) await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
await control('POST', `/workspaces/${WS}/objects`, { type: 'directories', path: '/Shared/Sales' })
const dashboard = await control('POST', `/workspaces/${WS}/dashboards`, { displayName: 'Pipeline', parentPath: '/Shared/Sales' })
const dashboardId = dashboard.dashboard_id as string
await control('PUT', `/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboardId, access_control_list: [{ user_name: UPN.bob, permission_level: 'CAN_MANAGE' }] })

const permissionCalls = (): number => Object.entries(ctx.calls.snapshot().routes)
  .filter(([r]) => / \/api\/2\.0\/(permissions|lakeview)\//.test(r)).reduce((n, [, c]) => n + c, 0)
const aclOf = async (): Promise<Array<{ principal: { name: string }, level: string }>> => {
  const state = await control('GET', '/state') as { workspaces: Array<{ id: string, objects: Array<{ id: string, acl: Array<{ principal: { name: string }, level: string }> }> }> }
  return state.workspaces.find(w => w.id === WS)?.objects.find(o => o.id === dashboardId)?.acl ?? []
}

/** A test name safe for the TAP stream (a raw U+2028 would end its line). */
const escaped = (value: string): string => JSON.stringify(value).replace(/[^\x20-\x7e]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)

type Answer = { status: number, code?: string, detail: string, body: any }
const answer = (res: LightMyRequestResponse): Answer => {
  const body = res.json()
  return { status: res.statusCode, code: body.code, detail: String(body.detail ?? ''), body }
}
/** POST with a raw JSON text (numbers JavaScript cannot hold, control characters as sent). */
async function post (url: string, token: string, payload: string | object): Promise<Answer> {
  return answer(await app.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload)
  }))
}
async function get (url: string, token: string): Promise<Answer> {
  return answer(await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } }))
}
const share = async (payload: Record<string, unknown>, token = tokens.bob): Promise<Answer> =>
  await post('/v1/shares', token, { workspaceId: WS, objectType: 'dashboards', objectId: dashboardId, principal: UPN.alice, ...payload })
const permissions = async (type: string, id: string, query = ''): Promise<Answer> =>
  await get(`/v1/permissions/${type}/${id}?workspaceId=${WS}${query}`, tokens.bob)

t.test('POST /v1/shares with "permission": 400 UNKNOWN_PROPERTY naming it, and nothing is granted', async t => {
  const before = await aclOf()
  ctx.calls.reset()
  const res = await share({ permission: 'CAN_MANAGE' })
  t.equal(res.status, 400)
  t.equal(res.code, 'UNKNOWN_PROPERTY')
  t.match(res.detail, /Unknown property in the body: "permission" \(POST \/v1\/shares takes workspaceId, objectType, objectId, principal, by and level\)/)
  t.match(res.detail, /Remove it or correct the spelling/)
  t.match(res.body, { requestId: String })
  t.equal(permissionCalls(), 0, 'Databricks was not asked')
  t.same(await aclOf(), before, 'the ACL is unchanged: nobody got CAN_READ')
  // The same request with the documented name is what grants.
  const right = await share({ level: 'CAN_READ' })
  t.equal(right.status, 200, right.detail)
})

t.test('POST /v1/login {"workspaceID": …}: 400 naming it, with the spelling it meant', async t => {
  const res = await post('/v1/login', tokens.alice, { workspaceID: WS })
  t.match(res, { status: 400, code: 'UNKNOWN_PROPERTY', detail: /"workspaceID" \(did you mean "workspaceId"\?\) \(POST \/v1\/login takes workspaceId\)/ })
  const several = await post('/v1/login', tokens.alice, Object.fromEntries(Array.from({ length: 14 }, (_, i) => [`extra${i}`, i])))
  t.match(several, { status: 400, code: 'UNKNOWN_PROPERTY', detail: /Unknown properties in the body: "extra0", .*"extra9" and 4 more/ }, 'many unknown properties: ten listed, the rest counted')
  t.equal((await post('/v1/login', tokens.alice, {})).status, 200, 'an empty body still signs in')
})

t.test('a registration item {"id", "mail"} is refused, not cut down to one key', async t => {
  const res = await post('/v1/registrations', tokens.admin, { principals: [{ id: T.bob, mail: 'bob@contoso.com' }] })
  t.match(res, { status: 400, code: 'INVALID_REQUEST', detail: /principals\[0\] must be .*exactly one of id, userPrincipalName, mail and appId \(it has "id" and "mail"\)/ })
  const empty = await post('/v1/registrations', tokens.admin, { principals: [{}] })
  t.match(empty, { status: 400, detail: /principals\[0\] must be .*\(it is empty\)/ })
  const nested = await post('/v1/registrations', tokens.admin, { principals: [T.alice, { id: T.bob, extra: { deeper: true } }] })
  t.match(nested, { status: 400, code: 'UNKNOWN_PROPERTY', detail: /Unknown property in the body's principals\[1\]: "extra" \(it takes id, userPrincipalName, mail and appId\)/ }, 'a nested unknown property')
  const idNotGuid = await post('/v1/registrations', tokens.admin, { principals: [{ id: UPN.bob }] })
  t.match(idNotGuid, { status: 400, detail: /principals\[0\]\.id must be an Entra object id \(GUID\)/ })
})

t.test('a number where a string id is due is refused, never rounded into another id', async t => {
  const login = await post('/v1/login', tokens.alice, '{"workspaceId": 31415926535897931234}')
  t.match(login, { status: 400, code: 'INVALID_REQUEST', detail: /workspaceId must be a string \(a workspace id: .*\), not a number\..*Ids and names are JSON strings: a JSON number cannot hold every id exactly/ })
  t.notMatch(login.detail, /31415926535897930000/, 'the rounded number appears nowhere')
  const shareNumber = await post('/v1/shares', tokens.bob, `{"workspaceId": ${WS}, "objectType": "dashboards", "objectId": "${dashboardId}", "principal": 12345}`)
  t.match(shareNumber, { status: 400, detail: /workspaceId must be a string.*not a number.*principal must be a string.*not a number/ }, 'every error at once')
  const item = await post('/v1/registrations', tokens.admin, { principals: [12345, null, ['x']] })
  t.match(item, { status: 400, detail: /principals\[0\] must be a string or an object.*not a number.*principals\[1\] must be a string or an object.*not null.*principals\[2\].*not an array/ })
  const group = await post('/v1/registrations', tokens.admin, { group: true })
  t.match(group, { status: 400, detail: /group must be a string \(an Entra object id \(GUID\).*\), not a boolean/ })
  const twice = await get(`/v1/permissions/dashboards/${dashboardId}?workspaceId=${WS}&workspaceId=42`, tokens.bob)
  t.match(twice, { status: 400, detail: /query parameter workspaceId must be a string.*not an array/ }, 'a repeated query parameter')
})

t.test('GUIDs in any case; a GUID field says so in words, never as a pattern', async t => {
  const refused = await post('/v1/registrations', tokens.admin, { group: 'engineering' })
  t.match(refused, { status: 400, code: 'INVALID_REQUEST', detail: /group must be an Entra object id \(GUID\), e\.g\. 8f3b9a0f-/ })
  t.notMatch(refused.detail, REGEX, 'no raw regular expression')
  const upper = await post('/v1/registrations', tokens.admin, { group: T.engineering.toUpperCase() })
  t.equal(upper.status, 202, upper.detail)
  t.equal(upper.body.group, T.engineering, 'kept in lowercase')
  const job = await get(`/v1/registrations/${String(upper.body.id).toUpperCase()}`, tokens.admin)
  t.equal(job.status, 200, 'a job id in any case')

  const principal = await get(`/v1/principals/${T.bob.toUpperCase()}`, tokens.admin)
  t.match(principal, { status: 200, body: { principal: { id: T.bob } } })
  const byApp = await get(`/v1/principals/${T.etlAppId.toUpperCase()}?by=appId`, tokens.admin)
  t.match(byApp, { status: 200, body: { principal: { id: T.etlSp } } })
  const notGuid = await get('/v1/principals/alice?by=id', tokens.admin)
  t.match(notGuid, { status: 400, code: 'INVALID_REQUEST', detail: /id must be an Entra object id \(GUID\).*when by=id/ })
  const shared = await share({ principal: T.alice.toUpperCase() })
  t.match(shared, { status: 200, body: { principal: { id: T.alice } } })
})

t.test('blank and whitespace ids are 400s', async t => {
  for (const [name, res] of [
    ['objectId "   "', await share({ objectId: '   ' })],
    ['principal " "', await share({ principal: ' ' })],
    ['objectType ""', await share({ objectType: '' })],
    ['workspaceId " "', await share({ workspaceId: ' ' })],
    ['GET /v1/principals/%20%20', await get('/v1/principals/%20%20', tokens.admin)],
    ['permissions objectId %20', await permissions('dashboards', '%20')],
    ['permissions principal=%20', await permissions('dashboards', dashboardId, '&principal=%20')],
    ['registration " "', await post('/v1/registrations', tokens.admin, { principals: ['  '] })]
  ] as const) {
    t.equal(res.status, 400, `${name}: 400`)
    t.match(res.code, /^INVALID_(REQUEST|OBJECT_ID)$/, name)
    t.notMatch(res.detail, REGEX, `${name}: no raw pattern`)
  }
  t.match(await share({ objectId: '   ' }), { detail: /objectId must be an object id, not blank and without control characters/ })
})

t.test('object ids are checked against their type\'s shape: a 400 naming it, Databricks never asked', async t => {
  ctx.calls.reset()
  const cases: Array<[string, string, RegExp]> = [
    ['dashboards', 'x', /32 hexadecimal characters/],
    ['dashboards', `${dashboardId}0`, /32 hexadecimal characters/],
    ['notebooks', 'abc', /digits, the workspace object id/],
    ['directories', '12a', /digits/],
    ['files', '-1', /digits/],
    ['repos', '1e5', /digits/],
    ['jobs', '1.5', /a job id: digits/],
    ['clusters', '123', /0123-456789-abcdefgh/],
    ['warehouses', 'xyz', /a SQL warehouse id: hexadecimal/],
    ['pipelines', 'a b', /letters, digits, "\.", "_" or "-"/],
    ['queries', 'a..b', /never "\.\."/]
  ]
  for (const [type, id, shape] of cases) {
    const asked = await permissions(type, encodeURIComponent(id))
    t.match(asked, { status: 400, code: 'INVALID_OBJECT_ID', detail: shape }, `GET ${type}/${id}`)
    t.match(asked.detail, `for ${type}`)
    const shared = await share({ objectType: type, objectId: id })
    t.match(shared, { status: 400, code: 'INVALID_OBJECT_ID', detail: shape }, `share ${type}/${id}`)
  }
  t.equal(permissionCalls(), 0, 'no permissions call reached Databricks')
  // The shapes the emulator and the demo issue pass.
  t.equal((await permissions('dashboards', dashboardId.toUpperCase())).status === 400, false, 'a dashboard id in capitals has the shape')
})

t.test('"..", an encoded "/", "?" and "#" in an object id are 400s, never a 502 quoting Databricks', async t => {
  ctx.calls.reset()
  for (const type of ['dashboards', 'notebooks', 'pipelines', 'alerts']) {
    for (const id of ['..', '../x', '../../api/2.0/preview/scim/v2/Users', 'a%2Fb', 'a/b', 'a?b', 'a#b', '%2e%2e', 'a\\b']) {
      const shared = await share({ objectType: type, objectId: id })
      t.match(shared, { status: 400, code: 'INVALID_OBJECT_ID' }, `share ${type} ${JSON.stringify(id)}`)
      t.notMatch(shared.detail, /api\/2\.0\/permissions/)
      // (inject, as a browser or curl, resolves a ".." segment before sending: sent as is below)
      if (id === '..' || id === '%2e%2e') continue
      const asked = await permissions(type, encodeURIComponent(id))
      t.match(asked, { status: 400, code: 'INVALID_OBJECT_ID' }, `GET ${type} ${JSON.stringify(id)}`)
    }
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  for (const segment of ['..', '%2E%2E', '.%2e']) {
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.end(`GET /v1/permissions/pipelines/${segment}?workspaceId=${WS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tokens.bob}\r\nConnection: close\r\n\r\n`)
      })
      let out = ''
      socket.on('data', (d: Buffer) => { out += d.toString('utf8') })
      socket.on('error', reject)
      socket.on('close', () => { resolve(out) })
    })
    t.match(text, /^HTTP\/1\.1 400 /, `a ${segment} segment sent as is`)
    t.match(text, /"code":"INVALID_OBJECT_ID"/)
  }
  t.equal(permissionCalls(), 0, 'Databricks was never asked')
})

t.test('an id of the right shape that names nothing is 404 OBJECT_NOT_FOUND', async t => {
  t.match(await permissions('dashboards', '0123456789abcdef0123456789abcdef'), { status: 404, code: 'OBJECT_NOT_FOUND' })
  t.match(await permissions('jobs', '999999999'), { status: 404, code: 'OBJECT_NOT_FOUND' })
  t.match(await share({ objectType: 'notebooks', objectId: '424242' }), { status: 404, code: 'OBJECT_NOT_FOUND' })
})

t.test('attacker-style input: control characters, odd property names, unknown query parameters', async t => {
  const nul = await share({ principal: 'alice\u0000@contoso-test.onmicrosoft.com' })
  t.match(nul, { status: 400, code: 'INVALID_REQUEST', detail: /principal must be a name without control characters/ })
  const newline = await share({ objectId: '1\n2' })
  t.match(newline, { status: 400, detail: /objectId must be an object id, not blank and without control characters/ })
  for (const id of ['\u0007', 'a\u0085b', 'x\u2028y']) {
    t.equal((await share({ objectType: 'pipelines', objectId: id })).status, 400, `objectId ${escaped(id)}`)
    t.equal((await post('/v1/registrations', tokens.admin, { principals: [id] })).status, 400, `registration ${escaped(id)}`)
  }

  const odd = await share({ 'perm\u0007ission\u202e': 'CAN_MANAGE', ['x'.repeat(500)]: 1 })
  t.match(odd, { status: 400, code: 'UNKNOWN_PROPERTY' })
  t.match(odd.detail, '"perm\\u0007ission\\u202e"', 'the name is escaped')
  t.notOk([...odd.detail].some(c => c.charCodeAt(0) < 0x20 || c === '\u202e'), 'no raw control or bidi character in the detail')
  t.match(odd.detail, `"${'x'.repeat(64)}…"`, 'a long name is cut')

  const query = await permissions('dashboards', dashboardId, '&principle=x&debug=1')
  t.match(query, { status: 400, code: 'UNKNOWN_PROPERTY', detail: /Unknown query parameters: "principle", "debug" \(GET \/v1\/permissions\/\{objectType\}\/\{objectId\} takes workspaceId, principal and by\)/ })
  const proto = await post('/v1/login', tokens.alice, '{"workspaceId":"1","__proto__":{"admin":true}}')
  t.equal(proto.status, 400, 'prototype poisoning is still refused')
  const by = await permissions('dashboards', dashboardId, '&principal=x&by=ID')
  t.match(by, { status: 400, detail: /query parameter by must be one of id, userPrincipalName, mail or appId/ })
  const deep = await post('/v1/login', tokens.alice, { workspaceId: { $ne: '' } })
  t.match(deep, { status: 400, detail: /workspaceId must be a string.*not an object/ }, 'an operator object where an id is due')
})
