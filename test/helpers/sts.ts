// Shared by the STS tests (not a test itself): a fixture with the extra pieces the STS tests need, form
// POSTs to the token endpoint, an AADSTS-body checker and a validator that does what §1.6 of the spec
// asks of a resource (discovery by `ver`, issuer template substitution, GUID `tid`, remote JWKS).
import type { Test } from 'tap'
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload, type JWTVerifyResult } from 'jose'
import { smallTenant, T } from './tenant.ts'
import type { TenantFixture } from '../../emulators/tenant/model.ts'

export { T }

export const X = {
  /** Alice's friend with 200 security groups (the limit) and one with 201 (overage). */
  twoHundred: 'a0000000-0000-4000-8000-000000000200',
  twoHundredOne: 'a0000000-0000-4000-8000-000000000201',
  /** A resource API whose tokens carry every group (distribution lists too), v1. */
  allGroupsAppId: 'c0000000-0000-4000-8000-0000000000a1',
  allGroupsUri: 'api://all-groups.contoso-test.example',
  /** A resource API that wants no groups claim. */
  noGroupsAppId: 'c0000000-0000-4000-8000-0000000000a2',
  /** A public client (no secret): the password grant needs none. */
  publicClientAppId: 'c0000000-0000-4000-8000-0000000000a3',
  /** A second tenant, for multi-tenant checks. */
  otherTenantId: T.otherTenantId,
  otherDomain: 'fabrikam-test.onmicrosoft.com'
} as const

const groupId = (i: number): string => `e0000000-0000-4000-8000-${String(i).padStart(12, '0')}`

/**
 * smallTenant plus: 201 flat security groups (the 200-group user is in the first 200, the 201-group user in
 * all), apps with `All` / `None` group claims, a public client, and optionally client certificates.
 */
export function stsTenant (opts: { certificates?: string[] } = {}): TenantFixture {
  const base = smallTenant()
  const extraGroups = Array.from({ length: 201 }, (_, i) => ({
    id: groupId(i + 1),
    displayName: `Bulk ${i + 1}`,
    members: i < 200 ? [X.twoHundred, X.twoHundredOne] : [X.twoHundredOne]
  }))
  return {
    ...base,
    users: [
      ...base.users,
      { id: X.twoHundred, userPrincipalName: 'many200@contoso-test.onmicrosoft.com', displayName: 'Two Hundred', password: T.password },
      { id: X.twoHundredOne, userPrincipalName: 'many201@contoso-test.onmicrosoft.com', displayName: 'Two Hundred One', password: T.password }
    ],
    groups: [...base.groups, ...extraGroups],
    applications: [
      ...base.applications.map(a => a.appId === T.etlAppId && opts.certificates !== undefined ? { ...a, certificates: opts.certificates } : a),
      { appId: X.allGroupsAppId, displayName: 'All groups API', roles: [], identifierUris: [X.allGroupsUri], groupMembershipClaims: 'All' },
      { appId: X.noGroupsAppId, displayName: 'No groups API', roles: [], groupMembershipClaims: 'None', accessTokenAcceptedVersion: 2 },
      { appId: X.publicClientAppId, displayName: 'Public client', roles: [] }
    ]
  }
}

export function otherTenant (): TenantFixture {
  return {
    tenantId: X.otherTenantId,
    domain: X.otherDomain,
    users: [{ id: 'a0000000-0000-4000-8000-00000000f001', userPrincipalName: 'fred@fabrikam-test.onmicrosoft.com', displayName: 'Fred', password: T.password }],
    servicePrincipals: [],
    groups: [],
    applications: [{ appId: 'c0000000-0000-4000-8000-00000000f001', secret: 'fabrikam-secret', roles: [] }]
  }
}

export interface TokenResponse {
  status: number
  headers: Headers
  body: Record<string, unknown>
}

/** POSTs a form to `{origin}/{tenant}/oauth2/v2.0/token` (or the v1 path). */
export async function postToken (origin: string, tenant: string, form: Record<string, string>, opts: { v1?: boolean, headers?: Record<string, string> } = {}): Promise<TokenResponse> {
  const res = await fetch(`${origin}/${tenant}/oauth2/${opts.v1 === true ? '' : 'v2.0/'}token`, {
    method: 'POST',
    body: new URLSearchParams(form),
    headers: opts.headers
  })
  return { status: res.status, headers: res.headers, body: await res.json() as Record<string, unknown> }
}

export async function accessToken (origin: string, tenant: string, form: Record<string, string>, opts: { v1?: boolean } = {}): Promise<{ token: string, claims: JWTPayload & Record<string, unknown> }> {
  const res = await postToken(origin, tenant, form, opts)
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${JSON.stringify(res.body)}`)
  const token = res.body.access_token as string
  return { token, claims: decodeJwt(token) }
}

export function header (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString()) as Record<string, unknown>
}

const ERROR_FIELDS = ['correlation_id', 'error', 'error_codes', 'error_description', 'error_uri', 'timestamp', 'trace_id']

/** Asserts an AADSTS error: status, `error`, code, and the exact field set and formats msal reads. */
export function assertAadsts (t: Test, res: TokenResponse, status: number, error: string, code: number, correlationId?: string): void {
  t.equal(res.status, status, `HTTP ${status}`)
  t.same(Object.keys(res.body).sort(), ERROR_FIELDS, 'exactly the AADSTS error fields')
  t.equal(res.body.error, error)
  t.same(res.body.error_codes, [code])
  const description = String(res.body.error_description)
  t.match(description, new RegExp(`^AADSTS${code}: .+\\r\\nTrace ID: [0-9a-f-]{36}\\r\\nCorrelation ID: [^\\r\\n]+\\r\\nTimestamp: \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$`, 's'))
  t.match(res.body.timestamp, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/)
  t.match(res.body.trace_id, /^[0-9a-f-]{36}$/)
  t.match(res.body.error_uri, new RegExp(`/error\\?code=${code}$`))
  t.ok(description.includes(`Trace ID: ${String(res.body.trace_id)}`), 'trace id in the description')
  t.ok(description.includes(`Correlation ID: ${String(res.body.correlation_id)}`), 'correlation id in the description')
  if (correlationId !== undefined) t.equal(res.body.correlation_id, correlationId, 'correlation id echoes client-request-id')
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * A multi-tenant validator as §1.6 describes it: the discovery document by `ver` (`common`), its issuer
 * template with the token's `tid`, a GUID `tid`, the remote JWKS from `jwks_uri` (fresh unless given).
 */
export async function validate (origin: string, token: string, audience: string, jwks?: ReturnType<typeof createRemoteJWKSet>): Promise<JWTVerifyResult> {
  const unverified = decodeJwt(token)
  const doc = await (await fetch(`${origin}/common/${unverified.ver === '1.0' ? '' : 'v2.0/'}.well-known/openid-configuration`)).json() as { issuer: string, jwks_uri: string }
  const tid = String(unverified.tid)
  if (!GUID.test(tid)) throw Object.assign(new Error('tid is not a GUID'), { code: 'TID_NOT_GUID' })
  const issuer = doc.issuer.replace('{tenantid}', tid)
  return await jwtVerify(token, jwks ?? createRemoteJWKSet(new URL(doc.jwks_uri)), { issuer, audience, algorithms: ['RS256'] })
}
