// The baseline the warm routes are compared with: a bare fastify route answering a constant — the very
// body the service's warm route returns, through the same response schema — so a comparison measures the
// service's own work, not the size of the answer. No hooks, no logger.
import Fastify, { type FastifyInstance } from 'fastify'
import type { TSchema } from '@sinclair/typebox'
import { Resolution } from '../../src/http/schemas.ts'

export interface BareRoute { method: 'GET' | 'POST', url: string, schema: TSchema }

export function bareApp (body: unknown, route: BareRoute = { method: 'POST', url: '/v1/login', schema: Resolution }): FastifyInstance {
  const app = Fastify({ logger: false })
  app.route({ method: route.method, url: route.url, schema: { response: { 200: route.schema } }, handler: async () => body })
  return app
}
