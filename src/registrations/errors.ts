// Errors of the registrations API, @fastify/error style: the HTTP layer sends each as problem+json.
import createError from '@fastify/error'

export const RegistrationNotFound = createError('REGISTRATION_NOT_FOUND', 'No registration %s: check the id in the Location header of the POST that created it (finished registrations are kept for 30 days with Redis).', 404)
export const TooManyPrincipals = createError('TOO_MANY_PRINCIPALS', 'A registration takes at most %s principals; this one has %s. Split the list into several requests.', 400)
export const NoPrincipals = createError('NO_PRINCIPALS', 'Name what to register: a non-empty `principals` list or a `group` id.', 400)
export const AmbiguousSource = createError('AMBIGUOUS_SOURCE', 'Give either `principals` or `group`, not both: one registration registers a list or a group\'s members.', 400)
export const GroupNotFound = createError('GROUP_NOT_FOUND', 'No group %s exists in tenant %s. Check the group\'s object id in Entra.', 404)
export const NotAGroup = createError('NOT_A_GROUP', '%s is a %s, not a group: register it through `principals` instead.', 400)
export const RegistrationsNotConfigured = createError('DATABRICKS_NOT_CONFIGURED', 'Registering principals needs a Databricks account: set DATABRICKS_HOST and DATABRICKS_ACCOUNT_ID.', 400)
export const ShuttingDown = createError('SHUTTING_DOWN', 'The service is shutting down and takes no new registration; retry against another instance or in a moment.', 503)

const StoreUnavailable = createError('REGISTRATIONS_UNAVAILABLE', 'Registration jobs are kept in Redis, which this service cannot reach right now; jobs already accepted are kept and resume when it is back. Retry after %s seconds.', 503)

/** Redis (REDIS_URL) is away: a 503 with Retry-After, its cause kept for the log (never shown to the caller). */
export function storeUnavailable (cause?: unknown, retryAfterSeconds = 5): Error {
  return Object.assign(new StoreUnavailable(retryAfterSeconds, { cause }), { headers: { 'retry-after': String(retryAfterSeconds) } })
}

export const isStoreUnavailable = (err: unknown): boolean => (err as { code?: unknown } | undefined)?.code === 'REGISTRATIONS_UNAVAILABLE'
