// Who is calling: what a verified Entra access token says, for users and service principals alike.
export type PrincipalKind = 'user' | 'servicePrincipal'

export interface Caller {
  tenantId: string
  /** Entra object id of the user or service principal. */
  oid: string
  kind: PrincipalKind
  /** The client application the token was issued to (`appid` in v1, `azp` in v2). */
  appId: string
  /** User principal name (users only; display, never authorization). */
  upn?: string
  name?: string
  /** App roles granted to the caller for this service (e.g. `Identity.Admin`). */
  roles: string[]
  /** Delegated scopes (users only). */
  scopes: string[]
  /**
   * The token's `groups` claim when it was present and complete; undefined when absent or overaged
   * (then only Microsoft Graph knows the groups).
   */
  groupsClaim?: string[]
  /** Token expiry, ms since the epoch: caches keyed by this caller never outlive it. */
  expiresAt: number
}
