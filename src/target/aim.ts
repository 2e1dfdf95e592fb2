// DatabricksAimTarget: the Target port for accounts with automatic identity management (AIM). Entra stays
// the source of record: the account learns users, service principals, groups and every membership and
// nesting from Entra itself, so this adapter only makes sure each identity exists in the account and
// learns its Databricks id. It never writes a membership.
//
// The identity API calls it makes (reference §1.2), and why:
// - The principal: `POST /api/2.0/identity/accounts/{id}/users|service-principals/resolve-by-external-id`
//   `{ "external_id": <Entra object id> }`. The account returns it, creating it (INACTIVE until its first
//   login) when missing; its Databricks id is what everything else is keyed by. One call, cached.
// - Its groups, the account's own answer: `GET .../principals/{principal id}/transitive-parent-groups
//   ?page_size=1000&page_token=…` lists every group the account knows the principal is in, with `group_id`
//   and `external_id` (the Entra id). Under AIM the account learns memberships from Entra. When it does is
//   [unconfirmed]: the emulator takes a resolve to "resolve … inherited parent groups" too, so right after
//   the principal's resolve its Entra security groups are there; if the real account learns them later,
//   the groups it does not report yet fall back as below, still correct. A user in G groups costs
//   1 resolve + ⌈G / 1000⌉ pages (1000 is the API's maximum page size; pages are read in turn, each token
//   from the page before) instead of 1 + G resolves: 4 calls for 2,500 groups, 3 up to 2,000. The page
//   only maps Entra ids to Databricks ids: a group is credited only when the request (Entra, through Graph)
//   lists it, so groups the account reports that the request does not hold (a membership made in
//   Databricks only, a group the group filter left out) are ignored. Paging stops early once every group
//   the request needs is found. Every group a page names fills the group cache, for every principal.
// - Groups of the request the pages do not report (a distribution list the account does not sync, a
//   membership the account has not learnt yet) are resolved one by one: `POST .../groups/resolve-by-
//   external-id`, at most `groupConcurrency` at a time for the whole adapter, one resolve per group at a
//   time even across principals (single-flight per group). The same when only a few groups are unknown
//   (no more than the pages would cost: a warm principal with one new group costs one resolve, no page),
//   and for every group once the account has answered a page with "no such endpoint" or 400 (not asked
//   again in this process). A page answered 404 (the principal's cached id is stale) falls back the same
//   way and forgets the principal. A throttled page is retried by the client like any call.
// - Both path spellings: the current kebab-case one by default, the first SDKs' camelCase one
//   (`resolveByExternalId`, `servicePrincipals`, `transitiveParentGroups`) by option; a kebab-case resolve
//   the account answers with `404 ENDPOINT_NOT_FOUND` makes the adapter switch to camelCase once, for good
//   (a missing page endpoint does not: it only stops the pages).
// - Both response generations: `user_id` / `group_id` / `service_principal_id` (strings) or the older
//   `internal_id` (a number, later a string), in resolves and pages alike.
// - `active` is what the account reports (`account_user_status` / `account_sp_status` = ACTIVE). Under
//   AIM that is INACTIVE both for a deactivated principal and for one that has never used the account.
//   Only when the account reports no status is Entra's `accountEnabled` used.
// - Caches (bounded LRUs): principal → { Databricks id, active } for `principalTtlMs` (the status can
//   change at the first login, so it is re-read now and then); Entra group id → Databricks id for
//   `groupTtlMs`, shared by every principal; a group the identity provider does not know is remembered as
//   such for `missingTtlMs` and left out of `groupIds`. A warm call with an unchanged request makes no call.
// - Single-flight per principal: identical concurrent requests share one run; a different request for the
//   same principal runs after the one in flight.
// - materializeGroup(): one group resolved the same way, named as the response's `group_name` says (the
//   account may have disambiguated a taken name); a group known from a page without a name (the reference
//   lists only ids for pages) is resolved once for it. `principalName` is the response's `username` /
//   `application_id`, remembered with the principal.
// - TargetSync (the Entra change feed): the account follows Entra itself, so every sync operation writes
//   nothing and answers `mirrored`; it only forgets what the change makes stale here: a principal's id and
//   status (setPrincipalActive), a group's id and name (renameGroup, retireGroup). Membership changes forget
//   nothing: no membership is cached or written. listMaterialized() lists nothing: there is nothing for a
//   full reconcile to correct. The caller treats both modes alike.
// - Errors: "AIM is not enabled" → AimDisabledError (a TargetConfigurationError telling the operator to use
//   DATABRICKS_MODE=scim or to enable AIM); throttling and outages → TargetUnavailableError (the client);
//   a principal the identity provider does not know → the client's DatabricksNotFoundError.
import { LRUCache } from 'lru-cache'
import pLimit, { type LimitFunction } from 'p-limit'
import type { Clock } from '../clock.ts'
import type { GroupRef } from '../directory/port.ts'
import type {
  GroupRenameResult, GroupRetirement, ListMaterializedOptions, MaterializeRequest, Materialized, MaterializedGroup, MaterializedIdentity, MembershipEdge,
  SyncPrincipalRef, SyncResult, Target, TargetSync
} from './port.ts'
import type { DatabricksClient } from './databricks-client.ts'
import { DatabricksBadRequestError, DatabricksError, DatabricksNotFoundError, TargetConfigurationError } from './errors.ts'

