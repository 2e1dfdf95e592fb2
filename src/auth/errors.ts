// Why a bearer token was refused, declared once: a stable `code` a client can act on, a 401 (503 when
// Entra's signing keys cannot be fetched), and a message that says what to fix. The problem handler
// (src/http/problems.ts) turns these into application/problem+json and sends their `headers`.
import createError from '@fastify/error'

export const TokenMissing = createError(
  'TOKEN_MISSING',
  'No bearer token: send the Entra access token as "Authorization: Bearer <token>".', 401)

export const TokenMalformed = createError(
  'TOKEN_MALFORMED',
  'The bearer token is not a well-formed Entra access token (%s): send the access_token of Entra\'s token response unchanged.', 401)

export const TokenTooLarge = createError(
  'TOKEN_TOO_LARGE',
  'The bearer token is %s bytes, more than the %s this API accepts: send only the access_token of Entra\'s token response.', 401)

export const TokenAlgorithmNotAllowed = createError(
  'TOKEN_ALGORITHM_NOT_ALLOWED',
  'The token is signed with "%s"; only RS256 tokens issued by Microsoft Entra ID are accepted: request a new token from Entra.', 401)

export const TokenSignatureInvalid = createError(
  'TOKEN_SIGNATURE_INVALID',
  'The token signature does not verify: the token was altered or not issued by Microsoft Entra ID. Request a new token from Entra and send it unchanged.', 401)

export const TokenUnknownKey = createError(
  'TOKEN_UNKNOWN_KEY',
  'The token is signed with key "%s", which Entra does not publish for this API\'s authority: request a new token from the configured tenant.', 401)

export const TokenExpired = createError(
  'TOKEN_EXPIRED',
  'The token expired at %s: request a new token from Entra.', 401)

export const TokenNotYetValid = createError(
  'TOKEN_NOT_YET_VALID',
  'The token is not valid before %s: check the clock of the machine that requested it, or wait.', 401)

export const TokenAudienceInvalid = createError(
  'TOKEN_AUDIENCE_INVALID',
  'The token is for audience "%s", not for this API: request a token for one of %s (scope "<App ID URI>/.default").', 401)

export const TokenIssuerInvalid = createError(
  'TOKEN_ISSUER_INVALID',
  'The token issuer "%s" is not %s: request the token from Entra at the authority this API is configured for.', 401)

export const TokenTenantInvalid = createError(
  'TOKEN_TENANT_INVALID',
  'The token\'s tid claim "%s" is not a tenant id (a GUID): request the token from an Entra tenant, not from a proxy that rewrites it.', 401)

export const TokenTenantNotAllowed = createError(
  'TOKEN_TENANT_NOT_ALLOWED',
  'Tenant %s is not allowed to call this API: sign in with an account of an allowed tenant, or ask the operator to add the tenant to ENTRA_ALLOWED_TENANTS.', 401)

export const TokenTenantMismatch = createError(
  'TOKEN_TENANT_MISMATCH',
  'The token was issued by tenant %s but names tenant %s in its tid claim: request a new token from Entra and send it unchanged.', 401)

export const SigningKeysUnavailable = createError(
  'SIGNING_KEYS_UNAVAILABLE',
  'Microsoft Entra\'s signing keys cannot be fetched right now, so no token can be verified: retry after %s seconds.', 503)

/** Every 401 code above, for callers (and tests) that want to tell token problems from the rest. */
export const TOKEN_ERROR_CODES = [
  'TOKEN_MISSING', 'TOKEN_MALFORMED', 'TOKEN_TOO_LARGE', 'TOKEN_ALGORITHM_NOT_ALLOWED', 'TOKEN_SIGNATURE_INVALID',
  'TOKEN_UNKNOWN_KEY', 'TOKEN_EXPIRED', 'TOKEN_NOT_YET_VALID', 'TOKEN_AUDIENCE_INVALID', 'TOKEN_ISSUER_INVALID',
  'TOKEN_TENANT_INVALID', 'TOKEN_TENANT_NOT_ALLOWED', 'TOKEN_TENANT_MISMATCH'
] as const
export type TokenErrorCode = typeof TOKEN_ERROR_CODES[number]

const TOKEN_CODES = new Set<string>(TOKEN_ERROR_CODES)

export function isTokenError (err: unknown): err is Error & { code: TokenErrorCode, statusCode: 401 } {
  return err instanceof Error && TOKEN_CODES.has((err as { code?: unknown }).code as string)
}

/** The 503 for "no signing keys", with `Retry-After` (whole seconds, at least 1). */
export function signingKeysUnavailable (retryAfterMs: number, cause?: unknown): Error {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000))
  const err = new SigningKeysUnavailable(seconds)
  if (cause !== undefined) err.cause = cause
  return Object.assign(err, { headers: { 'retry-after': String(seconds) }, retryAfterSeconds: seconds })
}

/**
 * RFC 6750 §3: a 401 carries `WWW-Authenticate`. Without any credentials it names only the scheme;
 * with a refused token it says `invalid_token`.
 */
export function withChallenge<E extends Error & { code: string }> (err: E): E {
  const challenge = err.code === 'TOKEN_MISSING' ? 'Bearer' : `Bearer error="invalid_token", error_description="${err.code}"`
  return Object.assign(err, { headers: { 'www-authenticate': challenge } })
}

/** Attacker-supplied strings go into messages shortened and without control characters. */
export function shown (value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value)
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, '?')
  return clean.length > 120 ? `${clean.slice(0, 117)}...` : clean
}
