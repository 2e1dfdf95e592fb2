// GET /metrics in the Prometheus text format. With a token configured (METRICS_TOKEN) a scraper must send
// `Authorization: Bearer <token>`, compared in constant time; without one the endpoint is open, so the
// operator must keep the port off the network or set the token. The token is never logged: the request
// log redacts the Authorization header and nothing here logs the token or the header.
import { createHash, timingSafeEqual } from 'node:crypto'
import createError from '@fastify/error'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { Metrics } from '../observability/metrics.ts'
import { Problems, problemResponses } from './problem-catalogue.ts'

export const MetricsUnauthorized = createError(
  'METRICS_UNAUTHORIZED',
  'GET /metrics needs "Authorization: Bearer <token>" with the token the operator set in METRICS_TOKEN: configure the scraper with it.', 401)

/** The 401 of a scraper without the token, with the RFC 6750 challenge. */
export function metricsUnauthorized (): Error {
  return Object.assign(new MetricsUnauthorized(), { headers: { 'www-authenticate': 'Bearer' } })
}

export interface MetricsRoutesOptions {
  metrics: Metrics
  /** METRICS_TOKEN: when set, the bearer token a scraper must present. */
  token?: string
}

export async function metricsRoutes (app: FastifyInstance, { metrics, token }: MetricsRoutesOptions): Promise<void> {
  const expected = token === undefined || token === '' ? undefined : digest(token)
  app.get('/metrics', {
    schema: {
      tags: ['metrics'],
      summary: 'Prometheus metrics, for scrapers.',
      description: 'The Prometheus text format (`text/plain; version=0.0.4`): requests by route and status, cache lookups, upstream calls, retries and throttling, materialization. With `METRICS_TOKEN` set, a scraper sends `Authorization: Bearer <METRICS_TOKEN>` (else 401 `METRICS_UNAUTHORIZED`); unset, the endpoint is open to anyone who reaches the port.',
      security: [{ metricsToken: [] }, {}],
      response: {
        200: {
          description: 'The metrics, in the Prometheus text format.',
          content: {
            'text/plain': {
              schema: Type.String(),
              example: '# HELP http_request_duration_seconds Requests served, by route, method and status.\n' +
                '# TYPE http_request_duration_seconds histogram\n' +
                'http_request_duration_seconds_bucket{le="0.005",route="/v1/login",method="POST",status="200"} 41\n'
            }
          }
        },
        // Only with METRICS_TOKEN set. (The catalogue is read here, not at the top: it imports this module's error.)
        ...problemResponses([Problems.MetricsUnauthorized])
      }
    },
    onRequest: async (request) => { if (expected !== undefined) checkBearer(request, expected) }
  }, async (_request, reply) => {
    return await reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}

/** SHA-256 of the token: equal-length inputs for timingSafeEqual, whatever length the presented token has. */
const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest()

function checkBearer (request: FastifyRequest, expected: Buffer): void {
  const header = request.headers.authorization ?? ''
  const space = header.indexOf(' ')
  const scheme = space === -1 ? header : header.slice(0, space)
  const presented = space === -1 ? '' : header.slice(space + 1).trim()
  // The digest is compared even when the scheme is wrong, so the answer takes as long either way.
  const matches = timingSafeEqual(digest(presented), expected)
  if (scheme.toLowerCase() !== 'bearer' || presented === '' || !matches) {
    throw metricsUnauthorized()
  }
}
