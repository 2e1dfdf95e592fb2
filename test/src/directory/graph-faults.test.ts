// GraphDirectory when Graph or the STS misbehave, with real (short) waits: 429 with Retry-After in all
// three forms, Graph's own throttle bucket, a persistent 503, dropped and hung connections, an expired
// token, an STS that is down. Every failure that outlasts the bounded retries is DirectoryUnavailableError
// carrying the Retry-After to pass on; everything else recovers by itself.
import t, { type Test } from 'tap'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant } from '../../helpers/tenant.ts'
import { T, directoryFor, type DirectoryEnv } from '../../helpers/graph-directory.ts'
import { DirectoryUnavailableError } from '../../../src/directory/port.ts'
import { UpstreamUnavailableError } from '../../../src/upstream/errors.ts'

const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
const { ctx, origin } = emulator
const tid = T.tenantId

async function setThrottle (body: unknown): Promise<void> {
  const res = await fetch(`${origin}/_emulator/graph/throttle`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (res.status !== 200) throw new Error(`throttle control: ${res.status}`)
}

t.afterEach(async () => { ctx.faults.remove(); ctx.calls.reset(); await setThrottle({ limitPer10s: null }) })

/** A directory whose token is already fetched, so call counts below are Graph's alone. */
async function warm (t: Test, client = {}): Promise<DirectoryEnv> {
  const env = directoryFor(t, emulator, {}, client)
  await env.directory.findPrincipal(tid, { appId: T.etlAppId })
  ctx.calls.reset()
  env.rec.events.length = 0
  return env
}

/** One warm directory shared by the tests that need no client options of their own. */
const shared = await warm(t)
function sharedDirectory (): DirectoryEnv {
  shared.rec.events.length = 0
  return shared
}

const ALICE = { id: T.alice, kind: 'user' as const }

t.test('429 with Retry-After as integer, fraction and HTTP-date: honoured, retried, answered', async t => {
  const { directory, rec } = sharedDirectory()
  ctx.faults.add({ route: `/v1.0/users/${T.alice}/*`, status: 429, retryAfter: 1, times: 1 })
  ctx.faults.add({ route: `/v1.0/users/${T.bob}/*`, status: 429, retryAfter: 0.5, times: 1 })
  // HTTP-dates have whole seconds: this one is between 1 and 2 s ahead (still ahead on a slow machine).
  const date = new Date(Math.floor(Date.now() / 1000) * 1000 + 2000).toUTCString()
  ctx.faults.add({ route: `/v1.0/users/${T.guest}/*`, status: 429, retryAfter: date, times: 1 })
  const started = Date.now()
  const timed = async (id: string): Promise<{ n: number, ms: number }> => {
    const groups = await directory.transitiveGroups(tid, { id, kind: 'user' })
    return { n: groups.length, ms: Date.now() - started }
  }
  const [alice, bob, guest] = await Promise.all([timed(T.alice), timed(T.bob), timed(T.guest)])
  t.equal(alice?.n, 4)
  t.ok((alice?.ms ?? 0) >= 1_000, `integer: the answer came after ≥ 1 s (${String(alice?.ms)} ms)`)
  t.equal(bob?.n, 3)
  t.ok((bob?.ms ?? 0) >= 500, `fraction: the answer came after ≥ 0.5 s (${String(bob?.ms)} ms)`)
  t.equal(guest?.n, 2)
  t.equal(ctx.calls.snapshot().routes['GET /v1.0/users/:id/transitiveMemberOf/:cast'], 6, 'each once throttled, once answered')
  const asked = rec.events.filter(e => e.hook === 'throttled').map(e => e.retryAfterSeconds as number)
  t.equal(asked.length, 3)
  t.ok(asked.includes(1), 'the integer')
  t.ok(asked.includes(0.5), 'the fraction')
  const fromDate = asked.find(s => s !== 1 && s !== 0.5) ?? -1
  t.ok(fromDate >= 0 && fromDate <= 2, `the HTTP-date, as seconds from now (${fromDate})`)
  const retries = rec.events.filter(e => e.hook === 'retry')
  t.equal(retries.length, 3)
  for (const r of retries) {
    const wanted = (r.retryAfterSeconds as number) * 1000
    // At most 10 % of jitter on top (or a few ms, for a date that has all but passed).
    t.ok((r.waitMs as number) >= wanted && (r.waitMs as number) <= Math.max(Math.ceil(wanted * 1.1), wanted + 20), `waited ${String(r.waitMs)} ms for Retry-After ${String(r.retryAfterSeconds)} s`)
  }
})

t.test("Graph's own throttle bucket: its 429s are honoured and the calls go through", async t => {
  const { directory, rec } = sharedDirectory()
  // 20 resource units per 10 s (2 per second); each transitiveMemberOf with $select costs 1, so of 22
  // calls at once 2 are refused, and after Graph's Retry-After of 1 s the bucket holds enough for them.
  await setThrottle({ limitPer10s: 20 })
  const ids = [T.alice, T.bob, T.guest, T.disabled]
  const results = await Promise.all(Array.from({ length: 22 }, async (_, i) => await directory.transitiveGroups(tid, { id: ids[i % 4] as string, kind: 'user' })))
  t.equal(results.length, 22)
  t.ok(results.every((g, i) => g.length === [4, 3, 2, 0][i % 4]), 'every answer right')
  const throttled = rec.events.filter(e => e.hook === 'throttled')
  t.ok(throttled.length >= 1, `Graph throttled ${throttled.length} call(s)`)
  t.ok(throttled.every(e => e.status === 429 && e.retryAfterSeconds === 1), 'with its Retry-After')
  t.ok(rec.events.filter(e => e.hook === 'retry').every(e => (e.waitMs as number) >= 1_000), 'and the client waited it out')
})

t.test('a persistent 503: DirectoryUnavailableError with Retry-After, after the bounded retries', async t => {
  const { directory } = sharedDirectory()
  ctx.faults.add({ route: '/v1.0/users/*', status: 503, retryAfter: 0.1 })
  const err = await directory.transitiveGroups(tid, ALICE).catch((e: unknown) => e) as DirectoryUnavailableError
  t.type(err, DirectoryUnavailableError)
  t.equal(err.retryAfterSeconds, 0.1)
  t.equal(err.throttled, false, 'a 503: down, not throttled')
  t.type(err.cause, UpstreamUnavailableError)
  t.equal(ctx.calls.snapshot().routes['GET /v1.0/users/:id/transitiveMemberOf/:cast'], 3, 'one try, two retries')

  const byId = await directory.findPrincipal(tid, { id: T.alice }).catch((e: unknown) => e) as DirectoryUnavailableError
  t.type(byId, DirectoryUnavailableError, 'the same inside a $batch')
  t.equal(byId.retryAfterSeconds, 0.1)
  t.equal(ctx.calls.snapshot().routes['POST /v1.0/$batch'], 3)
})

t.test('a Retry-After longer than the client waits: the error at once, with that Retry-After', async t => {
  const { directory, rec } = sharedDirectory()
  ctx.faults.add({ route: '/v1.0/users/*', status: 429, retryAfter: 30 })
  const err = await directory.transitiveGroups(tid, ALICE).catch((e: unknown) => e) as DirectoryUnavailableError
  t.type(err, DirectoryUnavailableError)
  t.equal(err.retryAfterSeconds, 30)
  t.equal(err.throttled, true, 'a 429: throttled, not down')
  t.same(rec.events.filter(e => e.hook === 'retry'), [], 'no retry at all, so no 30 s wait')
})

t.test('other 5xx answers are unavailability too (not retried)', async t => {
  const { directory } = sharedDirectory()
  ctx.faults.add({ route: '/v1.0/users/*', status: 500, times: 1 })
  t.type(await directory.transitiveGroups(tid, ALICE).catch((e: unknown) => e), DirectoryUnavailableError)
  t.equal(ctx.calls.snapshot().routes['GET /v1.0/users/:id/transitiveMemberOf/:cast'], 1)
})

t.test('a dropped connection is retried; connections that keep dropping: the typed error', async t => {
  const { directory } = sharedDirectory()
  ctx.faults.add({ route: '/v1.0/users/*', reset: true, times: 1 })
  t.equal((await directory.transitiveGroups(tid, ALICE)).length, 4)
  ctx.faults.add({ route: '/v1.0/users/*', reset: true })
  const err = await directory.transitiveGroups(tid, ALICE).catch((e: unknown) => e) as DirectoryUnavailableError
  t.type(err, DirectoryUnavailableError)
  t.equal(err.retryAfterSeconds, undefined, 'nothing answered, so no Retry-After to pass on')
  t.match((err.cause as UpstreamUnavailableError).details, { reason: 'connection', attempts: 3 })
})

t.test('a hung request times out and is retried; requests that keep hanging: the typed error', async t => {
  // The retry must answer within the per-attempt timeout, so it is generous: a loaded machine may be slow
  // to answer it. The hang costs exactly that timeout, once.
  const { directory, rec } = await warm(t, { timeoutMs: 5_000 })
  ctx.faults.add({ route: '/v1.0/users/*', timeout: true, hangMs: 600_000, times: 1 })
  t.equal((await directory.transitiveGroups(tid, ALICE)).length, 4)
  const responses = rec.events.filter(e => e.hook === 'response')
  t.match(responses[0], { status: 0, error: 'timeout', attempt: 1 }, 'the hung attempt timed out')
  t.match(responses.at(-1), { status: 200 }, 'a retry answered')

  // Every attempt hangs: nothing has to answer, so the timeout may be short (and the token is the STS's,
  // not under the fault, on a client of its own).
  const { directory: hanging } = directoryFor(t, emulator, {}, { timeoutMs: 200 })
  ctx.faults.add({ route: '/v1.0/users/*', timeout: true, hangMs: 600_000 })
  const err = await hanging.transitiveGroups(tid, ALICE).catch((e: unknown) => e) as DirectoryUnavailableError
  t.type(err, DirectoryUnavailableError)
  t.match((err.cause as UpstreamUnavailableError).details, { reason: 'timeout', attempts: 3 }, 'bounded: three attempts that each timed out, not three 10-minute hangs')
})

t.test('a token Graph no longer accepts is replaced once, transparently', async t => {
  const { directory, rec } = await warm(t)
  t.teardown(() => { ctx.clock.reset() })
  // The emulated world moves two hours on: Graph sees the cached token as expired; msal, on real time, does not.
  ctx.clock.advance(2 * 3600_000)
  t.match((await directory.directParents(tid, [T.engineering, T.dataPlatform])).get(T.engineering), [T.allStaff], 'inside a $batch: every item 401, asked again with a new token')
  t.equal(ctx.calls.snapshot().routes['POST /:tenant/oauth2/v2.0/token'], 1, 'one new token')
  t.equal(ctx.calls.snapshot().routes['POST /v1.0/$batch'], 2)

  ctx.clock.advance(2 * 3600_000)
  t.equal((await directory.transitiveGroups(tid, ALICE)).length, 4, 'a plain request: 401, then the same request with a new token')
  t.equal(ctx.calls.snapshot().routes['POST /:tenant/oauth2/v2.0/token'], 2)
  t.match(rec.events.filter(e => e.hook === 'retry'), [{ reason: 'unauthorized', status: 401 }])

  // A token refused even when fresh is a configuration problem, not a loop.
  ctx.clock.advance(2 * 3600_000)
  ctx.faults.add({ route: '/v1.0/users/*', status: 401 })
  t.match(await directory.transitiveGroups(tid, ALICE).catch((e: unknown) => e), { name: 'DirectoryConfigurationError', details: { status: 401 } })
  t.equal(ctx.calls.snapshot().routes['GET /v1.0/users/:id/transitiveMemberOf/:cast'], 2 + 2, 'asked twice (once with a new token), not more')
})

t.test('an STS that is down: DirectoryUnavailableError with its Retry-After; it recovers by itself', async t => {
  const env = directoryFor(t, emulator)
  ctx.faults.add({ route: `/${tid}/oauth2/v2.0/token`, status: 503, retryAfter: 0.1 })
  const err = await env.directory.transitiveGroups(tid, ALICE).catch((e: unknown) => e) as DirectoryUnavailableError
  t.type(err, DirectoryUnavailableError)
  t.equal(err.retryAfterSeconds, 0.1)
  t.equal(ctx.calls.snapshot().routes['GET /v1.0/users/:id/transitiveMemberOf/:cast'], undefined, 'Graph was never called without a token')
  ctx.faults.remove()
  t.equal((await env.directory.transitiveGroups(tid, ALICE)).length, 4, 'the next call gets a token and an answer')
})
