// Request ids: every request has one, every response carries it (`x-request-id`), every problem names it
// and every log line of the request is bound to it (pino's `reqId`), so a caller quoting it leads the
// operator to the log. A well-formed incoming `x-request-id` (from a gateway, or the caller's own
// correlation id) is kept; anything else is replaced, never echoed. A W3C `traceparent` is logged when
// it is well-formed, so the service's lines join the caller's trace.
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance } from 'fastify'

export const REQUEST_ID_HEADER = 'x-request-id'

/** What an incoming request id may look like: short, and nothing a log or a header could be confused by. */
export const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** W3C Trace Context `traceparent`: version-traceid-parentid-flags, lowercase hex (a later version may append fields). */
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[0-9a-f.:_-]{1,200})?$/

export function newRequestId (): string {
  return randomUUID()
}

/** fastify's `genReqId`: the caller's id when it is well-formed, else a new one. */
export function requestIdOf (req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER]
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : newRequestId()
}

/** The `traceparent` header when it is well-formed, else undefined (a malformed one is not logged). */
export function traceparentOf (headers: IncomingMessage['headers']): string | undefined {
  const value = headers.traceparent
  return typeof value === 'string' && TRACEPARENT.test(value) ? value : undefined
}

/**
 * Every response carries `x-request-id`, and every log line of a request with a `traceparent` carries it.
 * Must run before the routes and plugins are registered (hooks apply to what is registered after them).
 */
export function registerRequestIds (app: FastifyInstance): void {
  // Callback hooks, not async ones: they run on every request and have nothing to wait for (an async hook
  // costs a promise and a turn of the microtask queue each).
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id)
    const traceparent = traceparentOf(request.headers)
    if (traceparent !== undefined) request.log = request.log.child({ traceparent })
    done()
  })
  // Again just before sending: an error answer rebuilt from scratch keeps it too.
  app.addHook('onSend', (request, reply, payload, done) => {
    if (!reply.hasHeader(REQUEST_ID_HEADER)) reply.header(REQUEST_ID_HEADER, request.id)
    done(null, payload)
  })
}
