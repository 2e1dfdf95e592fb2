// docker-compose.yml and the Dockerfile, proven without a container engine (none runs here). The static
// part checks them against the service's configuration schema (src/config.ts), so they cannot drift from
// what the service reads. The running part does what `docker compose up` would: each service's command
// as a process, with the environment compose would give it (the image's ENV, then the service's
// environment, interpolated), waiting for each dependency's healthcheck, then the local walk-through
// (src/local/walkthrough.ts) from the host across them. What differs from Docker is only what one host
// needs: service names resolve to 127.0.0.1 (a preload patches dns.lookup), each container port becomes
// a free port, 0.0.0.0 becomes 127.0.0.1, and each volume a temporary directory (the image's /app is
// this repository).
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'
import { Redis } from 'ioredis'
import { decodeJwt } from 'jose'
import { Agent, fetch } from 'undici'
import { ConfigSchema, isLocalMode, loadConfig } from '../../src/config.ts'
import { walkthroughSteps, type WalkthroughContext, type WalkthroughStep } from '../../src/local/walkthrough.ts'
import * as demo from '../../emulators/tenant/demo.ts'
import { DEFAULT_ACCOUNT_ID } from '../../emulators/databricks/account.ts'
import { DEMO_DASHBOARD } from '../../emulators/databricks/demo-workspace.ts'

interface Healthcheck {
  test: string | string[]
  interval?: string
  timeout?: string
  retries?: number
  start_period?: string
}

interface ComposeService {
  build?: unknown
  image?: string
  command?: string | string[]
  deploy?: { replicas?: number }
  ports?: string[]
  expose?: string[]
  environment?: Record<string, string | number | boolean | null> | string[]
  volumes?: string[]
  healthcheck?: Healthcheck
  depends_on?: string[] | Record<string, { condition?: string }>
}

interface Compose { services: Record<string, ComposeService>, volumes?: Record<string, unknown> }

const root = new URL('../../', import.meta.url)
const rootPath = fileURLToPath(root)
const composeText = await readFile(new URL('docker-compose.yml', root), 'utf8')
const compose = parse(composeText) as Compose
const dockerfile = await readFile(new URL('Dockerfile', root), 'utf8')
const envExample = await readFile(new URL('.env.example', root), 'utf8')
const packageJson = JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as { engines: { node: string }, scripts: Record<string, string> }
const configKeys = new Set(Object.keys(ConfigSchema.properties))
/** Fixed by the container, not configuration: it listens on every interface, on the port it publishes. */
const CONTAINER_FIXED = new Set(['HOST', 'PORT'])

// ---- what compose does with the file -----------------------------------------------------------------

/**
 * Compose's variable substitution: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty),
 * `${VAR-default}` (unset only), `${VAR:?error}`, `${VAR?error}`; an unset variable is empty.
 */
function interpolate (text: string, shell: Record<string, string>): string {
  return text.replace(/\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (all, braced: string | undefined, colon: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
      if (all === '$$') return '$'
      const name = braced ?? bare ?? ''
      const value = shell[name]
      const missing = value === undefined || (colon === ':' && value === '')
      if (op === '-') return missing ? arg ?? '' : value
      if (op === '?' && missing) throw new Error(`${name}: ${arg ?? 'required'}`)
      return value ?? ''
    })
}

/** The whole file interpolated, as `docker compose config` would show it. */
function resolved (shell: Record<string, string>): Compose {
  const walk = (v: unknown): unknown => typeof v === 'string'
    ? interpolate(v, shell)
    : Array.isArray(v) ? v.map(walk) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)])) : v
  return walk(compose) as Compose
}

/** The environment of a service as name → value, from either compose form (map or KEY=value list). */
function environmentOf (service: ComposeService): Record<string, string> {
  const env = service.environment ?? {}
  if (Array.isArray(env)) return Object.fromEntries(env.map(e => { const i = e.indexOf('='); return i < 0 ? [e, ''] : [e.slice(0, i), e.slice(i + 1)] }))
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]))
}

/** Container ports a service publishes ("ip:host:container", "host:container" or "container"). */
const containerPorts = (service: ComposeService): number[] => (service.ports ?? []).map(p => Number(String(p).split(':').at(-1)?.split('/')[0]))

