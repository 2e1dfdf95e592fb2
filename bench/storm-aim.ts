// Time to access under automatic identity management (issue 13): `--users` (500) distinct new users sign
// in at once over HTTP, each in 10 of 50 groups, with the emulator's identity API limited to `--limit`
// (200) requests a second. AIM writes no membership: each cold login costs a resolve of the user and its
// groups from the account's own transitive-parent-groups answer, so the storm is bounded by that limit,
// not by SCIM's write budgets. Reports time to access, identity calls per user, refusals and duplicates.
//
//   npm run bench -- storm-aim.ts
//   NODE_EXTRA_CA_CERTS=.data/emulators/ca.pem npx tsx bench/storm-aim.ts --users=100
import { parseArgs } from 'node:util'
import { startStack } from './lib/service.ts'
import { writeResult } from './lib/results.ts'
import { signIn } from './lib/login-hook.ts'
import { smallTenant, T } from '../test/helpers/tenant.ts'

const { values } = parseArgs({ options: { users: { type: 'string', default: '500' }, limit: { type: 'string', default: '200' } } })
const USERS = Number(values.users)
const LIMIT = Number(values.limit)
const GROUPS = 50
const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')
const userIds = Array.from({ length: USERS }, (_, i) => `f3000000-0000-4000-8000-${hex(i, 12)}`)
const groupIds = Array.from({ length: GROUPS }, (_, g) => `f1000000-0000-4000-8000-${hex(g, 12)}`)
const base = smallTenant()
const fixture = {
  ...base,
  users: [...base.users, ...userIds.map((id, i) => ({ id, userPrincipalName: `storm${i}@contoso-test.onmicrosoft.com`, displayName: `Storm ${i}` }))],
  groups: [...base.groups, ...groupIds.map((id, g) => ({ id, displayName: `Storm team ${g}`, members: userIds.filter((_, i) => Array.from({ length: 10 }, (_, k) => (i + k * 5) % GROUPS).includes(g)) }))]
}

const stack = await startStack(fixture, T.resolverAppId, T.resolverSecret, { SYNC_ENABLED: 'false', GRAPH_MAX_REQUESTS_PER_SECOND: '600' }, { mode: 'aim', rateLimits: true })
const { origin } = stack.emulator
const control = async (method: string, path: string, body?: unknown): Promise<any> => {
  const res = await fetch(`${origin}/_emulator${path}`, { method, ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) })
  return res.status === 204 ? undefined : await res.json()
}
await control('PUT', '/databricks/rate-limits', { enabled: true, limits: { identity: LIMIT } })
await stack.service.app.listen({ port: 0, host: '127.0.0.1' })
const address = stack.service.app.server.address()
const api = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
const tokens = await Promise.all(userIds.map(async id => (await control('POST', '/tokens', { tenantId: fixture.tenantId, principalId: id, audience: `api://${T.resolverAppId}` })).access_token as string))
await control('DELETE', '/calls')

const started = performance.now()
const access = await Promise.all(tokens.map(async token => await signIn(api, token)))
const times = access.map(a => a.ms)
const resets = access.reduce((n, a) => n + a.resets, 0)
const with503 = access.filter(a => a.attempts > 1).length
const seconds = (performance.now() - started) / 1000
const calls = await control('GET', '/calls') as { routes: Record<string, number> }
const identity = Object.entries(calls.routes).filter(([r]) => r.includes('/api/2.0/identity/')).reduce((n, [, c]) => n + c, 0)
const state = await control('GET', '/databricks/state') as { users: Array<{ externalId: string | null }>, rateLimits: { refused: { throttled: number } } }
const counts = new Map<string, number>()
for (const u of state.users) if (u.externalId !== null) counts.set(u.externalId, (counts.get(u.externalId) ?? 0) + 1)
await stack.close()

const pct = (p: number): number => [...times].sort((a, b) => a - b)[Math.min(times.length - 1, Math.floor((p / 100) * times.length))] ?? NaN
const result = {
  users: USERS,
  identityLimitPerSecond: LIMIT,
  seconds: Math.round(seconds * 10) / 10,
  accessMs: { p50: Math.round(pct(50)), p99: Math.round(pct(99)) },
  identityCallsPerUser: Math.round((identity / USERS) * 100) / 100,
  refusedByRateLimit: state.rateLimits.refused.throttled,
  callersWith503: with503,
  resets,
  duplicates: [...counts.values()].filter(n => n > 1).length,
  missing: userIds.filter(id => counts.get(id) !== 1).length
}
writeResult('storm-aim', result, [
  [`aim: ${USERS} new users at once, each in 10 of ${GROUPS} groups, identity API at ${LIMIT}/s`, `p50 ${(result.accessMs.p50 / 1000).toFixed(1)} s, p99 ${(result.accessMs.p99 / 1000).toFixed(1)} s; ${result.identityCallsPerUser} identity calls per user; ${result.refusedByRateLimit} refused and retried, ${result.duplicates} duplicates, ${result.missing} missing, ${resets} resets, ${with503} callers got a 503 first`]
])
if (result.duplicates > 0 || result.missing > 0 || resets > 0) process.exit(1)
