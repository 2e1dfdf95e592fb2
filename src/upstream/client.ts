// The one HTTP client for every outbound call of the service (Graph, the Entra STS, Databricks): one
// instance per upstream, each with its own keep-alive undici Agent (optionally trusting an extra CA), a
// concurrency limit (p-limit), a rate budget (a token bucket from `limiter`), a per-attempt timeout, and
// bounded retries with full jitter on 429/503/504 and dropped connections, honouring `Retry-After`.
//
// Why a small loop and not undici's RetryAgent/RetryHandler: RetryHandler parses Retry-After, but it caps
// a long Retry-After at maxTimeout and waits anyway (we must give up and pass the wait on to our caller),
// it retries below the dispatcher so retries would bypass our rate budget and concurrency limit, it has no
// jitter, it reports no per-attempt latency, and its method allow-list is per agent, not per call (Graph's
// POST actions and $batch are safe to retry; other POSTs are not). Every attempt here takes a concurrency
// slot and a rate token of its own, and the observer sees each one.
import { createSecureContext, rootCertificates } from 'node:tls'
import { setTimeout as sleepTimer } from 'node:timers/promises'
import { Agent, request as undiciRequest, type Dispatcher } from 'undici'
import pLimit, { type LimitFunction } from 'p-limit'
import { TokenBucket } from 'limiter'
import { UpstreamError, UpstreamResponseError, UpstreamUnavailableError } from './errors.ts'
import { DEFAULT_RETRY_POLICY, decideRetry, parseRetryAfter, type RetryPolicy } from './retry-policy.ts'
import { routeLabel as defaultRouteLabel } from './route-label.ts'
import type { PermitSource } from './permits.ts'

export type HttpMethod = 'GET' | 'HEAD' | 'OPTIONS' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

/** One attempt that got an answer (status > 0) or did not (status 0, with `error`). */
export interface UpstreamResponseEvent {
  upstream: string
  method: string
  route: string
  status: number
  ms: number
  attempt: number
  error?: 'timeout' | 'connection'
}

export interface UpstreamRetryEvent {
  upstream: string
  method: string
  route: string
  reason: 'throttled' | 'unavailable' | 'timeout' | 'connection' | 'unauthorized'
  status?: number
  /** The attempt that failed (1-based); the retry is attempt + 1. */
  attempt: number
  waitMs: number
  /** The wait the upstream asked for, when it named one. */
  retryAfterSeconds?: number
}

/** The upstream asked us to slow down: a 429, or a 503 with Retry-After. `retryAfterSeconds` when it named a wait. */
export interface UpstreamThrottledEvent {
  upstream: string
  method: string
  route: string
  status: number
  retryAfterSeconds?: number
}

/**
 * What a metrics module implements. Every method is optional and must not throw (exceptions are
 * swallowed so that metrics can never break a request). Events carry no URL, header or body.
 */
export interface UpstreamObserver {
  onResponse?: (event: UpstreamResponseEvent) => void
  onRetry?: (event: UpstreamRetryEvent) => void
  onThrottled?: (event: UpstreamThrottledEvent) => void
}

export interface UpstreamClientOptions {
  /** The upstream's name in metrics and errors: `graph`, `entra`, `databricks`. */
  name: string
  /** Extra CA certificate(s), PEM, trusted in addition to Node's bundled roots (not instead of them). */
  ca?: string | string[]
  /** Requests in flight at once (default 16); also the Agent's connections per origin. */
  concurrency?: number
  /** Rate budget: requests started per second, a token bucket (default: no budget). */
  ratePerSecond?: number
  /** Bucket size: requests that may start at once after a quiet spell (default `ratePerSecond`). */
  burst?: number
  /**
   * The fleet's budget (REDIS_URL, src/fleet/permits.ts): each attempt takes a permit from it while it can
   * be asked, and the client's Retry-Afters pause it for every replica; the own bucket (`ratePerSecond`,
   * then this replica's share) paces what it cannot.
   */
  permits?: PermitSource
  /** Per attempt, from sending to the end of the body (default 15 s). */
  timeoutMs?: number
  /** Retry bounds (defaults in DEFAULT_RETRY_POLICY). */
  retry?: Partial<RetryPolicy>
  /** Statuses that are retried (default 429, 503, 504). */
  retryStatuses?: readonly number[]
  observer?: UpstreamObserver
  /** The route label of a URL (default: path with ids and query stripped). */
  routeLabel?: (url: URL) => string
  /** Injected for tests of the backoff: how to wait. Default: a real timer. */
  sleep?: (ms: number) => Promise<void>
  /** Injected for tests of the jitter. Default Math.random. */
  random?: () => number
  /** Wall-clock milliseconds, for HTTP-date Retry-After values. Default Date.now. */
  now?: () => number
  /** A dispatcher to use instead of the Agent this client would build (then `ca` is ignored). */
  dispatcher?: Dispatcher
}