export type AimPathStyle = 'kebab' | 'camel'
export type AimKind = 'user' | 'servicePrincipal' | 'group'

export interface DatabricksAimTargetOptions {
  client: DatabricksClient
  /** Path spelling of the identity API: `kebab` (current, default) or `camel` (SDKs before v0.122.0). */
  pathStyle?: AimPathStyle
  /** Group resolves in flight at once, for the whole adapter (default 8). */
  groupConcurrency?: number
  /** Groups asked for per page of transitive-parent-groups (default and API maximum: 1000). */
  parentGroupsPageSize?: number
  /** Pages of transitive-parent-groups read at most per materialization (default 50: 50,000 groups). */
  maxParentGroupsPages?: number
  /** Principals remembered (default 100,000). */
  maxPrincipals?: number
  /** How long a principal's id and status spare a resolve (default 10 min). */
  principalTtlMs?: number
  /** Entra group id → Databricks id entries kept (default 100,000). */
  maxGroups?: number
  /** How long a group's id is trusted (default 1 h). */
  groupTtlMs?: number
  /** How long "the identity provider has no such group" is remembered (default 60 s). */
  missingTtlMs?: number
  /** The clock the cache TTLs read (default the system clock). */
  clock?: Clock
}

/** The account does not have automatic identity management: this adapter cannot work there. */
export class AimDisabledError extends TargetConfigurationError {
  readonly reason = 'AIM_DISABLED'

  constructor (accountId: string, cause: DatabricksError | TargetConfigurationError) {
    super(
      `Automatic identity management is not enabled for Databricks account ${accountId} (${cause.message}). ` +
      'Set DATABRICKS_MODE=scim to provision through account SCIM, or have an account admin enable automatic identity management.',
      cause.details,
      { cause }
    )
  }
}

const SEGMENT: Record<AimPathStyle, Record<AimKind, string>> = {
  kebab: { user: 'users', servicePrincipal: 'service-principals', group: 'groups' },
  camel: { user: 'users', servicePrincipal: 'servicePrincipals', group: 'groups' }
}
const ACTION: Record<AimPathStyle, string> = { kebab: 'resolve-by-external-id', camel: 'resolveByExternalId' }
const PARENTS: Record<AimPathStyle, string> = { kebab: 'transitive-parent-groups', camel: 'transitiveParentGroups' }
/** `page_size` of transitive-parent-groups "defaults to 1000 (also the maximum allowed)" (reference §1.2). */
export const MAX_PARENT_GROUPS_PAGE_SIZE = 1000
/** The response's wrapper key and id field, per kind. */
const WRAPPER: Record<AimKind, string> = { user: 'user', servicePrincipal: 'service_principal', group: 'group' }
const ID_FIELD: Record<AimKind, string> = { user: 'user_id', servicePrincipal: 'service_principal_id', group: 'group_id' }
const STATUS_FIELD: Partial<Record<AimKind, string>> = { user: 'account_user_status', servicePrincipal: 'account_sp_status' }
/** Where the account's name for it is, in order (`user_name`/`display_name`: tolerated spellings, [unconfirmed]). */
const NAME_FIELDS: Record<AimKind, readonly string[]> = { user: ['username', 'user_name'], servicePrincipal: ['application_id'], group: ['group_name', 'display_name'] }

