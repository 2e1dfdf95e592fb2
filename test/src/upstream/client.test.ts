// The outbound HTTP client against the emulators over HTTPS: the extra CA, retries on 429/503/504 and
// dropped or hung connections, Retry-After in all three forms, the cap on waits, the typed error, the
// idempotency rule, the concurrency limit, the rate budget and what the observer sees. Most tests inject
// `sleep` (recording the waits the client chose) so the backoff is checked without waiting for it.
import { once } from 'node:events'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { selfSigned, serverCertificate } from '../../../emulators/x509.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { T, smallTenant } from '../../helpers/tenant.ts'
import { UpstreamClient, type UpstreamClientOptions, type UpstreamObserver } from '../../../src/upstream/client.ts'
import { UpstreamError, UpstreamUnavailableError } from '../../../src/upstream/errors.ts'

const { origin, ctx, ca, app } = await startTestEmulator(t, { tenants: [smallTenant()] })
const DISCOVERY = `${origin}/${T.tenantId}/v2.0/.well-known/openid-configuration`
const DISCOVERY_ROUTE = `/${T.tenantId}/v2.0/.well-known/openid-configuration`
const TOKEN = `${origin}/${T.tenantId}/oauth2/v2.0/token`

t.afterEach(() => { ctx.faults.remove(); ctx.calls.reset() })

interface Recorded {
  events: Array<{ hook: string, [k: string]: unknown }>
  waits: number[]
  observer: UpstreamObserver
}

function recorder (): Recorded {
  const events: Recorded['events'] = []
  return {
    events,
    waits: [],
    observer: {
      onResponse: e => { events.push({ hook: 'response', ...e }) },
      onRetry: e => { events.push({ hook: 'retry', ...e }) },
      onThrottled: e => { events.push({ hook: 'throttled', ...e }) }
    }
  }
}

/** A client whose sleeps are recorded and skipped (the backoff math is what is under test). */
function client (t: Test, rec: Recorded, options: Partial<UpstreamClientOptions> = {}): UpstreamClient {
  const c = new UpstreamClient({
    name: 'entra',
    ca,
    observer: rec.observer,
    sleep: async ms => { rec.waits.push(ms) },
    random: () => 0.5,
    retry: { maxRetries: 2, baseDelayMs: 100, maxDelayMs: 1_000, maxRetryAfterMs: 5_000 },
    ...options
  })
  t.teardown(async () => { await c.close() })
  return c
}

t.test('trusts the CA it is given, and only then', async t => {
  const rec = recorder()
  const res = await client(t, rec).request({ method: 'GET', url: DISCOVERY })
  t.equal(res.status, 200)
  t.equal(JSON.parse(res.text).token_endpoint, `${origin}/${T.tenantId}/oauth2/v2.0/token`)
  // A CA given explicitly replaces what NODE_EXTRA_CA_CERTS added, so a wrong one must fail: this proves
  // the client uses its own trust store and does not depend on the environment.
  const other = await selfSigned('Some Other CA', 1, true)
  const stranger = client(t, rec, { ca: other.certPem })
  const err = await stranger.request({ method: 'GET', url: DISCOVERY }).catch((e: unknown) => e)
  t.type(err, UpstreamError)
  t.notOk(err instanceof UpstreamUnavailableError, 'a TLS failure is not retried as if the upstream were busy')
  t.match((err as Error).message, /request failed/)
  t.equal(ctx.calls.snapshot().routes['GET /:tenant/v2.0/.well-known/openid-configuration'], 1, 'the untrusted attempt never reached the server')
})

