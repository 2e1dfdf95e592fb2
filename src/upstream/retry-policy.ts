// The retry arithmetic, pure and clock-injected: `Retry-After` in its three forms, full-jitter backoff,
// and the decision "wait this long, or give up now". The HTTP client and the Graph $batch item loop share
// it, so a throttled batch item is treated exactly like a throttled request.

/**
 * Parses a `Retry-After` value into seconds (fractional allowed, never negative): an integer (`10`), a
 * fractional number of seconds (`2.128`, as some Graph pages show) or an HTTP-date (IMF-fixdate, and the
 * obsolete RFC 850 and asctime forms `Date.parse` accepts). A date in the past gives 0. Anything else
 * (absent, empty, negative, garbage) gives undefined.
 */
export function parseRetryAfter (value: string | undefined | null, nowMs: number): number | undefined {
  if (value === undefined || value === null) return undefined
  const v = value.trim()
  if (v === '') return undefined
  if (/^\d+(?:\.\d+)?$/.test(v)) return Number(v)
  // Only something that looks like a date: `Date.parse('1.5e3')` or `Date.parse('12')` would "work".
  if (!/[a-z]{3}/i.test(v)) return undefined
  const at = Date.parse(v)
  if (Number.isNaN(at)) return undefined
  return Math.max(0, (at - nowMs) / 1000)
}

export interface RetryPolicy {
  /** Retries after the first attempt (so at most maxRetries + 1 attempts). */
  maxRetries: number
  /** Backoff ceiling of the first retry when the server names no wait; doubles per retry. */
  baseDelayMs: number
  /** Upper bound of the backoff ceiling. */
  maxDelayMs: number
  /** The longest server-requested wait (`Retry-After`) the client sits out; a longer one fails at once. */
  maxRetryAfterMs: number
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxRetries: 3, baseDelayMs: 200, maxDelayMs: 5_000, maxRetryAfterMs: 10_000 }

/**
 * "Full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"): a uniform wait in
 * [0, min(maxDelay, base · 2^(retry−1))). `retry` is 1 for the first retry.
 */
export function fullJitter (retry: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>, random: () => number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, retry - 1))
  return Math.floor(random() * ceiling)
}

export type RetryDecision =
  | { retry: true, waitMs: number }
  | { retry: false, why: 'exhausted' | 'retry-after-too-long' }

/**
 * Whether to retry after failed attempt number `attempt` (1-based), and how long to wait first.
 * A server-named wait is honoured in full, plus up to 10 % so that callers throttled together do not all
 * come back in the same millisecond; a wait over the cap is not sat out. Without one (or with 0), full
 * jitter.
 */
export function decideRetry (attempt: number, retryAfterSeconds: number | undefined, policy: RetryPolicy, random: () => number): RetryDecision {
  if (retryAfterSeconds !== undefined && retryAfterSeconds * 1000 > policy.maxRetryAfterMs) return { retry: false, why: 'retry-after-too-long' }
  if (attempt > policy.maxRetries) return { retry: false, why: 'exhausted' }
  if (retryAfterSeconds !== undefined && retryAfterSeconds > 0) {
    const ms = retryAfterSeconds * 1000
    return { retry: true, waitMs: Math.ceil(ms * (1 + 0.1 * random())) }
  }
  return { retry: true, waitMs: fullJitter(attempt, policy, random) }
}
