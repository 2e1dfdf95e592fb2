// The sync as the rest of the service sees it: start it, trigger a round (a change notification), ask how
// it is doing (GET /v1/sync), close it. It wires the change feed to its scheduler and keeps the totals.
import type { Clock } from '../clock.ts'
import { ChangeFeed, type ChangeApplier, type RoundReport } from './change-feed.ts'
import type { CursorStore } from './cursors.ts'
import type { SyncScheduler } from './scheduler.ts'
import type { DirectoryChanges, DirectoryObjectKind } from '../directory/port.ts'
import type { SubscriptionKeeper, SubscriptionStatus } from './subscriptions.ts'
import { NotificationReceiver, type NotificationItem } from './notifications.ts'

export interface SyncStatus {
  intervalSeconds: number
  /** Where each tenant's and kind's feed stands. */
  cursors: Array<{ tenantId: string, kind: string }>
  /** The last finished round, on whichever replica ran it. */
  lastRound?: RoundReport
  /** Change-notification subscriptions (with PUBLIC_URL), as the replica answering knows them. */
  subscriptions: SubscriptionStatus[]
  /** Rounds since this process started (its own rounds only), and their effects per tenant. */
  totals: { rounds: number, failedRounds: number, tenants: Record<string, { read: Record<string, number>, applied: Record<string, number> }> }
}

export interface SyncOptions {
  directory: DirectoryChanges
  tenants: string[]
  cursors: CursorStore
  applier: ChangeApplier
  clock: Clock
  intervalSeconds: number
  /** Builds the scheduler around the round (local timer, or the fleet's queue). */
  scheduler: (round: () => Promise<RoundReport>) => SyncScheduler
  onRound?: (report: RoundReport) => void
  /** Each delivery of change notifications received, by outcome. */
  onNotification?: (outcome: 'accepted' | 'forged') => void
  /** Change notifications (with PUBLIC_URL): the subscriptions, kept after each round on the replica running it, and their clientState. */
  notifications?: { keeper: SubscriptionKeeper, clientState: string }
}

export class Sync {
  private readonly feed: ChangeFeed
  private readonly scheduler: SyncScheduler
  private readonly totals: SyncStatus['totals'] = { rounds: 0, failedRounds: 0, tenants: {} }
  private readonly waiters = new Set<(report: RoundReport) => void>()
  private asking: Promise<void> | undefined
  private readonly receiver: NotificationReceiver | undefined

  constructor (private readonly options: SyncOptions) {
    this.feed = new ChangeFeed({
      directory: options.directory,
      tenants: options.tenants,
      cursors: options.cursors,
      applier: options.applier,
      clock: options.clock
    })
    const notifications = options.notifications
    this.receiver = notifications === undefined
      ? undefined
      : new NotificationReceiver({ clientState: notifications.clientState, tenants: options.tenants, keeper: notifications.keeper, trigger: async () => { await this.trigger() } })
    this.scheduler = options.scheduler(async () => {
      const previous = await options.cursors.lastRound().catch(() => undefined)
      const report = await this.feed.round()
      const previousStart = previous === undefined ? NaN : Date.parse((JSON.parse(previous) as RoundReport).startedAt)
      if (!Number.isNaN(previousStart)) report.stalenessBoundSeconds = Math.max(0, Date.parse(report.finishedAt) - previousStart) / 1000
      for (const tenantId of options.tenants) await options.notifications?.keeper.ensure(tenantId)
      this.finished(report)
      return report
    })
  }

  async start (): Promise<void> { await this.scheduler.start() }
  /** Asks for a round; concurrent calls (a burst of notifications) share one request to the scheduler. */
  async trigger (): Promise<void> {
    this.asking ??= this.scheduler.trigger().finally(() => { this.asking = undefined })
    await this.asking
  }

  async close (): Promise<void> { await this.scheduler.close() }

  /** Whether change notifications are configured (PUBLIC_URL). */
  get receivesNotifications (): boolean { return this.receiver !== undefined }

  /** A delivery of Graph change notifications: 'accepted' (a round is asked for) or 'forged' (refused, nothing done). */
  async receive (items: NotificationItem[]): Promise<'accepted' | 'forged'> {
    const outcome = await (this.receiver?.receive(items) ?? Promise.resolve('forged' as const))
    this.options.onNotification?.(outcome)
    return outcome
  }

  /** Rounds this process ran since it started. */
  totalsRounds (): number { return this.totals.rounds }

  /** Resolves with the next round this process finishes (tests and the notification path wait on it). */
  async nextRound (): Promise<RoundReport> {
    return await new Promise(resolve => { this.waiters.add(resolve) })
  }

  async status (): Promise<SyncStatus> {
    const cursors = [...(await this.options.cursors.all()).keys()].map(key => {
      const [tenantId, kind] = key.split('|') as [string, DirectoryObjectKind]
      return { tenantId, kind }
    })
    const last = await this.options.cursors.lastRound()
    return {
      intervalSeconds: this.options.intervalSeconds,
      cursors,
      ...(last !== undefined ? { lastRound: JSON.parse(last) as RoundReport } : {}),
      subscriptions: this.options.tenants.flatMap(t => this.options.notifications?.keeper.status(t) ?? []),
      totals: this.totals
    }
  }

  private finished (report: RoundReport): void {
    this.totals.rounds++
    if (report.errors.length > 0) this.totals.failedRounds++
    for (const [tenantId, counts] of Object.entries(report.tenants)) {
      const into = this.totals.tenants[tenantId] ??= { read: {}, applied: {} }
      for (const [k, n] of Object.entries(counts.read)) into.read[k] = (into.read[k] ?? 0) + (n ?? 0)
      for (const [k, n] of Object.entries(counts.applied)) into.applied[k] = (into.applied[k] ?? 0) + n
    }
    this.options.onRound?.(report)
    // Best effort: the report is for operators; a Redis hiccup here must not fail the round.
    this.options.cursors.setLastRound(JSON.stringify(report)).catch(() => {})
    const waiters = [...this.waiters]
    this.waiters.clear()
    for (const resolve of waiters) resolve(report)
  }
}
