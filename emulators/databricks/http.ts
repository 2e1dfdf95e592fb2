// The pipeline every Databricks route shares: bearer → account/workspace → authorization → rate limit →
// (SCIM concurrency quirk) → handler, and the error conventions: Databricks' error shape for every
// failure, including bad bodies, framework errors and unknown paths under /api, never a crash.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import type { EmulatorContext } from '../context.ts'
import { AccountError, databricksAccount, type DatabricksAccount } from './account.ts'
import { authenticate, requireAccountAdmin, requireWorkspaceAccess, type Caller } from './auth.ts'
import {
  DatabricksError, SCIM_PATH, UNPARSABLE, apiBody, badParameter, conflict, endpointNotFound, invalidSyntax, invalidValue,
  malformedJson, notFound, scimBody
} from './errors.ts'
import type { Family, RateLimiter } from './rate-limits.ts'
import { WorkspaceError, type Workspace } from './workspace.ts'

export interface Services {
  ctx: EmulatorContext
  limiter: RateLimiter
}

export interface RouteConfig {
  family: Family
  /** Account routes carry `:accountId`; workspace routes act on the workspace the request names. */
  scope: 'account' | 'workspace'
  /** SCIM routes answer SCIM-shaped errors. */
  scim: boolean
  /** Who may call: account admins; workspace users; workspace admins (or account admins). */
  access: 'account-admin' | 'workspace-user' | 'workspace-admin'
}

export interface Call {
  ctx: EmulatorContext
  account: DatabricksAccount
  request: FastifyRequest
  reply: FastifyReply
  caller: Caller
  /** The workspace of a workspace-scoped route (null on account routes). */
  workspace: Workspace | null
  params: Record<string, string>
  query: Record<string, string | string[] | undefined>
  /** The JSON object body; throws Databricks' 400 when it is missing or not an object. */
  body: () => Record<string, unknown>
  /** The JSON object body, or undefined when none was sent. */
  optionalBody: () => Record<string, unknown> | undefined
}

export interface RouteDef extends RouteConfig {
  method: HTTPMethods
  /** The full path, starting with `/api/`. */
  url: string
  /** Returns the JSON body (status 200), or sends through `call.reply` itself. */
  handler: (call: Call) => unknown
}

export function route (method: HTTPMethods, url: string, config: RouteConfig, handler: RouteDef['handler']): RouteDef {
  return { method, url, handler, ...config }
}

/** The workspace a workspace-level request targets: `X-Databricks-Workspace-Id` (or `-Org-Id`), else the first. */
export function workspaceOf (account: DatabricksAccount, request: FastifyRequest): Workspace {
  const header = request.headers['x-databricks-workspace-id'] ?? request.headers['x-databricks-org-id']
  const id = Array.isArray(header) ? header[0] : header
  if (id === undefined || id === '') return [...account.workspaces.values()][0] as Workspace
  const ws = account.workspaces.get(id.trim())
  if (ws === undefined) throw badParameter(`Workspace ${id} does not exist in account ${account.id}.`)
  return ws
}

/** A workspace of the account named in a path. */
export function workspaceById (account: DatabricksAccount, id: string): Workspace {
  const ws = /^\d+$/.test(id) ? account.workspaces.get(id) : undefined
  if (ws === undefined) throw notFound(`Workspace ${id} does not exist.`)
  return ws
}

