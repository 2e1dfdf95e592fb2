// Local mode: with no Entra configuration, the service runs against the built-in emulators (Entra ID,
// Microsoft Graph and Databricks on one HTTPS origin) with the demo tenant, and the demo workspace holding
// a dashboard to share (seeded by the emulators, as `npm run emulators` and compose seed it, so its ids
// are the same everywhere). Imported lazily by server.ts and the demo: production never loads the emulators.
import { accessSync, constants, statSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import type { Config } from '../config.ts'
import { startEmulators } from '../../emulators/server.ts'
import * as demo from '../../emulators/tenant/demo.ts'
import { DEFAULT_ACCOUNT_ID } from '../../emulators/databricks/account.ts'
import { DEMO_DASHBOARD } from '../../emulators/databricks/demo-workspace.ts'
import { formatWalkthrough, walkthroughSteps, type WalkthroughContext, type WalkthroughStep } from './walkthrough.ts'

export interface LocalMode {
  /** The configuration pointed at the emulators. */
  config: Config
  /** The emulators' CA (PEM), to trust for outbound HTTPS. */
  ca: string
  banner: string
  /** The walk-through once the service listens at `serviceUrl` (`jq`: as found on PATH at start, unless given). */
  walkthrough: (serviceUrl: string, options?: { jq?: boolean }) => { steps: WalkthroughStep[], text: string }
  close: () => Promise<void>
}

const BOB_UPN = `bob.nguyen@${demo.DEMO_DOMAIN}`
const GRACE_UPN = `grace.kim@${demo.DEMO_DOMAIN}`

export interface LocalModeOptions {
  /** Pipe the walk-through's JSON answers through `jq .`. Default: whether jq is on PATH at start. */
  jq?: boolean
}

/**
 * Starts the emulators with the demo tenant and the demo workspace. Everything the banner and the
 * walk-through print is fixed: the demo tenant's literal ids and secrets, the workspace and its
 * dashboard id (emulators/databricks/demo-workspace.ts), the CA kept under .data/, the configured ports.
 * Only the signing keys are new on each start, so tokens are fetched again (step 1 of the walk-through).
 */
export async function startLocalMode (config: Config, options: LocalModeOptions = {}): Promise<LocalMode> {
  const emulators = await startEmulators({ port: config.EMULATORS_PORT, demoWorkspace: true })
  const origin = emulators.origin
  const jq = options.jq ?? onPath('jq')
  const context = (serviceUrl: string, jq: boolean): WalkthroughContext => ({
    serviceUrl,
    emulatorOrigin: origin,
    caPath: emulators.caPath,
    tenantId: demo.DEMO_TENANT_ID,
    cliAppId: demo.DEMO_CLI_APP_ID,
    resolverAppId: demo.DEMO_RESOLVER_APP_ID,
    user: { userPrincipalName: demo.DEMO_ALICE_UPN, password: demo.DEMO_PASSWORD },
    automation: { appId: demo.DEMO_ETL_APP_ID, secret: demo.DEMO_ETL_SECRET },
    group: { id: demo.DEMO_GROUPS.finance, displayName: 'Finance' },
    workspaceId: DEMO_DASHBOARD.workspaceId,
    dashboardId: DEMO_DASHBOARD.id,
    colleague: BOB_UPN,
    newcomer: GRACE_UPN,
    jq
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
      `    Demo workspace ${DEMO_DASHBOARD.workspaceId}: dashboard '${DEMO_DASHBOARD.displayName}' (${DEMO_DASHBOARD.id}) in ${DEMO_DASHBOARD.folder}, managed by ${DEMO_DASHBOARD.manager}`,
      '    Set ENTRA_TENANT_ID (and NODE_ENV=production) to run against a real tenant.',
      ''
    ].join('\n'),
    walkthrough: (serviceUrl, options = {}) => {
      const pretty = options.jq ?? jq
      const steps = walkthroughSteps(context(serviceUrl, pretty))
      return { steps, text: formatWalkthrough(steps, { jq: pretty }) }
    },
    close: emulators.close
  }
}

/** Whether an executable of this name is in a directory of PATH. */
export function onPath (command: string, path = process.env.PATH ?? ''): boolean {
  return path.split(delimiter).some(dir => {
    if (dir === '') return false
    try {
      accessSync(join(dir, command), constants.X_OK)
      return statSync(join(dir, command)).isFile()
    } catch {
      return false
    }
  })
}