/** The identity API path of a resolve, in either spelling. */
export function resolvePath (kind: AimKind, style: AimPathStyle = 'kebab'): string {
  return `/${SEGMENT[style][kind]}/${ACTION[style]}`
}

/** The identity API path of a principal's transitive parent groups, in either spelling. */
export function parentGroupsPath (principalId: string, style: AimPathStyle = 'kebab'): string {
  return `/principals/${encodeURIComponent(principalId)}/${PARENTS[style]}`
}

export interface ResolvedIdentity {
  /** The Databricks id, as a string. */
  id: string
  /** `ACTIVE` / `INACTIVE` as the account reports it (users and service principals), when it does. */
  status?: 'ACTIVE' | 'INACTIVE'
  externalId?: string
  /** The account's name for it: a user's `username`, a group's `group_name`, a service principal's `application_id`. */
  name?: string
}

/**
 * Reads a resolve response of either field generation: `{ user: { user_id } }` (current) or
 * `{ user: { internal_id } }` (first SDKs; a number, later a string). Throws on a body without an id.
 */
export function parseResolved (kind: AimKind, body: unknown): ResolvedIdentity {
  const wrapped = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[WRAPPER[kind]] : undefined
  const o = typeof wrapped === 'object' && wrapped !== null ? wrapped as Record<string, unknown> : undefined
  const id = o === undefined ? undefined : idString(o[ID_FIELD[kind]]) ?? idString(o.internal_id)
  if (o === undefined || id === undefined) {
    throw new TypeError(`Databricks answered a ${kind} resolve without ${WRAPPER[kind]}.${ID_FIELD[kind]} or internal_id.`)
  }
  const statusField = STATUS_FIELD[kind]
  const raw = statusField === undefined ? undefined : o[statusField]
  const status = raw === 'ACTIVE' || raw === 'INACTIVE' ? raw : undefined
  const name = [...NAME_FIELDS[kind]].map(f => o[f]).find((v): v is string => typeof v === 'string' && v !== '')
  return {
    id,
    ...(status !== undefined ? { status } : {}),
    ...(typeof o.external_id === 'string' ? { externalId: o.external_id } : {}),
    ...(name !== undefined ? { name } : {})
  }
}

function idString (v: unknown): string | undefined {
  if (typeof v === 'string' && v !== '') return v
  // int64 as a JSON number: exact only below 2^53 (the string fields of later generations have no limit).
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return String(v)
  return undefined
}

export interface ParentGroupsPage {
  /** The groups of this page that carry an Entra object id (`external_id`) and a Databricks id. */
  groups: Array<{ id: string, externalId: string, name?: string }>
  /** The next page's token; absent on the last page. */
  next?: string
}

/**
 * Reads one page of transitive-parent-groups: `{ transitive_parent_groups: [{ account_id, group_id,
 * external_id }], next_page_token }`, the id in either field generation (`group_id`, or `internal_id`).
 * A page without the list is an empty one (proto3 JSON leaves empty lists out). Entries without an
 * `external_id` (groups made in Databricks) or an id are skipped: they name no Entra group.
 */
export function parseParentGroupsPage (body: unknown): ParentGroupsPage {
  if (typeof body !== 'object' || body === null) throw new TypeError('Databricks answered transitive-parent-groups without a JSON object.')
  const o = body as Record<string, unknown>
  const list = Array.isArray(o.transitive_parent_groups) ? o.transitive_parent_groups as unknown[] : []
  const groups: ParentGroupsPage['groups'] = []
  for (const entry of list) {
    if (typeof entry !== 'object' || entry === null) continue
    const g = entry as Record<string, unknown>
    const id = idString(g.group_id) ?? idString(g.internal_id)
    const externalId = typeof g.external_id === 'string' && g.external_id !== '' ? g.external_id : undefined
    if (id === undefined || externalId === undefined) continue
    const name = NAME_FIELDS.group.map(f => g[f]).find((v): v is string => typeof v === 'string' && v !== '')
    groups.push({ id, externalId, ...(name !== undefined ? { name } : {}) })
  }
  const next = typeof o.next_page_token === 'string' && o.next_page_token !== '' ? o.next_page_token : undefined
  return { groups, ...(next !== undefined ? { next } : {}) }
}

