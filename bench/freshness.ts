// Freshness of the Entra change feed (issue 12): how long after a change in Entra the Databricks account
// shows it, what each applied change costs in Graph and Databricks calls, and what a round with no change
// costs.
//
//   npm run bench -- freshness.ts          # the scale: about 10 minutes, most of it the setup
//   NODE_EXTRA_CA_CERTS=.data/emulators/ca.pem npx tsx bench/freshness.ts --users=20000 --groups=8600 --principals=1000
//   npx tsx bench/freshness.ts --help      # the flags (scale, stream lengths, rate)
//
// Scenario, all in one process (emulators over HTTPS on loopback, the service from the production
// composition root, this script):
// 1. A generated tenant (bench/generator.ts's big tenant by default: 100,000 users, 43,000 groups, depth 10)
//    plus the bench's own application. Databricks in SCIM mode, empty.
// 2. Setup: `--principals` users and service principals are materialized through the service's own bulk
//    registration (POST /v1/registrations, as an Identity.Admin caller), with Graph's throttling, the
//    emulator's Databricks rate limits and the service's Databricks write budgets all lifted. The setup
//    service runs the change feed with an hour's interval, so its first round stores cursors at "now";
//    the measuring services start from those cursors (no full reconcile).
// 3. Default limits again (Databricks: PATCH 2/s, other writes 5/s…; Graph's throttling on), then two
//    runs, each with a fresh service built with its default budgets and SYNC_INTERVAL_SECONDS=15:
//    - polling: no PUBLIC_URL;
//    - notifications: PUBLIC_URL on a free loopback port, Graph's subscriptions made by the service.
//    Each run: the cost of a round with no change (a triggered round, Graph calls counted), then a steady
//    stream of random changes made in process on the emulator's directory (`Directory` methods, the control
//    API's writes), the time of each recorded; this script polls the emulated account's model every 20 ms
//    and records when each change shows there. After the stream, pending changes get up to DRAIN_SECONDS.
//
// Changes (only to objects materialized in the account, both ends for a membership): disable and enable a
// user or a service principal, soft delete and restore a user, soft delete and restore a (security) group,
// remove a user from a group and add it back, un-nest a group and nest it again, rename a group. Every
// forward change is undone (re-enable, restore, re-add) a few seconds after it showed, and an object is
// never in two changes at once. Deprovisioning (the goals' subject): disable, soft delete (user, service
// principal, group), removal from a group, un-nesting.
import { createServer } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEmulators } from '../emulators/server.ts'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, databricksAccount, type AccountGroup, type DatabricksAccount } from '../emulators/databricks/account.ts'
import { generateTenant } from '../emulators/tenant/generator.ts'
import type { Directory } from '../emulators/tenant/model.ts'
import { loadConfig } from '../src/config.ts'
import { buildService, type Service } from '../src/service.ts'
import { BIG_TENANT_KNOBS } from './generator.ts'
import { writeResult } from './lib/results.ts'
import { BENCH_APP, BENCH_SECRET } from './lib/tenants.ts'

// ---- options ------------------------------------------------------------------------------------------

const USAGE = `bench/freshness.ts [--users=100000] [--groups=43000] [--principals=5000] [--poll-seconds=120] [--notify-seconds=45] [--per-minute=40] [--seed=12]
  --users, --groups   tenant scale (the other generator knobs: bench/generator.ts's big tenant)
  --principals        users and service principals materialized before the runs (one in 50 a service principal)
  --poll-seconds      length of the stream of changes, polling only (SYNC_INTERVAL_SECONDS=15)
  --notify-seconds    length of the stream of changes with change notifications (PUBLIC_URL)
  --per-minute        changes made a minute
  --seed              seed of the random choice of changes`
