// The STS part of the control API (loopback only): a token factory that mints a token for any user or
// service principal, optionally broken in one of the ways a validator must reject, and scripted signing-key
// rotation. Errors are the control API's JSON `{ error: { code, message } }`.
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { EmulatorContext } from '../context.ts'
import { findTenant } from '../context.ts'
import { derivedGuid } from '../tenant/model.ts'
import { loopbackOnly } from '../control/loopback.ts'
import { BREAKS, breakClaims, signBroken } from './breaks.ts'
import { appOnlyClaims, delegatedClaims, groupClaims, withOverrides, type Claims } from './mint.ts'
import { findApplication, findResource } from './resources.ts'

export class ControlError extends Error {
  constructor (readonly status: number, readonly code: string, message: string) {
    super(message)
  }
}

export const TokenRequestSchema = Type.Object({
  /** Tenant GUID or verified domain; default: the primary tenant. */
  tenantId: Type.Optional(Type.String({ minLength: 1 })),
  /** A user (object id or UPN) or a service principal (object id or appId). */
  principalId: Type.String({ minLength: 1 }),
  /**
   * The resource, named as a client would in a scope: Graph's URL or app id, Azure Databricks' app id, an
   * application's appId or App ID URI. Default: the tenant's first application that has an App ID URI (the
   * API under test, by convention), by that URI.
   */
  audience: Type.Optional(Type.String({ minLength: 1 })),
  /** Token version; default: what the resource accepts. */
  version: Type.Optional(Type.Union([Type.Literal(1), Type.Literal(2)])),
  /** For user tokens: the client application (`appid`/`azp`). Default: the audience application, else the tenant's first application. */
  clientId: Type.Optional(Type.String({ minLength: 1 })),
  /** For user tokens: the `scp` claim. Default: `user_impersonation` (Graph: `User.Read`). */
  scp: Type.Optional(Type.String()),
  /** Claims merged last; a claim set to null is removed. */
  claims: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  /** Force the `groups` claim on or off; default: as the token endpoint would (users: per the resource; apps: none). */
  groups: Type.Optional(Type.Boolean()),
  break: Type.Optional(Type.Union(BREAKS.map(b => Type.Literal(b))))
}, { additionalProperties: false })

export async function controlStsRoutes (parent: FastifyInstance, { ctx }: { ctx: EmulatorContext }): Promise<void> {
  await parent.register(async (app) => {
    app.addHook('onRequest', loopbackOnly)
    app.setErrorHandler(async (err, _request, reply) => {
      if (err instanceof ControlError) return await reply.code(err.status).send({ error: { code: err.code, message: err.message } })
      const status = (err as { statusCode?: number }).statusCode ?? 500
      const client = status >= 400 && status < 500
      return await reply.code(client ? status : 500).send({ error: { code: client ? 'invalid-request' : 'internal', message: (err as Error).message } })
    })
    const r = app.withTypeProvider<TypeBoxTypeProvider>()

    r.post('/_emulator/tokens', { schema: { body: TokenRequestSchema } }, async (request) => {
      const body = request.body
      const tenant = findTenant(ctx, body.tenantId ?? ctx.primaryTenantId)
      if (tenant === undefined) throw new ControlError(404, 'not-found', `tenant '${body.tenantId ?? ''}' is not loaded`)
      const user = tenant.user(body.principalId)
      const sp = user === undefined
        ? tenant.servicePrincipals.get(body.principalId.toLowerCase()) ?? tenant.servicePrincipalByAppId(body.principalId)
        : undefined
      if (user === undefined && sp === undefined) throw new ControlError(404, 'not-found', `no user or service principal '${body.principalId}' in tenant ${tenant.tenantId}`)

      const audience = body.audience ?? [...tenant.applications.values()].find(a => (a.identifierUris ?? []).length > 0)?.identifierUris?.[0]
      if (audience === undefined) throw new ControlError(400, 'invalid-request', `tenant ${tenant.tenantId} has no application with an App ID URI: give an audience`)
      const resource = findResource(ctx, tenant, audience)
      if (resource === undefined) throw new ControlError(400, 'invalid-request', `audience '${audience}' is neither Graph, Azure Databricks nor an application of tenant ${tenant.tenantId}`)
      const version = body.version ?? resource.version

      let claims: Claims
      if (user !== undefined) {
        const clientAppId = body.clientId ?? (resource.kind === 'app' ? resource.appId : [...tenant.applications.keys()][0] ?? derivedGuid(`client:${tenant.tenantId}`))
        claims = delegatedClaims(ctx, { tenant, resource, user, clientAppId, acr: '1', scp: body.scp ?? resource.defaultScope, groups: body.groups, version })
      } else {
        const principal = sp as NonNullable<typeof sp>
        const roles = findApplication(ctx, tenant, principal.appId)?.roles ?? []
        claims = appOnlyClaims(ctx, { tenant, resource, sp: principal, roles, acr: '1', version })
        if (body.groups === true) Object.assign(claims, groupClaims(tenant, principal.id, resource, true))
      }
      claims = withOverrides(breakClaims(ctx, claims, version, body.break), body.claims)
      return { access_token: await signBroken(ctx, claims, body.break), claims }
    })

    r.get('/_emulator/keys', async () => ({
      signing: ctx.keys.current.kid,
      keys: ctx.keys.published.map(k => ({ kid: k.kid, state: k.state }))
    }))
    r.post('/_emulator/keys/publish', async () => {
      const key = await ctx.keys.publishNext()
      return { kid: key.kid, state: key.state }
    })
    r.post('/_emulator/keys/switch', async () => {
      if (!ctx.keys.published.some(k => k.state === 'next')) throw new ControlError(409, 'conflict', 'no next key is published: POST /_emulator/keys/publish first')
      const key = ctx.keys.switchToNext()
      return { kid: key.kid, state: key.state }
    })
    r.post('/_emulator/keys/retire', async () => ({ retired: ctx.keys.retirePrevious().map(k => k.kid) }))
  })
}
