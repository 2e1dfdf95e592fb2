// The emulated Entra ID STS: discovery documents and keys, the token endpoint (v2 and v1), and the STS part
// of the control API (token factory, key rotation). Every error on an STS path is AADSTS-shaped: the
// plugin's own, fastify's (bad bodies, limits), unknown paths under the STS's path shapes, and faults
// injected on STS paths (through the ErrorShape registered here).
import type { FastifyInstance } from 'fastify'
import formbody from '@fastify/formbody'
import type { EmulatorContext } from '../context.ts'
import { errorBody, errors, StsError, stsErrorShape } from './errors.ts'
import { discoveryRoutes } from './discovery.ts'
import { correlationOf, tokenRoutes } from './token-endpoint.ts'
import { controlStsRoutes } from './control.ts'

export async function stsRoutes (app: FastifyInstance, opts: { ctx: EmulatorContext }): Promise<void> {
  const { ctx } = opts
  ctx.errorShapes.push(stsErrorShape(ctx))
  await app.register(controlStsRoutes, { ctx })
  await app.register(async (sts) => {
    // The token endpoint reads form bodies only. Any other body (JSON included) is read and dropped, so
    // the request fails as Entra's does, for its missing parameters, rather than with a 415.
    sts.removeAllContentTypeParsers()
    await sts.register(formbody)
    sts.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, _body, done) => { done(null, undefined) })

    sts.addHook('onRequest', async (request, reply) => {
      reply.header('x-ms-request-id', request.id)
      const id = request.headers['client-request-id']
      if (typeof id === 'string' && id !== '') reply.header('client-request-id', id)
    })

    sts.setErrorHandler(async (err, request, reply) => {
      let e: StsError
      if (err instanceof StsError) {
        e = err
      } else {
        const status = (err as { statusCode?: number }).statusCode
        if (status !== undefined && status >= 400 && status < 500) {
          e = new StsError(status === 413 ? 413 : 400, 'invalid_request', 9002313, `Invalid request. Request is malformed or invalid. ${(err as Error).message}`)
        } else {
          request.log.error({ err }, 'STS handler failed')
          e = errors.internal()
        }
      }
      const correlation = correlationOf(request)
      if (correlation !== undefined) reply.header('client-request-id', correlation)
      return await reply.code(e.status).headers({ 'cache-control': 'no-store, no-cache', pragma: 'no-cache' })
        .send(errorBody(ctx, e, request.id, correlation))
    })

    await sts.register(discoveryRoutes, { ctx })
    await sts.register(tokenRoutes, { ctx })

    // Unknown paths under the STS's path shapes answer AADSTS-shaped too (the root 404 belongs to nobody).
    for (const shape of ['/:tenant/oauth2/*', '/:tenant/discovery/*', '/:tenant/v2.0/*', '/:tenant/.well-known/*']) {
      sts.all(shape, async (request) => { throw errors.notFound((request.url.split('?')[0]) ?? '') })
    }
  })
}
