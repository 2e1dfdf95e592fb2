// Access-token claims and signing, shared by the token endpoint and the control API's token factory.
// v1 and v2 tokens differ as in §1.5 of the spec; app-only tokens carry roles and no scp, delegated user
// tokens carry scp, a pairwise sub, the user's names and (per the resource) groups or the overage claims.
import { createHash, randomBytes, randomInt } from 'node:crypto'
import type { JWTPayload } from 'jose'
import type { EmulatorContext } from '../context.ts'
import type { Directory, ServicePrincipal, User } from '../tenant/model.ts'
import { derivedGuid } from '../tenant/model.ts'
import { v1Issuer, v2Issuer } from './issuers.ts'
import type { Resource } from './resources.ts'
import type { SigningKey } from './keys.ts'

/** A JWT holds at most this many groups; above it Entra emits the overage claims instead. */
export const GROUPS_LIMIT = 200

export type Version = 1 | 2
/** How the client authenticated: `appidacr`/`azpacr` ("0" public client, "1" secret, "2" certificate). */
export type ClientAuth = '0' | '1' | '2'

export type Claims = JWTPayload & Record<string, unknown>

export function issuerFor (ctx: EmulatorContext, version: Version, tid: string): string {
  return version === 2 ? v2Issuer(ctx.origin, tid) : v1Issuer(tid)
}

/** `ctx.settings.tokenLifetimeSeconds`, else Entra's random 60–90 minutes. */
export function tokenLifetime (ctx: EmulatorContext): number {
  return ctx.settings.tokenLifetimeSeconds ?? randomInt(3600, 5401)
}

/** Opaque values (`uti`, `rh`, `aio`): random, shaped roughly like Entra's, meaningless. */
const opaque = (bytes: number): string => randomBytes(bytes).toString('base64url')

/** Entra's `sub` is pairwise: stable per (principal, client app), different across apps. */
export function pairwiseSub (oid: string, clientAppId: string): string {
  return createHash('sha256').update(`${oid.toLowerCase()}:${clientAppId.toLowerCase()}`).digest('base64url')
}

function common (ctx: EmulatorContext, tenant: Directory, resource: Resource, version: Version, lifetime: number): Claims {
  const now = ctx.clock.nowSeconds()
  return {
    aud: version === 2 ? resource.appId : resource.identifier,
    iss: issuerFor(ctx, version, tenant.tenantId),
    iat: now,
    nbf: now,
    exp: now + lifetime
  }
}

function trailer (version: Version): Claims {
  return { rh: `0.${opaque(48)}`, uti: opaque(16), ver: version === 2 ? '2.0' : '1.0' }
}

export interface AppOnlyInput {
  tenant: Directory
  resource: Resource
  /** The client's service principal in `tenant`: its object id is the token's `oid` and `sub`. */
  sp: ServicePrincipal
  /** Application permissions: the client application's `roles`. */
  roles: string[]
  acr: ClientAuth
  version?: Version
  lifetime?: number
}

/** Client-credentials (app-only) claims. */
export function appOnlyClaims (ctx: EmulatorContext, input: AppOnlyInput): Claims {
  const version = input.version ?? input.resource.version
  const tid = input.tenant.tenantId
  const claims: Claims = {
    ...common(ctx, input.tenant, input.resource, version, input.lifetime ?? tokenLifetime(ctx)),
    aio: opaque(60)
  }
  if (version === 2) {
    claims.azp = input.sp.appId
    claims.azpacr = input.acr
  } else {
    claims.appid = input.sp.appId
    claims.appidacr = input.acr
    // Entra's v1 app-only tokens carry `idp` = the issuer.
    claims.idp = v1Issuer(tid)
  }
  if (input.resource.optionalClaims.includes('idtyp')) claims.idtyp = 'app'
  claims.oid = input.sp.id
  if (input.roles.length > 0) claims.roles = [...input.roles]
  claims.sub = input.sp.id
  claims.tid = tid
  return { ...claims, ...trailer(version) }
}