if (process.argv.includes('--help')) {
  console.log(USAGE)
  process.exit(0)
}
const flags = new Map(process.argv.slice(2).map(a => {
  const m = /^--([a-z-]+)=(.*)$/.exec(a)
  if (m === null) throw new Error(`unknown argument ${a}\n${USAGE}`)
  return [m[1] as string, m[2] as string]
}))
const KNOWN = new Set(['users', 'groups', 'principals', 'poll-seconds', 'notify-seconds', 'per-minute', 'seed'])
for (const name of flags.keys()) if (!KNOWN.has(name)) throw new Error(`unknown flag --${name}\n${USAGE}`)
const num = (name: string, fallback: number): number => {
  const v = flags.get(name)
  if (v === undefined) return fallback
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number`)
  return n
}
const USERS = num('users', BIG_TENANT_KNOBS.users as number)
const GROUPS = num('groups', BIG_TENANT_KNOBS.groups as number)
const PRINCIPALS = num('principals', 5000)
const POLL_SECONDS = num('poll-seconds', 120)
const NOTIFY_SECONDS = num('notify-seconds', 45)
const PER_MINUTE = num('per-minute', 40)
const SEED = num('seed', 12)
const INTERVAL_SECONDS = 15
const DRAIN_SECONDS = 120
/** A forward change is undone this long after it showed in the account. */
const HOLD_SECONDS = 5
const POLL_MS = 20
const GOALS = { pollingP99Seconds: 60, notificationsP50Seconds: 10, quietRoundGraphCallsPerKind: 1 }

// ---- the tenant ---------------------------------------------------------------------------------------

const started = performance.now()
const t0 = performance.now()
const fixture = generateTenant({ ...BIG_TENANT_KNOBS, users: USERS, groups: GROUPS, guests: Math.min(BIG_TENANT_KNOBS.guests as number, Math.floor(USERS / 50)), disabledUsers: Math.min(BIG_TENANT_KNOBS.disabledUsers as number, Math.floor(USERS / 100)) })
fixture.applications.push({ appId: BENCH_APP, displayName: 'jit-identity-resolver (bench)', secret: BENCH_SECRET, roles: ['User.Read.All', 'GroupMember.Read.All', 'Application.Read.All'], accessTokenAcceptedVersion: 2, identifierUris: [`api://${BENCH_APP}`] })
const generateSeconds = (performance.now() - t0) / 1000

const t1 = performance.now()
const emulator = await startEmulators({ port: 0, tenants: [fixture], tokenLifetimeSeconds: 3600 })
const loadSeconds = (performance.now() - t1) / 1000
const { ctx, origin } = emulator
const tenantId = fixture.tenantId.toLowerCase()
const tenant = ctx.tenants.get(tenantId) as Directory
const tenantSize = { users: tenant.users.size, groups: tenant.groups.size, servicePrincipals: tenant.servicePrincipals.size }
console.log(`tenant: ${tenant.users.size} users, ${tenant.groups.size} groups, ${tenant.servicePrincipals.size} service principals (generated in ${generateSeconds.toFixed(1)} s, loaded in ${loadSeconds.toFixed(1)} s)`)

async function control (method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${origin}/_emulator${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  const json = res.status === 204 ? {} : await res.json()
  if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

await control('PUT', '/graph/throttle', { disabled: true })
await control('POST', '/databricks/reset')
await control('PUT', '/databricks/settings', { aimEnabled: false })
await control('PUT', '/databricks/rate-limits', { enabled: false })
const account: DatabricksAccount = databricksAccount(ctx)

const tmp = mkdtempSync(join(tmpdir(), 'jir-freshness-'))
const syncDir = join(tmp, 'sync')

async function startService (env: Record<string, string>): Promise<Service> {
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    ENTRA_TENANT_ID: tenantId,
    ENTRA_CLIENT_ID: BENCH_APP,
    ENTRA_CLIENT_SECRET: BENCH_SECRET,
    ENTRA_AUTHORITY_HOST: origin,
    GRAPH_BASE_URL: `${origin}/v1.0`,
    DATABRICKS_HOST: origin,
    DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
    DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
    DATABRICKS_MODE: 'scim',
    SYNC_ENABLED: 'true',
    SYNC_DIR: syncDir,
    ...env
  })
  return await buildService(config, { ca: emulator.ca, clock: { now: () => ctx.clock.now() }, processMetrics: false })
}

/** Emulator call counts: Graph (`/v1.0`), Databricks (`/api/`), Entra's token endpoint. */
function calls (): { graph: number, databricks: number, token: number, routes: Record<string, number> } {
  const { routes } = ctx.calls.snapshot()
  let graph = 0; let databricks = 0; let token = 0
  for (const [route, n] of Object.entries(routes)) {
    const path = route.slice(route.indexOf(' ') + 1)
    if (path.startsWith('/v1.0/')) graph += n
    else if (path.startsWith('/api/')) databricks += n
    else if (path.includes('/oauth2/')) token += n
  }
  return { graph, databricks, token, routes }
}
function diffRoutes (a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(b).map(([r, n]) => [r, n - (a[r] ?? 0)]).filter(([, n]) => (n as number) > 0))
}

