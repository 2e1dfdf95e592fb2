// Shared by the benchmarks: the emulators plus the service built by the production composition root,
// pointed at them; and (from bare.ts) the bare-fastify baseline the warm path is compared with.
import { startEmulators, type Emulator } from '../../emulators/server.ts'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../emulators/databricks/account.ts'
import type { TenantFixture } from '../../emulators/tenant/model.ts'
import { loadConfig } from '../../src/config.ts'
import { buildService, type Service } from '../../src/service.ts'
// The baseline lives in bare.ts (its own process imports nothing else); here for the bench servers.
export { bareApp } from './bare.ts'

export interface BenchStack {
  emulator: Emulator
  service: Service
  tenantId: string
  resolverAppId: string
  close: () => Promise<void>
}

/**
 * Emulators with `tenant` (Graph throttling off: we measure the service, not Graph's quota) and the
 * service. `databricks`: the service materializes in the emulated account, in that mode.
 */
export async function startStack (tenant: TenantFixture, resolverAppId: string, resolverSecret: string, env: Record<string, string> = {}, databricks?: { mode: 'scim' | 'aim', rateLimits: boolean }): Promise<BenchStack> {
  const emulator = await startEmulators({ port: 0, tenants: [tenant], tokenLifetimeSeconds: 3600 })
  const control = async (method: string, path: string, body: unknown): Promise<void> => {
    await fetch(`${emulator.origin}/_emulator${path}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  }
  await control('PUT', '/graph/throttle', { disabled: true })
  if (databricks !== undefined) {
    await control('PUT', '/databricks/settings', { aimEnabled: databricks.mode === 'aim' })
    await control('PUT', '/databricks/rate-limits', { enabled: databricks.rateLimits })
    env = { DATABRICKS_HOST: emulator.origin, DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID, DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT, DATABRICKS_MODE: databricks.mode, ...env }
  }
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

/** Outbound requests (attempts) to an upstream so far, from the service's own Prometheus metrics. */
export async function upstreamRequests (stack: BenchStack, upstream: string): Promise<number> {
  const text = (await stack.service.app.inject('/metrics')).body
  const counts = text.split('\n').filter(l => l.startsWith(`upstream_request_duration_seconds_count{upstream="${upstream}"`))
  return counts.reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0)
}

/**
 * Groups the account already holds before a storm, created through account SCIM as the service names
 * them (`Name (xxxxxxxx)`, linked by externalId), with the emulator's rate limits off for the set-up.
 */
export async function seedAccountGroups (origin: string, groups: Array<{ id: string, displayName: string }>): Promise<void> {
  const limits = async (enabled: boolean): Promise<void> => {
    await fetch(`${origin}/_emulator/databricks/rate-limits`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ enabled }) })
  }
  await limits(false)
  for (const { id, displayName } of groups) {
    await fetch(`${origin}/api/2.0/accounts/${DEFAULT_ACCOUNT_ID}/scim/v2/Groups`, {
      method: 'POST',
      headers: { authorization: `Bearer ${DATABRICKS_ADMIN_PAT}`, 'content-type': 'application/json' },
      body: JSON.stringify({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: `${displayName} (${id.slice(0, 8)})`, externalId: id })
    })
  }
  await limits(true)
}
