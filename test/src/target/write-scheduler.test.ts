// The write scheduler and the membership batches, on their own: who gets the next Databricks write token
// (interactive before background, owners in turn, a raised ticket moving up), the bounded queue and its
// estimate, and membership writes to one group coalesced while they wait. Order and counts only: no
// assertion on how long anything took.
import t from 'tap'
import { MembershipBatches } from '../../../src/target/membership-batches.ts'
import { TargetUnavailableError } from '../../../src/target/port.ts'
import { BACKGROUND, SharedWork, Waits, WriteLane, type WriteContext } from '../../../src/target/write-scheduler.ts'

/**
 * A lane that grants nothing for a moment (as after a Retry-After), so every take made now waits its turn
 * however slow the machine is; then 20 grants a second.
 */
function busyLane (options: { maxQueued?: number } = {}): WriteLane {
  const lane = new WriteLane({ family: 'patch', ratePerSecond: 20, ...options })
  lane.pause(0.3)
  return lane
}

t.test('interactive writes are granted before background ones, whatever the order they came in', async t => {
  const lane = busyLane()
  t.teardown(() => { lane.close() })
  const order: string[] = []
  const take = async (name: string, ctx?: WriteContext): Promise<void> => { await lane.take(ctx); order.push(name) }
  const all = [
    take('registration 1', BACKGROUND),
    take('registration 2', BACKGROUND),
    take('sync', BACKGROUND),
    take('login 1'),
    take('login 2')
  ]
  t.same(lane.depth(), { interactive: 2, background: 3 })
  await Promise.all(all)
  t.same(order, ['login 1', 'login 2', 'registration 1', 'registration 2', 'sync'])
})

t.test('owners take turns: one principal\'s many writes do not hold up the next principal\'s first', async t => {
  const lane = busyLane()
  t.teardown(() => { lane.close() })
  const order: string[] = []
  const a = new SharedWork('principal:a')
  const b = new SharedWork('principal:b')
  const all = [
    ...[1, 2, 3, 4].map(async i => { await lane.take(a.ctx); order.push(`a${i}`) }),
    (async () => { await lane.take(b.ctx); order.push('b1') })()
  ]
  await Promise.all(all)
  t.equal(order.indexOf('b1'), 1, `b's only write comes right after a's first (${order.join(' ')})`)
})

t.test('an interactive caller joining background work lifts its waiting writes', async t => {
  const lane = busyLane()
  t.teardown(() => { lane.close() })
  const order: string[] = []
  const earlier = [1, 2].map(async i => { await lane.take(BACKGROUND); order.push(`registration ${i}`) })
  const shared = new SharedWork('principal:x', BACKGROUND)
  const job = (async () => { await lane.take(shared.ctx); order.push('x') })()
  t.same(lane.depth(), { interactive: 0, background: 3 }, "x's write waits last, as background work")
  // A login for x joins the registration's run of it.
  const login: WriteContext = { priority: 'interactive', waiting: new Waits() }
  shared.join(login)
  t.ok((login.waiting?.etaSeconds() ?? 0) > 0, 'and waits on its writes')
  t.same(lane.depth(), { interactive: 1, background: 2 })
  await Promise.all([...earlier, job])
  t.same(order, ['x', 'registration 1', 'registration 2'])
})

t.test('the queue is bounded: beyond it a write is refused at once, saying how long the wait is', async t => {
  const lane = busyLane({ maxQueued: 3 })
  t.teardown(() => { lane.close() })
  const waiting = [lane.take(), lane.take(), lane.take()]
  const err = await lane.take().catch((e: unknown) => e)
  t.type(err, TargetUnavailableError)
  t.equal((err as TargetUnavailableError).throttled, true)
  t.ok(((err as TargetUnavailableError).retryAfterSeconds ?? 0) >= 1, 'with a Retry-After')
  t.match((err as Error).message, /3 writes waiting/)
  await Promise.all(waiting)
})

t.test('a request\'s Retry-After is its place in the queue', async t => {
  const lane = new WriteLane({ family: 'write', ratePerSecond: 2 })
  t.teardown(() => { lane.close() })
  await lane.take()
  await lane.take()
  // 9 background writes queued first, then an interactive request with 3 writes of its own.
  const background = Array.from({ length: 9 }, async () => { await lane.take(BACKGROUND) })
  const request: WriteContext = { priority: 'interactive', waiting: new Waits() }
  const mine = Promise.all([lane.take(request), lane.take(request), lane.take(request)])
  const seconds = (): number => Math.ceil(request.waiting?.etaSeconds() ?? 0)
  t.equal(seconds(), 2, '3 interactive writes at 2 a second: ahead of the background ones')
  const late: WriteContext = { priority: 'background', waiting: new Waits() }
  const lateWrite = lane.take(late)
  t.ok((late.waiting?.etaSeconds() ?? 0) >= 6, `a background write behind all of them waits longer (${late.waiting?.etaSeconds() ?? 0} s)`)
  lane.pause(30)
  t.ok(seconds() >= 30, 'a pause Databricks asked for counts too')
  lane.close()
  await Promise.allSettled([...background, mine, lateWrite])
  t.equal(seconds(), 0, 'nothing waits any more')
})

t.test('membership writes to one group coalesce while they wait for the PATCH budget', async t => {
  const lane = busyLane()
  t.teardown(() => { lane.close() })
  const sent: Array<{ group: string, add: string[], remove: string[], prepaid: boolean }> = []
  const refusal = new Error('cycle')
  const batches = new MembershipBatches<Error>(lane, async (group, add, remove, prepaid) => {
    sent.push({ group, add: [...add].sort(), remove: [...remove].sort(), prepaid })
    return new Map(add.filter(m => m === 'loop').map(m => [m, refusal]))
  }, () => {})
  const results = await Promise.all([
    batches.write('g1', ['u1'], []),
    batches.write('g1', ['u2', 'loop'], []),
    batches.write('g1', [], ['u9']),
    batches.write('g2', ['u1'], []),
    // Contradicts the open batch of g1 (removes u1, which it adds): goes in the next one.
    batches.write('g1', [], ['u1'])
  ])
  t.same(sent.filter(s => s.group === 'g1'), [
    { group: 'g1', add: ['loop', 'u1', 'u2'], remove: ['u9'], prepaid: true },
    { group: 'g1', add: [], remove: ['u1'], prepaid: true }
  ], 'one PATCH for three writers; the contradicting write after it, in order')
  t.same(sent.filter(s => s.group === 'g2').length, 1)
  t.same(results.map(r => [...r.keys()]), [[], ['loop'], [], [], []], 'each writer hears only its own refusals')

  const none = new MembershipBatches<Error>(undefined, async (group, add, remove, prepaid) => { sent.push({ group, add, remove, prepaid }); return new Map() })
  sent.length = 0
  await Promise.all([none.write('g', ['a'], []), none.write('g', ['b'], [])])
  t.equal(sent.length, 2, 'without a budget every write goes at once, uncoalesced')
  t.notOk(sent.some(s => s.prepaid))
})

t.test('a batch that fails fails every writer in it, and the next batch starts clean', async t => {
  const lane = busyLane()
  t.teardown(() => { lane.close() })
  let fail = true
  const batches = new MembershipBatches<Error>(lane, async () => {
    if (fail) throw new TargetUnavailableError('down', 1)
    return new Map()
  })
  const results = await Promise.allSettled([batches.write('g', ['a'], []), batches.write('g', ['b'], [])])
  t.same(results.map(r => r.status), ['rejected', 'rejected'])
  fail = false
  t.same([...(await batches.write('g', ['a'], [])).keys()], [])
})
