// The HTTP conventions every Graph response follows (spec §2.1): standard headers, the OData JSON
// content type, the error envelope for every failure (including unknown routes and framework errors),
// and the per-route pipeline: bearer → authorization → throttling → query options → handler.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { EmulatorContext } from '../context.ts'
import type { Directory } from '../tenant/model.ts'
import { type Caller, type Family, authenticate } from './auth.ts'
import { GraphError, badJsonPayload, errorEnvelope, methodNotAllowed, segmentNotFound } from './errors.ts'
import { type QueryOptions, parseQuery } from './odata.ts'
import { type Throttle, requestCost } from './throttle.ts'
import type { TokenCodec } from './tokens.ts'

export const GRAPH_JSON = 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8'
export const TEXT_PLAIN = 'text/plain;charset=utf-8'

const AGS_DIAGNOSTIC = JSON.stringify({ ServerInfo: { DataCenter: 'Local Emulator', Slice: 'E', Ring: '1', ScaleUnit: '000', RoleInstance: 'GRAPH-EMULATOR' } })

/** What the Graph routes share within one emulator instance. */
export interface GraphServices {
  ctx: EmulatorContext
  codec: TokenCodec
  throttle: Throttle
  /** Base throttle cost by `METHOD /route/pattern`, for `x-ms-resource-unit` on early failures. */
  costs: Map<string, number>
}

/** One authorized call, as route handlers see it. */
export interface Call {
  services: GraphServices
  ctx: EmulatorContext
  request: FastifyRequest
  reply: FastifyReply
  caller: Caller
  tenant: Directory
  q: QueryOptions
}

export interface RouteDef {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE'
  /** Relative to `/v1.0`. */
  url: string
  family: Family
  /** Base resource-unit cost (spec §2.4). */
  cost: number
  /** Returns the JSON body (status 200) or a string for text/plain, or sends through `call.reply` itself. */
  handler: (call: Call) => Promise<unknown> | unknown
}

export function clientRequestId (request: FastifyRequest): string {
  const sent = request.headers['client-request-id']
  const value = Array.isArray(sent) ? sent[0] : sent
  // When the client sends none, Graph answers with its request id in both headers.
  return value !== undefined && value !== '' ? value : request.id
}

export function errorBody (services: GraphServices, request: FastifyRequest, err: GraphError): unknown {
  return errorEnvelope(err.code, err.message, { date: services.ctx.clock.now(), requestId: request.id, clientRequestId: clientRequestId(request) }, err.inner)
}

export async function sendError (services: GraphServices, request: FastifyRequest, reply: FastifyReply, err: GraphError): Promise<FastifyReply> {
  return await reply.code(err.status).headers(err.headers).type(GRAPH_JSON).send(errorBody(services, request, err))
}

/** Parses a JSON request body, answering Graph's 400 when the Content-Type or the JSON is wrong. */
export function jsonBody (request: FastifyRequest): Record<string, unknown> {
  const type = String(request.headers['content-type'] ?? '').toLowerCase()
  const raw = request.body
  if (!type.includes('json') || typeof raw !== 'string' || raw.trim() === '') throw badJsonPayload()
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    throw badJsonPayload()
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw badJsonPayload()
  return parsed as Record<string, unknown>
}

/** Registers Graph routes with the shared pipeline. */
export function defineRoutes (v1: FastifyInstance, services: GraphServices, defs: readonly RouteDef[]): void {
  for (const def of defs) {
    services.costs.set(`${def.method} /v1.0${def.url}`, def.cost)
    v1.route({
      method: def.method,
      url: def.url,
      handler: async (request, reply) => {
        const caller = await authenticate(services.ctx, request.headers.authorization, request.originalUrl, def.family)
        const cost = requestCost(def.cost, (request.query ?? {}) as Record<string, unknown>)
        const outcome = services.throttle.take(caller.appId, caller.tenant, cost)
        reply.headers(outcome.headers)
        const q = parseQuery(request)
        if (q.maxPageSize !== undefined && q.top === undefined) reply.header('preference-applied', `odata.maxpagesize=${q.maxPageSize}`)
        const result = await def.handler({ services, ctx: services.ctx, request, reply, caller, tenant: caller.tenant, q })
        if (reply.sent) return reply
        if (typeof result === 'string') return await reply.type(TEXT_PLAIN).send(result)
        return await reply.type(GRAPH_JSON).send(result)
      }
    })
  }
}

