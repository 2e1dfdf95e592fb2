// Process entry: read the configuration, start the emulators in local mode, build the app, listen, and
// shut down gracefully (finish in-flight requests, then close upstream connections).
import closeWithGrace from 'close-with-grace'
import { ConfigError, isLocalMode, loadConfig, type Config } from './config.ts'
import { buildApp } from './app.ts'

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
  if (isLocalMode(config)) {
    // Imported lazily: production never loads the emulators.
    const { startEmulators } = await import('../emulators/server.ts')
    const emulators = await startEmulators({ port: config.EMULATORS_PORT })
    closers.push(emulators.close)
    console.warn([
      '',
      '*** LOCAL MODE: no ENTRA_TENANT_ID is set, so the service runs against the built-in emulators. ***',
      `    Emulated Entra ID and Microsoft Graph: ${emulators.origin} (CA certificate: ${emulators.caPath})`,
      `    Demo tenant: ${emulators.ctx.primaryTenantId}`,
      '    Set ENTRA_TENANT_ID (and NODE_ENV=production) to run against a real tenant.',
      ''
    ].join('\n'))
  }

  const app = await buildApp({ config })
  closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS }, async ({ err, signal }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
    for (const close of closers) await close()
  })
  await app.listen({ port: config.PORT, host: config.HOST })
}

await main()
