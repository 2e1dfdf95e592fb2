// Several replicas (issue 14) at the scale of storm-scim.ts: three replicas of src/server.ts sharing the
// local Redis, the emulators in this process at their default limits (account SCIM POST 5/s, PATCH 2/s),
// the service's default budgets and deadline.
//
//   npm run bench -- fleet-storm.ts                 # about 3 minutes
//   NODE_EXTRA_CA_CERTS=.data/emulators/ca.pem npx tsx bench/fleet-storm.ts --users=100
//
// 1. storm: `--users` (500) distinct new users, each in 10 of 50 groups that already exist in the account,
//    each signing in through all three replicas at once (1,500 logins, as a load balancer spreading a login
//    hook's requests would). Time to access (p50/p99 of the 1,500), user creates per second against the 5/s
//    budget, PATCHes, refused writes, duplicates, and Graph reads of group lists per user in the fleet.
// 2. a cold replica: a fourth replica starts after the storm, and `--cold` (100) of the storm's users sign
//    in through it, one after another. Its first logins run once for the fleet (fleet/flights.ts) on
//    whichever replica takes them: the figures for deciding whether a shared L2 cache (principals and
//    their groups in Redis) would pay for itself. Then the same users again on it (warm).
import { parseArgs } from 'node:util'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ChildProcess } from 'node:child_process'
import { Redis } from 'ioredis'
import { startEmulators } from '../emulators/server.ts'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../emulators/databricks/account.ts'
import { writeResult } from './lib/results.ts'
import { seedAccountGroups } from './lib/service.ts'
import { signIn, type Access } from './lib/login-hook.ts'
import { freePort, launch, ready, stop } from './lib/deployed.ts'
import { smallTenant, T } from '../test/helpers/tenant.ts'

const { values } = parseArgs({ options: { users: { type: 'string', default: '500' }, cold: { type: 'string', default: '100' } } })
const USERS = Number(values.users)
const COLD = Math.min(USERS, Number(values.cold))
const GROUPS = 50
const PER_USER = 10
const REDIS_URL = 'redis://127.0.0.1:6379'

const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')
const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}000000-0000-4000-8000-${hex(i, 12)}`)
const people = ids('f7', USERS)
const groups = ids('f8', GROUPS)
const tenOf = (i: number): string[] => Array.from({ length: PER_USER }, (_, k) => groups[(i + k * 5) % GROUPS] as string)
const base = smallTenant()
const fixture = {
  ...base,
  users: [...base.users, ...people.map((id, i) => ({ id, userPrincipalName: `fleet${i}@contoso-test.onmicrosoft.com`, displayName: `Fleet ${i}` }))],
  groups: [...base.groups, ...groups.map((id, g) => ({ id, displayName: `Fleet team ${g}`, members: people.filter((_, i) => tenOf(i).includes(id)) }))]
}

const emulator = await startEmulators({ port: 0, tenants: [fixture], tokenLifetimeSeconds: 3600 })
const { origin } = emulator
const control = async (method: string, path: string, body?: unknown): Promise<any> => {
  const res = await fetch(`${origin}/_emulator${path}`, { method, ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) })
  return res.status === 204 ? undefined : await res.json()
}
await control('PUT', '/graph/throttle', { disabled: true })
await control('PUT', '/databricks/settings', { aimEnabled: false })
// The account holds the groups (named as the service names them, linked by externalId).
await seedAccountGroups(origin, groups.map((id, g) => ({ id, displayName: `Fleet team ${g}` })))

const prefix = `jir-bench:${randomUUID()}:`
const children: ChildProcess[] = []
async function replica (): Promise<string> {
  const port = await freePort()
  const child = launch(children, ['src/server.ts'], {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    HOST: '127.0.0.1',
    PORT: String(port),
    ENTRA_TENANT_ID: T.tenantId,
    ENTRA_CLIENT_ID: T.resolverAppId,
    ENTRA_CLIENT_SECRET: T.resolverSecret,
    ENTRA_AUTHORITY_HOST: origin,
    GRAPH_BASE_URL: `${origin}/v1.0`,
    UPSTREAM_CA_FILE: emulator.caPath,
    DATABRICKS_HOST: origin,
    DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
    DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
    DATABRICKS_MODE: 'scim',
    REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    REPLICAS: '3',
    SYNC_ENABLED: 'false',
    GRAPH_MAX_REQUESTS_PER_SECOND: '600'
  }, 'ignore')
  const url = `http://127.0.0.1:${port}`
  await ready(child, `${url}/readyz`)
  return url
}

const tokenOf = async (principalId: string): Promise<string> =>
  (await control('POST', '/tokens', { tenantId: fixture.tenantId, principalId, audience: `api://${T.resolverAppId}` })).access_token as string
const routes = (): Record<string, number> => emulator.ctx.calls.snapshot().routes
const sum = (r: Record<string, number>, re: RegExp): number => Object.entries(r).filter(([route]) => re.test(route)).reduce((n, [, c]) => n + c, 0)
const pct = (xs: number[], p: number): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}
const GRAPH_GROUP_READS = /^GET \/v1\.0\/users\/:id\/(transitiveMemberOf|memberOf)/
const DATABRICKS = /^(GET|POST|PATCH|PUT|DELETE) \/api\/2\.0\/accounts\//

const replicas = await Promise.all([replica(), replica(), replica()])
const tokens = await Promise.all(people.map(tokenOf))

