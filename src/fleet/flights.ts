// One run per key across the fleet (REDIS_URL): work that every replica may be asked for at once (a new
// user's first sign-in, sent by a load balancer to all three) runs once, on whichever replica takes it,
// and every replica that asked gets its outcome. A BullMQ job per run, de-duplicated by the key: while a
// job for the key is waiting or running, adding another returns that one (BullMQ's deduplication, simple
// mode); once it has finished, the next request for the key starts a new run.
//
// Why a queue job rather than a Redis lock held by the requester: the run survives the requester (a
// requester past its deadline answers 503 and the run completes for its retry), a replica that dies while
// running it has it picked up by another (BullMQ's stalled-job check), and the outcome reaches every
// requester through the job's own completion event, which a lock would have to rebuild.
//
// The outcome travels as JSON: the value, or the problem a caller sees (code, status, message, headers),
// so a refusal reads the same whichever replica ran it. Unexpected errors are logged where they happen and
// reach the requesters as a plain 500.
import { Queue, QueueEvents, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import { connectionOptionsOf } from './permits.ts'
import { completionOf, FleetConnectionLost } from './job-completion.ts'
import type { SharedRuns } from './shared-runs.ts'

export interface FleetFlightsOptions<D, R> {
  url: string
  /** Prefix of the queue's keys (REDIS_KEY_PREFIX + `bull`). */
  prefix: string
  /** The queue's name, one per kind of work. */
  name: string
  /** Runs this replica takes at once. */
  concurrency: number
  /** The work, on whichever replica takes the job; `progress` tells every requester something (a wait estimate). */
  run: (data: D, progress: (data: unknown) => void) => Promise<R>
  log?: { error: (obj: object, msg: string) => void }
}

/** A problem as it travels between replicas. */
interface ProblemJson { code: string, statusCode: number, message: string, headers?: Record<string, string> }
type Outcome<R> = { ok: true, value: R } | { ok: false, problem: ProblemJson }

export class FleetFlights<D extends object, R> implements SharedRuns<D, R> {
  private readonly commands: Redis
  private readonly queue: Queue
  private readonly worker: Worker
  private events: QueueEvents | undefined
  private readonly lost = new Set<() => void>()

  constructor (private readonly options: FleetFlightsOptions<D, R>) {
    const { url, prefix, name } = options
    // Fails at once while Redis is away (the caller then runs the work itself), instead of queueing.
    this.commands = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
    this.commands.on('error', () => {})
    this.commands.on('close', () => { this.endWaits() })
    this.queue = new Queue(name, { connection: this.commands, prefix, defaultJobOptions: { removeOnComplete: { age: 60 }, removeOnFail: { age: 60 } } })
    this.worker = new Worker(name, async job => await this.process(job.data as D, data => { job.updateProgress(data as object).catch(() => {}) }), {
      connection: connectionOptionsOf(url),
      prefix,
      concurrency: options.concurrency,
      autorun: false
    })
    // Connection trouble is reported by /readyz; without listeners BullMQ would print it raw.
    this.queue.on('error', () => {})
    this.worker.on('error', () => {})
    this.worker.run().catch(() => { /* closed */ })
  }

  get available (): boolean { return this.commands.status === 'ready' }

  /**
   * The outcome of the run for `key`: joins the one waiting or running anywhere in the fleet, or starts
   * one with `data`. Rejects with FleetConnectionLost when Redis is not there (the caller runs the work
   * itself), and with the run's problem when it failed.
   */
  async run (key: string, data: D, onProgress?: (data: unknown) => void): Promise<R> {
    if (!this.available) throw new FleetConnectionLost()
    const job = await this.queue.add('run', data, { deduplication: { id: key } })
    const outcome = await completionOf(job, { queue: this.queue, events: this.heard(), lost: this.lost, ...(onProgress !== undefined ? { onProgress } : {}) }) as Outcome<R>
    if (outcome.ok) return outcome.value
    throw Object.assign(new Error(outcome.problem.message), outcome.problem)
  }

  private async process (data: D, progress: (data: unknown) => void): Promise<Outcome<R>> {
    try {
      return { ok: true, value: await this.options.run(data, progress) }
    } catch (err) {
      const e = err as Partial<ProblemJson> & Error
      if (typeof e.code === 'string' && typeof e.statusCode === 'number') {
        return { ok: false, problem: { code: e.code, statusCode: e.statusCode, message: e.message, ...(e.headers !== undefined ? { headers: e.headers } : {}) } }
      }
      this.options.log?.error({ component: 'fleet', queue: this.options.name, err }, 'a shared run failed unexpectedly')
      return { ok: false, problem: { code: 'INTERNAL', statusCode: 500, message: 'The run failed on a replica; its log has the cause.' } }
    }
  }

  /** Made at the first request (Redis answering then): a QueueEvents that never connected cannot be closed. */
  private heard (): QueueEvents {
    if (this.events === undefined) {
      this.events = new QueueEvents(this.options.name, { connection: connectionOptionsOf(this.options.url), prefix: this.options.prefix })
      this.events.on('error', () => {})
    }
    return this.events
  }

  private endWaits (): void {
    for (const lost of [...this.lost]) lost()
  }

  async close (): Promise<void> {
    this.endWaits()
    // Runs in flight are left to the fleet: their jobs stall here and another replica takes them over.
    await this.worker.close(true)
    await Promise.all([this.events?.close(), this.queue.close()])
    this.commands.disconnect()
  }
}
