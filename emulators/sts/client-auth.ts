// Client authentication at the token endpoint: client_secret in the body (client_secret_post), HTTP Basic
// (client_secret_basic), or a certificate-signed client assertion (private_key_jwt) checked against the
// application's registered certificates by `x5t` (SHA-1) or `x5t#S256`, RS256 or PS256.
import { timingSafeEqual, createHash } from 'node:crypto'
import { decodeProtectedHeader, decodeJwt, importX509, jwtVerify, type JWTPayload } from 'jose'
import type { EmulatorContext } from '../context.ts'
import type { Application } from '../tenant/model.ts'
import { thumbprints } from '../x509.ts'
import { errors } from './errors.ts'
import type { ClientAuth } from './mint.ts'

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

/** Entra's clock skew for assertions (the same 5 minutes its token validators allow). */
const SKEW_SECONDS = 300

export interface ClientCredentials {
  secret?: string
  assertion?: string
  assertionType?: string
}

export interface BasicAuth {
  clientId: string
  secret: string
}

/** `Authorization: Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1), or undefined. */
export function parseBasic (header: string | undefined): BasicAuth | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '')
  if (m === null) return undefined
  const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return undefined
  try {
    return { clientId: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' ')), secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' ')) }
  } catch {
    return undefined
  }
}

function sameSecret (a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest()
  const hb = createHash('sha256').update(b).digest()
  return timingSafeEqual(ha, hb)
}

export interface AssertionContext {
  /** Token endpoint URLs the assertion's `aud` may name (v2 and v1 forms, tenant id, domain or path segment). */
  audiences: string[]
}

/**
 * Authenticates the client. `required` false (the password grant's public clients) lets a request with no
 * credential through as a public client ("0"); a credential that is sent must be right either way.
 */
export async function authenticateClient (ctx: EmulatorContext, app: Application, creds: ClientCredentials, assertion: AssertionContext, required: boolean): Promise<ClientAuth> {
  if (creds.assertion !== undefined || creds.assertionType !== undefined) {
    // An assertion of a type Entra does not take counts as no usable credential. [UNCONF: exact code]
    if (creds.assertionType !== JWT_BEARER || creds.assertion === undefined || creds.assertion === '') throw errors.noCredentials()
    await verifyAssertion(ctx, app, creds.assertion, assertion)
    return '2'
  }
  if (creds.secret !== undefined) {
    if (app.secret === undefined || !sameSecret(creds.secret, app.secret)) throw errors.badSecret(app.appId)
    return '1'
  }
  if (required) throw errors.noCredentials()
  return '0'
}

async function verifyAssertion (ctx: EmulatorContext, app: Application, jwt: string, assertion: AssertionContext): Promise<void> {
  let header: ReturnType<typeof decodeProtectedHeader>
  let unverified: JWTPayload
  try {
    header = decodeProtectedHeader(jwt)
    unverified = decodeJwt(jwt)
  } catch {
    throw errors.assertionMalformed()
  }
  const alg = header.alg
  if (alg !== 'RS256' && alg !== 'PS256') throw errors.assertionSignature(`The signing algorithm '${String(alg)}' is not supported. Supported: RS256, PS256.`, app.appId)
  const x5t = typeof header.x5t === 'string' ? header.x5t : undefined
  const x5tS256 = typeof header['x5t#S256'] === 'string' ? header['x5t#S256'] : undefined
  if (x5t === undefined && x5tS256 === undefined) throw errors.assertionSignature('The assertion header names no certificate thumbprint (x5t or x5t#S256).', app.appId)
  const pem = (app.certificates ?? []).find(c => {
    try {
      const t = thumbprints(c)
      return t.x5t === x5t || t.x5tS256 === x5tS256
    } catch {
      return false // a fixture certificate that does not parse matches nothing
    }
  })
  if (pem === undefined) {
    const shown = x5tS256 ?? x5t ?? ''
    throw errors.assertionSignature(`The key was not found., Thumbprint of key used by client: '${Buffer.from(shown, 'base64url').toString('hex').toUpperCase()}'`, app.appId)
  }
  const now = ctx.clock.nowSeconds()
  try {
    const key = await importX509(pem, alg)
    await jwtVerify(jwt, key, { algorithms: [alg], currentDate: new Date(now * 1000), clockTolerance: SKEW_SECONDS, requiredClaims: ['exp'] })
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'ERR_JWT_EXPIRED' || (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && ['nbf', 'exp'].includes(String((err as { claim?: string }).claim)))) {
      throw errors.assertionTime(now, unverified.nbf, unverified.exp)
    }
    if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') throw errors.assertionSignature('The signature does not verify with the registered certificate.', app.appId)
    throw errors.assertionMalformed()
  }
  const aud = Array.isArray(unverified.aud) ? unverified.aud : [unverified.aud]
  const accepted = new Set(assertion.audiences.map(a => a.toLowerCase()))
  if (!aud.some(a => typeof a === 'string' && accepted.has(a.toLowerCase()))) throw errors.assertionAudience()
  if (unverified.iss?.toLowerCase() !== app.appId || unverified.sub?.toLowerCase() !== app.appId) throw errors.clientIdMismatch()
}