export interface UpstreamRequest {
  method: HttpMethod
  url: string | URL
  headers?: Record<string, string>
  body?: string | Buffer
  /**
   * May this call be repeated after a failure? Default: by method (GET, HEAD, OPTIONS, PUT, DELETE).
   * Set it on POSTs that are safe to repeat (Graph's getMemberGroups, $batch of reads, token requests).
   */
  idempotent?: boolean
  /** Overrides the client's per-attempt timeout for this call. */
  timeoutMs?: number
  /** Overrides the client's maxRetries for this call. */
  maxRetries?: number
  /** Statuses handed back as they are instead of retried here (a caller that paces its own retries, e.g. under a write budget). */
  passThrough?: readonly number[]
  /** Background work (the change feed): under a fleet budget its permits come after interactive ones. */
  background?: boolean
  /** What the call costs of the rate budget: the requests the upstream counts it as (Graph: a $batch's items). Default 1. */
  cost?: number
  signal?: AbortSignal
}

export interface UpstreamResponse {
  status: number
  /** Lowercase names; repeated headers joined with `, `. */
  headers: Record<string, string>
  text: string
  /** How many attempts it took (1 = no retry). */
  attempts: number
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])

/** undici and Node error codes of a connection that failed or dropped: worth another try. */
const CONNECTION_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN',
  'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED'
])

function errorCode (err: unknown): string | undefined {
  let e: unknown = err
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && CONNECTION_CODES.has(code)) return code
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}

function flatHeaders (raw: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v
  }
  return out
}

class AttemptTimeout extends Error {}

export class UpstreamClient {
  readonly name: string
  readonly policy: RetryPolicy
  private readonly dispatcher: Dispatcher
  private readonly ownsDispatcher: boolean
  private readonly limit: LimitFunction
  private readonly bucket: TokenBucket | undefined
  private readonly permits: PermitSource | undefined
  private readonly timeoutMs: number
  private readonly retryStatuses: ReadonlySet<number>
  private readonly observer: UpstreamObserver | undefined
  private readonly label: (url: URL) => string
  readonly sleep: (ms: number) => Promise<void>
  readonly random: () => number
  readonly now: () => number

