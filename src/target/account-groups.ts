// Group names as Databricks resolves them. ACLs name groups by display name (`group_name`), and
// Databricks resolves such a name to the workspace-local group of that name first, to the account group
// only when the workspace has none. The resolver knows a principal's groups by Entra id. So a name counts
// for an Entra group only when it is the name of the account group linked to it (externalId) and no
// workspace-local group of the workspace holds it.
//
// - externalIds(): account group name → the account group's externalId, one account SCIM list per 50 names
//   (`displayName eq "a" or …`: 99 filter nodes, under Databricks' 200), every page.
// - localNames(): which names a workspace's local groups hold (`meta.resourceType` "WorkspaceGroup" in the
//   workspace SCIM list; the account groups assigned to the workspace are listed there too, as "Group").
// - Names are quoted with scimString, so a name can never widen a filter; control characters included.
// - Names compare case-insensitively (Databricks group names are unique regardless of case).
// - Cached per scope and name (default 5 min); a negative answer (no such account group; no local group)
//   for `missingTtlMs` (default 30 s), since a group may appear at any moment; concurrent lookups of one
//   name share one call. invalidate() also forgets the lookups in flight: an answer read before it is
//   neither cached after it nor joined by a lookup made after it.
// - factsFor()/cachedFacts(): both questions for an ACL's names (and the names of the groups assigned to
//   the workspace) as one answer, remembered while every answer it was made from is cached unchanged, so
//   a warm permission question reads it with one lookup and compares it by identity.
// - The reserved names (the workspace system groups `admins` and `users`, the account's `account users`)
//   belong to Databricks: no Entra group is ever credited with them, and no call is made for them.
import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.ts'
import type { DatabricksClient } from './databricks-client.ts'
import { isReservedGroupName, scimString } from './names.ts'

export interface AccountGroupNamesOptions {
  client: DatabricksClient
  /** How long a name's answer is served from memory (default 5 min). */
  ttlMs?: number
  /** How long a negative answer is (default 30 s). */
  missingTtlMs?: number
  /** Names kept (default 100,000). */
  maxEntries?: number
  clock?: Clock
}

/** Names per list call: `n` comparisons joined by `or` are 2n − 1 filter nodes. */
export const NAMES_PER_LOOKUP = 50
interface ScimGroup { id: string, displayName?: string, externalId?: string, meta?: { resourceType?: string } }
interface ListResponse { totalResults?: number, Resources?: ScimGroup[] }
/** externalId for the account scope; `'local'` or null for a workspace's. */
interface Known { value: string | null }

/** Where names are looked up: the account's groups, or one workspace's local groups. */
type Scope = { kind: 'account' } | { kind: 'workspace', workspaceId: string }

/** What the account says about the group names an ACL and a workspace's assignments hold. */
export interface GroupNameFacts {
  /** Name → the account group's externalId (the Entra id), or null. */
  external: ReadonlyMap<string, string | null>
  /** The names (lowercased) local groups of the workspace hold (among the ACL's). */
  local: ReadonlySet<string>
}

/** Facts made from cached answers, valid while none of them is replaced, forgotten or expired. */
interface RememberedFacts {
  workspaceId: string
  assignedNames: ReadonlySet<string>
  generation: number
  expiresAt: number
  facts: GroupNameFacts
}

export class AccountGroupNames {
  private readonly client: DatabricksClient
  private readonly cache: LRUCache<string, Known>
  private readonly missingTtlMs: number
  private readonly flights = new Map<string, Promise<string | null>>()
  /** Bumped by invalidate(): a load begun under an older generation caches nothing. */
  private generation = 0
  /** Bumped whenever a cached answer is replaced, deleted or evicted: remembered facts made before are void. */
  private changes = 0
  /** Keyed by the ACL's set of names (one object per cached ACL, answer-cache.ts). */
  private readonly remembered = new WeakMap<ReadonlySet<string>, RememberedFacts>()
  private readonly now: () => number

