// deploy/kubernetes/: every variable the manifests set is one the service reads (src/config.ts), the
// ConfigMap and the Secret together are a configuration the service starts with, the probes call routes
// the service really serves, and the Service, PodDisruptionBudget and Deployment select the same pods.
import { access, readdir, readFile } from 'node:fs/promises'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { ConfigSchema, isLocalMode, loadConfig } from '../../src/config.ts'
import { startTestEmulator } from '../helpers/emulator.ts'
import { startService } from '../helpers/service.ts'
import { smallTenant } from '../helpers/tenant.ts'

interface Manifest { apiVersion: string, kind: string, metadata: { name: string, labels?: Record<string, string> }, [key: string]: any }

const root = new URL('../../', import.meta.url)
const dir = new URL('deploy/kubernetes/', root)
const files = (await readdir(dir)).filter(f => f.endsWith('.yaml')).sort()
const manifests = new Map<string, Manifest[]>()
for (const f of files) {
  manifests.set(f, parseAllDocuments(await readFile(new URL(f, dir), 'utf8')).map(d => d.toJSON() as Manifest).filter(m => m !== null))
}
const all = [...manifests.values()].flat()
const one = (kind: string): Manifest => {
  const found = all.filter(m => m.kind === kind)
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`)
  return found[0] as Manifest
}
const kustomization = one('Kustomization')
const deployment = one('Deployment')
const configMap = one('ConfigMap')
const secret = one('Secret')
const service = one('Service')
const pdb = one('PodDisruptionBudget')
const pod = deployment.spec.template.spec
const container = pod.containers[0]
const configKeys = new Set(Object.keys(ConfigSchema.properties))

/** The environment the container starts with: envFrom first, then env (which wins), Secret values from the example. */
function containerEnv (): Record<string, string> {
  const env: Record<string, string> = {}
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef?.name === configMap.metadata.name) Object.assign(env, configMap.data)
    if (from.secretRef?.name === secret.metadata.name) Object.assign(env, secret.stringData)
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value)
    const ref = e.valueFrom?.secretKeyRef
    if (ref !== undefined && secret.stringData[ref.key] !== undefined) env[e.name] = secret.stringData[ref.key]
  }
  return env
}

t.test('the kustomization applies every manifest but the example Secret', async t => {
  t.same([...kustomization.resources].sort(), files.filter(f => f !== 'kustomization.yaml' && f !== 'secret.example.yaml').sort())
  t.same(kustomization.images.map((i: { name: string }) => i.name), [container.image], 'the image is set in one place')
  t.notOk(kustomization.resources.includes('secret.example.yaml'), 'secrets are created, not committed')
})

t.test('every variable the manifests set is in the configuration schema', async t => {
  const names = new Set<string>([
    ...Object.keys(configMap.data),
    ...(container.env ?? []).map((e: { name: string }) => e.name),
    ...(container.envFrom ?? []).filter((f: any) => f.secretRef !== undefined).flatMap(() => Object.keys(secret.stringData))
  ])
  for (const name of names) t.ok(configKeys.has(name), `${name} is in ConfigSchema`)
  // The Secret holds the variables the Deployment reads from it (unless optional), and the credential file.
  for (const e of container.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef
    if (ref === undefined) continue
    t.equal(ref.name, secret.metadata.name)
    t.ok(ref.optional === true || ref.key in secret.stringData, `${ref.key} is in the Secret`)
    t.equal(ref.key, e.name, `${e.name} is read from the Secret key of the same name`)
  }
  for (const key of Object.keys(secret.stringData)) {
    t.ok(configKeys.has(key) || key.endsWith('.pem'), `Secret key ${key} is a variable or a mounted file`)
  }
})

t.test('the ConfigMap and the Secret are a production configuration with a certificate credential', async t => {
  const env = containerEnv()
  const config = loadConfig(env)
  t.equal(config.NODE_ENV, 'production')
  t.notOk(isLocalMode(config))
  t.equal(config.HOST, '0.0.0.0')
  t.equal(config.ENTRA_CLIENT_SECRET, undefined, 'no client secret: a certificate')
  t.ok(config.REDIS_URL !== undefined, 'registration jobs are shared by the replicas')
  t.ok(config.METRICS_TOKEN !== undefined, '/metrics needs a token')
  // The certificate path is a file of the Secret, mounted.
  const path = config.ENTRA_CLIENT_CERTIFICATE_PATH ?? ''
  const mount = (container.volumeMounts ?? []).find((m: { mountPath: string }) => path.startsWith(`${String(m.mountPath)}/`))
  t.ok(mount, `${path} is under a mounted volume`)
  t.ok(mount?.readOnly)
  const volume = pod.volumes.find((v: { name: string }) => v.name === mount?.name)
  t.equal(volume?.secret?.secretName, secret.metadata.name)
  const file = path.slice(String(mount?.mountPath).length + 1)
  const item = volume?.secret?.items?.find((i: { path: string }) => i.path === file)
  t.ok(item !== undefined && item.key in secret.stringData, `${file} comes from the Secret`)
  t.match(secret.stringData[item?.key ?? ''], /BEGIN CERTIFICATE[\s\S]*BEGIN PRIVATE KEY/, 'a certificate and its key in one PEM')
})

t.test('the container runs the service entry as the image user, with a writable temporary directory', async t => {
  t.same(container.command, ['node', '--import', 'tsx', 'src/server.ts'])
  await t.resolves(access(new URL('src/server.ts', root)), 'src/server.ts exists')
  const start = (JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as { scripts: Record<string, string> }).scripts.start
  t.equal(start, 'tsx src/server.ts', 'the same entry as npm start')
  t.equal(pod.securityContext.runAsNonRoot, true)
  t.equal(container.securityContext.readOnlyRootFilesystem, true)
  const mounted = (container.volumeMounts ?? []).map((m: { mountPath: string }) => m.mountPath)
  t.ok(mounted.includes('/tmp'), 'tsx compiles into /tmp')
  // Graceful: the preStop pause plus the service's own grace fit in the termination grace period.
  const grace = loadConfig(containerEnv()).SHUTDOWN_GRACE_MS
  const pause = Number(container.lifecycle?.preStop?.exec?.command?.[1] ?? 0)
  t.ok(pod.terminationGracePeriodSeconds * 1000 > grace + pause * 1000, `${pod.terminationGracePeriodSeconds as number} s > ${pause} s + ${grace} ms`)
})

t.test('the Service, the PodDisruptionBudget and the Deployment select the same pods', async t => {
  const labels = deployment.spec.template.metadata.labels as Record<string, string>
  t.match(labels, deployment.spec.selector.matchLabels)
  t.match(labels, service.spec.selector)
  t.match(labels, pdb.spec.selector.matchLabels)
  const ports = new Map((container.ports ?? []).map((p: { name: string, containerPort: number }) => [p.name, p.containerPort]))
  t.equal(ports.get(service.spec.ports[0].targetPort), Number(containerEnv().PORT), 'the Service reaches the port the service listens on')
  t.ok(deployment.spec.replicas >= 2, 'more than one replica')
  t.ok(pdb.spec.maxUnavailable !== undefined ? pdb.spec.maxUnavailable < deployment.spec.replicas : pdb.spec.minAvailable < deployment.spec.replicas, 'a drain never takes every replica')
  t.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0, 'a rollout keeps full capacity')
})

t.test('the probes call routes the service serves: liveness /healthz, readiness /readyz', async t => {
  const ports = new Map((container.ports ?? []).map((p: { name: string, containerPort: number }) => [p.name, p.containerPort]))
  const probes = { startupProbe: '/healthz', livenessProbe: '/healthz', readinessProbe: '/readyz' }
  for (const [probe, path] of Object.entries(probes)) {
    t.equal(container[probe]?.httpGet?.path, path, `${probe} is GET ${path}`)
    t.equal(ports.get(container[probe]?.httpGet?.port), Number(containerEnv().PORT), `${probe} calls the port the service listens on`)
  }
  const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
  const { app } = await startService(t, emulator)
  for (const path of new Set(Object.values(probes))) {
    t.ok(app.hasRoute({ method: 'GET', url: path }), `GET ${path} is a route`)
    // Readiness turns 200 once Entra's signing keys are loaded, as the probe would keep asking (for up to
    // a minute: it returns as soon as the keys are there, and a loaded machine may be slow to load them).
    let res = await app.inject({ method: 'GET', url: path })
    for (const until = Date.now() + 60_000; Date.now() < until && res.statusCode !== 200;) {
      await new Promise(resolve => setTimeout(resolve, 100))
      res = await app.inject({ method: 'GET', url: path })
    }
    t.equal(res.statusCode, 200, `GET ${path} answers 200 once the service is up: ${res.body}`)
  }
  t.equal((await app.inject({ method: 'GET', url: '/healthz-not-a-route' })).statusCode, 404, 'and a path that is not a route would not')
})
