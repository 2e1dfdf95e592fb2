// Who a token is for (the resource) and who asks for it (the client application), looked up in the tenant
// the request names. Shared by the token endpoint and the control API's token factory.
import type { EmulatorContext } from '../context.ts'
import type { Application, Directory, GroupMembershipClaims } from '../tenant/model.ts'
import { DATABRICKS_APP_ID, GRAPH_APP_ID, GRAPH_RESOURCE } from './issuers.ts'

export interface Resource {
  kind: 'graph' | 'databricks' | 'app'
  /** The identifier exactly as the client used it: the v1 `aud`. */
  identifier: string
  /** The resource's application id: the v2 `aud`. */
  appId: string
  app?: Application
  /** Token version the resource accepts (Entra's accessTokenAcceptedVersion; Graph and Databricks take v1). */
  version: 1 | 2
  /** Which groups go into the `groups` claim of user tokens for it. */
  groupClaims: GroupMembershipClaims
  optionalClaims: string[]
  /** The `scp` a `.default` request for a user yields. */
  defaultScope: string
}

const trimSlash = (s: string): string => s.replace(/\/+$/, '')

/**
 * An application by app id, as seen from `tenant`: its own applications, or a multi-tenant application
 * registered in another loaded tenant that has a service principal here.
 */
export function findApplication (ctx: EmulatorContext, tenant: Directory, appId: string): Application | undefined {
  const own = tenant.application(appId)
  if (own !== undefined) return own
  if (tenant.servicePrincipalByAppId(appId) === undefined) return undefined
  for (const other of ctx.tenants.values()) {
    const app = other.application(appId)
    if (app !== undefined) return app
  }
  return undefined
}

/** Graph (URL or app id), Azure Databricks (app id), or an application by app id or App ID URI. */
export function findResource (ctx: EmulatorContext, tenant: Directory, identifier: string): Resource | undefined {
  const key = trimSlash(identifier).toLowerCase()
  if (key === '') return undefined
  if (key === GRAPH_RESOURCE || key === GRAPH_APP_ID) {
    return { kind: 'graph', identifier, appId: GRAPH_APP_ID, version: 1, groupClaims: 'None', optionalClaims: [], defaultScope: 'User.Read' }
  }
  if (key === DATABRICKS_APP_ID) {
    return { kind: 'databricks', identifier, appId: DATABRICKS_APP_ID, version: 1, groupClaims: 'None', optionalClaims: [], defaultScope: 'user_impersonation' }
  }
  let app = findApplication(ctx, tenant, key)
  if (app === undefined) {
    const candidates = [tenant, ...[...ctx.tenants.values()].filter(d => d !== tenant)]
    for (const d of candidates) {
      app = [...d.applications.values()].find(a => (a.identifierUris ?? []).some(u => trimSlash(u).toLowerCase() === key))
      if (app !== undefined && (d === tenant || tenant.servicePrincipalByAppId(app.appId) !== undefined)) break
      app = undefined
    }
  }
  if (app === undefined) return undefined
  return {
    kind: 'app',
    identifier,
    appId: app.appId,
    app,
    version: app.accessTokenAcceptedVersion ?? 1,
    groupClaims: app.groupMembershipClaims ?? 'SecurityGroup',
    optionalClaims: app.optionalClaims ?? [],
    defaultScope: 'user_impersonation'
  }
}

export interface ScopeRequest {
  resource: string
  /** Scope names on that resource (`.default` included as given). */
  names: string[]
  /** OpenID Connect scopes that were mixed in (`openid`, `profile`, `offline_access`, `email`). */
  oidc: string[]
}

const OIDC_SCOPES = new Set(['openid', 'profile', 'offline_access', 'email'])

/**
 * Splits a v2 `scope` parameter into its one resource and the scope names on it. A bare name
 * (`User.Read`) is a Graph scope, as in Entra. Returns 'many' when the scopes name two resources, and
 * undefined when no resource scope is left (only OIDC scopes, or nothing).
 */
export function parseScope (scope: string): ScopeRequest | 'many' | undefined {
  const tokens = scope.split(/\s+/).filter(s => s !== '')
  const oidc = tokens.filter(s => OIDC_SCOPES.has(s.toLowerCase()))
  let resource: string | undefined
  const names: string[] = []
  for (const token of tokens) {
    if (OIDC_SCOPES.has(token.toLowerCase())) continue
    const cut = token.lastIndexOf('/')
    const [r, name] = cut <= 0 ? [GRAPH_RESOURCE, token] : [token.slice(0, cut), token.slice(cut + 1)]
    if (resource !== undefined && trimSlash(resource).toLowerCase() !== trimSlash(r).toLowerCase()) return 'many'
    resource ??= r
    names.push(name)
  }
  if (resource === undefined) return undefined
  return { resource, names, oidc }
}
