// GET /metrics: open when METRICS_TOKEN is unset (as before); with it set, only a scraper that sends
// `Authorization: Bearer <METRICS_TOKEN>` gets the metrics, everyone else a 401 problem with a Bearer
// challenge, and the token never reaches a log line. The app is built from the configuration as the
// service builds it (loadConfig → buildApp), with the request log captured at the most verbose level.
import t, { type Test } from 'tap'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../../src/app.ts'
import { loadConfig } from '../../../src/config.ts'
import { Metrics } from '../../../src/observability/metrics.ts'

const TOKEN = 'scrape-3b1f0c9e-6d2a-4f57-9a43-1c8e7d5b2a60'

/** The app, and every line it logs (the logger's destination replaced, so child loggers write here too). */
async function appWith (t: Test, env: Record<string, string>): Promise<{ app: FastifyInstance, logged: string[] }> {
  const app = await buildApp({ config: loadConfig({ LOG_LEVEL: 'trace', ...env }), metrics: new Metrics({ processMetrics: false }) })
  t.teardown(async () => await app.close())
  const logged: string[] = []
  const stream = (app.log as unknown as Record<symbol, { write: (line: string) => void }>)[pino.symbols.streamSym]
  if (stream === undefined) throw new Error('the app logger has no destination to capture')
  stream.write = (line: string) => { logged.push(line) }
  return { app, logged }
}

const scrape = async (app: FastifyInstance, authorization?: string) =>
  await app.inject({ url: '/metrics', headers: authorization === undefined ? {} : { authorization } })

t.test('without METRICS_TOKEN /metrics is open, as before', async t => {
  const { app } = await appWith(t, {})
  const res = await scrape(app)
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.match(res.body, /# TYPE http_request_duration_seconds histogram/)
  t.equal((await scrape(app, 'Bearer anything')).statusCode, 200, 'a header is simply not needed')
})

t.test('with METRICS_TOKEN, only the right bearer token gets the metrics', async t => {
  const { app, logged } = await appWith(t, { METRICS_TOKEN: TOKEN })

  const ok = await scrape(app, `Bearer ${TOKEN}`)
  t.equal(ok.statusCode, 200)
  t.match(ok.body, /# TYPE http_request_duration_seconds histogram/)
  t.equal((await scrape(app, `bearer  ${TOKEN} `)).statusCode, 200, 'the scheme in any case, surrounding spaces ignored')

  const refusals: Array<[string, string | undefined]> = [
    ['no Authorization header', undefined],
    ['an empty header', ''],
    ['the scheme alone', 'Bearer'],
    ['an empty token', 'Bearer '],
    ['a wrong token of the same length', `Bearer ${TOKEN.slice(0, -1)}x`],
    ['a prefix of the token', `Bearer ${TOKEN.slice(0, 10)}`],
    ['the token with more after it', `Bearer ${TOKEN}0`],
    ['the token in another case', `Bearer ${TOKEN.toUpperCase()}`],
    ['the token under another scheme', `Basic ${TOKEN}`],
    ['the token without a scheme', TOKEN]
  ]
  for (const [name, authorization] of refusals) {
    const res = await scrape(app, authorization)
    t.equal(res.statusCode, 401, `${name}: 401`)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
    t.equal(res.headers['www-authenticate'], 'Bearer')
    t.match(res.json(), { status: 401, code: 'METRICS_UNAUTHORIZED', detail: /METRICS_TOKEN/, instance: '/metrics' })
    t.notMatch(res.body, /http_request_duration_seconds/, 'and no metrics')
  }

  t.ok(logged.length > 0, `the requests were logged (${logged.length} lines)`)
  t.notOk(logged.some(line => line.includes(TOKEN) || line.includes(TOKEN.slice(0, 10)) || line.includes(TOKEN.toUpperCase())), 'the token is in no log line')
  const metrics = await scrape(app, `Bearer ${TOKEN}`)
  t.match(metrics.body, /http_request_duration_seconds_count\{route="\/metrics",method="GET",status="401"\} 10/, 'refusals are counted like any request')
  t.notMatch(metrics.body, new RegExp(TOKEN), 'nor in the metrics')
})

t.test('request durations are a Prometheus histogram: cumulative buckets, +Inf and count equal, the sum of the durations', async t => {
  const metrics = new Metrics({ processMetrics: false })
  metrics.observeRequest('/v1/login', 'POST', 200, 0.0007)
  metrics.observeRequest('/v1/login', 'POST', 200, 0.003)
  metrics.observeRequest('/v1/login', 'POST', 200, 12)
  metrics.observeRequest('/v1/login', 'POST', 503, 0.001)
  const text = await metrics.registry.metrics()
  const line = (le: string, status = 200): number => Number(new RegExp(`^http_request_duration_seconds_bucket\\{le="${le.replace('+', '\\+')}",route="/v1/login",method="POST",status="${status}"\\} (\\S+)$`, 'm').exec(text)?.[1])
  t.equal(line('0.0005'), 0)
  t.equal(line('0.001'), 1, 'a bucket counts what is at most its bound')
  t.equal(line('0.005'), 2, 'cumulative')
  t.equal(line('10'), 2)
  t.equal(line('+Inf'), 3, 'beyond the last bound: +Inf only')
  t.equal(line('0.001', 503), 1, 'the same bound, inclusive')
  t.match(text, /^http_request_duration_seconds_count\{route="\/v1\/login",method="POST",status="200"\} 3$/m)
  t.match(text, /^http_request_duration_seconds_sum\{route="\/v1\/login",method="POST",status="200"\} 12\.0037$/m)
  t.match(text, /# HELP http_request_duration_seconds Requests served, by route, method and status\.\n# TYPE http_request_duration_seconds histogram/)
  metrics.registry.resetMetrics()
  t.notMatch(await metrics.registry.metrics(), /http_request_duration_seconds_count/, 'reset with the registry')
})
