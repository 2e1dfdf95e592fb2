// Shared by the sync tests (not a test itself): a service with the Entra change feed on, rounds run when a
// test asks for them, and views of the emulated tenant and Databricks account.
import type { Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../emulators/databricks/account.ts'
import type { Emulator } from '../../emulators/server.ts'
import { T } from './tenant.ts'
import { buildTestService, tokenFor } from './service.ts'
import type { Service } from '../../src/service.ts'
import type { RoundReport } from '../../src/sync/change-feed.ts'

export interface ScimSummary { id: string, externalId: string | null, name?: string }
export interface AccountState {
  users: Array<{ id: string, externalId: string | null, userName: string, active: boolean, groups: ScimSummary[] }>
  groups: Array<{ id: string, externalId: string | null, displayName: string, members: ScimSummary[], groups: ScimSummary[] }>
}
export const userOf = (s: AccountState, entraId: string) => s.users.find(u => u.externalId === entraId)
export const groupOf = (s: AccountState, entraId: string) => s.groups.find(g => g.externalId === entraId)

export function syncDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'jir-sync-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** A service's next round, asked for now (no round may be running: the interval is an hour). */
export async function round (service: Service): Promise<RoundReport> {
  const sync = service.sync
  if (sync === undefined) throw new Error('sync is off')
  const done = sync.nextRound()
  await sync.trigger()
  return await done
}

export function syncHarness (emulator: Emulator) {
  const { ctx, origin } = emulator
  const tenant = () => {
    const d = ctx.tenants.get(T.tenantId.toLowerCase())
    if (d === undefined) throw new Error('no tenant')
    return d
  }

  async function control (method: string, path: string, body?: unknown): Promise<any> {
    const res = await fetch(`${origin}/_emulator${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    const json = res.status === 204 ? {} : await res.json()
    if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`)
    return json
  }

  /** The account SCIM API as an account admin would call it (a group made in Databricks, not from Entra). */
  async function scim (method: string, path: string, body: unknown): Promise<any> {
    const res = await fetch(`${origin}/api/2.0/accounts/${DEFAULT_ACCOUNT_ID}/scim/v2${path}`, {
      method,
      headers: { authorization: `Bearer ${DATABRICKS_ADMIN_PAT}`, 'content-type': 'application/scim+json' },
      body: JSON.stringify(body)
    })
    const json = await res.json()
    if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`)
    return json
  }

  const account = async (): Promise<AccountState> => await control('GET', '/databricks/state') as AccountState

  /** A service with the feed on; rounds run when the test triggers them (the interval is an hour). */
  async function start (t: Test, dir: string, env: Record<string, string> = {}): Promise<{ service: Service, first: RoundReport }> {
    const service = await buildTestService(t, emulator, {
      DATABRICKS_HOST: origin,
      DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
      DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
      SYNC_ENABLED: 'true',
      SYNC_INTERVAL_SECONDS: '3600',
      SYNC_DIR: dir,
      ...env
    })
    const sync = service.sync
    if (sync === undefined) throw new Error('sync is off')
    // The first round starts with the service: cursors at "now", and a reconcile of what is materialized.
    const first = await sync.nextRound()
    return { service, first }
  }

  async function login (service: Service, principalId: string): Promise<{ statusCode: number, json: () => any }> {
    const token = await tokenFor(emulator, principalId)
    return await service.app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  }

  /** An empty account in SCIM mode (it learns nothing from Entra by itself), no rate limits, no faults. */
  async function freshAccount (options: { aim?: boolean } = {}): Promise<void> {
    await control('POST', '/databricks/reset')
    await control('PUT', '/databricks/rate-limits', { enabled: false })
    await control('PUT', '/databricks/settings', { aimEnabled: options.aim === true })
    await control('DELETE', '/faults')
  }

  return { tenant, control, scim, account, start, login, freshAccount }
}
