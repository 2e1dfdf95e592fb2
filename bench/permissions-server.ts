// Child process of bench/permissions-throughput.ts: local mode (emulators, demo tenant, demo workspace)
// and the service, warmed with one permission query; plus the bare-fastify baseline answering that body.
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../src/config.ts'
import { buildService } from '../src/service.ts'
import { startLocalMode } from '../src/local/local-mode.ts'
import { EffectivePermissionResult } from '../src/http/schemas.ts'
import { DEMO_ALICE_ID, DEMO_RESOLVER_APP_ID, DEMO_TENANT_ID } from '../emulators/tenant/demo.ts'
import { bareApp } from './lib/service.ts'

const local = await startLocalMode(loadConfig({ LOG_LEVEL: 'silent', PORT: '0', EMULATORS_PORT: '0', REGISTRATIONS_DIR: await mkdtemp(join(tmpdir(), 'jit-bench-')) }))
const service = await buildService({ ...local.config, CACHE_ACL_TTL_SECONDS: 3600 }, { ca: local.ca, processMetrics: false })
const serviceUrl = await service.app.listen({ port: 0, host: '127.0.0.1' })
const origin = local.config.ENTRA_AUTHORITY_HOST
const res = await fetch(`${origin}/_emulator/tokens`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ tenantId: DEMO_TENANT_ID, principalId: DEMO_ALICE_ID, audience: `api://${DEMO_RESOLVER_APP_ID}` })
})
const { access_token: token } = await res.json() as { access_token: string }
// The walk-through's question (what can Bob do on the dashboard, and why), warmed once.
const step = local.walkthrough(serviceUrl).steps.find(s => s.method === 'GET' && s.url.includes('/v1/permissions/'))
if (step === undefined) throw new Error('no permission query in the walk-through')
const path = step.url.slice(serviceUrl.length)
const warm = await fetch(step.url, { headers: { authorization: `Bearer ${token}` } })
if (warm.status !== 200) throw new Error(`warm-up query failed: ${warm.status} ${await warm.text()}`)
const bare = bareApp(await warm.json(), { method: 'GET', url: '/v1/permissions/:objectType/:objectId', schema: EffectivePermissionResult })
const bareUrl = await bare.listen({ port: 0, host: '127.0.0.1' })
console.log(JSON.stringify({ serviceUrl, bareUrl, token, method: 'GET', path }))
process.on('SIGTERM', () => {
  Promise.all([service.close(), local.close(), bare.close()]).then(() => process.exit(0), () => process.exit(1))
})
