// Shared by the target/ tests (not a test itself): the Databricks emulator in SCIM mode (AIM off, so
// account groups show only the memberships written through SCIM), a DatabricksClient and a
// DatabricksScimTarget pointed at it over HTTPS, Entra's answer for a principal computed from the tenant
// fixture (what the resolver would hand the target), and readers of the account state.
import type { Test } from 'tap'
import { startDatabricks, DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, type Databricks } from './databricks.ts'
import { smallTenant, T } from './tenant.ts'
import { recorder, type Recorder } from './graph-directory.ts'
import type { TenantFixture } from '../../emulators/tenant/model.ts'
import type { DirectoryPrincipal, GroupRef } from '../../src/directory/port.ts'
import type { MaterializeRequest } from '../../src/target/port.ts'
import { UpstreamClient, type UpstreamClientOptions } from '../../src/upstream/client.ts'
import { DatabricksClient, type DatabricksClientOptions } from '../../src/target/databricks-client.ts'
import { DatabricksScimTarget, type DatabricksScimTargetOptions } from '../../src/target/scim.ts'

export { T, smallTenant, DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID }

/**
 * Short waits: a Retry-After up to 2 s is sat out, backoff ≤ 50 ms. The per-attempt timeout is generous:
 * no test here proves a timeout with it, and on a loaded machine a slow answer must not turn into a retry
 * (nor, four of them, into "Databricks is unavailable").
 */
export const QUICK: Partial<UpstreamClientOptions> = {
  retry: { maxRetries: 3, baseDelayMs: 10, maxDelayMs: 50, maxRetryAfterMs: 2_000 },
  timeoutMs: 60_000
}

export interface ScimEnv {
  db: Databricks
  fixture: TenantFixture
  http: UpstreamClient
  client: DatabricksClient
  target: DatabricksScimTarget
  rec: Recorder
  /** Databricks API calls the emulator received since the last `resetCalls` (control calls excluded). */
  dbCalls: () => { total: number, routes: Record<string, number> }
  resetCalls: () => void
  state: () => Promise<AccountState>
  /** Entra's answer for a principal of the fixture, as the resolver hands it to the target. */
  request: (principalId: string) => MaterializeRequest
  /** A new target over the same client (another replica: nothing remembered). */
  replica: (options?: Partial<DatabricksScimTargetOptions>) => DatabricksScimTarget
}

export interface StateRef { id: string, kind?: string, name?: string, externalId?: string | null, source?: string }
export interface StatePrincipal { id: string, externalId: string | null, displayName: string, userName?: string, applicationId?: string, active?: boolean, groups: StateRef[], members?: StateRef[] }
export interface AccountState { users: StatePrincipal[], servicePrincipals: StatePrincipal[], groups: StatePrincipal[], rateLimits: { refused: Record<string, number> } }

export interface EnvOptions {
  tenant?: TenantFixture
  /** Keep the emulator's rate limits on (default off). */
  rateLimits?: boolean
  http?: Partial<UpstreamClientOptions>
  client?: Partial<DatabricksClientOptions>
  target?: Partial<DatabricksScimTargetOptions>
}

export async function scimEnv (t: Test, options: EnvOptions = {}): Promise<ScimEnv> {
  const fixture = options.tenant ?? smallTenant()
  const db = await startDatabricks(t, { tenant: fixture, rateLimits: options.rateLimits === true })
  const aim = await db.control('PUT', '/settings', { aimEnabled: false })
  if (aim.status !== 200) throw new Error(`AIM off: ${aim.status}`)
  const rec = recorder()
  const http = new UpstreamClient({ name: 'databricks', ca: db.ca, observer: rec, concurrency: 4, ...QUICK, ...options.http })
  const client = new DatabricksClient({ host: db.origin, accountId: DEFAULT_ACCOUNT_ID, token: DATABRICKS_ADMIN_PAT, http, writeBudgets: false, ...options.client })
  t.teardown(async () => { await client.close(); await http.close() })
  const replica = (o: Partial<DatabricksScimTargetOptions> = {}): DatabricksScimTarget => new DatabricksScimTarget({ client, ...options.target, ...o })
  const dbCalls = (): { total: number, routes: Record<string, number> } => {
    const routes = Object.fromEntries(Object.entries(db.ctx.calls.snapshot().routes).filter(([r]) => r.includes(' /api/')))
    return { total: Object.values(routes).reduce((a, b) => a + b, 0), routes }
  }
  return {
    db,
    fixture,
    http,
    client,
    target: replica(),
    rec,
    dbCalls,
    resetCalls: () => { db.ctx.calls.reset() },
    state: async () => (await db.control('GET', '/state')).body as AccountState,
    request: (principalId: string) => entraRequest(fixture, principalId),
    replica
  }
}

