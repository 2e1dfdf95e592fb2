// Process entry: read the configuration, start the emulators in local mode, build the service, listen,
// and shut down gracefully (finish in-flight requests, then close upstream connections).
import closeWithGrace from 'close-with-grace'
import { ConfigError, isLocalMode, loadConfig, type Config } from './config.ts'
import { buildService } from './service.ts'
import type { LocalMode } from './local/local-mode.ts'

async function main (): Promise<void> {
  let config: Config
  try {
    config = loadConfig()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    console.error(err.message)
    process.exit(1)
  }

  let ca: string | undefined
  let local: LocalMode | undefined
  if (isLocalMode(config)) {
    // Imported lazily: production never loads the emulators.
    const { startLocalMode } = await import('./local/local-mode.ts')
    local = await startLocalMode(config)
    config = local.config
    ca = local.ca
    console.warn(local.banner)
  }

  const service = await buildService(config, { ca })
  closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS }, async ({ err, signal }) => {
    if (err !== undefined) service.app.log.error({ err }, 'shutting down after an error')
    else service.app.log.info({ signal }, 'shutting down')
    await service.close()
    await local?.close()
  })
  const url = await service.app.listen({ port: config.PORT, host: config.HOST })
  if (local !== undefined) console.warn(`\n${local.walkthrough(url).text}\n`)
}

await main()
