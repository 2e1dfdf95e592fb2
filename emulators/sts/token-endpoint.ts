// The token endpoint: `POST /{tenant}/oauth2/v2.0/token` (scope=) and the v1 `POST /{tenant}/oauth2/token`
// (resource=), form-encoded. Grants: client_credentials (secret in the body or HTTP Basic, or a
// certificate client assertion) and password (ROPC, for demo users). Unknown parameters (msal's x-client-*,
// telemetry, claims, client_info…) are ignored. Errors are StsErrors, turned into AADSTS bodies by the
// plugin's error handler.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { EmulatorContext } from '../context.ts'
import { findTenant } from '../context.ts'
import type { Application, Directory, User } from '../tenant/model.ts'
import { errors } from './errors.ts'
import { authenticateClient, parseBasic } from './client-auth.ts'
import { appOnlyClaims, delegatedClaims, pairwiseSub, signAccessToken, tokenLifetime, type ClientAuth, type Version } from './mint.ts'
import { findApplication, findResource, parseScope, type Resource } from './resources.ts'
import { v2Issuer } from './issuers.ts'

const MULTI_TENANT = new Set(['common', 'organizations'])
const GRANTS = new Set(['client_credentials', 'password'])

/** Form fields, first value of each; anything that is not a form body reads as no fields at all. */
export function formParams (body: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  if (typeof body !== 'object' || body === null) return out
  for (const [k, v] of Object.entries(body)) {
    const first = Array.isArray(v) ? v[0] : v
    if (typeof first === 'string') out[k] = first
  }
  return out
}

/** The correlation id Entra echoes: the `client-request-id` header, else the same-named form field. */
export function correlationOf (request: FastifyRequest): string | undefined {
  const header = request.headers['client-request-id']
  if (typeof header === 'string' && header !== '') return header
  const field = formParams(request.body)['client-request-id']
  return field !== undefined && field !== '' ? field : undefined
}

const required = (params: Record<string, string>, name: string): string => {
  const v = params[name]
  if (v === undefined || v === '') throw errors.missingParameter(name)
  return v
}

interface Resolved {
  tenant: Directory
  app: Application
  acr: ClientAuth
}

export async function tokenRoutes (app: FastifyInstance, { ctx }: { ctx: EmulatorContext }): Promise<void> {
  for (const version of [2, 1] as const) {
    const path = version === 2 ? '/:tenant/oauth2/v2.0/token' : '/:tenant/oauth2/token'
    app.post<{ Params: { tenant: string } }>(path, async (request, reply) => await token(ctx, version, request, reply))
    // Entra answers a GET on its token endpoint with AADSTS900561.
    app.get<{ Params: { tenant: string } }>(path, async (request) => { throw errors.methodNotAllowed(request.method) })
  }
}

async function token (ctx: EmulatorContext, endpoint: Version, request: FastifyRequest<{ Params: { tenant: string } }>, reply: FastifyReply): Promise<unknown> {
  const params = formParams(request.body)
  const correlation = correlationOf(request)
  if (correlation !== undefined) reply.header('client-request-id', correlation)
  const segment = request.params.tenant
  const multi = MULTI_TENANT.has(segment.toLowerCase())
  let tenant = multi ? undefined : findTenant(ctx, segment)
  if (!multi && tenant === undefined) throw errors.tenantNotFound(segment)

  const grant = required(params, 'grant_type')
  if (!GRANTS.has(grant)) throw errors.unsupportedGrant(grant)
  const basic = parseBasic(request.headers.authorization)
  const clientId = params.client_id ?? basic?.clientId
  if (clientId === undefined || clientId === '') throw errors.missingParameter('client_id')
  if (basic !== undefined && params.client_id !== undefined && basic.clientId.toLowerCase() !== params.client_id.toLowerCase()) {
    throw errors.malformed('client_id in the body and in the Authorization header differ.')
  }

  let user: User | undefined
  if (grant === 'password') {
    const username = required(params, 'username')
    required(params, 'password')
    // On common/organizations the user's UPN suffix names the home tenant.
    if (tenant === undefined) {
      const domain = username.slice(username.lastIndexOf('@') + 1)
      tenant = findTenant(ctx, domain)
      if (tenant === undefined) throw errors.userNotFound(segment)
    }
    user = tenant.user(username)
    if (user !== undefined && user.userPrincipalName.toLowerCase() !== username.toLowerCase()) user = undefined // an object id is no username
  } else if (tenant === undefined) {
    throw errors.noTenant()
  }

  const resolved = await resolveClient(ctx, tenant, clientId, params, basic?.secret, segment, grant === 'client_credentials')
  const resource = resourceOf(ctx, resolved.tenant, endpoint, grant, params)
  const lifetime = tokenLifetime(ctx)

  if (grant === 'client_credentials') {
    const sp = resolved.tenant.servicePrincipalByAppId(resolved.app.appId)
    if (sp === undefined) throw errors.appNotFound(clientId, resolved.tenant.displayName)
    const claims = appOnlyClaims(ctx, { tenant: resolved.tenant, resource: resource.resource, sp, roles: resolved.app.roles, acr: resolved.acr, lifetime })
    return await send(reply, endpoint, resource.resource, await signAccessToken(ctx, claims), lifetime, ctx.clock.nowSeconds())
  }

  // The password grant, in Entra's order: unknown user, disabled account, wrong password.
  if (user === undefined) throw errors.userNotFound(resolved.tenant.tenantId)
  if (!user.accountEnabled) throw errors.userDisabled()
  if (user.password === undefined || user.password !== params.password) throw errors.badPassword()
  const scp = resource.names.length === 0 || resource.names.some(n => n.toLowerCase() === '.default')
    ? resource.resource.defaultScope
    : [...new Set(resource.names)].join(' ')
  const claims = delegatedClaims(ctx, { tenant: resolved.tenant, resource: resource.resource, user, clientAppId: resolved.app.appId, acr: resolved.acr, scp, lifetime })
  const now = ctx.clock.nowSeconds()
  // v2 names the granted scopes with their resource (Graph's bare, as Entra does); v1 just the scp.
  const extra: Record<string, unknown> = {
    scope: endpoint === 1
      ? scp
      : [...scp.split(' ').map(s => resource.resource.kind === 'graph' ? s : `${resource.resource.identifier.replace(/\/+$/, '')}/${s}`), ...resource.oidc].join(' ')
  }
  if (endpoint === 2 && resource.oidc.some(s => s.toLowerCase() === 'openid')) {
    // Enough of an id token and client_info for msal's public-client ROPC to build an account.
    extra.id_token = await signAccessToken(ctx, {
      aud: resolved.app.appId,
      iss: v2Issuer(ctx.origin, resolved.tenant.tenantId),
      iat: now,
      nbf: now,
      exp: now + 3600,
      name: user.displayName,
      oid: user.id,
      preferred_username: user.userPrincipalName,
      sub: pairwiseSub(user.id, resolved.app.appId),
      tid: resolved.tenant.tenantId,
      ver: '2.0'
    })
    if (params.client_info === '1') extra.client_info = Buffer.from(JSON.stringify({ uid: user.id, utid: resolved.tenant.tenantId })).toString('base64url')
  }
  return await send(reply, endpoint, resource.resource, await signAccessToken(ctx, claims), lifetime, now, extra)
}

