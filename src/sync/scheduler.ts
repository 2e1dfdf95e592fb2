// When change-feed rounds run: every SYNC_INTERVAL_SECONDS, and at once when triggered (a change
// notification), never two at a time, and with several replicas on exactly one of them.
//
// - One process (no Redis): a timer and a flag. A trigger during a round asks for one more round after it;
//   a burst of triggers is one round.
// - Several replicas (Redis): a BullMQ queue is the leader. A job scheduler adds one `round` job per
//   interval for the whole fleet, triggers add a job deduplicated by id with `keepLastIfActive` (at most
//   one running and one waiting, so a burst is one round and a change during a round still gets its own),
//   and the queue's global concurrency of 1 keeps rounds from overlapping across replicas. A replica that
//   dies mid-round leaves a stalled job that another one picks up; the round re-reads from the stored
//   cursor, so nothing is lost and nothing is applied twice in effect.
import { hostname } from 'node:os'
import { Queue, Worker, type ConnectionOptions } from 'bullmq'
import type { RoundReport } from './change-feed.ts'

export interface SyncScheduler {
  start: () => Promise<void>
  /** Asks for a round as soon as possible (coalesced with any already asked for). */
  trigger: () => Promise<void>
  close: () => Promise<void>
}

export interface SchedulerLog {
  warn: (obj: object, msg: string) => void
}

export class LocalSyncScheduler implements SyncScheduler {
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private again = false
  private closed = false

  constructor (private readonly options: { round: () => Promise<RoundReport>, intervalMs: number, log?: SchedulerLog }) {}

  async start (): Promise<void> {
    this.schedule(0)
  }

  async trigger (): Promise<void> {
    if (this.closed) return
    if (this.running !== undefined) { this.again = true; return }
    this.schedule(0)
  }

  async close (): Promise<void> {
    this.closed = true
    clearTimeout(this.timer)
    await this.running
  }

  private schedule (delayMs: number): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => { this.run() }, delayMs)
    this.timer.unref()
  }

  private run (): void {
    if (this.closed || this.running !== undefined) return
    this.again = false
    const started = Date.now()
    this.running = this.options.round().then(() => {}, (err: unknown) => {
      this.options.log?.warn({ err: err instanceof Error ? err.message : String(err) }, 'sync round failed; the next one retries')
    }).finally(() => {
      this.running = undefined
      // Rounds start every interval (a long round is followed at once), not an interval after each ends.
      if (!this.closed) this.schedule(this.again ? 0 : Math.max(0, this.options.intervalMs - (Date.now() - started)))
    })
  }
}

export interface QueueSyncSchedulerOptions {
  round: () => Promise<RoundReport>
  intervalMs: number
  connection: ConnectionOptions
  /** Prefix of the queue's Redis keys (tests use their own). */
  prefix?: string
  /**
   * How long this replica's lock on a running round lasts unless renewed (it is renewed every half of it).
   * A replica that dies mid-round holds the round until its lock expires. Default: BullMQ's (30 s).
   */
  lockDurationMs?: number
  /** How often this replica looks for rounds whose lock expired, to take them over. Default: BullMQ's (30 s). */
  stalledIntervalMs?: number
  log?: SchedulerLog
}

const QUEUE = 'entra-sync'
const TRIGGER_ID = 'entra-sync-trigger'

export class QueueSyncScheduler implements SyncScheduler {
  private readonly queue: Queue
  private readonly worker: Worker

  constructor (private readonly options: QueueSyncSchedulerOptions) {
    const common = { connection: options.connection, ...(options.prefix !== undefined ? { prefix: options.prefix } : {}) }
    this.queue = new Queue(QUEUE, { ...common, defaultJobOptions: { removeOnComplete: 100, removeOnFail: 100 } })
    this.worker = new Worker(QUEUE, async () => await options.round(), {
      ...common,
      concurrency: 1,
      autorun: false,
      // Each job records the replica that ran it last (its `processedBy`): host and process.
      name: `${hostname()}:${process.pid}`,
      ...(options.lockDurationMs !== undefined ? { lockDuration: options.lockDurationMs } : {}),
      ...(options.stalledIntervalMs !== undefined ? { stalledInterval: options.stalledIntervalMs } : {})
    })
    this.worker.on('failed', (_job, err) => { options.log?.warn({ err: err.message }, 'sync round failed; the next one retries') })
    // Connection trouble is reported by the Redis state logging; without listeners BullMQ would print it raw.
    this.worker.on('error', () => {})
    this.queue.on('error', () => {})
  }

  async start (): Promise<void> {
    await this.queue.setGlobalConcurrency(1)
    await this.queue.upsertJobScheduler('entra-sync-every', { every: this.options.intervalMs }, { name: 'round' })
    this.worker.run().catch((err: unknown) => { this.options.log?.warn({ err: err instanceof Error ? err.message : String(err) }, 'sync worker stopped') })
    await this.trigger()
  }

  async trigger (): Promise<void> {
    await this.queue.add('round', {}, { deduplication: { id: TRIGGER_ID, keepLastIfActive: true } })
  }

  async close (): Promise<void> {
    await this.worker.close()
    await this.queue.close()
  }
}
