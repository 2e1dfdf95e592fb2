// The Target port: where identities are materialized (a Databricks account, through SCIM or the
// identity API of automatic identity management). The resolver hands it what Entra says; the adapter
// makes the account agree, idempotently.
import type { DirectoryPrincipal, GroupRef } from '../directory/port.ts'
import type { WriteContext } from './write-scheduler.ts'

export interface MaterializeRequest {
  tenantId: string
  /** The user or service principal, as Entra has it now (accountEnabled decides `active`). */
  principal: DirectoryPrincipal
  /** Every group it belongs to, directly or through nesting. */
  groups: GroupRef[]
  /** Ids (within `groups`) of the groups the principal is a direct member of. */
  directGroupIds: string[]
  /** For each group in `groups`: the ids of its direct parents (within `groups`), to mirror nesting. */
  parents: Map<string, string[]>
  /** Who waits for the writes and how urgent they are (default: interactive, untracked). */
  writes?: WriteContext
}

export interface Materialized {
  /** The principal's id in the account. */
  principalId: string
  /** Entra group id → account group id, for every group of the request. */
  groupIds: Map<string, string>
  active: boolean
  /**
   * The name the Permissions API knows the principal by (`user_name` / `service_principal_name`): a user's
   * userName in the account (normally the UPN), a service principal's application id.
   */
  principalName: string
}

/** An Entra group as the account holds it. */
export interface MaterializedGroup {
  /** The account group's id. */
  groupId: string
  /** Its display name in the account: the Entra name, or a disambiguated one such as `Finance (d0000000)`. */
  name: string
}

export interface Target {
  /**
   * false: the account learns memberships and nesting itself (automatic identity management), so the
   * request's `directGroupIds` and `parents` are not used and need not be read from the directory.
   */
  readonly mirrorsMemberships?: boolean
  /** Makes the account hold the principal, its groups and their nesting as Entra has them. */
  materialize: (request: MaterializeRequest) => Promise<Materialized>
  /**
   * Makes the account hold the Entra group (linked by externalId; no members written) and names it. A
   * target that names groups itself never gives it a name in `avoidNames` (lowercased), renaming it if it
   * has one; a target whose account names groups (AIM) answers the account's name whatever it is.
   */
  materializeGroup: (tenantId: string, group: GroupRef, options?: { avoidNames?: ReadonlySet<string>, writes?: WriteContext }) => Promise<MaterializedGroup>
  /**
   * Replicas (src/fleet/flights.ts): one of them materializes a principal, the others adopt what it
   * remembers, so their next call for it makes none. `mark()` is taken before the run starts elsewhere;
   * `adopt()` remembers nothing if anything the request names was forgotten since (an Entra change heard
   * meanwhile). `remembrance()` is what the adapter remembers beyond `Materialized`, as JSON.
   */
  mark?: () => number
  remembrance?: (request: MaterializeRequest) => unknown
  adopt?: (request: MaterializeRequest, materialized: Materialized, remembrance: unknown, mark: number) => void
}

/** Thrown when the target cannot answer now (throttled, down): callers answer 503 with Retry-After. */
export class TargetUnavailableError extends Error {
  readonly throttled: boolean

  constructor (message: string, readonly retryAfterSeconds?: number, options?: ErrorOptions & { throttled?: boolean }) {
    super(message, options)
    this.throttled = options?.throttled ?? false
  }
}

// ---- TargetSync: following Entra's changes -------------------------------------------------------------
//
// A capability beside Target (dex-style: a small interface an adapter implements, not a flag): the Entra
// change feed (src/sync/) hands each change to it, and the adapter makes the account follow it for what the
// service materialized, per change. Rules every adapter keeps:
//
// - Only objects the account holds linked to Entra (externalId = Entra object id) are touched. A principal
//   or group the account does not hold is left alone (`absent`): it arrives at its first use. Databricks-
//   internal groups and members without an externalId are never changed.
// - Every write is idempotent and convergent: a repeat (a replayed delta page, a retry after a crash, a
//   5xx or a 429) reads the account again and writes only what is still missing. Failures are the Target's
//   typed errors: TargetUnavailableError (retry later, honour retryAfterSeconds), TargetConfigurationError.
// - Each operation forgets, in this process, what it has made stale (the principal's last materialization,
//   a group's known parents), so the next login re-reads instead of trusting a fingerprint. Other replicas
//   keep their own caches: the caller broadcasts the ids and each replica calls invalidate() with them.
// - Under automatic identity management the account follows Entra itself: the operations write nothing,
//   answer `mirrored`, and only forget what they make stale, so the caller need not branch on the mode.

/** What a sync operation did. */
export type SyncOutcome =
  /** The account changed. */
  | 'written'
  /** The account already agreed (an idempotent repeat, or the change was made by someone else first). */
  | 'unchanged'
  /** The account holds no Entra-linked object for an end (the principal, the group or the member): left alone. */
  | 'absent'
  /** Databricks refused the membership (a nesting cycle, too deep, …): left out and reported to the adapter's observer. */
  | 'refused'
  /** The account follows Entra itself (automatic identity management): nothing written, caches forgotten. */
  | 'mirrored'