// ---- setup: materialize the principals through the registration path ----------------------------------

const eligibleUsers = [...tenant.users.values()].filter(u => u.accountEnabled && tenant.directParents(u.id).length <= 20).map(u => u.id)
const spCount = Math.min(tenant.servicePrincipals.size - 1, Math.round(PRINCIPALS / 50))
const userCount = Math.min(eligibleUsers.length, PRINCIPALS - spCount)
const step = eligibleUsers.length / userCount
const chosenUsers = Array.from({ length: userCount }, (_, i) => eligibleUsers[Math.floor(i * step)] as string)
const chosenSps = [...tenant.servicePrincipals.values()].filter(sp => sp.appId.toLowerCase() !== BENCH_APP).slice(0, spCount).map(sp => sp.id)

const t2 = performance.now()
const setup = await startService({
  SYNC_INTERVAL_SECONDS: '3600',
  REGISTRATIONS_DIR: join(tmp, 'registrations-setup'),
  REGISTRATIONS_CONCURRENCY: '32',
  DATABRICKS_SCIM_PATCHES_PER_SECOND: '100000',
  DATABRICKS_SCIM_WRITES_PER_SECOND: '100000',
  GRAPH_MAX_REQUESTS_PER_SECOND: '100000',
  GRAPH_MAX_CONCURRENCY: '64'
})
await setup.sync?.nextRound() // cursors at "now" (the account is empty: nothing to reconcile)
const adminToken = await mint({ principalId: BENCH_APP, audience: `api://${BENCH_APP}`, claims: { roles: ['Identity.Admin'] } })
const submitted = await setup.app.inject({ method: 'POST', url: '/v1/registrations', headers: { authorization: `Bearer ${adminToken}` }, payload: { principals: [...chosenUsers, ...chosenSps] } })
if (submitted.statusCode !== 202) throw new Error(`registration: ${submitted.statusCode} ${submitted.body}`)
const location = submitted.headers.location as string
let job: { status: string, registered: number, failed: number, total: number, failures: unknown[] }
for (;;) {
  await sleep(1000)
  job = (await setup.app.inject({ method: 'GET', url: location, headers: { authorization: `Bearer ${adminToken}` } })).json()
  if (job.status === 'completed' || job.status === 'failed') break
  process.stdout.write(`\rregistering: ${job.registered + job.failed}/${job.total}`)
}
const registrationSeconds = (performance.now() - t2) / 1000
await setup.close()
const setupCalls = calls()
const held = {
  users: account.users().filter(u => u.externalId !== null).length,
  servicePrincipals: account.servicePrincipals().filter(s => s.externalId !== null).length,
  groups: account.groups().filter(g => g.externalId !== null).length,
  memberships: account.groups().reduce((n, g) => n + g.members.size, 0)
}
console.log(`\nregistration ${job.status} in ${registrationSeconds.toFixed(1)} s: ${job.registered} registered, ${job.failed} failed; account holds ${held.users} users, ${held.servicePrincipals} service principals, ${held.groups} groups, ${held.memberships} memberships (${setupCalls.databricks} Databricks calls, ${setupCalls.graph} Graph calls)`)
if (job.failed > 0) console.log('first failures:', JSON.stringify(job.failures.slice(0, 3)))

// Default limits from here on.
await control('PUT', '/databricks/rate-limits', { enabled: true })
await control('PUT', '/graph/throttle', { disabled: false })

