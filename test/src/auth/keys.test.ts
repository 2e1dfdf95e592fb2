// Signing keys and time: an unknown kid refetches the key set at most once per interval, rotation
// (publish, switch, retire) is followed, the periodic refresh runs in the background, a verifier without
// keys answers 503 with Retry-After and recovers by itself, and exp/nbf honour the skew on the injected
// clock and on the emulator's. One emulator for the file: its key rotation and clock moves are undone or harmless.
import t from 'tap'
import Fastify from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { stsTenant, T } from '../../helpers/sts.ts'
import { registerProblemHandlers } from '../../../src/http/problems.ts'
import { MINUTE, TestClock, keyFetches, mint, randomKid, refused, tamper, verifierFor } from '../../helpers/auth.ts'

t.test('signing keys', async t => {
  const { origin, ctx } = await startTestEmulator(t, { tenants: [stsTenant()] })
  const post = async (path: string): Promise<void> => {
    const res = await fetch(`${origin}/_emulator/keys/${path}`, { method: 'POST' })
    t.equal(res.status, 200, `keys/${path}`)
  }

  t.test('50 unknown kids: one key-set refetch per interval, then one more', async t => {
    const clock = new TestClock()
    const verifier = await verifierFor(t, origin, { clock })
    const good = await mint(origin, { principalId: T.alice })
    const goodV1 = await mint(origin, { principalId: T.alice, version: 1 })
    await verifier.verify(good.token)
    await verifier.verify(goodV1.token)
    const loaded = keyFetches(ctx)
    const forged = (n: number, token = good.token): string[] => Array.from({ length: n }, () => tamper(token, { header: { kid: randomKid() } }))

    const burst = async (tokens: string[]): Promise<void> => {
      const results = await Promise.allSettled(tokens.map(async token => await verifier.verify(token)))
      t.ok(results.every(r => r.status === 'rejected' && (r.reason as { code: string }).code === 'TOKEN_UNKNOWN_KEY'), `${tokens.length} × TOKEN_UNKNOWN_KEY`)
    }

    await burst(forged(50))
    t.same(keyFetches(ctx), loaded, 'within the interval since the keys were loaded: no refetch at all')

    clock.advance(5 * MINUTE)
    await burst(forged(50))
    await burst(forged(50))
    let now = keyFetches(ctx)
    t.equal(now.jwksV2 - loaded.jwksV2, 1, 'past the interval: one refetch for 100 unknown kids, concurrent ones sharing it')
    t.equal(now.discoveryV2, loaded.discoveryV2, 'an unknown kid refetches the key set, not the discovery document')
    t.equal(now.jwksV1, loaded.jwksV1, 'v2 tokens never touch the v1 key set')

    clock.advance(4 * MINUTE)
    await burst(forged(50))
    t.equal(keyFetches(ctx).jwksV2 - loaded.jwksV2, 1, 'still within 5 minutes of the refetch: none')
    clock.advance(1 * MINUTE)
    await burst(forged(50))
    await burst(forged(10, goodV1.token))
    now = keyFetches(ctx)
    t.equal(now.jwksV2 - loaded.jwksV2, 2, 'the next interval: one more')
    t.equal(now.jwksV1 - loaded.jwksV1, 1, 'the v1 key set has its own schedule')
    t.equal(now.total - loaded.total, 3, 'and nothing else was fetched')
    t.match(verifier.stats().keys, { v2: { jwksFetches: 3, discoveryFetches: 1, failedRefreshes: 0, keys: 3 } })
  })

  t.test('rotation: publish + switch, then retire', async t => {
    const clock = new TestClock()
    const verifier = await verifierFor(t, origin, { clock })
    const cached = await mint(origin, { principalId: T.alice })
    const unseen = await mint(origin, { principalId: T.bob })
    const unseenV1 = await mint(origin, { principalId: T.bob, version: 1 })
    await verifier.verify(cached.token)
    const before = keyFetches(ctx)

    await post('publish')
    await post('switch')
    const rotated = await mint(origin, { principalId: T.alice, claims: { name: 'after the switch' } })
    t.not(JSON.parse(Buffer.from(rotated.token.split('.')[0] as string, 'base64url').toString()).kid,
      JSON.parse(Buffer.from(cached.token.split('.')[0] as string, 'base64url').toString()).kid, 'signed with the new key')

    await refused(t, verifier.verify(rotated.token), 'TOKEN_UNKNOWN_KEY')
    t.equal(keyFetches(ctx).jwksV2, before.jwksV2, 'the keys were loaded just now: the new kid waits for the interval')
    clock.advance(5 * MINUTE)
    t.match(await verifier.verify(rotated.token), { name: 'after the switch' })
    t.equal(keyFetches(ctx).jwksV2 - before.jwksV2, 1, 'one refetch on the unknown kid')
    t.equal((await verifier.verify(unseen.token)).oid, T.bob, 'the previous key is still published: its tokens verify')

    await post('retire')
    t.equal((await verifier.verify(cached.token)).oid, T.alice, 'until the keys are refetched, the retired key is not known to be gone')
    clock.advance(5 * MINUTE)
    await refused(t, verifier.verify(tamper(rotated.token, { header: { kid: randomKid() } })), 'TOKEN_UNKNOWN_KEY')
    t.equal(keyFetches(ctx).jwksV2 - before.jwksV2, 2, 'a refetch (here on an unknown kid) learns of the retirement')
    await refused(t, verifier.verify(unseen.token), 'TOKEN_UNKNOWN_KEY')
    await refused(t, verifier.verify(cached.token), 'TOKEN_UNKNOWN_KEY')
    t.pass('a cached verification does not outlive its signing key')
    t.equal((await verifier.verify(rotated.token)).oid, T.alice, 'the current key still verifies')
    await refused(t, verifier.verify(unseenV1.token), 'TOKEN_UNKNOWN_KEY')
    t.equal(keyFetches(ctx).jwksV1 - before.jwksV1, 1, 'v1: its key set was loaded on first use, after the retirement')
  })

  t.test('the periodic refresh runs in the background once keys are 12 hours old', async t => {
    const clock = new TestClock()
    const verifier = await verifierFor(t, origin, { clock })
    const nowSeconds = Math.floor(Date.now() / 1000)
    const long = await mint(origin, { principalId: T.alice, claims: { exp: nowSeconds + 14 * 3600 } })
    const other = await mint(origin, { principalId: T.bob, claims: { exp: nowSeconds + 14 * 3600 } })
    await verifier.verify(long.token)
    const before = keyFetches(ctx)
    clock.advance(12 * 3600_000)
    t.equal((await verifier.verify(long.token)).oid, T.alice, 'a cached token does not wait for keys')
    t.equal((await verifier.verify(other.token)).oid, T.bob, 'a cold verification uses the keys it has, and starts a refresh')
    for (let i = 0; i < 200 && keyFetches(ctx).jwksV2 === before.jwksV2; i++) await sleep(5)
    await sleep(20)
    const after = keyFetches(ctx)
    t.same({ discovery: after.discoveryV2 - before.discoveryV2, jwks: after.jwksV2 - before.jwksV2 }, { discovery: 1, jwks: 1 }, 'both documents refreshed, once')
  })

  t.test('no keys: 503 with Retry-After, no fetch storm, recovery by itself', async t => {
    const clock = new TestClock()
    const warnings: Array<Record<string, unknown>> = []
    const verifier = await verifierFor(t, origin, { clock, logger: { warn: (obj, msg) => warnings.push({ ...obj, msg }) } })
    const app = Fastify({ logger: false })
    t.teardown(async () => await app.close())
    registerProblemHandlers(app)
    app.get('/whoami', async (request) => await verifier.authenticate(request.headers.authorization))
    const { token } = await mint(origin, { principalId: T.alice })
    const fault = ctx.faults.add({ route: `/${T.tenantId}/v2.0/.well-known/openid-configuration`, status: 503 })
    t.teardown(() => ctx.faults.remove(fault.id))
    const before = keyFetches(ctx)

    const res = await app.inject({ url: '/whoami', headers: { authorization: `Bearer ${token}` } })
    t.equal(res.statusCode, 503)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
    t.equal(res.headers['retry-after'], '10')
    t.match(res.json(), { code: 'SIGNING_KEYS_UNAVAILABLE', detail: /retry after 10 seconds/ })
    t.notMatch(res.body, /HTTP 503|127\.0\.0\.1/, 'no internals in the answer')

    clock.advance(4000)
    const again = await refused(t, verifier.verify(token), 'SIGNING_KEYS_UNAVAILABLE', 503)
    t.same(again.headers, { 'retry-after': '6' }, 'Retry-After counts down')
    t.equal(keyFetches(ctx).discoveryV2 - before.discoveryV2, 1, 'no second fetch within the retry window')
    await refused(t, verifier.verify((await mint(origin, { principalId: T.alice, break: 'wrong-audience' })).token), 'TOKEN_AUDIENCE_INVALID')
    t.pass('tokens that are wrong anyway are still refused for what they are')

    ctx.faults.remove(fault.id)
    clock.advance(6000)
    t.equal((await verifier.verify(token)).oid, T.alice, 'after the window, the next request loads the keys')
    t.equal(keyFetches(ctx).discoveryV2 - before.discoveryV2, 2)

    const down = ctx.faults.add({ route: '*/keys', status: 503 })
    t.teardown(() => ctx.faults.remove(down.id))
    clock.advance(15 * MINUTE)
    const rotatedAway = tamper(token, { header: { kid: randomKid() } })
    await refused(t, verifier.verify(rotatedAway), 'TOKEN_UNKNOWN_KEY')
    t.equal(verifier.stats().keys.v2.failedRefreshes, 2, 'a failed refetch is counted')
    t.ok(verifier.stats().keys.v2.keys > 0)
    t.match(warnings, [
      { keptKeys: 0, discoveryUrl: `${origin}/${T.tenantId}/v2.0/.well-known/openid-configuration`, msg: /could not be refreshed/ },
      { keptKeys: verifier.stats().keys.v2.keys, err: { message: /keys: HTTP 503/ } }
    ], 'and logged')
    t.equal((await verifier.verify((await mint(origin, { principalId: T.bob })).token)).oid, T.bob, 'and keeps the last good keys')
  })

  t.test('a warm verification is served from the cache: no signature check, no key lookup, microseconds', async t => {
    const verifier = await verifierFor(t, origin)
    const { token } = await mint(origin, { principalId: T.alice })
    const header = `Bearer ${token}`
    const first = await Promise.all(Array.from({ length: 100 }, async () => await verifier.authenticate(header)))
    t.ok(first.every(c => c === first[0]), 'concurrent cold verifications of one token share one verification')
    t.match(verifier.stats(), { signatureChecks: 1, cache: { misses: 1, coalesced: 99, hits: 0, entries: 1 } })

    const fault = ctx.faults.add({ route: '*', status: 503 })
    t.teardown(() => ctx.faults.remove(fault.id))
    const calls = ctx.calls.snapshot().total
    const n = 20_000
    const started = process.hrtime.bigint()
    for (let i = 0; i < n; i++) await verifier.authenticate(header)
    const microseconds = Number(process.hrtime.bigint() - started) / 1000 / n
    t.match(verifier.stats(), { signatureChecks: 1, cache: { hits: n } }, 'every warm verification was a cache hit')
    t.equal(ctx.calls.snapshot().total, calls, 'with Entra down, nothing was asked of it')
    t.ok(microseconds < 100, `warm verification: ${microseconds.toFixed(2)} µs each`)
  })

  t.test('the injected clock: 4 minutes past exp passes with the default skew, 6 minutes fails', async t => {
    const clock = new TestClock()
    const verifier = await verifierFor(t, origin, { clock })
    const { token, claims } = await mint(origin, { principalId: T.alice })
    const exp = (claims.exp as number) * 1000
    clock.advance(exp - clock.now() + 4 * MINUTE)
    t.equal((await verifier.verify(token)).oid, T.alice, 'expired 4 minutes ago: within 300 s')
    const fresh = await mint(origin, { principalId: T.bob })
    t.equal((await verifier.verify(fresh.token)).oid, T.bob)
    clock.advance(2 * MINUTE)
    const e = await refused(t, verifier.verify(token), 'TOKEN_EXPIRED')
    t.match(e.message, new RegExp(`expired at ${new Date(exp).toISOString()}`))
    t.pass('the cached verification ended with the token')

    const strict = await verifierFor(t, origin, { clock, clockSkewSeconds: 60 })
    clock.advance(-3 * MINUTE)
    await refused(t, strict.verify(token), 'TOKEN_EXPIRED')
    t.pass('a configured skew of 60 s refuses a token expired 3 minutes ago')
  })

  t.test('the emulator\'s clock: tokens minted in the past or the future, checked on the system clock', async t => {
    const verifier = await verifierFor(t, origin)
    const at = async (offsetMs: number, principalId: string): Promise<string> => {
      ctx.clock.advance(offsetMs)
      try {
        return (await mint(origin, { principalId })).token
      } finally {
        ctx.clock.advance(-offsetMs)
      }
    }
    t.equal((await verifier.verify(await at(-(60 + 4) * MINUTE, T.alice))).oid, T.alice, 'an hour-long token that expired 4 minutes ago')
    await refused(t, verifier.verify(await at(-(60 + 6) * MINUTE, T.bob)), 'TOKEN_EXPIRED')
    t.equal((await verifier.verify(await at(4 * MINUTE, T.alice))).oid, T.alice, 'valid from 4 minutes from now')
    await refused(t, verifier.verify(await at(6 * MINUTE, T.bob)), 'TOKEN_NOT_YET_VALID')
  })
})
