// Applies Entra's changes to what the service materialized, and to its caches. The changes are triggers:
// what is written follows from what Entra says now, and each write is idempotent, so a replayed round, a
// duplicated page or a change already applied by a login is harmless.
//
// - A user or service principal updated: its caches are forgotten everywhere they are held (by id, UPN,
//   mail, appId; its groups), then the account's copy is set active or inactive as Entra's accountEnabled
//   says. Soft-deleted or permanently deleted: inactive. Never removed: its account id, and the grants to
//   it, survive a restore (Entra keeps deleted objects 30 days); an operator removes leavers for good.
// - A group: members removed → the memberships removed; members added → added when both ends are already
//   in the account (others arrive at their first use); renamed → renamed by the naming rules; deleted →
//   retired (soft: memberships removed, group kept for a restore; permanent: group deleted). The caches
//   of everything whose closure runs through the group are forgotten.
// - The group filter holds here as at login: a nesting edge is added only when every group is admitted
//   (with a filter, nesting is collapsed at materialization, so edges are left to the members' next use).
// - Only objects linked to Entra (externalId) change: Databricks-internal groups and members never do
//   (the Target guarantees it).
// - Under automatic identity management the Target writes nothing (Databricks follows Entra itself) and
//   the caches still follow.
// - Throttling is expected, not a failure: a round applies a burst of changes at exactly Databricks' write
//   limits, so a change whose write is throttled (429, after the client's own retries) waits out the
//   Retry-After and is tried again, a bounded number of times. An outage still fails the change at once:
//   the round reports it and the next one retries, skipping what was already applied (change-feed.ts).
// - A group's name is read from the account only when Entra's name differs from the one this applier last
//   saw applied: delta repeats displayName with every membership change, and a read per change would cost
//   as much as the writes. (A group renamed by hand in Databricks is named back by the next reconcile.)
import { setTimeout as sleepTimer } from 'node:timers/promises'
import { LRUCache } from 'lru-cache'
import pLimit from 'p-limit'
import { DirectoryUnavailableError, type Directory, type DirectoryChange, type DirectoryObjectKind, type MemberChange } from '../directory/port.ts'
import type { Resolver } from '../resolver/resolver.ts'
import type { Materializer } from '../resolver/materializer.ts'
import { TargetUnavailableError, type GroupRenameResult, type SyncMemberKind, type SyncResult, type TargetSync } from '../target/port.ts'
import { BACKGROUND } from '../target/write-scheduler.ts'
import { decideRetry, type RetryPolicy } from '../upstream/retry-policy.ts'
import type { AppliedCounts, ChangeApplier } from './change-feed.ts'

export interface SyncApplierOptions {
  directory: Directory
  resolver: Resolver
  /** The account's side; absent without a Databricks account (then only the caches follow). */
  target?: TargetSync
  /** Re-materializes a principal's memberships in a full reconcile. */
  materializer?: Materializer
  /** false when the group filter restricts which groups exist in the account (nesting edges are not written directly). */
  writeNesting: boolean
  /** Writes in flight at once within one round (each still within the Databricks rate budget). */
  concurrency?: number
  /** Caches to forget on the other replicas too (set by the fleet when several share Redis). */
  onForget?: (tenantId: string, ids: { principals: string[], groups: string[] }) => void
  /** After a gap in the feed: everything cached for the tenant is forgotten here, and through this elsewhere. */
  onForgetTenant?: (tenantId: string) => void
  /** How long a throttled change waits and how often it is tried again (defaults: THROTTLE_PATIENCE). */
  patience?: Partial<RetryPolicy>
  /** Injected for tests: how to wait. */
  sleep?: (ms: number) => Promise<void>
}

/**
 * A throttled change is tried up to 8 more times, waiting what the upstream asked (up to 2 minutes) or a
 * jittered backoff of 1 s doubling to 30 s: at Databricks' documented 2 PATCHes a second, a backlog of a
 * few hundred writes clears well within that.
 */
export const THROTTLE_PATIENCE: RetryPolicy = { maxRetries: 8, baseDelayMs: 1_000, maxDelayMs: 30_000, maxRetryAfterMs: 120_000 }

export class SyncApplier implements ChangeApplier {
  private readonly patience: RetryPolicy
  private readonly sleep: (ms: number) => Promise<void>
  /** `tenant|group id` → the Entra display name last applied to the account's group. */
  private readonly appliedNames = new LRUCache<string, string>({ max: 100_000 })

  constructor (private readonly options: SyncApplierOptions) {
    this.patience = { ...THROTTLE_PATIENCE, ...options.patience }
    this.sleep = options.sleep ?? (async ms => { await sleepTimer(ms) })
  }

  async apply (tenantId: string, changes: DirectoryChange[], onApplied?: (change: DirectoryChange) => void): Promise<AppliedCounts> {
    const counts: AppliedCounts = {}
    const count = (what: string): void => { counts[what] = (counts[what] ?? 0) + 1 }
    this.forget(tenantId, changes)
    const limit = pLimit(this.options.concurrency ?? 8)
    const results = await Promise.allSettled(changes.map(async change => await limit(async () => {
      if (change.kind === 'group') await this.applyGroup(tenantId, change, count)
      else await this.applyPrincipal(tenantId, change, count)
      onApplied?.(change)
    })))
    // Anything that failed makes the round fail: its cursor is not stored and the next round applies the
    // same changes again (those already applied then answer `unchanged`).
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    return counts
  }

