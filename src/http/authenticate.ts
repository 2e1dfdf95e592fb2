// Turns the bearer token into `request.caller` before an authenticated route runs; the token verifier
// raises the precise 401 problem when it cannot. Both run as onRequest hooks — `onRequest: [app.authenticate,
// requireRole(role)]` — because fastify reads, parses and validates the body only after onRequest: a caller
// without a token or the role is refused before its body costs anything (preHandler would be too late).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import createError from '@fastify/error'
import type { Caller } from '../auth/caller.ts'

export interface Authenticator {
  authenticate: (authorization: string | undefined) => Promise<Caller>
  /** The caller of a token already verified, without a promise; undefined: ask authenticate(). */
  cachedCaller?: (authorization: string | undefined) => Caller | undefined
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller
  }
}

export const MissingRole = createError('MISSING_ROLE', 'This operation needs the app role %s; ask an administrator to assign it to your application or user.', 403)

export function registerAuthentication (app: FastifyInstance, authenticator: Authenticator): void {
  app.decorateRequest('caller', undefined)
  // A callback hook: a token already verified (every warm request) costs no promise and no turn of the
  // microtask queue; any other goes through authenticate(), which verifies it or says what is wrong.
  app.decorate('authenticate', (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
    const cached = authenticator.cachedCaller?.(request.headers.authorization)
    if (cached !== undefined) {
      request.caller = cached
      done()
      return
    }
    authenticator.authenticate(request.headers.authorization).then(caller => { request.caller = caller; done() }, done)
  })
}

/** An onRequest hook after `app.authenticate`: 403 MISSING_ROLE unless the caller holds `role`. */
export function requireRole (role: string) {
  return async (request: FastifyRequest): Promise<void> => {
    if (request.caller?.roles.includes(role) !== true) throw new MissingRole(role)
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    authenticate: (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void
  }
}