  constructor (options: AccountGroupNamesOptions) {
    this.client = options.client
    const clock = options.clock
    this.missingTtlMs = options.missingTtlMs ?? 30_000
    this.now = clock === undefined ? () => performance.now() : () => clock.now()
    this.cache = new LRUCache<string, Known>({
      max: options.maxEntries ?? 100_000,
      ttl: options.ttlMs ?? 300_000,
      dispose: () => { this.changes += 1 },
      ...(clock === undefined ? {} : { perf: { now: () => clock.now() }, ttlResolution: 0 })
    })
  }

  /**
   * Both answers for an ACL's group names and the workspace's assigned group names: each name's
   * externalId, and which of the ACL's names local groups of the workspace hold. Reads what is not cached.
   */
  async factsFor (workspaceId: string, aclNames: ReadonlySet<string>, assignedNames: ReadonlySet<string>): Promise<GroupNameFacts> {
    const cached = this.cachedFacts(workspaceId, aclNames, assignedNames)
    if (cached !== undefined) return cached
    const all = assignedNames.size === 0 ? [...aclNames] : [...new Set([...aclNames, ...assignedNames])]
    const [external, local] = await Promise.all([
      this.externalIds(all),
      aclNames.size === 0 ? new Set<string>() : this.localNames(workspaceId, [...aclNames])
    ])
    // Remembered from the cache now that it holds every answer (unless one was forgotten meanwhile).
    return this.cachedFacts(workspaceId, aclNames, assignedNames) ?? { external, local }
  }

  /**
   * factsFor() from memory alone, without a promise: the same object while every answer it was made from
   * stays cached unchanged, undefined when one is not cached.
   */
  cachedFacts (workspaceId: string, aclNames: ReadonlySet<string>, assignedNames: ReadonlySet<string>): GroupNameFacts | undefined {
    const memo = this.remembered.get(aclNames)
    if (memo !== undefined && memo.workspaceId === workspaceId && memo.assignedNames === assignedNames &&
      memo.generation === this.changes && this.now() < memo.expiresAt) return memo.facts
    let expiresAt = Infinity
    const status: LRUCache.Status<string, Known> = {}
    const cached = (key: string): Known | undefined => {
      const known = this.cache.get(key, { status })
      if (known !== undefined && status.start !== undefined && status.ttl !== undefined) expiresAt = Math.min(expiresAt, status.start + status.ttl)
      return known
    }
    const external = new Map<string, string | null>()
    for (const names of [aclNames, assignedNames]) {
      for (const name of names) {
        if (external.has(name)) continue
        if (isReservedGroupName(name) || name.trim() === '') {
          external.set(name, null)
          continue
        }
        const known = cached(`a|${name.toLowerCase()}`)
        if (known === undefined) return undefined
        external.set(name, known.value)
      }
    }
    const local = new Set<string>()
    for (const name of aclNames) {
      if (isReservedGroupName(name)) local.add(name.trim().toLowerCase())
      else if (name.trim() === '') continue
      else {
        const known = cached(`w${workspaceId}|${name.toLowerCase()}`)
        if (known === undefined) return undefined
        if (known.value !== null) local.add(name.trim().toLowerCase())
      }
    }
    const facts: GroupNameFacts = { external, local }
    this.remembered.set(aclNames, { workspaceId, assignedNames, generation: this.changes, expiresAt, facts })
    return facts
  }

  /** Each name (as given) → the account group's externalId, or null (no such account group, none set, or a reserved name). */
  async externalIds (names: readonly string[]): Promise<Map<string, string | null>> {
    return await this.lookup({ kind: 'account' }, names)
  }

  /** The names (lowercased) that local groups of the workspace hold, the reserved ones always among them. */
  async localNames (workspaceId: string, names: readonly string[]): Promise<Set<string>> {
    const found = await this.lookup({ kind: 'workspace', workspaceId }, names)
    const out = new Set<string>()
    for (const name of names) if (isReservedGroupName(name) || found.get(name) !== null) out.add(name.trim().toLowerCase())
    return out
  }

