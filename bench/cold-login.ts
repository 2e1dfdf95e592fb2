// Graph calls per cold login by group count (10, 200, 2,500): goal 1 + ⌈G/999⌉ or fewer.
//   npx tsx bench/cold-login.ts
import { startStack, upstreamRequests, userToken } from './lib/service.ts'
import { writeResult } from './lib/results.ts'
import { BENCH_APP, BENCH_SECRET, groupCountTenant, userInGroups } from './lib/tenants.ts'

const counts = [10, 200, 2500]
const tenant = groupCountTenant(counts)

const stack = await startStack(tenant, BENCH_APP, BENCH_SECRET)
const graphRequests = async (): Promise<number> => await upstreamRequests(stack, 'graph')
const rows: Array<[string, string]> = []
const measured = []
for (const [u, g] of counts.entries()) {
  const token = await userToken(stack, userInGroups(u))
  await fetch(`${stack.emulator.origin}/_emulator/calls`, { method: 'DELETE' })
  const before = await graphRequests()
  const started = performance.now()
  const res = await stack.service.app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  const ms = Math.round((performance.now() - started) * 10) / 10
  const body = res.json() as { groupCount: number }
  // HTTP requests the service sent to Graph (its own metrics), and the requests Graph executed (the
  // emulator's count, where each item of a $batch counts, as it does for Graph's throttling).
  const graphCalls = await graphRequests() - before
  const calls = (await (await fetch(`${stack.emulator.origin}/_emulator/calls`)).json()) as { routes: Record<string, number> }
  const executed = Object.entries(calls.routes).filter(([route]) => route.includes(' /v1.0/') && !route.endsWith('$batch')).reduce((sum, [, n]) => sum + n, 0)
  const goal = 1 + Math.ceil(g / 999)
  if (res.statusCode !== 200 || body.groupCount !== g) throw new Error(`login of the user in ${g} groups: ${res.statusCode}, ${body.groupCount} groups`)
  measured.push({ groups: g, graphCalls, graphRequestsExecuted: executed, goal, met: graphCalls <= goal, coldLoginMs: ms })
  rows.push([`${g} groups`, `${graphCalls} Graph calls (goal ≤ ${goal}; ${executed} requests counting $batch items), ${ms} ms cold${u === 0 ? ' (includes the first app token)' : ''}`])
}
await stack.close()
writeResult('cold-login', { measured, goalMet: measured.every(m => m.met) }, rows)
