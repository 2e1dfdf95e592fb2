// Turns the bearer token into `request.caller` before an authenticated route runs; the token verifier
// raises the precise 401 problem when it cannot.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import createError from '@fastify/error'
import type { Caller } from '../auth/caller.ts'

export interface Authenticator {
  authenticate: (authorization: string | undefined) => Promise<Caller>
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller
  }
}

export const MissingRole = createError('MISSING_ROLE', 'This operation needs the app role %s; ask an administrator to assign it to your application or user.', 403)

export function registerAuthentication (app: FastifyInstance, authenticator: Authenticator): void {
  app.decorateRequest('caller', undefined)
  app.decorate('authenticate', async (request: FastifyRequest) => {
    request.caller = await authenticator.authenticate(request.headers.authorization)
  })
}

export function requireRole (role: string) {
  return async (request: FastifyRequest): Promise<void> => {
    if (request.caller?.roles.includes(role) !== true) throw new MissingRole(role)
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    authenticate: (request: FastifyRequest) => Promise<void>
  }
}
