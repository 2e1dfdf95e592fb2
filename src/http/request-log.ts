// Logging per request: one line after each response, and `request.log` for whatever else a request logs.
//
// fastify makes a child logger for every request (bound to its `reqId`), and with redaction configured
// pino serializes and redacts those bindings as it makes it: several microseconds on every request, the
// warm ones included, for a logger most requests never use. Here `request.log` makes that child only when
// something logs through it, and the line per request is written with the request's bindings (`reqId`, a
// `traceparent`) as fields: the same JSON, without a child.
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Bindings, ChildLoggerOptions, Level, Logger } from 'pino'
import type { Metrics } from '../observability/metrics.ts'

/** A request's logger: the real child is made on the first line it writes. */
class RequestLogger {
  private made: Logger | undefined
  constructor (private readonly parent: Logger, readonly fields: Bindings, private readonly options: ChildLoggerOptions) {}

  private get real (): Logger {
    return (this.made ??= this.parent.child(this.fields, this.options))
  }

  get level (): string { return (this.made ?? this.parent).level }
  set level (level: string) { this.real.level = level }
  isLevelEnabled (level: string): boolean { return (this.made ?? this.parent).isLevelEnabled(level) }
  /** Another request logger with more bindings (the traceparent), made as lazily. */
  child (bindings: Bindings, options?: ChildLoggerOptions): RequestLogger {
    return new RequestLogger(this.parent, { ...this.fields, ...bindings }, { ...this.options, ...options })
  }

  bindings (): Bindings { return this.real.bindings() }

  fatal (...args: unknown[]): void { this.write('fatal', args) }
  error (...args: unknown[]): void { this.write('error', args) }
  warn (...args: unknown[]): void { this.write('warn', args) }
  info (...args: unknown[]): void { this.write('info', args) }
  debug (...args: unknown[]): void { this.write('debug', args) }
  trace (...args: unknown[]): void { this.write('trace', args) }
  silent (): void {}

  private write (level: Level, args: unknown[]): void {
    if (!this.isLevelEnabled(level)) return
    ;(this.real[level] as (...a: unknown[]) => void)(...args)
  }
}

/** fastify's `childLoggerFactory`: a request logger that costs nothing until it writes. */
export function lazyRequestLogger (this: FastifyInstance, logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  return new RequestLogger(logger as Logger, bindings, options) as unknown as FastifyBaseLogger
}

/**
 * One line per request, after the response, with the caller's object id (never the token), and the
 * request's duration in the metrics. `lines` writes the line where the app's logger writes, at its level,
 * but without its redaction: the line is made of the fields below only, none of which can hold a secret,
 * and redacting it would double what it costs.
 */
export function registerRequestLog (app: FastifyInstance, { metrics, lines }: { metrics: Metrics | undefined, lines: Logger }): void {
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done) => {
    metrics?.observeRequest(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime / 1000)
    // The line's object is built only when it is written (not at LOG_LEVEL=warn or silent).
    if (lines.isLevelEnabled('info')) {
      const log = request.log as unknown
      // One object shape for every line (absent fields undefined, which pino leaves out): built from
      // spreads, the object cost pino several times more to write.
      lines.info({
        reqId: request.id,
        // Bound to the request's logger when the request came with one.
        traceparent: log instanceof RequestLogger ? log.fields.traceparent as string | undefined : undefined,
        method: request.method,
        url: request.url.length > 2048 ? `${request.url.slice(0, 2048)}…` : request.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        oid: request.caller?.oid,
        tid: request.caller?.tenantId
      }, 'request')
    }
    done()
  })
}
