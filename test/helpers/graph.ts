// Shared by the Graph emulator tests: an emulator over HTTPS with the tenants a test needs, Graph access
// tokens signed with the emulator's own keys (no dependency on the STS token endpoint), and a small
// fetch wrapper.
import type { Test } from 'tap'
import type { Emulator } from '../../emulators/server.ts'
import type { TenantFixture } from '../../emulators/tenant/model.ts'
import type { EmulatorContext } from '../../emulators/context.ts'
import { startTestEmulator } from './emulator.ts'
import { T, smallTenant } from './tenant.ts'

export { T, smallTenant }

export const RESOLVER_ROLES = ['User.Read.All', 'GroupMember.Read.All', 'Application.Read.All']

export interface TokenOptions {
  tid?: string
  appId?: string
  oid?: string
  roles?: string[]
  scp?: string
  aud?: string
  iss?: string
  /** Lifetime in seconds from now (negative: already expired). */
  lifetime?: number
}

/** An app-only Graph token (v1 shape) for the resolver app of the small tenant unless told otherwise. */
export async function graphToken (ctx: EmulatorContext, opts: TokenOptions = {}): Promise<string> {
  const tid = opts.tid ?? T.tenantId
  const now = ctx.clock.nowSeconds()
  const lifetime = opts.lifetime ?? 3600
  const payload: Record<string, unknown> = {
    iss: opts.iss ?? `https://sts.windows.net/${tid}/`,
    aud: opts.aud ?? 'https://graph.microsoft.com',
    tid,
    oid: opts.oid ?? T.resolverSp,
    sub: opts.oid ?? T.resolverSp,
    appid: opts.appId ?? T.resolverAppId,
    ver: '1.0',
    iat: now - 60,
    nbf: lifetime < 0 ? now + lifetime - 3600 : now - 60,
    exp: now + lifetime
  }
  if (opts.scp !== undefined) payload.scp = opts.scp
  else payload.roles = opts.roles ?? RESOLVER_ROLES
  return await ctx.keys.sign(payload)
}

export interface GraphResponse<B = any> {
  status: number
  headers: Headers
  text: string
  body: B
}

export interface GraphEnv extends Emulator {
  token: string
  /** `fetch` of `${origin}${path}` (path starting with `/v1.0/` or absolute URL) with the default token. */
  call: <B = any>(path: string, init?: { method?: string, body?: unknown, headers?: Record<string, string>, token?: string | null }) => Promise<GraphResponse<B>>
}

export async function startGraph (t: Test, tenants: TenantFixture[] = [smallTenant()]): Promise<GraphEnv> {
  const emulator = await startTestEmulator(t, { tenants })
  const token = await graphToken(emulator.ctx, { tid: tenants[0]?.tenantId })
  const call: GraphEnv['call'] = async (path, init = {}) => {
    const headers: Record<string, string> = { ...init.headers }
    const bearer = init.token === undefined ? token : init.token
    if (bearer !== null) headers.authorization = `Bearer ${bearer}`
    let body: string | undefined
    if (init.body !== undefined) {
      body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body)
      if (!Object.keys(headers).some(h => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json'
    }
    const url = path.startsWith('https://') ? path : `${emulator.origin}${path}`
    const res = await fetch(url, { method: init.method ?? (init.body !== undefined ? 'POST' : 'GET'), headers, body })
    const text = await res.text()
    let parsed: unknown = text
    if ((res.headers.get('content-type') ?? '').includes('json')) parsed = JSON.parse(text)
    return { status: res.status, headers: res.headers, text, body: parsed as any }
  }
  return { ...emulator, token, call }
}

/** Makes `n` GUID-shaped ids with a recognisable prefix (8 hex digits), e.g. `guids('e0', 3)`. */
export function guids (prefix: string, n: number, start = 0): string[] {
  return Array.from({ length: n }, (_, i) => {
    const hex = (start + i).toString(16).padStart(12, '0')
    return `${prefix.padEnd(8, '0')}-0000-4000-8000-${hex}`
  })
}

/** Checks the error envelope every Graph failure carries. */
export function assertGraphError (t: Test, res: GraphResponse, status: number, code: string, message?: string | RegExp): void {
  t.equal(res.status, status, `status ${status}`)
  t.match(res.headers.get('content-type') ?? '', /^application\/json;odata\.metadata=minimal/, 'OData JSON content type')
  t.equal(res.body?.error?.code, code, `error code ${code}`)
  if (message !== undefined) t.match(res.body.error.message, message)
  const inner = res.body?.error?.innerError ?? {}
  t.match(inner.date, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/, 'innerError.date')
  t.equal(inner['request-id'], res.headers.get('request-id'), 'innerError request-id matches the header')
  t.equal(inner['client-request-id'], res.headers.get('client-request-id'), 'innerError client-request-id matches the header')
}
