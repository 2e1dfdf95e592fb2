// Errors the resolver raises; the HTTP layer turns each into application/problem+json with its code.
import createError from '@fastify/error'

export const PrincipalNotFound = createError('PRINCIPAL_NOT_FOUND', 'No user, service principal or group %s exists in tenant %s. Check the id, or whether it was deleted in Entra.', 404)
export const PrincipalNotFoundAtLogin = createError('PRINCIPAL_NOT_FOUND', 'The signed-in principal %s no longer exists in tenant %s.', 403)
const SubjectNotAPrincipal = createError('TOKEN_SUBJECT_NOT_A_PRINCIPAL', "The token's oid %s names a %s of tenant %s, not a user or service principal: only users and applications sign in. Send a token Entra issued to a user or an application.", 401)
/**
 * A token whose `oid` is a group (or anything else that cannot sign in): Entra never issues one, so it is
 * refused as a token, with the RFC 6750 challenge every token refusal carries.
 */
export function subjectNotAPrincipal (oid: string, kind: string, tenantId: string): Error {
  const err = new SubjectNotAPrincipal(oid, kind, tenantId)
  return Object.assign(err, { headers: { 'www-authenticate': `Bearer error="invalid_token", error_description="${err.code}"` } })
}
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
export const DatabricksNotConfigured = createError('DATABRICKS_NOT_CONFIGURED', 'Workspace decisions, permissions and sharing need a Databricks account: set DATABRICKS_HOST and DATABRICKS_ACCOUNT_ID.', 400)

// Effective permissions and sharing.
export const UnknownObjectType = createError('UNKNOWN_OBJECT_TYPE', "Unknown object type '%s'; use one of: %s.", 400)
export const InvalidPermissionLevel = createError('INVALID_PERMISSION_LEVEL', '%s', 400)
export const ObjectNotFound = createError('OBJECT_NOT_FOUND', '%s', 404)
export const PermissionQueryForbidden = createError('PERMISSION_QUERY_FORBIDDEN', 'You may not ask about other principals on %s: %s', 403)
export const ShareForbidden = createError('SHARE_FORBIDDEN', 'You may not share %s: %s Ask someone who manages the object.', 403)
export const ShareLevelForbidden = createError('SHARE_LEVEL_FORBIDDEN', 'You may not grant %s on %s: %s', 403)
export const InvalidOwner = createError('INVALID_OWNER', '%s', 400)
export const ShareTargetExcluded = createError('SHARE_TARGET_EXCLUDED', "The group '%s' is not one this service materializes in Databricks (%s): share with a group the operator admits, or ask the operator.", 409)
export const ShareTargetNameTaken = createError('SHARE_TARGET_NAME_TAKEN', "The group '%s' is named '%s' in the Databricks account, a name that workspace %s resolves to its own local or system group: a grant by that name would reach that group instead. Rename the group in Entra (automatic identity management names it from there).", 409)
const LookupsThrottled = createError('PRINCIPAL_LOOKUPS_THROTTLED', 'You looked up more than %s other principals in a minute; retry after %s seconds.', 429)

/** The 429 of a caller over its lookup budget, with Retry-After. */
export function principalLookupsThrottled (perMinute: number, retryAfterSeconds: number): Error {
  const seconds = Math.max(1, Math.ceil(retryAfterSeconds))
  return Object.assign(new LookupsThrottled(perMinute, seconds), { headers: { 'retry-after': String(seconds) } })
}
export const ShareTargetNotFound = createError('SHARE_TARGET_NOT_FOUND', "No user, service principal or group '%s' exists in tenant %s, so nothing can be shared with it: check the id, UPN, mail or appId.", 404)
export const ShareTargetDisabled = createError('SHARE_TARGET_DISABLED', "The %s '%s' is disabled in Entra (accountEnabled=false): enable it before sharing with it.", 409)
export const UnsupportedSubject = createError('UNSUPPORTED_PRINCIPAL_KIND', "'%s' is a group: effective permissions are asked for a user or service principal; ask about one of the group's members.", 400)
