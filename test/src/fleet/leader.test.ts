// Issue 14, one leader for periodic work: three replicas (child processes running src/server.ts) with the
// Entra change feed every 2 s. Each scheduled round runs on exactly one of them (the queue's job scheduler
// makes one job per period for the whole fleet); the replica that ran the last round is killed, and the
// rounds due after that run on the others: never two periods without a round, and the first is due within
// two periods of the kill. Judged on the rounds' scheduled times and who ran them, not on how fast the machine was.
import t from 'tap'
import { hostname } from 'node:os'
import { Queue, type Job } from 'bullmq'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { startFleet, until, type Replica } from '../../helpers/fleet.ts'
import { smallTenant } from '../../helpers/tenant.ts'

const INTERVAL_MS = 2000
const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
const fleet = await startFleet(t, emulator, 3, { SYNC_ENABLED: 'true', SYNC_INTERVAL_SECONDS: String(INTERVAL_MS / 1000), SYNC_LOCK_SECONDS: '2' })
const queue = new Queue('entra-sync', { connection: { host: '127.0.0.1', port: 6379 }, prefix: `${fleet.prefix}bull` })
t.teardown(async () => { await queue.close() })

const workerOf = (r: Replica): string => `${hostname()}:${String(r.child.pid)}`
/** The scheduler's rounds that completed, by their scheduled time (the scheduler's job ids end with it). */
async function scheduledRounds (): Promise<Array<{ due: number, by: string }>> {
  const jobs = await queue.getJobs(['completed'], 0, -1) as Job[]
  return jobs
    .map(j => ({ due: Number(/^repeat:.*:(\d+)$/.exec(j.id ?? '')?.[1]), by: j.processedBy ?? '' }))
    .filter(r => Number.isFinite(r.due))
    .sort((a, b) => a.due - b.due)
}

t.test('the replica running the rounds dies: the next rounds run on the others, within two periods', async t => {
  const before = await until('two scheduled rounds', async () => { const r = await scheduledRounds(); return r.length >= 2 ? r : undefined })
  const workers = new Set(fleet.replicas.map(workerOf))
  t.ok(before.every(r => workers.has(r.by)), 'each round ran on one of the replicas')
  const last = before[before.length - 1] as { due: number, by: string }
  const leader = fleet.replicas.find(r => workerOf(r) === last.by) as Replica
  await leader.kill()
  const killedAt = Date.now()

  const after = await until('two rounds due after the kill', async () => {
    const r = (await scheduledRounds()).filter(x => x.due > killedAt)
    return r.length >= 2 ? r : undefined
  })
  t.ok(after.every(r => r.by !== last.by && workers.has(r.by)), `they ran on the replicas still alive (${[...new Set(after.map(r => r.by))].join(', ')})`)
  t.ok((after[0] as { due: number }).due - killedAt <= 2 * INTERVAL_MS, 'the first was due within two periods of the kill')
  const all = await scheduledRounds()
  const gaps = all.slice(1).map((r, i) => r.due - (all[i] as { due: number }).due)
  t.ok(gaps.every(g => g > 0 && g <= 2 * INTERVAL_MS), `never two periods without a round, the kill included (due ${gaps.join(', ')} ms apart)`)
})
