// The fleet's permits (src/fleet/permits.ts) on the real Redis, as two replicas' write lanes use them:
// priorities and a Retry-After pause hold across replicas, and a lane whose Redis is away paces its writes
// itself instead of waiting for it. Order only: no assertion on how long anything took.
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import { FleetPermits, connectionOptionsOf } from '../../../src/fleet/permits.ts'
import { BACKGROUND, WriteLane } from '../../../src/target/write-scheduler.ts'
import { REDIS_URL } from '../../helpers/fleet.ts'

const prefix = `jir-test:${randomUUID()}:bull`
const redis = new Redis(REDIS_URL)
t.teardown(async () => {
  const keys = await redis.keys(`${prefix}*`)
  if (keys.length > 0) await redis.del(...keys)
  redis.disconnect()
})

/** A replica's PATCH lane, its permits from the fleet (20 a second). */
async function replica (url = REDIS_URL): Promise<{ lane: WriteLane, permits: FleetPermits }> {
  const permits = new FleetPermits({ url, prefix })
  const lane = new WriteLane({ family: 'patch', ratePerSecond: 20, permits: permits.budget('databricks-patch', 20), fallbackRatePerSecond: 10 })
  t.teardown(async () => { lane.close(); await permits.close() })
  return { lane, permits }
}

t.test('interactive writes on one replica go before background writes queued earlier on another, and a pause holds for both', async t => {
  const x = await replica()
  const y = await replica()
  await t.resolveMatch(until(() => x.permits.connected && y.permits.connected), true, 'both connected')
  // One write each: both replicas' queues and workers are up.
  await Promise.all([x.lane.take(), y.lane.take()])
  // Databricks told y to wait: x may not write either until then (long enough for the takes below to queue).
  y.lane.pause(2)
  const order: string[] = []
  const take = async (lane: WriteLane, name: string, background: boolean): Promise<void> => { await lane.take(background ? BACKGROUND : undefined); order.push(name) }
  const background = [1, 2, 3].map(async i => { await take(x.lane, `x background ${i}`, true) })
  // After x's background permits are in the queue.
  await until(async () => await redis.zcard(`${prefix}:databricks-patch-permits:prioritized`) === 3)
  const interactive = [1, 2].map(async i => { await take(y.lane, `y interactive ${i}`, false) })
  await Promise.all([...background, ...interactive])
  t.same(order.slice(0, 2).sort(), ['y interactive 1', 'y interactive 2'], `y's interactive writes first: ${order.join(', ')}`)
})

t.test('Redis away: a lane paces its writes itself, at its share of the budget', async t => {
  const closed = createServer().listen(0, '127.0.0.1')
  await once(closed, 'listening')
  const address = closed.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  await new Promise(resolve => closed.close(resolve))
  const { lane, permits } = await replica(`redis://127.0.0.1:${port}`)
  t.equal(permits.connected, false)
  await Promise.all([1, 2, 3].map(async () => { await lane.take() }))
  t.pass('every write was granted without the fleet')
})

t.test('connection options from a URL', async t => {
  t.same(connectionOptionsOf('redis://127.0.0.1:6380'), { host: '127.0.0.1', port: 6380 })
  t.same(connectionOptionsOf('rediss://app:s%40cret@cache.example:6390/2'), { host: 'cache.example', port: 6390, username: 'app', password: 's@cret', db: 2, tls: { servername: 'cache.example' } })
  t.same(connectionOptionsOf('redis://:pw@[::1]'), { host: '::1', port: 6379, password: 'pw' })
})

async function until (check: () => boolean | Promise<boolean>): Promise<true> {
  for (let i = 0; i < 2400; i++) {
    if (await check()) return true
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  throw new Error('timed out')
}
