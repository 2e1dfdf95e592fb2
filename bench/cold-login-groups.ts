// Issue 13: what a cold login of a user in many groups costs in Databricks calls, and how long it takes
// until the login hook has its workspace decision. One user in N groups (half direct, half through
// nesting), a cold `POST /v1/login` with `workspaceId` (one of its groups is assigned to the workspace, as
// an admin would have done), then a warm one:
// - AIM mode (identity API): default 2,500 groups. Goal: ≤ 3 Databricks calls plus the workspace decision's.
// - SCIM mode: default 200 groups (every group and membership is written, at the emulator's default
//   account SCIM limits and the service's default write budgets: PATCH 2/s, other writes 5/s).
// Both with the emulator's default rate limits. Reported: calls by route (the emulator's own count, so
// requests refused with 429 count too), requests refused by the rate limits, seconds to the answer.
//
//   NODE_EXTRA_CA_CERTS=.data/emulators/ca.pem npx tsx bench/cold-login-groups.ts [--aim-groups=2500] [--scim-groups=200] [--modes=aim,scim]
//   npm run bench -- cold-login-groups.ts
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from '../emulators/databricks/account.ts'
import { startStack, userToken, type BenchStack } from './lib/service.ts'
import { writeResult } from './lib/results.ts'
import { BENCH_APP, BENCH_SECRET, benchId, groupCountTenant, userInGroups } from './lib/tenants.ts'

const USAGE = 'bench/cold-login-groups.ts [--aim-groups=2500] [--scim-groups=200] [--modes=aim,scim]'
const flags = new Map(process.argv.slice(2).map(a => {
  const m = /^--([a-z-]+)=(.*)$/.exec(a)
  if (m === null || !['aim-groups', 'scim-groups', 'modes'].includes(m[1] as string)) throw new Error(`unknown argument ${a}\n${USAGE}`)
  return [m[1] as string, m[2] as string]
}))
const count = (name: string, fallback: number): number => {
  const n = Number(flags.get(name) ?? fallback)
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`)
  return n
}
const GROUPS = { aim: count('aim-groups', 2500), scim: count('scim-groups', 200) }
const MODES = (flags.get('modes') ?? 'aim,scim').split(',').map((m): 'aim' | 'scim' => {
  if (m !== 'aim' && m !== 'scim') throw new Error(`--modes: aim and/or scim, not ${m}`)
  return m
})

const DEADLINE_MS = 600_000
/** The service's default request deadline. */
const DEFAULT_DEADLINE_S = 10

interface Run {
  mode: 'aim' | 'scim'
  groups: number
  /** The groups were in the account before (a colleague signed in first). */
  existing: boolean
  cold: { seconds: number, calls: number, routes: Record<string, number>, refusedByRateLimit: number, access: string }
  warm: { seconds: number, calls: number }
  /** AIM: issue 13's goal, and the floor the API allows (1 resolve + ⌈G / 1000⌉ pages of at most 1000). */
  goal?: { calls: number, workspaceDecisionCalls: number, met: boolean, floor: number, atFloor: boolean }
}

/** The tenant, plus a colleague in every group the user is directly in (who signs in first when the groups are to exist). */
function tenantWithColleague (groups: number): ReturnType<typeof groupCountTenant> {
  const tenant = groupCountTenant([groups])
  const colleague = benchId('a2000000', 1)
  tenant.users.push({ id: colleague, userPrincipalName: 'colleague@bench.onmicrosoft.com', displayName: 'Colleague' })
  for (const g of tenant.groups) if (g.members.includes(userInGroups(0))) g.members.push(colleague)
  return tenant
}

async function measure (mode: 'aim' | 'scim', groups: number, existing = false): Promise<Run> {
  // Emulator rate limits at their defaults; the service's Databricks budgets at theirs. The request
  // deadline is raised so the whole wait is measured (past the default 10 s a caller gets 503 with
  // Retry-After while the work goes on, and its retry is answered from the kept result).
  const stack = await startStack(tenantWithColleague(groups), BENCH_APP, BENCH_SECRET, { REQUEST_TIMEOUT_MS: String(DEADLINE_MS) }, { mode, rateLimits: true })
  try {
    const user = userInGroups(0)
    // The group an admin assigned to the workspace (the top of the last nesting pair), already in the account.
    const assigned = benchId('c0000000', groups)
    const groupId = await provisionGroup(stack, mode, assigned, `Group 0-${groups}`)
    await admin(stack, 'PUT', `/api/2.0/accounts/${DEFAULT_ACCOUNT_ID}/workspaces/${DEFAULT_WORKSPACE_ID}/permissionassignments/principals/${groupId}`, { permissions: ['USER'] })
    const token = await userToken(stack, user)
    // "Existing groups": a colleague in the same groups signed in before, so the groups and their nesting
    // are in the account and only the new user and its own memberships remain to be written.
    if (existing) await login(stack, await userToken(stack, benchId('a2000000', 1)), groups)
    await control(stack, 'DELETE', '/calls')
    await control(stack, 'DELETE', '/databricks/rate-limits')
    await control(stack, 'PUT', '/databricks/rate-limits', { enabled: true })

    const cold = await login(stack, token, groups)
    const routes = await databricksRoutes(stack)
    const limits = await control(stack, 'GET', '/databricks/rate-limits') as { refused: Record<string, number> }
    await control(stack, 'DELETE', '/calls')
    const warm = await login(stack, token, groups)
    const warmCalls = Object.values(await databricksRoutes(stack)).reduce((a, b) => a + b, 0)

    const calls = Object.values(routes).reduce((a, b) => a + b, 0)
    const run: Run = {
      mode,
      groups,
      existing,
      cold: { seconds: cold.seconds, calls, routes, refusedByRateLimit: Object.values(limits.refused).reduce((a, b) => a + b, 0), access: cold.access },
      warm: { seconds: warm.seconds, calls: warmCalls }
    }
    if (mode === 'aim') {
      const workspaceDecisionCalls = Object.entries(routes).filter(([r]) => r.includes('/permissionassignments')).reduce((n, [, c]) => n + c, 0)
      const floor = 1 + Math.ceil(groups / 1000)
      run.goal = { calls: 3, workspaceDecisionCalls, met: calls - workspaceDecisionCalls <= 3, floor, atFloor: calls - workspaceDecisionCalls <= floor }
    }
    return run
  } finally {
    await stack.close()
  }
}

/** A cold or warm login with the workspace decision; seconds until the answer. */
async function login (stack: BenchStack, token: string, groups: number): Promise<{ seconds: number, access: string }> {
  const started = performance.now()
  const res = await stack.service.app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` }, payload: { workspaceId: DEFAULT_WORKSPACE_ID } })
  const seconds = Math.round(performance.now() - started) / 1000
  if (res.statusCode !== 200) throw new Error(`login: ${res.statusCode} ${res.body}`)
  const body = res.json() as { groupCount: number, databricks: { groups: unknown[] }, workspace: { decision: string, access: string } }
  if (body.groupCount !== groups || body.databricks.groups.length !== groups) throw new Error(`login: ${body.groupCount} groups, ${body.databricks.groups.length} in Databricks, expected ${groups}`)
  if (body.workspace.decision !== 'allow') throw new Error(`login: workspace ${body.workspace.decision}`)
  return { seconds, access: `${body.workspace.decision} (${body.workspace.access})` }
}

