// POST /v1/login (the login hook) and GET /v1/principals/{id} (administrators' look-up).
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Resolver } from '../resolver/resolver.ts'
import type { PrincipalQuery } from '../directory/port.ts'
import { Resolution, errorResponses, Problem } from './schemas.ts'
import { resolutionBody } from './resolution.ts'
import { requireRole } from './authenticate.ts'

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export async function identityRoutes (parent: FastifyInstance, { resolver }: { resolver: Resolver }): Promise<void> {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>()

  app.post('/v1/login', {
    schema: {
      tags: ['identity'],
      summary: 'Resolve the signed-in caller: its principal and every group it belongs to.',
      description: 'Called by a login hook with the user\'s or service principal\'s Entra access token.',
      security: [{ bearer: [] }],
      response: { 200: Resolution, ...errorResponses }
    },
    preHandler: app.authenticate
  }, async (request) => {
    const caller = request.caller
    if (caller === undefined) throw new Error('authenticate did not set the caller')
    return resolutionBody(await resolver.resolveCaller(caller))
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
    preHandler: [app.authenticate, requireRole('Identity.Admin')]
  }, async (request) => {
    const { id } = request.params
    const by = request.query.by ?? (GUID.test(id) ? 'id' : 'userPrincipalName')
    const tenantId = request.caller?.tenantId ?? ''
    return resolutionBody(await resolver.resolve(tenantId, { [by]: id } as unknown as PrincipalQuery))
  })
}
