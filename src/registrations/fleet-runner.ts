// The registration runner of a fleet (REDIS_URL): a job's items are spread over every replica as BullMQ
// jobs on one queue, `registrations`, so a 5,000-member group is registered by all of them together, and a
// replica that dies leaves its part to the others.
//
// - `plan` (one per registration, id `plan-<id>`): lists a group's members into the job (with the same
//   retries as an item), marks it running, then adds a BullMQ flow: one `items` child per CHUNK_ITEMS items
//   and the `finish` parent, which BullMQ runs once every child has completed.
// - `items`: registers its range's pending items (items.ts: the same attempts and failures as a single
//   process) within this replica's concurrency, and records each outcome at once (RedisJobStore
//   .recordItems: a hash beside the document, merged on read), so GET /v1/registrations/{id} shows the
//   progress of every replica. A refusal that concerns every item (the service's credentials) is recorded
//   once for the job; the other items then stop.
// - `finish`: writes the job's end (completed, or failed with that refusal).
//
// Killed replica: its `items` jobs stop renewing their locks and BullMQ's stalled-job check gives them to
// another replica within LOCK_MS + STALLED_CHECK_MS; items already recorded are skipped, those in flight are
// done again (materialization is idempotent). Closing replica: no new item starts, in-flight ones finish
// and are recorded, and its unfinished `items` jobs are retried (by any replica) shortly after. Redis away:
// items pause until the store is back, as in a single process. Priorities and the shared Databricks budget:
// every item is background work (target/write-scheduler.ts, fleet/permits.ts).
import { setTimeout as sleep } from 'node:timers/promises'
import { FlowProducer, Queue, Worker, type Job } from 'bullmq'
import pLimit, { type LimitFunction } from 'p-limit'
import { connectionOptionsOf } from '../fleet/permits.ts'
import { finish, isFinished, submittedJob, touch, type ItemFailure, type JobItem, type RegistrationJob, type SubmitInput } from './job.ts'
import type { RedisJobStore } from './redis-store.ts'
import { ShuttingDown, isStoreUnavailable } from './errors.ts'
import type { ItemRegistrar, RunnerLog } from './items.ts'
import { registrarFor, silent, type Registrations, type RegistrationRunnerOptions } from './runner.ts'

export interface FleetRegistrationRunnerOptions extends Pick<RegistrationRunnerOptions, 'resolver' | 'materializer' | 'clock' | 'concurrency' | 'maxAttempts' | 'backoffBaseMs' | 'backoffMaxMs' | 'log' | 'onItemSettled'> {
  store: RedisJobStore
  url: string
  /** Prefix of the queue's keys. */
  prefix: string
  /** Items per `items` job (default CHUNK_ITEMS). */
  chunkItems?: number
}

const QUEUE = 'registrations'
/** Items per `items` job: small enough to spread a group over the replicas, large enough to cost little. */
const CHUNK_ITEMS = 25
/** How long a replica's hold on an `items` job lasts unrenewed, and how often the others look for lapsed ones. */
const LOCK_MS = 10_000
const STALLED_CHECK_MS = 5_000
/** An `items` job a closing replica leaves is run again (by any replica) after this. */
const RETRY_MS = 1000
/**
 * Every job of the queue (a flow's too: FlowProducer does not apply the queue's defaults): run again after
 * a failure (only a closing replica or Redis away makes one), and kept an hour once finished.
 */
const JOB_OPTIONS = { attempts: 1000, backoff: { type: 'fixed', delay: RETRY_MS }, removeOnComplete: { age: 3600 }, removeOnFail: { age: 3600 } }
/** How long close() waits for the chunks running here (and for Redis) before it lets go. */
const CLOSE_MS = 30_000
/** Jobs whose document was read lately, answered while Redis is away. */
const KNOWN_JOBS = 100

interface ItemsData { id: string, from: number, to: number }

/** The queue, its flows and this replica's worker: made once Redis has answered (see engine()). */
interface Engine { queue: Queue, flows: FlowProducer, worker: Worker }

export class FleetRegistrationRunner implements Registrations {
  log: RunnerLog
  private engineMade: Engine | undefined
  private readonly limit: LimitFunction
  private readonly registrar: ItemRegistrar
  private readonly stop = new AbortController()
  private closing = false
  /** The last document read of each job, for GET while Redis is away. */
  private readonly known = new Map<string, RegistrationJob>()

