// The demo workspace, for emulators that run apart from the service (`npm run emulators` with
// EMULATORS_DEMO_WORKSPACE, the compose `emulators` service): the same state local mode seeds, with a
// fixed dashboard id so a walk-through can name it. Seeded through the emulators' own APIs (in-process
// requests, which count as loopback), so it is held to the rules any caller is.
//
// Workspace 3141592653589793 is assigned to "Databricks Users" (Alice and Bob are in it through Data
// Platform, Grace is not); the folder /Shared/Revenue grants CAN_EDIT to Engineering (Bob is in it through
// Data Platform); the dashboard in it is published with embedded credentials and managed by Alice.
import type { FastifyInstance } from 'fastify'
import type { EmulatorContext } from '../context.ts'
import { DEMO_ALICE_ID, DEMO_ALICE_UPN, DEMO_GROUPS, DEMO_TENANT_ID } from '../tenant/demo.ts'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from './account.ts'

export const DEMO_DASHBOARD = Object.freeze({
  workspaceId: DEFAULT_WORKSPACE_ID,
  /** Lakeview dashboard ids are 32 hex digits. */
  id: '01ef7d3a5b9c4e2f8a1b6c0d9e8f7a6b',
  displayName: 'Revenue Pipeline',
  folder: '/Shared/Revenue',
  manager: DEMO_ALICE_UPN
})

export async function seedDemoWorkspace (app: FastifyInstance, ctx: EmulatorContext): Promise<void> {
  if (!ctx.tenants.has(DEMO_TENANT_ID)) throw new Error(`the demo workspace needs the demo tenant (${DEMO_TENANT_ID}), which is not loaded`)
  const call = async (method: 'POST' | 'PUT', url: string, payload: Record<string, unknown>, token?: string): Promise<Record<string, unknown>> => {
    const res = await app.inject({ method, url, payload, headers: token !== undefined ? { authorization: `Bearer ${token}` } : {} })
    if (res.statusCode >= 300) throw new Error(`seeding the demo workspace failed at ${method} ${url}: ${res.statusCode} ${res.body}`)
    return res.json()
  }
  // An ACL can only name principals the account has: resolve them by external id, as AIM does.
  const identity = `/api/2.0/identity/accounts/${DEFAULT_ACCOUNT_ID}`
  await call('POST', `${identity}/users/resolve-by-external-id`, { external_id: DEMO_ALICE_ID }, DATABRICKS_ADMIN_PAT)
  await call('POST', `${identity}/groups/resolve-by-external-id`, { external_id: DEMO_GROUPS.engineering }, DATABRICKS_ADMIN_PAT)
  const users = await call('POST', `${identity}/groups/resolve-by-external-id`, { external_id: DEMO_GROUPS.databricksUsers }, DATABRICKS_ADMIN_PAT)
  const ws = `/_emulator/databricks/workspaces/${DEMO_DASHBOARD.workspaceId}`
  await call('PUT', `${ws}/assignments`, { principalId: String((users.group as { group_id: string }).group_id), permissions: ['USER'] })
  const folder = await call('POST', `${ws}/objects`, { type: 'directories', path: DEMO_DASHBOARD.folder })
  await call('POST', `${ws}/dashboards`, {
    displayName: DEMO_DASHBOARD.displayName,
    parentPath: DEMO_DASHBOARD.folder,
    dashboardId: DEMO_DASHBOARD.id,
    published: { embedCredentials: true }
  })
  await call('PUT', `${ws}/acls`, { type: 'directories', id: String(folder.id), access_control_list: [{ group_name: 'Engineering', permission_level: 'CAN_EDIT' }] })
  await call('PUT', `${ws}/acls`, { type: 'dashboards', id: DEMO_DASHBOARD.id, mode: 'merge', access_control_list: [{ user_name: DEMO_DASHBOARD.manager, permission_level: 'CAN_MANAGE' }] })
}
