// Bulk registration at the acceptance criteria's scale: a group of 5,000 transitive members (nested two
// levels deep, some reached twice, a few service principals) registered in AIM mode while the emulated
// identity API allows 200 requests a second, so throttling happens and is ridden out. Records how long it
// takes, the calls made and refused, and checks that every member is in the account exactly once. The
// test suite proves the same behaviour with 500 members (test/src/registrations/group-aim.test.ts).
//   npm run bench -- registration.ts
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startStack } from './lib/service.ts'
import { writeResult } from './lib/results.ts'
import { bigGroupTenant } from '../test/helpers/registrations.ts'
import { T } from '../test/helpers/tenant.ts'

const MEMBERS = 5000
const IDENTITY_LIMIT = 200
const { fixture, root, memberIds } = bigGroupTenant(MEMBERS)
const dir = mkdtempSync(join(tmpdir(), 'jir-bench-registrations-'))
const stack = await startStack(fixture, T.resolverAppId, T.resolverSecret, {
  REGISTRATIONS_DIR: dir,
  // Graph allows a large tenant 800 resource units a second: the default budget (100/s) is not the subject.
  GRAPH_MAX_REQUESTS_PER_SECOND: '600',
  REGISTRATIONS_CONCURRENCY: '16',
  SYNC_ENABLED: 'false'
}, { mode: 'aim', rateLimits: true })
const { origin } = stack.emulator
const control = async (method: string, path: string, body?: unknown): Promise<any> => {
  const res = await fetch(`${origin}/_emulator${path}`, { method, ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) })
  return res.status === 204 ? undefined : await res.json()
}
await control('PUT', '/databricks/rate-limits', { enabled: true, limits: { identity: IDENTITY_LIMIT } })

const token = (await control('POST', '/tokens', { tenantId: fixture.tenantId, principalId: T.etlSp, audience: `api://${T.resolverAppId}`, claims: { roles: ['Identity.Admin'] } })).access_token as string
const api = async (method: 'GET' | 'POST', url: string, payload?: Record<string, unknown>): Promise<any> => {
  const res = await stack.service.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload !== undefined ? { payload } : {}) })
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res.json()
}

await control('DELETE', '/calls')
const started = performance.now()
const { id } = await api('POST', '/v1/registrations', { group: root })
let job = await api('GET', `/v1/registrations/${id as string}`)
while (job.status !== 'completed' && job.status !== 'failed') {
  await new Promise(resolve => setTimeout(resolve, 100))
  job = await api('GET', `/v1/registrations/${id as string}`)
}
const seconds = Math.round((performance.now() - started) / 100) / 10

const calls = await control('GET', '/calls') as { routes: Record<string, number> }
const count = (pattern: RegExp): number => Object.entries(calls.routes).filter(([route]) => pattern.test(route)).reduce((n, [, c]) => n + c, 0)
const state = await control('GET', '/databricks/state') as { users: Array<{ externalId: string | null }>, servicePrincipals: Array<{ externalId: string | null }>, rateLimits: { refused: { throttled: number } } }
const occurrences = new Map<string, number>()
for (const p of [...state.users, ...state.servicePrincipals]) if (p.externalId !== null) occurrences.set(p.externalId, (occurrences.get(p.externalId) ?? 0) + 1)
const exactlyOnce = memberIds.filter(m => occurrences.get(m) === 1).length
await stack.close()
rmSync(dir, { recursive: true, force: true })

const graph = count(/ \/v1\.0\//)
const databricks = count(/ \/api\//)
const refused = state.rateLimits.refused.throttled
const ok = job.status === 'completed' && job.registered === MEMBERS && job.failed === 0 && exactlyOnce === MEMBERS
writeResult('registration', {
  members: MEMBERS,
  identityLimitPerSecond: IDENTITY_LIMIT,
  seconds,
  job: { status: job.status, registered: job.registered, failed: job.failed },
  exactlyOnce,
  calls: { graph, databricks, refusedByRateLimit: refused },
  ok
}, [
  [`aim: a group of ${MEMBERS} transitive members at ${IDENTITY_LIMIT} identity requests/s`, `${seconds} s: ${job.registered as number} registered, ${job.failed as number} failed, ${exactlyOnce} exactly once in the account`],
  ['calls', `${graph} Graph, ${databricks} Databricks, ${refused} refused by the rate limit and retried`]
])
if (!ok) process.exit(1)
