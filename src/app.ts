// buildApp(deps): the composition root of the HTTP service. It registers plugins and routes with the
// dependencies it is given and never listens, so tests and local mode assemble the same app.
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import { pino, destination, type DestinationStream } from 'pino'
import type { Config } from './config.ts'
import type { Resolver } from './resolver/resolver.ts'
import type { Materializer } from './resolver/materializer.ts'
import { SignIns } from './resolver/sign-in.ts'
import type { Metrics } from './observability/metrics.ts'
import { MAX_HEADER_BYTES, MAX_URL_LENGTH, clientErrorHandler, frameworkErrors, registerProblemHandlers } from './http/problems.ts'
import { registerRequestIds, requestIdOf } from './http/request-id.ts'
import { lazyRequestLogger, registerRequestLog } from './http/request-log.ts'
import { AJV_OPTIONS } from './http/validation.ts'
import { registerDeadlines } from './http/deadline.ts'
import { registerWriteWaits } from './http/write-waits.ts'
import { registerJsonBodyParser } from './http/json-body.ts'
import { healthRoutes, type ReadinessCheck } from './http/health.ts'
import { registerAuthentication, type Authenticator } from './http/authenticate.ts'
import { identityRoutes } from './http/identity-routes.ts'
import { accessRoutes } from './http/access-routes.ts'
import type { ObjectAccess } from './resolver/object-access.ts'
import { metricsRoutes } from './http/metrics-routes.ts'
import { syncRoutes } from './http/sync-routes.ts'
import type { Sync } from './sync/sync.ts'
import { registerOpenApi } from './http/openapi.ts'
import { registrationRoutes } from './http/registration-routes.ts'
import type { Registrations } from './registrations/runner.ts'

export interface AppDeps {
  config: Config
  /** Checks behind /readyz (upstream reachability, caches); none means ready once started. */
  readinessChecks?: ReadinessCheck[]
  metrics?: Metrics
  /** Bulk registration jobs (with a Databricks account). */
  registrations?: Registrations
  /** The identity API: without these, only health (and metrics) are served. */
  authenticator?: Authenticator
  resolver?: Resolver
  /** With a Databricks account configured: logins also materialize the caller there. */
  materializer?: Materializer
  /** How logins sign the caller in (default: in this process); with replicas, cold ones once for the fleet. */
  signIns?: SignIns
  /** With a Databricks account configured: effective permissions and sharing. */
  access?: ObjectAccess
  /** The Entra change feed (SYNC_ENABLED): GET /v1/sync reports it. */
  sync?: Sync
  /** Where the log lines go (default: stdout); tests read them here. */
  logStream?: DestinationStream
}

export async function buildApp (deps: AppDeps): Promise<FastifyInstance> {
  // stdout as pino writes it by default (asynchronously, a line waiting while a write is in flight), shared
  // by the app's logger and the request lines.
  const stream = deps.logStream ?? destination(1)
  const app = Fastify({
    logger: {
      level: deps.config.LOG_LEVEL,
      // Bearer tokens and secrets never reach a log line.
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', '*.client_secret', '*.access_token'], censor: '[redacted]' },
      stream
    },
    // Our own single line per request (http/request-log.ts) replaces fastify's two; a request's logger is
    // made only when it writes.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyRequestLogger,
    // Every request has an id (a well-formed incoming x-request-id is kept, request-id.ts): in every log
    // line of the request (`reqId`), the x-request-id response header and every problem.
    requestIdHeader: false,
    genReqId: requestIdOf,
    // Answers fastify and Node's parser would give in their own shapes, as problems (problems.ts).
    frameworkErrors,
    clientErrorHandler,
    return503OnClosing: false,
    // Every /v1 request is answered within REQUEST_TIMEOUT_MS (http/deadline.ts): a socket idle that long is
    // never reset mid-request; 30 s to receive a request (headers and body); idle keep-alive connections
    // outlive a load balancer's (60 s is common), so it never reuses one the service is closing.
    connectionTimeout: deps.config.REQUEST_TIMEOUT_MS + 30_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 72_000,
    // Path parameters as long as a URL may be: an id too long for its schema is a 400 that says so.
    routerOptions: { maxParamLength: MAX_URL_LENGTH },
    // Entra tokens with many claims exceed Node's 16 KiB header default; let the verifier answer TOKEN_TOO_LARGE.
    http: { maxHeaderSize: MAX_HEADER_BYTES },
    // Every body this API takes is a few hundred bytes, except a registration's (its route sets its own
    // limit). Bodies are read only after the route's onRequest hooks: authentication and the role come first.
    bodyLimit: 64 * 1024,
    // Strict: unknown properties are refused, nothing is coerced, every error is reported (validation.ts).
    ajv: AJV_OPTIONS
  })

  registerRequestIds(app)
  registerRequestLog(app, { metrics: deps.metrics, lines: pino({ level: deps.config.LOG_LEVEL }, stream) })

  registerProblemHandlers(app)
  // A request waiting for Databricks' write budget is told its place in the queue as its Retry-After.
  registerWriteWaits(app)
  registerDeadlines(app, { timeoutMs: deps.config.REQUEST_TIMEOUT_MS, expectedSeconds: request => request.writeWaits?.etaSeconds() ?? 0 })
  // JSON with a nesting-depth limit checked before parsing (json-body.ts), for every route; no other body.
  registerJsonBodyParser(app)
  // Before the routes: @fastify/swagger collects each route's schema as it is added.
  await registerOpenApi(app)
  await app.register(healthRoutes, { checks: deps.readinessChecks ?? [] })
  if (deps.metrics !== undefined) await app.register(metricsRoutes, { metrics: deps.metrics, token: deps.config.METRICS_TOKEN })
  if (deps.authenticator !== undefined && deps.resolver !== undefined) {
    registerAuthentication(app, deps.authenticator)
    await app.register(registrationRoutes, { resolver: deps.resolver, runner: deps.registrations })
    await app.register(identityRoutes, { resolver: deps.resolver, signIns: deps.signIns ?? (deps.materializer !== undefined ? new SignIns(deps.resolver, deps.materializer) : undefined) })
    await app.register(accessRoutes, { access: deps.access })
    await app.register(syncRoutes, { sync: deps.sync, intervalSeconds: deps.config.SYNC_INTERVAL_SECONDS })
  }
  return app
}