/** The port a service listens on in its container: published, or only exposed to the compose network. */
const listenPort = (service: ComposeService): number | undefined => containerPorts(service)[0] ?? (service.expose?.[0] !== undefined ? Number(service.expose[0]) : undefined)

/** Named volumes a service mounts: volume → { path in the container, read-only }. */
function volumesOf (service: ComposeService): Map<string, { path: string, readOnly: boolean }> {
  return new Map((service.volumes ?? []).map(v => {
    const [name = '', path = '', mode = ''] = v.split(':')
    return [name, { path, readOnly: mode.split(',').includes('ro') }]
  }))
}

/** depends_on as service → condition (the list form means service_started). */
function dependenciesOf (service: ComposeService): Record<string, string> {
  const d = service.depends_on ?? {}
  return Array.isArray(d) ? Object.fromEntries(d.map(n => [n, 'service_started'])) : Object.fromEntries(Object.entries(d).map(([n, c]) => [n, c.condition ?? 'service_started']))
}

/** A healthcheck's command line: CMD runs as is, CMD-SHELL (or a plain string) through sh -c. */
function healthcheckArgv (h: Healthcheck): string[] {
  if (typeof h.test === 'string') return ['sh', '-c', h.test]
  const [kind, ...args] = h.test
  return kind === 'CMD-SHELL' ? ['sh', '-c', args.join(' ')] : args
}

// ---- the Dockerfile --------------------------------------------------------------------------------

/** Instructions in order, continuation lines joined. */
const instructions = dockerfile.replace(/\\\n/g, ' ').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  .map(l => { const [name = '', ...rest] = l.split(/\s+/); return { name: name.toUpperCase(), args: rest.join(' ') } })
/** A Dockerfile instruction's arguments (the last one wins, as in Docker). */
const instruction = (name: string): string | undefined => instructions.filter(i => i.name === name).at(-1)?.args
/** The image's ENV, as every container of it starts with. */
const imageEnv: Record<string, string> = Object.fromEntries(instructions.filter(i => i.name === 'ENV')
  .flatMap(i => [...i.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)].map(m => [m[1] ?? '', (m[2] ?? '').replace(/^"|"$/g, '')])))
const imageCommand = JSON.parse(instruction('CMD') ?? '[]') as string[]
const imageWorkdir = instruction('WORKDIR') ?? '/'

/** The walk-through of local mode, at the addresses compose publishes (docs/containers.md shows it). */
const composeWalkthrough = (c: Pick<WalkthroughContext, 'serviceUrl' | 'emulatorOrigin' | 'caPath' | 'resolverAppId'>): WalkthroughStep[] => walkthroughSteps({
  ...c,
  tenantId: demo.DEMO_TENANT_ID,
  cliAppId: demo.DEMO_CLI_APP_ID,
  user: { userPrincipalName: demo.DEMO_ALICE_UPN, password: demo.DEMO_PASSWORD },
  automation: { appId: demo.DEMO_ETL_APP_ID, secret: demo.DEMO_ETL_SECRET },
  group: { id: demo.DEMO_GROUPS.finance, displayName: 'Finance' },
  workspaceId: DEMO_DASHBOARD.workspaceId,
  dashboardId: DEMO_DASHBOARD.id,
  colleague: `bob.nguyen@${demo.DEMO_DOMAIN}`,
  newcomer: `grace.kim@${demo.DEMO_DOMAIN}`
})

// ---- the file itself -------------------------------------------------------------------------------

