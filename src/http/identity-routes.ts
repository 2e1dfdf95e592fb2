// POST /v1/login (the login hook) and GET /v1/principals/{id} (administrators' look-up).
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Resolver } from '../resolver/resolver.ts'
import { By, EXAMPLE, LoginResult, Name, Resolution, Strict, WorkspaceId, success } from './schemas.ts'
import { databricksBody, principalQuery, resolutionBody } from './resolution.ts'
import type { SignIns } from '../resolver/sign-in.ts'
import { DatabricksNotConfigured, PrincipalDisabled } from '../resolver/errors.ts'
import { requireRole } from './authenticate.ts'
import { ADMIN, BEARER, CALLER, DATABRICKS, JSON_BODY, LOOKUP, PARAMETERS, Problems as P, V1, problemResponses } from './problem-catalogue.ts'
import { writesOf } from './write-waits.ts'

/** Every problem POST /v1/login may answer with. */
const LOGIN_PROBLEMS = [...V1, ...BEARER, ...JSON_BODY, ...CALLER, P.DatabricksNotConfigured, ...DATABRICKS, P.WorkspaceNotFound]
/** Every problem GET /v1/principals/{id} may answer with. */
const PRINCIPAL_PROBLEMS = [...V1, ...BEARER, ...ADMIN, ...PARAMETERS, ...LOOKUP]

export async function identityRoutes (parent: FastifyInstance, { resolver, signIns }: { resolver: Resolver, signIns?: SignIns }): Promise<void> {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>()

  app.post('/v1/login', {
    schema: {
      tags: ['identity'],
      summary: 'Resolve the signed-in caller: its principal and every group it belongs to.',
      description: 'Called by a login hook with the user\'s or service principal\'s Entra access token. With a Databricks account configured, the caller, its groups and their nesting are also materialized there.',
      security: [{ bearer: [] }],
      body: Strict({
        workspaceId: Type.Optional(WorkspaceId)
      }, { description: 'May be empty, or absent. Every property not listed here is refused (400 UNKNOWN_PROPERTY).', examples: [{ workspaceId: EXAMPLE.workspaceId }] }),
      response: {
        200: success('The caller, its transitive groups and, with a Databricks account, where it now is there (and the decision for `workspaceId`).', LoginResult),
        ...problemResponses(LOGIN_PROBLEMS)
      }
    },
    // Authenticate first: a caller without a valid token learns nothing about the API's input rules.
    onRequest: app.authenticate,
    // A login hook may POST no body at all: that is an empty one.
    preValidation: async (request) => { request.body ??= {} }
  }, async (request) => {
    const caller = request.caller
    if (caller === undefined) throw new Error('authenticate did not set the caller')
    const workspaceId = request.body.workspaceId
    if (signIns === undefined) {
      if (workspaceId !== undefined) throw new DatabricksNotConfigured()
      return resolutionBody(await resolver.resolveCaller(caller))
    }
    // A disabled principal is still materialized, so Databricks deactivates it too, and then refused.
    const { resolution, materialized } = await signIns.signIn(caller, writesOf(request))
    if (!resolution.principal.accountEnabled) throw new PrincipalDisabled(resolution.principal.id)
    const { principal, groups, groupCount, groupsSource } = resolutionBody(resolution)
    // One shape (an absent workspace decision undefined, left out by the serializer), not spreads: such
    // objects serialize several times slower.
    return {
      principal,
      groups,
      groupCount,
      groupsSource,
      databricks: databricksBody(resolution, materialized),
      workspace: workspaceId !== undefined ? await signIns.workspaceAccess(workspaceId, resolution, materialized) : undefined
    }
  })

  app.get('/v1/principals/:id', {
    schema: {
      tags: ['identity'],
      summary: 'Look up any user, service principal or group and its transitive groups.',
      description: 'Needs the `Identity.Admin` app role. `id` is an object id or a user principal name; `by` names another key.',
      security: [{ bearer: [] }],
      params: Strict({ id: Name(1024, { description: 'An object id (GUID, any case) or a user principal name; with `by`, what it names.', examples: [EXAMPLE.otherUpn] }) }),
      querystring: Strict({
        by: By
      }, { description: 'Every query parameter not listed here is refused (400 UNKNOWN_PROPERTY).' }),
      response: {
        200: success('The principal and every group it belongs to, directly or through nesting (none for a group).', Resolution),
        ...problemResponses(PRINCIPAL_PROBLEMS)
      }
    },
    // Role checked before the parameters are validated, let alone Graph asked.
    onRequest: [app.authenticate, requireRole('Identity.Admin')]
  }, async (request) => {
    const tenantId = request.caller?.tenantId ?? ''
    return resolutionBody(await resolver.resolve(tenantId, principalQuery(request.params.id, request.query.by, 'id')))
  })
}
