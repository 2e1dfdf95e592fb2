// The separate-process layout of the throughput benchmarks, as a user deploys the service: the emulated
// Entra ID, Graph and Databricks in one process (emulators/cli.ts, as `npm run emulators` starts them),
// the service in another, started by its production entry (src/server.ts) and configured only by its
// environment — defaults included: LOG_LEVEL `info`, one line per request, written to /dev/null as a
// container's log driver would take it —, the bare-fastify baseline in a third (bench/bare-server.ts), and
// the load generator in the benchmark's own process. Nothing is shared but the loopback interface.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Agent, fetch as fetchWithCa } from 'undici'
import { ensurePki } from '../../emulators/pki.ts'
import { DEMO_RESOLVER_APP_ID, DEMO_RESOLVER_SECRET, DEMO_TENANT_ID } from '../../emulators/tenant/demo.ts'

const ROOT = join(import.meta.dirname, '..', '..')

export interface DeployedSetup {
  /** The emulators' environment besides their port (e.g. EMULATORS_DEMO_WORKSPACE). */
  emulatorsEnv?: Record<string, string>
  /** The service's environment besides Entra's (the demo tenant's) and its port, given the emulators' origin. */
  serviceEnv?: (origin: string) => Record<string, string>
  /** Whose token the requests carry (a demo tenant user). */
  principalId: string
  method: 'GET' | 'POST'
  /** The path (with its query) both servers answer. */
  path: string
  /** The baseline's route: its URL pattern and the name of its response schema in src/http/schemas.ts. */
  bare: { url: string, schema: string }
}

export interface Deployed {
  serviceUrl: string
  bareUrl: string
  token: string
  /** The warm answer, which the baseline returns as its constant. */
  body: unknown
  pids: { service: number, bare: number }
  close: () => Promise<void>
}

export async function startDeployed (setup: DeployedSetup): Promise<Deployed> {
  const { caPath } = await ensurePki()
  const dispatcher = new Agent({ connect: { ca: readFileSync(caPath, 'utf8') } })
  const dir = await mkdtemp(join(tmpdir(), 'jit-bench-deployed-'))
  const children: ChildProcess[] = []
  const close = async (): Promise<void> => {
    for (const child of children.reverse()) await stop(child)
    await dispatcher.close()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const base = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir, TMPDIR: tmpdir() }
    const emulators = launch(children, ['emulators/cli.ts'], { ...base, EMULATORS_PORT: String(await freePort()), EMULATORS_HOST: '127.0.0.1', ...setup.emulatorsEnv }, 'pipe')
    const banner = await firstLine(emulators)
    const origin = /listening on (https:\/\/\S+)/.exec(banner)?.[1]
    if (origin === undefined) throw new Error(`the emulators did not say where they listen: ${banner}`)
    emulators.stdout?.resume()
    // As in the shared layout: Graph's quota is not what is measured (the warm path never calls it).
    await fetchWithCa(`${origin}/_emulator/graph/throttle`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ disabled: true }), dispatcher })

    const port = await freePort()
    const service = launch(children, ['src/server.ts'], {
      ...base,
      HOST: '127.0.0.1',
      PORT: String(port),
      ENTRA_TENANT_ID: DEMO_TENANT_ID,
      ENTRA_CLIENT_ID: DEMO_RESOLVER_APP_ID,
      ENTRA_CLIENT_SECRET: DEMO_RESOLVER_SECRET,
      ENTRA_AUTHORITY_HOST: origin,
      GRAPH_BASE_URL: `${origin}/v1.0`,
      UPSTREAM_CA_FILE: caPath,
      REGISTRATIONS_DIR: join(dir, 'registrations'),
      SYNC_DIR: join(dir, 'sync'),
      ...setup.serviceEnv?.(origin)
    }, 'ignore')
    const serviceUrl = `http://127.0.0.1:${port}`
    await ready(service, `${serviceUrl}/readyz`)

    const tokenResponse = await fetchWithCa(`${origin}/_emulator/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tenantId: DEMO_TENANT_ID, principalId: setup.principalId, audience: `api://${DEMO_RESOLVER_APP_ID}` }),
      dispatcher
    })
    const { access_token: token } = await tokenResponse.json() as { access_token: string }
    // Warm the caches: the benchmark measures the warm path.
    const warm = await fetch(`${serviceUrl}${setup.path}`, { method: setup.method, headers: { authorization: `Bearer ${token}` } })
    if (warm.status !== 200) throw new Error(`warm-up ${setup.method} ${setup.path} failed: ${warm.status} ${await warm.text()}`)
    const body = await warm.json() as unknown

    const bare = launch(children, ['bench/bare-server.ts'], { ...base, BARE_ROUTE: JSON.stringify({ method: setup.method, url: setup.bare.url, schema: setup.bare.schema }) }, 'pipe', 'pipe')
    bare.stdin?.end(JSON.stringify(body))
    const { url: bareUrl } = JSON.parse(await firstLine(bare)) as { url: string }
    return { serviceUrl, bareUrl, token, body, pids: { service: pidOf(service), bare: pidOf(bare) }, close }
  } catch (err) {
    await close()
    throw err
  }
}

export function launch (children: ChildProcess[], args: string[], env: Record<string, string>, stdout: 'pipe' | 'ignore', stdin: 'pipe' | 'ignore' = 'ignore'): ChildProcess {
  // BENCH_PROF_DIR: the service and the baseline write V8 CPU profiles there when they exit (where the time goes).
  const profile = process.env.BENCH_PROF_DIR !== undefined && args[0] !== 'emulators/cli.ts' ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF_DIR}`] : []
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', ...args], { cwd: ROOT, env, stdio: [stdin, stdout, 'inherit'] })
  children.push(child)
  return child
}

function pidOf (child: ChildProcess): number {
  if (child.pid === undefined) throw new Error('a child process did not start')
  return child.pid
}

async function firstLine (child: ChildProcess): Promise<string> {
  if (child.stdout === null) throw new Error('no stdout to read')
  return await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', resolve)
    child.once('exit', code => { reject(new Error(`${child.spawnargs.slice(-1)[0] ?? 'a child'} exited with ${String(code)} before it was ready`)) })
  })
}

/** Until the service answers its readiness probe (signing keys loaded), at most a minute. */
export async function ready (child: ChildProcess, url: string): Promise<void> {
  const until = Date.now() + 60_000
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`the service exited with ${child.exitCode} before it was ready`)
    const status = await fetch(url).then(r => r.status, () => 0)
    if (status === 200) return
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`the service was not ready within a minute (${url})`)
}

export async function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise(resolve => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => { resolve(port) })
    })
  })
}
