// Deliberately broken tokens for the control API's factory: each one must be rejected by a correct
// validator (signature, key, lifetime, audience, issuer, tenant binding, algorithm confusion).
import { createHmac, randomUUID } from 'node:crypto'
import type { EmulatorContext } from '../context.ts'
import { derivedGuid } from '../tenant/model.ts'
import { issuerFor, signAccessToken, type Claims, type Version } from './mint.ts'

export const BREAKS = [
  'bad-signature', 'unknown-kid', 'expired', 'nbf-future', 'wrong-audience', 'wrong-issuer',
  'tid-mismatch', 'tid-not-guid', 'alg-none', 'hs256-public-key'
] as const
export type Break = typeof BREAKS[number]

/** An hour: far beyond any validator's clock skew (Entra's libraries allow 5 minutes). */
const HOUR = 3600

/**
 * The claim side of a break: changes to the payload before it is signed (and before the caller's
 * overrides, which still win).
 */
export function breakClaims (ctx: EmulatorContext, claims: Claims, version: Version, brk: Break | undefined): Claims {
  const now = ctx.clock.nowSeconds()
  const lifetime = typeof claims.exp === 'number' && typeof claims.iat === 'number' ? claims.exp - claims.iat : HOUR
  const tid = String(claims.tid)
  switch (brk) {
    case 'expired':
      return { ...claims, iat: now - HOUR - lifetime, nbf: now - HOUR - lifetime, exp: now - HOUR }
    case 'nbf-future':
      return { ...claims, iat: now, nbf: now + HOUR, exp: now + HOUR + lifetime }
    case 'wrong-audience':
      return { ...claims, aud: randomUUID() }
    case 'wrong-issuer':
      return { ...claims, iss: version === 2 ? `https://login.evil.example/${tid}/v2.0` : `https://sts.evil.example/${tid}/` }
    case 'tid-mismatch': {
      // The issuer names another tenant (a loaded one when there is one) while `tid` stays.
      const other = [...ctx.tenants.keys()].find(id => id !== tid.toLowerCase()) ?? derivedGuid(`other-tenant:${tid}`)
      return { ...claims, iss: issuerFor(ctx, version, other) }
    }
    case 'tid-not-guid': {
      const bad = 'not-a-tenant-guid'
      return { ...claims, tid: bad, iss: issuerFor(ctx, version, bad) }
    }
    default:
      return claims
  }
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

/** The signature side of a break: how the (possibly altered) claims are turned into a compact JWT. */
export async function signBroken (ctx: EmulatorContext, claims: Claims, brk: Break | undefined): Promise<string> {
  const key = ctx.keys.current
  switch (brk) {
    case 'bad-signature': {
      const [h, p, s] = (await signAccessToken(ctx, claims)).split('.') as [string, string, string]
      const sig = Buffer.from(s, 'base64url')
      sig[0] = (sig[0] ?? 0) ^ 0xff
      sig[sig.length - 1] = (sig[sig.length - 1] ?? 0) ^ 0x01
      return `${h}.${p}.${sig.toString('base64url')}`
    }
    case 'unknown-kid':
      return await signAccessToken(ctx, claims, { key: ctx.keys.foreign })
    case 'alg-none':
      return `${b64({ typ: 'JWT', alg: 'none', kid: key.kid })}.${b64(claims)}.`
    case 'hs256-public-key': {
      // Key confusion: the published RSA public key (PEM) used as an HMAC secret.
      const input = `${b64({ typ: 'JWT', alg: 'HS256', kid: key.kid })}.${b64(claims)}`
      return `${input}.${createHmac('sha256', key.publicPem).update(input).digest('base64url')}`
    }
    default:
      return await signAccessToken(ctx, claims)
  }
}