// ---- the stream of changes ----------------------------------------------------------------------------

type Kind = 'disableUser' | 'enableUser' | 'deleteUser' | 'restoreUser' | 'disableSp' | 'enableSp' | 'removeMember' | 'addMember' |
  'unnest' | 'nest' | 'renameGroup' | 'deleteGroup' | 'restoreGroup'
const DEPROVISIONING = new Set<Kind>(['disableUser', 'deleteUser', 'disableSp', 'removeMember', 'unnest', 'deleteGroup'])
const FORWARD: Array<[Kind, number]> = [['disableUser', 3], ['deleteUser', 2], ['disableSp', 1], ['removeMember', 3], ['unnest', 2], ['renameGroup', 1], ['deleteGroup', 2]]

interface Change {
  kind: Kind
  run: string
  objects: string[]
  /** performance.now() when Entra was changed, and when the account showed it. */
  at: number
  shownAt?: number
  shows: () => boolean
  /** The change that puts it back, made HOLD_SECONDS after this one shows. */
  undo?: () => Change
}

let rngState = SEED >>> 0
const random = (): number => { // mulberry32
  rngState = (rngState + 0x6d2b79f5) >>> 0
  let x = rngState
  x = Math.imul(x ^ (x >>> 15), x | 1)
  x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T

const linkedUsers = account.users().filter(u => u.externalId !== null && u.active).map(u => u.externalId as string)
const linkedSps = account.servicePrincipals().filter(s => s.externalId !== null && s.active).map(s => s.externalId as string)
const linkedGroups = account.groups().filter(g => g.externalId !== null).map(g => g.externalId as string)
const busy = new Set<string>()
const pending: Change[] = []
const done: Change[] = []
const undos: Array<{ due: number, make: () => Change }> = []
let renames = 0
let currentRun = ''

const acct = (entraId: string) => account.byExternal(entraId)
const active = (entraId: string): boolean | undefined => { const p = acct(entraId); return p === undefined || p.kind === 'group' ? undefined : p.active }
const hasMember = (groupEntraId: string, memberEntraId: string): boolean => {
  const g = acct(groupEntraId); const m = acct(memberEntraId)
  return g?.kind === 'group' && m !== undefined && g.members.has(m.id)
}
/** The group's Entra-linked memberships in the account, both ways: [group, member] Entra id pairs. */
const linkedEdges = (groupEntraId: string): Array<[string, string]> => {
  const g = acct(groupEntraId) as AccountGroup
  const edges: Array<[string, string]> = []
  for (const m of g.members) { const e = account.get(m)?.externalId; if (e !== null && e !== undefined) edges.push([groupEntraId, e]) }
  for (const { id } of account.directParents(g.id)) { const e = account.get(id)?.externalId; if (e !== null && e !== undefined) edges.push([e, groupEntraId]) }
  return edges
}

function make (kind: Kind, objects: string[], write: () => void, shows: () => boolean, undo?: () => Change): Change {
  write()
  const change: Change = { kind, run: currentRun, objects, at: performance.now(), shows, ...(undo !== undefined ? { undo } : {}) }
  pending.push(change)
  return change
}

/** A forward change of `kind` on objects not in another change, or undefined when none was found. */
function forward (kind: Kind): Change | undefined {
  for (let attempt = 0; attempt < 50; attempt++) {
    if (kind === 'disableUser' || kind === 'deleteUser') {
      const u = pick(linkedUsers)
      if (busy.has(u) || tenant.users.get(u)?.accountEnabled !== true || active(u) !== true) continue
      busy.add(u)
      if (kind === 'disableUser') {
        return make(kind, [u], () => tenant.updateUser(u, { accountEnabled: false }), () => active(u) === false,
          () => make('enableUser', [u], () => tenant.updateUser(u, { accountEnabled: true }), () => active(u) === true))
      }
      return make(kind, [u], () => tenant.delete(u), () => active(u) === false,
        () => make('restoreUser', [u], () => tenant.restore(u), () => active(u) === true))
    }
    if (kind === 'disableSp') {
      if (linkedSps.length === 0) return undefined
      const s = pick(linkedSps)
      if (busy.has(s) || active(s) !== true) continue
      busy.add(s)
      return make(kind, [s], () => tenant.updateServicePrincipal(s, { accountEnabled: false }), () => active(s) === false,
        () => make('enableSp', [s], () => tenant.updateServicePrincipal(s, { accountEnabled: true }), () => active(s) === true))
    }
    if (kind === 'removeMember') {
      const u = pick(linkedUsers)
      if (busy.has(u) || tenant.users.get(u) === undefined) continue
      const groups = tenant.directParents(u).filter(g => !busy.has(g) && hasMember(g, u))
      if (groups.length === 0) continue
      const g = pick(groups)
      busy.add(u); busy.add(g)
      return make(kind, [g, u], () => tenant.removeMember(g, u), () => !hasMember(g, u),
        () => make('addMember', [g, u], () => tenant.addMember(g, u), () => hasMember(g, u)))
    }
    if (kind === 'unnest') {
      const c = pick(linkedGroups)
      if (busy.has(c) || tenant.groups.get(c) === undefined) continue
      const parents = tenant.directParents(c).filter(p => !busy.has(p) && hasMember(p, c))
      if (parents.length === 0) continue
      const p = pick(parents)
      busy.add(c); busy.add(p)
      return make(kind, [p, c], () => tenant.removeMember(p, c), () => !hasMember(p, c),
        () => make('nest', [p, c], () => tenant.addMember(p, c), () => hasMember(p, c)))
    }
    if (kind === 'renameGroup') {
      const g = pick(linkedGroups)
      const group = tenant.groups.get(g)
      if (busy.has(g) || group === undefined) continue
      const name = `${group.displayName.replace(/ \(renamed \d+\)$/, '')} (renamed ${++renames})`
      busy.add(g)
      const change = make(kind, [g], () => tenant.updateGroup(g, { displayName: name }), () => acct(g)?.displayName.startsWith(`${name} (`) === true)
      return change
    }
    if (kind === 'deleteGroup') {
      const g = pick(linkedGroups)
      const group = tenant.groups.get(g)
      if (busy.has(g) || group === undefined || !group.securityEnabled) continue
      const edges = linkedEdges(g)
      if (edges.length === 0 || edges.some(([a, b]) => busy.has(a) || busy.has(b))) continue
      busy.add(g)
      const gone = (): boolean => edges.every(([p, m]) => !hasMember(p, m))
      // Back: every edge whose other end exists in Entra now (a member deleted meanwhile comes back with it).
      const back = (): boolean => edges.every(([p, m]) => tenant.kindOf(p === g ? m : p) === undefined || hasMember(p, m))
      return make(kind, [g, ...edges.flat().filter(x => x !== g)], () => tenant.delete(g), gone,
        () => make('restoreGroup', [g], () => tenant.restore(g), back))
    }
  }
  return undefined
}

function release (c: Change): void {
  if (c.kind === 'removeMember' || c.kind === 'unnest' || c.kind === 'addMember' || c.kind === 'nest') { busy.delete(c.objects[0] as string); busy.delete(c.objects[1] as string) } else busy.delete(c.objects[0] as string)
}

/** Checks the pending changes against the account; a shown forward change schedules its undo. */
function observe (): void {
  const now = performance.now()
  for (let i = pending.length - 1; i >= 0; i--) {
    const c = pending[i] as Change
    if (!c.shows()) continue
    c.shownAt = now
    pending.splice(i, 1)
    done.push(c)
    if (c.undo !== undefined) undos.push({ due: now + HOLD_SECONDS * 1000, make: c.undo })
    else release(c)
  }
}

/** One step of the stream: an undo that is due (half the time, or when no forward change is possible), else a forward change. */
function next (): void {
  const now = performance.now()
  const due = undos.findIndex(u => u.due <= now)
  if (due >= 0 && random() < 0.5) {
    const [u] = undos.splice(due, 1)
    const change = u?.make()
    if (change !== undefined) wrapRelease(change)
    return
  }
  const total = FORWARD.reduce((n, [, w]) => n + w, 0)
  let r = random() * total
  const kind = (FORWARD.find(([, w]) => (r -= w) < 0) ?? FORWARD[0])?.[0] as Kind
  if (forward(kind) === undefined && due >= 0) {
    const [u] = undos.splice(due, 1)
    const change = u?.make()
    if (change !== undefined) wrapRelease(change)
  }
}
/** An undo frees its objects once it shows. */
function wrapRelease (c: Change): void {
  const shows = c.shows
  c.shows = () => { const ok = shows(); if (ok) release(c); return ok }
}

// ---- one run ------------------------------------------------------------------------------------------

const quantile = (sorted: number[], q: number): number => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number
const seconds = (ms: number): number => Math.round(ms) / 1000
function stats (changes: Change[]): { count: number, shown: number, p50: number, p99: number, max: number } {
  const shown = changes.filter(c => c.shownAt !== undefined).map(c => (c.shownAt as number) - c.at).sort((a, b) => a - b)
  return { count: changes.length, shown: shown.length, p50: seconds(quantile(shown, 0.5)), p99: seconds(quantile(shown, 0.99)), max: seconds(shown[shown.length - 1] ?? NaN) }
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>(resolve => server.close(() => { resolve() }))
  return port
}

async function run (name: 'polling' | 'notifications', streamSeconds: number) {
  currentRun = name
  const env: Record<string, string> = { SYNC_INTERVAL_SECONDS: String(INTERVAL_SECONDS), REGISTRATIONS_DIR: join(tmp, `registrations-${name}`) }
  let port: number | undefined
  if (name === 'notifications') {
    port = await freePort()
    env.PUBLIC_URL = `http://127.0.0.1:${port}`
  }
  const service = await startService(env)
  const sync = service.sync
  if (sync === undefined) throw new Error('sync is off')
  if (port !== undefined) await service.app.listen({ port, host: '127.0.0.1' })
  const first = await sync.nextRound() // from the stored cursors (and, with PUBLIC_URL, the subscriptions made)
  const subscriptions = (await sync.status()).subscriptions
  if (name === 'notifications' && !subscriptions.every(s => s.id !== undefined)) throw new Error(`subscriptions: ${JSON.stringify(subscriptions)}`)

  // A round with no change, triggered at once after the previous one.
  const q0 = calls()
  const quietDone = sync.nextRound()
  await sync.trigger()
  const quiet = await quietDone
  const q1 = calls()
  const quietRound = { graphCalls: q1.graph - q0.graph, databricksCalls: q1.databricks - q0.databricks, routes: diffRoutes(q0.routes, q1.routes), read: quiet.read, applied: quiet.applied, errors: quiet.errors }
  console.log(`\n[${name}] first round read ${JSON.stringify(first.read)}; quiet round: ${quietRound.graphCalls} Graph calls ${JSON.stringify(quietRound.routes)}`)

  const rounds: Array<{ startedAt: string, finishedAt: string, read: unknown, applied: unknown, errors: string[] }> = []
  const log = { open: true }
  const listen = (): void => {
    sync.nextRound().then(r => {
      if (!log.open) return
      rounds.push({ startedAt: r.startedAt, finishedAt: r.finishedAt, read: r.read, applied: r.applied, errors: r.errors.map(e => `${e.kind}: ${e.error}`) })
      listen()
    }, () => {})
  }
  listen()

  const refusedBefore = await refusedByDatabricks()
  const before = calls()
  const totalsBefore = structuredClone((await sync.status()).totals)
  const poller = setInterval(observe, POLL_MS)
  const tStream = performance.now()
  const everyMs = 60_000 / PER_MINUTE
  let ticks = 0
  while (performance.now() - tStream < streamSeconds * 1000) {
    next()
    ticks++
    const wait = tStream + ticks * everyMs - performance.now()
    if (wait > 0) await sleep(wait)
    if (ticks % 10 === 0) process.stdout.write(`\r[${name}] ${Math.round((performance.now() - tStream) / 1000)} s: ${done.filter(c => c.run === name).length} shown, ${pending.length} pending`)
  }
  const tDrain = performance.now()
  while (pending.length > 0 && performance.now() - tDrain < DRAIN_SECONDS * 1000) await sleep(100)
  observe()
  clearInterval(poller)
  const drainSeconds = (performance.now() - tDrain) / 1000
  const after = calls()
  const refused = await refusedByDatabricks() - refusedBefore
  const totalsAfter = (await sync.status()).totals
  log.open = false
  await service.close()

  const mine = [...done, ...pending].filter(c => c.run === name)
  const shown = mine.filter(c => c.shownAt !== undefined)
  const deprov = mine.filter(c => DEPROVISIONING.has(c.kind))
  const kinds = [...new Set(mine.map(c => c.kind))].sort()
  const perKind = Object.fromEntries(kinds.map(k => [k, stats(mine.filter(c => c.kind === k))]))
  const graphCalls = after.graph - before.graph
  const databricksCalls = after.databricks - before.databricks
  const ofTenant = (totals: typeof totalsAfter): { read: Record<string, number>, applied: Record<string, number> } => {
    const mineT = totals.tenants[tenantId]
    return { read: (mineT?.read ?? {}) as Record<string, number>, applied: mineT?.applied ?? {} }
  }
  const readDiff = diffCounts(ofTenant(totalsBefore).read, ofTenant(totalsAfter).read)
  const appliedDiff = diffCounts(ofTenant(totalsBefore).applied, ofTenant(totalsAfter).applied)
  console.log(`\n[${name}] ${mine.length} changes in ${streamSeconds} s (+${drainSeconds.toFixed(1)} s drain), ${shown.length} shown; deprovisioning ${JSON.stringify(stats(deprov))}`)
  return {
    mode: name,
    env: { SYNC_INTERVAL_SECONDS: INTERVAL_SECONDS, PUBLIC_URL: port !== undefined },
    streamSeconds,
    changesPerMinute: PER_MINUTE,
    drainSeconds: Math.round(drainSeconds * 10) / 10,
    changes: mine.length,
    shown: shown.length,
    notShownAfterDrain: mine.filter(c => c.shownAt === undefined).map(c => ({ kind: c.kind, objects: c.objects, ageSeconds: seconds(performance.now() - c.at) })),
    deprovisioning: stats(deprov),
    all: stats(mine),
    perKind,
    calls: {
      graph: graphCalls,
      databricks: databricksCalls,
      graphPerShownChange: round2(graphCalls / shown.length),
      databricksPerShownChange: round2(databricksCalls / shown.length),
      databricksRefused429: refused,
      routes: diffRoutes(before.routes, after.routes)
    },
    feed: { rounds: totalsAfter.rounds - totalsBefore.rounds, failedRounds: totalsAfter.failedRounds - totalsBefore.failedRounds, read: readDiff, applied: appliedDiff },
    quietRound,
    roundLog: rounds,
    latenciesSeconds: mine.map(c => ({ kind: c.kind, seconds: c.shownAt === undefined ? null : seconds(c.shownAt - c.at) }))
  }
}

function diffCounts (a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(b).map(([k, v]) => [k, v - (a[k] ?? 0)]).filter(([, v]) => (v as number) !== 0))
}
const round2 = (n: number): number => Math.round(n * 100) / 100

