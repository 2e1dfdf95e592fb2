import t from 'tap'
import { FreshCache, type CacheResult } from '../../../src/resolver/fresh-cache.ts'

interface Box { n: number }

function setup (opts: { ttlMs?: number, maxStaleMs?: number, maxSize?: number, refreshWaitMs?: number } = {}) {
  let now = 1_000_000
  const clock = { now: () => now }
  const results: CacheResult[] = []
  const state = { loads: 0, fail: false, delayMs: 0 }
  const cache = new FreshCache<Box>({
    name: 'test',
    clock,
    ttlMs: opts.ttlMs ?? 1000,
    maxStaleMs: opts.maxStaleMs ?? 5000,
    maxSize: opts.maxSize ?? 1000,
    refreshWaitMs: opts.refreshWaitMs,
    sizeOf: v => v.n,
    ttlOf: v => v.n === 0 ? 100 : (opts.ttlMs ?? 1000),
    load: async (key) => {
      state.loads += 1
      if (state.delayMs > 0) await new Promise(resolve => setTimeout(resolve, state.delayMs))
      if (state.fail) throw new Error('upstream down')
      return { n: key === 'empty' ? 0 : state.loads }
    },
    observer: { onLookup: (_name, result) => results.push(result) }
  })
  return { cache, state, results, advance: (ms: number) => { now += ms } }
}

t.test('a preloaded value joins a load already running for the key instead of cancelling it', async t => {
  const { cache, state } = setup()
  state.delayMs = 30
  const loading = cache.get('k')
  const preloaded = cache.get('k', { n: 99 })
  const [a, b] = await Promise.all([loading, preloaded])
  t.equal(a.n, 1)
  t.equal(b.n, 1, 'the running load wins; nobody gets an error')
  t.equal(state.loads, 1)
})

t.test('an invalidation, a clear or an eviction during a load: the waiting callers get the loaded value, and it is not stored', async t => {
  // lru-cache aborts a fetch whose entry is deleted or evicted; its callers must not get that abort as an error.
  let loads = 0
  const open: Array<() => void> = []
  const cache = new FreshCache<Box>({
    name: 'gated',
    clock: { now: () => 1_000_000 },
    ttlMs: 1000,
    maxStaleMs: 0,
    maxSize: 10,
    sizeOf: v => v.n,
    load: async () => {
      loads += 1
      const n = loads
      await new Promise<void>(resolve => { open.push(resolve) })
      return { n: Math.min(n, 3) }
    }
  })
  const release = (): void => { for (const go of open.splice(0)) go() }

  const invalidated = cache.get('k')
  await Promise.resolve()
  cache.delete('k')
  release()
  t.same(await invalidated, { n: 1 }, 'deleted while loading: the caller still gets its value')
  t.notOk(cache.hasFresh('k'), 'and the invalidated load is not stored')

  const cleared = cache.get('k')
  await Promise.resolve()
  cache.clear()
  release()
  t.same(await cleared, { n: 2 }, 'cleared while loading: the same')
  t.notOk(cache.hasFresh('k'))

  const evicted = cache.get('k')
  await Promise.resolve()
  // Values loaded elsewhere fill the cache past its size: the oldest entry, the load in flight, goes.
  await cache.get('a', { n: 6 })
  await cache.get('b', { n: 6 })
  release()
  t.same(await evicted, { n: 3 }, 'evicted while loading: the same')
  t.equal(loads, 3)
})

t.test('concurrent misses coalesce into one load', async t => {
  const { cache, state, results } = setup()
  state.delayMs = 20
  const values = await Promise.all(Array.from({ length: 1000 }, async () => await cache.get('k')))
  t.equal(state.loads, 1)
  t.ok(values.every(v => v.n === 1))
  t.equal(results.filter(r => r === 'miss').length, 1)
  t.equal(results.filter(r => r === 'coalesced').length, 999)
  await cache.get('k')
  t.equal(results.at(-1), 'hit')
})

t.test('an expired entry is refreshed before it is served, when the upstream answers', async t => {
  const { cache, state, results, advance } = setup()
  t.equal((await cache.get('k')).n, 1)
  advance(1500)
  t.equal((await cache.get('k')).n, 2, 'the fresh value, not the expired one')
  t.equal(state.loads, 2)
  t.equal(results.at(-1), 'miss')
})

t.test('a lagging refresh: the stale value is served, and the refresh lands later', async t => {
  const { cache, state, results, advance } = setup({ refreshWaitMs: 20 })
  await cache.get('k')
  state.delayMs = 100
  advance(1500)
  t.equal((await cache.get('k')).n, 1, 'stale, after waiting only refreshWaitMs')
  t.equal(results.at(-1), 'stale')
  await new Promise(resolve => setTimeout(resolve, 150))
  t.equal((await cache.get('k')).n, 2, 'the refresh went on in the background')
  t.equal(state.loads, 2, 'one refresh, not one per request')
})

t.test('an upstream failure keeps serving the stale entry, but only within the bound', async t => {
  const { cache, state, results, advance } = setup({ ttlMs: 1000, maxStaleMs: 5000 })
  await cache.get('k')
  state.fail = true
  advance(3000)
  t.equal((await cache.get('k')).n, 1, 'stale within the bound')
  t.equal(results.at(-1), 'stale')
  t.equal((await cache.get('k')).n, 1, 'again, after another failed refresh')
  advance(5000)
  await t.rejects(cache.get('k'), /upstream down/, 'too stale: the failure shows')
  state.fail = false
  t.equal((await cache.get('k')).n, state.loads, 'and it recovers by itself')
})

t.test('short TTL for some values (the not-found sentinel), and size-bounded memory', async t => {
  const { cache, state, advance } = setup({ maxSize: 10 })
  await cache.get('empty')
  advance(150)
  t.notOk(cache.hasFresh('empty'), 'the short TTL expired')
  for (const k of ['a', 'b', 'c', 'd', 'e', 'f']) await cache.get(k)
  t.ok(cache.size < 7, 'entries were evicted to respect maxSize')
  const before = state.loads
  t.equal((await cache.get('x', { n: 1 })).n, 1)
  t.equal((await cache.get('x')).n, 1)
  t.equal(state.loads, before, 'a preloaded value is stored without loading')
  cache.delete('x')
  t.notOk(cache.hasFresh('x'))
  cache.clear()
  t.equal(cache.size, 0)
})

t.test('the generation moves when a stored value is replaced, deleted or evicted, never for a new key; peekFresh counts no lookup', async t => {
  const { cache, results, advance } = setup({ maxSize: 10 })
  const g0 = cache.generation
  const a = await cache.get('a')
  await cache.get('b')
  t.equal(cache.generation, g0, 'new keys stored: nothing derived before can have changed')
  const looked = results.length
  t.equal(cache.peekFresh('a')?.value, a)
  t.equal(cache.peekFresh('a')?.expiresAt, 1_000_000 + 1000, 'with its expiry')
  t.equal(results.length, looked, 'not counted as a lookup')
  cache.delete('b')
  t.equal(cache.generation, g0 + 1, 'deleted')
  advance(1001)
  t.equal(cache.peekFresh('a'), undefined, 'expired: not fresh')
  t.equal(cache.generation, g0 + 1, 'expiry alone moves nothing (the expiry is the reader\'s to check)')
  await cache.get('a')
  t.equal(cache.generation, g0 + 2, 'the expired value replaced')
  await cache.get('big') // sized 3 or more: with a bound of 10, older entries go
  await cache.get('bigger')
  await cache.get('biggest')
  t.ok(cache.generation > g0 + 2, 'evicted')
})
