// The registration runner of a single process: takes jobs, lists a group's members, registers every item
// (items.ts: resolve it from Entra, then materialize it in Databricks) and checkpoints the job into the
// store. With replicas (REDIS_URL) fleet-runner.ts spreads the items over them instead.
//
// - Bounded concurrency, one limit for the whole runner: two jobs do not double the load on Graph or
//   Databricks. The upstream clients keep their own rate budgets and honour Retry-After below this.
// - Checkpoints every `checkpointItems` finished items or `checkpointMs`, and at the end, never per item.
//   Materialization is idempotent, so items in flight at a crash are simply done again after a restart.
// - close(): no new item starts, waits are cut short, in-flight items finish, the job is checkpointed
//   as it stands (still `running` or `listing`) and a later start resumes it.
// - A store that goes away (Redis down) pauses the items: none starts until the store is back, then they go
//   on. A failed checkpoint is taken again later; the last one (the job's end) waits for the store, so a
//   finished job is never left `running`. resume() waits for the store too.
import { setTimeout as sleep } from 'node:timers/promises'
import pLimit, { type LimitFunction } from 'p-limit'
import type { Clock } from '../clock.ts'
import type { Resolver } from '../resolver/resolver.ts'
import type { Materializer } from '../resolver/materializer.ts'
import { countsOf, finish, isFinished, submittedJob, touch, type ItemFailure, type JobItem, type RegistrationJob, type SubmitInput } from './job.ts'
import type { JobStore } from './store.ts'
import { ShuttingDown, isStoreUnavailable } from './errors.ts'
import { ItemRegistrar, type RunnerLog } from './items.ts'

export type { RunnerLog } from './items.ts'

/** What the routes and the service see of a runner, single-process or the fleet's. */
export interface Registrations {
  /** The app's logger, once it exists (the runner is built before the app). */
  log: RunnerLog
  readonly store: JobStore
  /** Creates the job, stores it, and starts it. Returns the job as it was accepted (status `queued`). */
  submit: (input: SubmitInput) => Promise<RegistrationJob>
  /** The job as it is now. */
  get: (id: string) => Promise<RegistrationJob | undefined>
  /** Starts (or makes sure the fleet runs) every unfinished job of the store; how many. */
  resume: () => Promise<number>
  close: () => Promise<void>
}

export interface RegistrationRunnerOptions {
  store: JobStore
  resolver: Resolver
  materializer: Materializer
  clock: Clock
  /** Items registered at once, over every job. */
  concurrency: number
  /** Attempts of one item through outages and throttling before it is recorded as failed (default 8). */
  maxAttempts?: number
  /** First backoff after an outage (doubles per attempt, default 1 s) and the cap (default 30 s). */
  backoffBaseMs?: number
  backoffMaxMs?: number
  /** An item registered or failed (metrics). */
  onItemSettled?: (state: 'registered' | 'failed') => void
  /** Checkpoint after this many finished items (default 100) or this long (default 1 s), whichever first. */
  checkpointItems?: number
  checkpointMs?: number
  log?: RunnerLog
}

export const silent: RunnerLog = { info: () => {}, warn: () => {}, error: () => {} }

/** One job being run: the live document, its checkpointing, and whether it must stop. */
class Run {
  finishedSince = 0
  saving: Promise<boolean> | undefined
  again = false
  fatal: ItemFailure | undefined
  timer: NodeJS.Timeout | undefined

  constructor (readonly job: RegistrationJob) {}
}

export class RegistrationRunner implements Registrations {
  log: RunnerLog
  private readonly limit: LimitFunction
  private readonly runs = new Map<string, { run: Run, done: Promise<void> }>()
  private readonly stop = new AbortController()
  private closing = false
  private resuming: Promise<void> = Promise.resolve()
  private readonly registrar: ItemRegistrar
  private readonly checkpointItems: number
  private readonly checkpointMs: number