/** What Entra says of a principal of the fixture: itself, its transitive groups, direct groups, parents. */
export function entraRequest (fixture: TenantFixture, principalId: string): MaterializeRequest {
  const user = fixture.users.find(u => u.id === principalId)
  const sp = fixture.servicePrincipals.find(s => s.id === principalId)
  let principal: DirectoryPrincipal
  if (user !== undefined) {
    principal = {
      kind: 'user',
      id: user.id,
      tenantId: fixture.tenantId,
      displayName: user.displayName,
      userPrincipalName: user.userPrincipalName,
      mail: user.mail ?? null,
      userType: user.userPrincipalName.includes('#EXT#') ? 'Guest' : 'Member',
      accountEnabled: user.accountEnabled !== false
    }
  } else if (sp !== undefined) {
    principal = { kind: 'servicePrincipal', id: sp.id, tenantId: fixture.tenantId, displayName: sp.displayName, appId: sp.appId, accountEnabled: sp.accountEnabled !== false }
  } else {
    throw new Error(`no principal ${principalId} in the fixture`)
  }
  const parentsOf = (id: string): string[] => fixture.groups.filter(g => (g.members ?? []).includes(id)).map(g => g.id)
  const directGroupIds = parentsOf(principalId)
  const closure = new Set<string>()
  const queue = [...directGroupIds]
  while (queue.length > 0) {
    const g = queue.shift() as string
    if (closure.has(g)) continue
    closure.add(g)
    queue.push(...parentsOf(g))
  }
  const groups: GroupRef[] = fixture.groups.filter(g => closure.has(g.id)).map(g => ({ id: g.id, displayName: g.displayName, securityEnabled: g.securityEnabled !== false }))
  const parents = new Map(groups.map(g => [g.id, parentsOf(g.id)]))
  return { tenantId: fixture.tenantId, principal, groups, directGroupIds, parents }
}

/**
 * The nesting Databricks holds, in Entra ids: for the principal and every group of the request, the
 * externalIds of its direct parents (sorted), and the names of parents without externalId prefixed `internal:`.
 */
export function databricksNesting (state: AccountState, request: MaterializeRequest): Record<string, string[]> {
  const all = [...state.users, ...state.servicePrincipals, ...state.groups]
  const byExternal = new Map(all.filter(p => p.externalId !== null).map(p => [p.externalId as string, p]))
  const out: Record<string, string[]> = {}
  for (const id of [request.principal.id, ...request.groups.map(g => g.id)]) {
    const p = byExternal.get(id)
    out[id] = p === undefined ? ['<missing>'] : p.groups.map(g => g.externalId ?? `internal:${g.name ?? g.id}`).sort()
  }
  return out
}

/** The same from Entra's side (what `databricksNesting` must equal). */
export function entraNesting (request: MaterializeRequest): Record<string, string[]> {
  const out: Record<string, string[]> = { [request.principal.id]: [...request.directGroupIds].sort() }
  for (const g of request.groups) out[g.id] = [...(request.parents.get(g.id) ?? [])].sort()
  return out
}

/** A fixture with one more user in the given groups (and optionally more groups). */
export function withUser (fixture: TenantFixture, user: { id: string, userPrincipalName: string, displayName: string, mail?: string }, groupIds: string[]): TenantFixture {
  return {
    ...fixture,
    users: [...fixture.users, user],
    groups: fixture.groups.map(g => groupIds.includes(g.id) ? { ...g, members: [...(g.members ?? []), user.id] } : g)
  }
}
