// Shared by the benchmarks: the emulators plus the service built by the production composition root,
// pointed at them; and the bare-fastify baseline the warm path is compared with.
import Fastify, { type FastifyInstance } from 'fastify'
import { startEmulators, type Emulator } from '../../emulators/server.ts'
import type { TenantFixture } from '../../emulators/tenant/model.ts'
import { loadConfig } from '../../src/config.ts'
import { buildService, type Service } from '../../src/service.ts'
import { Resolution } from '../../src/http/schemas.ts'

export interface BenchStack {
  emulator: Emulator
  service: Service
  tenantId: string
  resolverAppId: string
  close: () => Promise<void>
}

/** Emulators with `tenant` (throttling off: we measure the service, not Graph's quota) and the service. */
export async function startStack (tenant: TenantFixture, resolverAppId: string, resolverSecret: string, env: Record<string, string> = {}): Promise<BenchStack> {
  const emulator = await startEmulators({ port: 0, tenants: [tenant], tokenLifetimeSeconds: 3600 })
  await fetch(`${emulator.origin}/_emulator/graph/throttle`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ disabled: true }) })
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    ENTRA_TENANT_ID: tenant.tenantId,
    ENTRA_CLIENT_ID: resolverAppId,
    ENTRA_CLIENT_SECRET: resolverSecret,
    ENTRA_AUTHORITY_HOST: emulator.origin,
    GRAPH_BASE_URL: `${emulator.origin}/v1.0`,
    ...env
  })
  const service = await buildService(config, { ca: emulator.ca, processMetrics: false })
  return {
    emulator,
    service,
    tenantId: tenant.tenantId,
    resolverAppId,
    close: async () => { await service.close(); await emulator.close() }
  }
}

/** A user token for the resolver's API from the emulator's token factory. */
export async function userToken (stack: BenchStack, principalId: string): Promise<string> {
  const res = await fetch(`${stack.emulator.origin}/_emulator/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tenantId: stack.tenantId, principalId, audience: `api://${stack.resolverAppId}` })
  })
  const { access_token: token } = await res.json() as { access_token: string }
  return token
}

/**
 * The baseline: a bare fastify route answering a constant — the very body a warm login returns, through
 * the same response schema — so the comparison measures our work, not the size of the answer.
 */
export function bareApp (body: unknown): FastifyInstance {
  const app = Fastify({ logger: false })
  app.post('/v1/login', { schema: { response: { 200: Resolution } } }, async () => body)
  return app
}
