// Bearer-token validation for the emulated resources (Graph now, Databricks next): a token the STS
// minted for one of the loaded tenants, signed by a published key, unexpired, for one of `audiences`.
import type { JWTPayload } from 'jose'
import type { EmulatorContext } from '../context.ts'
import type { Directory } from '../tenant/model.ts'
import { v1Issuer, v2Issuer } from './issuers.ts'

export interface AccessToken extends JWTPayload {
  tid: string
  oid?: string
  roles?: string[]
  scp?: string
  appid?: string
  azp?: string
  ver?: string
}

export class BearerError extends Error {
  constructor (readonly reason: 'missing' | 'invalid' | 'expired' | 'audience' | 'tenant', message: string) {
    super(message)
  }
}

export async function verifyBearer (ctx: EmulatorContext, authorization: string | undefined, audiences: string[]): Promise<{ token: AccessToken, tenant: Directory }> {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')
  if (match === null) throw new BearerError('missing', 'Access token is empty.')
  let payload: JWTPayload
  try {
    payload = await ctx.keys.verify(match[1] as string, ctx.clock.nowSeconds())
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'ERR_JWT_EXPIRED' || code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') throw new BearerError('expired', 'Access token has expired or is not yet valid.')
    throw new BearerError('invalid', 'Access token validation failure. Invalid signature or malformed token.')
  }
  const tid = typeof payload.tid === 'string' ? payload.tid.toLowerCase() : ''
  const tenant = ctx.tenants.get(tid)
  if (tenant === undefined || (payload.iss !== v2Issuer(ctx.origin, tid) && payload.iss !== v1Issuer(tid))) {
    throw new BearerError('tenant', 'Access token validation failure. Invalid issuer or tenant.')
  }
  const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud]
  if (!aud.some(a => a !== undefined && audiences.includes(a.replace(/\/$/, '')))) {
    throw new BearerError('audience', 'Access token validation failure. Invalid audience.')
  }
  return { token: payload as AccessToken, tenant }
}
