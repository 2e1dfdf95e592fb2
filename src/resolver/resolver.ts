// The resolver: from a verified caller (or an id) to a principal and its complete, current group set,
// through the caches. Pure orchestration: the Directory port does the I/O.
import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.ts'
import type { Caller } from '../auth/caller.ts'
import { DirectoryUnavailableError, type Directory, type DirectoryPrincipal, type GroupRef, type PrincipalQuery } from '../directory/port.ts'
import { FreshCache, type CacheObserver } from './fresh-cache.ts'
import { shortestGroupPaths } from '../permissions/group-paths.ts'
import { DirectoryAmbiguousError, DirectoryConfigurationError, DirectoryRequestError } from '../directory/errors.ts'
import { DirectoryMisconfigured, DirectoryRejected, PrincipalAmbiguous, PrincipalDisabled, PrincipalNotFound, PrincipalNotFoundAtLogin, subjectNotAPrincipal, upstreamUnavailable } from './errors.ts'

export interface ResolverOptions {
  directory: Directory
  clock: Clock
  /** Freshness: how long a principal and its groups are served without asking Entra again. */
  principalTtlMs: number
  groupsTtlMs: number
  /** How long "no such principal" is remembered. */
  notFoundTtlMs: number
  /** How long past their TTL entries may still be served while Entra is slow or down. */
  maxStaleMs: number
  /** Bounds memory: total cached principals, and total cached group references. */
  maxPrincipals: number
  maxGroupRefs: number
  /** Use the token's `groups` claim when present and complete instead of asking Graph. */
  useGroupsClaim: boolean
  observer?: CacheObserver
}

/**
 * What a principal's sign-in read from Entra, as JSON another replica can adopt: the principal, its
 * transitive groups and, when the target mirrors nesting, its direct groups and each group's direct parents.
 */
export interface ResolutionFacts {
  principal: DirectoryPrincipal
  groups: GroupRef[]
  direct?: GroupRef[]
  parents?: Array<[string, string[]]>
}

export interface Resolution {
  principal: DirectoryPrincipal
  groups: GroupRef[]
  /** Where the groups came from: Microsoft Graph (through the cache) or the token's own claim. */
  groupsSource: 'graph' | 'token'
}

/**
 * A principal's group paths and the cached entries they were computed from: its direct groups and the
 * direct parents of each of its groups, by identity. Valid while every one of them is still the fresh
 * entry of its cache; an entry expired, reloaded, forgotten or evicted makes the paths be computed again.
 * Checked entry by entry only when the two caches changed since the last check (`generation`) or one of the
 * entries has expired since (`expiresAt`, the earliest): a warm question of a user in thousands of groups
 * costs no lookup per group while nothing changes.
 */
interface PathsMemo {
  directKey: string
  direct: GroupRef[]
  parentKeys: string[]
  parents: Array<string[] | undefined>
  paths: ReadonlyMap<string, readonly string[]>
  /** The caches' generations when every entry was last found to be the one above; -1: not yet. */
  generation: number
  expiresAt: number
}

/** Cached in place of a principal Entra does not have (lru-cache values cannot be null). */
const NOT_FOUND = Object.freeze({ notFound: true as const })
type Cached = DirectoryPrincipal | typeof NOT_FOUND

const isNotFound = (v: Cached): v is typeof NOT_FOUND => v === NOT_FOUND

export class Resolver {
  private readonly principals: FreshCache<Cached>
  private readonly groups: FreshCache<GroupRef[]>
  private readonly parents: FreshCache<string[]>
  private readonly directGroupsCache: FreshCache<GroupRef[]>
  private readonly directory: Directory
  private readonly groupRefs: LRUCache<string, GroupRef>
  /** Keyed by the cached array of the principal's transitive groups: lives as long as that entry does. */
  private readonly pathMemos = new WeakMap<GroupRef[], PathsMemo>()
  /** Bumped by every forget: what another replica read is not adopted across one (mark(), adopt()). */
  private forgets = 0