t.test('compose has three resolver replicas behind a load balancer, the emulators and Redis; only the balancer and the emulators publish a port, on loopback', async t => {
  t.same(Object.keys(compose.services).sort(), ['emulators', 'lb', 'redis', 'resolver'])
  const { resolver, emulators, redis, lb } = compose.services as Record<'resolver' | 'emulators' | 'redis' | 'lb', ComposeService>
  t.equal(resolver.build, '.')
  t.equal(resolver.deploy?.replicas, 3, 'three replicas')
  t.same(resolver.ports ?? [], [], 'the replicas publish nothing: they are reached through the balancer')
  t.equal(listenPort(resolver), 3000)
  t.equal(environmentOf(resolved({}).services.resolver as ComposeService).REPLICAS, '3', 'each replica knows its share of the budgets while Redis is away')
  t.match(lb.image, /^nginx:/)
  t.same(lb.ports, ['127.0.0.1:3000:8080'], 'the service is http://localhost:3000, through the balancer')
  t.same(dependenciesOf(lb), { resolver: 'service_healthy' }, 'the balancer starts once the replicas are healthy')
  const nginx = await readFile(new URL('deploy/nginx/nginx.conf', root), 'utf8')
  t.ok(volumesOf(lb).get('./deploy/nginx/nginx.conf')?.readOnly, 'the balancer reads deploy/nginx/nginx.conf')
  t.match(nginx, /server resolver:3000 resolve;/, 'its upstream is every replica of the resolver service, looked up again as they change')
  t.match(nginx, /listen 8080;/)
  t.same(containerPorts(emulators), [8443])
  t.same(redis.ports ?? [], [], 'Redis is reachable only inside the compose network')
  for (const p of [...lb.ports ?? [], ...emulators.ports ?? []]) t.match(p, /^127\.0\.0\.1:/, `${p}: published on the host's loopback only`)
  t.match(redis.image, /^redis:7-alpine$/)
  t.ok(emulators.build !== undefined || emulators.image === resolver.image, 'the emulators run from the same image')
  t.same(([] as string[]).concat(emulators.command ?? []).join(' ').replace(/^npm run /, ''), 'emulators')
  const env = environmentOf(emulators)
  t.equal(env.EMULATORS_HOST, '0.0.0.0')
  t.equal(env.EMULATORS_PORT, '8443')
  t.equal(env.EMULATORS_ORIGIN, 'https://emulators:8443', 'the emulators advertise the name the resolver calls them by')
  t.equal(env.EMULATORS_DEMO_WORKSPACE, 'true', 'with the dashboard the walk-through shares')
})

t.test('every configuration variable passes through to the resolver, and only those', async t => {
  const env = environmentOf(compose.services.resolver)
  t.equal(env.HOST, '0.0.0.0', 'listens on every interface in the container')
  t.equal(env.PORT, '3000')
  for (const name of configKeys) {
    if (CONTAINER_FIXED.has(name)) continue
    t.ok(name in env, `${name} is passed to the resolver`)
  }
  for (const [name, value] of Object.entries(env)) {
    t.ok(configKeys.has(name), `${name} is in ConfigSchema`)
    if (CONTAINER_FIXED.has(name)) continue
    // A pass-through names its own variable: ${NAME}, ${NAME:-default} or ${NAME-default}.
    t.match(value, new RegExp(`^\\$\\{${name}(?::?-[^}]*)?\\}$`), `${name} passes through \${${name}}`)
  }
  // Whatever the shell sets reaches the service as set.
  const shell = { LOG_LEVEL: 'debug', CACHE_ACL_TTL_SECONDS: '42', DATABRICKS_MODE: 'aim', METRICS_TOKEN: 'scrape-me' }
  const config = loadConfig(environmentOf(resolved(shell).services.resolver))
  t.match(config, { LOG_LEVEL: 'debug', CACHE_ACL_TTL_SECONDS: 42, DATABRICKS_MODE: 'aim', METRICS_TOKEN: 'scrape-me' })
})

t.test('with nothing set, the resolver is configured for the emulators service, never local mode', async t => {
  const file = resolved({})
  const env = environmentOf(file.services.resolver)
  const config = loadConfig(env)
  t.equal(config.NODE_ENV, 'production')
  t.notOk(isLocalMode(config), 'not local mode: no emulators of its own that nobody else can reach')
  const origin = environmentOf(file.services.emulators).EMULATORS_ORIGIN
  t.match(config, {
    ENTRA_TENANT_ID: demo.DEMO_TENANT_ID,
    ENTRA_CLIENT_ID: demo.DEMO_RESOLVER_APP_ID,
    ENTRA_CLIENT_SECRET: demo.DEMO_RESOLVER_SECRET,
    ENTRA_AUTHORITY_HOST: origin,
    GRAPH_BASE_URL: `${origin}/v1.0`,
    DATABRICKS_HOST: origin,
    DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
    REDIS_URL: 'redis://redis:6379'
  }, 'the demo tenant and account, on the one emulators origin')
  // The CA the resolver trusts is the one the emulators write: the same volume, read-only for the resolver.
  const caVolume = [...volumesOf(compose.services.resolver)].find(([, m]) => config.UPSTREAM_CA_FILE?.startsWith(`${m.path}/`))
  t.ok(caVolume, 'UPSTREAM_CA_FILE lies in a volume the resolver mounts')
  const [volume, mount] = caVolume ?? ['', { path: '', readOnly: false }]
  t.ok(mount.readOnly, 'mounted read-only')
  t.ok(volume in (compose.volumes ?? {}), `${volume} is a named volume`)
  const emulatorsMount = volumesOf(compose.services.emulators).get(volume)
  t.equal(emulatorsMount?.path, environmentOf(compose.services.emulators).EMULATORS_DATA_DIR, 'where the emulators write their PKI')
  t.equal(config.UPSTREAM_CA_FILE, `${emulatorsMount?.path ?? ''}/ca.pem`)
})

