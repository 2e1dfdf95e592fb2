// The cursor stores, file and Redis, keep the same promises: a cursor per tenant and kind, a failed round's
// progress bound to the cursor it was read from and dropped when the cursor moves on, and a damaged file
// read as "no cursor" (the feed then reconciles) rather than a crash.
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { FileCursorStore, RedisCursorStore, type CursorStore } from '../../../src/sync/cursors.ts'

const TENANT = '11111111-1111-4111-8111-111111111111'

async function promises (t: Test, make: () => CursorStore): Promise<void> {
  const store = make()
  t.equal(await store.get(TENANT, 'user'), undefined, 'no cursor at first')
  await store.set(TENANT, 'user', 'c1')
  t.equal(await store.get(TENANT.toUpperCase(), 'user'), 'c1', 'tenant ids compare case-insensitively')
  t.equal(await store.get(TENANT, 'group'), undefined, 'one cursor per kind')

  await store.setProgress(TENANT, 'user', 'c1', ['a', 'b'])
  t.same([...await store.progress(TENANT, 'user', 'c1')].sort(), ['a', 'b'], 'the progress of a failed round')
  t.same([...await store.progress(TENANT, 'user', 'c0')], [], 'only for the cursor its changes were read from')
  t.same([...await store.progress(TENANT, 'group', 'c1')], [], 'and only for its kind')
  await store.set(TENANT, 'user', 'c2')
  t.same([...await store.progress(TENANT, 'user', 'c1')], [], 'dropped when the cursor moves on')
  t.same(Object.fromEntries(await store.all()), { [`${TENANT}|user`]: 'c2' }, 'the status lists cursors, not progress')
}

t.test('the file store', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'jir-cursors-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  await promises(t, () => new FileCursorStore(dir))
  t.equal(await new FileCursorStore(dir).get(TENANT, 'user'), 'c2', 'a restarted process reads the cursor back')

  writeFileSync(join(dir, 'cursors.json'), '{ not json')
  t.equal(await new FileCursorStore(dir).get(TENANT, 'user'), undefined, 'a damaged file is no cursor (a reconcile follows), not a crash')
})

t.test('the Redis store', async t => {
  const redis = new Redis('redis://127.0.0.1:6379')
  const key = `jir-test:${randomUUID()}:sync:cursors`
  t.teardown(async () => {
    const keys = await redis.keys(`${key}*`)
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })
  await promises(t, () => new RedisCursorStore(redis, key))
  t.equal(await new RedisCursorStore(redis, key).get(TENANT, 'user'), 'c2', 'another replica reads the same cursor')
  await redis.hset(`${key}:progress`, `${TENANT}|group`, 'not json')
  t.same([...await new RedisCursorStore(redis, key).progress(TENANT, 'group', 'c1')], [], 'damaged progress is no progress')
})