t.test('every new connection is verified against the same trust store: the extra CAs given, and no other', async t => {
  // A second HTTPS origin whose certificate comes from a CA the emulator's clients were not told about.
  const otherCa = await selfSigned('Other Test CA', 1, true)
  const otherCert = await serverCertificate(otherCa, { dns: ['localhost'], ip: ['127.0.0.1'] })
  const other = createServer({ key: otherCert.keyPem, cert: otherCert.certPem }, (_req, res) => { res.end('{"other":true}') })
  other.listen(0, '127.0.0.1')
  await once(other, 'listening')
  t.teardown(() => { other.close() })
  const otherUrl = `https://127.0.0.1:${String((other.address() as AddressInfo).port)}/`

  let handshakes = 0
  const count = (): void => { handshakes++ }
  app.server.on('secureConnection', count)
  t.teardown(() => { app.server.off('secureConnection', count) })
  // `connection: close` makes each request open (and verify) a connection of its own.
  const fresh = { connection: 'close' }
  const rec = recorder()

  const emulatorOnly = client(t, rec)
  for (let i = 0; i < 5; i++) {
    t.equal((await emulatorOnly.request({ method: 'GET', url: DISCOVERY, headers: fresh })).status, 200)
  }
  t.equal(handshakes, 5, 'five requests, five TLS connections, all trusted')
  for (let i = 0; i < 2; i++) {
    const err = await emulatorOnly.request({ method: 'GET', url: otherUrl, headers: fresh }).catch((e: unknown) => e)
    t.type(err, UpstreamError, 'a server certificate from a CA not given is refused, on every connection')
    t.match((err as Error).message, /request failed/)
  }
  t.equal((await emulatorOnly.request({ method: 'GET', url: DISCOVERY, headers: fresh })).status, 200, 'and the trusted origin still works after a refusal')

  const both = client(t, rec, { ca: [ca, otherCa.certPem] })
  for (let i = 0; i < 3; i++) {
    t.equal((await both.request({ method: 'GET', url: DISCOVERY, headers: fresh })).status, 200)
    t.equal((await both.request({ method: 'GET', url: otherUrl, headers: fresh })).text, '{"other":true}')
  }
})

t.test('429 with an integer Retry-After: waits that long (plus < 10 %), retries, succeeds', async t => {
  ctx.faults.add({ route: DISCOVERY_ROUTE, status: 429, retryAfter: 1, times: 2 })
  const rec = recorder()
  const res = await client(t, rec).request({ method: 'GET', url: DISCOVERY })
  t.equal(res.status, 200)
  t.equal(res.attempts, 3)
  t.same(rec.waits, [1050, 1050], 'Retry-After 1 s, jittered by random()=0.5 → +5 %')
  const route = '/{id}/v2.0/.well-known/openid-configuration'
  t.same(rec.events.filter(e => e.hook === 'throttled'), [
    { hook: 'throttled', upstream: 'entra', method: 'GET', route, status: 429, retryAfterSeconds: 1 },
    { hook: 'throttled', upstream: 'entra', method: 'GET', route, status: 429, retryAfterSeconds: 1 }
  ])
  t.same(rec.events.filter(e => e.hook === 'retry').map(e => [e.reason, e.status, e.attempt, e.waitMs]), [['throttled', 429, 1, 1050], ['throttled', 429, 2, 1050]])
  t.same(rec.events.filter(e => e.hook === 'response').map(e => [e.status, e.attempt, e.route]), [[429, 1, route], [429, 2, route], [200, 3, route]])
  t.ok(rec.events.every(e => e.hook !== 'response' || (typeof e.ms === 'number' && e.ms >= 0)), 'each attempt has its latency')
})

t.test('fractional and HTTP-date Retry-After', async t => {
  ctx.faults.add({ route: DISCOVERY_ROUTE, status: 429, retryAfter: 2.128, times: 1 })
  const rec = recorder()
  const c = client(t, rec, { random: () => 0 })
  t.equal((await c.request({ method: 'GET', url: DISCOVERY })).status, 200)
  t.same(rec.waits, [2128], 'fractional seconds kept to the millisecond')

  ctx.faults.remove()
  const now = Date.now()
  ctx.faults.add({ route: DISCOVERY_ROUTE, status: 503, retryAfter: new Date(now + 4_000).toUTCString(), times: 1 })
  const rec2 = recorder()
  const c2 = client(t, rec2, { random: () => 0, now: () => now })
  t.equal((await c2.request({ method: 'GET', url: DISCOVERY })).status, 200)
  t.equal(rec2.waits.length, 1)
  t.ok((rec2.waits[0] as number) > 3_000 && (rec2.waits[0] as number) <= 4_000, `an HTTP-date 4 s ahead (second resolution): waited ${String(rec2.waits[0])} ms`)
  t.match(rec2.events.find(e => e.hook === 'throttled'), { status: 503, retryAfterSeconds: Number })
})