t.test('.env.example is a complete configuration for a real tenant, with no emulator default left', async t => {
  const assignments = new Map([...envExample.matchAll(/^([A-Z][A-Z0-9_]*)=(.*)$/gm)].map(m => [m[1] ?? '', m[2] ?? '']))
  const mentioned = new Set([...envExample.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map(m => m[1] ?? ''))
  for (const name of mentioned) t.ok(configKeys.has(name), `${name} is in ConfigSchema`)
  for (const name of configKeys) {
    if (CONTAINER_FIXED.has(name) || name === 'EMULATORS_PORT') continue
    t.ok(mentioned.has(name), `${name} is in .env.example`)
  }
  // Each demo default (${VAR-default}: replaced by any value set, even an empty one) is set in the example.
  const env = environmentOf(compose.services.resolver)
  for (const [name, value] of Object.entries(env)) {
    if (/^\$\{[A-Z0-9_]+-[^}]+\}$/.test(value)) t.ok(assignments.has(name), `${name} is assigned in .env.example`)
  }
  const real = environmentOf(resolved(Object.fromEntries(assignments)).services.resolver)
  const config = loadConfig(real)
  t.equal(config.NODE_ENV, 'production')
  t.equal(config.ENTRA_AUTHORITY_HOST, 'https://login.microsoftonline.com')
  t.equal(config.GRAPH_BASE_URL, 'https://graph.microsoft.com/v1.0')
  t.equal(config.UPSTREAM_CA_FILE, undefined, 'no emulators CA')
  t.equal(config.ENTRA_CLIENT_SECRET, undefined, 'no demo secret: the certificate is the credential')
  t.ok(config.ENTRA_CLIENT_CERTIFICATE_PATH !== undefined)
  for (const [name, value] of Object.entries(real)) t.notMatch(value, /emulators|jir8Q/, `${name} names nothing of the emulators`)
})

t.test('healthchecks gate start-up: each dependency is healthy before its dependants start', async t => {
  for (const [name, service] of Object.entries(compose.services)) {
    t.ok(service.healthcheck !== undefined, `${name} has a healthcheck`)
    for (const [dependency, condition] of Object.entries(dependenciesOf(service))) {
      t.equal(condition, 'service_healthy', `${name} waits for ${dependency} to be healthy`)
      t.ok(compose.services[dependency]?.healthcheck !== undefined, `${dependency} has a healthcheck to wait for`)
    }
  }
  t.same(Object.keys(dependenciesOf(compose.services.resolver)).sort(), ['emulators', 'redis'])
  t.match(healthcheckArgv(compose.services.resolver.healthcheck as Healthcheck).join(' '), /\/readyz/, 'the resolver is healthy once ready')
})

