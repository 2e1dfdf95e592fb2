// Databricks calls per cold login by group count, for both adapters (SCIM and AIM), and the throughput of
// cold logins of distinct users under the emulator's Databricks write limits (SCIM: the goal is ≥ 90 % of
// the allowed PATCH rate, the scarcer one, with no retry loops).
//   npm run bench -- databricks.ts
import { startStack, upstreamRequests, userToken, type BenchStack } from './lib/service.ts'
import { writeResult } from './lib/results.ts'
import { BENCH_APP, BENCH_SECRET, benchId, groupCountTenant, userInGroups } from './lib/tenants.ts'

const counts = [10, 200, 2500]
const rows: Array<[string, string]> = []

async function login (stack: BenchStack, principalId: string): Promise<void> {
  const token = await userToken(stack, principalId)
  const res = await stack.service.app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  if (res.statusCode !== 200) throw new Error(`login of ${principalId}: ${res.statusCode} ${res.body}`)
}

// 1. Calls per cold login. The emulator's limits and the service's write budgets are lifted: this counts
// calls; how fast they may go is part 2's subject.
const perLogin = []
for (const mode of ['scim', 'aim'] as const) {
  const stack = await startStack(groupCountTenant(counts), BENCH_APP, BENCH_SECRET, {
    DATABRICKS_SCIM_PATCHES_PER_SECOND: '100000',
    DATABRICKS_SCIM_WRITES_PER_SECOND: '100000'
  }, { mode, rateLimits: false })
  for (const [u, g] of counts.entries()) {
    const before = await upstreamRequests(stack, 'databricks')
    const started = performance.now()
    await login(stack, userInGroups(u))
    const seconds = Math.round(performance.now() - started) / 1000
    const calls = await upstreamRequests(stack, 'databricks') - before
    const warmBefore = await upstreamRequests(stack, 'databricks')
    await login(stack, userInGroups(u))
    const warmCalls = await upstreamRequests(stack, 'databricks') - warmBefore
    perLogin.push({ mode, groups: g, calls, warmCalls, seconds })
    rows.push([`${mode}: cold login, ${g} groups`, `${calls} Databricks calls (warm login: ${warmCalls}), ${seconds} s without rate limits`])
  }
  await stack.close()
}

// 2. Throughput of cold logins of distinct users under the write limits (SCIM, the emulator's defaults:
// PATCH 2/s, other writes 5/s, and the service's budgets at the same documented values).
const users = 24
const sharedGroups = 6
const stack = await startStack(groupCountTenant([], { users, sharedGroups }), BENCH_APP, BENCH_SECRET, {}, { mode: 'scim', rateLimits: true })
await login(stack, benchId('a1000000', 1)) // the shared groups now exist: what follows is users joining them
const patchesBefore = await countRoute(stack, 'PATCH')
const postsBefore = await countRoute(stack, 'POST')
const started = performance.now()
await Promise.all(Array.from({ length: users - 1 }, async (_, i) => { await login(stack, benchId('a1000000', i + 2)) }))
const seconds = (performance.now() - started) / 1000
const patches = await countRoute(stack, 'PATCH') - patchesBefore
const posts = await countRoute(stack, 'POST') - postsBefore
const state = await (await fetch(`${stack.emulator.origin}/_emulator/databricks/state`)).json() as { rateLimits: { refused: Record<string, number> } }
const refused = Object.values(state.rateLimits.refused).reduce((a, b) => a + b, 0)
await stack.close()
const patchRate = Math.round(patches / seconds * 100) / 100
const ratio = Math.round(patchRate / 2 * 100) / 100
rows.push([`scim: ${users - 1} cold logins of distinct users under the write limits`, `${Math.round(seconds * 10) / 10} s: ${patches} PATCHes (${patchRate}/s of 2/s allowed = ${Math.round(ratio * 100)} %, goal ≥ 90 %), ${posts} creates, ${refused} refused by the emulator`])

writeResult('databricks', {
  perLogin,
  throughput: { logins: users - 1, seconds, patches, posts, patchRatePerSecond: patchRate, allowedPatchRate: 2, ratio, refusedByEmulator: refused, goal: { ratio: 0.9, met: ratio >= 0.9 } }
}, rows)

/** Requests of one method the emulated account received (its own call counts). */
async function countRoute (s: BenchStack, method: string): Promise<number> {
  const calls = await (await fetch(`${s.emulator.origin}/_emulator/calls`)).json() as { routes: Record<string, number> }
  return Object.entries(calls.routes).filter(([r]) => r.startsWith(`${method} /api/`)).reduce((n, [, c]) => n + c, 0)
}
