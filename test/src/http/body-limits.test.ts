// Cheap before expensive: a caller without the route's role is refused before its body is read, every
// route has a body limit (413 BODY_TOO_LARGE names it), and JSON nested deeper than any request needs is
// refused before it is parsed (400 JSON_TOO_DEEP). Against the emulators, in AIM mode.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'
import { adminToken, callsMatching } from '../../helpers/registrations.ts'
import { MAX_JSON_DEPTH } from '../../../src/http/json-body.ts'

const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
// One principal at a time: the 10,000-principal jobs below are accepted, not meant to run to the end.
const aim = { DATABRICKS_HOST: emulator.origin, DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID, DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT, DATABRICKS_MODE: 'aim', REGISTRATIONS_CONCURRENCY: '1' }
const { app } = await startService(t, emulator, aim)
const admin = await adminToken(emulator)
const user = await tokenFor(emulator, T.alice)

const MB4 = 4 * 1024 * 1024
/** `{"principals": [[[…]]]}`: 4 MB of nothing but nesting, the shape of the attack. */
const deep4MB = `{"principals":${'['.repeat(MB4 / 2)}${']'.repeat(MB4 / 2)}}`
/** The same size, not even JSON (never closed). */
const broken4MB = `{"principals":${'['.repeat(MB4)}`
/** Too deep, but within the registration route's body limit: the depth check would refuse it if it ran. */
const brokenSmall = `{"principals":${'['.repeat(100_000)}`

type Answer = { status: number, type: unknown, json: { code?: string, detail?: string, total?: number } }
async function post (url: string, token: string | undefined, body: string, to: FastifyInstance = app): Promise<Answer> {
  const res = await to.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) },
    payload: body
  })
  return { status: res.statusCode, type: res.headers['content-type'], json: res.json() }
}

const PROBLEM = 'application/problem+json; charset=utf-8'
/** A body nested `depth` levels deep in all (the outer object counts as one), with `extra` fields. */
const nestedBody = (depth: number, extra = ''): string => `{${extra}"nested":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`

t.test('without Identity.Admin, a registration is refused before its body is read', async t => {
  const deep = await post('/v1/registrations', user, deep4MB)
  t.match(deep, { status: 403, type: PROBLEM, json: { code: 'MISSING_ROLE', detail: /Identity\.Admin/ } })
  // Had the body been read, 4 MB of invalid JSON would be 413 (over the limit), a smaller one 400.
  t.match(await post('/v1/registrations', user, broken4MB), { status: 403, json: { code: 'MISSING_ROLE' } })
  t.match(await post('/v1/registrations', user, brokenSmall), { status: 403, json: { code: 'MISSING_ROLE' } })
  t.match(await post('/v1/registrations', admin, brokenSmall), { status: 400, json: { code: 'JSON_TOO_DEEP' } }, 'the same body from an admin is read')
  t.match(await post('/v1/registrations', undefined, deep4MB), { status: 401, type: PROBLEM })
  t.match(await post('/v1/registrations', 'not-a-token', broken4MB), { status: 401, type: PROBLEM })
})

t.test('an admin\'s body over the registration limit is 413 BODY_TOO_LARGE, naming the limit', async t => {
  // Valid by the schema (names of up to 320 characters) but 3.2 MB: more than real names ever need.
  const long = JSON.stringify({ principals: Array.from({ length: 10_000 }, (_, i) => `${String(i).padStart(5, '0')}@`.padEnd(320, 'x')) })
  const res = await post('/v1/registrations', admin, long)
  t.match(res, { status: 413, type: PROBLEM, json: { code: 'BODY_TOO_LARGE', detail: /2 MiB \(2097152 bytes\) that POST \/v1\/registrations accepts: send a smaller body/ } })
  t.match(await post('/v1/registrations', admin, deep4MB), { status: 413, json: { code: 'BODY_TOO_LARGE' } }, 'the limit applies before the depth check')
})

