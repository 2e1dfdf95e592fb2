// The sync as the rest of the service sees it: start it, trigger a round (a change notification), ask how
// it is doing (GET /v1/sync), close it. It wires the change feed to its scheduler and keeps the totals.
import type { Clock } from '../clock.ts'
import { ChangeFeed, type ChangeApplier, type RoundReport } from './change-feed.ts'
import type { CursorStore } from './cursors.ts'
import type { SyncScheduler } from './scheduler.ts'
import type { DirectoryChanges, DirectoryObjectKind } from '../directory/port.ts'

export interface SyncStatus {
  intervalSeconds: number
  /** Where each tenant's and kind's feed stands. */
  cursors: Array<{ tenantId: string, kind: string }>
  /** The last finished round, on whichever replica ran it. */
  lastRound?: RoundReport
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
}

export class Sync {
  private readonly feed: ChangeFeed
  private readonly scheduler: SyncScheduler
  private readonly totals: SyncStatus['totals'] = { rounds: 0, failedRounds: 0, tenants: {} }
  private readonly waiters = new Set<(report: RoundReport) => void>()

  constructor (private readonly options: SyncOptions) {
    this.feed = new ChangeFeed({
      directory: options.directory,
      tenants: options.tenants,
      cursors: options.cursors,
      applier: options.applier,
      clock: options.clock,
      observer: { onRound: report => { this.finished(report) } }
    })
    this.scheduler = options.scheduler(async () => await this.feed.round())
  }

  async start (): Promise<void> { await this.scheduler.start() }
  async trigger (): Promise<void> { await this.scheduler.trigger() }
  async close (): Promise<void> { await this.scheduler.close() }

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
    this.options.cursors.setLastRound(JSON.stringify(report)).catch(() => {})
    const waiters = [...this.waiters]
    this.waiters.clear()
    for (const resolve of waiters) resolve(report)
  }
}