const polling = await run('polling', POLL_SECONDS)
const notifications = await run('notifications', NOTIFY_SECONDS)
await emulator.close()
rmSync(tmp, { recursive: true, force: true })
const wallSeconds = Math.round((performance.now() - started) / 1000)

// ---- results ------------------------------------------------------------------------------------------

const pollingMet = polling.deprovisioning.p99 <= GOALS.pollingP99Seconds && polling.notShownAfterDrain.length === 0
const notifyMet = notifications.deprovisioning.p50 <= GOALS.notificationsP50Seconds
const quietMet = (r: typeof polling): boolean => r.quietRound.graphCalls <= 3 * GOALS.quietRoundGraphCallsPerKind
const pf = (ok: boolean): string => ok ? 'pass' : 'FAIL'
const fmt = (s: { p50: number, p99: number, max: number, shown: number, count: number }): string => `p50 ${s.p50} s, p99 ${s.p99} s, max ${s.max} s (${s.shown} of ${s.count} shown)`
const costRow = (r: typeof polling): string => `${r.shown} changes applied in ${r.streamSeconds} s + ${r.drainSeconds} s drain (${r.feed.rounds} rounds, ${r.feed.failedRounds} failed): ${r.calls.graphPerShownChange} Graph, ${r.calls.databricksPerShownChange} Databricks calls per applied change (${r.calls.databricksRefused429} answered 429)`
const quietRow = (r: typeof polling): string => `${r.quietRound.graphCalls} Graph calls for 3 kinds (goal 1 per kind: ${pf(quietMet(r))}), ${r.quietRound.databricksCalls} Databricks calls`

