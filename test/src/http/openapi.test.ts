// The committed OpenAPI contract (openapi/openapi.json) is what the route schemas generate, it says per
// route and status exactly which problem codes come back (with an example of each and the headers they
// carry), and the running service serves it with Swagger UI at /docs and answers as it says.
import { readFile } from 'node:fs/promises'
import t from 'tap'
import type { InjectOptions } from 'fastify'
import { OPENAPI_PATH, renderOpenApi } from '../../../src/http/openapi.ts'
import { openApiDocument } from '../../../scripts/openapi.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { startService, tokenFor } from '../../helpers/service.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'

interface Media { schema?: { $ref?: string, title?: string, properties?: { code?: { enum?: string[] }, status?: { enum?: number[] } } }, example?: unknown, examples?: Record<string, { $ref?: string }> }
interface Response { description: string, headers?: Record<string, { description?: string, schema?: unknown }>, content?: Record<string, Media> }
interface Operation {
  security?: unknown
  requestBody?: { content: Record<string, Media> }
  responses: Record<string, Response>
}
interface Document {
  openapi: string
  info: { title: string, version: string }
  tags: Array<{ name: string }>
  components: { securitySchemes: Record<string, unknown>, schemas: Record<string, unknown>, examples: Record<string, { summary: string, value: { code: string, status: number } }> }
  paths: Record<string, Record<string, Operation>>
}

const committedText = await readFile(new URL(`../../../${OPENAPI_PATH}`, import.meta.url), 'utf8')
const committed = JSON.parse(committedText) as Document

const operation = (path: string, method: string): Operation => {
  const op = committed.paths[path]?.[method]
  if (op === undefined) throw new Error(`${method.toUpperCase()} ${path} is not in the document`)
  return op
}
const operations = (): Array<[string, Operation]> =>
  Object.entries(committed.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => [`${method.toUpperCase()} ${path}`, op] as [string, Operation]))
/** The codes a route's response for `status` lists. */
const codes = (path: string, method: string, status: string): string[] =>
  [...operation(path, method).responses[status]?.content?.['application/problem+json']?.schema?.properties?.code?.enum ?? []].sort()

t.test('the committed document is what the route schemas generate', async t => {
  const generated = renderOpenApi(await openApiDocument())
  t.ok(generated === committedText, `${OPENAPI_PATH} is out of date with the route schemas: run \`npm run openapi\` and commit the result`)
})

