// buildApp(deps): the composition root of the HTTP service. It registers plugins and routes with the
// dependencies it is given and never listens, so tests and local mode assemble the same app.
import Fastify, { type FastifyInstance } from 'fastify'
import type { Config } from './config.ts'
import { registerProblemHandlers } from './http/problems.ts'
import { healthRoutes, type ReadinessCheck } from './http/health.ts'

export interface AppDeps {
  config: Config
  /** Checks behind /readyz (upstream reachability, caches); none means ready once started. */
  readinessChecks?: ReadinessCheck[]
}

export async function buildApp (deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: deps.config.LOG_LEVEL,
      // Bearer tokens and secrets never reach a log line.
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', '*.client_secret', '*.access_token'], censor: '[redacted]' }
    },
    disableRequestLogging: true,
    connectionTimeout: 120_000,
    requestTimeout: 60_000,
    keepAliveTimeout: 10_000,
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: 'all' } }
  })

  // One log line per request, after the response.
  app.addHook('onResponse', async (request, reply) => {
    request.log.info({ method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'request')
  })

  registerProblemHandlers(app)
  await app.register(healthRoutes, { checks: deps.readinessChecks ?? [] })
  return app
}
