// Shared by the AIM and workspace-assignment tests (not a test itself): the Databricks emulator with
// automatic identity management on, a DatabricksClient over HTTPS with the admin PAT, a
// DatabricksAimTarget and a WorkspaceAssignments on it, a movable clock for the caches' TTLs, and readers
// of the account state and of the Databricks calls the emulator received.
import type { Test } from 'tap'
import { startDatabricks, DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID, type Databricks } from './databricks.ts'
import { entraRequest, QUICK, smallTenant, T, type AccountState, type StatePrincipal } from './target.ts'
import { recorder, type Recorder } from './graph-directory.ts'
import type { TenantFixture } from '../../emulators/tenant/model.ts'
import type { MaterializeRequest } from '../../src/target/port.ts'
import { UpstreamClient, type UpstreamClientOptions } from '../../src/upstream/client.ts'
import { DatabricksClient, type DatabricksClientOptions } from '../../src/target/databricks-client.ts'
import { DatabricksAimTarget, type DatabricksAimTargetOptions } from '../../src/target/aim.ts'
import { WorkspaceAssignments, type WorkspaceAssignmentsOptions } from '../../src/target/assignments.ts'

export { T, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID }

export interface AimState extends AccountState {
  users: Array<StatePrincipal & { status?: string }>
  servicePrincipals: Array<StatePrincipal & { status?: string }>
  workspaces: Array<{ id: string, assignments: Array<{ principal: { id: string }, permissions: string[] }> }>
}

export interface AimEnv {
  db: Databricks
  fixture: TenantFixture
  client: DatabricksClient
  rec: Recorder
  /** A clock the caches read; `advance` moves it. */
  clock: { now: () => number, advance: (ms: number) => void }
  target: DatabricksAimTarget
  /** A new target on the same client and clock (another replica: nothing remembered). */
  aim: (options?: Partial<DatabricksAimTargetOptions>) => DatabricksAimTarget
  assignments: (options?: Partial<WorkspaceAssignmentsOptions>) => WorkspaceAssignments
  /** Databricks API calls (control calls excluded) since the last `resetCalls`, by route pattern. */
  dbCalls: () => { total: number, routes: Record<string, number> }
  resetCalls: () => void
  state: () => Promise<AimState>
  request: (principalId: string) => MaterializeRequest
  /** Assigns a principal to a workspace through the v1 API (empty permissions: removed). */
  assign: (principalId: string, permissions: string[], workspaceId?: string) => Promise<void>
}

export async function aimEnv (t: Test, options: { tenant?: TenantFixture, http?: Partial<UpstreamClientOptions>, client?: Partial<DatabricksClientOptions> } = {}): Promise<AimEnv> {
  const fixture = options.tenant ?? smallTenant()
  const db = await startDatabricks(t, { tenant: fixture })
  const on = await db.control('PUT', '/settings', { aimEnabled: true })
  if (on.status !== 200) throw new Error(`AIM on: ${on.status}`)
  const rec = recorder()
  const http = new UpstreamClient({ name: 'databricks', ca: db.ca, observer: rec, concurrency: 4, ...QUICK, ...options.http })
  const client = new DatabricksClient({ host: db.origin, accountId: DEFAULT_ACCOUNT_ID, token: DATABRICKS_ADMIN_PAT, http, writeBudgets: false, ...options.client })
  t.teardown(async () => { await client.close(); await http.close() })
  let offset = 0
  const clock = { now: () => Date.now() + offset, advance: (ms: number) => { offset += ms } }
  const aim = (o: Partial<DatabricksAimTargetOptions> = {}): DatabricksAimTarget => new DatabricksAimTarget({ client, clock, ...o })
  return {
    db,
    fixture,
    client,
    rec,
    clock,
    target: aim(),
    aim,
    assignments: (o = {}) => new WorkspaceAssignments({ client, clock, ...o }),
    dbCalls: () => {
      const routes = Object.fromEntries(Object.entries(db.ctx.calls.snapshot().routes).filter(([r]) => r.includes(' /api/')))
      return { total: Object.values(routes).reduce((a, b) => a + b, 0), routes }
    },
    resetCalls: () => { db.ctx.calls.reset() },
    state: async () => (await db.control('GET', '/state')).body as AimState,
    request: (principalId: string) => entraRequest(fixture, principalId),
    assign: async (principalId, permissions, workspaceId = DEFAULT_WORKSPACE_ID) => {
      const res = await db.api('PUT', `/api/2.0/accounts/${DEFAULT_ACCOUNT_ID}/workspaces/${workspaceId}/permissionassignments/principals/${principalId}`, { permissions })
      if (res.status !== 200) throw new Error(`assign ${principalId}: ${res.status} ${JSON.stringify(res.body)}`)
    }
  }
}