export interface DelegatedInput {
  tenant: Directory
  resource: Resource
  user: User
  clientAppId: string
  acr: ClientAuth
  /** Space-separated delegated scopes. */
  scp: string
  /** Whether to add the `groups` claim: default by the resource's groupMembershipClaims. */
  groups?: boolean
  version?: Version
  lifetime?: number
}

/** Delegated (user) claims, as the password grant and the factory issue them. */
export function delegatedClaims (ctx: EmulatorContext, input: DelegatedInput): Claims {
  const version = input.version ?? input.resource.version
  const { tenant, user } = input
  const tid = tenant.tenantId
  const claims: Claims = {
    ...common(ctx, tenant, input.resource, version, input.lifetime ?? tokenLifetime(ctx)),
    ...(version === 1 ? { acr: '1' } : {}),
    aio: opaque(60),
    ...(version === 1 ? { amr: ['pwd'] } : {})
  }
  if (version === 2) {
    claims.azp = input.clientAppId
    claims.azpacr = input.acr
  } else {
    claims.appid = input.clientAppId
    claims.appidacr = input.acr
  }
  if (user.surname !== null) claims.family_name = user.surname
  if (user.givenName !== null) claims.given_name = user.givenName
  Object.assign(claims, groupClaims(tenant, user.id, input.resource, input.groups))
  if (user.userType === 'Guest') claims.idp = guestIdp(user)
  claims.name = user.displayName
  claims.oid = user.id
  if (version === 2) claims.preferred_username = user.userPrincipalName
  claims.scp = input.scp
  claims.sub = pairwiseSub(user.id, input.clientAppId)
  claims.tid = tid
  if (version === 1) claims.unique_name = user.userPrincipalName
  claims.upn = user.userPrincipalName
  return { ...claims, ...trailer(version) }
}

/**
 * The `groups` claim: the principal's transitive groups (security groups only under `SecurityGroup`), or,
 * above 200, `_claim_names`/`_claim_sources` pointing at the legacy Azure AD Graph URL, as Entra does.
 * `include` forces it on (true: security groups when the resource asks for none) or off (false).
 */
export function groupClaims (tenant: Directory, principalId: string, resource: Resource, include?: boolean): Claims {
  const mode = include === true && resource.groupClaims === 'None' ? 'SecurityGroup' : resource.groupClaims
  if (include === false || mode === 'None') return {}
  const ids = tenant.transitiveParents(principalId).filter(id => {
    const g = tenant.groups.get(id)
    return g !== undefined && (mode === 'All' || g.securityEnabled)
  })
  if (ids.length === 0) return {}
  if (ids.length <= GROUPS_LIMIT) return { groups: ids }
  return {
    _claim_names: { groups: 'src1' },
    _claim_sources: { src1: { endpoint: `https://graph.windows.net/${tenant.tenantId}/users/${principalId}/getMemberObjects` } }
  }
}

/** Any plausible `idp` for a guest: the v1 issuer of a tenant derived from the guest's home domain. */
function guestIdp (user: User): string {
  const home = /^(.*)#EXT#@/i.exec(user.userPrincipalName)?.[1]
  const domain = home !== undefined && home.includes('_') ? home.slice(home.lastIndexOf('_') + 1) : (user.mail ?? user.userPrincipalName).split('@').pop() ?? 'external'
  return v1Issuer(derivedGuid(`tenant:${domain.toLowerCase()}`))
}

/** Applies `overrides` last: a key set to null removes that claim. */
export function withOverrides (claims: Claims, overrides: Record<string, unknown> | undefined): Claims {
  if (overrides === undefined) return claims
  const out: Claims = { ...claims }
  for (const [k, v] of Object.entries(overrides)) {
    if (v === null) Reflect.deleteProperty(out, k)
    else out[k] = v
  }
  return out
}

/** Signs as Entra does: `{ typ, alg: RS256, kid }`, and v1 tokens also carry `x5t` (= kid). */
export async function signAccessToken (ctx: EmulatorContext, claims: Claims, opts: { key?: SigningKey } = {}): Promise<string> {
  const key = opts.key ?? ctx.keys.current
  const header = claims.ver === '1.0' ? { x5t: key.kid } : {}
  return await ctx.keys.sign(claims, { key, header })
}