export interface SyncResult {
  outcome: SyncOutcome
  /** The account's id of the object written or found (the principal, the group, or the edge's group). */
  accountId?: string
}

export interface GroupRenameResult extends SyncResult {
  /** The group's name in the account after the call (`written`, `unchanged`). */
  name?: string
}

export type SyncPrincipalKind = 'user' | 'servicePrincipal'
export type SyncMemberKind = SyncPrincipalKind | 'group'

/** A principal by its Entra object id. */
export interface SyncPrincipalRef {
  kind: SyncPrincipalKind
  id: string
}

/** One direct membership as Entra has it: `memberId` (a user, service principal or group) ∈ `groupId`. */
export interface MembershipEdge {
  /** The Entra group's object id. */
  groupId: string
  /** The member's Entra object id. */
  memberId: string
  memberKind: SyncMemberKind
}

/**
 * How a deleted Entra group is retired. `soft-deleted` (Entra keeps it 30 days, restorable): the group stays
 * in the account, so the grants to it survive a restore, but every Entra-linked membership through it is
 * removed (its Entra-linked members, and its own place in Entra-linked parent groups), so nobody keeps
 * access through a deleted group. `deleted` (gone for good): the account group is deleted.
 */
export type GroupRetirement = 'soft-deleted' | 'deleted'

/** One object the service materialized (the account holds it with an externalId). */
export interface MaterializedIdentity {
  kind: SyncMemberKind
  /** Its Entra object id (the account's externalId). */
  entraId: string
  /** Its id in the account. */
  accountId: string
  /** Users and service principals: whether the account lets it sign in; groups: always true. */
  active: boolean
  displayName: string
}

export interface ListMaterializedOptions {
  /** Which kinds, in this order (default users, service principals, groups). */
  kinds?: readonly SyncMemberKind[]
  /** Objects per page read from the account (default 500). */
  pageSize?: number
}

export interface TargetSync {
  /**
   * Sets a user or service principal active or inactive (Entra's accountEnabled, or a deletion), only if
   * the account holds it linked by externalId: `absent` otherwise (never created here). `unchanged` when it
   * already had that state. Its last materialization is forgotten either way.
   */
  setPrincipalActive: (tenantId: string, principal: SyncPrincipalRef, active: boolean) => Promise<SyncResult>
  /**
   * Adds one membership when both ends are Entra-linked in the account (`absent` otherwise: they arrive at
   * their first use). A membership Databricks refuses (cycle, depth, limit) is `refused`, reported through
   * the adapter's `onMembershipSkipped` observer as materialize does, and not thrown.
   */
  addMembership: (tenantId: string, edge: MembershipEdge) => Promise<SyncResult>
  /**
   * Removes one membership when both ends are Entra-linked in the account. Never touches a Databricks-
   * internal group or a member without externalId (it cannot even name them). `unchanged` when the member
   * was not in the group.
   */
  removeMembership: (tenantId: string, edge: MembershipEdge) => Promise<SyncResult>
  /**
   * Gives an Entra-linked group the name its new display name calls for, by the adapter's naming rules
   * (the display-with-id policy, reserved names, names workspace-local groups hold, names taken by other
   * groups, `avoidNames` lowercased). A group whose current name is already one of the new name's candidates
   * and free to keep is `unchanged`. `absent` when the account does not hold the group (not created here).
   */
  renameGroup: (tenantId: string, group: { id: string, displayName: string }, options?: { avoidNames?: ReadonlySet<string> }) => Promise<GroupRenameResult>
  /** Retires a group Entra deleted (see GroupRetirement). `absent` when the account does not hold it. */
  retireGroup: (tenantId: string, groupId: string, how: GroupRetirement) => Promise<SyncResult>
  /**
   * Every user, service principal and group the account holds with an externalId, read page by page (for a
   * full reconcile when the delta cursor has expired). Objects created or deleted during the walk may be
   * missed or listed once; none is listed twice.
   */
  listMaterialized: (tenantId: string, options?: ListMaterializedOptions) => AsyncIterable<MaterializedIdentity>
  /**
   * Forgets what this process remembers of these Entra ids: a principal's last materialization (its next
   * call reconciles with the account instead of trusting the fingerprint) and a group's known parents
   * (every remembered materialization that includes the group is reconciled again too). Also for changes
   * applied on another replica.
   */
  invalidate: (tenantId: string, ids: { principals?: Iterable<string>, groups?: Iterable<string> }) => void
}

/** Whether a target can follow Entra's changes (both Databricks adapters can). */
export function supportsSync<T extends Target> (target: T): target is T & TargetSync {
  const t = target as Partial<TargetSync>
  return typeof t.setPrincipalActive === 'function' && typeof t.addMembership === 'function' && typeof t.removeMembership === 'function' &&
    typeof t.renameGroup === 'function' && typeof t.retireGroup === 'function' && typeof t.listMaterialized === 'function' && typeof t.invalidate === 'function'
}
