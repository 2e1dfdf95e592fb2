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
    try {
      local = await startLocalMode(config)
    } catch (err) {
      exitIfCannotListen(err, 'the emulators', 'EMULATORS_PORT', config.EMULATORS_PORT, '127.0.0.1')
      throw err
    }
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
  let url: string
  try {
    url = await service.app.listen({ port: config.PORT, host: config.HOST })
  } catch (err) {
    exitIfCannotListen(err, 'the service', 'PORT', config.PORT, config.HOST, 'HOST')
    throw err
  }
  if (local !== undefined) console.warn(`\n${local.walkthrough(url).text}\n`)
}

/**
 * A port that is taken (or not ours to take) is an operator's mistake, not a crash: one line naming the
 * variable to change, and exit 1. Other errors are left to the caller.
 */
function exitIfCannotListen (err: unknown, what: string, portVariable: string, port: number, host: string, hostVariable?: string): void {
  const code = (err as { code?: unknown }).code
  const hint = code === 'EADDRINUSE'
    ? `port ${port} on ${host} is already in use: set ${portVariable} to a free port, or stop the process that holds it`
    : code === 'EACCES'
      ? `port ${port} on ${host} needs privileges this process lacks: set ${portVariable} to a port above 1023`
      : code === 'EADDRNOTAVAIL' && hostVariable !== undefined
        ? `${host} is not an address of this machine: set ${hostVariable} to one of its addresses (0.0.0.0 for all)`
        : undefined
  if (hint === undefined) return
  console.error(`Cannot start ${what}: ${hint}.`)
  process.exit(1)
}

await main()