/** The assigned group in the account before the login: resolved (AIM) or created through SCIM. */
async function provisionGroup (stack: BenchStack, mode: 'aim' | 'scim', externalId: string, displayName: string): Promise<string> {
  if (mode === 'aim') {
    const body = await admin(stack, 'POST', `/api/2.0/identity/accounts/${DEFAULT_ACCOUNT_ID}/groups/resolve-by-external-id`, { external_id: externalId }) as { group: { group_id: string } }
    return body.group.group_id
  }
  const body = await admin(stack, 'POST', `/api/2.0/accounts/${DEFAULT_ACCOUNT_ID}/scim/v2/Groups`, { displayName, externalId }) as { id: string }
  return body.id
}

async function admin (stack: BenchStack, method: string, path: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${stack.emulator.origin}${path}`, { method, headers: { authorization: `Bearer ${DATABRICKS_ADMIN_PAT}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`)
  return await res.json()
}

async function control (stack: BenchStack, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${stack.emulator.origin}/_emulator${path}`, { method, ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) })
  if (!res.ok) throw new Error(`${method} /_emulator${path}: ${res.status} ${await res.text()}`)
  return res.status === 204 ? undefined : await res.json()
}

/** Databricks API calls the emulator received, by route pattern. */
async function databricksRoutes (stack: BenchStack): Promise<Record<string, number>> {
  const calls = await control(stack, 'GET', '/calls') as { routes: Record<string, number> }
  return Object.fromEntries(Object.entries(calls.routes).filter(([r]) => r.includes(' /api/')).sort(([a], [b]) => a.localeCompare(b)))
}

const runs: Run[] = []
const rows: Array<[string, string]> = []
const plan = MODES.flatMap(mode => [false, ...(mode === 'scim' ? [true] : [])].map(existing => ({ mode, existing })))
for (const { mode, existing } of plan) {
  const run = await measure(mode, GROUPS[mode], existing)
  const label = `${mode}: cold login, ${run.groups}${existing ? ' existing' : ''} groups`
  runs.push(run)
  const byRoute = Object.entries(run.cold.routes).map(([r, n]) => `${n}× ${r.replace('/api/2.0/identity/accounts/:accountId', '…identity').replace('/api/2.0/accounts/:accountId', '…account')}`).join(', ')
  const goal = run.goal === undefined
    ? ''
    : `; goal ≤ 3 + the workspace decision's ${run.goal.workspaceDecisionCalls}: ${run.goal.met ? 'met' : 'not met'} (floor with pages of ≤ 1000: 1 + ⌈${run.groups} / 1000⌉ = ${run.goal.floor}: ${run.goal.atFloor ? 'reached' : 'not reached'})`
  const late = run.cold.seconds > DEFAULT_DEADLINE_S ? ` (past the default ${DEFAULT_DEADLINE_S} s deadline: 503 and a retry)` : ''
  rows.push([label, `${run.cold.seconds} s to the workspace decision${late} (${run.cold.access}), ${run.cold.calls} Databricks calls (${run.cold.refusedByRateLimit} refused by the rate limits)${goal}`])
  rows.push([`${label}: calls by route`, byRoute])
  rows.push([`${label}: warm login`, `${run.warm.calls} Databricks calls, ${run.warm.seconds} s`])
}
writeResult('cold-login-groups', { runs }, rows)
