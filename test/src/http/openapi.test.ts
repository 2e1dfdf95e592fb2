// The committed OpenAPI contract (openapi/openapi.json) is what the route schemas generate, and the
// running service serves it with Swagger UI at /docs.
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { OPENAPI_PATH, openApiDocument, renderOpenApi } from '../../../src/http/openapi.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { startService } from '../../helpers/service.ts'

interface Operation {
  security?: unknown
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>
}
interface Document {
  openapi: string
  info: { title: string, version: string }
  components: { securitySchemes: Record<string, unknown>, schemas: Record<string, unknown> }
  paths: Record<string, Record<string, Operation>>
}

const committedText = await readFile(new URL(`../../../${OPENAPI_PATH}`, import.meta.url), 'utf8')
const committed = JSON.parse(committedText) as Document

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

  const problem = { content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } }
  const login = committed.paths['/v1/login']?.post
  const principal = committed.paths['/v1/principals/{id}']?.get
  for (const [name, operation, statuses] of [
    ['POST /v1/login', login, ['400', '401', '403', '404', '502', '503']],
    ['GET /v1/principals/{id}', principal, ['400', '401', '403', '404', '503']]
  ] as const) {
    if (operation === undefined) {
      t.fail(`${name} is missing`)
      continue
    }
    t.same(operation.security, [{ bearer: [] }], `${name} needs a bearer token`)
    t.ok(operation.responses['200']?.content?.['application/json'], `${name} documents its 200`)
    for (const status of statuses) t.match(operation.responses[status], problem, `${name} answers ${status} with a problem`)
  }
  t.notOk(committed.paths['/metrics'], '/metrics is for scrapers, not in the contract')
  t.notOk(Object.keys(committed.paths).some(p => p.startsWith('/docs')), 'the UI\'s own routes are not in the contract')
})

t.test('the service serves Swagger UI at /docs and the document at /docs/json', async t => {
  const emulator = await startTestEmulator(t)
  const { app } = await startService(t, emulator)

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
  t.same(JSON.parse(renderOpenApi(json.json())), committed)
})