/** Is this refusal Databricks saying the account is not onboarded onto AIM? */
function isAimDisabled (err: unknown): err is DatabricksError | TargetConfigurationError {
  if (!(err instanceof DatabricksError) && !(err instanceof TargetConfigurationError)) return false
  const status = err.details.status
  if (status !== undefined && status !== 400 && status !== 403) return false
  if (err.details.errorCode === 'FEATURE_DISABLED') return true
  return /automatic identity management|not onboarded/i.test(err.message)
}

function isEndpointMissing (err: unknown): boolean {
  return err instanceof DatabricksNotFoundError && (err.errorCode === 'ENDPOINT_NOT_FOUND' || /No API found/i.test(err.message))
}

interface KnownPrincipal { id: string, active: boolean, accountEnabled: boolean, name: string }
/**
 * A group's Databricks id (and its name in the account, when the answer carried one), or null: the
 * identity provider does not have it.
 */
interface KnownGroup { id: string | null, name?: string }

function fingerprintOf (request: MaterializeRequest): string {
  const p = request.principal
  const groups = [...new Set(request.groups.map(g => g.id.toLowerCase()))].sort()
  return JSON.stringify([p.kind, p.id.toLowerCase(), p.accountEnabled, groups])
}

function clone (r: Materialized): Materialized {
  return { principalId: r.principalId, groupIds: new Map(r.groupIds), active: r.active, principalName: r.principalName }
}

export class DatabricksAimTarget implements Target, TargetSync {
  /** The account learns memberships from Entra: the materializer need not read them. */
  readonly mirrorsMemberships = false
  private readonly client: DatabricksClient
  private style: AimPathStyle
  private readonly principals: LRUCache<string, KnownPrincipal>
  private readonly groups: LRUCache<string, KnownGroup>
  private readonly missingTtlMs: number
  private readonly limit: LimitFunction
  private readonly pageSize: number
  private readonly maxPages: number
  /** The account answered transitive-parent-groups with "no such endpoint": groups are resolved one by one. */
  private parentGroupsMissing = false
  private readonly lanes = new Map<string, { fingerprint: string, promise: Promise<Materialized> }>()
  private readonly groupFlights = new Map<string, Promise<KnownGroup>>()
  /** Bumped by forget() and clear(): an answer resolved before them is returned, not remembered. */
  private epoch = 0

  constructor (options: DatabricksAimTargetOptions) {
    this.client = options.client
    this.style = options.pathStyle ?? 'kebab'
    const clock = options.clock
    const perf = clock === undefined ? {} : { perf: { now: () => clock.now() }, ttlResolution: 0 }
    this.principals = new LRUCache({ max: options.maxPrincipals ?? 100_000, ttl: options.principalTtlMs ?? 600_000, ...perf })
    this.groups = new LRUCache({ max: options.maxGroups ?? 100_000, ttl: options.groupTtlMs ?? 3_600_000, ...perf })
    this.missingTtlMs = options.missingTtlMs ?? 60_000
    this.limit = pLimit(options.groupConcurrency ?? 8)
    this.pageSize = Math.min(MAX_PARENT_GROUPS_PAGE_SIZE, Math.max(1, Math.floor(options.parentGroupsPageSize ?? MAX_PARENT_GROUPS_PAGE_SIZE)))
    this.maxPages = Math.max(1, Math.floor(options.maxParentGroupsPages ?? 50))
  }

  /** The path spelling in use (it turns `camel` if the account does not know the kebab-case paths). */
  get pathStyle (): AimPathStyle { return this.style }