  constructor (private readonly options: ResolverOptions) {
    this.directory = options.directory
    this.groupRefs = new LRUCache({ max: Math.max(1000, Math.ceil(options.maxGroupRefs / 5)) })
    const common = { clock: options.clock, maxStaleMs: options.maxStaleMs, observer: options.observer }
    this.principals = new FreshCache<Cached>({
      ...common,
      name: 'principals',
      ttlMs: options.principalTtlMs,
      ttlOf: v => isNotFound(v) ? options.notFoundTtlMs : options.principalTtlMs,
      maxSize: options.maxPrincipals,
      load: async (key) => {
        const { tenantId, query } = parsePrincipalKey(key)
        return await this.directory.findPrincipal(tenantId, query) ?? NOT_FOUND
      }
    })
    // A principal's groups, transitive or direct; the group objects are shared across principals.
    const groupList = (name: string, fetch: Directory['transitiveGroups']): FreshCache<GroupRef[]> => new FreshCache<GroupRef[]>({
      ...common,
      name,
      ttlMs: options.groupsTtlMs,
      maxSize: options.maxGroupRefs,
      sizeOf: groups => groups.length + 1,
      load: async (key) => {
        const [tenantId, kind, id] = key.split('|') as [string, DirectoryPrincipal['kind'], string]
        return (await fetch(tenantId, { kind, id })).map(g => this.intern(tenantId, g))
      }
    })
    this.groups = groupList('groups', async (tenantId, p) => await this.directory.transitiveGroups(tenantId, p))
    this.directGroupsCache = groupList('directGroups', async (tenantId, p) => await this.directory.directGroups(tenantId, p))
    // Group → direct parents is shared by every member of the group (Zanzibar's Leopard idea).
    this.parents = new FreshCache<string[]>({
      ...common,
      name: 'parents',
      ttlMs: options.groupsTtlMs,
      maxSize: options.maxGroupRefs,
      sizeOf: parents => parents.length + 1,
      load: async (key) => {
        const [tenantId, groupId] = key.split('|') as [string, string]
        return (await this.directory.directParents(tenantId, [groupId])).get(groupId) ?? []
      }
    })
  }

  /**
   * One object per group, shared by every cached principal that belongs to it: thousands of members of
   * the same groups then cost one reference each, not one copy each. A renamed group gets a new object.
   */
  private intern (tenantId: string, group: GroupRef): GroupRef {
    const key = `${tenantId}|${group.id}`
    const known = this.groupRefs.get(key)
    if (known !== undefined && known.displayName === group.displayName && known.securityEnabled === group.securityEnabled) return known
    this.groupRefs.set(key, group)
    return group
  }

  /**
   * The signed-in caller, who must exist and be enabled (unless asked otherwise), with its transitive
   * groups. `groupNames`: the groups' names are needed (to materialize them), so the token's claim, which
   * holds ids only, is not enough.
   */
  async resolveCaller (caller: Caller, options: { includeDisabled?: boolean, groupNames?: boolean } = {}): Promise<Resolution> {
    const principal = this.principals.getFresh(callerKey(caller)) ?? await this.lookup(caller.tenantId, { id: caller.oid })
    if (principal === undefined || isNotFound(principal)) throw new PrincipalNotFoundAtLogin(caller.oid, caller.tenantId)
    // Before anything is read or written for it: a group cannot sign in, nor be the subject of "my permissions".
    if (principal.kind !== 'user' && principal.kind !== 'servicePrincipal') throw subjectNotAPrincipal(caller.oid, principal.kind, caller.tenantId)
    if (!principal.accountEnabled && options.includeDisabled !== true) throw new PrincipalDisabled(principal.id)
    if (this.options.useGroupsClaim && caller.groupsClaim !== undefined && options.groupNames !== true) {
      return { principal, groups: caller.groupsClaim.map(id => ({ id, displayName: '', securityEnabled: true })), groupsSource: 'token' }
    }
    const groups = this.groups.getFresh(groupsKey(principal)) ?? await this.groupsOf(principal)
    return { principal, groups, groupsSource: 'graph' }
  }

