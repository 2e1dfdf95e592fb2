// The registration runner: takes jobs, lists a group's members, registers every item (resolve it from
// Entra, then materialize it in Databricks) and checkpoints the job into the store.
//
// - Bounded concurrency, one limit for the whole runner: two jobs do not double the load on Graph or
//   Databricks. The upstream clients keep their own rate budgets and honour Retry-After below this.
// - An item that meets an outage or throttling (a 503 problem: UPSTREAM_UNAVAILABLE / UPSTREAM_THROTTLED)
//   goes back to wait max(Retry-After, exponential backoff with jitter) without holding a slot; after
//   `maxAttempts` such attempts it is recorded as failed with UPSTREAM_UNAVAILABLE. Never dropped.
// - Per-principal outcomes (not found, disabled, refused by Databricks) are failures of that item only. A
//   refusal that concerns every item (the service's own Graph or Databricks credentials) fails the job.
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
import type { DirectoryPrincipal, PrincipalQuery } from '../directory/port.ts'
import type { Resolution, Resolver } from '../resolver/resolver.ts'
import type { Materializer } from '../resolver/materializer.ts'
import { BACKGROUND } from '../target/write-scheduler.ts'
import { MAX_PRINCIPALS, countsOf, isFinished, newJob, type ItemFailure, type JobItem, type JobSource, type RegistrationJob } from './job.ts'
import type { JobStore } from './store.ts'
import { ShuttingDown, isStoreUnavailable } from './errors.ts'

export interface RunnerLog {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
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
  /** Checkpoint after this many finished items (default 100) or this long (default 1 s), whichever first. */
  checkpointItems?: number
  checkpointMs?: number
  log?: RunnerLog
}

export interface SubmitInput {
  tenantId: string
  requestedBy: string
  source: JobSource
  /** The principals of a `principals` job. */
  items?: Array<{ query: PrincipalQuery, alternate?: PrincipalQuery }>
}

/** Codes that say the service itself cannot work (its credentials, its permissions): no item can succeed. */
const FATAL = new Set(['DIRECTORY_MISCONFIGURED', 'TARGET_MISCONFIGURED'])

type Outcome = { kind: 'done' } | { kind: 'stopped' } | { kind: 'retry', afterMs: number } | { kind: 'fail', failure: ItemFailure } | { kind: 'fatal', failure: ItemFailure }

const silent: RunnerLog = { info: () => {}, warn: () => {}, error: () => {} }

/** One job being run: the live document, its checkpointing, and whether it must stop. */
class Run {
  finishedSince = 0
  saving: Promise<boolean> | undefined
  again = false
  fatal: ItemFailure | undefined
  timer: NodeJS.Timeout | undefined

  constructor (readonly job: RegistrationJob) {}
}

export class RegistrationRunner {
  /** The app's logger, once it exists (the runner is built before the app). */
  log: RunnerLog
  private readonly limit: LimitFunction
  private readonly runs = new Map<string, { run: Run, done: Promise<void> }>()
  private readonly stop = new AbortController()
  private closing = false
  private resuming: Promise<void> = Promise.resolve()
  private readonly maxAttempts: number
  private readonly backoffBaseMs: number
  private readonly backoffMaxMs: number
  private readonly checkpointItems: number
  private readonly checkpointMs: number

  get store (): JobStore { return this.options.store }

  constructor (private readonly options: RegistrationRunnerOptions) {
    this.limit = pLimit(options.concurrency)
    this.log = options.log ?? silent
    this.maxAttempts = options.maxAttempts ?? 8
    this.backoffBaseMs = options.backoffBaseMs ?? 1000
    this.backoffMaxMs = options.backoffMaxMs ?? 30_000
    this.checkpointItems = options.checkpointItems ?? 100
    this.checkpointMs = options.checkpointMs ?? 1000
  }

