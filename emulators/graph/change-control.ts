// Control routes (loopback only) for Graph's change tracking: the notification delivery knobs (delay,
// drops, duplicates, reordering, retry timing, handshake limits, lifecycle window), a flush, the list
// of subscriptions and recent deliveries, and the replication lag every tenant applies to its writes.
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { EmulatorContext } from '../context.ts'
import { loopbackOnly } from '../control/loopback.ts'
import type { NotificationHub, NotificationKnobs } from './notifications.ts'

const Seconds = Type.Number({ minimum: 0, maximum: 10 * 365 * 86400 })
const Rate = Type.Number({ minimum: 0, maximum: 1 })
const Count = Type.Integer({ minimum: 0, maximum: 1_000_000 })
const Ms = Type.Integer({ minimum: 1, maximum: 600_000 })

export const NotificationKnobsSchema = Type.Partial(Type.Object({
  delaySeconds: Seconds,
  dropRate: Rate,
  dropNext: Count,
  duplicateRate: Rate,
  duplicateNext: Count,
  reorderWindow: Count,
  retryBaseSeconds: Type.Number({ minimum: 0.001, maximum: 86400 }),
  retryForSeconds: Seconds,
  responseTimeoutMs: Ms,
  validationTimeoutMs: Ms,
  reauthorizationWindowSeconds: Seconds,
  membersDelta: Type.Union([Type.Literal('observed'), Type.Literal('delta')]),
  seed: Type.Integer()
}), { additionalProperties: false })

const ReplicationSchema = Type.Object({ lagSeconds: Seconds }, { additionalProperties: false })

export async function changeControlRoutes (parent: FastifyInstance, { ctx, hub }: { ctx: EmulatorContext, hub: NotificationHub }): Promise<void> {
  await parent.register(async (app) => {
    app.addHook('onRequest', loopbackOnly)
    app.setErrorHandler(async (err, _request, reply) => {
      const status = (err as { statusCode?: number }).statusCode ?? 500
      return await reply.code(status).send({ error: { code: status === 400 ? 'invalid-request' : 'internal', message: (err as Error).message } })
    })
    const r = app.withTypeProvider<TypeBoxTypeProvider>()

    r.get('/_emulator/graph/notifications', async () => hub.snapshot())
    r.put('/_emulator/graph/notifications', { schema: { body: NotificationKnobsSchema } }, async (request) => {
      hub.configure(request.body as Partial<NotificationKnobs>)
      return hub.snapshot()
    })
    r.delete('/_emulator/graph/notifications', async () => {
      hub.reset()
      return hub.snapshot()
    })
    r.post('/_emulator/graph/notifications/flush', async () => {
      hub.flush()
      return hub.snapshot()
    })
    r.delete('/_emulator/graph/subscriptions', async () => {
      const removed = hub.subscriptions.size
      hub.subscriptions.clear()
      return { removed }
    })

    const replication = (): Record<string, unknown> => ({
      lagSeconds: ctx.replicationLagMs / 1000,
      pendingWrites: Object.fromEntries([...ctx.tenants.values()].map(d => [d.tenantId, d.pendingWrites]))
    })
    r.get('/_emulator/graph/replication', async () => replication())
    r.put('/_emulator/graph/replication', { schema: { body: ReplicationSchema } }, async (request) => {
      ctx.replicationLagMs = request.body.lagSeconds * 1000
      for (const d of ctx.tenants.values()) d.setReplicationLag(ctx.replicationLagMs)
      return replication()
    })
  })
}
