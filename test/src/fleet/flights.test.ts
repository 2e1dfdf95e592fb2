// One run per key across the fleet (src/fleet/flights.ts) on the real Redis: two FleetFlights over one
// queue stand for two replicas. Concurrent requests for a key from both share one run; the run's problem
// reaches every requester as the problem it was (code, status, Retry-After); an unexpected error is a
// plain 500 that names no internals; the run's progress (the wait estimate of its writes) reaches the
// requesters; with Redis unreachable a request fails at once with an error that is not a problem, so the
// caller does the work itself.
import t from 'tap'
import { FleetFlights } from '../../../src/fleet/flights.ts'
import { isProblem } from '../../../src/fleet/shared-runs.ts'
import { upstreamUnavailable } from '../../../src/resolver/errors.ts'
import { Waits } from '../../../src/target/write-scheduler.ts'
import { REDIS_URL, redisPrefix, until } from '../../helpers/fleet.ts'

const { prefix } = redisPrefix(t)

interface Data { key: string, behaviour: 'answer' | 'problem' | 'crash' | 'slow' }
const runs: string[] = []
const released = new Map<string, () => void>()

/** A replica's flights: the run counts itself, then answers, throws, or reports progress and waits to be released. */
function replica (name: string, url = REDIS_URL): FleetFlights<Data, string> {
  const flights = new FleetFlights<Data, string>({
    url,
    prefix,
    name: 'test-runs',
    concurrency: 4,
    run: async ({ key, behaviour }, progress) => {
      runs.push(key)
      if (behaviour === 'problem') throw upstreamUnavailable('Databricks', 7, true)
      if (behaviour === 'crash') throw new Error('secret internals')
      if (behaviour === 'slow') {
        progress({ eta: 42 })
        await new Promise<void>(resolve => { released.set(key, resolve) })
      }
      return `${key} answered by ${name}`
    },
    log: { error: () => {} }
  })
  t.teardown(async () => { await flights.close() })
  return flights
}

const a = replica('A')
const b = replica('B')
await until('both replicas to reach Redis', () => a.available && b.available ? true : undefined)

t.test('concurrent requests for one key from two replicas share one run', async t => {
  const slow = { key: 'shared', behaviour: 'slow' as const }
  const fromA = a.run('shared', slow)
  const fromB = b.run('shared', slow)
  await until('the run to start', () => released.get('shared'))
  released.get('shared')?.()
  const [answerA, answerB] = await Promise.all([fromA, fromB])
  t.equal(answerA, answerB, 'the same answer')
  t.equal(runs.filter(k => k === 'shared').length, 1, 'run once')
})

t.test('the run\'s problem reaches every requester as it was', async t => {
  const [fromA, fromB] = await Promise.allSettled([a.run('refused', { key: 'refused', behaviour: 'problem' }), b.run('refused', { key: 'refused', behaviour: 'problem' })])
  for (const outcome of [fromA, fromB]) {
    t.equal(outcome.status, 'rejected')
    const err = (outcome as PromiseRejectedResult).reason as { code: string, statusCode: number, headers: Record<string, string>, message: string }
    t.ok(isProblem(err))
    t.match(err, { code: 'UPSTREAM_THROTTLED', statusCode: 503, headers: { 'retry-after': '7' } })
    t.match(err.message, /Databricks is throttling/)
  }
})

t.test('an unexpected error is a plain 500 that names no internals', async t => {
  const err = await a.run('crash', { key: 'crash', behaviour: 'crash' }).then(() => undefined, (e: unknown) => e) as { code: string, statusCode: number, message: string }
  t.match(err, { code: 'INTERNAL', statusCode: 500 })
  t.notMatch(err.message, /secret/)
})

t.test('the run\'s progress reaches a requester that waits for it', async t => {
  const waits = new Waits()
  const pending = b.run('estimated', { key: 'estimated', behaviour: 'slow' }, data => { waits.expectElsewhere((data as { eta: number }).eta) })
  await until('the estimate to arrive', () => waits.etaSeconds() > 0 ? true : undefined)
  t.ok(waits.etaSeconds() > 40 && waits.etaSeconds() <= 42, `the requester expects about 42 s: ${waits.etaSeconds()}`)
  released.get('estimated')?.()
  await pending
})

t.test('Redis unreachable: a request fails at once, and not as a problem (the caller runs the work itself)', async t => {
  const away = replica('away', 'redis://127.0.0.1:1')
  const err = await away.run('away', { key: 'away', behaviour: 'answer' }).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof Error, 'rejected')
  t.notOk(isProblem(err), 'not a problem a caller would see')
  t.notOk(away.available)
})
