// Errors the resolver raises; the HTTP layer turns each into application/problem+json with its code.
import createError from '@fastify/error'

export const PrincipalNotFound = createError('PRINCIPAL_NOT_FOUND', 'No user, service principal or group %s exists in tenant %s. Check the id, or whether it was deleted in Entra.', 404)
export const PrincipalNotFoundAtLogin = createError('PRINCIPAL_NOT_FOUND', 'The signed-in principal %s no longer exists in tenant %s.', 403)
export const PrincipalDisabled = createError('PRINCIPAL_DISABLED', 'The principal %s is disabled in Entra (accountEnabled=false); an administrator must enable it.', 403)

const Unavailable = createError('UPSTREAM_UNAVAILABLE', '%s is unavailable right now and nothing usable is cached; retry after %s seconds.', 503)
const Throttled = createError('UPSTREAM_THROTTLED', '%s is throttling this service and nothing usable is cached; retry after %s seconds.', 503)

/** A 503 that tells the caller when to retry (the problem handler sends `headers`). */
export function upstreamUnavailable (upstream: string, retryAfterSeconds: number | undefined, throttled: boolean): Error {
  const seconds = Math.max(1, Math.ceil(retryAfterSeconds ?? 5))
  const err = throttled ? new Throttled(upstream, seconds) : new Unavailable(upstream, seconds)
  return Object.assign(err, { headers: { 'retry-after': String(seconds) } })
}

/** The service's own Entra app lacks a permission or a valid credential: the operator must fix it. */
export const DirectoryMisconfigured = createError('DIRECTORY_MISCONFIGURED', 'The service cannot read the directory: %s', 502)
export const PrincipalAmbiguous = createError('PRINCIPAL_AMBIGUOUS', '%s', 409)
export const DirectoryRejected = createError('DIRECTORY_BAD_REQUEST', 'Microsoft Graph refused the request: %s', 502)
export const TargetMisconfigured = createError('TARGET_MISCONFIGURED', 'The service cannot write to the Databricks account: %s', 502)
export const TargetRejected = createError('TARGET_BAD_REQUEST', 'Databricks refused the request: %s', 502)
export const WorkspaceNotFound = createError('WORKSPACE_NOT_FOUND', '%s', 404)
export const DatabricksNotConfigured = createError('DATABRICKS_NOT_CONFIGURED', 'A workspace decision needs a Databricks account: set DATABRICKS_HOST and DATABRICKS_ACCOUNT_ID.', 400)
