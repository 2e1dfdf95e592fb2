// GET /metrics in the Prometheus text format.
import type { FastifyInstance } from 'fastify'
import type { Metrics } from '../observability/metrics.ts'

export async function metricsRoutes (app: FastifyInstance, { metrics }: { metrics: Metrics }): Promise<void> {
  app.get('/metrics', async (_request, reply) => {
    return await reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}
