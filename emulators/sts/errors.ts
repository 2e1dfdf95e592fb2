// AADSTS-shaped errors: every error the STS paths answer with (its own, fastify's, injected faults, unknown
// paths) has exactly the field names msal reads: error, error_description, error_codes, timestamp,
// trace_id, correlation_id, error_uri. The description ends with the Trace ID / Correlation ID / Timestamp
// trailer separated by CRLF, as Entra's does.
//
// The AADSTS numbers and texts come from the spec's §1.8 list and Entra's well-known messages; they are not
// all confirmed against the real service ([MEM] in the spec), so tests should key on `error_codes`, never
// on the wording.
import { randomUUID } from 'node:crypto'
import type { EmulatorContext, ErrorShape } from '../context.ts'

export type OAuthError =
  | 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unauthorized_client'
  | 'unsupported_grant_type' | 'invalid_scope' | 'invalid_resource' | 'invalid_tenant'
  | 'temporarily_unavailable' | 'server_error'

export class StsError extends Error {
  constructor (
    readonly status: number,
    readonly error: OAuthError,
    readonly code: number,
    message: string
  ) {
    super(message)
  }
}

/**
 * Paths the STS answers: `/{tenant}/oauth2/…`, `/{tenant}/discovery/…`, both `.well-known` documents. Not
 * the control API (`/_emulator`) and not Databricks' `/oidc/.well-known/…`.
 */
export const STS_PATH = /^\/(?!oidc\/)[^/_][^/]*\/(?:oauth2|discovery|v2\.0\/\.well-known|\.well-known)(?:\/|$)/

/** `YYYY-MM-DD HH:MM:SSZ` as in Entra's `timestamp` and description trailer. */
export function stsTimestamp (ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z')
}

export interface ErrorBody {
  error: string
  error_description: string
  error_codes: number[]
  timestamp: string
  trace_id: string
  correlation_id: string
  error_uri: string
}

export function errorBody (ctx: EmulatorContext, e: { error: string, code: number, message: string }, traceId: string, correlationId: string = randomUUID()): ErrorBody {
  const timestamp = stsTimestamp(ctx.clock.now())
  return {
    error: e.error,
    error_description: `AADSTS${e.code}: ${e.message}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
    error_codes: [e.code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `${ctx.origin}/error?code=${e.code}`
  }
}

/**
 * How injected faults on STS paths look. The codes are plausible but unconfirmed: Entra's throttling answer
 * is not documented in the pages the spec read. `Retry-After` is the fault injector's to add.
 */
export function stsErrorShape (ctx: EmulatorContext): ErrorShape {
  return {
    prefix: STS_PATH,
    shape: (status, _code, message, requestId) => {
      const e = status === 429
        ? { error: 'temporarily_unavailable', code: 90055, message: `There are too many incoming requests. ${message}` }
        : status >= 500
          ? { error: 'temporarily_unavailable', code: 90033, message: `A transient error has occurred. Please try again. ${message}` }
          : { error: 'invalid_request', code: 9002313, message: `Invalid request. Request is malformed or invalid. ${message}` }
      return { headers: { 'x-ms-request-id': requestId, 'cache-control': 'no-store, no-cache' }, body: errorBody(ctx, e, requestId) }
    }
  }
}

// ---- the errors the token endpoint and discovery raise --------------------------------------------------

export const errors = {
  tenantNotFound: (tenant: string, error: OAuthError = 'invalid_request') => new StsError(400, error, 90002,
    `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`),
  noTenant: () => new StsError(400, 'invalid_request', 50059,
    'No tenant-identifying information found in either the request or implied by any provided credentials.'),
  missingParameter: (name: string) => new StsError(400, 'invalid_request', 900144,
    `The request body must contain the following parameter: '${name}'.`),
  malformed: (detail: string) => new StsError(400, 'invalid_request', 9002313,
    `Invalid request. Request is malformed or invalid. ${detail}`),
  methodNotAllowed: (method: string) => new StsError(400, 'invalid_request', 900561,
    `The endpoint only accepts POST, OPTIONS requests. Received a ${method} request.`),
  notFound: (path: string) => new StsError(404, 'invalid_request', 9002313,
    `Invalid request. Request is malformed or invalid. No STS endpoint at '${path}'.`),
  unsupportedGrant: (grant: string) => new StsError(400, 'unsupported_grant_type', 70003,
    `The app requested an unsupported grant type '${grant}'.`),
  missingScope: () => new StsError(400, 'invalid_scope', 70011,
    "The provided request must include a 'scope' input parameter."),
  invalidScope: (scope: string) => new StsError(400, 'invalid_scope', 70011,
    `The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`),
  scopeNotDefault: (scope: string) => new StsError(400, 'invalid_scope', 1002012,
    `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`),
  multipleResources: (scope: string) => new StsError(400, 'invalid_scope', 28000,
    `Provided value for the input parameter scope is not valid because it contains more than one resource. Scope ${scope} is not valid.`),
  appNotFound: (appId: string, tenantName: string) => new StsError(400, 'unauthorized_client', 700016,
    `Application with identifier '${appId}' was not found in the directory '${tenantName}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`),
  appDisabled: (appId: string, name: string) => new StsError(400, 'unauthorized_client', 7000112,
    `Application '${appId}'(${name}) is disabled.`),
  noCredentials: () => new StsError(401, 'invalid_client', 7000218,
    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
  badSecret: (appId: string) => new StsError(401, 'invalid_client', 7000215,
    `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${appId}'.`),
  clientIdMismatch: () => new StsError(401, 'invalid_client', 700021,
    "Client assertion application identifier doesn't match 'client_id' parameter."),
  assertionMalformed: () => new StsError(400, 'invalid_request', 50027,
    'JWT token is invalid or malformed.'),
  assertionSignature: (reason: string, appId: string) => new StsError(401, 'invalid_client', 700027,
    `Client assertion contains an invalid signature. [Reason - ${reason}, Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${appId}'.]`),
  assertionTime: (now: number, nbf: unknown, exp: unknown) => new StsError(401, 'invalid_client', 700024,
    `Client assertion is not within its valid time range. Current time: ${iso(now)}, assertion valid from ${typeof nbf === 'number' ? iso(nbf) : 'unknown'}, expiry time of assertion ${typeof exp === 'number' ? iso(exp) : 'unknown'}.`),
  assertionAudience: () => new StsError(401, 'invalid_client', 50012,
    'Client assertion audience claim does not match Realm issuer.'),
  resourceNotFound: (resource: string, tenantName: string) => new StsError(400, 'invalid_resource', 500011,
    `The resource principal named ${resource} was not found in the tenant named ${tenantName}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`),
  userNotFound: (tenant: string) => new StsError(400, 'invalid_grant', 50034,
    `The user account {EUII Hidden} does not exist in the ${tenant} directory. To sign into this application, the account must be added to the directory.`),
  userDisabled: () => new StsError(400, 'invalid_grant', 50057,
    'The user account is disabled.'),
  badPassword: () => new StsError(400, 'invalid_grant', 50126,
    'Error validating credentials due to invalid username or password.'),
  internal: () => new StsError(500, 'server_error', 50000,
    'There was an error issuing a token or an issue with our sign-in service.')
}

function iso (seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z')
}
