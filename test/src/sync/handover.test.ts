// Issue 12, "no change lost across a leader handover", with real processes: replica A (a child process
// running src/server.ts) is killed with SIGKILL in the middle of a round, its Databricks write hung; its
// job's lock expires, BullMQ's stalled-job check hands the job back to the queue, and replica B (in this
// process) runs it from the cursor in Redis, so the change reaches Databricks after all, once in effect.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { Redis } from 'ioredis'
import { Queue } from 'bullmq'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { childEnv } from '../../helpers/child-env.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'
import { round, syncHarness, userOf } from '../../helpers/sync.ts'
import type { RoundReport } from '../../../src/sync/change-feed.ts'
import { SERVER_BUNDLE } from '../../helpers/server-bundle.ts'

const REDIS_URL = 'redis://127.0.0.1:6379'
const prefix = `jir-test:${randomUUID()}:`
const redis = new Redis(REDIS_URL)
// Teardowns run last-registered first: the replicas stop, then the emulator, then the keys go.
t.teardown(async () => {
  const keys = await redis.keys(`${prefix}*`)
  if (keys.length > 0) await redis.del(...keys)
  redis.disconnect()
})

const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
const { origin } = emulator
const { tenant, control, account, freshAccount } = syncHarness(emulator)
await freshAccount()

const cursorsKey = `${prefix}sync:cursors`
const userCursor = `${T.tenantId}|user`
/** BullMQ's worker name (the job's `processedBy`) of the replica running in process `pid`. */
const workerOf = (pid: number | undefined): string => `${hostname()}:${String(pid)}`

// Both replicas: one Redis and one key prefix (one deployment), an hour between scheduled rounds (the
// test triggers the one it needs), and a 2 s round lock so a dead replica's round is taken over soon.
const replicaEnv = {
  DATABRICKS_HOST: origin,
  DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
  DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
  REDIS_URL,
  REDIS_KEY_PREFIX: prefix,
  SYNC_ENABLED: 'true',
  SYNC_INTERVAL_SECONDS: '3600',
  SYNC_LOCK_SECONDS: '2'
}

const queue = new Queue('entra-sync', { connection: { host: '127.0.0.1', port: 6379 }, prefix: `${prefix}bull` })
t.teardown(async () => { await queue.close() })

