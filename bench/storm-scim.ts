// Time to access under Databricks' write limits (issue 13), SCIM mode, the emulator's default limits
// (account SCIM POST 5/s, PATCH 2/s) and the service's default budgets and deadline (10 s). The service
// listens on a real port; each caller is a login hook over HTTP that retries after the Retry-After of a
// 503 until it gets in, as a real one would.
//
//   npm run bench -- storm-scim.ts                 # all scenarios, about 8 minutes
//   NODE_EXTRA_CA_CERTS=.data/emulators/ca.pem npx tsx bench/storm-scim.ts --users=100
//
// 1. existing groups: `--users` (500) distinct new users sign in at once, each in 10 of 50 groups that
//    already exist in the account. Reports time to access (p50/p99), the rate of user creates against the
//    5/s budget, PATCHes and their rate, refused writes, duplicates, reset sockets, and whether the
//    callers' retries wrote anything.
// 2. new groups: the same storm with the 50 groups not yet in the account (a new team).
// 3. a registration running: 20 new users sign in one after another while a registration job of
//    `--registered` (1,000) principals runs; their time to access against the same 20 without the job.
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { seedAccountGroups, startStack } from './lib/service.ts'
import { writeResult } from './lib/results.ts'
import { signIn as loginHook, type Access } from './lib/login-hook.ts'
import { smallTenant, T } from '../test/helpers/tenant.ts'

const { values } = parseArgs({ options: { users: { type: 'string', default: '500' }, registered: { type: 'string', default: '1000' } } })
const USERS = Number(values.users)
const REGISTERED = Number(values.registered)
const GROUPS = 50
const PER_USER = 10
const LATE = 20

const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')
// Disjoint people and groups per scenario, so no scenario finds what another one wrote (the account is
// never reset under the service's caches): the first storm's users in the existing groups, the second's
// in new ones, the late logins and the registration in the existing groups too.
const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}000000-0000-4000-8000-${hex(i, 12)}`)
const stormA = ids('f3', USERS)
const stormB = ids('f4', USERS)
const lateIds = ids('f6', 2 * LATE)
const registeredIds = ids('f5', REGISTERED)
const existingGroups = ids('f1', GROUPS)
const newGroups = ids('f2', GROUPS)
const tenOf = (groups: string[], i: number): string[] => Array.from({ length: PER_USER }, (_, k) => groups[(i + k * 5) % GROUPS] as string)
const base = smallTenant()
const people = [...stormA, ...stormB, ...lateIds, ...registeredIds]
const groupsOf = new Map<string, string[]>([
  ...stormA.map((id, i) => [id, tenOf(existingGroups, i)] as [string, string[]]),
  ...stormB.map((id, i) => [id, tenOf(newGroups, i)] as [string, string[]]),
  ...[...lateIds, ...registeredIds].map((id, i) => [id, tenOf(existingGroups, i)] as [string, string[]])
])
const fixture = {
  ...base,
  users: [...base.users, ...people.map((id, i) => ({ id, userPrincipalName: `storm${i}@contoso-test.onmicrosoft.com`, displayName: `Storm ${i}` }))],
  groups: [
    ...base.groups,
    ...[...existingGroups, ...newGroups].map((id, g) => ({ id, displayName: `Storm team ${g}`, members: people.filter(p => groupsOf.get(p)?.includes(id) === true) }))
  ]
}

const stack = await startStack(fixture, T.resolverAppId, T.resolverSecret, { SYNC_ENABLED: 'false', REGISTRATIONS_CONCURRENCY: '8', GRAPH_MAX_REQUESTS_PER_SECOND: '600' }, { mode: 'scim', rateLimits: true })
const { origin } = stack.emulator
await stack.service.app.listen({ port: 0, host: '127.0.0.1' })
const address = stack.service.app.server.address()
const api = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
const control = async (method: string, path: string, body?: unknown): Promise<any> => {
  const res = await fetch(`${origin}/_emulator${path}`, { method, ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) })
  return res.status === 204 ? undefined : await res.json()
}
const tokenOf = async (principalId: string, claims?: Record<string, unknown>): Promise<string> =>
  (await control('POST', '/tokens', { tenantId: fixture.tenantId, principalId, audience: `api://${T.resolverAppId}`, ...claims !== undefined ? { claims } : {} })).access_token as string

const signIn = async (token: string): Promise<Access> => await loginHook(api, token)

// The account holds the existing groups (named as the service would name them, linked by externalId).
await seedAccountGroups(origin, existingGroups.map((id, g) => ({ id, displayName: `Storm team ${g}` })))

