// The pure half of token verification: what an Entra access token's header and claims must say before
// any key is looked up (algorithm, tenant, audience, lifetime, shape), the issuer algorithm of the
// reference (§1.6), and the mapping of verified claims to a `Caller`. No I/O here.
import type { Caller } from './caller.ts'
import {
  TokenAlgorithmNotAllowed, TokenAudienceInvalid, TokenExpired, TokenIssuerInvalid, TokenMalformed, TokenNotYetValid,
  TokenTenantInvalid, TokenTenantMismatch, TokenTenantNotAllowed, shown
} from './errors.ts'

export const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The one signing algorithm Entra uses for access tokens; everything else is refused before keys are touched. */
export const ALGORITHM = 'RS256'

export type TokenVersion = 1 | 2

/** What the configuration says a token must satisfy, prepared once. */
export interface TokenPolicy {
  /** Normalized audiences (see `normalizeAudience`). */
  audiences: ReadonlySet<string>
  allowedTenants: ReadonlySet<string>
  skewMs: number
}

/** The facts of a token that passed the checks that need no key. */
export interface Inspected {
  version: TokenVersion
  kid: string
  /** `tid` as the token spells it (substituted into issuer templates as is). */
  tid: string
  iss: string
  caller: Caller
}

type Claims = Record<string, unknown>

/**
 * An audience compared without one trailing slash (Entra's v1 `aud` is the App ID URI exactly as the
 * client asked for it, `api://x` or `api://x/`), and without case when it is a GUID (a client id).
 */
export function normalizeAudience (aud: string): string {
  const trimmed = aud.endsWith('/') ? aud.slice(0, -1) : aud
  return GUID.test(trimmed) ? trimmed.toLowerCase() : trimmed
}

/**
 * Everything that can be checked without a signing key, in an order that makes each refusal precise:
 * algorithm, key id, version, tenant, audience, lifetime (with the skew), then the claims a `Caller`
 * needs. The signature and the issuer (which needs the discovery document) come after.
 */
export function inspect (header: Claims, payload: Claims, policy: TokenPolicy, nowMs: number): Inspected {
  if (header.alg !== ALGORITHM) throw new TokenAlgorithmNotAllowed(shown(header.alg ?? 'no alg'))
  const kid = header.kid
  if (typeof kid !== 'string' || kid === '') throw new TokenMalformed('its header has no kid')

  const version = payload.ver === '2.0' ? 2 : payload.ver === '1.0' ? 1 : undefined
  if (version === undefined) throw new TokenMalformed(`its ver claim is ${shown(payload.ver ?? 'missing')}, not "1.0" or "2.0"`)

  const tid = payload.tid
  if (typeof tid !== 'string' || !GUID.test(tid)) throw new TokenTenantInvalid(shown(tid ?? ''))
  if (!policy.allowedTenants.has(tid.toLowerCase())) throw new TokenTenantNotAllowed(tid)

  checkAudience(payload.aud, policy)
  checkLifetime(payload, policy.skewMs, nowMs)

  const iss = payload.iss
  if (typeof iss !== 'string' || iss === '') throw new TokenMalformed('it has no iss claim')
  return { version, kid, tid, iss, caller: toCaller(payload, version, tid.toLowerCase()) }
}

function checkAudience (aud: unknown, policy: TokenPolicy): void {
  const values = Array.isArray(aud) ? aud : [aud]
  if (values.some(a => typeof a === 'string' && policy.audiences.has(normalizeAudience(a)))) return
  throw new TokenAudienceInvalid(shown(aud ?? ''), [...policy.audiences].join(', '))
}

function checkLifetime (payload: Claims, skewMs: number, nowMs: number): void {
  const { exp, nbf } = payload
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw new TokenMalformed('it has no numeric exp claim')
  if (nowMs > exp * 1000 + skewMs) throw new TokenExpired(new Date(exp * 1000).toISOString())
  if (nbf !== undefined) {
    if (typeof nbf !== 'number' || !Number.isFinite(nbf)) throw new TokenMalformed('its nbf claim is not a number')
    if (nowMs < nbf * 1000 - skewMs) throw new TokenNotYetValid(new Date(nbf * 1000).toISOString())
  }
}

const PLACEHOLDER = /\{tenantid\}/i
const PLACEHOLDERS = /\{tenantid\}/gi

/**
 * The issuer template of a discovery document, always with a `{tenantid}` placeholder. Multi-tenant
 * documents carry it; a tenant's own document carries its GUID, which is turned back into the placeholder
 * so that every allowed tenant gets the same issuer shape with its own id (§1.6 step 3). A document whose
 * issuer names neither is not Entra's, and is refused.
 */
