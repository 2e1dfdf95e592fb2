// Account group names → Entra object ids. ACLs name groups by display name (`group_name`); the resolver
// knows a principal's groups by Entra id. This reads, for each name, the account group's externalId
// (the Entra object id it was created from or linked to), so the two can be matched.
//
// - One account SCIM list per 50 names: `displayName eq "a" or displayName eq "b" …` (99 filter nodes,
//   under Databricks' 200), `attributes=id,displayName,externalId`, every page. Names are quoted with
//   scimString, so a name can never widen the filter.
// - Names compare case-insensitively (Databricks group names are unique regardless of case).
// - Cached per name (default 5 min; "no such group, or no externalId" for `missingTtlMs`, default 30 s,
//   since a group may be materialized at any moment); concurrent lookups of one name share one call.
// - The workspace-local system groups `admins` and `users` are not account groups: null, without a call.
import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.ts'
import type { DatabricksClient } from './databricks-client.ts'
import { scimString } from './scim.ts'

export interface AccountGroupNamesOptions {
  client: DatabricksClient
  /** How long a name's externalId is served from memory (default 5 min). */
  ttlMs?: number
  /** How long "no such group / no externalId" is (default 30 s). */
  missingTtlMs?: number
  /** Names kept (default 100,000). */
  maxEntries?: number
  clock?: Clock
}

/** Names per list call: `n` comparisons joined by `or` are 2n − 1 filter nodes. */
export const NAMES_PER_LOOKUP = 50
/** Workspace-local system groups: never in the account. */
export const WORKSPACE_SYSTEM_GROUPS: ReadonlySet<string> = new Set(['admins', 'users'])

interface ScimGroup { id: string, displayName?: string, externalId?: string }
interface ListResponse { totalResults?: number, Resources?: ScimGroup[] }
interface Known { externalId: string | null }

export class AccountGroupNames {
  private readonly client: DatabricksClient
  private readonly cache: LRUCache<string, Known>
  private readonly missingTtlMs: number
  private readonly flights = new Map<string, Promise<string | null>>()

  constructor (options: AccountGroupNamesOptions) {
    this.client = options.client
    const clock = options.clock
    this.missingTtlMs = options.missingTtlMs ?? 30_000
    this.cache = new LRUCache<string, Known>({
      max: options.maxEntries ?? 100_000,
      ttl: options.ttlMs ?? 300_000,
      ...(clock === undefined ? {} : { perf: { now: () => clock.now() }, ttlResolution: 0 })
    })
  }

  /** Each name (as given) → the account group's externalId, or null (no such account group, none set, or a system group). */
  async externalIds (names: readonly string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>()
    const waiting: Array<[string, Promise<string | null>]> = []
    const toLoad = new Map<string, string>()
    for (const name of new Set(names)) {
      const key = name.toLowerCase()
      if (WORKSPACE_SYSTEM_GROUPS.has(key) || name.trim() === '') {
        out.set(name, null)
        continue
      }
      const known = this.cache.get(key)
      if (known !== undefined) {
        out.set(name, known.externalId)
        continue
      }
      const flying = this.flights.get(key)
      if (flying !== undefined) waiting.push([name, flying])
      else if (!toLoad.has(key)) toLoad.set(key, name)
    }
    const entries = [...toLoad]
    for (let i = 0; i < entries.length; i += NAMES_PER_LOOKUP) {
      const part = entries.slice(i, i + NAMES_PER_LOOKUP)
      const batch = this.load(part)
      for (const [key] of part) {
        const one = batch.then(found => found.get(key) ?? null)
        this.flights.set(key, one)
        // Settled either way, the flight ends (a failure reaches the callers through `waiting`).
        const land = (): void => { if (this.flights.get(key) === one) this.flights.delete(key) }
        one.then(land, land)
      }
    }
    for (const name of names) {
      const key = name.toLowerCase()
      if (toLoad.has(key)) waiting.push([name, this.flights.get(key) as Promise<string | null>])
    }
    for (const [name, promise] of waiting) out.set(name, await promise)
    // In the order the names were given.
    return new Map(names.map(n => [n, out.get(n) ?? null]))
  }

  /** Forgets one name, or every name (e.g. after a group was created or renamed). */
  invalidate (name?: string): void {
    if (name === undefined) this.cache.clear()
    else this.cache.delete(name.toLowerCase())
  }

  /** One list call for up to 50 names ([lowercased, as given]); caches every answer, null included. */
  private async load (entries: Array<[string, string]>): Promise<Map<string, string | null>> {
    const keys = entries.map(([key]) => key)
    // The names as given: the match below is case-insensitive whatever the filter's comparison is.
    const filter = entries.map(([, name]) => `displayName eq ${scimString(name)}`).join(' or ')
    const found = new Map<string, string | null>()
    for (let startIndex = 1; ;) {
      const res = await this.client.account<ListResponse>('GET', '/scim/v2/Groups', { query: { filter, attributes: 'id,displayName,externalId', startIndex, count: 1000 } })
      const page = res.json?.Resources ?? []
      for (const g of page) {
        const key = g.displayName?.toLowerCase()
        if (key === undefined || !keys.includes(key)) continue
        const externalId = typeof g.externalId === 'string' && g.externalId !== '' ? g.externalId : null
        // Two account groups whose names differ only in case should not exist; prefer the linked one.
        if (found.get(key) === undefined || found.get(key) === null) found.set(key, externalId)
      }
      startIndex += page.length
      if (page.length === 0 || startIndex > (res.json?.totalResults ?? 0)) break
    }
    for (const key of keys) {
      const externalId = found.get(key) ?? null
      this.cache.set(key, { externalId }, externalId === null ? { ttl: this.missingTtlMs } : {})
      found.set(key, externalId)
    }
    return found
  }
}
