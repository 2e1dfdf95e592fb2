// Materialization: what the resolver knows of a principal (its direct groups and the nesting of its
// transitive closure), handed to the Target so the Databricks account agrees with Entra.
import type { Resolution, ResolutionFacts, Resolver } from './resolver.ts'
import { TargetUnavailableError, type MaterializeRequest, type Materialized, type Target } from '../target/port.ts'
import { DatabricksError, ObjectNotFoundError, TargetConfigurationError } from '../target/errors.ts'
import { WorkspaceNotFoundError, type WorkspaceAssignments } from '../target/assignments.ts'
import { ObjectNotFound, TargetMisconfigured, TargetRejected, WorkspaceNotFound, upstreamUnavailable } from './errors.ts'
import type { DirectoryPrincipal, GroupRef } from '../directory/port.ts'
import { ALL_GROUPS, filterClosure, type GroupFilter } from './group-filter.ts'
import type { WriteContext } from '../target/write-scheduler.ts'

export interface WorkspaceAccess {
  workspaceId: string
  decision: 'allow' | 'deny'
  access: 'DIRECT' | 'INDIRECT' | 'NONE'
  permission?: 'USER' | 'ADMIN'
  /** The Entra groups whose assignment grants the permission. */
  via?: Array<{ id: string, displayName: string }>
  reason: string
}

/** A principal's direct groups and each of its groups' direct parents (empty when not needed). */
interface Nesting { direct: GroupRef[], parents: Map<string, string[]> }

export class Materializer {
  constructor (
    private readonly resolver: Resolver,
    private readonly target: Target,
    readonly assignments: WorkspaceAssignments,
    /** Which Entra groups may become account groups (default: all). */
    readonly groupFilter: GroupFilter = ALL_GROUPS
  ) {}

  /** Whether the materialized principal may use the workspace: an assignment to it or to any of its groups. */
  async workspaceAccess (workspaceId: string, { groups }: Resolution, materialized: Materialized): Promise<WorkspaceAccess> {
    const byDatabricksId = new Map(groups.flatMap(g => {
      const id = materialized.groupIds.get(g.id)
      return id === undefined ? [] : [[id, g] as const]
    }))
    const decided = await this.guard(this.assignments.decide(workspaceId, materialized.principalId, [...byDatabricksId.keys()]))
    const via = (decided.via ?? []).flatMap(id => {
      const g = byDatabricksId.get(id)
      return g === undefined ? [] : [{ id: g.id, displayName: g.displayName }]
    })
    const names = via.map(g => `'${g.displayName}'`).join(', ')
    const reason = decided.access === 'NONE'
      ? `No permission assignment in workspace ${workspaceId} for the principal or any of its ${groups.length} groups.`
      : decided.access === 'DIRECT'
        ? `Assigned ${decided.permission ?? 'USER'} in workspace ${workspaceId} directly${via.length > 0 ? `, raised by group ${names}` : ''}.`
        : `Assigned ${decided.permission ?? 'USER'} in workspace ${workspaceId} through group ${names}.`
    return {
      workspaceId,
      decision: decided.access === 'NONE' ? 'deny' : 'allow',
      access: decided.access,
      ...(decided.permission !== undefined ? { permission: decided.permission } : {}),
      ...(via.length > 0 ? { via } : {}),
      reason
    }
  }

  /**
   * true when the account learns memberships from Entra itself (automatic identity management): a
   * principal can then be materialized without reading its groups, as bulk registration does.
   */
  get learnsMembershipsItself (): boolean {
    return this.target.mirrorsMemberships === false
  }

  private get needsNesting (): boolean {
    return !this.learnsMembershipsItself || this.groupFilter.parents.size > 0
  }

  /** `writes`: whose writes these are and how urgent (default interactive); the sync and registrations pass BACKGROUND. */
  async materialize (resolution: Resolution, writes?: WriteContext): Promise<Materialized> {
    return await this.guard(this.target.materialize({ ...await this.requestOf(resolution), writes }))
  }

