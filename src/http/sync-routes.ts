// GET /v1/sync: how the Entra change feed is doing (cursors, the last round, totals). An operator's view,
// so it needs Identity.Admin, and it shows only the caller's own tenant.
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Sync } from '../sync/sync.ts'
import { requireRole } from './authenticate.ts'
import { success } from './schemas.ts'
import { ADMIN, BEARER, V1, problemResponses } from './problem-catalogue.ts'

/** Every problem GET /v1/sync may answer with. */
const SYNC_PROBLEMS = [...V1, ...BEARER, ...ADMIN]

const Counts = Type.Record(Type.String(), Type.Integer())

const Round = Type.Object({
  startedAt: Type.String({ format: 'date-time' }),
  finishedAt: Type.String({ format: 'date-time' }),
  read: Type.Record(Type.String(), Type.Integer(), { description: 'Changes read from Entra, by kind of object.' }),
  applied: Type.Record(Type.String(), Type.Integer(), { description: 'Effects: deactivated, activated, membershipRemoved, membershipAdded, groupRenamed, groupRetired, groupDeleted, rematerialized; unchanged, absent (not materialized here), refused, mirrored (AIM).' }),
  reconciled: Type.Array(Type.Object({ kind: Type.String(), reason: Type.String() }), { description: 'Kinds that started again from a full reconcile: no-cursor (first start) or cursor-expired (Graph answered 410).' }),
  errors: Type.Array(Type.Object({ kind: Type.String(), error: Type.String() }), { description: 'Kinds that could not be read or applied; the next round retries them from the same cursor.' })
})

const SyncStatusBody = Type.Object({
  enabled: Type.Boolean(),
  intervalSeconds: Type.Integer({ description: 'Seconds between rounds (SYNC_INTERVAL_SECONDS).' }),
  cursors: Type.Array(Type.Object({ kind: Type.String() }), { description: 'The kinds of object whose feed has a stored cursor.' }),
  lastRound: Type.Optional(Round),
  totals: Type.Object({ rounds: Type.Integer(), failedRounds: Type.Integer(), read: Counts, applied: Counts }, { description: 'Rounds this replica ran since it started.' })
}, {
  description: 'The Entra change feed of the caller\'s tenant.',
  examples: [{
    enabled: true,
    intervalSeconds: 60,
    cursors: [{ kind: 'user' }, { kind: 'servicePrincipal' }, { kind: 'group' }],
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
    if (sync === undefined) return { enabled: false, intervalSeconds, cursors: [], totals: { rounds: 0, failedRounds: 0, read: {}, applied: {} } }
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
      ...(last !== undefined ? { lastRound: { startedAt: last.startedAt, finishedAt: last.finishedAt, ...lastCounts, reconciled: mine(last.reconciled), errors: mine(last.errors) } } : {}),
      totals: { rounds: status.totals.rounds, failedRounds: status.totals.failedRounds, ...totals }
    }
  })
}
