// The Entra change feed: one round reads, for each tenant and kind of object (users, service principals,
// then groups, so a re-enabled member is active before its memberships are written), every change since
// the stored cursor, hands them to the applier, and only then stores the new cursor. So a crash, an
// outage of Databricks during apply or a failed round loses nothing: the next round reads the same
// changes again, and applying them twice is harmless.
//
// - No cursor yet (first start, or a lost cursor file): a cursor at "now" is taken first, then everything
//   the service materialized is reconciled against Entra (not a replay of the tenant), then the cursor is
//   stored. The same when the directory says the cursor expired (410, `syncStateNotFound`).
// - One kind failing (Graph or Databricks unavailable) does not stop the others; its error is reported and
//   the next round retries it from its old cursor.
// - A round that failed part-way keeps its progress: the changes it applied are stored (by fingerprint,
//   with the cursor they were read from), and the next round from the same cursor skips them, so a long
//   outage or a throttled backlog is not written again from its start. A change Entra changed again since
//   reads differently and is applied again.
// - Rounds never overlap: the scheduler (sync/scheduler.ts) runs one at a time, on one replica.
import { createHash } from 'node:crypto'
import type { Clock } from '../clock.ts'
import { DirectoryCursorExpiredError, type DirectoryChange, type DirectoryChanges, type DirectoryObjectKind } from '../directory/port.ts'
import type { CursorStore } from './cursors.ts'

/** What applying changes did, by kind of effect (`deactivated`, `membershipRemoved`, …). */
export type AppliedCounts = Record<string, number>

export interface ChangeApplier {
  /** Applies the changes; `onApplied` hears each one that is fully applied (the others make it throw). */
  apply: (tenantId: string, changes: DirectoryChange[], onApplied?: (change: DirectoryChange) => void) => Promise<AppliedCounts>
  /** Brings everything of this kind that the service materialized in line with Entra (after a lost or expired cursor). */
  reconcile: (tenantId: string, kind: DirectoryObjectKind) => Promise<AppliedCounts>
}

export interface RoundReport {
  startedAt: string
  finishedAt: string
  /** Changes read from the directory, per kind of object (all tenants). */
  read: Partial<Record<DirectoryObjectKind, number>>
  /** Effects written or decided, summed over the round (all tenants). */
  applied: AppliedCounts
  /** The same, per tenant (what a tenant's administrator is shown). */
  tenants: Record<string, { read: Partial<Record<DirectoryObjectKind, number>>, applied: AppliedCounts }>
  /** `tenant|kind` pairs that started again from a full reconcile, and why. */
  reconciled: Array<{ tenantId: string, kind: DirectoryObjectKind, reason: 'no-cursor' | 'cursor-expired' }>
  errors: Array<{ tenantId: string, kind: DirectoryObjectKind, error: string }>
  /**
   * At most how old the changes this round applied can be: a change it read was made after the previous
   * round (on any replica) started reading, so this is that start to this round's end. Absent for a first round.
   */
  stalenessBoundSeconds?: number
}

export interface ChangeFeedOptions {
  directory: DirectoryChanges
  tenants: string[]
  cursors: CursorStore
  applier: ChangeApplier
  clock: Clock
}

export const FEED_KINDS: readonly DirectoryObjectKind[] = ['user', 'servicePrincipal', 'group']

export class ChangeFeed {
  constructor (private readonly options: ChangeFeedOptions) {}

  async round (): Promise<RoundReport> {
    const { clock, tenants } = this.options
    const report: RoundReport = { startedAt: new Date(clock.now()).toISOString(), finishedAt: '', read: {}, applied: {}, tenants: {}, reconciled: [], errors: [] }
    for (const tenantId of tenants) {
      for (const kind of FEED_KINDS) {
        try {
          await this.step(tenantId, kind, report)
        } catch (err) {
          report.errors.push({ tenantId, kind, error: err instanceof Error ? err.message : String(err) })
        }
      }
    }
    report.finishedAt = new Date(clock.now()).toISOString()
    return report
  }

  private async step (tenantId: string, kind: DirectoryObjectKind, report: RoundReport): Promise<void> {
    const { directory, cursors, applier } = this.options
    const mine = report.tenants[tenantId.toLowerCase()] ??= { read: {}, applied: {} }
    const applied = (counts: AppliedCounts): void => { add(report.applied, counts); add(mine.applied, counts) }
    const cursor = await cursors.get(tenantId, kind)
    if (cursor !== undefined) {
      try {
        const batch = await directory.changesSince(tenantId, kind, cursor)
        report.read[kind] = (report.read[kind] ?? 0) + batch.changes.length
        mine.read[kind] = (mine.read[kind] ?? 0) + batch.changes.length
        const earlier = batch.changes.length > 0 ? await cursors.progress(tenantId, kind, cursor) : new Set<string>()
        const pending = batch.changes.filter(change => !earlier.has(fingerprint(change)))
        if (pending.length < batch.changes.length) applied({ appliedEarlier: batch.changes.length - pending.length })
        const done = new Set(earlier)
        try {
          if (pending.length > 0) applied(await applier.apply(tenantId, pending, change => { done.add(fingerprint(change)) }))
        } catch (err) {
          // Best effort: without it the next round applies these again, which is harmless.
          if (done.size > earlier.size) await cursors.setProgress(tenantId, kind, cursor, [...done]).catch(() => {})
          throw err
        }
        await cursors.set(tenantId, kind, batch.cursor)
        return
      } catch (err) {
        if (!(err instanceof DirectoryCursorExpiredError)) throw err
      }
    }
    // The cursor first: whatever changes while the reconcile runs is in the next round.
    const fresh = await directory.startCursor(tenantId, kind)
    report.reconciled.push({ tenantId, kind, reason: cursor === undefined ? 'no-cursor' : 'cursor-expired' })
    applied(await applier.reconcile(tenantId, kind))
    await cursors.set(tenantId, kind, fresh)
  }
}

/** A change as read: the same change read again from the same cursor has the same fingerprint. */
export function fingerprint (change: DirectoryChange): string {
  return createHash('sha256').update(JSON.stringify(change)).digest('base64url').slice(0, 22)
}

function add (into: AppliedCounts, counts: AppliedCounts): void {
  for (const [k, v] of Object.entries(counts)) into[k] = (into[k] ?? 0) + v
}
