// The job stores: what a restarted service reads back. Files are replaced atomically (no temporary file
// is left, a reader never sees half a job); Redis keeps a set of the unfinished jobs beside the documents.
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { FileJobStore, type JobStore } from '../../../src/registrations/store.ts'
import { RedisJobStore, FINISHED_TTL_SECONDS } from '../../../src/registrations/redis-store.ts'
import { newJob, type RegistrationJob } from '../../../src/registrations/job.ts'

const job = (): RegistrationJob => {
  const j = newJob({ tenantId: 't', requestedBy: 'me', now: Date.parse('2026-01-01T00:00:00Z'), source: { kind: 'principals' } })
  j.items = [{ query: { id: 'a' }, state: 'pending', attempts: 0 }]
  return j
}

async function behaves (t: Test, store: JobStore): Promise<void> {
  const running = job()
  const done = job()
  await store.save(running)
  await store.save(done)
  done.status = 'completed'
  await store.save(done)
  t.same((await store.unfinished()).sort(), [running.id], 'only the unfinished job is resumed')
  t.same(await store.get(running.id), running, 'read back as saved')
  t.equal((await store.get(done.id))?.status, 'completed')
  t.equal(await store.get(randomUUID()), undefined)
  // Concurrent checkpoints of one job: the last one wins, none is torn.
  running.items[0] = { query: { id: 'a' }, state: 'registered', attempts: 0, databricksId: '42' }
  await Promise.all([store.save(running), store.save(running), store.save(running)])
  t.equal((await store.get(running.id))?.items[0]?.databricksId, '42')
}

t.test('file store', async t => {
  const dir = join(t.testdir(), 'nested', 'registrations')
  const store = new FileJobStore(dir)
  t.same(await store.unfinished(), [], 'no directory yet: nothing to resume')
  await behaves(t, store)
  t.same((await readdir(dir)).filter(n => n.endsWith('.tmp')), [], 'no temporary file left behind')
  await writeFile(join(dir, 'notes.txt'), 'not a job')
  t.equal((await store.unfinished()).length, 1, 'other files are ignored')
  t.equal(await store.get('../../etc/passwd'), undefined, 'only job ids are read')
  await store.close()
})

t.test('Redis store', async t => {
  const prefix = `jir-test:${randomUUID()}:`
  const redis = new Redis('redis://127.0.0.1:6379')
  const store = new RedisJobStore({ url: 'redis://127.0.0.1:6379', prefix })
  t.teardown(async () => {
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
    await store.close()
  })
  await behaves(t, store)
  const ttls = await Promise.all((await redis.keys(`${prefix}job:*`)).map(async k => [JSON.parse(await redis.get(k) ?? '{}').status, await redis.ttl(k)] as const))
  t.ok(ttls.some(([status, ttl]) => status === 'completed' && ttl > FINISHED_TTL_SECONDS - 60), 'a finished job expires')
  t.ok(ttls.some(([status, ttl]) => status === 'queued' && ttl === -1), 'an unfinished one does not')
})

t.test('a Redis store never used closes at once', async t => {
  await new RedisJobStore({ url: 'redis://127.0.0.1:6379' }).close()
  t.pass()
})