  get store (): RedisJobStore { return this.options.store }

  constructor (private readonly options: FleetRegistrationRunnerOptions) {
    this.log = options.log ?? silent
    this.limit = pLimit(options.concurrency)
    this.registrar = registrarFor(options, () => this.log)
  }

  /**
   * BullMQ's parts, made once Redis has answered: a BullMQ connection that never connected cannot be
   * closed, so parts made while Redis is away would hold up shutdown.
   */
  private engine (): Engine {
    if (this.engineMade !== undefined) return this.engineMade
    const { url, prefix, concurrency, chunkItems } = this.options
    const connection = connectionOptionsOf(url)
    // Chunks at once: enough to keep `concurrency` items going while a chunk ends.
    const chunks = Math.max(2, 2 * Math.ceil(concurrency / (chunkItems ?? CHUNK_ITEMS)))
    const engine: Engine = {
      queue: new Queue(QUEUE, { connection, prefix, defaultJobOptions: JOB_OPTIONS }),
      flows: new FlowProducer({ connection, prefix }),
      worker: new Worker(QUEUE, async job => { await this.process(job) }, { connection, prefix, concurrency: chunks, lockDuration: LOCK_MS, stalledInterval: STALLED_CHECK_MS, autorun: false })
    }
    // Connection trouble is reported by /readyz and the store's state lines; without listeners BullMQ prints it raw.
    engine.queue.on('error', () => {})
    engine.flows.on('error', () => {})
    engine.worker.on('error', () => {})
    engine.worker.run().catch(() => { /* closed */ })
    this.engineMade = engine
    return engine
  }

  async submit (input: SubmitInput): Promise<RegistrationJob> {
    if (this.closing) throw new ShuttingDown()
    const job = submittedJob(input, this.options.clock.now())
    await this.store.save(job)
    // Stored first: if the plan cannot be queued now, the next start of any replica queues it (resume()).
    await this.planned(job.id).catch(err => { this.log.warn({ registration: job.id, err: messageOf(err) }, 'registration stored; it starts when a replica resumes it') })
    return structuredClone(job)
  }

  async get (id: string): Promise<RegistrationJob | undefined> {
    const key = id.toLowerCase()
    try {
      const job = await this.store.get(key)
      if (job !== undefined) this.remember(key, job)
      return job
    } catch (err) {
      // Redis away: what was last read of a running job, rather than nothing.
      const known = this.known.get(key)
      if (isStoreUnavailable(err) && known !== undefined) return known
      throw err
    }
  }

  /**
   * At start: once Redis answers, this replica takes its part of the fleet's registrations, and makes sure
   * every unfinished job has its plan on the queue (idempotent: every replica does it).
   */
  async resume (): Promise<number> {
    if (!await this.store.available(this.stop.signal)) return 0
    this.engine()
    const ids = await this.store.unfinished()
    for (const id of ids) await this.planned(id)
    return ids.length
  }

  async close (): Promise<void> {
    this.closing = true
    this.stop.abort()
    const engine = this.engineMade
    if (engine === undefined) return
    // Waits for the chunks running here: their in-flight items finish and are recorded, the rest is
    // retried. Bounded: with Redis away BullMQ's close would wait for it.
    const closed = (async () => {
      await engine.worker.close()
      await Promise.all([engine.queue.close(), engine.flows.close()])
    })()
    if (await Promise.race([closed.then(() => true), sleep(CLOSE_MS).then(() => false)])) return
    await Promise.all([engine.worker.disconnect(), engine.queue.disconnect(), engine.flows.disconnect()]).catch(() => {})
  }

  private async planned (id: string): Promise<void> {
    await this.engine().queue.add('plan', { id }, { jobId: `plan-${id}` })
  }

  private async process (job: Job): Promise<void> {
    const data = job.data as Partial<ItemsData>
    if (typeof data.id !== 'string') return
    if (job.name === 'plan') await this.plan(data.id)
    else if (job.name === 'items' && typeof data.from === 'number' && typeof data.to === 'number') await this.items({ id: data.id, from: data.from, to: data.to })
    else if (job.name === 'finish') await this.finish(data.id)
  }

