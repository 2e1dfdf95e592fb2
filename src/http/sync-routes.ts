// GET /v1/sync: how the Entra change feed is doing (cursors, the last round, subscriptions, totals). An
// operator's view, so it needs Identity.Admin, and it shows only the caller's own tenant.
// POST /v1/sync/notifications: where Microsoft Graph delivers change notifications (with PUBLIC_URL). No
// bearer token (Graph sends none): the validation handshake is echoed, and a delivery is believed only with
// the subscriptions' clientState — and even then it only asks for a delta round.
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Sync } from '../sync/sync.ts'
import { requireRole } from './authenticate.ts'
import { PRINTABLE, success } from './schemas.ts'
import { ADMIN, BEARER, JSON_BODY, P, PARAMETERS, V1, problemResponses } from './problem-catalogue.ts'
import { NotificationRefused, NotificationsNotConfigured, ValidationTokenInvalid } from '../sync/errors.ts'
import { NOTIFICATIONS_PATH } from '../sync/build.ts'

/** Every problem GET /v1/sync may answer with. */
const SYNC_PROBLEMS = [...V1, ...BEARER, ...ADMIN]
/** Every problem POST /v1/sync/notifications may answer with. */
const NOTIFICATION_PROBLEMS = [...V1, ...JSON_BODY, ...PARAMETERS, P.NotificationRefused, P.NotificationsNotConfigured, P.ValidationTokenInvalid]

/** Graph's validation tokens are short opaque strings; anything printable up to this length is echoed. */
const MAX_VALIDATION_TOKEN = 1024
const PRINTABLE_TOKEN = new RegExp(PRINTABLE)
/** A delivery is a batch of small items; Graph sends far less than this. */
const NOTIFICATION_BODY_LIMIT = 1024 * 1024

// Graph's payload, read leniently: Graph adds properties over time, and none but these is used.
const NotificationItem = Type.Object({
  subscriptionId: Type.Optional(Type.String({ maxLength: 64 })),
  clientState: Type.Optional(Type.String({ maxLength: 256 })),
  tenantId: Type.Optional(Type.String({ maxLength: 64 })),
  changeType: Type.Optional(Type.String({ maxLength: 64 })),
  resource: Type.Optional(Type.String({ maxLength: 1024 })),
  lifecycleEvent: Type.Optional(Type.String({ maxLength: 64 }))
}, { additionalProperties: true })
const NotificationDelivery = Type.Object({ value: Type.Array(NotificationItem, { maxItems: 1000 }) }, {
  additionalProperties: true,
  description: 'Graph\'s change notifications (or lifecycle events) for the subscriptions this service made. Only `clientState`, `tenantId`, `subscriptionId` and `lifecycleEvent` are read; other properties are ignored.'
})

const Counts = Type.Record(Type.String(), Type.Integer())

const Round = Type.Object({
  startedAt: Type.String({ format: 'date-time' }),
  finishedAt: Type.String({ format: 'date-time' }),
  read: Type.Record(Type.String(), Type.Integer(), { description: 'Changes read from Entra, by kind of object.' }),
  applied: Type.Record(Type.String(), Type.Integer(), { description: 'Effects: deactivated, activated, membershipRemoved, membershipAdded, groupRenamed, groupRetired, groupDeleted, rematerialized; unchanged, absent (not materialized here), refused, mirrored (AIM).' }),
  reconciled: Type.Array(Type.Object({ kind: Type.String(), reason: Type.String() }), { description: 'Kinds that started again from a full reconcile: no-cursor (first start) or cursor-expired (Graph answered 410).' }),
  errors: Type.Array(Type.Object({ kind: Type.String(), error: Type.String() }), { description: 'Kinds that could not be read or applied; the next round retries them from the same cursor.' }),
  stalenessBoundSeconds: Type.Optional(Type.Number({ description: 'At most how far Databricks lagged behind Entra for the changes this round applied: from the previous round\'s start to this round\'s end.' }))
})

const SyncStatusBody = Type.Object({
  enabled: Type.Boolean(),
  intervalSeconds: Type.Integer({ description: 'Seconds between rounds (SYNC_INTERVAL_SECONDS).' }),
  cursors: Type.Array(Type.Object({ kind: Type.String() }), { description: 'The kinds of object whose feed has a stored cursor.' }),
  lastRound: Type.Optional(Round),
  subscriptions: Type.Array(Type.Object({
    resource: Type.String(),
    id: Type.Optional(Type.String()),
    expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
    error: Type.Optional(Type.String({ description: 'Why there is none now; the next round tries again, and the feed polls meanwhile.' }))
  }), { description: 'Change-notification subscriptions (PUBLIC_URL set), as the replica answering last kept them; empty without PUBLIC_URL.' }),
  totals: Type.Object({ rounds: Type.Integer(), failedRounds: Type.Integer(), read: Counts, applied: Counts }, { description: 'Rounds this replica ran since it started.' })
}, {
  description: 'The Entra change feed of the caller\'s tenant.',
  examples: [{
    enabled: true,
    intervalSeconds: 60,
    cursors: [{ kind: 'user' }, { kind: 'servicePrincipal' }, { kind: 'group' }],
    subscriptions: [
      { resource: '/users', id: '7f105c7d-2dc5-4530-97cd-4e7ae6534c07', expiresAt: '2026-12-30T08:00:00.000Z' },
      { resource: '/groups', id: 'a2f7bd5e-1fc4-4f26-a1b7-2b1a5f7c1e0d', expiresAt: '2026-12-30T08:00:00.000Z' }
    ],
    lastRound: {
      startedAt: '2026-12-02T09:00:00.000Z',
      finishedAt: '2026-12-02T09:00:01.250Z',
      read: { user: 3, group: 1 },
      applied: { deactivated: 1, membershipAdded: 2, unchanged: 1 },
      reconciled: [],
      errors: []
    },
    totals: { rounds: 42, failedRounds: 0, read: { user: 57, servicePrincipal: 2, group: 9 }, applied: { deactivated: 1, membershipAdded: 12, membershipRemoved: 3, groupRenamed: 1, unchanged: 40 } }
  }]
})