t.test('a Retry-After over the cap is not sat out: the typed error carries it at once', async t => {
  ctx.faults.add({ route: DISCOVERY_ROUTE, status: 429, retryAfter: 120 })
  const rec = recorder()
  const err = await client(t, rec).request({ method: 'GET', url: DISCOVERY }).catch((e: unknown) => e) as UpstreamUnavailableError
  t.type(err, UpstreamUnavailableError)
  t.equal(err.status, 429)
  t.equal(err.retryAfterSeconds, 120)
  t.same(err.details, { status: 429, retryAfterSeconds: 120, attempts: 1, reason: 'retry-after-too-long' })
  t.same(rec.waits, [], 'no wait at all')
  t.notMatch(err.message, /\?|openid-configuration\?/, 'no query string in the message')
})

t.test('a persistent 503 ends in the typed error after the bounded retries, with the last Retry-After', async t => {
  ctx.faults.add({ route: DISCOVERY_ROUTE, status: 503, retryAfter: 0.5 })
  const rec = recorder()
  const err = await client(t, rec).request({ method: 'GET', url: DISCOVERY }).catch((e: unknown) => e) as UpstreamUnavailableError
  t.type(err, UpstreamUnavailableError)
  t.same(err.details, { status: 503, retryAfterSeconds: 0.5, attempts: 3, reason: 'exhausted' })
  t.equal(ctx.calls.snapshot().routes['GET /:tenant/v2.0/.well-known/openid-configuration'], 3, 'one try and two retries reached the server')
  t.equal(rec.waits.length, 2)
})

t.test('504 and 503 without Retry-After: full-jitter backoff, doubling; not counted as throttling', async t => {
  ctx.faults.add({ route: DISCOVERY_ROUTE, status: 504, times: 2 })
  const rec = recorder()
  const res = await client(t, rec, { random: () => 0.5 }).request({ method: 'GET', url: DISCOVERY })
  t.equal(res.status, 200)
  t.same(rec.waits, [50, 100], 'uniform in [0, 100) then [0, 200): 0.5 of each ceiling')
  t.same(rec.events.filter(e => e.hook === 'throttled'), [], 'a gateway timeout is not throttling')

  ctx.faults.add({ route: DISCOVERY_ROUTE, status: 503, times: 1 })
  t.equal((await client(t, rec).request({ method: 'GET', url: DISCOVERY })).status, 200)
  t.same(rec.events.filter(e => e.hook === 'throttled'), [], 'nor a 503 that names no wait: that is an outage')
  t.match(rec.events.filter(e => e.hook === 'retry').at(-1), { reason: 'unavailable', status: 503 })
})

t.test('other statuses are answers, not failures: returned as they are, never retried', async t => {
  const rec = recorder()
  const res = await client(t, rec).request({ method: 'GET', url: `${origin}/${T.tenantId}/oauth2/v2.0/nothing-here` })
  t.equal(res.status, 404)
  t.equal(res.attempts, 1)
  t.equal(typeof res.headers['content-type'], 'string', 'headers with lowercase names')
})

t.test('POSTs are retried only when the caller says they are safe to repeat', async t => {
  const body = new URLSearchParams({ client_id: T.resolverAppId, client_secret: T.resolverSecret, grant_type: 'client_credentials', scope: 'https://graph.microsoft.com/.default' }).toString()
  const headers = { 'content-type': 'application/x-www-form-urlencoded' }
  ctx.faults.add({ route: `/${T.tenantId}/oauth2/v2.0/token`, status: 503, retryAfter: 1, times: 1 })
  const rec = recorder()
  const c = client(t, rec)
  const err = await c.request({ method: 'POST', url: TOKEN, headers, body }).catch((e: unknown) => e) as UpstreamUnavailableError
  t.type(err, UpstreamUnavailableError)
  t.same(err.details, { status: 503, retryAfterSeconds: 1, attempts: 1, reason: 'not-retryable' })

  ctx.faults.add({ route: `/${T.tenantId}/oauth2/v2.0/token`, status: 503, retryAfter: 1, times: 1 })
  const res = await c.request({ method: 'POST', url: TOKEN, headers, body, idempotent: true })
  t.equal(res.status, 200)
  t.equal(res.attempts, 2)
  t.type(JSON.parse(res.text).access_token, 'string')
})