  /** Lists a group's members if it has to, then hands the items to the fleet in chunks. */
  private async plan (id: string): Promise<void> {
    const job = await this.store.get(id)
    if (job === undefined || isFinished(job.status)) return
    if (job.source.kind === 'group' && (job.status === 'queued' || job.status === 'listing')) {
      job.status = 'listing'
      await this.saved(job)
      const listed = await this.registrar.members(job, job.source.groupId, { stopped: () => this.closing, wait: async ms => { await this.wait(ms) } })
      if (listed.kind === 'stopped') throw new Error('the replica is closing; another one lists the group')
      if (listed.kind === 'failed') {
        finish(job, 'failed', this.options.clock.now(), listed.failure)
        await this.store.save(job)
        return
      }
      job.items = listed.items
    }
    job.status = 'running'
    await this.saved(job)
    this.log.info({ registration: id, items: job.items.length }, 'registration running on the fleet')
    const size = this.options.chunkItems ?? CHUNK_ITEMS
    const children = Array.from({ length: Math.ceil(job.items.length / size) }, (_, k) => ({
      name: 'items',
      queueName: QUEUE,
      data: { id, from: k * size, to: Math.min(job.items.length, (k + 1) * size) },
      opts: { ...JOB_OPTIONS, jobId: `${id}-items-${k}` }
    }))
    await this.engine().flows.add({ name: 'finish', queueName: QUEUE, data: { id }, opts: { ...JOB_OPTIONS, jobId: `${id}-finish` }, children })
  }

  /** Registers the range's pending items, recording each outcome as it comes. */
  private async items ({ id, from, to }: ItemsData): Promise<void> {
    const job = await this.store.get(id)
    if (job === undefined || isFinished(job.status) || await this.store.fatalOf(id) !== undefined) return
    let fatal: ItemFailure | undefined
    let stopped = false
    const pending = job.items.map((item, i) => ({ item, i })).slice(from, to).filter(({ item }) => item.state === 'pending')
    await Promise.all(pending.map(async ({ item, i }) => {
      const end = await this.registrar.run(job, item, {
        limit: this.limit,
        go: async () => !this.closing && fatal === undefined && await this.store.available(this.stop.signal) && await this.store.fatalOf(id) === undefined,
        wait: async ms => { await this.wait(ms) }
      })
      if (end.kind === 'settled') {
        await this.recorded(id, i, item)
      } else if (end.kind === 'fatal') {
        fatal ??= end.failure
        await this.store.markFatal(id, end.failure)
      } else {
        stopped = true
      }
    }))
    // Left unfinished here (closing, or the store away at the end): the job is retried, by any replica.
    if (stopped && fatal === undefined && await this.store.fatalOf(id).catch(() => undefined) === undefined) throw new Error('items left to register')
  }

  /** An item's outcome reaches the store, through an outage, unless the replica closes meanwhile. */
  private async recorded (id: string, i: number, item: JobItem): Promise<void> {
    for (;;) {
      try {
        await this.store.recordItems(id, [[i, item]])
        return
      } catch (err) {
        if (!isStoreUnavailable(err) || !await this.store.available(this.stop.signal)) throw err
      }
    }
  }

  private async finish (id: string): Promise<void> {
    const job = await this.store.get(id)
    if (job === undefined || isFinished(job.status)) return
    const fatal = await this.store.fatalOf(id)
    finish(job, fatal === undefined ? 'completed' : 'failed', this.options.clock.now(), fatal)
    await this.store.save(job)
    this.log.info({ registration: id, status: job.status }, 'registration finished')
  }

  private async saved (job: RegistrationJob): Promise<void> {
    touch(job, this.options.clock.now())
    await this.store.save(job)
  }

  private remember (id: string, job: RegistrationJob): void {
    this.known.delete(id)
    this.known.set(id, job)
    if (this.known.size > KNOWN_JOBS) this.known.delete(this.known.keys().next().value as string)
  }

  /** A wait that close() cuts short. */
  private async wait (ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.stop.signal })
    } catch {
      // aborted: the runner is closing
    }
  }
}

function messageOf (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
