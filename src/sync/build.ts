// Assembles the change feed from the configuration: with REDIS_URL the cursors live in Redis and a BullMQ
// queue picks the replica that runs each round; without it, a file and a timer in this process.
import { Redis } from 'ioredis'
import type { Config } from '../config.ts'
import type { Clock } from '../clock.ts'
import type { Directory, DirectoryChanges, DirectorySubscriptions } from '../directory/port.ts'
import type { Resolver } from '../resolver/resolver.ts'
import type { Materializer } from '../resolver/materializer.ts'
import type { TargetSync } from '../target/port.ts'
import type { RoundReport } from './change-feed.ts'
import { FileCursorStore, RedisCursorStore } from './cursors.ts'
import { SyncApplier } from './apply.ts'
import { LocalSyncScheduler, QueueSyncScheduler, type SchedulerLog } from './scheduler.ts'
import { Sync } from './sync.ts'
import { SubscriptionKeeper } from './subscriptions.ts'

/** Where Graph posts change notifications, under PUBLIC_URL. */
export const NOTIFICATIONS_PATH = '/v1/sync/notifications'

export interface BuildSyncOptions {
  config: Pick<Config, 'REDIS_URL' | 'REDIS_KEY_PREFIX' | 'SYNC_DIR' | 'SYNC_INTERVAL_SECONDS' | 'SYNC_LOCK_SECONDS' | 'PUBLIC_URL'>
  /** The clientState of the subscriptions (SYNC_NOTIFICATION_SECRET, or one derived from the app's credential). */
  clientState: string
  tenants: string[]
  directory: Directory & DirectoryChanges & DirectorySubscriptions
  resolver: Resolver
  target?: TargetSync
  materializer?: Materializer
  writeNesting: boolean
  clock: Clock
  /** Prefix of the Redis keys (cursors, queue); default REDIS_KEY_PREFIX. */
  keyPrefix?: string
  log: SchedulerLog
  onRound: (report: RoundReport) => void
  onNotification?: (outcome: 'accepted' | 'forged') => void
  /** Other caches to forget when Entra changes these objects (the account's group names, for permission answers). */
  onForget?: (tenantId: string, ids: { principals: string[], groups: string[] }) => void
  /** Told when everything cached for a tenant is forgotten (a gap in the feed). */
  onForgetTenant?: (tenantId: string) => void
}

export function buildSync (options: BuildSyncOptions): Sync {
  const { config } = options
  const intervalMs = config.SYNC_INTERVAL_SECONDS * 1000
  const prefix = options.keyPrefix ?? config.REDIS_KEY_PREFIX
  const lockMs = config.SYNC_LOCK_SECONDS * 1000
  // BullMQ's workers block on Redis: their connection must retry commands forever rather than fail them.
  const redis = config.REDIS_URL === undefined ? undefined : new Redis(config.REDIS_URL, { maxRetriesPerRequest: null, lazyConnect: true })
  redis?.on('error', () => {}) // reported once per state change by the registrations' store, not per attempt
  const sync = new Sync({
    directory: options.directory,
    tenants: options.tenants,
    cursors: redis !== undefined ? new RedisCursorStore(redis, `${prefix}sync:cursors`) : new FileCursorStore(config.SYNC_DIR),
    applier: new SyncApplier({
      directory: options.directory,
      resolver: options.resolver,
      ...(options.target !== undefined ? { target: options.target } : {}),
      ...(options.materializer !== undefined ? { materializer: options.materializer } : {}),
      writeNesting: options.writeNesting,
      ...(options.onForget !== undefined ? { onForget: options.onForget } : {}),
      ...(options.onForgetTenant !== undefined ? { onForgetTenant: options.onForgetTenant } : {})
    }),
    clock: options.clock,
    intervalSeconds: config.SYNC_INTERVAL_SECONDS,
    onRound: options.onRound,
    ...(options.onNotification !== undefined ? { onNotification: options.onNotification } : {}),
    ...(config.PUBLIC_URL !== undefined
      ? {
          notifications: {
            clientState: options.clientState,
            keeper: new SubscriptionKeeper({ directory: options.directory, clock: options.clock, notificationUrl: config.PUBLIC_URL.replace(/\/+$/, '') + NOTIFICATIONS_PATH, clientState: options.clientState, log: options.log })
          }
        }
      : {}),
    scheduler: round => redis !== undefined
      ? new QueueSyncScheduler({ round, intervalMs, connection: redis, prefix: `${prefix}bull`, lockDurationMs: lockMs, stalledIntervalMs: lockMs, log: options.log })
      : new LocalSyncScheduler({ round, intervalMs, log: options.log })
  })
  if (redis === undefined) return sync
  // The connection is this sync's own: closed with it.
  const close = sync.close.bind(sync)
  sync.close = async () => { await close(); redis.disconnect() }
  return sync
}
