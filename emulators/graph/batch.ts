// JSON batching (spec §2.5): POST /v1.0/$batch with at most 20 requests. Each request runs through the
// same application (`inject`), so authentication, throttling, injected faults and call counting apply
// per item exactly as for a direct call; items carry the outer Authorization and `x-emulator-batch: 1`.
// Requests without `dependsOn` run in parallel; a request whose dependency failed gets 424.
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { GraphError, badRequest, errorEnvelope } from './errors.ts'
import { GRAPH_JSON, type GraphServices, jsonBody, sendError } from './http.ts'

export const MAX_BATCH_REQUESTS = 20
const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE'])

/** Sub-response headers worth returning (Graph returns a handful, not the transport ones). */
const KEPT_HEADERS: Record<string, string> = {
  'content-type': 'Content-Type',
  'cache-control': 'Cache-Control',
  'odata-version': 'OData-Version',
  location: 'Location',
  'retry-after': 'Retry-After',
  'www-authenticate': 'WWW-Authenticate',
  'preference-applied': 'Preference-Applied',
  'x-ms-resource-unit': 'x-ms-resource-unit',
  'x-ms-throttle-limit-percentage': 'x-ms-throttle-limit-percentage',
  'x-ms-throttle-scope': 'x-ms-throttle-scope',
  'x-ms-throttle-information': 'x-ms-throttle-information'
}

interface BatchItem {
  id: string
  method: string
  url: string
  headers: Record<string, string>
  body: unknown
  dependsOn: string[]
}

export interface BatchResponse {
  id: string
  status: number
  headers: Record<string, string>
  body?: unknown
}

const invalid = (message: string): GraphError => badRequest(message, 'BadRequest')

/** Validates the whole batch; any problem fails it as one 400 (Graph runs none of its requests). */
export function parseBatch (payload: Record<string, unknown>): BatchItem[] {
  const requests = payload.requests
  if (!Array.isArray(requests)) throw invalid('Invalid batch payload format: \'requests\' must be an array.')
  if (requests.length === 0) throw invalid('Invalid batch payload format: \'requests\' must not be empty.')
  // [UNCONF] wording; the limit of 20 and the whole-batch 400 are documented.
  if (requests.length > MAX_BATCH_REQUESTS) throw invalid(`The number of requests in a batch exceeds the limit of ${MAX_BATCH_REQUESTS}.`)
  const seen = new Set<string>()
  const items: BatchItem[] = []
  for (const [index, r] of requests.entries()) {
    if (typeof r !== 'object' || r === null || Array.isArray(r)) throw invalid(`Invalid batch payload format: request ${index} is not an object.`)
    const req = r as Record<string, unknown>
    if (typeof req.id !== 'string' || req.id.trim() === '') throw invalid('Batch request is missing the required \'id\' property.')
    const key = req.id.toLowerCase()
    if (seen.has(key)) throw invalid(`Batch request ids must be unique: id '${req.id}' is used more than once.`)
    if (typeof req.method !== 'string' || !METHODS.has(req.method.toUpperCase())) throw invalid(`Batch request '${req.id}' has a missing or invalid 'method'.`)
    if (typeof req.url !== 'string' || req.url.trim() === '') throw invalid(`Batch request '${req.id}' is missing the required 'url' property.`)
    if (/^[a-z][a-z0-9+.-]*:/i.test(req.url) || req.url.startsWith('//')) throw invalid(`Batch request '${req.id}' must use a relative 'url'.`)
    if (/^\/?\$batch(?:[/?]|$)/i.test(req.url)) throw invalid(`Batch request '${req.id}' cannot be a nested batch.`)
    const headers: Record<string, string> = {}
    if (req.headers !== undefined && req.headers !== null) {
      if (typeof req.headers !== 'object' || Array.isArray(req.headers)) throw invalid(`Batch request '${req.id}' has invalid 'headers'.`)
      for (const [k, v] of Object.entries(req.headers as Record<string, unknown>)) {
        if (typeof v !== 'string' && typeof v !== 'number') throw invalid(`Batch request '${req.id}' has an invalid value for header '${k}'.`)
        headers[k.toLowerCase()] = String(v)
      }
    }
    if (req.body !== undefined && headers['content-type'] === undefined) {
      throw invalid(`Batch request '${req.id}' has a body but no Content-Type header.`)
    }
    const dependsOn: string[] = []
    if (req.dependsOn !== undefined && req.dependsOn !== null) {
      if (!Array.isArray(req.dependsOn) || req.dependsOn.some(d => typeof d !== 'string')) throw invalid(`Batch request '${req.id}' has an invalid 'dependsOn'.`)
      for (const d of req.dependsOn as string[]) {
        // Only earlier requests can be depended on: this keeps the order executable and cycle-free.
        if (!seen.has(d.toLowerCase())) throw invalid(`Batch request '${req.id}' depends on '${d}', which is not an earlier request of the batch.`)
        dependsOn.push(d.toLowerCase())
      }
    }
    seen.add(key)
    items.push({ id: req.id, method: req.method.toUpperCase(), url: req.url, headers, body: req.body, dependsOn })
  }
  return items
}