  get store (): JobStore { return this.options.store }

  constructor (private readonly options: RegistrationRunnerOptions) {
    this.limit = pLimit(options.concurrency)
    this.log = options.log ?? silent
    this.registrar = registrarFor(options, () => this.log)
    this.checkpointItems = options.checkpointItems ?? 100
    this.checkpointMs = options.checkpointMs ?? 1000
  }

  /** Creates the job, stores it, and starts it. Returns the job as it was accepted (status `queued`). */
  async submit (input: SubmitInput): Promise<RegistrationJob> {
    if (this.closing) throw new ShuttingDown()
    const job = submittedJob(input, this.options.clock.now())
    await this.options.store.save(job)
    const accepted = structuredClone(job)
    // Closed meanwhile: the job is stored as queued, and the next start resumes it.
    if (!this.closing) this.start(job)
    return accepted
  }

  /** The job as it is now: live while this runner runs it, else its last checkpoint. */
  async get (id: string): Promise<RegistrationJob | undefined> {
    return this.runs.get(id.toLowerCase())?.run.job ?? await this.options.store.get(id)
  }

  /**
   * Starts every unfinished job of the store (at service start), waiting for the store if it is away.
   * Returns how many.
   */
  async resume (): Promise<number> {
    const resuming = (async () => {
      let n = 0
      for (let attempt = 1; ; attempt++) {
        if (!await this.storeAvailable()) return n
        try {
          for (const id of await this.options.store.unfinished()) {
            if (this.closing) break
            if (this.runs.has(id.toLowerCase())) continue
            const job = await this.options.store.get(id)
            if (this.closing) break
            if (job === undefined || isFinished(job.status) || this.runs.has(job.id)) continue
            this.log.info({ registration: job.id, status: job.status, registered: countsOf(job).registered }, 'resuming registration')
            this.start(job)
            n++
          }
          return n
        } catch (err) {
          // Away again between the check and the reads: the jobs are still there, read them when it is back.
          if (!isStoreUnavailable(err)) throw err
          await this.wait(this.registrar.delay(attempt, 0))
        }
      }
    })()
    this.resuming = resuming.then(() => {}, () => {})
    return await resuming
  }

  /** Stops taking items, lets the in-flight ones finish, checkpoints every job. */
  async close (): Promise<void> {
    this.closing = true
    this.stop.abort()
    await this.resuming
    await Promise.allSettled([...this.runs.values()].map(async r => { await r.done }))
  }

  private start (job: RegistrationJob): void {
    const run = new Run(job)
    const done = this.execute(run)
      .catch(err => { this.log.error({ err, registration: job.id }, 'registration stopped by an unexpected error') })
      .finally(() => {
        clearInterval(run.timer)
        this.runs.delete(job.id)
      })
    this.runs.set(job.id, { run, done })
  }

  private async execute (run: Run): Promise<void> {
    const { job } = run
    run.timer = setInterval(() => { if (run.finishedSince > 0) this.checkpoint(run).catch(() => {}) }, this.checkpointMs)
    run.timer.unref()
    if (job.source.kind === 'group' && (job.status === 'queued' || job.status === 'listing')) {
      const listed = await this.list(run, job.source.groupId)
      if (!listed) return
    }
    this.touch(job)
    job.status = 'running'
    await this.checkpoint(run)
    const attempts = job.items.filter(item => item.state === 'pending').map(async item => { await this.item(run, item) })
    await Promise.all(attempts)
    if (run.fatal !== undefined) {
      this.finish(job, 'failed', run.fatal)
    } else if (!this.closing) {
      this.finish(job, 'completed')
    }
    await this.lastCheckpoint(run)
  }

  /** The job's end (or where a closing runner left it) must reach the store: through an outage, once it is back. */
  private async lastCheckpoint (run: Run): Promise<void> {
    for (let attempt = 1; !await this.checkpoint(run) && !this.closing; attempt++) {
      if (!await this.storeAvailable()) return
      await this.wait(this.registrar.delay(attempt, 0))
    }
  }