t.test('dropped connections are retried; if they keep dropping, the typed error', async t => {
  ctx.faults.add({ route: DISCOVERY_ROUTE, reset: true, times: 1 })
  const rec = recorder()
  const c = client(t, rec)
  const res = await c.request({ method: 'GET', url: DISCOVERY })
  t.equal(res.status, 200)
  t.equal(res.attempts, 2)
  t.match(rec.events.filter(e => e.hook === 'response'), [{ status: 0, error: 'connection', attempt: 1 }, { status: 200, attempt: 2 }])
  t.match(rec.events.find(e => e.hook === 'retry'), { reason: 'connection', attempt: 1 })

  ctx.faults.add({ route: DISCOVERY_ROUTE, reset: true })
  const err = await c.request({ method: 'GET', url: DISCOVERY }).catch((e: unknown) => e) as UpstreamUnavailableError
  t.type(err, UpstreamUnavailableError)
  t.same(err.details, { attempts: 3, reason: 'connection' })
  t.equal(err.status, undefined, 'no status: nothing answered')
})

t.test('an attempt that hangs times out, is retried, and finally fails typed', async t => {
  // The first attempt hangs far longer than the test may last; a loaded machine may be slow to answer the
  // next one, so it gets a generous timeout: what counts is that the hang ended in a timeout and a retry.
  ctx.faults.add({ route: DISCOVERY_ROUTE, timeout: true, hangMs: 600_000, times: 1 })
  const rec = recorder()
  const c = client(t, rec, { timeoutMs: 5_000 })
  const res = await c.request({ method: 'GET', url: DISCOVERY })
  t.equal(res.status, 200, 'answered although the first attempt is still hanging')
  const responses = rec.events.filter(e => e.hook === 'response')
  t.match(responses[0], { status: 0, error: 'timeout', attempt: 1 }, 'the hanging attempt timed out')
  t.match(responses.at(-1), { status: 200 }, 'a retry answered')

  ctx.faults.add({ route: DISCOVERY_ROUTE, timeout: true, hangMs: 5_000 })
  const err = await c.request({ method: 'GET', url: DISCOVERY, timeoutMs: 100, maxRetries: 1 }).catch((e: unknown) => e) as UpstreamUnavailableError
  t.type(err, UpstreamUnavailableError)
  t.same(err.details, { attempts: 2, reason: 'timeout' })
  t.match(err.message, /no answer within 100 ms/)
})

/**
 * Polls the emulator's count of discovery requests until `done` says so (or a minute passes: generous,
 * since it returns as soon as the requests are there, and a loaded machine may be slow to send them).
 */
async function arrived (done: (n: number) => boolean): Promise<number> {
  const count = (): number => ctx.calls.snapshot().routes['GET /:tenant/v2.0/.well-known/openid-configuration'] ?? 0
  const until = Date.now() + 60_000
  while (!done(count()) && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 10))
  return count()
}

t.test('the concurrency limit holds requests back', async t => {
  // The first requests to arrive are held by the server for 3 s (far longer than the 200 ms the test looks
  // on for, even on a loaded machine); the rest are answered at once.
  ctx.faults.add({ route: DISCOVERY_ROUTE, latencyMs: 3_000, times: 2 })
  const rec = recorder()
  const answered = (): number => rec.events.filter(e => e.hook === 'response').length
  const narrow = client(t, rec, { concurrency: 2 })
  const all = Promise.all(Array.from({ length: 6 }, async () => await narrow.request({ method: 'GET', url: DISCOVERY })))
  t.equal(await arrived(n => n >= 2), 2)
  await new Promise(resolve => setTimeout(resolve, 200))
  t.same([await arrived(() => true), answered()], [2, 0], 'two in flight and none answered yet: the other four wait in the client')
  await all
  t.equal(await arrived(() => true), 6)

  ctx.calls.reset()
  ctx.faults.remove()
  ctx.faults.add({ route: DISCOVERY_ROUTE, latencyMs: 3_000, times: 6 })
  const rec6 = recorder()
  const wide = client(t, rec6, { concurrency: 6 })
  const all6 = Promise.all(Array.from({ length: 6 }, async () => await wide.request({ method: 'GET', url: DISCOVERY })))
  t.equal(await arrived(n => n >= 6), 6)
  t.equal(rec6.events.length, 0, 'with room for six, all six reached the server before any was answered')
  await all6
})

