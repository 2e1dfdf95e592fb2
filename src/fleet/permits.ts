// Rate budgets for the whole fleet (REDIS_URL): Databricks allows about 2 account SCIM PATCHes and 5 other
// writes a second per account, and Graph throttles per app, however many replicas send them. Each budget
// is a BullMQ queue of permits: a replica that wants to send a request adds a permit job and sends once a
// worker (any replica's) has taken it. The queue's global rate limit (one job per 1/rate seconds) paces
// the fleet; BullMQ's priorities put interactive permits before background ones across replicas;
// `rateLimit()` on a Retry-After pauses the budget on every replica at once. Everything else about a
// request (for writes: who goes next within a replica, coalescing, the bounded queue, the wait estimate)
// stays in the replica.
//
// Why permits on a queue rather than a token bucket of our own in Redis: the pacing, the priorities, the
// pause and the recovery of a dead replica's work are what BullMQ already does, on the Redis we have.
// A permit costs a few Redis commands and milliseconds: nothing on the warm path, which sends nothing.
//
// Redis away: request() rejects at once (no offline queue), and the client falls back to a local bucket
// of the budget divided by the configured replica count (REPLICAS), so the fleet stays within the limit.
import { Queue, QueueEvents, Worker, type ConnectionOptions } from 'bullmq'
import { Redis } from 'ioredis'
import type { PermitPriority, PermitSource } from '../upstream/permits.ts'
import { completionOf } from './job-completion.ts'

export interface FleetPermitsOptions {
  url: string
  /** Prefix of the queues' keys (REDIS_KEY_PREFIX + `bull`). */
  prefix: string
  log?: { warn: (obj: object, msg: string) => void }
}

const RANK: Record<PermitPriority, number> = { interactive: 1, background: 2 }

/** One budget: its queue of permits and this replica's worker for it. */
class QueuePermits implements PermitSource {
  private readonly name: string
  private readonly queue: Queue
  private events: QueueEvents | undefined
  private readonly worker: Worker

  constructor (private readonly budget: string, ratePerSecond: number, private readonly fleet: FleetPermits, commands: Redis, private readonly blocking: ConnectionOptions, private readonly prefix: string) {
    this.name = `${budget}-permits`
    this.queue = new Queue(this.name, { connection: commands, prefix, defaultJobOptions: { removeOnComplete: { age: 60 }, removeOnFail: { age: 60 } } })
    // The worker's blocking reads on connections of its own (BullMQ makes them from options). The permit is
    // the job being taken: there is nothing to do. At the fleet's pace: one per 1/rate seconds, or for
    // budgets over 10/s (Graph's) as many as fit in 100 ms, so a $batch of 20 is not spread over 200 ms.
    const windowMs = Math.max(100, Math.ceil(1000 / ratePerSecond))
    const limiter = { max: Math.max(1, Math.floor(ratePerSecond * windowMs / 1000)), duration: windowMs }
    this.worker = new Worker(this.name, async () => {}, { connection: blocking, prefix, concurrency: limiter.max, autorun: false, limiter })
    // Connection trouble is reported by /readyz; without listeners BullMQ would print it raw.
    this.queue.on('error', () => {})
    this.worker.on('error', () => {})
    this.worker.run().catch(() => { /* closed */ })
  }

  /**
   * Where permits are heard of, made at the first request (Redis answering then): BullMQ's QueueEvents
   * cannot be closed until it has connected once, so one made while Redis is away would hold shutdown.
   */
  private heard (): QueueEvents {
    if (this.events === undefined) {
      this.events = new QueueEvents(this.name, { connection: this.blocking, prefix: this.prefix })
      this.events.on('error', () => {})
    }
    return this.events
  }

  get available (): boolean { return this.fleet.connected }

  async request (priority: PermitPriority): Promise<void> {
    if (!this.available) throw new Error('Redis is not connected')
    const job = await this.queue.add('permit', {}, { priority: RANK[priority] })
    // A wait in a storm may be long and legitimate; a wait whose connection was lost ends at once.
    await completionOf(job, { queue: this.queue, events: this.heard(), lost: this.fleet.lostWaiters })
  }

  pause (seconds: number): void {
    this.queue.rateLimit(Math.ceil(seconds * 1000)).catch((err: unknown) => {
      this.fleet.log?.warn({ component: 'fleet', budget: this.budget, err: err instanceof Error ? err.message : String(err) }, 'a Retry-After could not be shared with the other replicas; this replica pauses alone')
    })
  }

  async close (): Promise<void> {
    await this.worker.close(true)
    await Promise.all([this.events?.close(), this.queue.close()])
  }
}

/** The fleet's budgets, one queue each, over one command connection. */
export class FleetPermits {
  readonly log: FleetPermitsOptions['log']
  /** Permit waits to end when the connection is lost or the fleet closes (their clients then pace those requests themselves). */
  readonly lostWaiters = new Set<() => void>()
  private readonly commands: Redis
  private readonly owned: QueuePermits[] = []

  constructor (private readonly options: FleetPermitsOptions) {
    this.log = options.log
    // Commands fail at once while Redis is away (the client then paces itself), instead of queueing.
    this.commands = new Redis(options.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
    this.commands.on('error', () => {})
    this.commands.on('close', () => { for (const lost of [...this.lostWaiters]) lost() })
  }

  /** The fleet's budget named `budget` (its queue: `<budget>-permits`), `ratePerSecond` for all replicas together. */
  budget (budget: string, ratePerSecond: number): PermitSource {
    const permits = new QueuePermits(budget, ratePerSecond, this, this.commands, connectionOptionsOf(this.options.url), this.options.prefix)
    this.owned.push(permits)
    return permits
  }

  get connected (): boolean { return this.commands.status === 'ready' }

  async close (): Promise<void> {
    // Nobody waits for a permit past shutdown.
    for (const lost of [...this.lostWaiters]) lost()
    await Promise.all(this.owned.map(async p => { await p.close() }))
    this.commands.disconnect()
  }
}

/** A redis:// or rediss:// URL as the connection options BullMQ makes its own connections from. */
export function connectionOptionsOf (url: string): ConnectionOptions {
  const u = new URL(url)
  const db = Number(u.pathname.slice(1) || 0)
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || 6379),
    ...(u.username !== '' ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password !== '' ? { password: decodeURIComponent(u.password) } : {}),
    ...(Number.isInteger(db) && db > 0 ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: { servername: u.hostname } } : {})
  }
}
