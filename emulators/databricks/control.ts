// The Databricks part of the control API, under /_emulator/databricks (loopback only; errors are the
// control API's `{ error: { code, message } }`): the state endpoint, reset, settings (AIM), the admin
// set, personal access tokens, rate limits, and seeding of workspaces, workspace-local groups (and their
// members), objects/folders (jobs, pipelines and warehouses with their owner), dashboards, ACLs and
// assignments. Faults, latency and call counts are the shared /_emulator/faults and /calls.
//
// Seeding keeps the invariants the real service has (one owner at most, never a group; a member must
// exist and may not make a cycle) and skips the caller checks, so tests can set up any reachable state,
// an ownerless legacy job included.
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type, type Static } from '@sinclair/typebox'
import { randomBytes } from 'node:crypto'
import type { EmulatorContext } from '../context.ts'
import { loopbackOnly } from '../control/loopback.ts'
import { AccountError, DATABRICKS_ADMIN_PAT, databricksAccount, resetAccount, type AccountGroup, type DatabricksAccount, type Principal } from './account.ts'
import { issueToken } from './auth.ts'
import { DatabricksError } from './errors.ts'
import { groupOwner, objectPermissions, ownedNoun, planAcl, typeInfo } from './permissions.ts'
import { ENTITLEMENTS } from './scim.ts'
import { FAMILIES, type Family, type RateLimiter } from './rate-limits.ts'
import { renderDashboard } from './dashboards.ts'
import { WorkspaceError, type Workspace } from './workspace.ts'

class ControlError extends Error {
  constructor (readonly status: number, readonly code: string, message: string) {
    super(message)
  }
}

const Id = Type.String({ pattern: '^\\d{1,18}$' })
const Level = Type.Union([Type.Literal('USER'), Type.Literal('ADMIN')])
const AclEntry = Type.Object({
  user_name: Type.Optional(Type.String()),
  group_name: Type.Optional(Type.String()),
  service_principal_name: Type.Optional(Type.String()),
  principal_id: Type.Optional(Id),
  permission_level: Type.String()
}, { additionalProperties: false })
/** A principal by id or by the Permissions API's name keys (for an object's owner). */
const PrincipalRef = Type.Object({
  user_name: Type.Optional(Type.String()),
  service_principal_name: Type.Optional(Type.String()),
  principal_id: Type.Optional(Id)
}, { additionalProperties: false })
const FamilyLimits = Type.Object(Object.fromEntries(FAMILIES.map(f => [f, Type.Optional(Type.Union([Type.Null(), Type.Number({ exclusiveMinimum: 0 })]))])), { additionalProperties: false })

const Schemas = {
  settings: Type.Object({ aimEnabled: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  admins: Type.Object({
    applications: Type.Optional(Type.Union([Type.Null(), Type.Array(Type.String())])),
    principals: Type.Optional(Type.Array(Id))
  }, { additionalProperties: false }),
  token: Type.Object({
    principalId: Type.Optional(Id),
    userName: Type.Optional(Type.String()),
    applicationId: Type.Optional(Type.String())
  }, { additionalProperties: false }),
  rateLimits: Type.Object({
    enabled: Type.Optional(Type.Boolean()),
    limits: Type.Optional(FamilyLimits),
    concurrency: Type.Optional(Type.Object({
      enabled: Type.Optional(Type.Boolean()),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
      holdMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000 }))
    }, { additionalProperties: false }))
  }, { additionalProperties: false }),
  workspace: Type.Object({ id: Type.Optional(Id), name: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false }),
  object: Type.Object({
    type: Type.String({ minLength: 1 }),
    id: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[^/]+$' })),
    name: Type.Optional(Type.String()),
    path: Type.Optional(Type.String({ minLength: 1 })),
    /** The owner (IS_OWNER) of a job, pipeline or warehouse: its creator in Databricks. */
    owner: Type.Optional(PrincipalRef)
  }, { additionalProperties: false }),
  localGroup: Type.Object({
    displayName: Type.String({ minLength: 1 }),
    members: Type.Optional(Type.Array(Id, { maxItems: 10_000 })),
    entitlements: Type.Optional(Type.Array(Type.String()))
  }, { additionalProperties: false }),
  members: Type.Object({ members: Type.Array(Id, { minItems: 1, maxItems: 10_000 }) }, { additionalProperties: false }),
  dashboard: Type.Object({
    displayName: Type.String({ minLength: 1 }),
    parentPath: Type.Optional(Type.String({ minLength: 1 })),
    dashboardId: Type.Optional(Type.String({ pattern: '^[0-9a-zA-Z-]{1,64}$' })),
    warehouseId: Type.Optional(Type.String()),
    published: Type.Optional(Type.Object({ embedCredentials: Type.Boolean() }, { additionalProperties: false }))
  }, { additionalProperties: false }),
  acl: Type.Object({
    type: Type.String({ minLength: 1 }),
    id: Type.String({ minLength: 1 }),
    mode: Type.Optional(Type.Union([Type.Literal('replace'), Type.Literal('merge')])),
    access_control_list: Type.Array(AclEntry)
  }, { additionalProperties: false }),
  assignment: Type.Object({
    principalId: Id,
    permissions: Type.Array(Level)
  }, { additionalProperties: false })
}