/** Polls until `check` answers something other than undefined; the bound is generous (a loaded machine). */
async function until<T> (what: string, check: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const value = await check()
    if (value !== undefined) return value
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** Until the queue has nothing waiting or running (the scheduler's next run, an hour away, stays delayed). */
async function settled (): Promise<void> {
  await until('the sync queue to settle', async () => {
    const counts = await queue.getJobCounts('waiting', 'active', 'prioritized', 'waiting-children')
    return Object.values(counts).every(n => n === 0) ? true : undefined
  })
}

/** Requests counted by the emulator whose "METHOD route" matches. */
async function calls (pattern: RegExp): Promise<number> {
  const { routes } = await control('GET', '/calls') as { routes: Record<string, number> }
  return Object.entries(routes).filter(([route]) => pattern.test(route)).reduce((n, [, count]) => n + count, 0)
}

// ---- replica A: the service as an operator runs it, in its own process ----------------------------------
const a = spawn(process.execPath, [SERVER_BUNDLE], {
  env: childEnv({
    ...replicaEnv,
    PORT: '0',
    LOG_LEVEL: 'info',
    ENTRA_TENANT_ID: T.tenantId,
    ENTRA_CLIENT_ID: T.resolverAppId,
    ENTRA_CLIENT_SECRET: T.resolverSecret,
    ENTRA_AUTHORITY_HOST: origin,
    GRAPH_BASE_URL: `${origin}/v1.0`,
    UPSTREAM_CA_FILE: emulator.caPath,
    // A's hung write must stay hung until A is killed: no attempt timeout (and retry) before that.
    REQUEST_TIMEOUT_MS: '600000',
    UPSTREAM_TIMEOUT_MS: '600000'
  }),
  stdio: ['ignore', 'pipe', 'pipe']
})
let output = ''
a.stdout.on('data', (d: Buffer) => { output += d.toString() })
a.stderr.on('data', (d: Buffer) => { output += d.toString() })
const exited = once(a, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
t.teardown(async () => {
  if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL')
  await exited
})

const urlA = await until('replica A to listen', async () => /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1])
// A's first round starts the shared cursors (at "now"); the queue then has nothing to do.
await until('the first round to store the cursors', async () => await redis.hlen(cursorsKey) === 3 ? true : undefined)
await settled()

t.test('a round whose replica is killed mid-apply is taken over by another replica and applied once', async t => {
  // Alice passes through A once: she is materialized in the account.
  const login = await fetch(`${urlA}/v1/login`, { method: 'POST', headers: { authorization: `Bearer ${await tokenFor(emulator, T.alice)}` } })
  t.equal(login.status, 200, 'alice logs in through replica A')
  t.equal(userOf(await account(), T.alice)?.active, true, 'and active in Databricks')
  const cursorBefore = await redis.hget(cursorsKey, userCursor)

  // Entra disables her; Databricks will hang on the first PATCH of a user (A's), and answer the next ones.
  tenant().updateUser(T.alice, { accountEnabled: false })
  await control('DELETE', '/calls')
  const { faults: [fault] } = await control('POST', '/faults', { route: '/api/2.0/accounts/*/scim/v2/Users/*', method: 'PATCH', timeout: true, hangMs: 600_000, times: 1 }) as { faults: Array<{ id: string }> }
  const faultMatched = async (): Promise<number> => {
    const { faults } = await control('GET', '/faults') as { faults: Array<{ id: string, matched: number }> }
    return faults.find(f => f.id === fault?.id)?.matched ?? 0
  }

  // A round asked for now: A's worker is the only one, so A runs it.
  const job = await queue.add('round', {})
  const jobId = job.id ?? ''
  // A is inside the round: its job is the active one, and its PATCH of alice reached Databricks and hangs.
  await until('replica A to hang in the round', async () => (await faultMatched()) >= 1 ? true : undefined)
  const active = await queue.getActive()
  t.same(active.map(j => [j.id, j.processedBy]), [[jobId, workerOf(a.pid)]], 'the one active round is A\'s')
  t.equal(userOf(await account(), T.alice)?.active, true, 'the change is not applied yet')

  a.kill('SIGKILL')
  const [, signal] = await exited
  t.equal(signal, 'SIGKILL', 'replica A is gone mid-round')
  t.equal(await redis.hget(cursorsKey, userCursor), cursorBefore, 'the dead round stored no cursor')

  // Replica B starts; once A's lock expires, the stalled job goes back to the queue and B runs it.
  const b = await startService(t, emulator, replicaEnv)
  const state = await until('the stalled round to finish', async () => {
    const s = await (await queue.getJob(jobId))?.getState()
    return s === 'completed' || s === 'failed' ? s : undefined
  })
  t.equal(state, 'completed', 'the stalled round completed')
  const done = await queue.getJob(jobId)
  t.equal(done?.processedBy, workerOf(process.pid), 'replica B ran it')
  t.equal(done?.stalledCounter, 1, 'it was taken over once, after stalling')
  const report = done?.returnvalue as RoundReport | undefined
  t.match(report, { read: { user: 1 }, applied: { deactivated: 1 } }, 'the round read the change again from the stored cursor and applied it')
  t.same(report?.errors, [], 'without errors')
  await settled()

  t.equal(userOf(await account(), T.alice)?.active, false, 'Databricks shows alice inactive')
  const cursorAfter = await redis.hget(cursorsKey, userCursor)
  t.ok(cursorAfter !== null && cursorAfter !== cursorBefore, 'the users cursor advanced')
  const totals = (await b.sync?.status())?.totals
  t.equal(totals?.tenants[T.tenantId]?.applied.deactivated, 1, 'B deactivated alice once over all its rounds')
  t.equal(await faultMatched(), 2, 'two PATCHes of a user reached Databricks: A\'s, never answered, and B\'s')
  t.equal(await calls(/^PATCH \S*\/Users\//), 2, 'no other user write')
  t.equal(await calls(/^(POST|PUT|DELETE) \S*\/scim\/v2\/(Users|ServicePrincipals|Groups)/), 0, 'nothing created, replaced or deleted')
  t.equal(await calls(/^PATCH \S*\/Groups\//), 0, 'no membership written')

  // The rounds go on from the shared cursor: nothing is read again.
  const next: RoundReport = await round(b)
  t.same(next.read, { user: 0, servicePrincipal: 0, group: 0 }, 'the next round reads nothing new')
})