function writesSoFar (routes: Record<string, number>): { userCreates: number, groupCreates: number, patches: number } {
  const sum = (re: RegExp): number => Object.entries(routes).filter(([r]) => re.test(r)).reduce((n, [, c]) => n + c, 0)
  return { userCreates: sum(/^POST .*\/scim\/v2\/Users$/), groupCreates: sum(/^POST .*\/scim\/v2\/Groups$/), patches: sum(/^PATCH .*\/scim\/v2\//) }
}

const pct = (xs: number[], p: number): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}
const s1 = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

async function storm (withGroups: boolean): Promise<Record<string, unknown>> {
  const userIds = withGroups ? stormA : stormB
  const prefix = withGroups ? 'f3' : 'f4'
  const before = writesSoFar((await control('GET', '/calls') as { routes: Record<string, number> }).routes)
  const refusedBefore = (await control('GET', '/databricks/state') as { rateLimits: { refused: { throttled: number } } }).rateLimits.refused.throttled
  const tokens = await Promise.all(userIds.map(async id => await tokenOf(id)))
  // When the account's user count crossed each tenth of the storm: the create rate between 10 % and 90 %.
  const crossed: number[] = []
  const watching = { on: true }
  const started = performance.now()
  const watcher = (async () => {
    while (watching.on) {
      const state = await control('GET', '/databricks/state') as { users: Array<{ externalId: string | null }> }
      const n = state.users.filter(u => u.externalId?.startsWith(prefix) === true).length
      while (crossed.length < 10 && n >= ((crossed.length + 1) * USERS) / 10) crossed.push(performance.now() - started)
      await sleep(250)
    }
  })()
  const results = await Promise.all(tokens.map(signIn))
  const elapsed = performance.now() - started
  watching.on = false
  await watcher
  const calls = await control('GET', '/calls') as { routes: Record<string, number> }
  const total = writesSoFar(calls.routes)
  const writes = { userCreates: total.userCreates - before.userCreates, groupCreates: total.groupCreates - before.groupCreates, patches: total.patches - before.patches }
  const state = await control('GET', '/databricks/state') as { users: Array<{ externalId: string | null }>, rateLimits: { refused: { throttled: number } } }
  const counts = new Map<string, number>()
  for (const u of state.users) if (u.externalId !== null) counts.set(u.externalId, (counts.get(u.externalId) ?? 0) + 1)
  const createRate = crossed.length >= 9 ? (0.8 * USERS) / (((crossed[8] as number) - (crossed[0] as number)) / 1000) : NaN
  // The retries of callers that got a 503 happened; a second round of logins now must write nothing.
  const again = await Promise.all(tokens.slice(0, 50).map(signIn))
  const after = writesSoFar((await control('GET', '/calls') as { routes: Record<string, number> }).routes)
  return {
    groups: withGroups ? 'existing' : 'new',
    users: USERS,
    seconds: Math.round(elapsed / 100) / 10,
    accessMs: { p50: Math.round(pct(results.map(r => r.ms), 50)), p99: Math.round(pct(results.map(r => r.ms), 99)) },
    callersWith503: results.filter(r => r.attempts > 1).length,
    resets: results.reduce((n, r) => n + r.resets, 0),
    userCreatesPerSecond: Math.round(createRate * 100) / 100,
    writes,
    patchesPerSecond: Math.round((writes.patches / (elapsed / 1000)) * 100) / 100,
    refusedByRateLimit: state.rateLimits.refused.throttled - refusedBefore,
    duplicates: [...counts.values()].filter(n => n > 1).length,
    missing: userIds.filter(id => counts.get(id) !== 1).length,
    warmRetryWrites: after.userCreates + after.groupCreates + after.patches - total.userCreates - total.groupCreates - total.patches,
    warmRetryAccessMs: Math.round(pct(again.map(r => r.ms), 50))
  }
}

async function lateLogins (ids: string[]): Promise<number[]> {
  const out: number[] = []
  for (const id of ids) {
    out.push((await signIn(await tokenOf(id))).ms)
    await sleep(500)
  }
  return out
}

async function withRegistration (): Promise<Record<string, unknown>> {
  const alone = await lateLogins(lateIds.slice(0, LATE))
  const admin = await tokenOf(T.etlSp, { roles: ['Identity.Admin'] })
  const posted = await fetch(`${api}/v1/registrations`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ principals: registeredIds }) })
  const job = await posted.json() as { id: string }
  await sleep(2000)
  const during = await lateLogins(lateIds.slice(LATE))
  const progress = await (await fetch(`${api}/v1/registrations/${job.id}`, { headers: { authorization: `Bearer ${admin}` } })).json() as { registered: number, status: string }
  return {
    registered: REGISTERED,
    stillRunningAfterLogins: progress.status !== 'completed',
    jobProgressAfterLogins: progress.registered,
    aloneMs: { p50: Math.round(pct(alone, 50)), p99: Math.round(pct(alone, 99)) },
    duringMs: { p50: Math.round(pct(during, 50)), p99: Math.round(pct(during, 99)) }
  }
}

const existing = await storm(true)
const fresh = await storm(false)
const registration = await withRegistration()
await stack.close()

const line = (r: Record<string, any>): string =>
  `p50 ${s1(r.accessMs.p50)}, p99 ${s1(r.accessMs.p99)}; ${r.userCreatesPerSecond} user creates/s; ${r.writes.patches} PATCHes (${r.patchesPerSecond}/s), ${r.writes.groupCreates} group creates; ${r.refusedByRateLimit} refused, ${r.duplicates} duplicates, ${r.missing} missing, ${r.resets} resets; ${r.callersWith503} callers got a 503 first; a later login wrote ${r.warmRetryWrites}`
const ok = [existing, fresh].every(r => r.duplicates === 0 && r.missing === 0 && r.resets === 0 && r.warmRetryWrites === 0)
writeResult('storm-scim', { existing, fresh, registration, ok }, [
  [`scim: ${USERS} new users at once, each in ${PER_USER} of ${GROUPS} existing groups`, line(existing)],
  [`scim: the same, the ${GROUPS} groups new`, line(fresh)],
  [`scim: ${LATE} logins while a ${REGISTERED}-principal registration runs`, `p50 ${s1((registration.duringMs as any).p50)}, p99 ${s1((registration.duringMs as any).p99)} (alone: p50 ${s1((registration.aloneMs as any).p50)}, p99 ${s1((registration.aloneMs as any).p99)}); the job ${registration.stillRunningAfterLogins === true ? 'still running' : 'done'} (${String(registration.jobProgressAfterLogins)} registered)`]
])
if (!ok) process.exit(1)