t.test('the Dockerfile runs npm start on a supported Node LTS, as a non-root user, on the published port', async t => {
  const from = instruction('FROM') ?? ''
  t.match(from, /^node:(22|24)-slim\b/, 'Node 22 or 24 (Node 20 reached its end of life in April 2026)')
  const major = Number(/^node:(\d+)/.exec(from)?.[1])
  t.match(packageJson.engines.node, /^>=\d+/)
  t.ok(major >= Number(/^>=(\d+)/.exec(packageJson.engines.node)?.[1]), `the image's Node ${major} satisfies engines.node ${packageJson.engines.node}`)
  t.same(imageCommand, ['npm', 'start'])
  t.match(instruction('USER'), /^(?!root\b|0\b)\S+/)
  const exposed = (instruction('EXPOSE') ?? '').split(/\s+/).map(p => Number(p.split('/')[0]))
  t.ok(exposed.includes(listenPort(compose.services.resolver as ComposeService) ?? 0), 'EXPOSE the port the resolver listens on')
  for (const port of containerPorts(compose.services.emulators)) t.ok(exposed.includes(port), `EXPOSE ${port}`)
  t.equal(imageEnv.HOST, '0.0.0.0')
  t.equal(imageEnv.NODE_ENV, 'production', 'an image started with no configuration names what is missing instead of running local mode')
  t.match(dockerfile, /^RUN npm ci\b/m)
  // Mount points of named volumes exist in the image, so Docker gives them the unprivileged user's ownership.
  for (const service of Object.values(compose.services).filter(s => s.build !== undefined)) {
    for (const { path } of volumesOf(service).values()) {
      const inApp = relative(imageWorkdir, path)
      const made = instructions.filter(i => i.name === 'RUN' && /^mkdir -p\s/.test(i.args)).flatMap(i => i.args.split(/\s+/).slice(2))
      t.ok(made.includes(inApp), `${path} is created by the image's user`)
    }
  }
  // What npm start runs is in the image.
  const entry = /tsx (\S+)/.exec(packageJson.scripts.start)?.[1] ?? ''
  t.ok(entry.startsWith('src/') && /^COPY\b.*\bsrc\b/m.test(dockerfile), `the image holds ${entry}`)
})

t.test('docs/containers.md shows the walk-through at the published addresses, as the running test runs it', async t => {
  const doc = await readFile(new URL('docs/containers.md', root), 'utf8')
  const published = (service: ComposeService): string => String(service.ports?.[0] ?? '').split(':').slice(-2, -1)[0] ?? ''
  const steps = composeWalkthrough({
    serviceUrl: `http://localhost:${published(compose.services.lb as ComposeService)}`,
    emulatorOrigin: `https://localhost:${published(compose.services.emulators)}`,
    caPath: 'compose-ca.pem',
    resolverAppId: demo.DEMO_RESOLVER_APP_ID
  })
  for (const [i, step] of steps.entries()) t.ok(doc.includes(`# ${i + 1}. ${step.title}\n${step.curl}\n`), `step ${i + 1} is in the doc as printed`)
  t.match(doc, /docker compose cp emulators:\/app\/\.data\/emulators\/ca\.pem compose-ca\.pem/)
})

t.test('.dockerignore keeps local state and tooling out of the image', async t => {
  const ignored = (await readFile(new URL('.dockerignore', root), 'utf8')).split('\n').map(l => l.trim())
  for (const entry of ['node_modules', '.git', '.data', '.env']) t.ok(ignored.includes(entry), `${entry} is ignored`)
  t.notOk(ignored.includes('src') || ignored.includes('emulators'), 'the sources are not ignored')
})

// ---- docker compose up, without Docker -------------------------------------------------------------

const nginxConf = await readFile(new URL('deploy/nginx/nginx.conf', root), 'utf8')

/** nginx's part, per request, over the upstream's replicas in turn (argv: its port, then theirs). */
const BALANCER_STAND_IN = `
const http = require('node:http')
const [listen, ...backends] = process.argv.slice(1).map(Number)
let next = 0
http.createServer((req, res) => {
  const port = backends[next++ % backends.length]
  const upstream = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, answer => {
    res.writeHead(answer.statusCode, answer.headers)
    answer.pipe(res)
  })
  upstream.on('error', () => { res.writeHead(502); res.end() })
  req.pipe(upstream)
}).listen(listen, '127.0.0.1')
`

/** Container ports of images not built here (what their Dockerfile EXPOSEs). */
const IMAGE_PORTS: Record<string, number> = { 'redis:7-alpine': 6379 }

async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  server.close()
  await once(server, 'close')
  return port
}

/** Resolves the compose services' names to 127.0.0.1 in every Node process of the stack. */
function hostsPreload (names: string[]): string {
  return `import dns from 'node:dns'
const hosts = new Set(${JSON.stringify(names)})
const lookup = dns.lookup
dns.lookup = function (hostname, options, callback) {
  if (typeof options === 'function') { callback = options; options = {} }
  if (!hosts.has(hostname)) return lookup.call(this, hostname, options, callback)
  if (typeof options === 'object' && options !== null && options.all) process.nextTick(callback, null, [{ address: '127.0.0.1', family: 4 }])
  else process.nextTick(callback, null, '127.0.0.1', 4)
}
const lookupAsync = dns.promises.lookup
dns.promises.lookup = async (hostname, options) => hosts.has(hostname)
  ? (typeof options === 'object' && options !== null && options.all ? [{ address: '127.0.0.1', family: 4 }] : { address: '127.0.0.1', family: 4 })
  : await lookupAsync(hostname, options)
`
}

