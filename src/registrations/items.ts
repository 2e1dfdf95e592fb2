// One registration item through its attempts: resolve the principal from Entra, materialize it in
// Databricks as background work, and tell a failure of the item from one of the whole job.
//
// - An item that meets an outage or throttling (a 503 problem: UPSTREAM_UNAVAILABLE / UPSTREAM_THROTTLED)
//   goes back to wait max(Retry-After, exponential backoff with jitter) without holding a slot; after
//   `maxAttempts` such attempts it is recorded as failed with UPSTREAM_UNAVAILABLE. Never dropped.
// - Per-principal outcomes (not found, disabled, refused by Databricks) are failures of that item only. A
//   refusal that concerns every item (the service's own Graph or Databricks credentials) fails the job.
// Used by the single-process runner (runner.ts) and by the fleet's (fleet-runner.ts) alike.
import type { LimitFunction } from 'p-limit'
import type { DirectoryPrincipal } from '../directory/port.ts'
import type { Resolution, Resolver } from '../resolver/resolver.ts'
import type { Materializer } from '../resolver/materializer.ts'
import { BACKGROUND } from '../target/write-scheduler.ts'
import { MAX_PRINCIPALS, type ItemFailure, type JobItem, type RegistrationJob } from './job.ts'

export interface RunnerLog {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
}

export interface ItemRegistrarOptions {
  resolver: Resolver
  materializer: Materializer
  maxAttempts: number
  backoffBaseMs: number
  backoffMaxMs: number
  /** The runner's log as it is now (the app's logger arrives after the runner is built). */
  log: () => RunnerLog
  /** An item registered or failed (metrics). */
  onSettled?: (state: 'registered' | 'failed') => void
}

/** Codes that say the service itself cannot work (its credentials, its permissions): no item can succeed. */
const FATAL = new Set(['DIRECTORY_MISCONFIGURED', 'TARGET_MISCONFIGURED'])

export type Outcome = { kind: 'done' } | { kind: 'stopped' } | { kind: 'retry', afterMs: number } | { kind: 'fail', failure: ItemFailure } | { kind: 'fatal', failure: ItemFailure }

/** How an item's attempts ended: registered or failed (`settled`), the job's fatal refusal, or stopped by the runner. */
export type ItemEnd = { kind: 'settled' } | { kind: 'fatal', failure: ItemFailure } | { kind: 'stopped' }

export interface ItemHooks {
  /** The runner's bound on items at once. */
  limit: LimitFunction
  /** Whether the next attempt may start (the store is there, the runner is not closing, no fatal refusal). */
  go: () => Promise<boolean>
  /** A wait the runner can cut short. */
  wait: (ms: number) => Promise<void>
}

export class ItemRegistrar {
  constructor (private readonly options: ItemRegistrarOptions) {}

  private settled (item: JobItem): ItemEnd {
    this.options.onSettled?.(item.state === 'registered' ? 'registered' : 'failed')
    return { kind: 'settled' }
  }

  /**
   * A group job's items: the group's transitive users and service principals, listed through outages and
   * throttling like an item's attempts. `failed`: the job cannot go on (no such group, too large, refused).
   */
  async members (job: RegistrationJob, groupId: string, hooks: { stopped: () => boolean, wait: (ms: number) => Promise<void> }): Promise<{ kind: 'listed', items: JobItem[] } | { kind: 'failed', failure: ItemFailure } | { kind: 'stopped' }> {
    for (let attempt = 1; ; attempt++) {
      if (hooks.stopped()) return { kind: 'stopped' }
      let members: DirectoryPrincipal[] | null
      try {
        members = await this.options.resolver.groupMembers(job.tenantId, groupId)
      } catch (err) {
        const outcome = this.classify(err, job)
        if (outcome.kind === 'retry' && attempt < this.options.maxAttempts) {
          await hooks.wait(this.delay(attempt, outcome.afterMs))
          continue
        }
        return { kind: 'failed', failure: outcome.kind === 'fail' || outcome.kind === 'fatal' ? outcome.failure : unavailable(attempt) }
      }
      if (members === null) return { kind: 'failed', failure: { code: 'GROUP_NOT_FOUND', message: `No group ${groupId} exists in tenant ${job.tenantId} (any more).` } }
      if (members.length > MAX_PRINCIPALS) {
        return { kind: 'failed', failure: { code: 'GROUP_TOO_LARGE', message: `Group ${groupId} has ${members.length} users and service principals; a registration takes at most ${MAX_PRINCIPALS}. Register its subgroups separately.` } }
      }
      return { kind: 'listed', items: members.map(principal => ({ query: { id: principal.id }, principal, state: 'pending', attempts: 0 })) }
    }
  }

  /** One item, through its retries, until it is registered, failed, the job fails, or the runner stops. */
  async run (job: RegistrationJob, item: JobItem, hooks: ItemHooks): Promise<ItemEnd> {
    for (;;) {
      const outcome = await hooks.limit(async (): Promise<Outcome> => {
        if (!await hooks.go()) return { kind: 'stopped' }
        try {
          return await this.register(job, item)
        } catch (err) {
          return this.classify(err, job)
        }
      })
      switch (outcome.kind) {
        case 'stopped':
          return { kind: 'stopped' }
        case 'done':
          return this.settled(item)
        case 'fail':
          item.state = 'failed'
          item.failure = outcome.failure
          return this.settled(item)
        case 'fatal':
          // Reported once for the job; the item stays pending for a resubmission after the fix.
          return { kind: 'fatal', failure: outcome.failure }
        case 'retry':
          item.attempts++
          if (item.attempts >= this.options.maxAttempts) {
            item.state = 'failed'
            item.failure = unavailable(item.attempts)
            return this.settled(item)
          }
          await hooks.wait(this.delay(item.attempts, outcome.afterMs))
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
  classify (err: unknown, job: RegistrationJob): Outcome {
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
    this.options.log().error({ err, registration: job.id }, 'registration item failed unexpectedly')
    return { kind: 'fail', failure: { code: 'INTERNAL', message: 'An unexpected error occurred; it has been logged. Register this principal again later or contact the operator.' } }
  }

  /** Exponential backoff with jitter, never shorter than what the upstream asked for. */
  delay (attempt: number, retryAfterMs: number): number {
    const backoff = Math.min(this.options.backoffMaxMs, this.options.backoffBaseMs * 2 ** (attempt - 1))
    return Math.max(retryAfterMs, backoff) * (1 + 0.2 * Math.random())
  }
}

function isNotFound (err: unknown): boolean {
  return (err as { code?: unknown }).code === 'PRINCIPAL_NOT_FOUND'
}

function disabled (principal: DirectoryPrincipal): Outcome {
  return { kind: 'fail', failure: { code: 'PRINCIPAL_DISABLED', message: `${principal.id} ('${principal.displayName}') is disabled in Entra (accountEnabled=false); it was not registered. Enable it, then register it again.` } }
}

export function unavailable (attempts: number): ItemFailure {
  return { code: 'UPSTREAM_UNAVAILABLE', message: `Microsoft Graph or Databricks stayed unavailable or throttling through ${attempts} attempts; register this principal again later.` }
}
