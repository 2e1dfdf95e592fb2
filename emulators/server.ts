// The emulators: one HTTPS origin serving the Entra STS, Microsoft Graph and the control API.
// `buildEmulator` assembles an instance without listening (tests may inject); `startEmulators` listens.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomUUID } from 'node:crypto'
import { ensurePki, defaultDataDir } from './pki.ts'
import { EmulatorClock } from './clock.ts'
import { KeyStore } from './sts/keys.ts'
import { CallCounter } from './calls.ts'
import { FaultInjector, type Fault } from './faults.ts'
import type { Directory, TenantFixture } from './tenant/model.ts'
import { demoTenant } from './tenant/demo.ts'
import { type EmulatorContext, type EmulatorSettings, newDirectory } from './context.ts'
import { controlRoutes } from './control/routes.ts'
import { stsRoutes } from './sts/routes.ts'
import { graphRoutes } from './graph/routes.ts'
import { databricksRoutes } from './databricks/routes.ts'
import { seedDemoWorkspace } from './databricks/demo-workspace.ts'

export interface EmulatorOptions extends EmulatorSettings {
  /** Tenants to load at start; the first is the primary one. Default: the demo tenant. */
  tenants?: TenantFixture[]
  /** Where the CA and server certificate live. Default `.data/emulators`. */
  dataDir?: string
  /** Pino log level for the emulators' own log; default silent. */
  logLevel?: string
  /**
   * The origin clients reach the emulators at, when it is not the address they listen on: issuers,
   * discovery documents and next links name it, and the server certificate names its host (a compose
   * service such as `https://emulators:8443`). Default: `https://<host>:<port>` as listened on, with
   * `localhost` for a wildcard host (0.0.0.0, ::).
   */
  origin?: string
  /** Seed the demo workspace (the dashboard local mode shares); needs the demo tenant. */
  demoWorkspace?: boolean
}

export interface Emulator {
  app: FastifyInstance
  ctx: EmulatorContext
  origin: string
  caPath: string
  ca: string
  close: () => Promise<void>
}

/** An advertised origin as `https://host[:port]`, or an error naming what is wrong with it. */
export function parseOrigin (origin: string): { origin: string, hostname: string } {
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    throw new Error(`the emulators' origin '${origin}' is not a URL (expected https://host:port)`)
  }
  if (url.protocol !== 'https:' || url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new Error(`the emulators' origin '${origin}' must be https://host[:port], with no path`)
  }
  return { origin: url.origin, hostname: url.hostname.replace(/^\[(.*)\]$/, '$1') }
}