  async reconcile (tenantId: string, kind: DirectoryObjectKind): Promise<AppliedCounts> {
    const { target, directory, resolver, materializer } = this.options
    const counts: AppliedCounts = {}
    const count = (what: string): void => { counts[what] = (counts[what] ?? 0) + 1 }
    // Nothing cached can be vouched for after a gap in the feed.
    resolver.forgetTenant(tenantId)
    this.options.onForgetTenant?.(tenantId)
    if (target === undefined) return counts
    const limit = pLimit(this.options.concurrency ?? 8)
    const work: Array<Promise<void>> = []
    for await (const held of target.listMaterialized(tenantId, { kinds: [kind] })) {
      work.push(limit(async () => {
        const now = await this.patiently(async () => await directory.findPrincipal(tenantId, { id: held.entraId }))
        const kind = held.kind
        if (kind === 'group') {
          if (now === null) { tally(count, 'groupRetired', await this.patiently(async () => await target.retireGroup(tenantId, held.entraId, 'soft-deleted'))); return }
          tally(count, 'groupRenamed', await this.patiently(async () => await this.rename(target, tenantId, held.entraId, now.displayName)))
          return
        }
        const active = now !== null && now.accountEnabled
        tally(count, active ? 'activated' : 'deactivated', await this.patiently(async () => await target.setPrincipalActive(tenantId, { kind, id: held.entraId }, active)))
        // Its memberships as Entra has them now (the materialization removes the ones Entra dropped).
        if (active && materializer !== undefined) {
          await this.patiently(async () => await materializer.materialize(await resolver.resolveLoaded(now), BACKGROUND))
          count('rematerialized')
        }
      }))
    }
    const results = await Promise.allSettled(work)
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    return counts
  }

  private async applyPrincipal (tenantId: string, change: DirectoryChange, count: (what: string) => void): Promise<void> {
    const { target, directory } = this.options
    if (target === undefined || (change.kind !== 'user' && change.kind !== 'servicePrincipal')) return
    let active: boolean
    if (change.op === 'removed') active = false
    else if (change.accountEnabled !== undefined) active = change.accountEnabled
    else active = (await this.patiently(async () => await directory.findPrincipal(tenantId, { id: change.id })))?.accountEnabled === true
    const kind = change.kind
    tally(count, active ? 'activated' : 'deactivated', await this.patiently(async () => await target.setPrincipalActive(tenantId, { kind, id: change.id }, active)))
  }

  private async applyGroup (tenantId: string, change: DirectoryChange, count: (what: string) => void): Promise<void> {
    const { target } = this.options
    if (target === undefined) return
    if (change.op === 'removed') {
      this.appliedNames.delete(`${tenantId.toLowerCase()}|${change.id.toLowerCase()}`)
      tally(count, change.permanent ? 'groupDeleted' : 'groupRetired', await this.patiently(async () => await target.retireGroup(tenantId, change.id, change.permanent ? 'deleted' : 'soft-deleted')))
      return
    }
    const displayName = change.displayName
    if (displayName !== undefined) tally(count, 'groupRenamed', await this.patiently(async () => await this.rename(target, tenantId, change.id, displayName, { unlessApplied: true })))
    // Removals first: a member moved within one round never holds both.
    const members = [...change.members].sort((a, b) => Number(b.removed) - Number(a.removed))
    for (const member of members) {
      const edge = { groupId: change.id, memberId: member.id, memberKind: member.kind as SyncMemberKind }
      if (member.removed) tally(count, 'membershipRemoved', await this.patiently(async () => await target.removeMembership(tenantId, edge)))
      else if (member.kind !== 'group' || this.options.writeNesting) tally(count, 'membershipAdded', await this.patiently(async () => await target.addMembership(tenantId, edge)))
    }
  }

  /**
   * Names the account's group after Entra's display name. With `unlessApplied`, a name this applier already
   * applied is not read again (`unchanged`).
   */
  private async rename (target: TargetSync, tenantId: string, id: string, displayName: string, how: { unlessApplied?: boolean } = {}): Promise<GroupRenameResult> {
    const key = `${tenantId.toLowerCase()}|${id.toLowerCase()}`
    if (how.unlessApplied === true && this.appliedNames.get(key) === displayName) return { outcome: 'unchanged' }
    const result = await target.renameGroup(tenantId, { id, displayName })
    if (result.outcome === 'written' || result.outcome === 'unchanged' || result.outcome === 'mirrored') this.appliedNames.set(key, displayName)
    else this.appliedNames.delete(key)
    return result
  }

  /** Runs one call to the account or the directory, waiting out throttling (429 with or without Retry-After) within the patience. */
  private async patiently<T> (work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work()
      } catch (err) {
        const throttled = (err instanceof TargetUnavailableError || err instanceof DirectoryUnavailableError) && err.throttled
        if (!throttled) throw err
        const decision = decideRetry(attempt, err.retryAfterSeconds, this.patience, Math.random)
        if (!decision.retry) throw err
        await this.sleep(decision.waitMs)
      }
    }
  }

  /** Forgets, before anything is written, what the changes make stale here and (through onForget) elsewhere. */
  private forget (tenantId: string, changes: DirectoryChange[]): void {
    const principals = new Set<string>()
    const groups = new Set<string>()
    const note = (o: { id: string, kind: DirectoryObjectKind } | MemberChange): void => { (o.kind === 'group' ? groups : principals).add(o.id) }
    for (const change of changes) {
      note(change)
      if (change.op === 'upserted') for (const m of change.members) note(m)
    }
    for (const id of principals) this.options.resolver.forgetPrincipal(tenantId, id)
    for (const id of groups) this.options.resolver.forgetGroup(tenantId, id)
    this.options.target?.invalidate(tenantId, { principals, groups })
    this.options.onForget?.(tenantId, { principals: [...principals], groups: [...groups] })
  }
}

/** Counts a written effect under its name, and everything else under its outcome (`unchanged`, `absent`, …). */
function tally (count: (what: string) => void, written: string, result: SyncResult): void {
  count(result.outcome === 'written' ? written : result.outcome)
}