t.test('it is OpenAPI 3.1 with the bearer scheme and the identity routes with their problems', async t => {
  const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
  t.equal(committed.openapi, '3.1.0')
  t.equal(committed.info.version, pkg.version)
  t.match(committed.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
  t.match(committed.components.schemas.Problem, { type: 'object', required: ['type', 'title', 'status', 'code', 'detail', 'instance'] })

  for (const [name, op, statuses] of [
    ['POST /v1/login', operation('/v1/login', 'post'), ['400', '401', '403', '404', '413', '415', '502', '503']],
    ['GET /v1/principals/{id}', operation('/v1/principals/{id}', 'get'), ['400', '401', '403', '404', '409', '502', '503']]
  ] as const) {
    t.same(op.security, [{ bearer: [] }], `${name} needs a bearer token`)
    t.ok(op.responses['200']?.content?.['application/json'], `${name} documents its 200`)
    for (const status of statuses) t.ok(op.responses[status]?.content?.['application/problem+json'], `${name} answers ${status} with a problem`)
  }
  t.notOk(Object.keys(committed.paths).some(p => p.startsWith('/docs')), 'the UI\'s own routes are not in the contract')
})

t.test('each route lists exactly the codes it answers with, per status', async t => {
  t.same(codes('/v1/shares', 'post', '403'), ['PRINCIPAL_DISABLED', 'PRINCIPAL_NOT_FOUND', 'SHARE_FORBIDDEN', 'SHARE_LEVEL_FORBIDDEN'],
    'sharing: the caller refused by the policy, or itself disabled or deleted in Entra')
  t.same(codes('/v1/shares', 'post', '409'), ['PRINCIPAL_AMBIGUOUS', 'SHARE_TARGET_DISABLED', 'SHARE_TARGET_EXCLUDED', 'SHARE_TARGET_NAME_TAKEN'])
  t.same(codes('/v1/shares', 'post', '404'), ['OBJECT_NOT_FOUND', 'SHARE_TARGET_NOT_FOUND', 'WORKSPACE_NOT_FOUND'])
  t.same(codes('/v1/shares', 'post', '429'), ['PRINCIPAL_LOOKUPS_THROTTLED'])
  t.same(codes('/v1/principals/{id}', 'get', '403'), ['MISSING_ROLE'], 'the look-up is refused for its role alone')
  t.same(codes('/v1/principals/{id}', 'get', '404'), ['PRINCIPAL_NOT_FOUND'])
  t.same(codes('/v1/permissions/{objectType}/{objectId}', 'get', '403'), ['PERMISSION_QUERY_FORBIDDEN', 'PRINCIPAL_DISABLED', 'PRINCIPAL_NOT_FOUND'])
  t.same(codes('/v1/registrations', 'post', '400'), ['AMBIGUOUS_SOURCE', 'DATABRICKS_NOT_CONFIGURED', 'INVALID_REQUEST', 'JSON_TOO_DEEP', 'NOT_A_GROUP', 'NO_PRINCIPALS', 'TOO_MANY_PRINCIPALS', 'UNKNOWN_PROPERTY'])
  t.same(codes('/v1/registrations/{id}', 'get', '404'), ['REGISTRATION_NOT_FOUND'])
  t.same(codes('/v1/login', 'post', '401'), [
    'TOKEN_ALGORITHM_NOT_ALLOWED', 'TOKEN_AUDIENCE_INVALID', 'TOKEN_EXPIRED', 'TOKEN_ISSUER_INVALID', 'TOKEN_MALFORMED', 'TOKEN_MISSING',
    'TOKEN_NOT_YET_VALID', 'TOKEN_SIGNATURE_INVALID', 'TOKEN_SUBJECT_NOT_A_PRINCIPAL', 'TOKEN_TENANT_INVALID', 'TOKEN_TENANT_MISMATCH',
    'TOKEN_TENANT_NOT_ALLOWED', 'TOKEN_TOO_LARGE', 'TOKEN_UNKNOWN_KEY'
  ])
  t.notOk(codes('/v1/principals/{id}', 'get', '401').includes('TOKEN_SUBJECT_NOT_A_PRINCIPAL'), 'only routes that resolve the caller refuse a group\'s token')
  for (const [name, op] of operations()) {
    for (const [status, code] of [['414', 'URI_TOO_LONG'], ['500', 'INTERNAL'], ['503', 'SHUTTING_DOWN']]) {
      t.ok(op.responses[status]?.content?.['application/problem+json']?.schema?.properties?.code?.enum?.includes(code), `${name} lists ${status} ${code}`)
    }
    t.ok(op.responses.default?.content?.['application/problem+json'], `${name} says any other answer is a problem`)
  }
})

t.test('every problem response is application/problem+json, with an example of each code it lists', async t => {
  for (const [name, op] of operations()) {
    for (const [status, response] of Object.entries(op.responses)) {
      if (status.startsWith('2')) continue
      t.same(Object.keys(response.content ?? {}), ['application/problem+json'], `${name} ${status} is a problem`)
      const media = response.content?.['application/problem+json']
      const listed = media?.schema?.properties?.code?.enum
      if (status === 'default') continue
      t.ok(listed !== undefined && listed.length > 0, `${name} ${status} enumerates its codes`)
      t.same(media?.schema?.properties?.status?.enum, [Number(status)], `${name} ${status}: the status`)
      const examples = Object.values(media?.examples ?? {}).map(e => committed.components.examples[String(e.$ref).replace('#/components/examples/', '')])
      t.ok(examples.every(e => e !== undefined), `${name} ${status}: every example reference resolves`)
      t.same([...new Set(examples.map(e => e?.value.code))].sort(), [...listed ?? []].sort(), `${name} ${status}: one example per code, no other`)
      t.ok(examples.every(e => e?.value.status === Number(status)), `${name} ${status}: the examples have its status`)
      for (const code of listed ?? []) t.match(response.description, `\`${code}\``, `${name} ${status} describes ${code}`)
    }
  }
})

t.test('successes are named and shown by example; requests too', async t => {
  for (const [name, op] of operations()) {
    for (const [status, response] of Object.entries(op.responses)) {
      if (!status.startsWith('2')) continue
      t.not(response.description, 'Default Response', `${name} ${status} says what it is`)
      // An answer without a body (202 to Graph's notifications) has nothing to show.
      if (response.content === undefined) continue
      const media = Object.values(response.content)[0]
      t.ok(media?.example !== undefined, `${name} ${status} has an example`)
    }
  }
  for (const [path, method] of [['/v1/shares', 'post'], ['/v1/login', 'post'], ['/v1/registrations', 'post']] as const) {
    const media = operation(path, method).requestBody?.content['application/json']
    t.ok(media?.example !== undefined || media?.examples !== undefined, `${method.toUpperCase()} ${path}: a request example`)
  }
  t.match(operation('/v1/shares', 'post').requestBody?.content['application/json']?.example, { objectType: 'dashboards', level: 'CAN_READ' })
})

t.test('Retry-After on every 429 and 503 of the API, Location on the 202, WWW-Authenticate on the 401', async t => {
  for (const [name, op] of operations()) {
    if (op.responses['429'] !== undefined) t.match(op.responses['429'].headers?.['Retry-After'], { schema: { type: 'integer', minimum: 1 } }, `${name} 429 has Retry-After`)
    // Every route's 503 may be SHUTTING_DOWN, which carries Retry-After.
    t.ok(op.responses['503']?.headers?.['Retry-After'], `${name} 503 has Retry-After`)
    // Every /v1 route but Graph's notification webhook (which takes no bearer token) answers 401 with a challenge.
    if (name.includes(' /v1/') && name !== 'POST /v1/sync/notifications') t.ok(op.responses['401']?.headers?.['WWW-Authenticate'], `${name} 401 has WWW-Authenticate`)
  }
  t.match(operation('/v1/registrations', 'post').responses['202']?.headers?.Location, { schema: { type: 'string' } }, 'POST /v1/registrations 202 has Location')
  // A 503 some of whose codes carry no Retry-After says which do.
  const registering = operation('/v1/registrations', 'post').responses['503']?.headers?.['Retry-After']?.description
  t.match(registering, /with .*`REGISTRATIONS_UNAVAILABLE`/)
  t.match(registering, '`SHUTTING_DOWN` (any request while the instance closes)', 'a registration refused while the runner closes carries none')
  t.match(operation('/v1/shares', 'post').responses['429']?.headers?.['Retry-After']?.description, /^Whole seconds to wait before retrying\.$/)
})

t.test('/readyz and /metrics are documented', async t => {
  const ready = operation('/readyz', 'get')
  t.match(ready.responses['200']?.content?.['application/json']?.example, { status: 'ready', checks: {} })
  t.same(codes('/readyz', 'get', '503'), ['NOT_READY', 'SHUTTING_DOWN'])
  t.ok(operation('/healthz', 'get').responses['200'])

  const metrics = operation('/metrics', 'get')
  t.ok(metrics.responses['200']?.content?.['text/plain'], 'the Prometheus text format')
  t.match(metrics.responses['200']?.content?.['text/plain']?.example, /^# HELP /)
  t.same(codes('/metrics', 'get', '401'), ['METRICS_UNAUTHORIZED'])
  t.match(metrics.responses['401']?.headers?.['WWW-Authenticate'], {})
  t.same(metrics.security, [{ metricsToken: [] }, {}], 'the token is optional: only with METRICS_TOKEN')
  t.ok(committed.components.securitySchemes.metricsToken)
  t.ok(committed.tags.some(tag => tag.name === 'metrics'))
})

t.test('the service serves Swagger UI at /docs and the document at /docs/json, and answers as it says', async t => {
  const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
  const { app } = await startService(t, emulator, { METRICS_TOKEN: 'scrape-me' })

  const ui = await app.inject('/docs')
  const page = ui.statusCode === 302 ? await app.inject(String(ui.headers.location).replace(/^\.\//, '/docs/')) : ui
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /swagger-ui/i)
  // The UI's assets come from the npm package, not from a CDN: it works offline.
  t.notMatch(page.body, /https?:\/\/(?!localhost)/)
  const bundle = await app.inject('/docs/static/swagger-ui-bundle.js')
  t.equal(bundle.statusCode, 200)

  const json = await app.inject('/docs/json')
  t.equal(json.statusCode, 200)
  t.match(json.headers['content-type'], /^application\/json/)
  const served = json.json() as Document
  for (const [path, methods] of Object.entries(committed.paths)) {
    for (const [method, op] of Object.entries(methods)) t.same(served.paths[path]?.[method]?.responses, op.responses, `${method.toUpperCase()} ${path}: served as committed`)
  }
  t.same(served.components.examples, committed.components.examples)

  // What the running service answers is what the document lists, whole problems, as problem+json.
  const user = await tokenFor(emulator, T.alice)
  const bearer = { authorization: `Bearer ${user}` }
  const cases: Array<[string, string, InjectOptions]> = [
    ['/v1/login', 'post', { method: 'POST', url: '/v1/login' }],
    ['/v1/shares', 'post', { method: 'POST', url: '/v1/shares', headers: bearer, payload: { permission: 'CAN_READ' } }],
    ['/v1/shares', 'post', { method: 'POST', url: '/v1/shares', headers: { ...bearer, 'content-type': 'text/plain' }, payload: 'share it' }],
    ['/v1/principals/{id}', 'get', { method: 'GET', url: '/v1/principals/someone', headers: bearer }],
    ['/v1/registrations/{id}', 'get', { method: 'GET', url: '/v1/registrations/x', headers: { authorization: 'Bearer not-a-token' } }],
    ['/v1/permissions/{objectType}/{objectId}', 'get', { method: 'GET', url: '/v1/permissions/dashboards/1?workspaceId=1&extra=1', headers: bearer }],
    ['/metrics', 'get', { method: 'GET', url: '/metrics' }]
  ]
  for (const [path, method, request] of cases) {
    const res = await app.inject(request)
    const body = res.json() as { status: number, code: string, requestId: string, detail: string }
    const name = `${method.toUpperCase()} ${path} → ${res.statusCode} ${body.code}`
    t.match(res.headers['content-type'], /^application\/problem\+json/, `${name}: a problem`)
    t.ok(codes(path, method, String(res.statusCode)).includes(body.code), `${name}: documented`)
    t.match(body, { status: res.statusCode, requestId: String(res.headers['x-request-id']), detail: /\S/ }, `${name}: every field`)
  }
  const alive = await app.inject('/healthz')
  t.same(alive.json(), { status: 'ok' })
})