export function issuerTemplate (docIssuer: string, homeTid: string): string {
  if (PLACEHOLDER.test(docIssuer)) return docIssuer.replace(PLACEHOLDERS, '{tenantid}')
  const at = docIssuer.toLowerCase().indexOf(homeTid.toLowerCase())
  if (at < 0) throw new Error(`the discovery document's issuer ${shown(docIssuer)} names neither {tenantid} nor tenant ${homeTid}`)
  return `${docIssuer.slice(0, at)}{tenantid}${docIssuer.slice(at + homeTid.length)}`
}

export const substituteTenant = (template: string, tid: string): string => template.replace(PLACEHOLDERS, tid)

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')

/**
 * §1.6 steps 2–3: the issuer must be exactly the template with the token's `tid`. An issuer of the
 * authority's shape that names another tenant is a tenant mismatch; anything else is a wrong issuer.
 */
export function checkIssuer (iss: string, tid: string, template: string): void {
  const expected = substituteTenant(template, tid)
  if (iss === expected) return
  const shape = new RegExp(`^${template.split('{tenantid}').map(escapeRegExp).join('([^/]+)')}$`)
  const named = shape.exec(iss)?.[1]
  if (named !== undefined && named.toLowerCase() !== tid.toLowerCase()) throw new TokenTenantMismatch(shown(named), tid)
  throw new TokenIssuerInvalid(shown(iss), expected)
}

/**
 * §1.6 step 4: a key that names an issuer (a template or an exact issuer) signs only for that issuer.
 * Keys without one (Entra's v1 key set) are bound by the key set they come from.
 */
export function checkKeyIssuer (keyIssuer: string | undefined, iss: string, tid: string): void {
  if (keyIssuer === undefined) return
  const expected = substituteTenant(keyIssuer, tid)
  if (expected !== iss) throw new TokenIssuerInvalid(shown(iss), `${expected}, the issuer its signing key is published for`)
}

const strings = (value: unknown): string[] | undefined =>
  Array.isArray(value) && value.every(v => typeof v === 'string') ? [...value] as string[] : undefined

const text = (value: unknown): string | undefined => typeof value === 'string' && value !== '' ? value : undefined

/**
 * Users (delegated tokens) and service principals (app-only tokens) alike. `idtyp` decides when the API
 * enabled that optional claim; otherwise `scp` marks a delegated token, and `roles` without `scp` (or an
 * `oid` equal to `sub`, which only app tokens have) an app-only one. A token that is neither is refused.
 */
export function toCaller (payload: Claims, version: TokenVersion, tenantId: string): Caller {
  const oid = payload.oid
  if (typeof oid !== 'string' || !GUID.test(oid)) throw new TokenMalformed('its oid claim is not an object id')
  const appId = version === 2 ? text(payload.azp) ?? text(payload.appid) : text(payload.appid) ?? text(payload.azp)
  if (appId === undefined) throw new TokenMalformed(`it names no client application (${version === 2 ? 'azp' : 'appid'})`)

  const scp = text(payload.scp)
  const roles = strings(payload.roles) ?? []
  let kind: Caller['kind']
  if (payload.idtyp === 'app') kind = 'servicePrincipal'
  else if (payload.idtyp === 'user' || scp !== undefined) kind = 'user'
  else if (roles.length > 0 || payload.sub === oid) kind = 'servicePrincipal'
  else throw new TokenMalformed('it is neither a delegated token (scp) nor an app-only token (idtyp, roles)')

  const caller: Caller = {
    tenantId,
    oid: oid.toLowerCase(),
    kind,
    appId: appId.toLowerCase(),
    roles,
    scopes: kind === 'user' && scp !== undefined ? scp.split(/\s+/).filter(s => s !== '') : [],
    expiresAt: (payload.exp as number) * 1000
  }
  if (kind === 'user') {
    const upn = text(payload.upn) ?? text(payload.preferred_username) ?? text(payload.unique_name)
    if (upn !== undefined) caller.upn = upn
  }
  const name = text(payload.name)
  if (name !== undefined) caller.name = name
  const groups = completeGroups(payload)
  if (groups !== undefined) caller.groupsClaim = groups
  return caller
}

/**
 * The `groups` claim only when it is complete. Above 200 groups Entra drops it and points
 * `_claim_names.groups` at `_claim_sources` (a legacy Azure AD Graph URL that is never followed here);
 * `hasgroups` says the same for implicit-flow tokens. Then only Microsoft Graph knows the groups.
 */
function completeGroups (payload: Claims): string[] | undefined {
  const names = payload._claim_names
  const overage = (typeof names === 'object' && names !== null && 'groups' in names) || payload.hasgroups === true
  if (overage) return undefined
  return strings(payload.groups)?.map(g => g.toLowerCase())
}