export async function buildEmulator (options: EmulatorOptions = {}): Promise<{ app: FastifyInstance, ctx: EmulatorContext, caPath: string, ca: string }> {
  const advertised = options.origin !== undefined ? parseOrigin(options.origin) : undefined
  const pki = await ensurePki(options.dataDir ?? defaultDataDir, advertised !== undefined ? [advertised.hostname] : [])
  const clock = new EmulatorClock()
  const tenants = new Map<string, Directory>()
  const ctx: EmulatorContext = {
    origin: advertised?.origin ?? 'https://127.0.0.1:8443',
    clock,
    keys: await KeyStore.create(),
    tenants,
    primaryTenantId: '',
    calls: new CallCounter(),
    faults: new FaultInjector(),
    settings: { tokenLifetimeSeconds: options.tokenLifetimeSeconds },
    rewriters: [],
    errorShapes: [],
    directoryListeners: new Set(),
    replicationLagMs: 0
  }
  for (const fixture of options.tenants ?? [demoTenant()]) {
    const d = newDirectory(ctx, fixture)
    tenants.set(d.tenantId, d)
  }
  ctx.primaryTenantId = [...tenants.keys()][0] ?? ''
  // Lagged writes and deleted-item purges fall due by the clock: when it jumps, and before each request.
  const settle = (): void => { for (const d of tenants.values()) d.settle() }
  const stopSettling = clock.onMove(settle)

  const app = Fastify({
    https: { key: pki.key, cert: pki.cert },
    logger: { level: options.logLevel ?? 'silent' },
    bodyLimit: 1024 * 1024,
    rewriteUrl: (req) => ctx.rewriters.reduce((url, rewrite) => rewrite(url), req.url ?? '/'),
    genReqId: () => randomUUID(),
    // Hung connections (the `timeout` fault) must not hold up close().
    forceCloseConnections: true,
    // Guest UPNs (`…#EXT#@…`) in a path segment can be long.
    routerOptions: { maxParamLength: 1024 },
    // Errors fastify raises before routing (bad percent-encoding, …) still get the area's error shape.
    frameworkErrors: (err, request, res) => {
      const reply = res as unknown as FastifyReply
      const path = (request.url ?? '/').split('?')[0] ?? '/'
      const status = err.statusCode ?? 400
      const shape = ctx.errorShapes.find(s => s.prefix.test(path))
      const { headers, body } = shape?.shape(status, 'BadRequest', err.message, request.id, request.headers) ?? { body: { error: { code: 'BadRequest', message: err.message } } }
      reply.code(status).headers(headers ?? {}).send(body)
    },
    // The control API rejects unknown fields (a typo must not pass silently) instead of dropping them.
    ajv: { customOptions: { removeAdditional: false } }
  })

  // Faults and call counts apply to the emulated services, never to the control API.
  app.addHook('onRequest', async (request, reply) => {
    settle()
    const path = request.url.split('?')[0] ?? '/'
    if (path.startsWith('/_emulator')) return
    ctx.calls.count(`${request.method} ${request.routeOptions.url ?? path}`)
    const fault = ctx.faults.match(request.method, path)
    if (fault !== undefined) await applyFault(ctx, fault, request, reply, path)
  })

  app.addHook('onClose', async () => { stopSettling() })

  await app.register(controlRoutes, { ctx })
  await app.register(stsRoutes, { ctx })
  await app.register(graphRoutes, { ctx, ca: pki.ca })
  await app.register(databricksRoutes, { ctx })
  // Seeded before the server listens: whoever finds it up finds the workspace too.
  if (options.demoWorkspace === true) await seedDemoWorkspace(app, ctx)
  return { app, ctx, caPath: pki.caPath, ca: pki.ca }
}

async function applyFault (ctx: EmulatorContext, fault: Fault, request: FastifyRequest, reply: FastifyReply, path: string): Promise<void> {
  if (fault.latencyMs !== undefined) await sleep(fault.latencyMs)
  // Requests that came through $batch (inject) have no socket to drop: they get a 504 instead.
  const socket = request.raw.socket as typeof request.raw.socket | null
  if ((fault.reset === true || fault.timeout === true) && socket?.remoteAddress !== undefined && request.headers['x-emulator-batch'] === undefined) {
    reply.hijack()
    if (fault.reset === true) {
      socket.destroy()
    } else {
      const timer = setTimeout(() => socket.destroy(), fault.hangMs ?? 60_000)
      socket.once('close', () => clearTimeout(timer))
    }
    return
  }
  const status = fault.status ?? (fault.reset === true || fault.timeout === true ? 504 : undefined)
  if (status === undefined) return
  const shape = ctx.errorShapes.find(s => s.prefix.test(path))
  const message = status === 429 ? 'Please retry again later.' : `Injected fault: HTTP ${status}.`
  const code = status === 429 ? 'TooManyRequests' : status === 503 ? 'serviceNotAvailable' : 'generalException'
  const { headers, body } = shape?.shape(status, code, message, request.id, request.headers) ?? { body: { error: { code, message } } }
  if (fault.retryAfter !== undefined) reply.header('retry-after', String(fault.retryAfter))
  await reply.code(status).headers(headers ?? {}).send(body)
}

/**
 * Starts the emulators on `https://host:port` (port 0 picks a free one). The origin is `options.origin`
 * when given, else the address listened on (`localhost` for a wildcard host, which no client can call).
 */
export async function startEmulators (options: EmulatorOptions & { port?: number, host?: string } = {}): Promise<Emulator> {
  const { app, ctx, caPath, ca } = await buildEmulator(options)
  const host = options.host ?? '127.0.0.1'
  await app.listen({ port: options.port ?? 8443, host })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : options.port
  const named = host === '0.0.0.0' || host === '::' || host === '' ? 'localhost' : host
  ctx.origin = options.origin !== undefined ? parseOrigin(options.origin).origin : `https://${named.includes(':') ? `[${named}]` : named}:${String(port)}`
  return { app, ctx, origin: ctx.origin, caPath, ca, close: async () => await app.close() }
}