async function resolveClient (ctx: EmulatorContext, tenant: Directory, clientId: string, params: Record<string, string>, basicSecret: string | undefined,
  segment: string, confidential: boolean): Promise<Resolved> {
  const app = findApplication(ctx, tenant, clientId)
  if (app === undefined) throw errors.appNotFound(clientId, tenant.displayName)
  const sp = tenant.servicePrincipalByAppId(app.appId)
  if (sp !== undefined && !sp.accountEnabled) throw errors.appDisabled(app.appId, sp.displayName)
  // An assertion's `aud` may name this token endpoint by tenant id, domain or the path segment used, in
  // the v2 or the v1 form.
  const audiences = [...new Set([segment, tenant.tenantId, tenant.domain])]
    .flatMap(s => [`${ctx.origin}/${s}/oauth2/v2.0/token`, `${ctx.origin}/${s}/oauth2/token`])
  const acr = await authenticateClient(ctx, app, {
    secret: params.client_secret ?? basicSecret,
    assertion: params.client_assertion,
    assertionType: params.client_assertion_type
  }, { audiences }, confidential)
  return { tenant, app, acr }
}

function resourceOf (ctx: EmulatorContext, tenant: Directory, endpoint: Version, grant: string, params: Record<string, string>): { resource: Resource, names: string[], oidc: string[] } {
  let identifier: string
  let names: string[] = []
  let oidc: string[] = []
  if (endpoint === 1) {
    // v1 names the resource directly; a `scope` (openid…) alongside is ignored.
    identifier = required(params, 'resource')
  } else {
    const scope = params.scope
    if (scope === undefined || scope.trim() === '') throw errors.missingScope()
    const parsed = parseScope(scope)
    if (parsed === 'many') throw errors.multipleResources(scope)
    if (grant === 'client_credentials') {
      // Exactly one `X/.default`, nothing else.
      if (parsed === undefined) throw errors.invalidScope(scope)
      if (parsed.oidc.length > 0 || parsed.names.some(n => n.toLowerCase() !== '.default')) throw errors.scopeNotDefault(scope)
      identifier = parsed.resource
    } else if (parsed === undefined) {
      // Only OIDC scopes: Entra issues a Graph token, as for `openid profile` sign-ins.
      identifier = 'https://graph.microsoft.com'
      oidc = scope.split(/\s+/).filter(s => s !== '')
    } else {
      identifier = parsed.resource
      names = parsed.names
      oidc = parsed.oidc
    }
  }
  const resource = findResource(ctx, tenant, identifier)
  if (resource === undefined) throw errors.resourceNotFound(identifier, tenant.displayName)
  return { resource, names, oidc }
}

async function send (reply: FastifyReply, endpoint: Version, resource: Resource, accessToken: string, lifetime: number, now: number, extra: Record<string, unknown> = {}): Promise<unknown> {
  reply.headers({ 'cache-control': 'no-store, no-cache', pragma: 'no-cache' })
  // `refresh_in` is left out: whether Entra sends it for these grants is unconfirmed (spec §7), and msal
  // then simply keeps the token until 5 minutes before `expires_in`.
  if (endpoint === 2) {
    const { scope, ...rest } = extra
    return await reply.send({
      token_type: 'Bearer',
      ...(scope !== undefined ? { scope } : {}),
      expires_in: lifetime,
      ext_expires_in: lifetime,
      access_token: accessToken,
      ...rest
    })
  }
  // v1 answers with numbers as strings, plus expires_on/not_before and the resource (spec §1.1 [MEM]).
  return await reply.send({
    token_type: 'Bearer',
    ...(extra.scope !== undefined ? { scope: extra.scope } : {}),
    expires_in: String(lifetime),
    ext_expires_in: String(lifetime),
    expires_on: String(now + lifetime),
    not_before: String(now),
    resource: resource.identifier,
    access_token: accessToken
  })
}