t.test('the rate budget spaces requests out after the burst', async t => {
  const rec = recorder()
  const c = client(t, rec, { ratePerSecond: 20, burst: 2 })
  const times: number[] = []
  const started = performance.now()
  await Promise.all(Array.from({ length: 6 }, async () => {
    await c.request({ method: 'GET', url: DISCOVERY })
    times.push(performance.now() - started)
  }))
  const total = Math.max(...times)
  // 2 at once, then one per 50 ms: the sixth starts ~200 ms in.
  t.ok(total >= 190, `six requests at 20/s with a burst of 2 take ≥ 200 ms (${total.toFixed(0)} ms)`)
  t.equal(ctx.calls.snapshot().routes['GET /:tenant/v2.0/.well-known/openid-configuration'], 6)
})

t.test('a call that counts as several requests (a $batch) takes as many from the budget', async t => {
  const rec = recorder()
  const c = client(t, rec, { ratePerSecond: 20, burst: 2 })
  const started = performance.now()
  await c.request({ method: 'GET', url: DISCOVERY, cost: 2 })
  await Promise.all(Array.from({ length: 4 }, async () => await c.request({ method: 'GET', url: DISCOVERY })))
  const total = performance.now() - started
  // The first takes the whole burst: the next four start one per 50 ms, the fourth ~200 ms in.
  t.ok(total >= 190, `a call of cost 2 then four at 20/s with a burst of 2 take ≥ 200 ms (${total.toFixed(0)} ms)`)
})

t.test('an observer that throws never breaks a request', async t => {
  const c = client(t, recorder(), { observer: { onResponse: () => { throw new Error('metrics bug') } } })
  t.equal((await c.request({ method: 'GET', url: DISCOVERY })).status, 200)
})

t.test('requestJson parses, and says so when the body is not JSON', async t => {
  const c = client(t, recorder())
  const ok = await c.requestJson<{ issuer: string }>({ method: 'GET', url: DISCOVERY })
  t.match(ok.json.issuer, /v2\.0$/)
  const fakeText = { status: 200, headers: {}, text: '<html>', attempts: 1 }
  t.throws(() => c.parseJson(fakeText, { method: 'GET', url: `${DISCOVERY}?secret=x` }), { name: 'UpstreamResponseError', status: 200, message: /not JSON/ })
  t.throws(() => c.parseJson(fakeText, { method: 'GET', url: `${DISCOVERY}?secret=x` }), { message: /^((?!secret).)*$/s }, 'no query in the message')
})

t.test('a request aborted by its caller is not retried', async t => {
  ctx.faults.add({ route: DISCOVERY_ROUTE, latencyMs: 500 })
  const c = client(t, recorder())
  const controller = new AbortController()
  const pending = c.request({ method: 'GET', url: DISCOVERY, signal: controller.signal }).catch((e: unknown) => e)
  await arrived(n => n >= 1)
  controller.abort(new Error('caller gave up'))
  const err = await pending
  t.notOk(err instanceof UpstreamError, 'the caller\'s own abort, not an upstream failure')
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(ctx.calls.snapshot().routes['GET /:tenant/v2.0/.well-known/openid-configuration'], 1, 'sent once, not retried')
})

t.test('options that cannot work are refused at construction', async t => {
  t.throws(() => new UpstreamClient({ name: 'x', concurrency: 0 }), TypeError)
  t.throws(() => new UpstreamClient({ name: 'x', concurrency: 1.5 }), TypeError)
  t.throws(() => new UpstreamClient({ name: 'x', ratePerSecond: 0 }), TypeError)
  t.throws(() => new UpstreamClient({ name: 'x', ratePerSecond: 10, burst: 0 }), TypeError)
})
