// A principal's sign-in (POST /v1/login with Databricks): resolved from Entra, then materialized in the
// account. With replicas (REDIS_URL) a sign-in this replica cannot answer from its caches runs once for the
// whole fleet (`shared`, fleet/flights.ts): a load balancer that sends a new user's first requests to three
// replicas at once gets one Graph read and one set of Databricks writes, not three. The replica that ran it
// hands the others what it read and what its target remembers, and each adopts it, so the user's next
// sign-in there is warm too.
//
// A warm sign-in (the principal and its groups fresh in this replica's resolver) never touches Redis. Redis
// away: each replica signs its callers in itself, as a single process does; the writes are idempotent.
import type { Caller } from '../auth/caller.ts'
import type { Resolution, ResolutionFacts, Resolver } from './resolver.ts'
import type { Materializer, WorkspaceAccess } from './materializer.ts'
import type { Materialized } from '../target/port.ts'
import { Waits, type WriteContext } from '../target/write-scheduler.ts'
import { isProblem, type SharedRuns } from '../fleet/shared-runs.ts'

export interface SignedIn {
  resolution: Resolution
  materialized: Materialized
}

/** What the replica that ran a sign-in hands the others, as JSON. */
export interface SignInTransfer {
  facts: ResolutionFacts
  materialized: { principalId: string, groupIds: Array<[string, string]>, active: boolean, principalName: string }
  /** What the target remembers beyond `materialized` (Target.remembrance). */
  remembrance?: unknown
}

/** How often the replica running a sign-in tells the others how long its writes are expected to wait. */
const ESTIMATE_EVERY_MS = 1000

export class SignIns {
  /** Set with REDIS_URL: cold sign-ins run once for the fleet. */
  shared: SharedRuns<Caller, SignInTransfer> | undefined

  constructor (private readonly resolver: Resolver, private readonly materializer: Materializer) {}

  /** The caller resolved and materialized (a disabled principal too: the caller refuses it after). */
  async signIn (caller: Caller, writes: WriteContext): Promise<SignedIn> {
    const shared = this.shared
    if (shared === undefined || !shared.available) return await this.here(caller, writes)
    const warm = this.resolver.warmCaller(caller, { signIn: true })
    if (warm !== undefined) return await this.here(caller, writes, warm)
    const mark = this.materializer.mark()
    let transfer: SignInTransfer
    try {
      transfer = await shared.run(signInKey(caller), caller, progress => {
        const eta = (progress as { eta?: unknown } | undefined)?.eta
        if (typeof eta === 'number') writes.waiting?.expectElsewhere(eta)
      })
    } catch (err) {
      // A problem is the run's answer; anything else means the fleet could not be asked: sign in here.
      if (isProblem(err)) throw err
      return await this.here(caller, writes)
    }
    const materialized: Materialized = { ...transfer.materialized, groupIds: new Map(transfer.materialized.groupIds) }
    await this.materializer.adopt(transfer.facts, materialized, transfer.remembrance, mark)
    return { resolution: { principal: transfer.facts.principal, groups: transfer.facts.groups, groupsSource: 'graph' }, materialized }
  }

  /** A sign-in another replica asked the fleet for, run here; `progress` carries the writes' wait estimate. */
  async forFleet (caller: Caller, progress: (data: unknown) => void): Promise<SignInTransfer> {
    const writes = { priority: 'interactive' as const, waiting: new Waits() }
    const reporting = setInterval(() => { progress({ eta: writes.waiting.etaSeconds() }) }, ESTIMATE_EVERY_MS)
    try {
      const { resolution, materialized } = await this.here(caller, writes)
      const { facts, remembrance } = await this.materializer.transferOf(resolution)
      return { facts, materialized: { ...materialized, groupIds: [...materialized.groupIds] }, remembrance }
    } finally {
      clearInterval(reporting)
    }
  }

  /** Whether the signed-in principal may use the workspace (Materializer.workspaceAccess). */
  async workspaceAccess (workspaceId: string, resolution: Resolution, materialized: Materialized): Promise<WorkspaceAccess> {
    return await this.materializer.workspaceAccess(workspaceId, resolution, materialized)
  }

  /** Signed in by this replica; `warm`: the caller as the resolver's fresh entries already have it. */
  private async here (caller: Caller, writes: WriteContext, warm?: Resolution): Promise<SignedIn> {
    const resolution = warm ?? await this.resolver.resolveCaller(caller, { includeDisabled: true, groupNames: true })
    return { resolution, materialized: await this.materializer.materialize(resolution, writes) }
  }
}

function signInKey (caller: Caller): string {
  return `sign-in|${caller.tenantId.toLowerCase()}|${caller.oid.toLowerCase()}`
}