const WorkspaceParams = Type.Object({ workspaceId: Type.String() })
const GroupParams = Type.Object({ workspaceId: Type.String(), groupId: Type.String() })

/**
 * The principal a seeded ACL entry names, by id or by the Permissions API's name keys; a group name is
 * the workspace-local group first, as in the Permissions API. A workspace-local group of another
 * workspace is not there.
 */
function aclPrincipal (a: DatabricksAccount, ws: Workspace, e: Static<typeof AclEntry> | Static<typeof PrincipalRef>): Principal | undefined {
  if (e.principal_id !== undefined) {
    const p = a.get(e.principal_id)
    return p?.kind === 'group' && p.workspaceId !== null && p.workspaceId !== ws.id ? undefined : p
  }
  if (e.user_name !== undefined) return a.userByName(e.user_name)
  if ('group_name' in e && e.group_name !== undefined) return a.groupByName(e.group_name, ws.id) ?? a.groupByName(e.group_name)
  if (e.service_principal_name !== undefined) return a.servicePrincipalByAppId(e.service_principal_name)
  return undefined
}

/** The whole account as tests assert on it: principals, memberships with their source, workspaces, ACLs. */
export function accountState (account: DatabricksAccount, limiter: RateLimiter): Record<string, unknown> {
  const tenant = account.env.tenant()
  const name = (p: Principal): string => p.kind === 'user' ? p.userName : p.kind === 'servicePrincipal' ? p.applicationId : p.displayName
  const summary = (id: string): Record<string, unknown> => {
    const p = account.get(id)
    return p === undefined ? { id } : { id, kind: p.kind, name: name(p), externalId: p.externalId }
  }
  const common = (p: Principal): Record<string, unknown> => ({
    id: p.id,
    externalId: p.externalId,
    displayName: p.displayName,
    origin: p.origin,
    groups: account.directParents(p.id).map(g => ({ ...summary(g.id), source: g.source }))
  })
  return {
    accountId: account.id,
    tenantId: tenant?.tenantId ?? null,
    settings: { ...account.settings },
    admins: {
      pat: DATABRICKS_ADMIN_PAT,
      applications: account.adminApplications === null ? [...(tenant?.applications.keys() ?? [])] : [...account.adminApplications],
      applicationsDefault: account.adminApplications === null,
      principals: [...account.adminPrincipals]
    },
    users: account.users().map(u => ({ ...common(u), userName: u.userName, active: u.active, status: account.status(u) })),
    servicePrincipals: account.servicePrincipals().map(sp => ({ ...common(sp), applicationId: sp.applicationId, active: sp.active, status: account.status(sp) })),
    groups: account.groups(null).map(g => ({ ...common(g), members: account.directMembers(g.id).map(m => ({ ...summary(m.id), source: m.source })) })),
    workspaces: [...account.workspaces.values()].map(ws => workspaceState(account, ws, summary)),
    rateLimits: { ...limiter.current, refused: { ...limiter.refused } }
  }
}

