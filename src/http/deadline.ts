// Deadlines: every /v1 request is answered within REQUEST_TIMEOUT_MS (at most a twentieth of it later).
// When its deadline passes, the caller gets 503 DEADLINE_EXCEEDED with Retry-After and the work goes on:
// what it loads lands in the resolver's caches, whose loads are shared by concurrent callers, and
// materialization is idempotent, so the retry joins the work still running or reads what it produced. Nothing is cancelled: abandoning a half-done
// login would only make the retry start it again.
//
// The clock starts when the request arrives (an onRequest hook registered before the routes' own), so a
// slow authentication counts too. A deadline that passes before the handler runs is answered from the
// sweep; one that passes while the handler runs rejects the handler's wrapper, so fastify answers exactly
// once and the handler's late result is only logged, never sent on a reply that is already gone.
import createError from '@fastify/error'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify'

const Exceeded = createError('DEADLINE_EXCEEDED', 'No answer within the deadline of this request (%s ms): an upstream is slow. The work goes on and its result is kept: retry after %s seconds, usually answered at once.', 503)

/** The 503 a caller gets when its request's deadline passes, with Retry-After. */
export function deadlineExceeded (timeoutMs: number, retryAfterSeconds: number): Error {
  return Object.assign(new Exceeded(timeoutMs, retryAfterSeconds), { headers: { 'retry-after': String(retryAfterSeconds) } })
}

export interface DeadlineOptions {
  /** REQUEST_TIMEOUT_MS. */
  timeoutMs: number
  /** Retry-After of the 503 (default 1 s: a retry joins the work still running, so it costs nothing). */
  retryAfterSeconds?: number
  /** Which routes have a deadline (default: every /v1 route). */
  applies?: (route: { method: string, url: string }) => boolean
  /**
   * When the work of this request is expected to be done, asked at its deadline (its place in the
   * Databricks write queue); the 503's Retry-After is the larger of that and the default.
   */
  expectedSeconds?: (request: FastifyRequest) => number
}

interface Deadline {
  /** When it passes (performance.now()). */
  at: number
  request: FastifyRequest
  reply: FastifyReply
  expired: boolean
  /** Set while the handler runs: makes its wrapper reject with the 503. */
  abandon?: (err: Error) => void
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on routes that have a deadline (registerDeadlines). */
    deadlineMs?: number
  }
  interface FastifyRequest {
    /** This request's deadline, on routes that have one. */
    deadline: Deadline | undefined
  }
}

const everyV1Route = ({ url }: { url: string }): boolean => url.startsWith('/v1/')

/**
 * Gives the routes added after it a deadline. Call it before the routes are registered (it wraps each
 * route's handler as it is added) and before other onRequest hooks (the clock starts in its own).
 *
 * One timer for all requests, not one each: the requests in flight are checked every twentieth of the
 * timeout (at most every 500 ms), so a deadline is answered at most that much late. A request costs a set
 * entry, no timer: this runs on every request, the warm ones included.
 */
export function registerDeadlines (app: FastifyInstance, options: DeadlineOptions): void {
  const { timeoutMs } = options
  const retryAfterSeconds = options.retryAfterSeconds ?? 1
  const applies = options.applies ?? everyV1Route
  const wrapped = new WeakSet<RouteHandlerMethod>()
  const inFlight = new Set<Deadline>()
  const tickMs = Math.min(500, Math.max(5, Math.floor(timeoutMs / 20)))
  let sweeper: NodeJS.Timeout | undefined

  const expire = (deadline: Deadline): void => {
    inFlight.delete(deadline)
    deadline.expired = true
    const { request, reply } = deadline
    const err = deadlineExceeded(timeoutMs, Math.max(retryAfterSeconds, Math.ceil(options.expectedSeconds?.(request) ?? 0)))
    // In the handler: its wrapper rejects and fastify answers. Still in the hooks (authentication): answer here.
    if (deadline.abandon !== undefined) deadline.abandon(err)
    else if (!reply.sent) reply.send(err)
  }
  const sweep = (): void => {
    const now = performance.now()
    // In arrival order, so the first one still in time ends the sweep.
    for (const deadline of inFlight) {
      if (deadline.at > now) break
      expire(deadline)
    }
    if (inFlight.size === 0) {
      clearInterval(sweeper)
      sweeper = undefined
    }
  }
  const finish = (request: FastifyRequest): void => {
    if (request.deadline !== undefined) inFlight.delete(request.deadline)
  }

  app.decorateRequest('deadline', undefined)
  app.addHook('onRoute', route => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    if (wrapped.has(route.handler) || !methods.some(method => applies({ method, url: route.url }))) return
    const handler = route.handler
    const withDeadline: RouteHandlerMethod = function (this: FastifyInstance, request, reply) {
      const deadline = request.deadline
      if (deadline === undefined) return handler.call(this, request, reply)
      // Answered by the sweep a moment ago: nothing to start, nothing to send.
      if (deadline.expired) return new Promise<never>(() => {})
      let work: Promise<unknown>
      try {
        work = Promise.resolve(handler.call(this, request, reply))
      } catch (err) {
        return Promise.reject(err)
      }
      return new Promise((resolve, reject) => {
        deadline.abandon = reject
        work.then(
          value => { if (deadline.expired) lateOutcome(request, reply); else resolve(value) },
          (err: unknown) => { if (deadline.expired) lateOutcome(request, reply, err); else reject(err) }
        )
      })
    }
    wrapped.add(withDeadline)
    route.handler = withDeadline
    route.config = { ...route.config, deadlineMs: timeoutMs }
  })

  // Callback hooks: an async one would cost a promise and a microtask turn on every request.
  app.addHook('onRequest', (request, reply, done) => {
    if (request.routeOptions.config.deadlineMs !== undefined) {
      const deadline: Deadline = { at: performance.now() + timeoutMs, request, reply, expired: false }
      request.deadline = deadline
      inFlight.add(deadline)
      // Runs while requests are in flight (the sweep stops it when none is left).
      sweeper ??= setInterval(sweep, tickMs)
    }
    done()
  })
  app.addHook('onResponse', (request, _reply, done) => { finish(request); done() })
  app.addHook('onRequestAbort', (request, done) => { finish(request); done() })
  app.addHook('onClose', (_app, done) => { clearInterval(sweeper); sweeper = undefined; done() })
}

/** After the caller got its 503, the work's own end: logged, its result kept by the caches for the retry. */
function lateOutcome (request: FastifyRequest, reply: FastifyReply, err?: unknown): void {
  const ms = Math.round(reply.elapsedTime)
  if (err === undefined) {
    request.log.info({ ms }, 'request work finished after its deadline; its result is cached for the retry')
    return
  }
  const e = err as { code?: unknown, statusCode?: unknown, message?: unknown }
  if (typeof e.code === 'string' && !e.code.startsWith('FST_') && typeof e.statusCode === 'number') {
    // An outcome the service expects (an upstream still down, a principal not found): no stack.
    const level = e.statusCode >= 500 ? 'warn' : 'info'
    request.log[level]({ ms, code: e.code, status: e.statusCode }, 'request work ended after its deadline without a result')
  } else {
    request.log.error({ ms, err }, 'request work failed after its deadline')
  }
}
