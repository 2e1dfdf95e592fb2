// Liveness and readiness. /healthz answers while the process can serve at all; /readyz answers 200 only
// when every readiness check passes, so a load balancer stops sending traffic to a replica that can't work.
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { NotReady } from './problems.ts'

export interface ReadinessCheck {
  name: string
  check: () => Promise<void> | void
}

const Status = Type.Object({ status: Type.String(), checks: Type.Optional(Type.Record(Type.String(), Type.String())) })

export async function healthRoutes (app: FastifyInstance, opts: { checks: ReadinessCheck[] }): Promise<void> {
  app.get('/healthz', { schema: { tags: ['health'], response: { 200: Status } } }, async () => ({ status: 'ok' }))

  app.get('/readyz', { schema: { tags: ['health'], response: { 200: Status } } }, async () => {
    const checks: Record<string, string> = {}
    for (const { name, check } of opts.checks) {
      try {
        await check()
        checks[name] = 'ok'
      } catch (err) {
        throw new NotReady(`${name}: ${(err as Error).message}`)
      }
    }
    return { status: 'ready', checks }
  })
}