t.test('an admin\'s largest realistic registrations are accepted', async t => {
  // A service of its own: its jobs stop with it, and do not call Graph while other tests count calls.
  const { app } = await startService(t, emulator, aim)
  const hex = (n: number): string => n.toString(16).padStart(12, '0')
  const guids = JSON.stringify({ principals: Array.from({ length: 10_000 }, (_, i) => `f0000000-0000-4000-8000-${hex(i)}`) })
  t.match(await post('/v1/registrations', admin, guids, app), { status: 202, json: { total: 10_000 } }, `10,000 object ids (${guids.length} bytes)`)

  // Entra's longest UPN: 64 characters before the @, 48 after; as objects, pretty-printed.
  const upn = (i: number): string => `${`member${String(i).padStart(5, '0')}.`.padEnd(64, 'x')}@${'x'.repeat(19)}.contoso-test.onmicrosoft.com`
  t.equal(upn(0).length, 113)
  const upns = JSON.stringify({ principals: Array.from({ length: 10_000 }, (_, i) => ({ userPrincipalName: upn(i) })) }, null, 2)
  t.ok(upns.length > 1_500_000, `${upns.length} bytes`)
  t.match(await post('/v1/registrations', admin, upns, app), { status: 202, json: { total: 10_000 } }, `10,000 of the longest UPNs as objects, pretty-printed (${upns.length} bytes)`)
})

t.test('every other route takes at most 64 KiB', async t => {
  const big = `{"workspaceId":"1","padding":"${'x'.repeat(70 * 1024)}"}`
  t.match(await post('/v1/login', user, big), { status: 413, type: PROBLEM, json: { code: 'BODY_TOO_LARGE', detail: /64 KiB \(65536 bytes\) that POST \/v1\/login accepts/ } })
  t.match(await post('/v1/shares', user, big), { status: 413, json: { code: 'BODY_TOO_LARGE' } })
  t.match(await post('/v1/login', undefined, big), { status: 401 }, 'authentication still comes first')
})

t.test(`JSON nested more than ${MAX_JSON_DEPTH} levels is 400 JSON_TOO_DEEP`, async t => {
  for (const url of ['/v1/login', '/v1/shares', '/v1/registrations']) {
    const token = url === '/v1/registrations' ? admin : user
    const res = await post(url, token, nestedBody(MAX_JSON_DEPTH + 1))
    t.match(res, { status: 400, type: PROBLEM, json: { code: 'JSON_TOO_DEEP', detail: new RegExp(`more than ${MAX_JSON_DEPTH} levels deep`) } }, url)
  }
  const deepObjects = `{"workspaceId":"1",${'"a":{'.repeat(MAX_JSON_DEPTH)}${'}'.repeat(MAX_JSON_DEPTH)}}`
  t.match(await post('/v1/login', user, deepObjects), { status: 400, json: { code: 'JSON_TOO_DEEP' } }, 'objects count as arrays do')

  // At the limit the body is parsed as before, then refused by the schema for its unknown field.
  t.match(await post('/v1/login', user, nestedBody(MAX_JSON_DEPTH)), { status: 400, json: { code: 'UNKNOWN_PROPERTY', detail: /"nested"/ } }, `${MAX_JSON_DEPTH} levels are parsed`)
  // Brackets inside strings are text, escaped quotes do not end a string.
  const inString = `{"note":"\\"${'['.repeat(1000)}\\\\","more":"${'{'.repeat(1000)}"}`
  t.match(await post('/v1/login', user, inString), { status: 400, json: { code: 'UNKNOWN_PROPERTY', detail: /"note", "more"/ } }, 'brackets in string literals are not nesting')
})

t.test('empty, invalid and prototype-poisoning JSON keep fastify\'s 400s, as problems', async t => {
  for (const body of ['', '{"workspaceId":', '{"__proto__":{"isAdmin":true}}', '{"constructor":{"prototype":{"isAdmin":true}}}']) {
    const res = await post('/v1/login', user, body)
    t.match(res, { status: 400, type: PROBLEM, json: { code: 'INVALID_REQUEST', detail: /JSON|[Bb]ody/ } }, JSON.stringify(body))
  }
  // A login hook may still POST no body at all.
  const none = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${user}` } })
  t.equal(none.statusCode, 200)
})

t.test('GET /v1/principals/{id} without Identity.Admin is 403 before any Graph call or validation', async t => {
  const graphCalls = (): number => callsMatching(emulator, / \/v1\.0\//)
  const before = graphCalls()
  const get = async (url: string, token: string): Promise<{ status: number, code?: string }> => {
    const res = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } })
    return { status: res.statusCode, code: res.json().code }
  }
  t.same(await get('/v1/principals/x', user), { status: 403, code: 'MISSING_ROLE' })
  t.same(await get(`/v1/principals/${T.bob}`, user), { status: 403, code: 'MISSING_ROLE' })
  t.same(await get('/v1/principals/x?by=nonsense', user), { status: 403, code: 'MISSING_ROLE' }, 'the role before the query is validated')
  t.equal(graphCalls(), before, 'Graph was not asked')
  t.same(await get('/v1/principals/x?by=nonsense', admin), { status: 400, code: 'INVALID_REQUEST' }, 'an admin\'s bad query is still a 400')
})
