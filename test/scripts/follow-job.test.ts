// The bounded follow of a registration job that `npm run register` and `npm run demo` share: it stops at
// the job's end or at the maximum wait, whichever comes first, on an injected clock (no sleeping).
import t from 'tap'
import { followJob, parseMaxWait, seconds } from '../../scripts/follow-job.ts'

interface Job { id: string, status: string }

/** A fake clock that sleeping moves forward, and a poll answering the given states in turn (the last one forever). */
function fake (states: string[]): { now: () => number, sleep: (ms: number) => Promise<void>, poll: () => Promise<Job>, polls: () => number, sleeps: number[] } {
  let time = 1000
  let polled = 0
  const sleeps: number[] = []
  return {
    now: () => time,
    sleep: async ms => { sleeps.push(ms); time += ms },
    poll: async () => ({ id: 'job-1', status: states[Math.min(polled++, states.length - 1)] ?? 'running' }),
    polls: () => polled,
    sleeps
  }
}

t.test('follows the job to its end, reporting every state seen', async t => {
  const f = fake(['listing', 'running', 'completed'])
  const seen: string[] = []
  const result = await followJob({ id: 'job-1', status: 'queued' }, f.poll, { maxWaitMs: 60_000, intervalMs: 1000, now: f.now, sleep: f.sleep, onProgress: j => seen.push(j.status) })
  t.same(result, { done: true, job: { id: 'job-1', status: 'completed' } })
  t.same(seen, ['queued', 'listing', 'running', 'completed'])
  t.same(f.sleeps, [1000, 1000, 1000], 'one interval between polls')
})

t.test('a job that failed as a whole is done too; a finished first state is never polled', async t => {
  const f = fake(['failed'])
  t.match(await followJob({ id: 'job-1', status: 'running' }, f.poll, { maxWaitMs: 60_000, intervalMs: 10, now: f.now, sleep: f.sleep }), { done: true, job: { status: 'failed' } })
  const g = fake([])
  t.match(await followJob({ id: 'job-1', status: 'completed' }, g.poll, { maxWaitMs: 60_000, intervalMs: 10, now: g.now, sleep: g.sleep }), { done: true })
  t.equal(g.polls(), 0)
})

t.test('a job that never ends: stops at the maximum wait, with the last state seen', async t => {
  const f = fake(['running'])
  const result = await followJob({ id: 'job-1', status: 'queued' }, f.poll, { maxWaitMs: 2500, intervalMs: 1000, now: f.now, sleep: f.sleep })
  t.same(result, { done: false, job: { id: 'job-1', status: 'running' }, waitedMs: 2500 })
  t.same(f.sleeps, [1000, 1000, 500], 'the last wait is cut to the deadline, and the job is asked once more there')
  t.equal(f.polls(), 3)
})

t.test('a maximum wait of 0 reports the first state without polling', async t => {
  const f = fake(['completed'])
  t.same(await followJob({ id: 'job-1', status: 'queued' }, f.poll, { maxWaitMs: 0, intervalMs: 1000, now: f.now, sleep: f.sleep }), { done: false, job: { id: 'job-1', status: 'queued' }, waitedMs: 0 })
  t.equal(f.polls(), 0)
})

t.test('a poll still unanswered at the deadline is abandoned; other errors are the caller\'s', async t => {
  // Real time here: the poll never answers, and only the deadline's signal ends it.
  let aborted = false
  const hanging = async (signal: AbortSignal): Promise<Job> => await new Promise((_resolve, reject) => {
    signal.addEventListener('abort', () => { aborted = true; reject(signal.reason) }, { once: true })
  })
  const result = await followJob({ id: 'job-1', status: 'running' }, hanging, { maxWaitMs: 20, intervalMs: 10 })
  t.match(result, { done: false, job: { status: 'running' } })
  t.ok(aborted, 'the poll was told to give up')

  const broken = async (): Promise<Job> => { throw new Error('HTTP 401') }
  await t.rejects(followJob({ id: 'job-1', status: 'running' }, broken, { maxWaitMs: 60_000, intervalMs: 1, sleep: async () => {} }), /HTTP 401/)
})

t.test('--max-wait values and durations for people', async t => {
  t.equal(parseMaxWait('600'), 600_000)
  t.equal(parseMaxWait('0.5'), 500)
  t.equal(parseMaxWait('0'), 0)
  for (const bad of ['', '-1', 'ten', '1e3', '5s', 'Infinity']) t.equal(parseMaxWait(bad), undefined, JSON.stringify(bad))
  t.equal(seconds(0), '0 s')
  t.equal(seconds(1500), '1.5 s')
  t.equal(seconds(90_000), '90 s')
  t.equal(seconds(600_000), '10 min')
  t.equal(seconds(5_400_000), '90 min')
  t.equal(seconds(14_400_000), '4 h')
})
