// The whole service, built by the same composition root as production (src/service.ts), pointed at an
// emulator over HTTPS, sharing the emulator's clock so tests move time for both at once.
import type { Test } from 'tap'
import type { Emulator } from '../../emulators/server.ts'
import { loadConfig } from '../../src/config.ts'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildService, type Service, type ServiceOptions } from '../../src/service.ts'
import { T } from './tenant.ts'

export async function startService (t: Test, emulator: Emulator, env: Record<string, string> = {}, options: ServiceOptions = {}): Promise<Service> {
  const service = await buildTestService(t, emulator, env, options)
  t.teardown(service.close)
  return service
}

/**
 * The service without a teardown (for tests that close it themselves, e.g. to restart it). Registration
 * jobs go to a directory of the test's own unless REGISTRATIONS_DIR is given: a service resumes every
 * unfinished job it finds, so tests must never share one.
 */
export async function buildTestService (t: Test, emulator: Emulator, env: Record<string, string> = {}, options: ServiceOptions = {}): Promise<Service> {
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    ENTRA_TENANT_ID: T.tenantId,
    ENTRA_CLIENT_ID: T.resolverAppId,
    ENTRA_CLIENT_SECRET: T.resolverSecret,
    ENTRA_AUTHORITY_HOST: emulator.origin,
    GRAPH_BASE_URL: `${emulator.origin}/v1.0`,
    REGISTRATIONS_DIR: env.REGISTRATIONS_DIR ?? registrationsDir(t),
    // The change feed reads Graph every round: only the sync tests turn it on (and count its calls).
    SYNC_ENABLED: 'false',
    // Deadlines are not what these tests are about (deadline-login.test.ts sets its own): on a loaded
    // machine a correct answer may take longer than the production default of 10 s, and must not become
    // a 503. Attempts get 10 s each, so a hung attempt still times out and is retried within a test.
    ...(env.REQUEST_TIMEOUT_MS === undefined ? { REQUEST_TIMEOUT_MS: '60000', UPSTREAM_TIMEOUT_MS: '10000' } : {}),
    ...env
  })
  return await buildService(config, { ca: emulator.ca, clock: { now: () => emulator.ctx.clock.now() }, processMetrics: false, ...options })
}

function registrationsDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'jir-registrations-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** An access token for the resolver's API from the emulator's token factory. */
export async function tokenFor (emulator: Emulator, principalId: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await fetch(`${emulator.origin}/_emulator/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tenantId: T.tenantId, principalId, audience: `api://${T.resolverAppId}`, ...extra })
  })
  const body = await res.json() as { access_token?: string }
  if (body.access_token === undefined) throw new Error(`no token: ${JSON.stringify(body)}`)
  return body.access_token
}