  /** Forgets every name (e.g. after a group was created or renamed). */
  invalidate (): void {
    this.generation += 1
    this.cache.clear()
    this.flights.clear()
  }

  private async lookup (scope: Scope, names: readonly string[]): Promise<Map<string, string | null>> {
    const prefix = scope.kind === 'account' ? 'a|' : `w${scope.workspaceId}|`
    const out = new Map<string, string | null>()
    const waiting: Array<[string, Promise<string | null>]> = []
    const toLoad = new Map<string, string>()
    for (const name of new Set(names)) {
      const key = name.toLowerCase()
      if (isReservedGroupName(name) || name.trim() === '') {
        out.set(name, null)
        continue
      }
      const known = this.cache.get(prefix + key)
      if (known !== undefined) {
        out.set(name, known.value)
        continue
      }
      const flying = this.flights.get(prefix + key)
      if (flying !== undefined) waiting.push([name, flying])
      else if (!toLoad.has(key)) toLoad.set(key, name)
    }
    const entries = [...toLoad]
    const flights = new Map<string, Promise<string | null>>()
    for (let i = 0; i < entries.length; i += NAMES_PER_LOOKUP) {
      const part = entries.slice(i, i + NAMES_PER_LOOKUP)
      const batch = this.load(scope, prefix, part)
      for (const [key] of part) {
        const one = batch.then(found => found.get(key) ?? null)
        flights.set(key, one)
        this.flights.set(prefix + key, one)
        // Settled either way, the flight ends (a failure reaches the callers through `waiting`).
        const land = (): void => { if (this.flights.get(prefix + key) === one) this.flights.delete(prefix + key) }
        one.then(land, land)
      }
    }
    for (const name of names) {
      const key = name.toLowerCase()
      if (toLoad.has(key)) waiting.push([name, flights.get(key) as Promise<string | null>])
    }
    for (const [name, promise] of waiting) out.set(name, await promise)
    // In the order the names were given.
    return new Map(names.map(n => [n, out.get(n) ?? null]))
  }

  /** One list call for up to 50 names ([lowercased, as given]); caches every answer, null included. */
  private async load (scope: Scope, prefix: string, entries: Array<[string, string]>): Promise<Map<string, string | null>> {
    const generation = this.generation
    const keys = entries.map(([key]) => key)
    // The names as given: the match below is case-insensitive whatever the filter's comparison is.
    const filter = entries.map(([, name]) => `displayName eq ${scimString(name)}`).join(' or ')
    const found = new Map<string, string | null>()
    for (let startIndex = 1; ;) {
      const query = { filter, attributes: 'id,displayName,externalId,meta', startIndex, count: 1000 }
      const res = scope.kind === 'account'
        ? await this.client.account<ListResponse>('GET', '/scim/v2/Groups', { query })
        : await this.client.workspace<ListResponse>(scope.workspaceId, 'GET', '/api/2.0/preview/scim/v2/Groups', { query })
      const page = res.json?.Resources ?? []
      for (const g of page) {
        const key = g.displayName?.toLowerCase()
        if (key === undefined || !keys.includes(key)) continue
        if (scope.kind === 'workspace') {
          if (g.meta?.resourceType === 'WorkspaceGroup') found.set(key, 'local')
          continue
        }
        const externalId = typeof g.externalId === 'string' && g.externalId !== '' ? g.externalId : null
        // Two account groups whose names differ only in case should not exist; prefer the linked one.
        if (found.get(key) === undefined || found.get(key) === null) found.set(key, externalId)
      }
      startIndex += page.length
      if (page.length === 0 || startIndex > (res.json?.totalResults ?? 0)) break
    }
    for (const key of keys) {
      const value = found.get(key) ?? null
      // Read before an invalidate(): answered to its callers, not kept.
      if (generation === this.generation) this.cache.set(prefix + key, { value }, value === null ? { ttl: this.missingTtlMs } : {})
      found.set(key, value)
    }
    return found
  }
}
