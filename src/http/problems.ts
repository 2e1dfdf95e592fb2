// Every error a caller sees is application/problem+json (RFC 9457) with a stable `code`. Errors are
// declared once here, @fastify/error style; 4xx details say what to fix, 5xx never leak internals.
import { STATUS_CODES } from 'node:http'
import createError from '@fastify/error'
import type { FastifyError, FastifyInstance } from 'fastify'

export const NotReady = createError('NOT_READY', 'The service is not ready: %s', 503)
export const NotFound = createError('NOT_FOUND', 'No route %s %s: see /docs for the API.', 404)
export const BodyTooLarge = createError('BODY_TOO_LARGE', 'The request body is larger than the %s that %s %s accepts: send a smaller body, or split it over several requests.', 413)

export interface Problem {
  type: string
  title: string
  status: number
  code: string
  detail: string
  instance: string
}

export function problemOf (err: FastifyError, instance: string): Problem {
  const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
  let code = err.code ?? 'INTERNAL'
  let detail = err.message
  if (err.validation !== undefined) {
    code = 'INVALID_REQUEST'
    detail = `Invalid request: ${err.message}.`
  } else if (code.startsWith('FST_')) {
    // fastify's own 4xx (bad JSON, body too large, wrong media type): keep the message, give a stable code
    code = status === 413 ? 'BODY_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'INVALID_REQUEST'
  }
  if (status >= 500 && !isOurs(err)) {
    code = 'INTERNAL'
    detail = 'An unexpected error occurred. It has been logged; retry later or contact the operator.'
  }
  return { type: `urn:jit-identity-resolver:problem:${code}`, title: STATUS_CODES[status] ?? 'Error', status, code, detail, instance }
}

/** A byte count as people read it: "2 MiB (2097152 bytes)". */
export function bytes (n: number): string {
  const unit = n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : undefined
  return unit === undefined ? `${n} bytes` : `${unit} (${n} bytes)`
}

/** Errors created here carry a code without the FST_ prefix; those are safe to show even as 5xx. */
function isOurs (err: FastifyError): boolean {
  return typeof err.code === 'string' && !err.code.startsWith('FST_') && err.code !== 'INTERNAL' && err.statusCode !== undefined
}

export function registerProblemHandlers (app: FastifyInstance): void {
  app.setErrorHandler(async (err: FastifyError, request, reply) => {
    // fastify's body-too-large error does not say the limit; the route's own limit is known here.
    const error = err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
      ? new BodyTooLarge(bytes(request.routeOptions.bodyLimit), request.method, request.routeOptions.url ?? request.url.split('?')[0])
      : err
    const problem = problemOf(error, request.url)
    // Only the unexpected is an `error` with its stack. An expected condition (an upstream throttling or
    // down, a deadline, not ready: 5xx with our code) is a warn without one, the service's own credentials
    // refused (*_MISCONFIGURED) an error without one (the operator must act), a refusal (4xx) an info.
    if (problem.code === 'INTERNAL') request.log.error({ err }, 'request failed')
    else if (problem.status >= 500) request.log[problem.code.endsWith('_MISCONFIGURED') ? 'error' : 'warn']({ code: problem.code, detail: problem.detail }, 'request failed')
    else request.log.info({ code: problem.code }, 'request refused')
    const headers = (err as { headers?: Record<string, string> }).headers
    if (headers !== undefined) reply.headers(headers)
    return await reply.code(problem.status).type('application/problem+json').send(problem)
  })
  app.setNotFoundHandler(async (request, reply) => {
    const problem = problemOf(new NotFound(request.method, request.url.split('?')[0]), request.url)
    return await reply.code(404).type('application/problem+json').send(problem)
  })
}