  /** What the target is asked to hold for the principal: its closure as the group filter admits it. */
  private async requestOf ({ principal, groups }: Resolution, nesting?: Nesting): Promise<MaterializeRequest> {
    const inClosure = new Set(groups.map(g => g.id))
    const { direct, parents } = nesting ?? await this.nestingOf(principal, groups)
    // Only edges inside the closure: the principal's view of Entra, nothing about unrelated groups.
    const edges = new Map([...parents].map(([id, ps]) => [id, ps.filter(p => inClosure.has(p))]))
    const admitted = filterClosure(this.groupFilter, { groups, directGroupIds: direct.map(g => g.id).filter(id => inClosure.has(id)), parents: edges })
    return { tenantId: principal.tenantId, principal, ...admitted }
  }

  /**
   * The principal's direct groups and each group's direct parents, when the target mirrors nesting or the
   * group filter needs it; a target that mirrors no membership (AIM) is spared these two directory reads.
   */
  private async nestingOf (principal: DirectoryPrincipal, groups: GroupRef[]): Promise<Nesting> {
    if (!this.needsNesting) return { direct: [], parents: new Map() }
    const [direct, parents] = await Promise.all([this.resolver.directGroups(principal), this.resolver.directParents(principal.tenantId, groups.map(g => g.id))])
    return { direct, parents }
  }

  /**
   * What a materialization was made from and what the target remembers of it, for another replica to adopt
   * (fleet/flights.ts): read from the caches the materialization just filled.
   */
  async transferOf (resolution: Resolution): Promise<{ facts: ResolutionFacts, remembrance: unknown }> {
    const { principal, groups } = resolution
    const nesting = await this.nestingOf(principal, groups)
    const facts: ResolutionFacts = { principal, groups, ...(this.needsNesting ? { direct: nesting.direct, parents: [...nesting.parents] } : {}) }
    return { facts, remembrance: this.target.remembrance?.(await this.requestOf(resolution, nesting)) }
  }

  /** Where the resolver's and the target's forgets stand, before another replica materializes for us. */
  mark (): { resolver: number, target: number } {
    return { resolver: this.resolver.mark(), target: this.target.mark?.() ?? 0 }
  }

  /**
   * Another replica's materialization, remembered here (the resolver's facts, the target's memory), unless
   * something was forgotten since `mark`: the next sign-in of the principal on this replica makes no call.
   */
  async adopt (facts: ResolutionFacts, materialized: Materialized, remembrance: unknown, mark: { resolver: number, target: number }): Promise<void> {
    if (!await this.resolver.adopt(facts, mark.resolver)) return
    const request = await this.requestOf({ principal: facts.principal, groups: facts.groups, groupsSource: 'graph' })
    this.target.adopt?.(request, materialized, remembrance, mark.target)
  }

  /**
   * Makes the account hold one Entra group (no members written): its Databricks id and name, never one of
   * `avoidNames` where the target names groups.
   */
  async materializeGroup (tenantId: string, group: GroupRef, avoidNames?: ReadonlySet<string>): Promise<{ groupId: string, name: string }> {
    return await this.guard(this.target.materializeGroup(tenantId, group, avoidNames === undefined ? {} : { avoidNames }))
  }

  /** Databricks failures as the problems a caller sees. */
  async guard<T> (p: Promise<T>): Promise<T> {
    try {
      return await p
    } catch (err) {
      throw this.problem(err)
    }
  }

  /** The problem a caller sees for a Databricks failure (anything else as it is): guard() without its promise. */
  problem (err: unknown): unknown {
    if (err instanceof TargetUnavailableError) return upstreamUnavailable('Databricks', err.retryAfterSeconds, err.throttled)
    if (err instanceof TargetConfigurationError) return new TargetMisconfigured(err.message)
    if (err instanceof WorkspaceNotFoundError) return new WorkspaceNotFound(err.message)
    if (err instanceof ObjectNotFoundError) return new ObjectNotFound(err.message)
    if (err instanceof DatabricksError) return new TargetRejected(err.message)
    return err
  }
}
