// Process entry: read the configuration, start the emulators in local mode, build the service, listen,
// and shut down gracefully (finish in-flight requests, then close upstream connections).
import closeWithGrace from 'close-with-grace'
import { ConfigError, isLocalMode, loadConfig, type Config } from './config.ts'
import { buildService } from './service.ts'

async function main (): Promise<void> {
  let config: Config
  try {
    config = loadConfig()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    console.error(err.message)
    process.exit(1)
  }

  const closers: Array<() => Promise<void>> = []
  let ca: string | undefined
  if (isLocalMode(config)) {
    // Imported lazily: production never loads the emulators.
    const { startEmulators } = await import('../emulators/server.ts')
    const demo = await import('../emulators/tenant/demo.ts')
    const { DEFAULT_ACCOUNT_ID } = await import('../emulators/databricks/account.ts')
    const emulators = await startEmulators({ port: config.EMULATORS_PORT })
    closers.push(emulators.close)
    ca = emulators.ca
    config = {
      ...config,
      ENTRA_TENANT_ID: demo.DEMO_TENANT_ID,
      ENTRA_CLIENT_ID: demo.DEMO_RESOLVER_APP_ID,
      ENTRA_CLIENT_SECRET: demo.DEMO_RESOLVER_SECRET,
      ENTRA_AUTHORITY_HOST: emulators.origin,
      GRAPH_BASE_URL: `${emulators.origin}/v1.0`,
      DATABRICKS_HOST: emulators.origin,
      DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID
    }
    console.warn([
      '',
      '*** LOCAL MODE: no ENTRA_TENANT_ID is set, so the service runs against the built-in emulators. ***',
      `    Emulated Entra ID, Microsoft Graph and Databricks: ${emulators.origin} (CA certificate: ${emulators.caPath})`,
      `    Databricks account: ${DEFAULT_ACCOUNT_ID}; logins are materialized there`,
      `    Demo tenant: ${demo.DEMO_TENANT_ID}; the service is the app ${demo.DEMO_RESOLVER_APP_ID}`,
      '    Set ENTRA_TENANT_ID (and NODE_ENV=production) to run against a real tenant.',
      ''
    ].join('\n'))
  }

  const service = await buildService(config, { ca })
  closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS }, async ({ err, signal }) => {
    if (err !== undefined) service.app.log.error({ err }, 'shutting down after an error')
    else service.app.log.info({ signal }, 'shutting down')
    await service.close()
    for (const close of closers) await close()
  })
  await service.app.listen({ port: config.PORT, host: config.HOST })
}

await main()
