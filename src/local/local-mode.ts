// Local mode: with no Entra configuration, the service runs against the built-in emulators (Entra ID,
// Microsoft Graph and Databricks on one HTTPS origin) with the demo tenant, and a demo workspace holding
// a dashboard to share. Imported lazily by server.ts and the demo: production never loads the emulators.
import { Agent, fetch } from 'undici'
import type { Config } from '../config.ts'
import { startEmulators } from '../../emulators/server.ts'
import * as demo from '../../emulators/tenant/demo.ts'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from '../../emulators/databricks/account.ts'
import { formatWalkthrough, walkthroughSteps, type WalkthroughContext, type WalkthroughStep } from './walkthrough.ts'

export interface LocalMode {
  /** The configuration pointed at the emulators. */
  config: Config
  /** The emulators' CA (PEM), to trust for outbound HTTPS. */
  ca: string
  banner: string
  /** The walk-through once the service listens at `serviceUrl`. */
  walkthrough: (serviceUrl: string) => { steps: WalkthroughStep[], text: string }
  close: () => Promise<void>
}

const DASHBOARD = { folder: '/Shared/Revenue', displayName: 'Revenue Pipeline' }
const BOB_UPN = `bob.nguyen@${demo.DEMO_DOMAIN}`
const GRACE_UPN = `grace.kim@${demo.DEMO_DOMAIN}`

export async function startLocalMode (config: Config): Promise<LocalMode> {
  const emulators = await startEmulators({ port: config.EMULATORS_PORT })
  const origin = emulators.origin
  try {
    const dashboardId = await seedDemoWorkspace(origin, emulators.ca)
    const context = (serviceUrl: string): WalkthroughContext => ({
      serviceUrl,
      emulatorOrigin: origin,
      caPath: emulators.caPath,
      tenantId: demo.DEMO_TENANT_ID,
      cliAppId: demo.DEMO_CLI_APP_ID,
      resolverAppId: demo.DEMO_RESOLVER_APP_ID,
      user: { userPrincipalName: demo.DEMO_ALICE_UPN, password: demo.DEMO_PASSWORD },
      automation: { appId: demo.DEMO_ETL_APP_ID, secret: demo.DEMO_ETL_SECRET },
      group: { id: demo.DEMO_GROUPS.finance, displayName: 'Finance' },
      workspaceId: DEFAULT_WORKSPACE_ID,
      dashboardId,
      colleague: BOB_UPN,
      newcomer: GRACE_UPN
    })
    return {
      config: {
        ...config,
        ENTRA_TENANT_ID: demo.DEMO_TENANT_ID,
        ENTRA_CLIENT_ID: demo.DEMO_RESOLVER_APP_ID,
        ENTRA_CLIENT_SECRET: demo.DEMO_RESOLVER_SECRET,
        ENTRA_AUTHORITY_HOST: origin,
        GRAPH_BASE_URL: `${origin}/v1.0`,
        DATABRICKS_HOST: origin,
        DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID
      },
      ca: emulators.ca,
      banner: [
        '',
        '*** LOCAL MODE: no ENTRA_TENANT_ID is set, so the service runs against the built-in emulators. ***',
        `    Emulated Entra ID, Microsoft Graph and Databricks: ${origin} (CA certificate: ${emulators.caPath})`,
        `    Databricks account: ${DEFAULT_ACCOUNT_ID}; logins are materialized there`,
        `    Demo tenant: ${demo.DEMO_TENANT_ID}; the service is the app ${demo.DEMO_RESOLVER_APP_ID}`,
        `    Demo workspace ${DEFAULT_WORKSPACE_ID}: dashboard '${DASHBOARD.displayName}' (${dashboardId}) in ${DASHBOARD.folder}, managed by ${demo.DEMO_ALICE_UPN}`,
        '    Set ENTRA_TENANT_ID (and NODE_ENV=production) to run against a real tenant.',
        ''
      ].join('\n'),
      walkthrough: (serviceUrl) => {
        const steps = walkthroughSteps(context(serviceUrl))
        return { steps, text: formatWalkthrough(steps) }
      },
      close: emulators.close
    }
  } catch (err) {
    await emulators.close()
    throw err
  }
}

/**
 * The demo workspace: assigned to "Databricks Users" (Alice and Bob are in it through Data Platform, Grace
 * is not); a folder granting CAN_EDIT to Engineering (Bob is in it through Data Platform); a dashboard in
 * it published with embedded credentials, managed by Alice. Alice and Engineering are put in
 * the account first (resolve by external id, as automatic identity management does), since an ACL can
 * only name principals the account has.
 */
async function seedDemoWorkspace (origin: string, ca: string): Promise<string> {
  const dispatcher = new Agent({ connect: { ca } })
  const call = async (method: string, path: string, body: unknown, token?: string): Promise<Record<string, unknown>> => {
    const res = await fetch(origin + path, {
      method,
      dispatcher,
      headers: { 'content-type': 'application/json', ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body)
    })
    const json = await res.json() as Record<string, unknown>
    if (!res.ok) throw new Error(`local mode: seeding the demo workspace failed at ${method} ${path}: ${res.status} ${JSON.stringify(json)}`)
    return json
  }
  try {
    const identity = `/api/2.0/identity/accounts/${DEFAULT_ACCOUNT_ID}`
    await call('POST', `${identity}/users/resolve-by-external-id`, { external_id: demo.DEMO_ALICE_ID }, DATABRICKS_ADMIN_PAT)
    await call('POST', `${identity}/groups/resolve-by-external-id`, { external_id: demo.DEMO_GROUPS.engineering }, DATABRICKS_ADMIN_PAT)
    const users = await call('POST', `${identity}/groups/resolve-by-external-id`, { external_id: demo.DEMO_GROUPS.databricksUsers }, DATABRICKS_ADMIN_PAT)
    const ws = `/_emulator/databricks/workspaces/${DEFAULT_WORKSPACE_ID}`
    await call('PUT', `${ws}/assignments`, { principalId: String((users.group as { group_id: string }).group_id), permissions: ['USER'] })
    const folder = await call('POST', `${ws}/objects`, { type: 'directories', path: DASHBOARD.folder })
    const dashboard = await call('POST', `${ws}/dashboards`, { displayName: DASHBOARD.displayName, parentPath: DASHBOARD.folder, published: { embedCredentials: true } })
    const dashboardId = dashboard.dashboard_id as string
    await call('PUT', `${ws}/acls`, { type: 'directories', id: folder.id, access_control_list: [{ group_name: 'Engineering', permission_level: 'CAN_EDIT' }] })
    await call('PUT', `${ws}/acls`, { type: 'dashboards', id: dashboardId, mode: 'merge', access_control_list: [{ user_name: demo.DEMO_ALICE_UPN, permission_level: 'CAN_MANAGE' }] })
    return dashboardId
  } finally {
    await dispatcher.close()
  }
}