interface Plan {
  /** The process: the service's name, or `<service>-<n>` for each of its replicas. */
  name: string
  service: string
  argv: string[]
  cwd: string
  env: Record<string, string>
  healthcheck?: { argv: string[], timeoutMs: number }
  hostPort: number
}

interface Running extends Plan {
  child: ChildProcess
  output: () => string
  exited: Promise<number | null>
}

const seconds = (d: string | undefined, fallback: number): number => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(d ?? '')
  return m === null ? fallback : Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm']
}

/**
 * Each service as compose would run it, on this host: environment = the image's ENV, then the service's
 * (already interpolated); names and ports rewritten as described at the top of the file.
 */
async function plan (file: Compose, dirs: { volumes: Map<string, string>, home: string, preload: string }): Promise<Plan[]> {
  // One host port per replica; a name:port another service uses reaches the first (Docker's DNS would pick one).
  const hostPorts = new Map<string, { container: number, hosts: number[] }>()
  for (const [name, s] of Object.entries(file.services)) {
    const container = listenPort(s) ?? IMAGE_PORTS[s.image ?? ''] ?? 0
    const hosts: number[] = []
    for (let i = 0; i < (s.deploy?.replicas ?? 1); i++) hosts.push(await freePort())
    hostPorts.set(name, { container, hosts })
  }
  const rename = (value: string): string => {
    let v = value
    for (const [name, { container, hosts }] of hostPorts) v = v.replace(new RegExp(`(?<![\\w.-])${name}:${container}(?!\\d)`, 'g'), `${name}:${hosts[0] ?? 0}`)
    return v
  }
  return Object.entries(file.services).flatMap(([name, s]) => (hostPorts.get(name)?.hosts ?? []).map((host, replica, all) => {
    const { container } = hostPorts.get(name) ?? { container: 0 }
    const built = s.build !== undefined
    // Paths in the container → here: each volume its temporary directory, the image's workdir this repository.
    const mounts = [...volumesOf(s)].map(([volume, m]) => [m.path, dirs.volumes.get(volume) ?? ''] as const)
    if (built) mounts.push([imageWorkdir, rootPath.replace(/\/$/, '')])
    mounts.sort((a, b) => b[0].length - a[0].length)
    const mapPaths = (value: string): string => {
      for (const [inside, outside] of mounts) if (value === inside || value.startsWith(`${inside}/`)) return outside + value.slice(inside.length)
      return value
    }
    const env = Object.fromEntries(Object.entries({ ...(built ? imageEnv : {}), ...environmentOf(s) }).map(([k, v]) => {
      if (v === String(container)) return [k, String(host)] // the variable the process listens by
      if (v === '0.0.0.0') return [k, '127.0.0.1'] // every interface of the container: its loopback here
      return [k, mapPaths(rename(v))]
    }))
    let argv = ([] as string[]).concat(s.command ?? (built ? imageCommand : []))
    let check = s.healthcheck !== undefined ? healthcheckArgv(s.healthcheck).map(rename) : undefined
    if (s.image?.startsWith('redis:') === true) {
      argv = [...argv, '--port', String(host), '--bind', '127.0.0.1']
      check = check?.map(a => a.replace(/\bredis-cli\b/g, `redis-cli -p ${host}`))
    }
    if (s.image?.startsWith('nginx:') === true) {
      // nginx is not here: a stand-in spreads requests over the replicas of its upstream, one each in turn.
      const upstream = /server ([\w-]+):(\d+)/.exec(nginxConf)?.[1] ?? ''
      argv = [process.execPath, '-e', BALANCER_STAND_IN, String(host), ...(hostPorts.get(upstream)?.hosts ?? []).map(String)]
      check = [process.execPath, '-e', `require('node:net').connect(${host}, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => process.exit(1))`]
    }
    const volumeCwd = mounts.find(([inside]) => inside === '/data')?.[1] // the redis image's WORKDIR
    return {
      name: all.length > 1 ? `${name}-${replica + 1}` : name,
      service: name,
      argv,
      cwd: built ? rootPath : volumeCwd ?? dirs.home,
      env: { PATH: process.env.PATH ?? '', HOME: dirs.home, NODE_OPTIONS: `--import ${dirs.preload}`, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...env },
      ...(check !== undefined ? { healthcheck: { argv: check, timeoutMs: seconds(s.healthcheck?.timeout, 30_000) } } : {}),
      hostPort: host
    }
  }))
}

