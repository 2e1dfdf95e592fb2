// OpenID discovery (v2 and v1) and the signing-key documents, per tenant GUID, verified domain, `common` and
// `organizations`, shaped field for field like Entra's captured documents (spec §1.2–§1.4) with the
// emulator's origin in place of https://login.microsoftonline.com.
import type { FastifyInstance } from 'fastify'
import type { EmulatorContext } from '../context.ts'
import { findTenant } from '../context.ts'
import { errors } from './errors.ts'
import { v1Issuer, v2Issuer } from './issuers.ts'

const MULTI_TENANT = new Set(['common', 'organizations'])

/**
 * Cache-Control of the discovery and key documents. Entra's exact header is unconfirmed (spec §7);
 * a day, private, is plausible and lets clients exercise their own refresh logic.
 */
const CACHE_CONTROL = 'max-age=86400, private'

/**
 * The path segment a document is built for: a tenant's GUID (a domain resolves to it), or `common` /
 * `organizations` as given. Anything else is AADSTS90002 `invalid_tenant`.
 */
export function resolveSegment (ctx: EmulatorContext, segment: string): { segment: string, tid?: string } {
  const lower = segment.toLowerCase()
  if (MULTI_TENANT.has(lower)) return { segment: lower }
  const tenant = findTenant(ctx, segment)
  if (tenant === undefined) throw errors.tenantNotFound(segment, 'invalid_tenant')
  return { segment: tenant.tenantId, tid: tenant.tenantId }
}

export function v2Document (origin: string, segment: string, tid: string | undefined): Record<string, unknown> {
  const base = `${origin}/${segment}`
  return {
    token_endpoint: `${base}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${base}/discovery/v2.0/keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    issuer: v2Issuer(origin, tid ?? '{tenantid}'),
    request_uri_parameter_supported: false,
    userinfo_endpoint: 'https://graph.microsoft.com/oidc/userinfo',
    authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${base}/oauth2/v2.0/logout`,
    claims_supported: ['sub', 'iss', 'cloud_instance_name', 'cloud_instance_host_name', 'cloud_graph_host_name', 'msgraph_host',
      'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'preferred_username', 'name', 'tid', 'ver', 'at_hash', 'c_hash', 'email'],
    ...cloudFields(base, tid)
  }
}

export function v1Document (origin: string, segment: string, tid: string | undefined): Record<string, unknown> {
  const base = `${origin}/${segment}`
  return {
    token_endpoint: `${base}/oauth2/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    // Captured v1 documents (tenant and common) name the common keys endpoint (spec §1.1/§7).
    jwks_uri: `${origin}/common/discovery/keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'token id_token', 'token'],
    scopes_supported: ['openid'],
    issuer: v1Issuer(tid ?? '{tenantid}'),
    microsoft_multi_refresh_token: true,
    authorization_endpoint: `${base}/oauth2/authorize`,
    device_authorization_endpoint: `${base}/oauth2/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${base}/oauth2/logout`,
    claims_supported: ['sub', 'iss', 'cloud_instance_name', 'cloud_instance_host_name', 'cloud_graph_host_name', 'msgraph_host',
      'aud', 'exp', 'iat', 'auth_time', 'acr', 'amr', 'nonce', 'email', 'given_name', 'family_name', 'nickname'],
    check_session_iframe: `${base}/oauth2/checksession`,
    userinfo_endpoint: `${base}/openid/userinfo`,
    ...cloudFields(base, tid)
  }
}

/**
 * The published keys. The v2 endpoint gives every key the template issuer `{origin}/{tenantid}/v2.0` (as
 * Entra's common and tenant v2 key sets do); the v1 endpoint gives none, as the captured v1 key sets have
 * none and v1 issuers (sts.windows.net) could not match a v2 template anyway.
 */
export function keysDocument (ctx: EmulatorContext, version: 1 | 2): { keys: Array<Record<string, unknown>> } {
  return {
    keys: ctx.keys.published.map(k => version === 2 ? { ...k.jwk, issuer: v2Issuer(ctx.origin, '{tenantid}') } : { ...k.jwk })
  }
}

export async function discoveryRoutes (app: FastifyInstance, { ctx }: { ctx: EmulatorContext }): Promise<void> {
  const documentHeaders = { 'cache-control': CACHE_CONTROL, 'access-control-allow-origin': '*' }

  app.get<{ Params: { tenant: string } }>('/:tenant/v2.0/.well-known/openid-configuration', async (request, reply) => {
    const { segment, tid } = resolveSegment(ctx, request.params.tenant)
    return await reply.headers(documentHeaders).send(v2Document(ctx.origin, segment, tid))
  })

  app.get<{ Params: { tenant: string } }>('/:tenant/.well-known/openid-configuration', async (request, reply) => {
    const { segment, tid } = resolveSegment(ctx, request.params.tenant)
    return await reply.headers(documentHeaders).send(v1Document(ctx.origin, segment, tid))
  })

  // `?appid=` (app-specific signing keys) is accepted and ignored: no app here has custom signing keys.
  app.get<{ Params: { tenant: string } }>('/:tenant/discovery/v2.0/keys', async (request, reply) => {
    resolveSegment(ctx, request.params.tenant)
    return await reply.headers(documentHeaders).send(keysDocument(ctx, 2))
  })

  app.get<{ Params: { tenant: string } }>('/:tenant/discovery/keys', async (request, reply) => {
    resolveSegment(ctx, request.params.tenant)
    return await reply.headers(documentHeaders).send(keysDocument(ctx, 1))
  })
}

/** The fields the v1 and v2 documents share: the cloud instance, and the tenant's region. */
function cloudFields (base: string, tid: string | undefined): Record<string, unknown> {
  return {
    kerberos_endpoint: `${base}/kerberos`,
    // A region for tenants, null for the multi-tenant documents [UNCONF: the value real tenants carry].
    tenant_region_scope: tid === undefined ? null : 'WW',
    cloud_instance_name: 'microsoftonline.com',
    cloud_graph_host_name: 'graph.windows.net',
    msgraph_host: 'graph.microsoft.com',
    rbac_url: 'https://pas.windows.net'
  }
}