  constructor (options: UpstreamClientOptions) {
    this.name = options.name
    const concurrency = options.concurrency ?? 16
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`${options.name}: concurrency must be a positive integer.`)
    if (options.ratePerSecond !== undefined && !(options.ratePerSecond > 0 && Number.isFinite(options.ratePerSecond))) throw new TypeError(`${options.name}: ratePerSecond must be a positive number.`)
    if (options.burst !== undefined && !(options.burst >= 1 && Number.isFinite(options.burst))) throw new TypeError(`${options.name}: burst must be at least 1.`)
    this.policy = { ...DEFAULT_RETRY_POLICY, ...options.retry }
    if (options.dispatcher !== undefined) {
      this.dispatcher = options.dispatcher
      this.ownsDispatcher = false
    } else {
      const extra = options.ca === undefined ? [] : Array.isArray(options.ca) ? options.ca : [options.ca]
      this.dispatcher = new Agent({
        connections: concurrency,
        keepAliveTimeout: 30_000,
        // Node's `ca` replaces the default roots: keep them, so one client can reach Microsoft and a local CA.
        // One secure context for the client's life: a `ca` option would re-parse every root on each new
        // connection (tls.connect builds a context per socket), ~35 ms of CPU each on the benchmark.
        connect: extra.length > 0 ? { secureContext: createSecureContext({ ca: [...rootCertificates, ...extra] }) } : {}
      })
      this.ownsDispatcher = true
    }
    this.limit = pLimit(concurrency)
    this.permits = options.permits
    if (options.ratePerSecond !== undefined) {
      const burst = options.burst ?? Math.max(1, options.ratePerSecond)
      this.bucket = new TokenBucket({ bucketSize: burst, tokensPerInterval: options.ratePerSecond, interval: 1000 })
      // limiter's standalone bucket starts empty; ours starts with its burst available.
      this.bucket.content = burst
    }
    this.timeoutMs = options.timeoutMs ?? 15_000
    this.retryStatuses = new Set(options.retryStatuses ?? [429, 503, 504])
    this.observer = options.observer
    this.label = options.routeLabel ?? defaultRouteLabel
    this.sleep = options.sleep ?? (async ms => { await sleepTimer(ms) })
    this.random = options.random ?? Math.random
    this.now = options.now ?? Date.now
  }

  /** The route label of a URL, as observers see it. */
  routeOf (url: string | URL): string {
    return this.label(typeof url === 'string' ? new URL(url) : url)
  }

  /** Sends a request, retrying within the policy. Non-retryable statuses (2xx–5xx) are returned as they are. */
  async request (req: UpstreamRequest): Promise<UpstreamResponse> {
    const url = typeof req.url === 'string' ? new URL(req.url) : req.url
    const route = this.label(url)
    const method = req.method
    const idempotent = req.idempotent ?? IDEMPOTENT.has(method)
    const policy = req.maxRetries === undefined ? this.policy : { ...this.policy, maxRetries: req.maxRetries }
    const where = `${this.name} ${method} ${route}`
    for (let attempt = 1; ; attempt++) {
      let outcome: { response: UpstreamResponse } | { error: 'timeout' | 'connection', cause: unknown }
      try {
        outcome = { response: await this.attempt(url, req, route, attempt) }
      } catch (err) {
        if (err instanceof AttemptTimeout) outcome = { error: 'timeout', cause: err }
        else if (req.signal?.aborted === true) throw err
        else if (errorCode(err) !== undefined) outcome = { error: 'connection', cause: err }
        else throw new UpstreamError(`${where}: request failed: ${(err as Error).message}`, this.name, method, route, { cause: err })
      }

      if ('response' in outcome) {
        const { response } = outcome
        if (!this.retryStatuses.has(response.status) || req.passThrough?.includes(response.status) === true) return { ...response, attempts: attempt }
        const retryAfterSeconds = parseRetryAfter(response.headers['retry-after'], this.now())
        if (response.status === 429 || (response.status === 503 && retryAfterSeconds !== undefined)) {
          this.emit('onThrottled', { upstream: this.name, method, route, status: response.status, ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) })
          if (retryAfterSeconds !== undefined) this.permits?.pause(retryAfterSeconds)
        }
        const details = { status: response.status, attempts: attempt, ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) }
        if (!idempotent) {
          throw new UpstreamUnavailableError(`${where}: HTTP ${response.status} (not retried: the call is not idempotent)`, this.name, method, route, { ...details, reason: 'not-retryable' })
        }
        const decision = decideRetry(attempt, retryAfterSeconds, policy, this.random)
        if (!decision.retry) {
          const message = decision.why === 'exhausted'
            ? `${where}: HTTP ${response.status} after ${attempt} attempts`
            : `${where}: HTTP ${response.status}, Retry-After ${String(retryAfterSeconds)} s is over the ${policy.maxRetryAfterMs} ms the client waits`
          throw new UpstreamUnavailableError(message, this.name, method, route, { ...details, reason: decision.why })
        }
        this.emit('onRetry', { upstream: this.name, method, route, reason: response.status === 429 ? 'throttled' : 'unavailable', status: response.status, attempt, waitMs: decision.waitMs, ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) })
        await this.sleep(decision.waitMs)
        continue
      }

      const kind = outcome.error
      const describe = kind === 'timeout' ? `no answer within ${req.timeoutMs ?? this.timeoutMs} ms` : `connection failed (${errorCode(outcome.cause) ?? 'unknown'})`
      if (!idempotent) {
        throw new UpstreamUnavailableError(`${where}: ${describe} (not retried: the call is not idempotent)`, this.name, method, route, { attempts: attempt, reason: kind }, { cause: outcome.cause })
      }
      const decision = decideRetry(attempt, undefined, policy, this.random)
      if (!decision.retry) {
        throw new UpstreamUnavailableError(`${where}: ${describe}, after ${attempt} attempts`, this.name, method, route, { attempts: attempt, reason: kind }, { cause: outcome.cause })
      }
      this.emit('onRetry', { upstream: this.name, method, route, reason: kind, attempt, waitMs: decision.waitMs })
      await this.sleep(decision.waitMs)
    }
  }

  /** `request`, then the body as JSON (an UpstreamResponseError when it is not JSON). */
  async requestJson<T = unknown> (req: UpstreamRequest): Promise<UpstreamResponse & { json: T }> {
    const response = await this.request(req)
    return { ...response, json: this.parseJson<T>(response, req) }
  }

  parseJson<T> (response: UpstreamResponse, req: Pick<UpstreamRequest, 'method' | 'url'>): T {
    try {
      return JSON.parse(response.text) as T
    } catch (err) {
      const route = this.routeOf(req.url)
      throw new UpstreamResponseError(`${this.name} ${req.method} ${route}: HTTP ${response.status} with a body that is not JSON`, this.name, req.method, route, response.status, { cause: err })
    }
  }

  /** Reports a throttled sub-request (a $batch item) the way a throttled request is reported. */
  reportThrottled (event: Omit<UpstreamThrottledEvent, 'upstream'>): void {
    this.emit('onThrottled', { upstream: this.name, ...event })
  }

  /** Reports a retry the caller makes itself (a $batch item, a request repeated with a fresh token). */
  reportRetry (event: Omit<UpstreamRetryEvent, 'upstream'>): void {
    this.emit('onRetry', { upstream: this.name, ...event })
  }

  async close (): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close()
  }

  /** Waits for this request's share of the rate budget: the fleet's permits, or the own bucket. */
  private async pace (req: UpstreamRequest): Promise<void> {
    const cost = Math.max(1, Math.floor(req.cost ?? 1))
    if (this.permits?.available === true) {
      const permits = this.permits
      try {
        await Promise.all(Array.from({ length: cost }, async () => { await permits.request(req.background === true ? 'background' : 'interactive') }))
        return
      } catch {
        // The fleet could not be asked (Redis went away): paced here.
      }
    }
    // A call costing more than the bucket holds waits for a full bucket (limiter refuses more than its size).
    if (this.bucket !== undefined) await this.bucket.removeTokens(Math.min(cost, this.bucket.bucketSize))
  }

  private async attempt (url: URL, req: UpstreamRequest, route: string, attempt: number): Promise<UpstreamResponse> {
    return await this.limit(async () => {
      await this.pace(req)
      const started = performance.now()
      const controller = new AbortController()
      const timeoutMs = req.timeoutMs ?? this.timeoutMs
      const timeout = new AttemptTimeout(`no answer within ${timeoutMs} ms`)
      const timer = setTimeout(() => controller.abort(timeout), timeoutMs)
      const onAbort = (): void => controller.abort(req.signal?.reason)
      req.signal?.addEventListener('abort', onAbort, { once: true })
      try {
        const res = await undiciRequest(url, {
          dispatcher: this.dispatcher,
          method: req.method,
          headers: req.headers,
          body: req.body,
          signal: controller.signal
        })
        const text = await res.body.text()
        const response = { status: res.statusCode, headers: flatHeaders(res.headers as Record<string, string | string[] | undefined>), text, attempts: attempt }
        this.emit('onResponse', { upstream: this.name, method: req.method, route, status: res.statusCode, ms: performance.now() - started, attempt })
        return response
      } catch (err) {
        const timedOut = controller.signal.reason === timeout
        const error = timedOut ? 'timeout' : errorCode(err) !== undefined ? 'connection' : undefined
        if (error !== undefined) this.emit('onResponse', { upstream: this.name, method: req.method, route, status: 0, ms: performance.now() - started, attempt, error })
        if (timedOut) throw timeout
        throw err
      } finally {
        clearTimeout(timer)
        req.signal?.removeEventListener('abort', onAbort)
      }
    })
  }

  private emit<K extends keyof UpstreamObserver> (hook: K, event: Parameters<NonNullable<UpstreamObserver[K]>>[0]): void {
    const fn = this.observer?.[hook] as ((e: typeof event) => void) | undefined
    if (fn === undefined) return
    try {
      fn.call(this.observer, event)
    } catch {
      // An observer must never break a request.
    }
  }
}
