// Shared by the Databricks emulator tests (not a test itself): an emulator with the small tenant, a JSON
// client for the account and workspace APIs, Entra tokens for Azure Databricks signed with the emulator's
// keys, and checkers for Databricks' two error shapes.
import tap, { type Test } from 'tap'
import { startEmulators } from '../../emulators/server.ts'
import { smallTenant, T } from './tenant.ts'
import type { Emulator } from '../../emulators/server.ts'
import type { TenantFixture } from '../../emulators/tenant/model.ts'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from '../../emulators/databricks/routes.ts'

export { T, DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID }

export const DATABRICKS_RESOURCE = '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d'
export const ACCOUNT = `/api/2.0/accounts/${DEFAULT_ACCOUNT_ID}`
export const SCIM = `${ACCOUNT}/scim/v2`
export const WS_SCIM = '/api/2.0/preview/scim/v2'
export const IDENTITY = `/api/2.0/identity/accounts/${DEFAULT_ACCOUNT_ID}`
export const SCIM_ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error'
export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp'

export interface Res {
  status: number
  headers: Headers
  body: any
}

export type Api = (method: string, path: string, body?: unknown, opts?: { token?: string | null, headers?: Record<string, string>, raw?: string }) => Promise<Res>

export function client (origin: string, token: string | null = DATABRICKS_ADMIN_PAT): Api {
  return async (method, path, body, opts = {}) => {
    const bearer = opts.token === undefined ? token : opts.token
    const headers: Record<string, string> = { ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }), ...opts.headers }
    const payload = opts.raw ?? (body === undefined ? undefined : JSON.stringify(body))
    if (payload !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json'
    const res = await fetch(origin + path, { method, headers, body: payload })
    const text = await res.text()
    let parsed: unknown = text
    try {
      parsed = text === '' ? undefined : JSON.parse(text)
    } catch {}
    return { status: res.status, headers: res.headers, body: parsed }
  }
}

export interface Databricks extends Emulator {
  api: Api
  control: (method: string, path: string, body?: unknown) => Promise<Res>
}

// One emulator per test file (creating one makes signing keys, most of a test's time); every test
// starts from a fresh state instead.
let shared: Promise<Emulator> | undefined

async function emulatorOnce (): Promise<Emulator> {
  shared ??= (async () => {
    const emulator = await startEmulators({ port: 0, tokenLifetimeSeconds: 3600, tenants: [smallTenant()] })
    tap.teardown(emulator.close)
    return emulator
  })()
  return await shared
}

/**
 * The file's emulator, reset: the tenant fixture reloaded as the only tenant, a fresh Databricks account,
 * no faults, no call counts, the clock at real time. Rate limits are off unless asked for: the default
 * account SCIM write limit (5/s) would otherwise throttle tests that are about something else.
 */
export async function startDatabricks (_t: Test, opts: { rateLimits?: boolean, tenant?: TenantFixture } = {}): Promise<Databricks> {
  const emulator = await emulatorOnce()
  const raw = client(emulator.origin, null)
  const control = async (method: string, path: string, body?: unknown): Promise<Res> => await raw(method, `/_emulator/databricks${path}`, body)
  const fixture = opts.tenant ?? smallTenant()
  await raw('PUT', '/_emulator/tenant?primary=true', fixture)
  for (const tenant of (await raw('GET', '/_emulator/tenant')).body.tenants as Array<{ tenantId: string }>) {
    if (tenant.tenantId !== fixture.tenantId) await raw('DELETE', `/_emulator/tenant/${tenant.tenantId}`)
  }
  await raw('DELETE', '/_emulator/faults')
  await raw('DELETE', '/_emulator/calls')
  await raw('DELETE', '/_emulator/clock')
  await control('POST', '/reset')
  if (opts.rateLimits !== true) await control('PUT', '/rate-limits', { enabled: false })
  return { ...emulator, api: client(emulator.origin), control }
}

/** An Entra access token for Azure Databricks, signed with the emulator's keys. App-only unless `scp`. */
export async function entraToken (emulator: Emulator, claims: { oid: string, appid: string, scp?: string, tid?: string, aud?: string, exp?: number }): Promise<string> {
  const now = emulator.ctx.clock.nowSeconds()
  const tid = claims.tid ?? T.tenantId
  return await emulator.ctx.keys.sign({
    iss: `https://sts.windows.net/${tid}/`,
    aud: claims.aud ?? DATABRICKS_RESOURCE,
    tid,
    oid: claims.oid,
    sub: claims.oid,
    appid: claims.appid,
    ver: '1.0',
    ...(claims.scp !== undefined ? { scp: claims.scp } : {}),
    iat: now,
    nbf: now,
    exp: claims.exp ?? now + 3600
  })
}

/** Asserts a SCIM error: status, `status` as a string, the error schema, optional scimType and detail. */
export function assertScimError (t: Test, res: Res, status: number, scimType?: string, detail?: RegExp | string): void {
  t.equal(res.status, status, `HTTP ${status}`)
  t.same(res.body?.schemas, [SCIM_ERROR], 'SCIM error schema')
  t.equal(res.body?.status, String(status), 'status is a string')
  t.type(res.body?.detail, 'string')
  if (scimType !== undefined) t.equal(res.body?.scimType, scimType)
  if (detail !== undefined) t.match(res.body?.detail, detail)
}

/** Asserts Databricks' `{ error_code, message }` error. */
export function assertApiError (t: Test, res: Res, status: number, code: string, message?: RegExp | string): void {
  t.equal(res.status, status, `HTTP ${status}`)
  t.same(Object.keys(res.body ?? {}).sort(), ['error_code', 'message'], 'exactly error_code and message')
  t.equal(res.body?.error_code, code)
  t.type(res.body?.message, 'string')
  if (message !== undefined) t.match(res.body?.message, message)
}

export function patchBody (...Operations: unknown[]): Record<string, unknown> {
  return { schemas: [PATCH_OP], Operations }
}

export async function createUser (api: Api, userName: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await api('POST', `${SCIM}/Users`, { userName, ...extra })
  if (res.status !== 201) throw new Error(`create user ${userName}: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body.id
}

export async function createGroup (api: Api, displayName: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await api('POST', `${SCIM}/Groups`, { displayName, ...extra })
  if (res.status !== 201) throw new Error(`create group ${displayName}: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body.id
}
