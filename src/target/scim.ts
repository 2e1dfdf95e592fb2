// DatabricksScimTarget: the Target port over the account SCIM API, for any Databricks account (AWS, GCP,
// Azure without automatic identity management). It makes the account hold the principal, every group of
// its Entra closure, and the nesting, so that Databricks' own nested evaluation answers as Entra does:
//
// - The principal (user: userName = UPN, externalId = object id, displayName, emails, active; service
//   principal: applicationId = appId, externalId, displayName, active) is found by one filtered list
//   (`externalId eq "…" or userName eq "…"`, the externalId match preferred), created on a miss; a 409 on
//   create (a concurrent login, another replica) means: read again and continue. displayName, externalId
//   and `active` (= accountEnabled) are corrected with one PATCH of `replace` operations.
// - Groups (displayName, externalId = Entra group id) are found 50 at a time by one list whose filter asks
//   for each group's externalId and display name, so the same call tells which names are taken: an Entra
//   group whose name is held by another group (an internal one, or another Entra group with the same name)
//   is created as `Name (xxxxxxxx)` (the first 8 characters of its object id; the full id if even that is
//   taken), deterministically and linked by externalId. A Databricks group without externalId is never
//   adopted, renamed or changed.
// - Nesting: the principal is a direct member of exactly its direct Entra groups, each group of the
//   closure of exactly its direct Entra parents. Memberships Entra no longer has are removed, but only from
//   Entra-sourced groups (with an externalId): memberships in Databricks-internal groups stay, and only the
//   principal and the closure's groups are ever removed from a group (never members this call does not
//   manage). Writes are batched: one PATCH per parent group (`add members` with an array, `remove` with
//   `members[value eq "id"]` filters), the PATCHes of different groups in parallel within the client's
//   budget.
// - Refused memberships degrade per edge. Databricks cannot hold some of Entra's nesting: a cycle (Entra
//   allows A ⊂ B ⊂ A), more than 10 layers, a principal in 1,500 groups already, or any other 400 on one
//   membership. Such an edge is left out, reported (`onMembershipSkipped`: both ids, Entra's too, and why)
//   and the rest of the materialization goes on. A batched PATCH Databricks refuses is retried in halves
//   down to single memberships, so only the refused edges are left out. Within the request, the edges that
//   close a cycle (found walking up from the principal, parents in id order) are written after the others:
//   Databricks then refuses those, and the principal still reaches every group of its closure. A refused
//   edge is never remembered as written: it is retried when the principal is reconciled again, and not
//   sooner than `groupTtlMs` by anyone (a warm login with an unchanged request still makes no call).
// - Convergent: every write is idempotent and the adapter remembers a materialization only after all of
//   it succeeded (refused edges aside, above), so a crash or a failure after any step is repaired by the
//   next call, which reads Databricks' state again. One materialization per principal runs at a time (single-flight per tenant
//   and principal; identical concurrent requests share one run).
// - Caches: the last materialization of each principal (a fingerprint of the request: principal fields,
//   groups, direct groups, nesting edges), so a warm call with an unchanged request makes no call at all
//   and a changed one writes only the difference; Entra group id → Databricks id with the group's known
//   parents (shared by every principal of the group, so a cold principal whose groups are known reads
//   nothing but itself); Databricks group id → externalId (is a parent Entra-sourced?); memberships
//   Databricks refused, for `groupTtlMs`. All bounded LRUs. clear() forgets them, and a run in flight
//   across it is not remembered.
// - materializeGroup(): one Entra group, found or created as above (never its members); `principalName` is
//   the userName / applicationId of the account's principal (what was adopted or created), remembered.
// - SCIM filter values are quoted with `"` and `\` escaped, so a display name such as `x" or userName sw "`
//   is compared as the literal it is and can never widen the filter.
// - TargetSync (the Entra change feed; scim-sync.ts): the account follows Entra's changes to what it holds
//   linked by externalId, one change at a time, with the same SCIM calls and naming rules. invalidate()
//   forgets by Entra id, lazily: it stamps the id with a generation, and a remembered materialization, a
//   group's known parents or a refused membership recorded before that stamp (or while the run that made it
//   was in flight) is not trusted again, so no scan of the caches is needed.
import { createHash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.ts'
import type { GroupRef } from '../directory/port.ts'
import type {
  GroupRenameResult, GroupRetirement, ListMaterializedOptions, MaterializeRequest, Materialized, MaterializedGroup, MaterializedIdentity,
  MembershipEdge, SyncPrincipalRef, SyncResult, Target, TargetSync
} from './port.ts'
import type { DatabricksClient } from './databricks-client.ts'
import { MembershipBatches } from './membership-batches.ts'
import { BACKGROUND, SharedWork, type WriteContext } from './write-scheduler.ts'
import { DatabricksBadRequestError, DatabricksConflictError, DatabricksNotFoundError } from './errors.ts'
import { groupNameCandidates, isReservedGroupName, scimString, type GroupNamePolicy } from './names.ts'
import { ScimSync, type ScimSyncHost } from './scim-sync.ts'
import type { SharedRuns } from '../fleet/shared-runs.ts'

export const SCIM_SCHEMA = {
  user: 'urn:ietf:params:scim:schemas:core:2.0:User',
  group: 'urn:ietf:params:scim:schemas:core:2.0:Group',
  servicePrincipal: 'urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal',
  patchOp: 'urn:ietf:params:scim:api:messages:2.0:PatchOp'
} as const

/** Groups per lookup: 50 × (externalId eq … or displayName eq …) = 199 filter nodes, under Databricks' 200. */
const GROUPS_PER_LOOKUP = 50
/** Ids per `id eq … or …` lookup (199 nodes). */
const IDS_PER_LOOKUP = 100
/** Members per `add` operation and operations per PATCH (what the known sync tools use). */
const MEMBERS_PER_OP = 50
const OPS_PER_PATCH = 50

export interface DatabricksScimTargetOptions {
  client: DatabricksClient
  /** Principals whose last materialization is remembered (default 100,000). */
  maxPrincipals?: number
  /** How long a remembered materialization spares every call; after it, a full reconcile (default 1 h). */
  materializedTtlMs?: number
  /** Entra group id → Databricks id (with the group's known parents) entries kept (default 100,000). */
  maxGroups?: number
  /** How long a group's known parents are trusted instead of read (default 10 min). */
  groupTtlMs?: number
  /** How groups are named (default `display-with-id`). */
  groupNames?: GroupNamePolicy
  /**
   * Which of the given names (lowercased answers) workspace-local groups hold in the workspaces the service
   * serves: a group is never created or left under such a name. The reserved names are always avoided.
   */
  namesHeldLocally?: (names: string[]) => Promise<Set<string>>
  observer?: ScimTargetObserver
  /** The caches' time (default: the process's monotonic clock). */
  clock?: Clock
}

export interface ScimRef { value: string, type?: string, display?: string, $ref?: string }

export interface ScimObject {
  id: string
  externalId?: string
  displayName?: string
  userName?: string
  applicationId?: string
  active?: boolean
  groups?: ScimRef[]
  /** A group's members (a group read by id; account group lists leave them out). */
  members?: ScimRef[]
}

export interface ListResponse { totalResults?: number, Resources?: ScimObject[] }

type PrincipalKind = 'user' | 'servicePrincipal'

interface PrincipalFields {
  kind: PrincipalKind
  displayName: string
  active: boolean
}

/** What the adapter remembers of a principal's last complete materialization. */
interface Remembered {
  fingerprint: string
  result: Materialized
  fields: PrincipalFields
  /** Databricks child id → the Databricks ids of the Entra-sourced parents it was made a member of. */
  edges: Map<string, Set<string>>
  /** The generation its run began in: trusted only while none of its ids was forgotten since (invalidate()). */
  since: number
}

interface KnownGroup {
  id: string
  /** The group's Databricks parents as last read or written. */
  parents: Set<string>
  /** Its display name in the account, when read or written. */
  name?: string
  /** The generation it was read in (see Remembered.since). */
  since: number
}

interface Refusal {
  reason: MembershipSkipReason
  detail: string
  since: number
  /** The forgettable keys of both ends: forgetting either makes Databricks be asked again. */
  keys: string[]
}

const RESOURCE: Record<PrincipalKind | 'group', string> = { user: 'Users', servicePrincipal: 'ServicePrincipals', group: 'Groups' }

/** The key invalidate() stamps for a principal (per tenant, like the materializations) and for a group. */
const principalKey = (tenantId: string, id: string): string => `p|${tenantId.toLowerCase()}|${id.toLowerCase()}`
const groupKey = (id: string): string => `g|${id.toLowerCase()}`

/** The forgettable keys a materialization depends on: its principal and every group of the request. */
const requestKeys = (request: MaterializeRequest): string[] => [principalKey(request.tenantId, request.principal.id), ...request.groups.map(g => groupKey(g.id))]

/** A principal's materializations: one at a time, remembered under this key. */
const principalLaneKey = (request: MaterializeRequest): string => `${request.tenantId.toLowerCase()}|${request.principal.id.toLowerCase()}`

/** Where a missing group is created: once for the fleet, here (names to avoid: a share's), or here as the fleet's run. */
type CreateWhere = 'fleet' | 'here' | 'for-fleet'

/** A group's create one replica asks the fleet for (createGroupForFleet runs it). */
export interface SharedGroupCreate {
  group: GroupRef
  priority: WriteContext['priority']
}

/** What remembrance() hands another replica. */
interface RemembranceJson {
  fingerprint: string
  fields: PrincipalFields
  edges: Array<[string, string[]]>
}

function isRemembrance (value: unknown): value is RemembranceJson {
  const r = value as Partial<RemembranceJson> | undefined
  return typeof r?.fingerprint === 'string' && typeof r.fields === 'object' && r.fields !== null && Array.isArray(r.edges) &&
    r.edges.every(e => Array.isArray(e) && typeof e[0] === 'string' && Array.isArray(e[1]) && e[1].every(x => typeof x === 'string'))
}

/** Why a group did not get the name it would have had. */
export interface GroupNameCollision {
  entraGroupId: string
  wanted: string
  used: string
  /** `reserved`: a Databricks system group's name; `workspace-local`: held by a workspace-local group; `taken`: by another account group. */
  reason: 'reserved' | 'workspace-local' | 'taken'
}

/**
 * Why Databricks refused a membership: `cycle` (the parent is already nested in the child), `depth` (more
 * than 10 layers of nesting), `limit` (the child is a direct member of the most groups allowed), `refused`
 * (any other 400, e.g. a group the account does not let the child join).
 */
export type MembershipSkipReason = 'cycle' | 'depth' | 'limit' | 'refused'

/** A membership (child ⊂ parent) Entra has and Databricks refused: left out of the account. */
export interface MembershipSkipped {
  /** The account group, and the group, user or service principal that was to join it (Databricks ids). */
  parentId: string
  childId: string
  /** Their Entra object ids, where the adapter knows them. */
  parentEntraId?: string
  childEntraId?: string
  reason: MembershipSkipReason
  /** Databricks' answer. */
  detail: string
}

/** What the adapter reports besides its results: name collisions, and groups and memberships it had to leave out. */
export interface ScimTargetObserver {
  onGroupNameCollision?: (collision: GroupNameCollision) => void
  /** A group Databricks refused to create (its name cannot be expressed): left out, the rest goes on. */
  onGroupSkipped?: (group: GroupRef, reason: string) => void
  /** A membership Databricks refused (a nesting cycle, too deep, …): left out, the rest goes on. */
  onMembershipSkipped?: (skipped: MembershipSkipped) => void
  /** A coalesced membership batch is sent: how many members it adds and removes (membership-batches.ts). */
  onMembershipBatch?: (members: number) => void
}

/** How Databricks' refusal of a membership is counted (its message says which rule it broke). */
export function membershipSkipReason (message: string): MembershipSkipReason {
  if (/\bcycle\b/i.test(message)) return 'cycle'
  if (/levels? deep|layers?|\bdepth\b|nest(ing|ed)? .*(maximum|limit)/i.test(message)) return 'depth'
  if (/maximum|limit|too many/i.test(message)) return 'limit'
  return 'refused'
}

/**
 * The nesting edges (child → parent, `child|parent`) that close a cycle: found by a depth-first walk up from
 * `root` (then from any node not reached), parents in id order, each edge back into the walk's current path.
 * Without them the nesting is acyclic, and every node `root` reaches it still reaches (the walk's own edges
 * stay). Iterative: nesting can be deep.
 */
export function cycleClosingEdges (root: string, parents: ReadonlyMap<string, ReadonlySet<string>>): Set<string> {
  const closing = new Set<string>()
  const state = new Map<string, 'open' | 'done'>()
  const sortedParents = (id: string): string[] => [...(parents.get(id) ?? [])].sort()
  const walk = (start: string): void => {
    if (state.has(start)) return
    state.set(start, 'open')
    const stack: Array<{ id: string, next: string[] }> = [{ id: start, next: sortedParents(start) }]
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as { id: string, next: string[] }
      const parent = top.next.shift()
      if (parent === undefined) {
        state.set(top.id, 'done')
        stack.pop()
        continue
      }
      const seen = state.get(parent)
      if (seen === 'open') closing.add(`${top.id}|${parent}`)
      if (seen !== undefined) continue
      state.set(parent, 'open')
      stack.push({ id: parent, next: sortedParents(parent) })
    }
  }
  walk(root)
  for (const id of [...parents.keys()].sort()) walk(id)
  return closing
}