writeResult('freshness', {
  scenario: {
    tenant: { ...tenantSize, knobs: { users: USERS, groups: GROUPS, depth: BIG_TENANT_KNOBS.depth } },
    materialized: { requested: chosenUsers.length + chosenSps.length, users: chosenUsers.length, servicePrincipals: chosenSps.length, registered: job.registered, failed: job.failed, registrationSeconds: Math.round(registrationSeconds * 10) / 10, held, setupCalls: { graph: setupCalls.graph, databricks: setupCalls.databricks } },
    generateSeconds: round2(generateSeconds),
    loadSeconds: round2(loadSeconds),
    limits: 'setup: Graph throttling, the emulator\'s Databricks rate limits and the service\'s write budgets lifted; runs: all at their defaults',
    changes: 'in process on the emulator\'s Directory (no replication lag, notifications sent at once); the account model polled every 20 ms',
    intervalSeconds: INTERVAL_SECONDS,
    holdSeconds: HOLD_SECONDS,
    seed: SEED,
    wallSeconds
  },
  goals: {
    pollingP99: { goalSeconds: GOALS.pollingP99Seconds, value: polling.deprovisioning.p99, met: pollingMet },
    notificationsP50: { goalSeconds: GOALS.notificationsP50Seconds, value: notifications.deprovisioning.p50, met: notifyMet },
    quietRound: { goalGraphCalls: 3, polling: polling.quietRound.graphCalls, notifications: notifications.quietRound.graphCalls, met: quietMet(polling) && quietMet(notifications) }
  },
  runs: [polling, notifications]
}, [
  ['scenario', `${tenantSize.users} users / ${tenantSize.groups} groups; ${job.registered} principals registered (SCIM, limits lifted) in ${Math.round(registrationSeconds)} s: ${held.users} users, ${held.servicePrincipals} SPs, ${held.groups} groups, ${held.memberships} memberships; then ${PER_MINUTE} changes/min under default limits; ${wallSeconds} s in all`],
  [`polling (${INTERVAL_SECONDS} s): deprovisioning`, `${fmt(polling.deprovisioning)}; goal p99 ≤ ${GOALS.pollingP99Seconds} s: ${pf(pollingMet)}`],
  ['polling: every change', fmt(polling.all)],
  ['polling: cost', costRow(polling)],
  ['polling: quiet round', quietRow(polling)],
  ['notifications: deprovisioning', `${fmt(notifications.deprovisioning)}; goal p50 ≤ ${GOALS.notificationsP50Seconds} s: ${pf(notifyMet)}`],
  ['notifications: every change', fmt(notifications.all)],
  ['notifications: cost', costRow(notifications)],
  ['notifications: quiet round', quietRow(notifications)]
])
process.exit(0)

async function mint (body: Record<string, unknown>): Promise<string> {
  const res = await control('POST', '/tokens', { tenantId, ...body }) as { access_token: string }
  return res.access_token
}
async function refusedByDatabricks (): Promise<number> {
  return ((await control('GET', '/databricks/rate-limits')) as { refused: { throttled: number } }).refused.throttled
}
async function sleep (ms: number): Promise<void> { await new Promise(resolve => setTimeout(resolve, ms)) }
