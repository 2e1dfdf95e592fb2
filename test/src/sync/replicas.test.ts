// Two replicas sharing Redis: the change feed's rounds run on one of them at a time (a BullMQ queue with a
// global concurrency of 1), a burst of triggers from both is at most two rounds, the cursors are shared
// (a round on either replica continues where the other stopped), and a change is applied once.
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { Queue } from 'bullmq'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'
import type { Service } from '../../../src/service.ts'
import type { RoundReport } from '../../../src/sync/change-feed.ts'

const REDIS_URL = 'redis://127.0.0.1:6379'
const prefix = `jir-test:${randomUUID()}:`
const redis = new Redis(REDIS_URL)
t.teardown(async () => {
  const keys = await redis.keys(`${prefix}*`)
  if (keys.length > 0) await redis.del(...keys)
  redis.disconnect()
})

const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
const { ctx, origin } = emulator
const tenant = ctx.tenants.get(T.tenantId.toLowerCase())
if (tenant === undefined) throw new Error('no tenant')

await fetch(`${origin}/_emulator/databricks/reset`, { method: 'POST' })
await fetch(`${origin}/_emulator/databricks/settings`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ aimEnabled: false }) })
await fetch(`${origin}/_emulator/databricks/rate-limits`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ enabled: false }) })

const env = {
  DATABRICKS_HOST: origin,
  DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
  DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
  REDIS_URL,
  SYNC_ENABLED: 'true',
  SYNC_INTERVAL_SECONDS: '3600'
}
const options = { syncKeyPrefix: prefix, registrationsKeyPrefix: `${prefix}registrations:` }
const replicas: Service[] = [await startService(t, emulator, env, options), await startService(t, emulator, env, options)]
const queue = new Queue('entra-sync', { connection: { host: '127.0.0.1', port: 6379 }, prefix: `${prefix}bull` })
t.teardown(async () => { await queue.close() })

const syncOf = (s: Service) => { if (s.sync === undefined) throw new Error('sync is off'); return s.sync }
const rounds = (): number => replicas.reduce((n, s) => n + (s.sync as NonNullable<Service['sync']>).totalsRounds(), 0)

/** Until the queue has nothing waiting or running (the scheduler's next run, an hour away, stays delayed). */
async function settled (): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const counts = await queue.getJobCounts('waiting', 'active', 'prioritized', 'waiting-children')
    if (Object.values(counts).every(n => n === 0)) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error('the sync queue never settled')
}

/** The next round finished by either replica. */
const anyRound = async (): Promise<RoundReport> => await Promise.race(replicas.map(async s => await syncOf(s).nextRound()))

t.test('the first rounds start the shared cursors once', async t => {
  await settled()
  const cursors = await redis.hgetall(`${prefix}sync:cursors`)
  t.same(Object.keys(cursors).sort(), ['group', 'servicePrincipal', 'user'].map(k => `${T.tenantId}|${k}`).sort(), 'one cursor per kind, in Redis')
})

t.test('a change is applied by one replica, and a burst of triggers from both is at most two rounds', async t => {
  const [a, b] = replicas as [Service, Service]
  const login = await a.app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, T.alice)}` } })
  t.equal(login.statusCode, 200)
  await settled()
  const before = rounds()

  tenant.updateUser(T.alice, { accountEnabled: false })
  const applied = anyRound()
  await Promise.all(Array.from({ length: 50 }, async (_, i) => { await syncOf(i % 2 === 0 ? a : b).trigger() }))
  const report = await applied
  await settled()
  const ran = rounds() - before
  t.ok(ran >= 1 && ran <= 2, `50 triggers ran ${ran} round(s)`)
  t.equal(report.applied.deactivated, 1, 'alice deactivated once')
  const state = await (await fetch(`${origin}/_emulator/databricks/state`)).json() as { users: Array<{ externalId: string, active: boolean }> }
  t.equal(state.users.find(u => u.externalId === T.alice)?.active, false)

  // Whichever replica runs the next round continues from the shared cursor: nothing is read twice.
  const next = anyRound()
  await syncOf(b).trigger()
  t.same((await next).read, { user: 0, servicePrincipal: 0, group: 0 }, 'the next round reads nothing new')
  tenant.updateUser(T.alice, { accountEnabled: true })
})
