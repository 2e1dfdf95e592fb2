// Every answer that is not a success is application/problem+json (RFC 9457) with a stable `code` and the
// request's id (`requestId`, also the `x-request-id` header), fastify's own answers and Node's HTTP
// parser's included: unknown route 404, wrong method 405 with `Allow`, 413, 414, 415, 431, a URL that is
// not valid percent-encoding, a request that is not HTTP at all. Errors are declared once here,
// @fastify/error style; 4xx details say what to fix. 5xx never leak internals: an upstream's words (a
// Databricks path, Graph's message) reach only the log, under the request id the caller is given.
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import createError from '@fastify/error'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { newRequestId } from './request-id.ts'
import { quoted, validationProblem, type SchemaError } from './validation.ts'

export const NotReady = createError('NOT_READY', 'The service is not ready: %s', 503)
export const NotFound = createError('NOT_FOUND', 'No route %s %s: see /docs for the API.', 404)
export const MethodNotAllowed = createError('METHOD_NOT_ALLOWED', '%s is not a method of %s: use %s (the Allow header lists them; see /docs).', 405)
export const BodyTooLarge = createError('BODY_TOO_LARGE', 'The request body is larger than the %s that %s %s accepts: send a smaller body, or split it over several requests.', 413)
export const UriTooLong = createError('URI_TOO_LONG', 'The URL is longer than the %s this service reads: ids go in the path and the data in a JSON body, so no request of this API needs more (see /docs).', 414)
export const UnsupportedMediaType = createError('UNSUPPORTED_MEDIA_TYPE', 'This API takes JSON bodies: send the body with "Content-Type: application/json" (this request sent %s).', 415)
export const HeadersTooLarge = createError('HEADERS_TOO_LARGE', 'The request\'s headers are larger than the %s this service reads: send only the headers the API needs (Authorization with the access token alone, Content-Type).', 431)
export const InvalidUrl = createError('INVALID_URL', 'The URL is not valid percent-encoding: encode "%%" as %%25 and each reserved character of an id ("/", "?", "#") as %%XX.', 400)
export const RequestTimeout = createError('REQUEST_TIMEOUT', 'The request was not received in time: send the whole request at once, then wait for the answer.', 408)
export const MalformedRequest = createError('MALFORMED_REQUEST', 'The request is not well-formed HTTP/1.1 (its request line or a header cannot be parsed): send a standard HTTP request.', 400)
export const ServiceClosing = createError('SHUTTING_DOWN', 'This instance is shutting down and takes no new request: retry, and another instance (or this one, restarted) answers.', 503)

/** The 503 of a request that arrives while the instance closes, with Retry-After. */
export function serviceClosing (): Error {
  return Object.assign(new ServiceClosing(), { headers: { 'retry-after': '1' } })
}

/** The longest URL (path and query) read: the longest real one (a 1,024-character UPN, percent-encoded) is far shorter. */
export const MAX_URL_LENGTH = 8 * 1024
/** Node's limit on the request line and headers together (app.ts: Entra tokens with many claims are large). */
export const MAX_HEADER_BYTES = 64 * 1024

export interface Problem {
  type: string
  title: string
  status: number
  code: string
  detail: string
  instance: string
  requestId: string
}

/** 5xx codes whose details are our own words (when to retry), safe to show. */
const SAFE_5XX = new Set(['UPSTREAM_UNAVAILABLE', 'UPSTREAM_THROTTLED', 'SIGNING_KEYS_UNAVAILABLE', 'SHUTTING_DOWN', 'NOT_READY', 'DEADLINE_EXCEEDED', 'REGISTRATIONS_UNAVAILABLE'])

/**
 * 5xx codes whose messages carry an upstream's words (Graph's or Databricks' message, a Databricks route):
 * what the caller is told instead. `%s` is the request id the full message is logged under.
 */
const GENERIC_5XX: Record<string, string> = {
  DIRECTORY_MISCONFIGURED: 'The service cannot read the directory with its own Entra app: the app needs the application permissions User.Read.All, GroupMember.Read.All and Application.Read.All on Microsoft Graph with admin consent, and a valid secret or certificate. Microsoft Entra\'s answer is logged under request id %s: give the operator this id.',
  DIRECTORY_BAD_REQUEST: 'Microsoft Graph refused a request the service made to answer this one. Its answer is logged under request id %s: give the operator this id.',
  TARGET_MISCONFIGURED: 'The service cannot use the Databricks account with its own credentials: they must be an account admin\'s (DATABRICKS_TOKEN, or the Entra app), with access to the workspace for object permissions; DATABRICKS_ACCOUNT_ID must name the account; DATABRICKS_MODE=aim needs automatic identity management on in the account (else use DATABRICKS_MODE=scim). Databricks\' answer is logged under request id %s: give the operator this id.',
  TARGET_BAD_REQUEST: 'Databricks refused a request the service made to answer this one. Its answer is logged under request id %s: give the operator this id.'
}