  /**
   * resolveCaller() from the caches alone, without a promise: the caller and its groups when both are
   * cached fresh, it may sign in (an enabled user or service principal) and its groups come from Graph;
   * undefined otherwise (resolveCaller() then decides, loads or refuses). `signIn`: the groups with their
   * names (a token's `groups` claim does not stand in).
   */
  warmCaller (caller: Caller, options: { signIn?: boolean } = {}): Resolution | undefined {
    if (options.signIn !== true && this.options.useGroupsClaim && caller.groupsClaim !== undefined) return undefined
    const principal = this.principals.getFresh(callerKey(caller))
    if (principal === undefined || isNotFound(principal) || !principal.accountEnabled) return undefined
    if (principal.kind !== 'user' && principal.kind !== 'servicePrincipal') return undefined
    const groups = this.groups.getFresh(groupsKey(principal))
    return groups === undefined ? undefined : { principal, groups, groupsSource: 'graph' }
  }

  /** Any principal by id, UPN, mail or appId, with its groups (groups have none). Disabled ones too. */
  async resolve (tenantId: string, query: PrincipalQuery, options: { groups?: boolean } = {}): Promise<Resolution> {
    const principal = await this.lookup(tenantId, query)
    if (principal === undefined) throw new PrincipalNotFound(Object.values(query)[0] as string, tenantId)
    return options.groups === false ? { principal, groups: [], groupsSource: 'graph' } : await this.resolveLoaded(principal)
  }

  /**
   * A principal the caller has already read from the directory (a group's member list in a bulk
   * registration) with its transitive groups: no second read of the principal itself.
   */
  async resolveLoaded (principal: DirectoryPrincipal): Promise<Resolution> {
    return { principal, groups: principal.kind === 'group' ? [] : await this.groupsOf(principal), groupsSource: 'graph' }
  }

  /**
   * What resolve() answers when every entry it needs is fresh (no directory call, no promise): the
   * principal the query names, cached under its id too, and its groups. undefined otherwise (not cached,
   * expired, or "not found": resolve() says so).
   */
  warm (tenantId: string, query: PrincipalQuery): Resolution | undefined {
    const principal = this.principals.getFresh(principalKey(tenantId, query))
    if (principal === undefined || isNotFound(principal)) return undefined
    if (!('id' in query) && this.principals.getFresh(principalKey(tenantId, { id: principal.id })) === undefined) return undefined
    if (principal.kind === 'group') return { principal, groups: [], groupsSource: 'graph' }
    const groups = this.groups.getFresh(groupsKey(principal))
    return groups === undefined ? undefined : { principal, groups, groupsSource: 'graph' }
  }

  /**
   * How the principal belongs to each of its groups: group id → the ids along the shortest chain from one
   * of its direct groups (Entra's nesting, from the cached edges). Computed once per principal and served
   * again while the edges it was computed from are the fresh cached ones (warmGroupPaths).
   */
  async groupPaths (resolution: Resolution): Promise<ReadonlyMap<string, readonly string[]>> {
    const warm = this.warmGroupPaths(resolution)
    if (warm !== undefined) return warm
    const { principal, groups } = resolution
    const ids = groups.map(g => g.id)
    const [direct, parents] = await Promise.all([this.directGroups(principal), this.directParents(principal.tenantId, ids)])
    const paths = shortestGroupPaths(direct.map(g => g.id), parents)
    const tenant = principal.tenantId.toLowerCase()
    this.pathMemos.set(groups, {
      directKey: groupsKey(principal),
      direct,
      parentKeys: ids.map(id => `${tenant}|${id.toLowerCase()}`),
      parents: ids.map(id => parents.get(id)),
      paths,
      generation: -1,
      expiresAt: 0
    })
    return paths
  }

  /** groupPaths() without a promise when nothing it was computed from has changed since; else undefined. */
  warmGroupPaths ({ principal, groups }: Resolution): ReadonlyMap<string, readonly string[]> | undefined {
    const memo = this.pathMemos.get(groups)
    if (memo === undefined || memo.directKey !== groupsKey(principal)) return undefined
    const generation = this.directGroupsCache.generation + this.parents.generation
    if (memo.generation === generation && this.options.clock.now() < memo.expiresAt) return memo.paths
    // Something in the two caches changed, or an entry expired: each entry the paths came from, checked.
    const direct = this.directGroupsCache.peekFresh(memo.directKey)
    if (direct?.value !== memo.direct) return undefined
    let expiresAt = direct.expiresAt
    for (let i = 0; i < memo.parentKeys.length; i++) {
      const entry = this.parents.peekFresh(memo.parentKeys[i] as string)
      if (entry === undefined || entry.value !== memo.parents[i]) return undefined
      expiresAt = Math.min(expiresAt, entry.expiresAt)
    }
    memo.generation = generation
    memo.expiresAt = expiresAt
    return memo.paths
  }

