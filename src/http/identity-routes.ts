// POST /v1/login (the login hook) and GET /v1/principals/{id} (administrators' look-up).
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Resolver } from '../resolver/resolver.ts'
import type { PrincipalQuery } from '../directory/port.ts'
import { LoginResult, Resolution, errorResponses, Problem } from './schemas.ts'
import { databricksBody, resolutionBody } from './resolution.ts'
import type { Materializer } from '../resolver/materializer.ts'
import { DatabricksNotConfigured, PrincipalDisabled } from '../resolver/errors.ts'
import { requireRole } from './authenticate.ts'

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export async function identityRoutes (parent: FastifyInstance, { resolver, materializer }: { resolver: Resolver, materializer?: Materializer }): Promise<void> {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>()

  app.post('/v1/login', {
    schema: {
      tags: ['identity'],
      summary: 'Resolve the signed-in caller: its principal and every group it belongs to.',
      description: 'Called by a login hook with the user\'s or service principal\'s Entra access token. With a Databricks account configured, the caller, its groups and their nesting are also materialized there.',
      security: [{ bearer: [] }],
      body: Type.Object({
        workspaceId: Type.Optional(Type.String({ pattern: '^[0-9]{1,20}$', description: 'Decide access to this workspace (the number in its URL, ?o=…).' }))
      }),
      response: { 200: LoginResult, 400: Problem, 404: Problem, 502: Problem, ...errorResponses }
    },
    // Authenticate first: a caller without a valid token learns nothing about the API's input rules.
    onRequest: app.authenticate,
    // A login hook may POST no body at all: that is an empty one.
    preValidation: async (request) => { request.body ??= {} }
  }, async (request) => {
    const caller = request.caller
    if (caller === undefined) throw new Error('authenticate did not set the caller')
    const workspaceId = request.body.workspaceId
    if (materializer === undefined) {
      if (workspaceId !== undefined) throw new DatabricksNotConfigured()
      return resolutionBody(await resolver.resolveCaller(caller))
    }
    // A disabled principal is still materialized, so Databricks deactivates it too, and then refused.
    const resolution = await resolver.resolveCaller(caller, { includeDisabled: true, groupNames: true })
    const materialized = await materializer.materialize(resolution)
    if (!resolution.principal.accountEnabled) throw new PrincipalDisabled(resolution.principal.id)
    return {
      ...resolutionBody(resolution),
      databricks: databricksBody(resolution, materialized),
      ...(workspaceId !== undefined ? { workspace: await materializer.workspaceAccess(workspaceId, resolution, materialized) } : {})
    }
  })

  app.get('/v1/principals/:id', {
    schema: {
      tags: ['identity'],
      summary: 'Look up any user, service principal or group and its transitive groups.',
      description: 'Needs the `Identity.Admin` app role. `id` is an object id or a user principal name; `by` names another key.',
      security: [{ bearer: [] }],
      params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 1024 }) }),
      querystring: Type.Object({
        by: Type.Optional(Type.Union([Type.Literal('id'), Type.Literal('userPrincipalName'), Type.Literal('mail'), Type.Literal('appId')], {
          description: 'What `id` is; default: an object id when it is a GUID, else a user principal name.'
        }))
      }),
      response: { 200: Resolution, 400: Problem, 404: Problem, ...errorResponses }
    },
    onRequest: app.authenticate,
    preHandler: requireRole('Identity.Admin')
  }, async (request) => {
    const { id } = request.params
    const by = request.query.by ?? (GUID.test(id) ? 'id' : 'userPrincipalName')
    const tenantId = request.caller?.tenantId ?? ''
    return resolutionBody(await resolver.resolve(tenantId, { [by]: id } as unknown as PrincipalQuery))
  })
}