  async materialize (request: MaterializeRequest): Promise<Materialized> {
    const p = request.principal
    if (p.kind !== 'user' && p.kind !== 'servicePrincipal') throw new TypeError(`Only users and service principals are materialized, not a ${p.kind}.`)
    const key = `${request.tenantId.toLowerCase()}|${p.id.toLowerCase()}`
    const fingerprint = fingerprintOf(request)
    const running = this.lanes.get(key)
    if (running?.fingerprint === fingerprint) return clone(await running.promise)
    const before = running === undefined ? Promise.resolve() : running.promise.then(() => {}, () => {})
    const promise = before.then(async () => await this.run(key, request))
    this.lanes.set(key, { fingerprint, promise })
    try {
      return clone(await promise)
    } finally {
      if (this.lanes.get(key)?.promise === promise) this.lanes.delete(key)
    }
  }

  mark (): number { return this.epoch }

  /** Nothing beyond `Materialized`: the principal's and the groups' ids are all this adapter remembers. */
  remembrance (): undefined { return undefined }

  adopt (request: MaterializeRequest, materialized: Materialized, _remembrance: unknown, mark: number): void {
    if (mark !== this.epoch) return
    const p = request.principal
    const tenant = request.tenantId.toLowerCase()
    const key = `${tenant}|${p.id.toLowerCase()}`
    if (!this.principals.has(key)) this.principals.set(key, { id: materialized.principalId, active: materialized.active, accountEnabled: p.accountEnabled, name: materialized.principalName })
    for (const [entraId, id] of materialized.groupIds) {
      const groupKey = `${tenant}|${entraId.toLowerCase()}`
      if (!this.groups.has(groupKey)) this.groups.set(groupKey, { id })
    }
  }

  /**
   * Makes the account hold one Entra group (`groups/resolve-by-external-id`; Entra keeps its members) and
   * names it as the account does (a second Entra group with a taken name gets a disambiguated one). Known
   * groups cost no call; concurrent calls share the resolve. A group the identity provider does not know
   * (deleted, or not a security group) is a DatabricksNotFoundError.
   */
  async materializeGroup (tenantId: string, group: GroupRef): Promise<MaterializedGroup> {
    // A group learnt from a transitive-parent-groups page without its name is resolved for the name.
    const known = await this.group(tenantId, group.id, { needName: true })
    if (known.id === null) {
      throw new DatabricksNotFoundError(
        `Automatic identity management of Databricks account ${this.client.accountId} does not know Entra group ${group.id} (${group.displayName}): it may have been deleted, or not be a security group.`,
        { status: 404, errorCode: 'RESOURCE_DOES_NOT_EXIST', method: 'POST', route: resolvePath('group', this.style) }
      )
    }
    // A response without group_name (not seen so far): Entra's name is the best guess.
    return { groupId: known.id, name: known.name ?? group.displayName }
  }

  /** Forgets one principal (its next call resolves it again). */
  forget (tenantId: string, principalId: string): void {
    this.epoch += 1
    this.principals.delete(`${tenantId.toLowerCase()}|${principalId.toLowerCase()}`)
  }

  // ---- TargetSync: the account follows Entra itself; only caches are forgotten ---------------------------

  /** Writes nothing (the account deactivates it at its next identity sync); forgets its cached id and status. */
  async setPrincipalActive (tenantId: string, principal: SyncPrincipalRef, _active: boolean): Promise<SyncResult> {
    this.invalidate(tenantId, { principals: [principal.id] })
    return { outcome: 'mirrored' }
  }

  /** Writes nothing: the account learns memberships from Entra; none is cached here. */
  async addMembership (_tenantId: string, _edge: MembershipEdge): Promise<SyncResult> {
    return { outcome: 'mirrored' }
  }

  /** Writes nothing: the account learns memberships from Entra; none is cached here. */
  async removeMembership (_tenantId: string, _edge: MembershipEdge): Promise<SyncResult> {
    return { outcome: 'mirrored' }
  }

  /** Writes nothing (the account names its groups); forgets the group's cached name. */
  async renameGroup (tenantId: string, group: { id: string, displayName: string }, _options?: { avoidNames?: ReadonlySet<string> }): Promise<GroupRenameResult> {
    this.invalidate(tenantId, { groups: [group.id] })
    return { outcome: 'mirrored' }
  }

  /** Writes nothing (the account drops what Entra deleted); forgets the group's cached id. */
  async retireGroup (tenantId: string, groupId: string, _how: GroupRetirement): Promise<SyncResult> {
    this.invalidate(tenantId, { groups: [groupId] })
    return { outcome: 'mirrored' }
  }