export interface ProblemContext {
  /** The request's id (fastify's request.id). */
  requestId: string
  /** The problem's `instance`: the request's URL (never the URL of a 414: it is replaced by the request id). */
  instance: string
  /** "POST /v1/shares", for validation details. */
  route?: string
}

export function problemOf (err: FastifyError, { requestId, instance, route }: ProblemContext): Problem {
  const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
  let code = err.code ?? 'INTERNAL'
  let detail = err.message
  if (err.validation !== undefined) {
    ({ code, detail } = validationProblem(err.validation as SchemaError[], err.validationContext, route ?? 'this route'))
  } else if (code.startsWith('FST_')) {
    // fastify's own 4xx (bad JSON, a bad Content-Length): keep the message, give a stable code
    code = status === 413 ? 'BODY_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'INVALID_REQUEST'
  }
  if (status >= 500) {
    if (!isOurs(err)) {
      code = 'INTERNAL'
      detail = `An unexpected error occurred. It has been logged under request id ${requestId}: retry later, or give the operator this id.`
    } else if (!SAFE_5XX.has(code)) {
      detail = (GENERIC_5XX[code] ?? `The request could not be completed (${code}). The cause is logged under request id %s: retry later, or give the operator this id.`).replace('%s', requestId)
    }
  }
  return { type: `urn:jit-identity-resolver:problem:${code}`, title: STATUS_CODES[status] ?? 'Error', status, code, detail, instance, requestId }
}

/** A byte count as people read it: "2 MiB (2097152 bytes)". */
export function bytes (n: number): string {
  const unit = n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : undefined
  return unit === undefined ? `${n} bytes` : `${unit} (${n} bytes)`
}

/** Errors created with a code (ours, @fastify/error style) and a status; fastify's FST_ ones are not. */
function isOurs (err: FastifyError): boolean {
  return typeof err.code === 'string' && !err.code.startsWith('FST_') && err.code !== 'INTERNAL' && err.statusCode !== undefined
}

/** The URN standing for a request whose URL is not repeated (a 414's, or one never parsed). */
const requestUrn = (requestId: string): string => `urn:jit-identity-resolver:request:${requestId}`

/** What the caller sent as Content-Type, safe to print (the media type alone, escaped, at most 64 characters). */
function mediaTypeOf (request: FastifyRequest): string {
  const header = request.headers['content-type']
  if (typeof header !== 'string' || header.trim() === '') return 'no Content-Type'
  return quoted(header.split(';')[0]?.trim() ?? '')
}

/** A path as a detail may show it: at most 200 characters, escaped. */
function shownPath (url: string): string {
  const path = url.split('?')[0] ?? ''
  const cut = path.length > 200 ? `${path.slice(0, 200)}…` : path
  return cut.replace(/[^\x21-\x7e…]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** The routes' paths as patterns, to tell a wrong method (405, with Allow) from an unknown path (404). */
class RouteTable {
  private readonly routes: Array<{ methods: string[], url: string, pattern?: RegExp }> = []

  add (method: string | string[], url: string): void {
    this.routes.push({ methods: ([] as string[]).concat(method).map(m => m.toUpperCase()), url })
  }

  /** The methods some route answers on `path` (the raw path, as the router saw it). */
  allowed (path: string): string[] {
    const methods = new Set<string>()
    for (const route of this.routes) {
      route.pattern ??= patternOf(route.url)
      if (route.pattern.test(path)) for (const m of route.methods) methods.add(m)
    }
    if (methods.has('GET')) methods.add('HEAD')
    return [...methods].sort()
  }
}

/** find-my-way's syntax as a regular expression: `:name` one segment, `*` anything. */
function patternOf (url: string): RegExp {
  const source = url
    .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
    .replace(/:[A-Za-z0-9_]+/g, '[^/]+')
    .replace(/\*/g, '.*')
  return new RegExp(`^${source}$`)
}

async function sendProblem (reply: FastifyReply, problem: Problem, headers?: Record<string, string>): Promise<FastifyReply> {
  if (headers !== undefined) reply.headers(headers)
  return await reply.code(problem.status).type('application/problem+json').send(problem)
}

export function registerProblemHandlers (app: FastifyInstance): void {
  const routes = new RouteTable()
  app.addHook('onRoute', (route) => { routes.add(route.method, route.url ?? route.path) })

  // While closing (app.ts turns fastify's own non-problem 503 off), a new request is refused as a problem.
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  // No request reads past a URL this long; a longer one is refused before anything else (authentication included).
  // A callback hook: it runs on every request and has nothing to wait for.
  app.addHook('onRequest', (request, reply, done) => {
    if (closing) {
      reply.header('connection', 'close')
      done(serviceClosing())
      return
    }
    done(request.url.length > MAX_URL_LENGTH ? new UriTooLong(bytes(MAX_URL_LENGTH)) : undefined)
  })

  app.setErrorHandler(async (err: FastifyError, request, reply) => {
    let error: FastifyError = err
    // fastify's body-too-large error does not say the limit; the route's own limit is known here.
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      error = new BodyTooLarge(bytes(request.routeOptions.bodyLimit), request.method, request.routeOptions.url ?? request.url.split('?')[0])
    } else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      error = new UnsupportedMediaType(mediaTypeOf(request))
    }
    const problem = problemOf(error, {
      requestId: request.id,
      instance: error.code === 'URI_TOO_LONG' ? requestUrn(request.id) : request.url,
      route: `${request.method} ${request.routeOptions.url?.replace(/:([A-Za-z0-9_]+)/g, '{$1}') ?? shownPath(request.url)}`
    })
    // Only the unexpected is an `error` with its stack. An expected condition (an upstream throttling or
    // down, a deadline, not ready: 5xx with our code) is a warn without one, the service's own credentials
    // refused (*_MISCONFIGURED) an error without one (the operator must act), a refusal (4xx) an info.
    if (problem.code === 'INTERNAL') request.log.error({ err }, 'request failed')
    else if (problem.status >= 500) request.log[problem.code.endsWith('_MISCONFIGURED') ? 'error' : 'warn']({ code: problem.code, ...(SAFE_5XX.has(problem.code) ? { detail: problem.detail } : { cause: err.message }) }, 'request failed')
    else request.log.info({ code: problem.code }, 'request refused')
    return await sendProblem(reply, problem, (err as { headers?: Record<string, string> }).headers)
  })

  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split('?')[0] ?? request.url
    const allowed = routes.allowed(path)
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      const problem = problemOf(new MethodNotAllowed(request.method, shownPath(request.url), allowed.join(', ')), { requestId: request.id, instance: request.url })
      return await sendProblem(reply, problem, { allow: allowed.join(', ') })
    }
    return await sendProblem(reply, problemOf(new NotFound(request.method, shownPath(request.url)), { requestId: request.id, instance: request.url }))
  })
}