  /** Lists the group's members into the job's items; false when the job cannot go on (failed or stopping). */
  private async list (run: Run, groupId: string): Promise<boolean> {
    const { job } = run
    job.status = 'listing'
    this.touch(job)
    await this.checkpoint(run)
    const listed = await this.registrar.members(job, groupId, { stopped: () => this.closing, wait: async (ms: number) => { await this.wait(ms) } })
    if (listed.kind === 'stopped') return false
    if (listed.kind === 'failed') {
      this.finish(job, 'failed', listed.failure)
      await this.lastCheckpoint(run)
      return false
    }
    job.items = listed.items
    return true
  }

  /** One item, through its retries; settled ones count towards the next checkpoint. */
  private async item (run: Run, item: JobItem): Promise<void> {
    const end = await this.registrar.run(run.job, item, {
      limit: this.limit,
      go: async () => await this.storeAvailable() && !this.closing && run.fatal === undefined,
      wait: async (ms: number) => { await this.wait(ms) }
    })
    if (end.kind === 'settled') this.settled(run)
    else if (end.kind === 'fatal') run.fatal ??= end.failure
  }

  /** Waits while the store is away; false when the runner closes meanwhile. */
  private async storeAvailable (): Promise<boolean> {
    if (this.closing) return false
    const available = this.options.store.available
    if (available === undefined) return true
    return await available.call(this.options.store, this.stop.signal) && !this.closing
  }

  /** A wait that close() cuts short. */
  private async wait (ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.stop.signal })
    } catch {
      // aborted: the runner is closing
    }
  }

  private settled (run: Run): void {
    this.touch(run.job)
    if (++run.finishedSince >= this.checkpointItems) this.checkpoint(run).catch(() => {})
  }

  private touch (job: RegistrationJob): void {
    touch(job, this.options.clock.now())
  }

  private finish (job: RegistrationJob, status: 'completed' | 'failed', error?: ItemFailure): void {
    finish(job, status, this.options.clock.now(), error)
  }

  /**
   * Saves the job; one save at a time per job, and one more if it changed meanwhile. Resolves whether the
   * last save succeeded.
   */
  private async checkpoint (run: Run): Promise<boolean> {
    if (run.saving !== undefined) {
      run.again = true
      return await run.saving
    }
    run.saving = (async () => {
      let saved = false
      try {
        do {
          run.again = false
          run.finishedSince = 0
          try {
            await this.options.store.save(run.job)
            saved = true
          } catch (err) {
            // The next checkpoint tries again; a restart meanwhile redoes the items since the last one.
            saved = false
            const expected = isStoreUnavailable(err)
            this.log[expected ? 'warn' : 'error'](expected ? { registration: run.job.id, code: (err as { code: string }).code } : { err, registration: run.job.id }, 'registration checkpoint failed')
          }
        } while (run.again)
      } finally {
        // In the same turn as the last check of `again`: no request to save can fall in between.
        run.saving = undefined
      }
      return saved
    })()
    return await run.saving
  }
}

/** The item logic both runners share, with the options' defaults. */
export function registrarFor (options: Pick<RegistrationRunnerOptions, 'resolver' | 'materializer' | 'maxAttempts' | 'backoffBaseMs' | 'backoffMaxMs' | 'onItemSettled'>, log: () => RunnerLog): ItemRegistrar {
  return new ItemRegistrar({
    ...(options.onItemSettled !== undefined ? { onSettled: options.onItemSettled } : {}),
    resolver: options.resolver,
    materializer: options.materializer,
    maxAttempts: options.maxAttempts ?? 8,
    backoffBaseMs: options.backoffBaseMs ?? 1000,
    backoffMaxMs: options.backoffMaxMs ?? 30_000,
    log
  })
}