  /** Nothing: under AIM the account is kept in step with Entra by Databricks, so no reconcile is needed. */
  async * listMaterialized (_tenantId: string, _options?: ListMaterializedOptions): AsyncGenerator<MaterializedIdentity> {}

  /** Forgets these principals' ids and statuses and these groups' ids and names (their next use resolves them again). */
  invalidate (tenantId: string, ids: { principals?: Iterable<string>, groups?: Iterable<string> }): void {
    this.epoch += 1
    for (const id of ids.principals ?? []) this.principals.delete(`${tenantId.toLowerCase()}|${id.toLowerCase()}`)
    for (const id of ids.groups ?? []) {
      const key = `${tenantId.toLowerCase()}|${id.toLowerCase()}`
      this.groups.delete(key)
      this.groupFlights.delete(key)
    }
  }

  /** Forgets everything. */
  clear (): void {
    this.epoch += 1
    this.parentGroupsMissing = false
    this.principals.clear()
    this.groups.clear()
    this.groupFlights.clear()
  }

  private async run (key: string, request: MaterializeRequest): Promise<Materialized> {
    const groups = [...new Map(request.groups.map(g => [g.id, g])).values()]
    const tenant = request.tenantId.toLowerCase()
    const unknown = groups.filter(g => {
      const k = `${tenant}|${g.id.toLowerCase()}`
      return !this.groups.has(k) && !this.groupFlights.has(k)
    })
    // The principal's own parent groups cost ⌈groups / page size⌉ reads after its id is known; resolving
    // each unknown group costs one call each. Read the pages only when they save calls.
    const pages = Math.max(1, Math.ceil(groups.length / this.pageSize))
    if (this.parentGroupsMissing || unknown.length <= pages) {
      // Settled, not raced: a failed run leaves no resolve of its own behind for the next call to join.
      const [principal, groupIds] = await Promise.allSettled([
        this.principal(key, request),
        this.resolveGroups(request.tenantId, groups)
      ])
      if (principal.status === 'rejected') throw principal.reason
      if (groupIds.status === 'rejected') throw groupIds.reason
      return { principalId: principal.value.id, groupIds: groupIds.value, active: principal.value.active, principalName: principal.value.name }
    }
    const principal = await this.principal(key, request)
    const reported = await this.parentGroups(key, request.tenantId, principal.id, new Set(unknown.map(g => g.id.toLowerCase())))
    // Groups of the request the account did not report (left out by the page, not known to it yet) are
    // resolved one by one; groups it reported that the request does not hold are not the principal's.
    const groupIds = await this.resolveGroups(request.tenantId, groups, reported)
    return { principalId: principal.id, groupIds, active: principal.active, principalName: principal.name }
  }

  /**
   * The groups the account says the principal is in (transitive-parent-groups, every page until each of
   * `wanted` — lowercased Entra ids — is found or the pages end), by lowercased Entra id. Each is remembered
   * for every principal. A principal or endpoint the account does not know gives an empty answer (the
   * caller resolves the groups one by one); other errors are thrown as a resolve's are.
   */
  private async parentGroups (principalKey: string, tenantId: string, principalId: string, wanted: Set<string>): Promise<Map<string, KnownGroup>> {
    const found = new Map<string, KnownGroup>()
    const tenant = tenantId.toLowerCase()
    const epoch = this.epoch
    const seen = new Set<string>()
    let token: string | undefined
    for (let page = 0; page < this.maxPages; page++) {
      let body: ParentGroupsPage
      try {
        const res = await this.client.identity('GET', parentGroupsPath(principalId, this.style), { query: { page_size: this.pageSize, page_token: token } })
        body = parseParentGroupsPage(res.json ?? {})
      } catch (err) {
        if (isAimDisabled(err)) throw new AimDisabledError(this.client.accountId, err)
        // An account without the call, or refusing how it is asked (400): the pages only save calls, so
        // groups are resolved one by one, and the call is not tried again in this process (until clear()).
        if (isEndpointMissing(err) || err instanceof DatabricksBadRequestError) {
          this.parentGroupsMissing = true
          return found
        }
        if (!(err instanceof DatabricksNotFoundError)) throw err
        // No such principal: its remembered id is stale. Resolved again next time.
        if (epoch === this.epoch) this.principals.delete(principalKey)
        return found
      }
      for (const g of body.groups) {
        const ext = g.externalId.toLowerCase()
        const known: KnownGroup = { id: g.id, ...(g.name !== undefined ? { name: g.name } : {}) }
        found.set(ext, known)
        wanted.delete(ext)
        if (epoch === this.epoch) this.groups.set(`${tenant}|${ext}`, known)
      }
      if (body.next === undefined || wanted.size === 0 || seen.has(body.next)) break
      seen.add(body.next)
      token = body.next
    }
    return found
  }

