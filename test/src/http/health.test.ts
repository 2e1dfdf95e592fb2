import t from 'tap'
import { buildApp } from '../../../src/app.ts'
import { loadConfig } from '../../../src/config.ts'

const config = loadConfig({ LOG_LEVEL: 'silent' })

t.test('healthz and readyz answer when every check passes', async t => {
  const app = await buildApp({ config, readinessChecks: [{ name: 'graph', check: () => {} }] })
  t.teardown(async () => await app.close())
  const health = await app.inject('/healthz')
  t.equal(health.statusCode, 200)
  t.same(health.json(), { status: 'ok' })
  const ready = await app.inject('/readyz')
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready', checks: { graph: 'ok' } })
})

t.test('readyz is a 503 problem naming the failing check', async t => {
  const app = await buildApp({ config, readinessChecks: [{ name: 'entra-signing-keys', check: async () => { throw new Error('connection refused') } }, { name: 'redis', required: false, check: () => {} }] })
  t.teardown(async () => await app.close())
  const res = await app.inject('/readyz')
  t.equal(res.statusCode, 503)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(res.json(), { status: 503, code: 'NOT_READY', detail: /: entra-signing-keys: connection refused$/ })
})

t.test('a check that is not required reports its failure and leaves the replica ready (degraded)', async t => {
  const app = await buildApp({ config, readinessChecks: [{ name: 'entra-signing-keys', check: () => {} }, { name: 'redis', required: false, check: async () => { throw new Error('unreachable for 3 s (ECONNREFUSED)') } }] })
  t.teardown(async () => await app.close())
  const res = await app.inject('/readyz')
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'degraded', checks: { 'entra-signing-keys': 'ok', redis: 'unreachable for 3 s (ECONNREFUSED)' } })
})

t.test('unknown routes and bad bodies are problem+json with stable codes', async t => {
  const app = await buildApp({ config })
  app.post('/echo', { schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } }, async (r) => r.body)
  app.get('/boom', async () => { throw new Error('database password is hunter2') })
  t.teardown(async () => await app.close())

  const missing = await app.inject('/nope?x=1')
  t.equal(missing.statusCode, 404)
  t.match(missing.json(), { code: 'NOT_FOUND', detail: /GET \/nope/, instance: '/nope?x=1' })

  const invalid = await app.inject({ method: 'POST', url: '/echo', payload: {} })
  t.equal(invalid.statusCode, 400)
  t.match(invalid.json(), { code: 'INVALID_REQUEST', detail: /name/ })

  const notJson = await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload: '{nope' })
  t.equal(notJson.statusCode, 400)
  t.match(notJson.json(), { code: 'INVALID_REQUEST' })

  const internal = await app.inject('/boom')
  t.equal(internal.statusCode, 500)
  t.equal(internal.json().code, 'INTERNAL')
  t.notMatch(internal.body, /hunter2/, 'internals never leak')
})
