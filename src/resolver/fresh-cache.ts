// One cache per kind of fact, over lru-cache's fetch(): concurrent misses coalesce into one load; an
// expired entry is refreshed, and served stale only while the refresh fails or is slow, and only within a
// maximum staleness (so a user disabled in Entra is refused as soon as its entry expires, yet an Entra
// outage does not lock out everyone cached); memory is bounded by size; time comes from the injected clock.
//
// No write cancels another caller's load. lru-cache aborts a fetch() in flight when its key is set()
// ("replaced"), deleted or cleared ("deleted"), or evicted ("evicted"), and by default that rejects every
// caller awaiting it. So values loaded elsewhere are stored through fetch() with a context, never set();
// and with `ignoreFetchAbort` a load whose entry is deleted (an invalidation) or evicted meanwhile still
// answers the callers that were waiting on it, without being stored.
import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.ts'

/** What a lookup was served from: a fresh entry, a stale one (refresh failed or lagging), a wait on another caller's load, or a load. */
export type CacheResult = 'hit' | 'stale' | 'coalesced' | 'miss'

export interface CacheObserver {
  onLookup: (cache: string, result: CacheResult) => void
}

export interface FreshCacheOptions<V extends object> {
  name: string
  clock: Clock
  ttlMs: number
  /** How long past its TTL an entry may still be served while its refresh fails or is slow. */
  maxStaleMs: number
  /** How long a lookup of an expired entry waits for its refresh before serving the stale value. Default 2 s. */
  refreshWaitMs?: number
  /** Bound on the summed `sizeOf` of all entries. */
  maxSize: number
  sizeOf?: (value: V) => number
  /** A shorter TTL for some values (the "not found" sentinel). */
  ttlOf?: (value: V) => number
  load: (key: string) => Promise<V>
  observer?: CacheObserver
}

interface Entry<V> {
  value: V
  expiresAt: number
}

export class FreshCache<V extends object> {
  // The fetch context is a value already loaded elsewhere (a batch): stored instead of calling `load`.
  private readonly lru: LRUCache<string, Entry<V>, unknown>
  private readonly options: FreshCacheOptions<V>
  private changes = 0

  constructor (options: FreshCacheOptions<V>) {
    this.options = options
    const { clock, ttlMs, ttlOf, sizeOf, load } = options
    this.lru = new LRUCache<string, Entry<V>, unknown>({
      maxSize: options.maxSize,
      sizeCalculation: entry => Math.max(1, sizeOf?.(entry.value) ?? 1),
      ttl: ttlMs,
      ttlResolution: 0,
      // Expired entries stay until replaced: get() decides whether they may still be served.
      noDeleteOnFetchRejection: true,
      noDeleteOnStaleGet: true,
      // An invalidation or an eviction during a load: its callers get the value, the cache does not.
      ignoreFetchAbort: true,
      // Any value stored before that is replaced, deleted (one key, a sweep, clear) or evicted.
      dispose: () => { this.changes += 1 },
      perf: { now: () => clock.now() },
      fetchMethod: async (key, _stale, { options: fetchOptions, context }) => {
        const value = (context as V | undefined) ?? await load(key)
        fetchOptions.ttl = ttlOf?.(value) ?? ttlMs
        return { value, expiresAt: clock.now() + fetchOptions.ttl }
      }
    })
  }

  /** The warm path: a fresh value with one synchronous lookup (no promise), or undefined. */
  getFresh (key: string): V | undefined {
    const fresh = this.lru.get(key, { allowStale: false })
    return fresh === undefined ? undefined : this.served(fresh, 'hit', key)
  }

  /**
   * The value for `key`: fresh from the cache, or loaded (coalesced with any load already running). With
   * `preloaded`, a value fetched elsewhere (a batch) is stored instead of loading — through the same
   * coalescing, so it never cancels another caller's load of the key.
   */
  async get (key: string, preloaded?: V): Promise<V> {
    const fresh = this.getFresh(key)
    if (fresh !== undefined) return fresh
    const status: LRUCache.Status<string, Entry<V>> = {}
    // Expired (or absent): load, coalesced with any load already running for this key.
    const stale = this.lru.peek(key, { allowStale: true })
    const loading = this.lru.fetch(key, { allowStale: false, status, context: preloaded })
    const usable = stale !== undefined && this.options.clock.now() <= stale.expiresAt + this.options.maxStaleMs
    if (!usable) return this.served(await loading, status.fetch === 'inflight' ? 'coalesced' : 'miss', key)
    // A usable stale entry: wait a little for the refresh, and serve the stale value if it fails or lags.
    loading.catch(() => {}) // a failure is answered with the stale value; nothing else awaits it
    let timer: NodeJS.Timeout | undefined
    const lagging = new Promise<'lagging'>(resolve => { timer = setTimeout(() => resolve('lagging'), this.options.refreshWaitMs ?? 2000) })
    try {
      const refreshed = await Promise.race([loading, lagging])
      if (refreshed !== 'lagging' && refreshed !== undefined) return this.served(refreshed, 'miss', key)
    } catch {
      // the upstream failed: the stale value stands in
    } finally {
      clearTimeout(timer)
    }
    return this.served(stale, 'stale', key)
  }

  private served (entry: Entry<V> | undefined, result: CacheResult, key: string): V {
    this.options.observer?.onLookup(this.options.name, result)
    if (entry === undefined) throw new Error(`cache ${this.options.name}: no value for ${key}`)
    return entry.value
  }

  /**
   * The fresh value and when it expires, or undefined, without counting a lookup: to check that a value
   * derived from it (a principal's group paths) was derived from what the cache holds now.
   */
  peekFresh (key: string): Readonly<Entry<V>> | undefined {
    return this.lru.get(key, { allowStale: false })
  }

  /**
   * Bumped whenever a stored value is replaced, deleted or evicted. While it stays the same, every value
   * the cache held before is still there (fresh until its own expiry); a value stored for a new key bumps
   * nothing, since nothing can have been derived from it before.
   */
  get generation (): number {
    return this.changes
  }

  /** True when a fresh entry is cached (no load would happen). */
  hasFresh (key: string): boolean {
    return this.lru.has(key)
  }

  delete (key: string): void {
    this.lru.delete(key)
  }

  /** Deletes every entry (fresh or stale) whose key or value matches; returns how many. */
  deleteWhere (matches: (key: string, value: V) => boolean): number {
    const doomed: string[] = []
    for (const [key, entry] of this.lru.entries()) if (matches(key, entry.value)) doomed.push(key)
    for (const key of doomed) this.lru.delete(key)
    return doomed.length
  }

  clear (): void {
    this.lru.clear()
  }

  get size (): number {
    return this.lru.size
  }
}
