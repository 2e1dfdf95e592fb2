// Errors of the Graph adapter besides the port's DirectoryUnavailableError (throttled, down, timing out).
// Each says what an operator has to fix; none carries a token, a secret or a request URL's query.

export interface DirectoryErrorDetails {
  tenantId: string
  /** HTTP status Graph or the STS answered, when there was one. */
  status?: number
  /** Graph's `error.code` or the STS's `error` (`Authorization_RequestDenied`, `invalid_client`, …). */
  upstreamCode?: string
  /** Graph's `request-id`, for a support case. */
  requestId?: string
}

/**
 * The app cannot read the directory as configured: the STS refused its credential (unknown app, wrong
 * secret, unknown tenant), Graph refused its token, or the app lacks an application permission. The
 * resolver should answer 500/502 and log it; retrying does not help until someone changes the setup.
 */
export class DirectoryConfigurationError extends Error {
  readonly code = 'DIRECTORY_MISCONFIGURED'

  constructor (
    message: string,
    readonly details: DirectoryErrorDetails & {
      /** The application permission (app role on Microsoft Graph) the call needs, e.g. `GroupMember.Read.All`. */
      missingPermission?: string
    },
    options?: ErrorOptions
  ) {
    super(message, options)
    this.name = 'DirectoryConfigurationError'
  }

  get missingPermission (): string | undefined { return this.details.missingPermission }
}

/** Graph refused a request as malformed (400) or answered something the adapter does not expect. */
export class DirectoryRequestError extends Error {
  readonly code = 'DIRECTORY_BAD_REQUEST'

  constructor (message: string, readonly details: DirectoryErrorDetails, options?: ErrorOptions) {
    super(message, options)
    this.name = 'DirectoryRequestError'
  }
}

/** A lookup that must name one principal (by mail) matched several. */
export class DirectoryAmbiguousError extends Error {
  readonly code = 'PRINCIPAL_AMBIGUOUS'

  constructor (message: string, readonly details: { tenantId: string, matches: number }) {
    super(message)
    this.name = 'DirectoryAmbiguousError'
  }
}