/**
 * fastify's `frameworkErrors`: what the router refuses before any hook runs — a URL that is not valid
 * percent-encoding (400 INVALID_URL), a path parameter beyond maxParamLength (414) — as problems too.
 */
export function frameworkErrors (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const known: FastifyError = error.code === 'FST_ERR_BAD_URL'
    ? new InvalidUrl()
    : error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? new UriTooLong(bytes(MAX_URL_LENGTH)) : error
  const problem = problemOf(known, { requestId: request.id, instance: requestUrn(request.id) })
  if (problem.status >= 500) request.log.error({ err: error }, 'request failed')
  request.log.info({ method: request.method, status: problem.status, code: problem.code }, 'request')
  reply.header('x-request-id', request.id).code(problem.status).type('application/problem+json').send(problem)
}

interface ParserError extends Error {
  code?: string
  /** The chunk the parser was reading, and how far it got (Node's HTTP parser errors). */
  rawPacket?: unknown
  bytesParsed?: unknown
}

/**
 * Whether Node's "header overflow" is a URL too long rather than headers too large. Node counts both against
 * one limit and says only "Header overflow"; the chunk it stopped in tells them apart: the token that
 * overflowed ended at a space (only the request line's URL does), or the chunk so far is a request line
 * that has not ended. When neither can be seen (a token longer than a whole chunk), it is headers (431).
 */
export function overflowIsUrl (err: Pick<ParserError, 'rawPacket' | 'bytesParsed'>): boolean {
  const raw = err.rawPacket
  const at = err.bytesParsed
  if (!Buffer.isBuffer(raw) || typeof at !== 'number') return false
  const next = raw.subarray(at, at + 1).toString('latin1')
  if (next === ' ') return true
  if (next === '\r' || next === '\n') return false
  const head = raw.subarray(0, at).toString('latin1')
  return /^[A-Z]+ \S*$/.test(head.slice(head.lastIndexOf('\n') + 1))
}

/**
 * fastify's `clientErrorHandler`: Node's HTTP parser refuses a request before fastify sees it (headers
 * over the limit, a URL longer than that, a request that is not HTTP, a timeout). Answered as a problem
 * with a fresh request id, logged once, then the connection is closed (the parser cannot go on).
 */
export function clientErrorHandler (this: FastifyInstance, err: ParserError, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const requestId = newRequestId()
  let error: FastifyError
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    error = overflowIsUrl(err) ? new UriTooLong(bytes(MAX_HEADER_BYTES)) : new HeadersTooLarge(bytes(MAX_HEADER_BYTES))
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    error = new RequestTimeout()
  } else {
    error = new MalformedRequest()
  }
  const problem = problemOf(error, { requestId, instance: requestUrn(requestId) })
  this.log.info({ reqId: requestId, status: problem.status, code: problem.code, parserError: err.code }, 'client error')
  if (socket.writable) {
    const body = JSON.stringify(problem)
    socket.write(
      `HTTP/1.1 ${problem.status} ${problem.title}\r\n` +
      'Content-Type: application/problem+json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `x-request-id: ${requestId}\r\n` +
      'Connection: close\r\n\r\n' +
      body
    )
  }
  socket.destroy()
}