// 1. The storm.
const before = routes()
const refusedBefore = (await control('GET', '/databricks/state')).rateLimits.refused.throttled as number
const crossed: number[] = []
const watching = { on: true }
const started = performance.now()
const watcher = (async () => {
  while (watching.on) {
    const state = await control('GET', '/databricks/state') as { users: Array<{ externalId: string | null }> }
    const n = state.users.filter(u => u.externalId?.startsWith('f7') === true).length
    while (crossed.length < 10 && n >= ((crossed.length + 1) * USERS) / 10) crossed.push(performance.now() - started)
    await sleep(250)
  }
})()
const accesses: Access[] = await Promise.all(tokens.flatMap(token => replicas.map(async url => await signIn(url, token))))
const elapsed = performance.now() - started
watching.on = false
await watcher
const after = routes()
const state = await control('GET', '/databricks/state') as { users: Array<{ externalId: string | null }>, rateLimits: { refused: { throttled: number } } }
const counts = new Map<string, number>()
for (const u of state.users) if (u.externalId !== null) counts.set(u.externalId, (counts.get(u.externalId) ?? 0) + 1)
const delta = (re: RegExp): number => sum(after, re) - sum(before, re)
const storm = {
  users: USERS,
  logins: accesses.length,
  seconds: Math.round(elapsed / 100) / 10,
  accessMs: { p50: Math.round(pct(accesses.map(a => a.ms), 50)), p99: Math.round(pct(accesses.map(a => a.ms), 99)) },
  loginsWith503: accesses.filter(a => a.attempts > 1).length,
  resets: accesses.reduce((n, a) => n + a.resets, 0),
  userCreatesPerSecond: crossed.length >= 9 ? Math.round((0.8 * USERS) / (((crossed[8] as number) - (crossed[0] as number)) / 1000) * 100) / 100 : NaN,
  userCreates: delta(/^POST .*\/scim\/v2\/Users$/),
  groupCreates: delta(/^POST .*\/scim\/v2\/Groups$/),
  patches: delta(/^PATCH .*\/scim\/v2\//),
  refusedByRateLimit: state.rateLimits.refused.throttled - refusedBefore,
  duplicates: [...counts.values()].filter(n => n > 1).length,
  missing: people.filter(id => counts.get(id) !== 1).length,
  graphGroupReadsPerUser: Math.round(delta(GRAPH_GROUP_READS) / USERS * 100) / 100
}

// 2. A cold replica joins; some of the storm's users sign in through it, one after another.
const cold = await replica()
const coldUsers = tokens.slice(0, COLD)
async function through (url: string): Promise<{ ms: number[], graph: number, databricks: number }> {
  const start = routes()
  const ms: number[] = []
  for (const token of coldUsers) ms.push((await signIn(url, token)).ms)
  const end = routes()
  return { ms, graph: sum(end, GRAPH_GROUP_READS) - sum(start, GRAPH_GROUP_READS), databricks: sum(end, DATABRICKS) - sum(start, DATABRICKS) }
}
const first = await through(cold)
const again = await through(cold)
const warmElsewhere = await through(replicas[0] as string)
const figures = (r: { ms: number[], graph: number, databricks: number }): Record<string, number> => ({ p50Ms: Math.round(pct(r.ms, 50) * 10) / 10, p99Ms: Math.round(pct(r.ms, 99) * 10) / 10, graphGroupReads: r.graph, databricksCalls: r.databricks })
const coldReplica = { users: COLD, first: figures(first), again: figures(again), warmReplica: figures(warmElsewhere) }

for (const child of children.reverse()) await stop(child)
await emulator.close()
const redis = new Redis(REDIS_URL)
const keys = await redis.keys(`${prefix}*`)
if (keys.length > 0) await redis.del(...keys)
redis.disconnect()

const s1 = (ms: number): string => `${(ms / 1000).toFixed(1)} s`
const ok = storm.duplicates === 0 && storm.missing === 0 && storm.resets === 0 && storm.userCreates === USERS
writeResult('fleet-storm', { storm, coldReplica, ok }, [
  [`three replicas: ${USERS} new users, each in ${PER_USER} of ${GROUPS} existing groups, each sent to all three (${storm.logins} logins)`,
    `p50 ${s1(storm.accessMs.p50)}, p99 ${s1(storm.accessMs.p99)}; ${storm.userCreatesPerSecond} user creates/s (goal ≥ 4.5 of 5); ${storm.userCreates} user creates, ${storm.groupCreates} group creates, ${storm.patches} PATCHes; ${storm.refusedByRateLimit} refused, ${storm.duplicates} duplicates, ${storm.missing} missing, ${storm.resets} resets; ${storm.graphGroupReadsPerUser} Graph group-list reads per user (transitive and direct: 2 = once each in the fleet)`],
  [`a fourth replica joins cold: ${COLD} of those users sign in through it, one by one`,
    `first login p50 ${coldReplica.first.p50Ms} ms, p99 ${coldReplica.first.p99Ms} ms, ${coldReplica.first.graphGroupReads} Graph group-list reads, ${coldReplica.first.databricksCalls} Databricks calls; again: p50 ${coldReplica.again.p50Ms} ms, ${coldReplica.again.graphGroupReads} Graph, ${coldReplica.again.databricksCalls} Databricks; on a warm replica: p50 ${coldReplica.warmReplica.p50Ms} ms`]
])
if (!ok) process.exit(1)
