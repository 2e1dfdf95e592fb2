// Errors of the outbound HTTP client. Messages name the upstream, the method and the route label only:
// never a query string, a header or a body, so no token, secret or searched-for address can leak.

export type UnavailableReason =
  /** A retryable status (429, 503, 504 by default) was still there after the last retry. */
  | 'exhausted'
  /** The server asked for a longer wait than the client sits out; the caller should pass it on. */
  | 'retry-after-too-long'
  /** A retryable status on a call that may not be repeated (a POST without `idempotent: true`). */
  | 'not-retryable'

export class UpstreamError extends Error {
  constructor (
    message: string,
    readonly upstream: string,
    readonly method: string,
    readonly route: string,
    options?: ErrorOptions
  ) {
    super(message, options)
    this.name = 'UpstreamError'
  }
}

/**
 * The upstream cannot answer now: throttled, down, timing out or dropping connections, after the bounded
 * retries. `retryAfterSeconds` is what the upstream last asked for (seconds, possibly fractional), so a
 * caller can answer 503 with a `Retry-After` of its own.
 */
export class UpstreamUnavailableError extends UpstreamError {
  constructor (
    message: string,
    upstream: string,
    method: string,
    route: string,
    readonly details: {
      /** The last HTTP status; undefined when the last attempt got no response (timeout, connection). */
      status?: number
      retryAfterSeconds?: number
      attempts: number
      reason: UnavailableReason | 'timeout' | 'connection'
    },
    options?: ErrorOptions
  ) {
    super(message, upstream, method, route, options)
    this.name = 'UpstreamUnavailableError'
  }

  get status (): number | undefined { return this.details.status }
  get retryAfterSeconds (): number | undefined { return this.details.retryAfterSeconds }
}

/** The upstream answered, but not with what the caller could read (e.g. JSON that does not parse). */
export class UpstreamResponseError extends UpstreamError {
  constructor (message: string, upstream: string, method: string, route: string, readonly status: number, options?: ErrorOptions) {
    super(message, upstream, method, route, options)
    this.name = 'UpstreamResponseError'
  }
}