function parseBody (request: FastifyRequest, scim: boolean, required: boolean): Record<string, unknown> | undefined {
  const raw = request.body
  if (typeof raw !== 'string' || raw.trim() === '') {
    if (!required) return undefined
    throw scim ? invalidSyntax() : malformedJson()
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    throw scim ? invalidSyntax() : malformedJson()
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw scim ? invalidSyntax() : malformedJson()
  return parsed as Record<string, unknown>
}

export function defineRoutes (api: FastifyInstance, services: Services, defs: readonly RouteDef[]): void {
  const { ctx, limiter } = services
  for (const def of defs) {
    if (!def.url.startsWith('/api/')) throw new Error(`Databricks routes live under /api: ${def.url}`)
    const config: RouteConfig = { family: def.family, scope: def.scope, scim: def.scim, access: def.access }
    api.route({
      method: def.method,
      url: def.url.slice('/api'.length),
      config,
      handler: async (request, reply) => {
        const account = databricksAccount(ctx)
        const caller = await authenticate(ctx, account, request.headers.authorization)
        const params = (request.params ?? {}) as Record<string, string>
        if (params.accountId !== undefined && params.accountId !== account.id) {
          throw notFound(`Account ${params.accountId} does not exist.`)
        }
        let workspace: Workspace | null = null
        if (def.scope === 'workspace') workspace = workspaceOf(account, request)
        else if (params.workspaceId !== undefined) workspace = workspaceById(account, params.workspaceId)
        if (def.access === 'account-admin') requireAccountAdmin(caller)
        else requireWorkspaceAccess(workspace as Workspace, caller, def.access === 'workspace-admin')
        limiter.take(def.family)
        const slot = def.scim
          ? limiter.enter(def.scope === 'workspace' ? { kind: 'Workspace', id: (workspace as Workspace).id } : { kind: 'Account', id: account.id })
          : null
        try {
          if (slot !== null && slot.holdMs > 0) await sleep(slot.holdMs)
          const call: Call = {
            ctx,
            account,
            request,
            reply,
            caller,
            workspace,
            params,
            query: (request.query ?? {}) as Call['query'],
            body: () => parseBody(request, def.scim, true) as Record<string, unknown>,
            optionalBody: () => parseBody(request, def.scim, false)
          }
          const result = def.handler(call)
          if (reply.sent) return reply
          return await reply.send(result)
        } finally {
          slot?.release()
        }
      }
    })
  }
}

/** Maps any error to Databricks' error: the emulator's own, the model's, fastify's, and unexpected ones. */
export function toDatabricksError (err: unknown, request: FastifyRequest): DatabricksError {
  if (err instanceof DatabricksError) return err
  if (err instanceof AccountError || err instanceof WorkspaceError) {
    if (err.code === 'not-found') return notFound(err.message)
    if (err.code === 'conflict') return conflict(err.message)
    return invalidValue(err.message)
  }
  const status = (err as FastifyError).statusCode
  if (status === 413) return new DatabricksError(413, 'REQUEST_ENTITY_TOO_LARGE', 'The request body is too large.', { scimType: 'invalidSyntax' })
  if (status !== undefined && status >= 400 && status < 500) return invalidSyntax(UNPARSABLE)
  request.log.error({ err }, 'databricks emulator: unexpected error')
  return new DatabricksError(500, 'INTERNAL_ERROR', 'An internal error occurred.')
}

export function isScim (request: FastifyRequest): boolean {
  const config = request.routeOptions.config as Partial<RouteConfig> | undefined
  return config?.scim === true || SCIM_PATH.test(request.url.split('?')[0] ?? '')
}

export async function sendError (request: FastifyRequest, reply: FastifyReply, e: DatabricksError): Promise<FastifyReply> {
  const scim = isScim(request)
  return await reply.code(e.status).headers(e.options.headers ?? {}).send(scim ? scimBody(e) : apiBody(e))
}

/** Body parsing, the error handler and the not-found handler of the `/api` context. */
export function installConventions (api: FastifyInstance): void {
  // Bodies are read as text whatever the content type (the SDK sends application/json, Terraform
  // application/scim+json) and parsed by the handlers after authentication.
  api.removeAllContentTypeParsers()
  api.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => { done(null, body) })
  api.setErrorHandler(async (err, request, reply) => await sendError(request, reply, toDatabricksError(err, request)))
  api.setNotFoundHandler(async (request, reply) => await sendError(request, reply, endpointNotFound(request.method, request.url.split('?')[0] ?? '')))
}

// ---- small parsing helpers shared by the routes ---------------------------------------------------------

export function queryString (call: Call, name: string): string | undefined {
  const v = call.query[name]
  return Array.isArray(v) ? v[0] : v
}

/** A non-negative integer query parameter, or undefined; anything else is a 400. */
export function queryInt (call: Call, name: string, limits: { min?: number, max?: number } = {}): number | undefined {
  const raw = queryString(call, name)
  if (raw === undefined || raw === '') return undefined
  if (!/^-?\d+$/.test(raw.trim())) throw badParameter(`Invalid value for ${name}: '${raw}' is not an integer.`)
  const n = Number(raw)
  if ((limits.min !== undefined && n < limits.min) || (limits.max !== undefined && n > limits.max)) {
    throw badParameter(`Invalid value for ${name}: ${raw} is outside [${limits.min ?? '-∞'}, ${limits.max ?? '∞'}].`)
  }
  return n
}

/** Opaque page tokens: base64url of a JSON offset; anything else is a 400. */
export const pageToken = {
  encode: (offset: number): string => Buffer.from(JSON.stringify({ o: offset })).toString('base64url'),
  decode: (token: string | undefined): number => {
    if (token === undefined || token === '') return 0
    try {
      const o = (JSON.parse(Buffer.from(token, 'base64url').toString()) as { o?: unknown }).o
      if (typeof o === 'number' && Number.isInteger(o) && o >= 0) return o
    } catch {}
    throw badParameter(`Invalid page token: '${token}'.`)
  }
}