  /** Creates the job, stores it, and starts it. Returns the job as it was accepted (status `queued`). */
  async submit (input: SubmitInput): Promise<RegistrationJob> {
    if (this.closing) throw new ShuttingDown()
    const job = newJob({ tenantId: input.tenantId, requestedBy: input.requestedBy, now: this.options.clock.now(), source: input.source })
    job.items = (input.items ?? []).map(({ query, alternate }) => ({ query, ...(alternate !== undefined ? { alternate } : {}), state: 'pending', attempts: 0 }))
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
          await this.wait(this.delay(attempt, 0))
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
      await this.wait(this.delay(attempt, 0))
    }
  }

  /** Lists the group's members into the job's items; false when the job cannot go on (failed or stopping). */
  private async list (run: Run, groupId: string): Promise<boolean> {
    const { job } = run
    job.status = 'listing'
    this.touch(job)
    await this.checkpoint(run)
    for (let attempt = 1; ; attempt++) {
      if (this.closing) return false
      let members: DirectoryPrincipal[] | null
      try {
        members = await this.options.resolver.groupMembers(job.tenantId, groupId)
      } catch (err) {
        const outcome = this.classify(err, job)
        if (outcome.kind === 'retry' && attempt < this.maxAttempts) {
          await this.wait(this.delay(attempt, outcome.afterMs))
          continue
        }
        const failure = outcome.kind === 'fail' || outcome.kind === 'fatal' ? outcome.failure : unavailable(attempt)
        this.finish(job, 'failed', failure)
        await this.lastCheckpoint(run)
        return false
      }
      if (members === null || members.length > MAX_PRINCIPALS) {
        this.finish(job, 'failed', members === null
          ? { code: 'GROUP_NOT_FOUND', message: `No group ${groupId} exists in tenant ${job.tenantId} (any more).` }
          : { code: 'GROUP_TOO_LARGE', message: `Group ${groupId} has ${members.length} users and service principals; a registration takes at most ${MAX_PRINCIPALS}. Register its subgroups separately.` })
        await this.lastCheckpoint(run)
        return false
      }
      job.items = members.map(principal => ({ query: { id: principal.id }, principal, state: 'pending', attempts: 0 }))
      return true
    }
  }

  /** One item, through its retries, until it is registered, failed, or the runner stops. */
  private async item (run: Run, item: JobItem): Promise<void> {
    for (;;) {
      const outcome = await this.limit(async (): Promise<Outcome> => {
        // Paused while the store is away: progress that cannot be checkpointed is not made.
        if (!await this.storeAvailable()) return { kind: 'stopped' }
        if (this.closing || run.fatal !== undefined) return { kind: 'stopped' }
        try {
          return await this.register(run.job, item)
        } catch (err) {
          return this.classify(err, run.job)
        }
      })
      switch (outcome.kind) {
        case 'stopped':
          return
        case 'done':
          this.settled(run)
          return
        case 'fail':
          item.state = 'failed'
          item.failure = outcome.failure
          this.settled(run)
          return
        case 'fatal':
          // Reported once for the job; the item stays pending for a resubmission after the fix.
          run.fatal ??= outcome.failure
          return
        case 'retry':
          item.attempts++
          if (item.attempts >= this.maxAttempts) {
            item.state = 'failed'
            item.failure = unavailable(item.attempts)
            this.settled(run)
            return
          }
          await this.wait(this.delay(item.attempts, outcome.afterMs))
      }
    }
  }

  private async register (job: RegistrationJob, item: JobItem): Promise<Outcome> {
    const { resolver, materializer } = this.options
    // Under automatic identity management the account learns groups and memberships from Entra itself:
    // registering the principal is enough, and spares a Graph read per principal.
    const groups = !materializer.learnsMembershipsItself
    let principal = item.principal
    if (principal !== undefined && !principal.accountEnabled) return disabled(principal)
    let resolution: Resolution
    if (principal !== undefined) {
      resolution = groups ? await resolver.resolveLoaded(principal) : { principal, groups: [], groupsSource: 'graph' }
    } else {
      try {
        resolution = await resolver.resolve(job.tenantId, item.query, { groups })
      } catch (err) {
        // A string that named nobody as an object id (or UPN) may be an appId (or a mail address).
        if (!isNotFound(err) || item.alternate === undefined) throw err
        resolution = await resolver.resolve(job.tenantId, item.alternate, { groups })
      }
      principal = resolution.principal
    }
    if (principal.kind === 'group') {
      return { kind: 'fail', failure: { code: 'NOT_A_PRINCIPAL', message: `${principal.id} is a group ('${principal.displayName}'): register its members with \`group\` instead.` } }
    }
    if (!principal.accountEnabled) return disabled(principal)
    // Background work: a login or a share takes the Databricks write budget first.
    const materialized = await materializer.materialize(resolution, BACKGROUND)
    item.state = 'registered'
    item.databricksId = materialized.principalId
    delete item.failure
    return { kind: 'done' }
  }

  /** What an error means for the item: wait and retry, fail it, or fail the job. */
  private classify (err: unknown, job: RegistrationJob): Outcome {
    const e = err as { code?: unknown, statusCode?: unknown, message?: unknown, headers?: Record<string, string> }
    const code = typeof e.code === 'string' ? e.code : undefined
    const status = typeof e.statusCode === 'number' ? e.statusCode : undefined
    if (status === 503 && code !== undefined) {
      const retryAfter = Number(e.headers?.['retry-after'])
      return { kind: 'retry', afterMs: Number.isFinite(retryAfter) ? retryAfter * 1000 : 0 }
    }
    if (code !== undefined && status !== undefined && status >= 400 && typeof e.message === 'string') {
      const failure = { code, message: e.message }
      return FATAL.has(code) ? { kind: 'fatal', failure } : { kind: 'fail', failure }
    }
    this.log.error({ err, registration: job.id }, 'registration item failed unexpectedly')
    return { kind: 'fail', failure: { code: 'INTERNAL', message: 'An unexpected error occurred; it has been logged. Register this principal again later or contact the operator.' } }
  }

  /** Exponential backoff with jitter, never shorter than what the upstream asked for. */
  private delay (attempt: number, retryAfterMs: number): number {
    const backoff = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** (attempt - 1))
    return Math.max(retryAfterMs, backoff) * (1 + 0.2 * Math.random())
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
    job.updatedAt = new Date(this.options.clock.now()).toISOString()
  }

  private finish (job: RegistrationJob, status: 'completed' | 'failed', error?: ItemFailure): void {
    job.status = status
    if (error !== undefined) job.error = error
    this.touch(job)
    job.finishedAt = job.updatedAt
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

function isNotFound (err: unknown): boolean {
  return (err as { code?: unknown }).code === 'PRINCIPAL_NOT_FOUND'
}

function disabled (principal: DirectoryPrincipal): Outcome {
  return { kind: 'fail', failure: { code: 'PRINCIPAL_DISABLED', message: `${principal.id} ('${principal.displayName}') is disabled in Entra (accountEnabled=false); it was not registered. Enable it, then register it again.` } }
}

function unavailable (attempts: number): ItemFailure {
  return { code: 'UPSTREAM_UNAVAILABLE', message: `Microsoft Graph or Databricks stayed unavailable or throttling through ${attempts} attempts; register this principal again later.` }
}