  /** Whether the query is answered from fresh cache entries alone, without a directory call. */
  isWarm (tenantId: string, query: PrincipalQuery): boolean {
    const key = principalKey(tenantId, query)
    if (!this.principals.hasFresh(key)) return false
    const principal = this.principals.getFresh(key)
    if (principal === undefined || isNotFound(principal) || principal.kind === 'group') return true
    return this.groups.hasFresh(groupsKey(principal))
  }

  /** The groups a group is nested in, at any depth (cached as a principal's groups are). */
  async ancestorsOf (group: DirectoryPrincipal): Promise<GroupRef[]> {
    return await this.groupsOf(group)
  }

  /** Every user and service principal in the group, through nesting (not cached: read once per job); null: no such group. */
  async groupMembers (tenantId: string, groupId: string): Promise<DirectoryPrincipal[] | null> {
    return await this.guard(this.directory.transitiveMembers(tenantId, groupId))
  }

  /** The groups the principal is itself a member of (what a target mirrors as memberships). */
  async directGroups (principal: DirectoryPrincipal): Promise<GroupRef[]> {
    return await this.guard(this.directGroupsCache.get(groupsKey(principal)))
  }

  /** Direct parents of each group, loading every uncached one in a single directory call. */
  async directParents (tenantId: string, groupIds: string[]): Promise<Map<string, string[]>> {
    const key = (id: string): string => `${tenantId.toLowerCase()}|${id.toLowerCase()}`
    const missing = groupIds.filter(id => !this.parents.hasFresh(key(id)))
    const loaded = missing.length > 1 ? await this.guard(this.directory.directParents(tenantId, missing)) : undefined
    const result = new Map<string, string[]>()
    for (const id of groupIds) result.set(id, this.parents.getFresh(key(id)) ?? await this.guard(this.parents.get(key(id), loaded?.get(id) ?? (loaded !== undefined ? [] : undefined))))
    return result
  }

  /** Where the forgets stand now: adopt() stores nothing if one happens after. */
  mark (): number { return this.forgets }

  /**
   * What another replica read from Entra for a principal (its sign-in, fleet/flights.ts), stored as if read
   * here, unless something was forgotten since `mark` (an Entra change heard meanwhile may make it stale).
   * Entries already fresh here stay. false: nothing was stored.
   */
  async adopt (facts: ResolutionFacts, mark: number): Promise<boolean> {
    if (mark !== this.forgets) return false
    const { principal } = facts
    const tenant = principal.tenantId.toLowerCase()
    await this.principals.get(principalKey(principal.tenantId, { id: principal.id }), principal)
    await this.groups.get(groupsKey(principal), facts.groups.map(g => this.intern(principal.tenantId, g)))
    if (facts.direct !== undefined) await this.directGroupsCache.get(groupsKey(principal), facts.direct.map(g => this.intern(principal.tenantId, g)))
    for (const [id, parents] of facts.parents ?? []) await this.parents.get(`${tenant}|${id.toLowerCase()}`, parents)
    return true
  }

  /** Forget what is cached about a principal (an invalidation from Entra or an operator). */
  invalidate (tenantId: string, principal: Pick<DirectoryPrincipal, 'kind' | 'id'>): void {
    this.forgets += 1
    this.principals.delete(principalKey(tenantId, { id: principal.id }))
    this.groups.delete(groupsKey({ ...principal, tenantId }))
    this.directGroupsCache.delete(groupsKey({ ...principal, tenantId }))
  }