const SETS = new Set(['users', 'groups', 'serviceprincipals', 'directoryobjects'])
const TOP_LEVEL = new Set(['$batch'])
const UNDER_SET = new Set(['delta', '$count', 'getbyids'])
const NAVIGATIONS = new Set(['memberof', 'transitivememberof', 'members', 'transitivemembers', 'getmembergroups', 'getmemberobjects', 'checkmembergroups', 'checkmemberobjects'])
const CASTS = new Set(['microsoft.graph.user', 'microsoft.graph.group', 'microsoft.graph.serviceprincipal', 'microsoft.graph.directoryrole', 'microsoft.graph.administrativeunit', 'microsoft.graph.device', 'microsoft.graph.orgcontact'])

/** Graph's answer for a request no route serves: 400 for the first unknown segment, else 405. */
export function unmatched (url: string): GraphError {
  const path = (url.split('?')[0] ?? '').replace(/^\/v1\.0\/?/, '')
  const segments = path.split('/').map(s => { try { return decodeURIComponent(s) } catch { return s } })
  const [set = '', second, ...rest] = segments
  if (TOP_LEVEL.has(set.toLowerCase()) && second === undefined) return methodNotAllowed()
  if (set.toLowerCase() === 'subscriptions') {
    // /subscriptions, /subscriptions/{id}, /subscriptions/{id}/reauthorize
    if (rest.length > 1 || (rest.length === 1 && rest[0]?.toLowerCase() !== 'reauthorize')) return segmentNotFound(rest[rest.length - 1] ?? '')
    return methodNotAllowed()
  }
  if (set.toLowerCase() === 'directory') {
    // /directory/deletedItems[/{cast or id}[/restore]]
    if (second === undefined || second === '') return methodNotAllowed()
    if (second.toLowerCase() !== 'deleteditems') return segmentNotFound(second)
    if (rest.length > 2 || (rest.length === 2 && rest[1]?.toLowerCase() !== 'restore')) return segmentNotFound(rest[rest.length - 1] ?? '')
    return methodNotAllowed()
  }
  if (!SETS.has(set.toLowerCase())) return segmentNotFound(set)
  if (second === undefined || second === '') return methodNotAllowed()
  if (UNDER_SET.has(second.toLowerCase()) && rest.length === 0) return methodNotAllowed()
  for (const seg of rest) {
    const s = seg.toLowerCase()
    if (!NAVIGATIONS.has(s) && !CASTS.has(s) && s !== '$count') return segmentNotFound(seg)
  }
  return methodNotAllowed()
}

/** Standard headers, JSON content type, error handler and not-found handler for the `/v1.0` context. */
export function installConventions (v1: FastifyInstance, services: GraphServices): void {
  const { ctx } = services

  // Request bodies are read as text and parsed by the handlers that take one, after authentication,
  // so a bad payload is Graph's 400 rather than a framework error, whatever the Content-Type.
  v1.removeAllContentTypeParsers()
  v1.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => { done(null, body) })

  v1.addHook('onSend', async (request, reply, payload) => {
    const set = (name: string, value: string): void => { if (!reply.hasHeader(name)) reply.header(name, value) }
    set('request-id', request.id)
    set('client-request-id', clientRequestId(request))
    // The emulated world's time (tests move it), so Date agrees with innerError.date and token expiry.
    reply.header('date', new Date(ctx.clock.now()).toUTCString())
    reply.header('cache-control', 'no-store')
    set('odata-version', '4.0')
    set('strict-transport-security', 'max-age=31536000')
    set('x-ms-ags-diagnostic', AGS_DIAGNOSTIC)
    if (!reply.hasHeader('x-ms-resource-unit')) {
      const base = services.costs.get(`${request.method} ${request.routeOptions.url ?? ''}`) ?? 1
      reply.header('x-ms-resource-unit', String(requestCost(base, (request.query ?? {}) as Record<string, unknown>)))
    }
    const type = String(reply.getHeader('content-type') ?? '')
    if (type.startsWith('application/json')) reply.header('content-type', GRAPH_JSON)
    return payload
  })

  v1.setErrorHandler(async (error: FastifyError | GraphError, request, reply) => {
    if (error instanceof GraphError) return await sendError(services, request, reply, error)
    const code = (error as FastifyError).code
    const status = (error as FastifyError).statusCode ?? 500
    if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || code === 'FST_ERR_CTP_INVALID_JSON_BODY' || code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') {
      return await sendError(services, request, reply, badJsonPayload())
    }
    if (status === 413) return await sendError(services, request, reply, new GraphError(413, 'Request_EntityTooLarge', 'The request payload is too large.'))
    if (status >= 400 && status < 500) return await sendError(services, request, reply, new GraphError(status, 'BadRequest', error.message))
    request.log.error({ err: error }, 'graph emulator: unexpected error')
    return await sendError(services, request, reply, new GraphError(500, 'generalException', 'An unexpected error occurred.'))
  })

  v1.setNotFoundHandler(async (request, reply) => await sendError(services, request, reply, unmatched(request.url)))
}
