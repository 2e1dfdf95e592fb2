// GraphDirectory at scale, counted with the emulator's call counters: a user in 2,500 groups (every group
// once, in ⌈2500/999⌉ = 3 pages), 100 concurrent cold calls sharing one token request, direct parents of
// 45 groups in three $batch requests, a throttled item inside a batch, and an item's nextLink followed.
import t from 'tap'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant } from '../../helpers/tenant.ts'
import { BIG, T, bigTenant, directoryFor } from '../../helpers/graph-directory.ts'

const emulator = await startTestEmulator(t, { tenants: [bigTenant(), smallTenant()] })
const { ctx } = emulator
const tid = BIG.tenantId

t.afterEach(() => { ctx.faults.remove(); ctx.calls.reset() })

const TRANSITIVE = 'GET /v1.0/users/:id/transitiveMemberOf/:cast'
const TOKEN = 'POST /:tenant/oauth2/v2.0/token'

t.test('a user in 2,500 groups: all of them, each once, in 3 pages of transitiveMemberOf', async t => {
  const { directory } = directoryFor(t, emulator)
  const groups = await directory.transitiveGroups(tid, { id: BIG.heavy, kind: 'user' })
  t.equal(groups.length, 2_500)
  t.equal(new Set(groups.map(g => g.id)).size, 2_500, 'no duplicates')
  t.ok(groups.every(g => /^Team \d+$/.test(g.displayName) && g.securityEnabled), 'names and flags of every group')
  t.equal(ctx.calls.snapshot().routes[TRANSITIVE], 3, '⌈2500/999⌉ pages, every nextLink followed')
})

t.test('100 concurrent cold calls: one token request, 100 correct answers', async t => {
  const { directory } = directoryFor(t, emulator)
  const results = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
    const group = BIG.p[i % BIG.p.length] as string
    return await directory.transitiveGroups(tid, { id: group, kind: 'group' })
  }))
  t.equal(ctx.calls.snapshot().routes[TOKEN], 1, 'acquisitions coalesced: exactly one token-endpoint call')
  t.equal(ctx.calls.snapshot().routes['GET /v1.0/groups/:id/transitiveMemberOf/:cast'], 100)
  // p[i] is in p[i+1] … p[44] and in root.
  t.ok(results.every((groups, i) => groups.length === BIG.p.length - (i % BIG.p.length)), 'each answer has its ancestors')

  const other = await Promise.all(Array.from({ length: 10 }, async () => await directory.transitiveGroups(T.tenantId, { id: T.alice, kind: 'user' })))
  t.equal(ctx.calls.snapshot().routes[TOKEN], 2, 'another tenant: its own app and token, fetched once')
  t.ok(other.every(g => g.length === 4))
})

t.test('direct parents of 45 groups: 3 $batch requests of ≤ 20', async t => {
  const { directory } = directoryFor(t, emulator)
  const parents = await directory.directParents(tid, BIG.p)
  t.equal(ctx.calls.snapshot().routes['POST /v1.0/$batch'], 3)
  t.equal(ctx.calls.snapshot().routes['GET /v1.0/groups/:id/memberOf/:cast'], 45, 'each group asked once')
  t.equal(parents.size, 45)
  for (const [i, g] of BIG.p.entries()) {
    const expected = i < 44 ? [BIG.root, BIG.p[i + 1]].sort() : [BIG.root]
    t.same([...(parents.get(g) ?? [])].sort(), expected, `P${i}`)
  }
})

t.test('one item throttled inside a batch: retried after its Retry-After, the answer complete', async t => {
  const { directory, rec } = directoryFor(t, emulator)
  await directory.directParents(tid, [BIG.root]) // token first
  ctx.calls.reset()
  const throttled = BIG.p[7] as string
  ctx.faults.add({ route: `/v1.0/groups/${throttled}/memberOf/*`, status: 429, retryAfter: 1, times: 1 })
  const started = Date.now()
  const parents = await directory.directParents(tid, BIG.p)
  t.ok(Date.now() - started >= 1_000, 'the item\'s Retry-After was honoured')
  t.same([...(parents.get(throttled) ?? [])].sort(), [BIG.root, BIG.p[8]].sort(), 'the throttled group still has its parents')
  t.equal(parents.size, 45)
  t.equal(ctx.calls.snapshot().routes['POST /v1.0/$batch'], 4, 'three batches, then one for the retried item')
  t.equal(ctx.calls.snapshot().routes['GET /v1.0/groups/:id/memberOf/:cast'], 46)
  t.match(rec.events.filter(e => e.hook === 'throttled'), [{ upstream: 'graph', route: '/v1.0/groups/{id}/memberOf/microsoft.graph.group', status: 429, retryAfterSeconds: 1 }])
})

t.test("a batch item's nextLink is followed in a later batch", async t => {
  const { directory } = directoryFor(t, emulator)
  const parents = await directory.directParents(tid, [BIG.popular, BIG.root])
  t.equal(parents.get(BIG.popular)?.length, 1_000, 'all 1,000 parents over two pages')
  t.same([...(parents.get(BIG.popular) ?? [])].sort(), [...BIG.popularParents].sort())
  t.same(parents.get(BIG.root), [])
  t.equal(ctx.calls.snapshot().routes['POST /v1.0/$batch'], 2)
})