export async function syncRoutes (parent: FastifyInstance, { sync, intervalSeconds }: { sync?: Sync, intervalSeconds: number }): Promise<void> {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>()
  // The validation handshake may come as text/plain, with or without a body: taken here as a string, ignored.
  app.addContentTypeParser('text/plain', { parseAs: 'string', bodyLimit: NOTIFICATION_BODY_LIMIT }, (_request, body, done) => { done(null, body) })

  app.post(NOTIFICATIONS_PATH, {
    bodyLimit: NOTIFICATION_BODY_LIMIT,
    schema: {
      tags: ['sync'],
      summary: 'Microsoft Graph\'s change notifications (the service subscribes itself when PUBLIC_URL is set).',
      description: 'Not for API callers: Graph posts here. With `?validationToken=`, the token is echoed as `text/plain` (the subscription handshake; any body is ignored). Otherwise every item must carry the subscriptions\' `clientState` and a tenant the service syncs; then a delta round is asked for and the answer is 202 at once. A notification never changes anything by itself: the round reads what changed from Graph\'s delta query.',
      security: [],
      querystring: Type.Object({ validationToken: Type.Optional(Type.String({ description: 'Graph\'s handshake token, echoed as text/plain.' })) }, { additionalProperties: false }),
      body: NotificationDelivery,
      response: {
        200: {
          description: 'The validation handshake: the `validationToken`, echoed as `text/plain`.',
          content: { 'text/plain': { schema: Type.String(), example: 'Validation: Testing client application reachability for subscription Request-Id: 0f4d8b52-2a1c-4c8e-9a57-6ad0c4f3b1e2' } }
        },
        202: success('The delivery is accepted: a delta round will run (a burst of deliveries is one round). No body.', Type.Null()),
        ...problemResponses(NOTIFICATION_PROBLEMS)
      }
    },
    // The handshake before the body is validated: Graph sends it as text/plain, usually with no body.
    preValidation: async (request, reply) => {
      if (sync?.receivesNotifications !== true) throw new NotificationsNotConfigured()
      const token = (request.query as { validationToken?: unknown }).validationToken
      if (token === undefined) return
      if (typeof token !== 'string' || token.length === 0 || token.length > MAX_VALIDATION_TOKEN || !PRINTABLE_TOKEN.test(token)) throw new ValidationTokenInvalid(MAX_VALIDATION_TOKEN)
      await reply.code(200).header('content-type', 'text/plain; charset=utf-8').header('x-content-type-options', 'nosniff').send(token)
    }
  }, async (request, reply) => {
    if (sync === undefined || await sync.receive(request.body.value) === 'forged') throw new NotificationRefused()
    return await reply.code(202).send(null)
  })

  app.get('/v1/sync', {
    schema: {
      tags: ['sync'],
      summary: 'How the Entra change feed is doing: cursors, the last round, totals.',
      description: 'Needs the `Identity.Admin` app role. Shows only the caller\'s tenant.',
      security: [{ bearer: [] }],
      response: {
        200: success('The change feed of the caller\'s tenant: `enabled: false` when SYNC_ENABLED is off.', SyncStatusBody),
        ...problemResponses(SYNC_PROBLEMS)
      }
    },
    onRequest: [app.authenticate, requireRole('Identity.Admin')]
  }, async (request) => {
    const tenantId = (request.caller?.tenantId ?? '').toLowerCase()
    if (sync === undefined) return { enabled: false, intervalSeconds, cursors: [], subscriptions: [], totals: { rounds: 0, failedRounds: 0, read: {}, applied: {} } }
    const status = await sync.status()
    // Another tenant's objects, errors and counts are none of this caller's business.
    const mine = <T extends { tenantId: string }>(items: T[]): Array<Omit<T, 'tenantId'>> =>
      items.filter(i => i.tenantId.toLowerCase() === tenantId).map(({ tenantId: _, ...rest }) => rest)
    const last = status.lastRound
    const lastCounts = last?.tenants[tenantId] ?? { read: {}, applied: {} }
    const totals = status.totals.tenants[tenantId] ?? { read: {}, applied: {} }
    return {
      enabled: true,
      intervalSeconds: status.intervalSeconds,
      cursors: mine(status.cursors),
      subscriptions: mine(status.subscriptions),
      ...(last !== undefined ? { lastRound: { startedAt: last.startedAt, finishedAt: last.finishedAt, ...lastCounts, reconciled: mine(last.reconciled), errors: mine(last.errors), ...(last.stalenessBoundSeconds !== undefined ? { stalenessBoundSeconds: last.stalenessBoundSeconds } : {}) } } : {}),
      totals: { rounds: status.totals.rounds, failedRounds: status.totals.failedRounds, ...totals }
    }
  })
}
