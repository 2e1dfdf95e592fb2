// The retry arithmetic on its own: Retry-After in its three forms, full-jitter bounds, and when the
// client gives up instead of waiting. Time and randomness are injected, so nothing sleeps.
import t from 'tap'
import { DEFAULT_RETRY_POLICY, decideRetry, fullJitter, parseRetryAfter } from '../../../src/upstream/retry-policy.ts'

const NOW = Date.parse('2026-11-28T12:00:00Z')

t.test('Retry-After: integer, fractional and HTTP-date seconds', async t => {
  t.equal(parseRetryAfter('10', NOW), 10)
  t.equal(parseRetryAfter(' 1 ', NOW), 1)
  t.equal(parseRetryAfter('2.128', NOW), 2.128, 'fractional seconds, as some Graph pages show')
  t.equal(parseRetryAfter('0', NOW), 0)
  t.equal(parseRetryAfter('Sat, 28 Nov 2026 12:00:07 GMT', NOW), 7, 'IMF-fixdate')
  t.equal(parseRetryAfter('Saturday, 28-Nov-26 12:00:03 GMT', NOW), 3, 'obsolete RFC 850 date')
  t.equal(parseRetryAfter('Sat Nov 28 12:00:05 2026', NOW + new Date(NOW).getTimezoneOffset() * 60_000), 5, 'asctime (local-time parse in Node, as Date.parse does)')
  t.equal(parseRetryAfter('Sat, 28 Nov 2026 11:59:00 GMT', NOW), 0, 'a date in the past means now')
})

t.test('Retry-After values that are not one', async t => {
  for (const v of [undefined, null, '', '  ', '-1', '1e3', '0x10', 'soon', '12 seconds', 'NaN']) {
    t.equal(parseRetryAfter(v, NOW), undefined, JSON.stringify(v))
  }
})

t.test('full jitter stays in [0, min(cap, base·2^(n−1)))', async t => {
  const policy = { baseDelayMs: 100, maxDelayMs: 1_000 }
  t.equal(fullJitter(1, policy, () => 0), 0)
  t.equal(fullJitter(1, policy, () => 0.999), 99)
  t.equal(fullJitter(2, policy, () => 0.5), 100)
  t.equal(fullJitter(3, policy, () => 0.5), 200)
  t.equal(fullJitter(10, policy, () => 0.5), 500, 'capped by maxDelayMs')
  let seen = 0
  for (let i = 0; i < 1000; i++) {
    const w = fullJitter(4, policy, Math.random)
    t.ok(w >= 0 && w < 800, 'within the ceiling') || t.fail(String(w))
    seen = Math.max(seen, w)
  }
  t.ok(seen > 400, 'the whole range is used')
})

t.test('decideRetry honours Retry-After, adds at most 10 %, and gives up past the cap or the budget', async t => {
  const policy = { ...DEFAULT_RETRY_POLICY, maxRetries: 2, maxRetryAfterMs: 5_000 }
  t.same(decideRetry(1, 1, policy, () => 0), { retry: true, waitMs: 1000 })
  t.same(decideRetry(1, 2.128, policy, () => 1), { retry: true, waitMs: 2341 }, 'fractional, plus the 10 % spread at most')
  t.same(decideRetry(1, 6, policy, () => 0), { retry: false, why: 'retry-after-too-long' })
  t.same(decideRetry(3, 1, policy, () => 0), { retry: false, why: 'exhausted' }, 'two retries were allowed')
  t.same(decideRetry(3, 60, policy, () => 0), { retry: false, why: 'retry-after-too-long' }, 'the longer wait is what the caller must pass on')
  t.same(decideRetry(2, undefined, policy, () => 0.5), { retry: true, waitMs: fullJitter(2, policy, () => 0.5) }, 'no Retry-After: full jitter')
  t.same(decideRetry(1, 0, policy, () => 0.5), { retry: true, waitMs: fullJitter(1, policy, () => 0.5) }, 'Retry-After 0: full jitter, never a hot loop')
})