  /**
   * Forget everything cached about a principal Entra changed: its profile under every name it was looked
   * up by (id, UPN, mail, appId), its groups, and "not found" answers for its id. The next request reads
   * Entra again, so a disabled principal is refused at once.
   */
  forgetPrincipal (tenantId: string, id: string): void {
    this.forgets += 1
    const tenant = tenantId.toLowerCase()
    const lower = id.toLowerCase()
    this.principals.deleteWhere((key, value) => key.startsWith(`${tenant}|`) && (key === `${tenant}|id|${lower}` || (!isNotFound(value) && value.id.toLowerCase() === lower)))
    for (const cache of [this.groups, this.directGroupsCache]) cache.deleteWhere(key => key.startsWith(`${tenant}|`) && key.endsWith(`|${lower}`))
  }

  /**
   * Forget what depends on a group's place in the nesting (a member added or removed, the group renamed or
   * deleted): its parents, and the group lists of every principal and group that contain it, since their
   * closure runs through it.
   */
  forgetGroup (tenantId: string, groupId: string): void {
    const tenant = tenantId.toLowerCase()
    const lower = groupId.toLowerCase()
    this.parents.delete(`${tenant}|${lower}`)
    this.forgetPrincipal(tenantId, groupId)
    for (const cache of [this.groups, this.directGroupsCache]) {
      cache.deleteWhere((key, groups) => key.startsWith(`${tenant}|`) && groups.some(g => g.id.toLowerCase() === lower))
    }
  }

  /** Forget everything cached for a tenant (after a gap in the change feed nothing cached can be vouched for). */
  forgetTenant (tenantId: string): void {
    this.forgets += 1
    const prefix = `${tenantId.toLowerCase()}|`
    for (const cache of [this.principals, this.groups, this.directGroupsCache, this.parents] as Array<FreshCache<object>>) cache.deleteWhere(key => key.startsWith(prefix))
  }

  private async lookup (tenantId: string, query: PrincipalQuery): Promise<DirectoryPrincipal | undefined> {
    const cached = await this.guard(this.principals.get(principalKey(tenantId, query)))
    if (isNotFound(cached)) return undefined
    // Warm the id-keyed entry too, so the same principal found by UPN is cached once for the next login.
    if (!('id' in query)) await this.principals.get(principalKey(tenantId, { id: cached.id }), cached)
    return cached
  }

  private async groupsOf (principal: DirectoryPrincipal): Promise<GroupRef[]> {
    return await this.guard(this.groups.get(groupsKey(principal)))
  }

  /** Upstream outages become a 503 with Retry-After when nothing usable is cached. */
  private async guard<T> (p: Promise<T>): Promise<T> {
    try {
      return await p
    } catch (err) {
      if (err instanceof DirectoryUnavailableError) throw upstreamUnavailable('Microsoft Graph', err.retryAfterSeconds, err.throttled)
      if (err instanceof DirectoryConfigurationError) throw new DirectoryMisconfigured(err.message)
      if (err instanceof DirectoryAmbiguousError) throw new PrincipalAmbiguous(err.message)
      if (err instanceof DirectoryRequestError) throw new DirectoryRejected(err.message)
      throw err
    }
  }
}

function principalKey (tenantId: string, query: PrincipalQuery): string {
  const [kind, value] = Object.entries(query)[0] as [string, string]
  return `${tenantId.toLowerCase()}|${kind}|${value.toLowerCase()}`
}

// The keys of cached principals and verified callers, built once per object: a warm request then looks
// up strings V8 has already hashed instead of building and hashing new ones.
const groupsKeys = new WeakMap<object, string>()
const callerKeys = new WeakMap<Caller, string>()

function groupsKey (principal: Pick<DirectoryPrincipal, 'tenantId' | 'kind' | 'id'>): string {
  let key = groupsKeys.get(principal)
  if (key === undefined) groupsKeys.set(principal, key = `${principal.tenantId.toLowerCase()}|${principal.kind}|${principal.id.toLowerCase()}`)
  return key
}

function callerKey (caller: Caller): string {
  let key = callerKeys.get(caller)
  if (key === undefined) callerKeys.set(caller, key = principalKey(caller.tenantId, { id: caller.oid }))
  return key
}

function parsePrincipalKey (key: string): { tenantId: string, query: PrincipalQuery } {
  const [tenantId, kind, ...rest] = key.split('|') as [string, string, ...string[]]
  return { tenantId, query: { [kind]: rest.join('|') } as unknown as PrincipalQuery }
}
