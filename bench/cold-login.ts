// Graph calls per cold login by group count (10, 200, 2,500): goal 1 + ⌈G/999⌉ or fewer.
//   npx tsx bench/cold-login.ts
import type { GroupFixture, TenantFixture } from '../emulators/tenant/model.ts'
import { startStack, userToken } from './lib/service.ts'
import { writeResult } from './lib/results.ts'

const TENANT = '5a1d0c3e-7b2f-4d6a-9e8c-1f0b2a3c4d5e'
const APP = '6b2e1d4f-8c3a-4e7b-af9d-2a1c3b4d5e6f'
const SECRET = 'bench-secret'
const counts = [10, 200, 2500]
const id = (prefix: string, n: number): string => `${prefix}-0000-4000-8000-${n.toString(16).padStart(12, '0')}`

// One user per group count, in that many groups: half direct, half reached through nesting.
const groups: GroupFixture[] = []
counts.forEach((g, u) => {
  for (let i = 0; i < g; i++) {
    const child = i % 2 === 1 ? [id(`c${u}000000`, i)] : [id('a0000000', u + 1)]
    groups.push({ id: id(`c${u}000000`, i + 1), displayName: `Group ${u}-${i + 1}`, members: child })
  }
})
const tenant: TenantFixture = {
  tenantId: TENANT,
  domain: 'bench.onmicrosoft.com',
  users: counts.map((g, u) => ({ id: id('a0000000', u + 1), userPrincipalName: `user${g}@bench.onmicrosoft.com`, displayName: `In ${g} groups` })),
  servicePrincipals: [],
  groups,
  applications: [{ appId: APP, secret: SECRET, roles: ['User.Read.All', 'GroupMember.Read.All'], accessTokenAcceptedVersion: 2, identifierUris: [`api://${APP}`] }]
}

const stack = await startStack(tenant, APP, SECRET)

/** Outbound requests to Graph so far, from the service's own Prometheus metrics. */
async function graphRequests (): Promise<number> {
  const text = (await stack.service.app.inject('/metrics')).body
  return [...text.matchAll(/^upstream_request_duration_seconds_count\{upstream="graph".*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0)
}
const rows: Array<[string, string]> = []
const measured = []
for (const [u, g] of counts.entries()) {
  const token = await userToken(stack, id('a0000000', u + 1))
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