function responseBody (contentType: string, raw: string, rawPayload: Buffer): unknown {
  if (raw === '') return undefined
  if (contentType.includes('json')) {
    try {
      return JSON.parse(raw)
    } catch {
      return raw
    }
  }
  // [UNCONF] Graph base64-encodes non-JSON bodies in batch responses; text (e.g. a /$count) is kept as text.
  if (contentType.startsWith('text/')) return raw
  return rawPayload.toString('base64')
}

async function execute (app: FastifyInstance, outer: FastifyRequest, item: BatchItem): Promise<BatchResponse> {
  const headers: Record<string, string> = { ...item.headers, 'x-emulator-batch': '1' }
  delete headers.authorization
  delete headers['content-length']
  delete headers.host
  const authorization = outer.headers.authorization
  if (authorization !== undefined) headers.authorization = authorization
  const payload = item.body === undefined ? undefined : typeof item.body === 'string' ? item.body : JSON.stringify(item.body)
  const res = await app.inject({
    method: item.method as 'GET',
    url: `/v1.0/${item.url.replace(/^\/+/, '')}`,
    headers,
    ...(payload !== undefined ? { payload } : {}),
    remoteAddress: outer.socket.remoteAddress ?? '127.0.0.1'
  })
  const kept: Record<string, string> = {}
  for (const [name, value] of Object.entries(res.headers)) {
    const canonical = KEPT_HEADERS[name.toLowerCase()]
    if (canonical !== undefined && value !== undefined) kept[canonical] = Array.isArray(value) ? value.join(', ') : String(value)
  }
  const out: BatchResponse = { id: item.id, status: res.statusCode, headers: kept }
  const body = responseBody(String(res.headers['content-type'] ?? '').toLowerCase(), res.body, res.rawPayload)
  if (body !== undefined) out.body = body
  return out
}

function failedDependency (services: GraphServices, item: BatchItem): BatchResponse {
  // [UNCONF] status 424 is documented; the body's code and wording are not.
  const now = services.ctx.clock.now()
  return {
    id: item.id,
    status: 424,
    headers: { 'Content-Type': GRAPH_JSON },
    body: errorEnvelope('FailedDependency', 'The request was not executed because a request it depends on failed.', { date: now, requestId: randomUUID(), clientRequestId: randomUUID() })
  }
}

export function batchRoute (v1: FastifyInstance, services: GraphServices): void {
  v1.post('/$batch', async (request: FastifyRequest, reply: FastifyReply) => {
    let items: BatchItem[]
    try {
      items = parseBatch(jsonBody(request))
    } catch (err) {
      if (err instanceof GraphError) return await sendError(services, request, reply, err)
      throw err
    }
    const results = new Map<string, Promise<BatchResponse>>()
    for (const item of items) {
      const deps = item.dependsOn.map(d => results.get(d) as Promise<BatchResponse>)
      results.set(item.id.toLowerCase(), (async () => {
        const done = await Promise.all(deps)
        if (done.some(d => d.status >= 400)) return failedDependency(services, item)
        return await execute(v1, request, item)
      })())
    }
    const responses = await Promise.all(items.map(async i => await (results.get(i.id.toLowerCase()) as Promise<BatchResponse>)))
    const units = responses.reduce((sum, r) => sum + (Number(r.headers['x-ms-resource-unit']) || 0), 0)
    return await reply.header('x-ms-resource-unit', String(units)).type(GRAPH_JSON).send({ responses })
  })
}
