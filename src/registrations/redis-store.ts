// The Redis job store (REDIS_URL): a key per job holding its JSON, and a set of the unfinished jobs' ids,
// both written in one MULTI so the set never disagrees with the documents. While a job runs on several
// replicas, each records its items' outcomes in a hash beside the document (recordItems), merged on read. Finished jobs expire after
// FINISHED_TTL_SECONDS; unfinished ones never do (they wait for a service to resume them).
//
// Redis going away is an expected condition, not an error to print on every reconnection attempt: the
// store follows the connection (connected, unreachable, lost, reconnected) and reports each change once to
// its listeners (the service logs it), fails its calls at once while Redis is away (503
// REGISTRATIONS_UNAVAILABLE), tells the runner when it may write again (`available`), and answers the
// readiness probe (`check`).
import { Redis, ReplyError } from 'ioredis'
import { isFinished, type ItemFailure, type JobItem, type RegistrationJob } from './job.ts'
import type { JobStore } from './store.ts'
import { storeUnavailable } from './errors.ts'

/** How long a completed or failed job can still be read. */
export const FINISHED_TTL_SECONDS = 30 * 24 * 3600

export interface RedisJobStoreOptions {
  url: string
  /** Prefix of every key (tests use their own). */
  prefix?: string
}

/** A change of the connection: `connected` (the first time), `unreachable` (never connected yet), `lost`, `reconnected`. */
export interface RedisStateChange {
  state: 'connected' | 'unreachable' | 'lost' | 'reconnected'
  /** Why it is down: the connection error's code or message (never an address or a stack). */
  reason?: string
  /** `reconnected`: how long it was away. */
  downMs?: number
}

type State = 'idle' | 'up' | 'down'

/** How long the readiness probe waits for a first connection or a PING. */
const PROBE_TIMEOUT_MS = 1500

export class RedisJobStore implements JobStore {
  private readonly redis: Redis
  private readonly prefix: string
  private state: State = 'idle'
  private downSince = 0
  private reason: string | undefined
  private closing = false
  private readonly listeners = new Set<(change: RedisStateChange) => void>()
  private readonly waiters = new Set<() => void>()