  private async principal (key: string, request: MaterializeRequest): Promise<KnownPrincipal> {
    const p = request.principal
    const known = this.principals.get(key)
    // Entra enabling or disabling it is a reason to ask the account again at once.
    if (known !== undefined && known.accountEnabled === p.accountEnabled) return known
    const kind = p.kind as 'user' | 'servicePrincipal'
    const epoch = this.epoch
    const resolved = await this.resolve(kind, p.id)
    const found: KnownPrincipal = {
      id: resolved.id,
      active: resolved.status === undefined ? p.accountEnabled : resolved.status === 'ACTIVE',
      accountEnabled: p.accountEnabled,
      // The account's user name (normally the UPN) or application id; Entra's when the response has none.
      name: resolved.name ?? (kind === 'user' ? p.userPrincipalName ?? p.id : p.appId ?? p.id)
    }
    if (epoch === this.epoch) this.principals.set(key, found)
    return found
  }

  private async resolveGroups (tenantId: string, groups: GroupRef[], reported?: ReadonlyMap<string, KnownGroup>): Promise<Map<string, string>> {
    const out = new Map<string, string>()
    const settled = await Promise.allSettled([...new Map(groups.map(g => [g.id, g])).values()].map(async g => {
      const { id } = reported?.get(g.id.toLowerCase()) ?? await this.group(tenantId, g.id)
      if (id !== null) out.set(g.id, id)
    }))
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    // In the request's order, whatever order the resolves finished in.
    return new Map(groups.filter(g => out.has(g.id)).map(g => [g.id, out.get(g.id) as string]))
  }

  private async group (tenantId: string, groupId: string, { needName = false } = {}): Promise<KnownGroup> {
    const key = `${tenantId.toLowerCase()}|${groupId.toLowerCase()}`
    const known = this.groups.get(key)
    if (known !== undefined && !(needName && known.id !== null && known.name === undefined)) return known
    const flying = this.groupFlights.get(key)
    if (flying !== undefined) return await flying
    const epoch = this.epoch
    const flight = this.limit(async (): Promise<KnownGroup> => {
      try {
        const resolved = await this.resolve('group', groupId)
        const found: KnownGroup = { id: resolved.id, ...(resolved.name !== undefined ? { name: resolved.name } : {}) }
        if (epoch === this.epoch) this.groups.set(key, found)
        return found
      } catch (err) {
        // Gone from Entra since the request was made (or never a group): left out, remembered briefly.
        if (err instanceof DatabricksNotFoundError) {
          const missing: KnownGroup = { id: null }
          if (epoch === this.epoch) this.groups.set(key, missing, { ttl: this.missingTtlMs })
          return missing
        }
        throw err
      }
    })
    this.groupFlights.set(key, flight)
    try {
      return await flight
    } finally {
      if (this.groupFlights.get(key) === flight) this.groupFlights.delete(key)
    }
  }

  private async resolve (kind: AimKind, externalId: string): Promise<ResolvedIdentity> {
    for (;;) {
      const style = this.style
      try {
        const res = await this.client.identity('POST', resolvePath(kind, style), { body: { external_id: externalId } })
        return parseResolved(kind, res.json)
      } catch (err) {
        if (isAimDisabled(err)) throw new AimDisabledError(this.client.accountId, err)
        // An account that serves only the first SDKs' camelCase paths: switch once, for every later call.
        if (style === 'kebab' && isEndpointMissing(err)) {
          if (this.style === 'kebab') this.style = 'camel'
          continue
        }
        throw err
      }
    }
  }
}