function workspaceState (account: DatabricksAccount, ws: Workspace, summary: (id: string) => Record<string, unknown>): Record<string, unknown> {
  return {
    id: ws.id,
    name: ws.name,
    assignments: [...ws.assignments].map(([id, level]) => ({ principal: summary(id), permissions: [level] })),
    groups: account.groups(ws.id).map(g => ({
      id: g.id,
      displayName: g.displayName,
      system: g.system,
      members: (g.system !== null ? ws.systemGroupMembers(g.system) : [...g.members]).map(summary)
    })),
    objects: [...ws.objects.values()].map(o => ({
      type: o.type,
      id: o.id,
      path: o.path,
      parentId: o.parentId,
      acl: [...o.acl].map(([id, level]) => ({ principal: summary(id), level }))
    })),
    dashboards: [...ws.dashboards.values()].map(d => ({
      ...renderDashboard(d, false),
      published: d.published === null ? null : { embedCredentials: d.published.embedCredentials, warehouseId: d.published.warehouseId }
    }))
  }
}

export async function controlDatabricksRoutes (parent: FastifyInstance, { ctx, limiter }: { ctx: EmulatorContext, limiter: RateLimiter }): Promise<void> {
  await parent.register(async (app) => {
    app.addHook('onRequest', loopbackOnly)
    app.setErrorHandler(async (err, _request, reply) => {
      if (err instanceof ControlError) return await reply.code(err.status).send({ error: { code: err.code, message: err.message } })
      if (err instanceof AccountError || err instanceof WorkspaceError) {
        const status = { 'not-found': 404, conflict: 409, invalid: 400 }[err.code]
        return await reply.code(status).send({ error: { code: err.code, message: err.message } })
      }
      if (err instanceof DatabricksError) return await reply.code(err.status).send({ error: { code: err.code, message: err.message } })
      const status = (err as { statusCode?: number }).statusCode ?? 500
      const client = status >= 400 && status < 500
      return await reply.code(client ? status : 500).send({ error: { code: client ? 'invalid-request' : 'internal', message: (err as Error).message } })
    })
    const r = app.withTypeProvider<TypeBoxTypeProvider>()
    const P = '/_emulator/databricks'
    const account = (): DatabricksAccount => databricksAccount(ctx)
    const workspace = (id: string): Workspace => {
      const ws = account().workspaces.get(id)
      if (ws === undefined) throw new ControlError(404, 'not-found', `workspace '${id}' does not exist`)
      return ws
    }
    const principal = (id: string): Principal => {
      const p = account().accountPrincipal(id)
      if (p === undefined) throw new ControlError(404, 'not-found', `principal '${id}' is not in the account`)
      return p
    }

    r.get(`${P}/state`, async () => accountState(account(), limiter))
    r.post(`${P}/reset`, async () => {
      resetAccount(ctx)
      limiter.reset()
      return accountState(account(), limiter)
    })

    r.get(`${P}/settings`, async () => ({ ...account().settings }))
    r.put(`${P}/settings`, { schema: { body: Schemas.settings } }, async (request) => {
      Object.assign(account().settings, request.body)
      return { ...account().settings }
    })

    r.put(`${P}/admins`, { schema: { body: Schemas.admins } }, async (request) => {
      const a = account()
      if (request.body.applications !== undefined) {
        a.adminApplications = request.body.applications === null ? null : new Set(request.body.applications.map(x => x.toLowerCase()))
      }
      if (request.body.principals !== undefined) {
        const ids = request.body.principals.map(id => principal(id).id)
        a.adminPrincipals.clear()
        for (const id of ids) a.adminPrincipals.add(id)
      }
      return (accountState(a, limiter) as { admins: unknown }).admins
    })

    r.post(`${P}/tokens`, { schema: { body: Schemas.token } }, async (request, reply) => {
      const a = account()
      const { principalId, userName, applicationId } = request.body
      const p = principalId !== undefined
        ? principal(principalId)
        : userName !== undefined ? a.userByName(userName) : applicationId !== undefined ? a.servicePrincipalByAppId(applicationId) : undefined
      if (p === undefined || p.kind === 'group') throw new ControlError(404, 'not-found', 'give the principalId, userName or applicationId of a user or service principal of the account')
      return await reply.code(201).send({ token: issueToken(a, p.id, () => randomBytes(16).toString('hex')), principalId: p.id })
    })

    r.get(`${P}/rate-limits`, async () => ({ ...limiter.current, refused: { ...limiter.refused } }))
    r.put(`${P}/rate-limits`, { schema: { body: Schemas.rateLimits } }, async (request) => {
      const body = request.body
      return limiter.configure({ ...body, limits: body.limits as Partial<Record<Family, number | null>> | undefined })
    })
    r.delete(`${P}/rate-limits`, async () => limiter.reset())

    r.post(`${P}/workspaces`, { schema: { body: Schemas.workspace } }, async (request, reply) => {
      const ws = account().createWorkspace(request.body)
      return await reply.code(201).send({ id: ws.id, name: ws.name, adminsGroupId: ws.adminsGroupId, usersGroupId: ws.usersGroupId })
    })

    r.post(`${P}/workspaces/:workspaceId/objects`, { schema: { params: WorkspaceParams, body: Schemas.object } }, async (request, reply) => {
      const ws = workspace(request.params.workspaceId)
      const { owner, ...body } = request.body
      const type = typeInfo(body.type)
      if (type.canonical === 'dashboards') throw new ControlError(400, 'invalid-request', 'create dashboards through /_emulator/databricks/workspaces/:id/dashboards')
      let ownerId: string | undefined
      if (owner !== undefined) {
        const noun = ownedNoun(type)
        if (noun === undefined) throw new ControlError(400, 'invalid-request', `${body.type} objects have no owner: only jobs, pipelines and warehouses do`)
        const p = aclPrincipal(account(), ws, owner)
        if (p === undefined) throw new ControlError(404, 'not-found', `no principal for owner ${JSON.stringify(owner)}`)
        if (p.kind === 'group') throw groupOwner(noun, p.displayName)
        ownerId = p.id
      }
      const o = ws.addObject({ ...body, type: type.canonical })
      if (ownerId !== undefined) o.acl.set(ownerId, 'IS_OWNER')
      return await reply.code(201).send({ type: o.type, id: o.id, name: o.name, path: o.path, parentId: o.parentId, owner: ownerId ?? null })
    })

    // Workspace-local groups (meta.resourceType "WorkspaceGroup" in the workspace SCIM API): what a
    // workspace had before identity federation, and what its admins can still make there.
    const localGroup = (ws: Workspace, id: string): AccountGroup => {
      const g = account().get(id)
      if (g?.kind !== 'group' || g.workspaceId !== ws.id) throw new ControlError(404, 'not-found', `group '${id}' is not a workspace-local group of workspace ${ws.id}`)
      if (g.system !== null) throw new ControlError(400, 'invalid-request', `${g.displayName} is a system group: its members are the workspace's assignments (PUT /workspaces/:id/assignments)`)
      return g
    }
    /** Members of a local group: account users, service principals and groups, or local groups of the same workspace. */
    const memberOf = (ws: Workspace, id: string): Principal => {
      const p = account().get(id)
      if (p === undefined || (p.kind === 'group' && p.workspaceId !== null && p.workspaceId !== ws.id)) throw new ControlError(404, 'not-found', `principal '${id}' is not in the account or this workspace`)
      if (p.kind === 'group' && p.system !== null) throw new ControlError(400, 'invalid-request', `${p.displayName} is a system group: it cannot be a member`)
      return p
    }
    const renderLocalGroup = (ws: Workspace, g: AccountGroup): Record<string, unknown> => ({
      id: g.id,
      displayName: g.displayName,
      workspaceId: ws.id,
      members: [...g.members],
      entitlements: [...(ws.entitlements.get(g.id) ?? [])]
    })
    r.post(`${P}/workspaces/:workspaceId/groups`, { schema: { params: WorkspaceParams, body: Schemas.localGroup } }, async (request, reply) => {
      const a = account()
      const ws = workspace(request.params.workspaceId)
      const { displayName, members = [], entitlements } = request.body
      for (const e of entitlements ?? []) if (!ENTITLEMENTS.has(e)) throw new ControlError(400, 'invalid-request', `unknown entitlement '${e}'`)
      const found = members.map(id => memberOf(ws, id))
      const g = a.createGroup({ displayName, workspaceId: ws.id, origin: 'control' })
      try {
        for (const m of found) a.addMember(g.id, m.id)
      } catch (err) {
        a.delete(g.id)
        throw err
      }
      if (entitlements !== undefined) ws.entitlements.set(g.id, new Set(entitlements))
      return await reply.code(201).send(renderLocalGroup(ws, g))
    })
    r.post(`${P}/workspaces/:workspaceId/groups/:groupId/members`, { schema: { params: GroupParams, body: Schemas.members } }, async (request) => {
      const a = account()
      const ws = workspace(request.params.workspaceId)
      const g = localGroup(ws, request.params.groupId)
      for (const m of request.body.members.map(id => memberOf(ws, id))) a.addMember(g.id, m.id)
      return renderLocalGroup(ws, g)
    })
    r.delete(`${P}/workspaces/:workspaceId/groups/:groupId/members`, { schema: { params: GroupParams, body: Schemas.members } }, async (request) => {
      const a = account()
      const ws = workspace(request.params.workspaceId)
      const g = localGroup(ws, request.params.groupId)
      for (const id of request.body.members) a.removeMember(g.id, id)
      return renderLocalGroup(ws, g)
    })

    r.post(`${P}/workspaces/:workspaceId/dashboards`, { schema: { params: WorkspaceParams, body: Schemas.dashboard } }, async (request, reply) => {
      const ws = workspace(request.params.workspaceId)
      const b = request.body
      const d = ws.createDashboard({ displayName: b.displayName, parentPath: b.parentPath ?? '/Shared', dashboardId: b.dashboardId, warehouseId: b.warehouseId, now: ctx.clock.now() })
      if (b.published !== undefined) d.published = { displayName: d.displayName, embedCredentials: b.published.embedCredentials, warehouseId: d.warehouseId, revisionCreateTime: ctx.clock.now() }
      return await reply.code(201).send({ ...renderDashboard(d, false), published: b.published ?? null })
    })

    r.put(`${P}/workspaces/:workspaceId/acls`, { schema: { params: WorkspaceParams, body: Schemas.acl } }, async (request) => {
      const a = account()
      const ws = workspace(request.params.workspaceId)
      const type = typeInfo(request.body.type)
      const o = ws.object(type.canonical, request.body.id)
      if (o === undefined) throw new ControlError(404, 'not-found', `${request.body.type} ${request.body.id} does not exist`)
      const entries = request.body.access_control_list.map(e => {
        if (!type.levels.includes(e.permission_level)) throw new ControlError(400, 'invalid-request', `level ${e.permission_level} is not one of ${type.levels.join(', ')}`)
        const p = aclPrincipal(a, ws, e)
        if (p === undefined) throw new ControlError(404, 'not-found', `no principal for ${JSON.stringify(e)}`)
        return { principal: p, level: e.permission_level }
      })
      const next = planAcl(type, o, entries, { replace: request.body.mode !== 'merge', mayChangeOwner: true, callerName: 'the control API', seeding: true })
      o.acl.clear()
      for (const [id, level] of next) o.acl.set(id, level)
      return objectPermissions(a, ws, type, o)
    })

    r.put(`${P}/workspaces/:workspaceId/assignments`, { schema: { params: WorkspaceParams, body: Schemas.assignment } }, async (request) => {
      const ws = workspace(request.params.workspaceId)
      const p = principal(request.body.principalId)
      const levels = request.body.permissions
      ws.setAssignment(p.id, levels.includes('ADMIN') ? 'ADMIN' : levels.includes('USER') ? 'USER' : null)
      return { principalId: p.id, permissions: ws.assignments.has(p.id) ? [ws.assignments.get(p.id)] : [] }
    })
  })
}
