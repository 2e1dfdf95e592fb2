// The Microsoft Graph v1.0 emulator (spec §2): directory reads, membership, $batch, delta, throttling,
// deleted items, change-notification subscriptions, on the emulators' shared origin under `/v1.0` (also
// `/v1.0/{tenantId}/…`). An encapsulated plugin: its hooks, content-type parsing, error and not-found
// handlers apply to `/v1.0` only. It also owns the loopback-only control routes `/_emulator/graph/…`
// (throttle, notifications, subscriptions, replication).
import type { FastifyInstance } from 'fastify'
import type { EmulatorContext } from '../context.ts'
import { loopbackOnly } from '../control/loopback.ts'
import { batchRoute } from './batch.ts'
import { changeControlRoutes } from './change-control.ts'
import { deletedItemRoutes, rewriteDeletedItems } from './deleted-items.ts'
import { deltaRoutes } from './delta.ts'
import { directoryRoutes } from './directory-routes.ts'
import { errorEnvelope } from './errors.ts'
import { GRAPH_JSON, type GraphServices, defineRoutes, installConventions } from './http.ts'
import { rewriteAppIdKey, rewriteDeltaFunction, rewriteTenantPrefix } from './lookup.ts'
import { membershipRoutes } from './membership-routes.ts'
import { NotificationHub } from './notifications.ts'
import { subscriptionRoutes } from './subscriptions.ts'
import { Throttle } from './throttle.ts'
import { TokenCodec } from './tokens.ts'

function throttleControl (app: FastifyInstance, services: GraphServices): void {
  const state = (): unknown => services.throttle.snapshot(services.ctx.tenants.values())
  app.get('/_emulator/graph/throttle', { onRequest: loopbackOnly }, async () => state())
  app.put('/_emulator/graph/throttle', { onRequest: loopbackOnly }, async (request, reply) => {
    const body = request.body as Record<string, unknown> | null | undefined
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return await reply.code(400).send({ error: { code: 'BadRequest', message: 'Expected a JSON object { limitPer10s?: number | null, disabled?: boolean }.' } })
    }
    const { limitPer10s, disabled } = body
    const limitOk = limitPer10s === undefined || limitPer10s === null || (typeof limitPer10s === 'number' && Number.isFinite(limitPer10s) && limitPer10s > 0)
    if (!limitOk || (disabled !== undefined && typeof disabled !== 'boolean')) {
      return await reply.code(400).send({ error: { code: 'BadRequest', message: '\'limitPer10s\' must be a positive number or null, \'disabled\' a boolean.' } })
    }
    services.throttle.configure({ limitPer10s: limitPer10s as number | null | undefined, disabled: disabled as boolean | undefined })
    return state()
  })
}

/** `ca`: the emulators' CA (PEM), trusted by the notification client besides the public roots. */
export async function graphRoutes (app: FastifyInstance, opts: { ctx: EmulatorContext, ca: string }): Promise<void> {
  const { ctx } = opts
  const services: GraphServices = { ctx, codec: new TokenCodec(), throttle: new Throttle(ctx.clock), costs: new Map() }
  const hub = new NotificationHub(ctx.clock, opts.ca)
  const listener = hub.onDirectoryChange.bind(hub)
  ctx.directoryListeners.add(listener)
  ctx.graphNotifications = hub
  app.addHook('onClose', async () => {
    ctx.directoryListeners.delete(listener)
    await hub.close()
  })

  // The tenant alias first, so `/v1.0/{tid}/servicePrincipals(appId='…')` gets both rewrites.
  ctx.rewriters.push(url => { try { return rewriteDeletedItems(rewriteDeltaFunction(rewriteAppIdKey(rewriteTenantPrefix(url)))) } catch { return url } })
  ctx.errorShapes.push({
    prefix: /^\/v1\.0(?:\/|$)/,
    shape: (status, code, message, requestId, requestHeaders) => {
      const clientRequestId = typeof requestHeaders['client-request-id'] === 'string' ? requestHeaders['client-request-id'] : requestId
      const inner: Record<string, string> = status === 429 ? { code: '429', status: '429', message: 'Please retry after' } : {}
      return {
        headers: { 'content-type': GRAPH_JSON, 'request-id': requestId, 'client-request-id': clientRequestId, 'cache-control': 'no-store', 'odata-version': '4.0' },
        body: errorEnvelope(code, message, { date: ctx.clock.now(), requestId, clientRequestId }, inner)
      }
    }
  })

  throttleControl(app, services)
  await app.register(changeControlRoutes, { ctx, hub })

  await app.register(async (v1) => {
    installConventions(v1, services)
    defineRoutes(v1, services, [...deltaRoutes(), ...directoryRoutes(), ...membershipRoutes(), ...deletedItemRoutes(), ...subscriptionRoutes(hub)])
    batchRoute(v1, services)
  }, { prefix: '/v1.0' })
}
