// A registration survives a restart: the service is closed while a group job runs, a new one is built on
// the same store (files, then Redis), and it finishes the job without listing the group again, without
// redoing the principals already registered, and without a duplicate in the account.
import t from 'tap'
import { Redis } from 'ioredis'
import { randomUUID } from 'node:crypto'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { buildTestService } from '../../helpers/service.ts'
import { accountState, adminToken, bigGroupTenant, callsMatching, control, occurrences, postRegistration, waitFor } from '../../helpers/registrations.ts'
import type { Test } from 'tap'
import { FileJobStore } from '../../../src/registrations/store.ts'
import { RedisJobStore } from '../../../src/registrations/redis-store.ts'

const MEMBERS = 400
const REDIS_URL = 'redis://127.0.0.1:6379'
const { fixture, root, memberIds } = bigGroupTenant(MEMBERS, 3, 4)
const emulator = await startTestEmulator(t, { tenants: [fixture] })
const admin = await adminToken(emulator)

async function restartMidway (t: Test, env: Record<string, string>, options: { registrationsKeyPrefix?: string } = {}): Promise<void> {
  // Slow enough that the job is surely still running when the first service closes.
  await control(emulator, 'PUT', '/databricks/rate-limits', { enabled: true, limits: { identity: 150 } })
  t.teardown(async () => { await control(emulator, 'DELETE', '/databricks/rate-limits') })
  await control(emulator, 'POST', '/databricks/reset')
  const config: Record<string, string> = { DATABRICKS_HOST: emulator.origin, DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID, DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT, DATABRICKS_MODE: 'aim', REGISTRATIONS_CONCURRENCY: '4', ...env }

  const first = await buildTestService(t, emulator, config, options)
  const posted = await postRegistration(first.app, admin, { group: root })
  t.equal(posted.status, 202)
  const midway = await waitFor(first.app, admin, posted.json.id, p => p.registered >= 100)
  t.equal(midway.status, 'running')
  await first.close()

  const store = env.REDIS_URL !== undefined ? new RedisJobStore({ url: env.REDIS_URL, ...(options.registrationsKeyPrefix !== undefined ? { prefix: options.registrationsKeyPrefix } : {}) }) : new FileJobStore(env.REGISTRATIONS_DIR ?? '')
  const stored = await store.get(posted.json.id)
  await store.close()
  t.equal(stored?.status, 'running', 'the job was checkpointed as running')
  const registered = stored?.items.filter(i => i.state === 'registered').length ?? 0
  t.ok(registered >= 100 && registered < MEMBERS, `checkpointed part-way: ${registered} of ${MEMBERS}`)
  t.equal(stored?.items.length, MEMBERS, 'with its member list')
  emulator.ctx.calls.reset()
  const refusedBefore = (await accountState(emulator)).rateLimits.refused.throttled

  const second = await buildTestService(t, emulator, config, options)
  t.teardown(second.close)

  const done = await waitFor(second.app, admin, posted.json.id)
  t.match(done, { status: 'completed', total: MEMBERS, registered: MEMBERS, failed: 0 })
  t.equal(callsMatching(emulator, /transitiveMembers/), 0, 'the group is not listed again')
  t.equal(callsMatching(emulator, / \/v1\.0\//), 0, 'no Graph call at all: AIM learns the groups itself')
  const refused = (await accountState(emulator)).rateLimits.refused.throttled - refusedBefore
  t.equal(callsMatching(emulator, /resolve-by-external-id/) - refused, MEMBERS - registered, 'only the principals not yet registered are done again')
  const counts = occurrences(await accountState(emulator))
  t.equal(memberIds.filter(id => counts.get(id) === 1).length, MEMBERS, 'every member once in the account')
}

t.test('resumed from the file store', async t => {
  await restartMidway(t, { REGISTRATIONS_DIR: t.testdir() })
})

t.test('resumed from Redis', async t => {
  const prefix = `jir-test:${randomUUID()}:`
  const redis = new Redis(REDIS_URL)
  t.teardown(async () => {
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
  })
  await restartMidway(t, { REDIS_URL }, { registrationsKeyPrefix: prefix })
  t.same(await redis.smembers(`${prefix}unfinished`), [], 'no unfinished job is left')
  const ttl = await redis.ttl((await redis.keys(`${prefix}job:*`))[0] ?? '')
  t.ok(ttl > 0, 'the finished job expires')
})