function directParents (o: ScimObject): Set<string> {
  return new Set((o.groups ?? []).filter(g => g.type === undefined || g.type === 'direct').map(g => g.value))
}

function chunk<T> (items: T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

function fingerprintOf (request: MaterializeRequest): string {
  const p = request.principal
  const ids = new Set(request.groups.map(g => g.id))
  const groups = [...request.groups].sort((a, b) => a.id.localeCompare(b.id)).map(g => [g.id, g.displayName])
  const direct = [...new Set(request.directGroupIds)].filter(id => ids.has(id)).sort()
  const edges = [...ids].sort().map(id => [id, [...new Set(request.parents.get(id) ?? [])].filter(x => ids.has(x)).sort()])
  const doc = JSON.stringify([p.kind, p.id, p.userPrincipalName ?? null, p.appId ?? null, p.mail ?? null, p.displayName, p.accountEnabled, groups, direct, edges])
  return createHash('sha256').update(doc).digest('base64url')
}

function cloneResult (r: Materialized): Materialized {
  return { principalId: r.principalId, groupIds: new Map(r.groupIds), active: r.active, principalName: r.principalName }
}

/** The name the Permissions API knows a principal by: the account's userName, or the application id. */
function principalNameOf (o: ScimObject, p: MaterializeRequest['principal']): string {
  return p.kind === 'user' ? o.userName ?? p.userPrincipalName as string : o.applicationId ?? p.appId as string
}

export class DatabricksScimTarget implements Target, TargetSync {
  private readonly client: DatabricksClient
  private readonly remembered: LRUCache<string, Remembered>
  private readonly groups: LRUCache<string, KnownGroup>
  private readonly sourced: LRUCache<string, { externalId: string | null }>
  /** `parent|child` (Databricks ids) → Databricks' refusal of that membership, not retried within its TTL. */
  private readonly refusedEdges: LRUCache<string, Refusal>
  /** Bumped by clear(): a run that began before it is not remembered. */
  private epoch = 0
  /** Bumped by each invalidate(); `forgotten` maps a principal or group key to the generation it was forgotten in. */
  private generation = 0
  private readonly forgotten: LRUCache<string, number>
  /** The highest generation `forgotten` had to evict for room: anything remembered before it is not trusted. */
  private forgottenFloor = 0
  private readonly sync: ScimSync
  private readonly lanes = new Map<string, { fingerprint: string, promise: Promise<Materialized>, work: SharedWork }>()
  private readonly groupFlights = new Map<string, Promise<MaterializedGroup>>()
  private readonly namePolicy: GroupNamePolicy
  private readonly namesHeldLocally: (names: string[]) => Promise<Set<string>>
  private readonly observer: ScimTargetObserver
  private readonly batches: MembershipBatches<DatabricksBadRequestError>
  /** Replicas (REDIS_URL): a group's create runs once for the fleet (createInFleet); set by the service. */
  sharedGroupCreates: SharedRuns<SharedGroupCreate, ScimObject> | undefined
  /** Entra group id → its account group's create in flight (createGroupOnce). */
  private readonly creating = new Map<string, { promise: Promise<ScimObject>, work: SharedWork }>()

  constructor (options: DatabricksScimTargetOptions) {
    this.client = options.client
    this.namePolicy = options.groupNames ?? 'display-with-id'
    this.namesHeldLocally = options.namesHeldLocally ?? (async () => new Set())
    this.observer = options.observer ?? {}
    const clock = options.clock
    const perf = clock === undefined ? {} : { perf: { now: () => clock.now() }, ttlResolution: 0 }
    this.remembered = new LRUCache({ max: options.maxPrincipals ?? 100_000, ttl: options.materializedTtlMs ?? 3_600_000, ...perf })
    this.groups = new LRUCache({ max: options.maxGroups ?? 100_000, ttl: options.groupTtlMs ?? 600_000, ...perf })
    this.sourced = new LRUCache({ max: options.maxGroups ?? 100_000, ttl: options.groupTtlMs ?? 600_000, ...perf })
    this.refusedEdges = new LRUCache({ max: options.maxGroups ?? 100_000, ttl: options.groupTtlMs ?? 600_000, ...perf })
    // Kept as long as anything it may have to veto lives (the longest of the caches' TTLs).
    this.forgotten = new LRUCache<string, number>({
      max: (options.maxPrincipals ?? 100_000) + (options.maxGroups ?? 100_000),
      ttl: Math.max(options.materializedTtlMs ?? 3_600_000, options.groupTtlMs ?? 600_000),
      ...perf,
      dispose: (generation, _key, reason) => { if (reason === 'evict') this.forgottenFloor = Math.max(this.forgottenFloor, generation) }
    })
    this.sync = new ScimSync(this.syncHost())
    this.batches = new MembershipBatches(this.client.writes.lanes.patch, async (groupId, add, remove, prepaid, ctx) => await this.sendMembers(groupId, add, remove, prepaid, ctx), n => { this.observer.onMembershipBatch?.(n) })
  }

  async materialize (request: MaterializeRequest): Promise<Materialized> {
    const p = request.principal
    if (p.kind !== 'user' && p.kind !== 'servicePrincipal') throw new TypeError(`Only users and service principals are materialized, not a ${p.kind}.`)
    if (p.kind === 'user' && (p.userPrincipalName === undefined || p.userPrincipalName === '')) throw new TypeError(`User ${p.id} has no userPrincipalName.`)
    if (p.kind === 'servicePrincipal' && (p.appId === undefined || p.appId === '')) throw new TypeError(`Service principal ${p.id} has no appId.`)
    const key = principalLaneKey(request)
    const fingerprint = fingerprintOf(request)
    const running = this.lanes.get(key)
    // The same request in flight: share its outcome (and its place in the write queue).
    if (running?.fingerprint === fingerprint) {
      running.work.join(request.writes)
      return cloneResult(await running.promise)
    }
    // Another request for this principal in flight: run after it (one materialization at a time).
    const before = running === undefined ? Promise.resolve() : running.promise.then(() => {}, () => {})
    // Its writes are this principal's turn in the write lanes (fair across principals).
    const work = new SharedWork(`principal:${key}`, request.writes)
    const promise = before.then(async () => await this.run(key, fingerprint, { ...request, writes: work.ctx }))
    this.lanes.set(key, { fingerprint, promise, work })
    try {
      return cloneResult(await promise)
    } finally {
      if (this.lanes.get(key)?.promise === promise) this.lanes.delete(key)
    }
  }

  /**
   * Makes the account hold one Entra group (found by externalId, or created, under a disambiguated name if
   * its name is taken), without touching its members. A group found under a name it must not have (a
   * reserved one, one a workspace-local group holds, or one in `avoidNames`) is renamed. Known groups cost
   * no call; concurrent calls for one group share one lookup. The tenant is not part of the key: like the
   * rest of this adapter, groups are known by their Entra object id (globally unique).
   */
  async materializeGroup (_tenantId: string, group: GroupRef, options: { avoidNames?: ReadonlySet<string>, writes?: WriteContext } = {}): Promise<MaterializedGroup> {
    const avoid = options.avoidNames ?? new Set<string>()
    const known = this.knownGroup(group.id)
    if (known?.name !== undefined && !avoid.has(known.name.toLowerCase())) return { groupId: known.id, name: known.name }
    const flying = this.groupFlights.get(group.id)
    if (flying !== undefined && avoid.size === 0) return { ...await flying }
    const since = this.generation
    const flight = (async (): Promise<MaterializedGroup> => {
      const found = (await this.ensureGroups([group], avoid, options.writes)).get(group.id)
      if (found === undefined) {
        throw new DatabricksBadRequestError(`Databricks refused every name for Entra group ${group.id}.`, { status: 400, errorCode: 'INVALID_PARAMETER_VALUE', method: 'POST', route: '/scim/v2/Groups' })
      }
      const name = found.displayName ?? groupNameCandidates(group, this.namePolicy)[0] as string
      this.groups.set(group.id, { id: found.id, parents: directParents(found), name, since })
      return { groupId: found.id, name }
    })()
    this.groupFlights.set(group.id, flight)
    try {
      return { ...await flight }
    } finally {
      if (this.groupFlights.get(group.id) === flight) this.groupFlights.delete(group.id)
    }
  }

  mark (): number { return this.generation }

  /** The principal's last materialization of exactly this request, as JSON (its result travels apart). */
  remembrance (request: MaterializeRequest): RemembranceJson | undefined {
    const remembered = this.remembered.get(principalLaneKey(request))
    if (remembered === undefined || remembered.fingerprint !== fingerprintOf(request)) return undefined
    if (!this.trusted(remembered.since, requestKeys(request))) return undefined
    return { fingerprint: remembered.fingerprint, fields: remembered.fields, edges: [...remembered.edges].map(([child, parents]) => [child, [...parents]]) }
  }

  /** Another replica's materialization of this request, remembered as this adapter's own (see Target.adopt). */
  adopt (request: MaterializeRequest, materialized: Materialized, remembrance: unknown, mark: number): void {
    if (!isRemembrance(remembrance) || remembrance.fingerprint !== fingerprintOf(request)) return
    if (!this.trusted(mark, requestKeys(request))) return
    const key = principalLaneKey(request)
    if (this.remembered.get(key)?.fingerprint === remembrance.fingerprint) return
    const edges = new Map(remembrance.edges.map(([child, parents]) => [child, new Set(parents)]))
    this.remembered.set(key, { fingerprint: remembrance.fingerprint, result: cloneResult(materialized), fields: remembrance.fields, edges, since: mark })
  }

  /** Forgets everything the adapter remembers (the next calls read Databricks again). */
  clear (): void {
    this.epoch += 1
    // Nothing remembered elsewhere before now is adopted either (adopt()'s mark).
    this.forgottenFloor = ++this.generation
    this.remembered.clear()
    this.groups.clear()
    this.sourced.clear()
    this.refusedEdges.clear()
    this.groupFlights.clear()
  }

  // ---- TargetSync (scim-sync.ts) ------------------------------------------------------------------------

  async setPrincipalActive (tenantId: string, principal: SyncPrincipalRef, active: boolean): Promise<SyncResult> {
    return await this.sync.setPrincipalActive(tenantId, principal, active)
  }

  async addMembership (tenantId: string, edge: MembershipEdge): Promise<SyncResult> {
    return await this.sync.addMembership(tenantId, edge)
  }

  async removeMembership (tenantId: string, edge: MembershipEdge): Promise<SyncResult> {
    return await this.sync.removeMembership(tenantId, edge)
  }

  async renameGroup (tenantId: string, group: { id: string, displayName: string }, options?: { avoidNames?: ReadonlySet<string> }): Promise<GroupRenameResult> {
    return await this.sync.renameGroup(tenantId, group, options)
  }

  async retireGroup (tenantId: string, groupId: string, how: GroupRetirement): Promise<SyncResult> {
    return await this.sync.retireGroup(tenantId, groupId, how)
  }

  listMaterialized (tenantId: string, options?: ListMaterializedOptions): AsyncIterable<MaterializedIdentity> {
    return this.sync.listMaterialized(tenantId, options)
  }

  /**
   * Forgets these Entra ids: a principal's last materialization, a group's known parents and name, and
   * (lazily, by generation) every remembered materialization that includes such a group, every refusal of a
   * membership with such an end, and whatever a run in flight now would remember of them.
   */
  invalidate (tenantId: string, ids: { principals?: Iterable<string>, groups?: Iterable<string> }): void {
    this.generation += 1
    for (const id of ids.principals ?? []) {
      this.forgotten.set(principalKey(tenantId, id), this.generation)
      this.remembered.delete(`${tenantId.toLowerCase()}|${id.toLowerCase()}`)
    }
    for (const id of ids.groups ?? []) {
      this.forgotten.set(groupKey(id), this.generation)
      this.groups.delete(id)
      this.groups.delete(id.toLowerCase())
    }
  }

  /** Whether something recorded in generation `since` may still be trusted: none of `keys` forgotten since. */
  private trusted (since: number, keys: Iterable<string>): boolean {
    if (since < this.forgottenFloor) return false
    if (this.forgotten.size === 0) return true
    for (const key of keys) if ((this.forgotten.peek(key) ?? -1) > since) return false
    return true
  }

  private knownGroup (entraId: string): KnownGroup | undefined {
    const known = this.groups.get(entraId)
    return known !== undefined && this.trusted(known.since, [groupKey(entraId)]) ? known : undefined
  }

  /** What ScimSync needs of this adapter: its SCIM calls, naming and caches. */
  private syncHost (): ScimSyncHost {
    return {
      client: this.client,
      list: async (resource, filter, attributes) => await this.list(resource, filter, attributes),
      // The change feed's writes are background work: logins and shares go first.
      patch: async (resource, id, operations) => { await this.patch(resource, id, operations, false, BACKGROUND) },
      patchMembers: async (groupId, add, remove) => await this.patchMembers(groupId, add, remove, BACKGROUND),
      externalIdsOf: async ids => await this.externalIdsOf(ids),
      nameCandidates: group => groupNameCandidates(group, this.namePolicy),
      blockedNames: async (names, avoid) => blockedNames(await this.namesHeldLocally(names), avoid),
      nameGroup: async (group, taken, blocked, existing) => await this.nameGroup(group, taken, blocked, existing, BACKGROUND),
      skipped: (skip, err) => { this.observer.onMembershipSkipped?.({ ...skip, reason: membershipSkipReason(err.message), detail: err.message }) },
      deleted: id => { this.sourced.delete(id) },
      invalidate: (tenantId, ids) => { this.invalidate(tenantId, ids) }
    }
  }

  private async run (key: string, fingerprint: string, request: MaterializeRequest): Promise<Materialized> {
    const remembered = this.remembered.get(key)
    // Trusted only if neither the principal nor any group of its request was forgotten since (invalidate()).
    const previous = remembered !== undefined && this.trusted(remembered.since, requestKeys(request))
      ? remembered
      : undefined
    if (previous?.fingerprint === fingerprint) return previous.result
    const epoch = this.epoch
    const since = this.generation
    // Until this run has succeeded the next one reconciles from Databricks' own state.
    this.remembered.delete(key)
    let done: Omit<Remembered, 'fingerprint' | 'since'>
    try {
      done = await this.reconcile(request, previous, epoch, since)
    } catch (err) {
      if (!isStaleId(err)) throw err
      // An id the adapter remembered is gone (deleted in Databricks meanwhile): read everything again, once.
      for (const g of request.groups) this.groups.delete(g.id)
      done = await this.reconcile(request, undefined, epoch, since)
    }
    if (epoch === this.epoch) this.remembered.set(key, { ...done, fingerprint, since })
    return done.result
  }

  private async reconcile (request: MaterializeRequest, previous: Remembered | undefined, epoch: number, since: number): Promise<Omit<Remembered, 'fingerprint' | 'since'>> {
    const p = request.principal
    const kind = p.kind as PrincipalKind
    const fields: PrincipalFields = { kind, displayName: p.displayName, active: p.accountEnabled }
    const byId = new Map(request.groups.map(g => [g.id, g]))

    // Entra's answer: child (Entra id) → its direct parents within the closure.
    const desired = new Map<string, Set<string>>()
    desired.set(p.id, new Set(request.directGroupIds.filter(id => byId.has(id))))
    for (const g of byId.values()) desired.set(g.id, new Set((request.parents.get(g.id) ?? []).filter(x => byId.has(x) && x !== g.id)))

    // Databricks' state: child (Databricks id) → its parents (Databricks ids), read or remembered.
    const current = new Map<string, Set<string>>()

    // 1. The principal.
    let principalId: string
    let principalName: string
    if (previous !== undefined) {
      principalId = previous.result.principalId
      principalName = previous.result.principalName
      current.set(principalId, new Set(previous.edges.get(principalId) ?? []))
      const ops: unknown[] = []
      if (previous.fields.displayName !== fields.displayName) ops.push({ op: 'replace', path: 'displayName', value: fields.displayName })
      if (previous.fields.active !== fields.active) ops.push({ op: 'replace', path: 'active', value: fields.active })
      if (ops.length > 0) await this.patch(RESOURCE[kind], principalId, ops, false, request.writes)
    } else {
      const found = await this.ensurePrincipal(request)
      principalId = found.id
      principalName = principalNameOf(found, p)
      current.set(principalId, directParents(found))
      const ops: unknown[] = []
      if (found.externalId !== p.id) ops.push({ op: 'replace', path: 'externalId', value: p.id })
      if ((found.displayName ?? '') !== fields.displayName) ops.push({ op: 'replace', path: 'displayName', value: fields.displayName })
      if (found.active !== fields.active) ops.push({ op: 'replace', path: 'active', value: fields.active })
      if (ops.length > 0) await this.patch(RESOURCE[kind], principalId, ops, false, request.writes)
    }

    // 2. The groups: remembered, known from another principal's run, or looked up (and created).
    const groupIds = new Map<string, string>()
    const unknown: GroupRef[] = []
    for (const g of byId.values()) {
      const known = this.knownGroup(g.id)
      const rememberedId = previous?.result.groupIds.get(g.id)
      if (known !== undefined && (rememberedId === undefined || rememberedId === known.id)) {
        groupIds.set(g.id, known.id)
        current.set(known.id, new Set(known.parents))
      } else if (rememberedId !== undefined && previous !== undefined) {
        groupIds.set(g.id, rememberedId)
        current.set(rememberedId, new Set(previous.edges.get(rememberedId) ?? []))
      } else {
        unknown.push(g)
      }
    }
    const ensured = await this.ensureGroups(unknown, new Set(), request.writes)
    for (const [entraId, o] of ensured) {
      groupIds.set(entraId, o.id)
      const parents = directParents(o)
      current.set(o.id, parents)
      this.groups.set(entraId, { id: o.id, parents: new Set(parents), ...(o.displayName !== undefined ? { name: o.displayName } : {}), since })
    }
    // Groups Databricks refused to create are left out, with every edge to or from them; the rest goes on.
    for (const g of unknown) {
      if (ensured.has(g.id)) continue
      desired.delete(g.id)
      for (const parents of desired.values()) parents.delete(g.id)
    }
    const dbOf = (entraId: string): string => entraId === p.id ? principalId : groupIds.get(entraId) as string
    const closure = new Set(groupIds.values())

    // 3. The difference, per parent group. The edges that would close a cycle of Entra's nesting are
    // written last (`late`): Databricks refuses those rather than one the principal needs to reach a group.
    const closing = cycleClosingEdges(p.id, desired)
    const entraOf = new Map<string, string>([[principalId, p.id], ...[...groupIds].map(([entraId, id]) => [id, entraId] as [string, string])])
    const adds = new Map<string, string[]>()
    const late = new Map<string, string[]>()
    const removals: Array<{ parent: string, child: string }> = []
    const want = new Map<string, Set<string>>()
    const skipped: MembershipSkipped[] = []
    for (const [child, parents] of desired) {
      const childId = dbOf(child)
      const wanted = new Set([...parents].map(dbOf))
      want.set(childId, wanted)
      const has = current.get(childId) ?? new Set<string>()
      for (const parent of [...parents].sort()) {
        const parentId = dbOf(parent)
        if (has.has(parentId)) continue
        // Refused a moment ago (for this principal or another): not asked again before its TTL.
        const refused = this.refusedEdges.get(`${parentId}|${childId}`)
        if (refused !== undefined && this.trusted(refused.since, refused.keys)) {
          skipped.push({ parentId, childId, parentEntraId: parent, childEntraId: child, reason: refused.reason, detail: refused.detail })
          continue
        }
        const wave = closing.has(`${child}|${parent}`) ? late : adds
        wave.set(parentId, [...(wave.get(parentId) ?? []), childId])
      }
      for (const parent of has) if (!wanted.has(parent)) removals.push({ parent, child: childId })
    }
    // Only from Entra-sourced groups: the closure's, or others with an externalId.
    const outside = [...new Set(removals.map(r => r.parent))].filter(id => !closure.has(id))
    const externalIds = await this.externalIdsOf(outside)
    const removes = new Map<string, string[]>()
    for (const { parent, child } of removals) {
      if (!closure.has(parent) && (externalIds.get(parent) ?? null) === null) continue
      removes.set(parent, [...(removes.get(parent) ?? []), child])
    }

    // 4. One PATCH per group that changes; every group's PATCH runs even when another fails. A membership
    // Databricks refuses is left out (reported below); any other failure fails the materialization.
    const write = async (adds: Map<string, string[]>, removes: Map<string, string[]>): Promise<void> => {
      const parents = [...new Set([...adds.keys(), ...removes.keys()])].sort()
      const results = await Promise.allSettled(parents.map(async parent => {
        const add = adds.get(parent) ?? []
        const remove = removes.get(parent) ?? []
        const refused = await this.patchMembers(parent, add, remove, request.writes)
        for (const child of add) {
          const err = refused.get(child)
          if (err === undefined) {
            current.get(child)?.add(parent)
            continue
          }
          const skip: MembershipSkipped = { parentId: parent, childId: child, reason: membershipSkipReason(err.message), detail: err.message }
          const parentEntraId = entraOf.get(parent)
          const childEntraId = entraOf.get(child)
          skipped.push({ ...skip, ...(parentEntraId !== undefined ? { parentEntraId } : {}), ...(childEntraId !== undefined ? { childEntraId } : {}) })
          const keys = [parentEntraId, childEntraId].flatMap(id => id === undefined ? [] : [id === p.id ? principalKey(request.tenantId, id) : groupKey(id)])
          if (epoch === this.epoch) this.refusedEdges.set(`${parent}|${child}`, { reason: skip.reason, detail: skip.detail, since, keys })
        }
        for (const child of remove) current.get(child)?.delete(parent)
        this.updateKnownGroups(groupIds, current, [...add, ...remove], since)
      }))
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed !== undefined) throw failed.reason
    }
    await write(adds, removes)
    if (late.size > 0) await write(late, new Map())
    for (const skip of skipped) this.observer.onMembershipSkipped?.(skip)

    // What this principal's next run may take for granted: the memberships it has just made true (a
    // refused one is not, so that run asks again).
    const edges = new Map<string, Set<string>>()
    for (const [child, wanted] of want) edges.set(child, new Set(wanted))
    for (const { parentId, childId } of skipped) edges.get(childId)?.delete(parentId)
    return { result: { principalId, groupIds, active: fields.active, principalName }, fields, edges }
  }

  private updateKnownGroups (groupIds: Map<string, string>, current: Map<string, Set<string>>, children: string[], since: number): void {
    const changed = new Set(children)
    for (const [entraId, id] of groupIds) {
      if (!changed.has(id)) continue
      const name = this.groups.peek(entraId)?.name
      this.groups.set(entraId, { id, parents: new Set(current.get(id) ?? []), ...(name !== undefined ? { name } : {}), since })
    }
  }

  // ---- principals ---------------------------------------------------------------------------------------

  private async ensurePrincipal (request: MaterializeRequest): Promise<ScimObject> {
    const p = request.principal
    const kind = p.kind as PrincipalKind
    const existing = await this.findPrincipal(request)
    if (existing !== undefined) return existing
    const body = kind === 'user'
      ? {
          schemas: [SCIM_SCHEMA.user],
          userName: p.userPrincipalName,
          displayName: p.displayName,
          externalId: p.id,
          active: p.accountEnabled,
          emails: [{ value: p.mail !== undefined && p.mail !== null && p.mail !== '' ? p.mail : p.userPrincipalName, type: 'work', primary: true }]
        }
      : { schemas: [SCIM_SCHEMA.servicePrincipal], applicationId: p.appId, displayName: p.displayName, externalId: p.id, active: p.accountEnabled }
    try {
      const res = await this.client.account<ScimObject>('POST', `/scim/v2/${RESOURCE[kind]}`, { body, writes: request.writes })
      return res.json as ScimObject
    } catch (err) {
      if (!(err instanceof DatabricksConflictError)) throw err
      // Created meanwhile (a concurrent login, another replica): adopt it.
      const again = await this.findPrincipal(request)
      if (again === undefined) throw err
      return again
    }
  }

  /** The account's principal for this Entra one: by externalId, else by userName / applicationId. */
  private async findPrincipal (request: MaterializeRequest): Promise<ScimObject | undefined> {
    const p = request.principal
    const kind = p.kind as PrincipalKind
    const second = kind === 'user' ? `userName eq ${scimString(p.userPrincipalName as string)}` : `applicationId eq ${scimString(p.appId as string)}`
    const attributes = kind === 'user' ? 'id,userName,externalId,displayName,active,groups' : 'id,applicationId,externalId,displayName,active,groups'
    const found = await this.list(RESOURCE[kind], `externalId eq ${scimString(p.id)} or ${second}`, attributes)
    return found.find(o => o.externalId === p.id) ?? found.find(o => kind === 'user'
      ? (o.userName ?? '').toLowerCase() === (p.userPrincipalName as string).toLowerCase()
      : (o.applicationId ?? '').toLowerCase() === (p.appId as string).toLowerCase())
  }

  // ---- groups -------------------------------------------------------------------------------------------

  /**
   * Entra group id → the account's group, created where missing (a group Databricks refuses to create is
   * left out of the answer and reported). Groups found under a name they must not have are renamed.
   */
  private async ensureGroups (groups: GroupRef[], avoid: ReadonlySet<string> = new Set(), ctx?: WriteContext, where: CreateWhere = 'fleet'): Promise<Map<string, ScimObject>> {
    const out = new Map<string, ScimObject>()
    const taken = new Set<string>()
    const missing: GroupRef[] = []
    await Promise.all(chunk(groups, GROUPS_PER_LOOKUP).map(async part => {
      const filter = part.map(g => `externalId eq ${scimString(g.id)} or displayName eq ${scimString(groupNameCandidates(g, this.namePolicy)[0] as string)}`).join(' or ')
      const found = await this.list('Groups', filter, 'id,displayName,externalId,groups')
      for (const o of found) {
        this.sourced.set(o.id, { externalId: o.externalId ?? null })
        if (o.displayName !== undefined) taken.add(o.displayName.toLowerCase())
      }
      for (const g of part) {
        const o = found.find(x => x.externalId === g.id)
        if (o !== undefined) out.set(g.id, o)
        else missing.push(g)
      }
    }))
    // Names no Entra group may have: the reserved ones, those workspace-local groups hold, and `avoid`.
    const candidates = [...new Set([
      ...missing.flatMap(g => groupNameCandidates(g, this.namePolicy)),
      ...[...out.values()].flatMap(o => o.displayName ?? [])
    ])]
    const blocked = blockedNames(await this.namesHeldLocally(candidates), avoid)
    // Groups found under such a name (made before this rule, or a local group created since) are renamed.
    await Promise.all([...out].map(async ([entraId, o]) => {
      if (o.displayName === undefined || blocked(o.displayName) === undefined) return
      const group = groups.find(g => g.id === entraId) as GroupRef
      out.set(entraId, await this.nameGroup(group, taken, blocked, o, ctx))
    }))
    // Groups that share a name are created one after another (sorted by id), so which one gets the plain
    // name does not depend on timing; different names in parallel.
    const byName = new Map<string, GroupRef[]>()
    for (const g of missing.sort((a, b) => a.id.localeCompare(b.id))) {
      const name = (groupNameCandidates(g, this.namePolicy)[0] as string).toLowerCase()
      byName.set(name, [...(byName.get(name) ?? []), g])
    }
    await Promise.all([...byName.values()].map(async same => {
      for (const g of same) {
        try {
          out.set(g.id, await this.createGroupOnce(g, taken, blocked, ctx, where === 'fleet' && avoid.size > 0 ? 'here' : where))
        } catch (err) {
          // A name Databricks cannot take (it refuses the create): this group is left out, not the login.
          if (!(err instanceof DatabricksBadRequestError)) throw err
          this.observer.onGroupSkipped?.(g, err.message)
        }
      }
    }))
    return out
  }

  /**
   * Creates the group (or renames `existing`) under the first candidate name that is free; reports when it
   * is not the preferred one. A 409 means the name was taken meanwhile: by this group (a concurrent run,
   * adopted) or by another (the next name is tried).
   */
  /**
   * Creates the account group for an Entra group once, however many principals' runs find it missing at
   * the same moment (a new team signing in together): the others wait for that create instead of each
   * sending its own and adopting the group after a 409, which would spend the write budget many times over.
   */
  private async createGroupOnce (group: GroupRef, taken: Set<string>, blocked: (name: string) => GroupNameCollision['reason'] | undefined, ctx?: WriteContext, where: CreateWhere = 'fleet'): Promise<ScimObject> {
    // The run the fleet asked this replica for: not joined to this replica's own creates, one of which may
    // be waiting for this very run.
    if (where === 'for-fleet') return await this.nameGroup(group, taken, blocked, undefined, ctx)
    const flying = this.creating.get(group.id)
    if (flying !== undefined) {
      // Waiting on another principal's create: it counts for this caller's Retry-After, and lifts it.
      flying.work.join(ctx)
      return { ...await flying.promise }
    }
    const work = new SharedWork(`group:${group.id}`, ctx)
    const promise = where === 'here' ? this.nameGroup(group, taken, blocked, undefined, work.ctx) : this.createInFleet(group, taken, blocked, work.ctx)
    this.creating.set(group.id, { promise, work })
    try {
      return { ...await promise }
    } finally {
      if (this.creating.get(group.id)?.promise === promise) this.creating.delete(group.id)
    }
  }

  /**
   * With replicas, the create runs once for the fleet (`sharedGroupCreates`): two replicas signing in two
   * members of a new group at the same moment make one create, not a create and a 409. The fleet being
   * away, or the shared run failing, the create is made here (a refusal then reads as Databricks' own).
   */
  private async createInFleet (group: GroupRef, taken: Set<string>, blocked: (name: string) => GroupNameCollision['reason'] | undefined, ctx: WriteContext): Promise<ScimObject> {
    const shared = this.sharedGroupCreates
    if (shared?.available === true) {
      try {
        const made = await shared.run(`group|${group.id.toLowerCase()}`, { group: { id: group.id, displayName: group.displayName, securityEnabled: group.securityEnabled }, priority: ctx.priority })
        if (made.displayName !== undefined) taken.add(made.displayName.toLowerCase())
        this.sourced.set(made.id, { externalId: group.id })
        return made
      } catch {
        // made here instead
      }
    }
    return await this.nameGroup(group, taken, blocked, undefined, ctx)
  }

  /** A group's create another replica asked the fleet for, made here: found by externalId, or created. */
  async createGroupForFleet ({ group, priority }: SharedGroupCreate): Promise<ScimObject> {
    const made = (await this.ensureGroups([group], new Set(), { priority, owner: `group:${group.id}` }, 'for-fleet')).get(group.id)
    if (made === undefined) throw new Error(`Databricks refused every name for Entra group ${group.id}.`)
    return made
  }

  private async nameGroup (group: Pick<GroupRef, 'id' | 'displayName'>, taken: Set<string>, blocked: (name: string) => GroupNameCollision['reason'] | undefined, existing?: ScimObject, ctx?: WriteContext): Promise<ScimObject> {
    const candidates = groupNameCandidates(group, this.namePolicy)
    let conflict: unknown
    let reason: GroupNameCollision['reason'] | undefined
    for (const name of candidates) {
      const why = blocked(name) ?? (taken.has(name.toLowerCase()) && existing?.displayName?.toLowerCase() !== name.toLowerCase() ? 'taken' : undefined)
      if (why !== undefined) {
        reason ??= why
        continue
      }
      try {
        let made: ScimObject
        if (existing === undefined) {
          const res = await this.client.account<ScimObject>('POST', '/scim/v2/Groups', { body: { schemas: [SCIM_SCHEMA.group], displayName: name, externalId: group.id }, writes: ctx })
          made = { ...res.json as ScimObject, groups: [] }
        } else {
          await this.patch('Groups', existing.id, [{ op: 'replace', path: 'displayName', value: name }], false, ctx)
          made = { ...existing, displayName: name }
        }
        taken.add(name.toLowerCase())
        this.sourced.set(made.id, { externalId: group.id })
        if (reason !== undefined) this.observer.onGroupNameCollision?.({ entraGroupId: group.id, wanted: candidates[0] as string, used: name, reason })
        return made
      } catch (err) {
        if (!(err instanceof DatabricksConflictError)) throw err
        conflict = err
        reason ??= 'taken'
        taken.add(name.toLowerCase())
        if (existing !== undefined) continue
        // Created meanwhile under this name by a concurrent run? Then adopt it; else try the next name.
        const again = await this.list('Groups', `externalId eq ${scimString(group.id)}`, 'id,displayName,externalId,groups')
        const mine = again.find(o => o.externalId === group.id)
        if (mine !== undefined) return mine
      }
    }
    throw conflict ?? new DatabricksConflictError(`Every name for Entra group ${group.id} is taken in the account.`, { status: 409, errorCode: 'RESOURCE_CONFLICT', method: 'POST', route: '/scim/v2/Groups' })
  }

  /** Databricks group id → its externalId (null: a Databricks-internal group), for ids outside the request. */
  private async externalIdsOf (ids: string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>()
    const unknown: string[] = []
    for (const id of ids) {
      const known = this.sourced.get(id)
      if (known !== undefined) out.set(id, known.externalId)
      else unknown.push(id)
    }
    await Promise.all(chunk(unknown, IDS_PER_LOOKUP).map(async part => {
      const found = await this.list('Groups', part.map(id => `id eq ${scimString(id)}`).join(' or '), 'id,externalId')
      for (const o of found) {
        out.set(o.id, o.externalId ?? null)
        this.sourced.set(o.id, { externalId: o.externalId ?? null })
      }
    }))
    return out
  }

  // ---- SCIM calls ---------------------------------------------------------------------------------------

  /** Every resource the filter matches (all pages). */
  private async list (resource: string, filter: string, attributes: string): Promise<ScimObject[]> {
    const out: ScimObject[] = []
    const seen = new Set<string>()
    for (let startIndex = 1; ;) {
      const res = await this.client.account<ListResponse>('GET', `/scim/v2/${resource}`, { query: { filter, attributes, startIndex, count: 1000 } })
      const page = res.json?.Resources ?? []
      for (const o of page) {
        if (!seen.has(o.id)) out.push(o)
        seen.add(o.id)
      }
      startIndex += page.length
      if (page.length === 0 || startIndex > (res.json?.totalResults ?? 0)) return out
    }
  }

  private async patch (resource: string, id: string, operations: unknown[], prepaid = false, ctx?: WriteContext): Promise<void> {
    await this.client.account('PATCH', `/scim/v2/${resource}/${encodeURIComponent(id)}`, { body: { schemas: [SCIM_SCHEMA.patchOp], Operations: operations }, prepaid, writes: ctx })
  }

  /**
   * One PATCH for a group's new and gone members (more only past 50 operations). When Databricks refuses
   * one (a 400 other than a member gone), the removals are made alone and the additions in halves, down to
   * single members: the answer maps each member it refused to add to its refusal.
   */
  /** A group's new and gone members, coalesced with other principals' writes to the group (membership-batches.ts). */
  private async patchMembers (groupId: string, add: string[], remove: string[], ctx?: WriteContext): Promise<Map<string, DatabricksBadRequestError>> {
    return await this.batches.write(groupId, add, remove, ctx)
  }

  private async sendMembers (groupId: string, add: string[], remove: string[], prepaid: boolean, ctx?: WriteContext): Promise<Map<string, DatabricksBadRequestError>> {
    const refused = new Map<string, DatabricksBadRequestError>()
    const addOps = chunk(add, MEMBERS_PER_OP)
    const removeOps = remove.map(id => ({ op: 'remove', path: `members[value eq ${scimString(id)}]` }))
    const ops: Array<{ members?: string[], op: unknown }> = [
      ...addOps.map(members => ({ members, op: addMembersOp(members) })),
      ...removeOps.map(op => ({ op }))
    ]
    for (const part of chunk(ops, OPS_PER_PATCH)) {
      try {
        // Only the first PATCH was paid for by the batch; any other takes its own token.
        const paid = prepaid
        prepaid = false
        await this.patch('Groups', groupId, part.map(o => o.op), paid, ctx)
      } catch (err) {
        if (!isRefusal(err)) throw err
        const adding = part.flatMap(o => o.members ?? [])
        const removing = part.filter(o => o.members === undefined).map(o => o.op)
        if (adding.length === 0) throw err
        if (removing.length > 0) {
          await this.patch('Groups', groupId, removing, false, ctx)
          await this.addMembers(groupId, adding, refused, ctx)
        } else {
          await this.addMembers(groupId, adding, refused, ctx, err)
        }
      }
    }
    return refused
  }

  /** Adds the members with one PATCH; when refused (`refusal`: already known), each half on its own. */
  private async addMembers (groupId: string, members: string[], refused: Map<string, DatabricksBadRequestError>, ctx: WriteContext | undefined, refusal?: DatabricksBadRequestError): Promise<void> {
    if (refusal === undefined) {
      try {
        await this.patch('Groups', groupId, [addMembersOp(members)], false, ctx)
        return
      } catch (err) {
        if (!isRefusal(err)) throw err
        refusal = err
      }
    }
    if (members.length === 1) {
      refused.set(members[0] as string, refusal)
      return
    }
    const half = Math.ceil(members.length / 2)
    await this.addMembers(groupId, members.slice(0, half), refused, ctx)
    await this.addMembers(groupId, members.slice(half), refused, ctx)
  }
}

/** Why a name may not be used (the reserved names; those workspace-local groups hold, or `avoid`), if it may not. */
function blockedNames (local: ReadonlySet<string>, avoid: ReadonlySet<string>): (name: string) => GroupNameCollision['reason'] | undefined {
  return name => {
    const key = name.trim().toLowerCase()
    if (isReservedGroupName(key)) return 'reserved'
    if (local.has(key) || avoid.has(key)) return 'workspace-local'
    return undefined
  }
}

function addMembersOp (members: string[]): unknown {
  return { op: 'add', path: 'members', value: members.map(value => ({ value })) }
}

/** A 400 that refuses what was asked (not one naming a member that is gone: that is a stale id). */
function isRefusal (err: unknown): err is DatabricksBadRequestError {
  return err instanceof DatabricksBadRequestError && !isStaleId(err)
}

/** A 404 on an id, or "Member X does not exist": an id the adapter remembered is gone. */
function isStaleId (err: unknown): boolean {
  return err instanceof DatabricksNotFoundError || (err instanceof DatabricksBadRequestError && /does not exist/i.test(err.message))
}
