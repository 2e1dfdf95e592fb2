// No container engine runs here: the compose file and the Dockerfile are checked against the service's
// configuration schema (src/config.ts) instead, so they cannot drift from what the service reads.
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { parse } from 'yaml'
import { ConfigSchema } from '../../src/config.ts'

interface ComposeService {
  build?: unknown
  image?: string
  command?: string | string[]
  ports?: string[]
  environment?: Record<string, string | number | boolean | null> | string[]
}

const root = new URL('../../', import.meta.url)
const compose = parse(await readFile(new URL('docker-compose.yml', root), 'utf8')) as { services: Record<string, ComposeService> }
const dockerfile = await readFile(new URL('Dockerfile', root), 'utf8')
const configKeys = new Set(Object.keys(ConfigSchema.properties))

/** The environment of a service as name → value, from either compose form (map or KEY=value list). */
function environmentOf (service: ComposeService): Record<string, string> {
  const env = service.environment ?? {}
  if (Array.isArray(env)) return Object.fromEntries(env.map(e => { const i = e.indexOf('='); return i < 0 ? [e, ''] : [e.slice(0, i), e.slice(i + 1)] }))
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]))
}

/** Container ports a service publishes ("host:container" or "container"). */
const containerPorts = (service: ComposeService): number[] => (service.ports ?? []).map(p => Number(String(p).split(':').at(-1)?.split('/')[0]))

/** A Dockerfile instruction's arguments (the last one wins, as in Docker). */
const instruction = (name: string): string | undefined =>
  [...dockerfile.matchAll(new RegExp(`^${name}\\s+(.+)$`, 'gim'))].at(-1)?.[1]?.trim()

t.test('compose has the resolver, the emulators and Redis on their ports', async t => {
  t.same(Object.keys(compose.services).sort(), ['emulators', 'redis', 'resolver'])
  const { resolver, emulators, redis } = compose.services
  t.equal(resolver.build, '.')
  t.same(containerPorts(resolver), [3000])
  t.same(containerPorts(emulators), [8443])
  t.same(containerPorts(redis), [6379])
  t.match(redis.image, /^redis:7-alpine$/)
  t.ok(emulators.build !== undefined || emulators.image === resolver.image, 'the emulators run from the same image')
  t.same(([] as string[]).concat(emulators.command ?? []).join(' ').replace(/^npm run /, ''), 'emulators')
  t.equal(environmentOf(emulators).EMULATORS_HOST, '0.0.0.0')
  t.equal(environmentOf(emulators).EMULATORS_PORT, '8443')
})

t.test('every resolver variable is one the configuration schema reads', async t => {
  const env = environmentOf(compose.services.resolver)
  t.equal(env.HOST, '0.0.0.0', 'listens on every interface in the container')
  t.equal(env.PORT ?? '3000', '3000')
  for (const name of ['ENTRA_TENANT_ID', 'ENTRA_CLIENT_ID', 'ENTRA_CLIENT_SECRET', 'DATABRICKS_HOST', 'DATABRICKS_ACCOUNT_ID', 'DATABRICKS_TOKEN']) {
    t.ok(name in env, `${name} is passed to the resolver`)
  }
  for (const [name, value] of Object.entries(env)) {
    t.ok(configKeys.has(name), `${name} is in ConfigSchema`)
    // A pass-through names its own variable: ${NAME} or ${NAME:-default}.
    const reference = /^\$\{([A-Z0-9_]+)(?::?-[^}]*)?\}$/.exec(value)
    if (reference !== null) t.equal(reference[1], name, `${name} passes through \${${name}}`)
  }
})

t.test('the Dockerfile runs npm start as a non-root user on the published port', async t => {
  t.match(instruction('FROM'), /^node:20-slim\b/)
  t.same(JSON.parse(instruction('CMD') ?? 'null'), ['npm', 'start'])
  t.match(instruction('USER'), /^(?!root\b|0\b)\S+/)
  const exposed = (instruction('EXPOSE') ?? '').split(/\s+/).map(p => Number(p.split('/')[0]))
  for (const port of containerPorts(compose.services.resolver)) t.ok(exposed.includes(port), `EXPOSE ${port}`)
  for (const port of containerPorts(compose.services.emulators)) t.ok(exposed.includes(port), `EXPOSE ${port}`)
  t.match(dockerfile, /^ENV[\s\S]*\bHOST=0\.0\.0\.0\b/m)
  t.match(dockerfile, /^RUN npm ci\b/m)
  // What npm start runs is in the image.
  const start = (JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as { scripts: Record<string, string> }).scripts.start
  const entry = /tsx (\S+)/.exec(start)?.[1] ?? ''
  t.ok(entry.startsWith('src/') && /^COPY\b.*\bsrc\b/m.test(dockerfile), `the image holds ${entry}`)
})

t.test('.dockerignore keeps local state and tooling out of the image', async t => {
  const ignored = (await readFile(new URL('.dockerignore', root), 'utf8')).split('\n').map(l => l.trim())
  for (const entry of ['node_modules', '.git', '.data']) t.ok(ignored.includes(entry), `${entry} is ignored`)
  t.notOk(ignored.includes('src') || ignored.includes('emulators'), 'the sources are not ignored')
})