  constructor (options: RedisJobStoreOptions) {
    this.prefix = options.prefix ?? 'jir:registrations:'
    // Commands wait (bounded) for a reconnect instead of failing at once; a Redis that stays away fails them.
    this.redis = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 3, enableOfflineQueue: true })
    // A listener of its own: without one ioredis prints every failed reconnection attempt with its stack.
    this.redis.on('error', (err: Error) => { this.reason = reasonOf(err) })
    this.redis.on('ready', () => { this.changed('up') })
    this.redis.on('close', () => { if (!this.closing && this.redis.status !== 'ready') this.changed('down') })
  }

  /** Listens to the connection's changes (one call per change). */
  onStateChange (listener: (change: RedisStateChange) => void): void {
    this.listeners.add(listener)
  }

  /** Whether Redis is connected now. */
  get connected (): boolean { return this.state === 'up' }

  async save (job: RegistrationJob): Promise<void> {
    const key = this.key(job.id)
    await this.call(async () => {
      const multi = this.redis.multi()
      if (isFinished(job.status)) {
        // Its items' outcomes are in the document now (get() merged them).
        multi.set(key, JSON.stringify(job), 'EX', FINISHED_TTL_SECONDS).srem(this.unfinishedKey, job.id).del(this.itemsKey(job.id), this.fatalKey(job.id))
      } else {
        multi.set(key, JSON.stringify(job)).sadd(this.unfinishedKey, job.id)
      }
      const results = await multi.exec()
      const failed = results?.find(([err]) => err !== null)
      if (failed?.[0] != null) throw failed[0]
    })
  }

  /** The job with the outcomes of its items recorded since its last save (recordItems). */
  async get (id: string): Promise<RegistrationJob | undefined> {
    const [text, recorded] = await this.call(async () => await Promise.all([this.redis.get(this.key(id)), this.redis.hgetall(this.itemsKey(id))]))
    if (text === null) return undefined
    const job = JSON.parse(text) as RegistrationJob
    for (const [index, item] of Object.entries(recorded)) {
      const i = Number(index)
      if (Number.isInteger(i) && i >= 0 && i < job.items.length) job.items[i] = JSON.parse(item) as JobItem
    }
    return job
  }

  /**
   * Records items' outcomes by their place in the job, without rewriting the job: replicas registering
   * parts of one job (fleet-runner.ts) each record theirs. Idempotent: an item done again records the same.
   */
  async recordItems (id: string, items: Array<[number, JobItem]>): Promise<void> {
    if (items.length === 0) return
    await this.call(async () => await this.redis.hset(this.itemsKey(id), Object.fromEntries(items.map(([i, item]) => [String(i), JSON.stringify(item)]))))
  }

  /** Records the refusal that fails the whole job (the first one stays). */
  async markFatal (id: string, failure: ItemFailure): Promise<void> {
    await this.call(async () => await this.redis.set(this.fatalKey(id), JSON.stringify(failure), 'NX'))
  }

  /** The refusal that fails the job, if one was recorded. */
  async fatalOf (id: string): Promise<ItemFailure | undefined> {
    const text = await this.call(async () => await this.redis.get(this.fatalKey(id)))
    return text === null ? undefined : JSON.parse(text) as ItemFailure
  }

  async unfinished (): Promise<string[]> {
    return await this.call(async () => await this.redis.smembers(this.unfinishedKey))
  }

  /** Resolves true once Redis is connected (connecting if it was never asked), false if `signal` aborts first. */
  async available (signal?: AbortSignal): Promise<boolean> {
    if (this.state === 'up') return true
    if (signal?.aborted === true || this.closing) return false
    this.connect()
    return await new Promise<boolean>(resolve => {
      const done = (up: boolean): void => {
        this.waiters.delete(onUp)
        signal?.removeEventListener('abort', onAbort)
        resolve(up)
      }
      const onUp = (): void => { done(true) }
      const onAbort = (): void => { done(false) }
      this.waiters.add(onUp)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** The readiness check: throws, saying why, unless Redis is connected and answers a PING. */
  async check (): Promise<void> {
    if (this.state === 'idle') {
      const stop = AbortSignal.timeout(PROBE_TIMEOUT_MS)
      await this.available(stop)
    }
    if (this.state !== 'up') {
      const since = this.state === 'down' ? ` for ${Math.round((Date.now() - this.downSince) / 1000)} s` : ''
      throw new Error(`unreachable${since}${this.reason !== undefined ? ` (${this.reason})` : ''}; registrations wait for it`)
    }
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`no answer to PING within ${PROBE_TIMEOUT_MS} ms`)) }, PROBE_TIMEOUT_MS) })
    try {
      await Promise.race([this.redis.ping(), late])
    } finally {
      clearTimeout(timer)
    }
  }

  async close (): Promise<void> {
    this.closing = true
    for (const wake of [...this.waiters]) wake()
    await this.redis.quit().catch(() => { this.redis.disconnect() })
  }

  private get unfinishedKey (): string { return `${this.prefix}unfinished` }

  private key (id: string): string { return `${this.prefix}job:${id.toLowerCase()}` }

  private itemsKey (id: string): string { return `${this.prefix}items:${id.toLowerCase()}` }

  private fatalKey (id: string): string { return `${this.prefix}fatal:${id.toLowerCase()}` }

  private connect (): void {
    if (this.redis.status === 'wait') this.redis.connect().catch(() => { /* reported through the 'error' listener */ })
  }

  /** A command: refused at once while Redis is known to be away; a connection failure is a 503, a Redis error itself. */
  private async call<T> (command: () => Promise<T>): Promise<T> {
    if (this.state === 'down') throw storeUnavailable()
    try {
      return await command()
    } catch (err) {
      if (err instanceof ReplyError) throw err
      throw storeUnavailable(err)
    }
  }

  private changed (next: 'up' | 'down'): void {
    const previous = this.state
    if (previous === next) return
    this.state = next
    let change: RedisStateChange
    if (next === 'up') {
      change = previous === 'idle' ? { state: 'connected' } : { state: 'reconnected', downMs: Date.now() - this.downSince }
      this.reason = undefined
      for (const wake of [...this.waiters]) wake()
    } else {
      this.downSince = Date.now()
      change = { state: previous === 'idle' ? 'unreachable' : 'lost', reason: this.reason ?? 'connection closed' }
    }
    for (const listener of this.listeners) {
      try {
        listener(change)
      } catch {
        // a listener (the log) must not break the store
      }
    }
  }
}

/** A connection error as an operator reads it: its code (ECONNREFUSED, ENOTFOUND, …) or message, no address. */
function reasonOf (err: Error): string {
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string') return code
  return err.message.replace(/\s+\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?/g, '').slice(0, 200)
}