function start (p: Plan): Running {
  const [command = '', ...args] = p.argv
  // A process group of its own, so stopping it stops npm's children too.
  const child = spawn(command, args, { cwd: p.cwd, env: p.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
  return { ...p, child, output: () => out, exited }
}

/** Stops the service's process group (the one this test started): SIGTERM, as `docker compose down`, then a sweep. */
async function stop (r: Running): Promise<void> {
  const group = r.child.pid
  if (group === undefined) return
  const signal = (name: NodeJS.Signals): void => { try { process.kill(-group, name) } catch {} }
  signal('SIGTERM')
  const kill = setTimeout(() => { signal('SIGKILL') }, 15_000)
  await r.exited
  clearTimeout(kill)
  signal('SIGKILL') // whatever of the group outlived its leader
}

/** Runs the healthcheck until it passes, as Docker does; fails when the service exits first (bounded by tap's timeout). */
async function healthy (r: Running): Promise<void> {
  const check = r.healthcheck
  if (check === undefined) return
  const [command = '', ...args] = check.argv
  for (;;) {
    if (r.child.exitCode !== null || r.child.signalCode !== null) throw new Error(`${r.name} exited (${String(r.child.exitCode ?? r.child.signalCode)}) before it was healthy:\n${r.output()}`)
    const passed = await new Promise<boolean>(resolve => {
      execFile(command, args, { cwd: r.cwd, env: r.env, timeout: check.timeoutMs }, err => { resolve(err === null) })
    })
    if (passed) return
    // Docker waits `interval` (5 s here) between checks; a second is enough and spares the CPU.
    await new Promise(resolve => setTimeout(resolve, 1000))
  }
}

t.test('docker compose up, without Docker: every service healthy in order, then the walk-through across them', async t => {
  const file = resolved({}) // nothing set in the shell: the demo stack
  const work = await mkdtemp(join(tmpdir(), 'jir-compose-'))
  t.teardown(async () => { await rm(work, { recursive: true, force: true }) })
  const volumes = new Map<string, string>()
  for (const volume of Object.keys(file.volumes ?? {})) {
    const dir = join(work, 'volumes', volume)
    await mkdir(dir, { recursive: true })
    volumes.set(volume, dir)
  }
  const home = join(work, 'home')
  await mkdir(home)
  const preload = join(work, 'hosts.mjs')
  await writeFile(preload, hostsPreload(Object.keys(file.services)))
  const plans = await plan(file, { volumes, home, preload })
  const byService = (service: string): Plan[] => plans.filter(p => p.service === service)

  // Never the repository's own PKI: other test processes trust that CA.
  const emulatorsPlan = byService('emulators')[0]
  t.ok(emulatorsPlan?.env.EMULATORS_DATA_DIR?.startsWith(work), 'the emulators write their PKI into the volume')
  if (emulatorsPlan?.env.EMULATORS_DATA_DIR?.startsWith(work) !== true) return

  // Start in dependency order, each service (every replica) once its dependencies meet their condition.
  const running = new Map<string, Running[]>()
  t.teardown(async () => { for (const r of [...running.values()].flat().reverse()) await stop(r) })
  const pending = new Set(Object.keys(file.services))
  while (pending.size > 0) {
    const next = [...pending].find(n => Object.keys(dependenciesOf(file.services[n] as ComposeService)).every(d => running.has(d)))
    if (next === undefined) throw new Error(`a dependency cycle among ${[...pending].join(', ')}`)
    for (const [dependency, condition] of Object.entries(dependenciesOf(file.services[next] as ComposeService))) {
      if (condition === 'service_healthy') for (const r of running.get(dependency) ?? []) await healthy(r)
    }
    running.set(next, byService(next).map(start))
    pending.delete(next)
  }
  for (const r of [...running.values()].flat()) await healthy(r)
  t.pass('every service is healthy')

  const replicas = running.get('resolver') ?? []
  t.equal(replicas.length, 3, 'three resolver replicas')
  const resolver = replicas[0] as Running
  const lb = running.get('lb')?.[0] as Running
  const emulators = running.get('emulators')?.[0] as Running
  const redis = running.get('redis')?.[0] as Running
  t.notMatch(resolver.output(), /LOCAL MODE/, 'the resolver uses the emulators service, not emulators of its own')
  t.match(emulators.output(), new RegExp(`Demo workspace : ${DEMO_DASHBOARD.workspaceId}: dashboard '${DEMO_DASHBOARD.displayName}' ${DEMO_DASHBOARD.id}`))

  // The walk-through from the host: the resolver's published port, tokens from the emulators' published
  // port by the name the host knows them by (localhost), trusting the CA from the volume.
  const caPath = join(volumes.get('emulators-ca') ?? '', 'ca.pem')
  const ca = await readFile(caPath, 'utf8')
  const dispatcher = new Agent({ connect: { ca } })
  t.teardown(async () => { await dispatcher.close() })
  const steps = composeWalkthrough({
    serviceUrl: `http://localhost:${lb.hostPort}`,
    emulatorOrigin: `https://localhost:${emulators.hostPort}`,
    caPath,
    resolverAppId: resolver.env.ENTRA_CLIENT_ID ?? ''
  })
  const call = async (step: Pick<WalkthroughStep, 'method' | 'url' | 'form' | 'json'>, token?: string): Promise<{ status: number, body: Record<string, any> }> => {
    const headers: Record<string, string> = token !== undefined ? { authorization: `Bearer ${token}` } : {}
    let body: string | URLSearchParams | undefined
    if (step.form !== undefined) body = new URLSearchParams(step.form)
    if (step.json !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(step.json)
    }
    const res = await fetch(step.url, { method: step.method, headers, body, dispatcher })
    return { status: res.status, body: await res.json() as Record<string, any> }
  }
  const tokens: Record<string, string> = {}
  const answers: Array<Record<string, any>> = []
  for (const [i, step] of steps.entries()) {
    const { status, body } = await call(step, step.bearer !== undefined ? tokens[step.bearer] : undefined)
    if (!t.ok(status === 200 || status === 202, `${i + 1}. ${step.title}: ${status}`)) t.comment(JSON.stringify(body), resolver.output())
    if (step.sets !== undefined) tokens[step.sets] = String(body.access_token)
    answers.push(body)
  }
  const [, login, colleague, share, newcomer, , registration] = answers as Array<Record<string, any>>
  t.equal(decodeJwt(tokens.TOKEN ?? '').iss, `https://emulators:${emulators.hostPort}/${demo.DEMO_TENANT_ID}/v2.0`,
    'tokens fetched through localhost are issued by the advertised origin, the one the resolver trusts')
  t.match(login, { principal: { userPrincipalName: demo.DEMO_ALICE_UPN }, databricks: { principalId: String }, workspace: { decision: 'allow' } },
    'the login is resolved from Graph and materialized in the Databricks account, both behind https://emulators')
  t.match(colleague, { level: 'CAN_EDIT' })
  t.match(JSON.stringify(colleague?.grants), /through group 'Engineering' \(Data Platform ⊂ Engineering\), inherited from \/directories\//)
  t.match(share, { grant: { level: 'CAN_READ', principalName: `grace.kim@${demo.DEMO_DOMAIN}`, changed: true } })
  t.match(newcomer, { level: 'CAN_READ' })

  // The registration job runs to its end, and it is kept in the compose Redis.
  const jobUrl = `http://127.0.0.1:${lb.hostPort}/v1/registrations/${String(registration?.id)}`
  let job: Record<string, any> = {}
  for (;;) {
    job = (await call({ method: 'GET', url: jobUrl }, tokens.ADMIN_TOKEN)).body
    if (job.status === 'completed' || job.status === 'failed') break
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  t.match(job, { status: 'completed', total: 6, registered: 6, failed: 0 })
  const client = new Redis({ port: redis.hostPort, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 })
  t.teardown(() => { client.disconnect() })
  await client.connect()
  t.equal(await client.exists(`jir:registrations:job:${String(registration?.id)}`), 1, 'the job is in Redis (REDIS_URL reached redis by its service name)')
  // Through the balancer, every replica served part of the walk-through (its own access lines).
  const served = replicas.map(r => r.output().split('\n').filter(line => line.includes('"url":"/v1/')).length)
  t.ok(served.every(n => n > 0), `every replica answered requests: ${served.join(', ')}`)
})
