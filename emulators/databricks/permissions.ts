// The Permissions API (reference §3.1, §3.2): `/api/2.0/permissions/{request_object_type}/{id}` GET, PUT
// (replace the direct grants), PATCH (merge), and `…/permissionLevels`, with each object type's levels.
// Objects in the workspace tree (directories, notebooks, files, dashboards, repos) inherit the grants of
// their parent directories: `inherited: true, inherited_from_object: ["/directories/<id>"]`. The
// workspace `admins` group always has CAN_MANAGE, inherited from the type's root ([UNCONF] strings:
// "/directories/" for tree objects, "/<type>/" otherwise, after the reference's example "/clusters/").
// A grant to a principal the account does not know: 400 `Principal: UserName(x) does not exist`.
//
// Who may change what ("Who may change permissions" in the reference):
// - changing grants takes CAN_MANAGE or IS_OWNER on the object (own, or through a group), or an admin;
// - cluster policies: workspace (or account) admins only, whatever the policy's grants say;
// - jobs, pipelines and warehouses have exactly one owner (IS_OWNER), a user or a service principal,
//   never a group; only admins change it, and the previous owner keeps CAN_MANAGE ("after a transfer the
//   previous owner gets CAN MANAGE"). A request that would leave two owners, or none where there was one,
//   is refused with Databricks' "The job must have exactly one owner." (databricks/cli #3849, #4466).
//   A PUT must name the owner of a job or pipeline (an ownerless PUT is refused, databricks/cli #5682); a
//   PUT on a warehouse keeps its owner, and one on a warehouse without an owner must name one
//   (terraform-provider-databricks #2678, #2894).
import type { DatabricksAccount, Principal } from './account.ts'
import type { Caller } from './auth.ts'
import { DatabricksError, badParameter, endpointNotFound, notFound } from './errors.ts'
import { route, type Call, type RouteConfig, type RouteDef } from './http.ts'
import { TREE_TYPES, type Workspace, type WorkspaceObject } from './workspace.ts'

const READ_RUN_EDIT_MANAGE = ['CAN_READ', 'CAN_RUN', 'CAN_EDIT', 'CAN_MANAGE']

interface TypeInfo {
  /** Where objects of this type are stored (aliases share one: `warehouses` → `sql/warehouses`). */
  canonical: string
  /** `object_type` in responses ([UNCONF] for the types other than the reference's "cluster"). */
  objectType: string
  levels: string[]
}

const info = (canonical: string, objectType: string, levels: string[]): TypeInfo => ({ canonical, objectType, levels })

/** Levels per request_object_type (Terraform permissions/permission_definitions.go). */
export const OBJECT_TYPES: Readonly<Record<string, TypeInfo>> = {
  dashboards: info('dashboards', 'dashboard', READ_RUN_EDIT_MANAGE),
  'dbsql-dashboards': info('dbsql-dashboards', 'dashboard', READ_RUN_EDIT_MANAGE),
  'sql/dashboards': info('dbsql-dashboards', 'dashboard', READ_RUN_EDIT_MANAGE),
  directories: info('directories', 'directory', READ_RUN_EDIT_MANAGE),
  notebooks: info('notebooks', 'notebook', READ_RUN_EDIT_MANAGE),
  files: info('files', 'file', READ_RUN_EDIT_MANAGE),
  repos: info('repos', 'repo', READ_RUN_EDIT_MANAGE),
  clusters: info('clusters', 'cluster', ['CAN_ATTACH_TO', 'CAN_RESTART', 'CAN_MANAGE']),
  jobs: info('jobs', 'job', ['CAN_VIEW', 'CAN_MANAGE_RUN', 'CAN_MANAGE', 'IS_OWNER']),
  pipelines: info('pipelines', 'pipelines', ['CAN_VIEW', 'CAN_RUN', 'CAN_MANAGE', 'IS_OWNER']),
  'sql/warehouses': info('sql/warehouses', 'warehouses', ['CAN_VIEW', 'CAN_MONITOR', 'CAN_USE', 'CAN_MANAGE', 'IS_OWNER']),
  warehouses: info('sql/warehouses', 'warehouses', ['CAN_VIEW', 'CAN_MONITOR', 'CAN_USE', 'CAN_MANAGE', 'IS_OWNER']),
  'cluster-policies': info('cluster-policies', 'cluster-policy', ['CAN_USE']),
  'instance-pools': info('instance-pools', 'instance-pool', ['CAN_ATTACH_TO', 'CAN_MANAGE']),
  'serving-endpoints': info('serving-endpoints', 'serving-endpoint', ['CAN_VIEW', 'CAN_QUERY', 'CAN_MANAGE']),
  experiments: info('experiments', 'mlflowExperiment', ['CAN_READ', 'CAN_EDIT', 'CAN_MANAGE']),
  'registered-models': info('registered-models', 'registered-model', ['CAN_READ', 'CAN_EDIT', 'CAN_MANAGE_STAGING_VERSIONS', 'CAN_MANAGE_PRODUCTION_VERSIONS', 'CAN_MANAGE']),
  'sql/queries': info('sql/queries', 'query', READ_RUN_EDIT_MANAGE),
  queries: info('sql/queries', 'query', READ_RUN_EDIT_MANAGE),
  'sql/alerts': info('sql/alerts', 'alert', READ_RUN_EDIT_MANAGE),
  alerts: info('sql/alerts', 'alert', READ_RUN_EDIT_MANAGE),
  alertsv2: info('alertsv2', 'alertv2', READ_RUN_EDIT_MANAGE),
  apps: info('apps', 'apps', ['CAN_USE', 'CAN_MANAGE']),
  'vector-search-endpoints': info('vector-search-endpoints', 'vector-search-endpoints', ['CAN_USE', 'CAN_MANAGE']),
  'database-instances': info('database-instances', 'database-instances', ['CAN_USE', 'CAN_MANAGE'])
}

const DESCRIPTIONS: Record<string, string> = {
  CAN_READ: 'Can view',
  CAN_RUN: 'Can run',
  CAN_EDIT: 'Can edit',
  CAN_MANAGE: 'Can manage',
  CAN_ATTACH_TO: 'Can attach to',
  CAN_RESTART: 'Can restart',
  CAN_VIEW: 'Can view',
  CAN_MANAGE_RUN: 'Can manage runs',
  IS_OWNER: 'Is owner',
  CAN_MONITOR: 'Can monitor',
  CAN_USE: 'Can use',
  CAN_QUERY: 'Can query',
  CAN_MANAGE_STAGING_VERSIONS: 'Can manage staging versions',
  CAN_MANAGE_PRODUCTION_VERSIONS: 'Can manage production versions'
}

export function typeInfo (requestType: string): TypeInfo {
  const t = OBJECT_TYPES[requestType]
  if (t === undefined) throw badParameter(`${requestType} is not a valid request object type. Valid types: ${Object.keys(OBJECT_TYPES).join(', ')}.`)
  return t
}

/** `/api/2.0/permissions/<type>/<id>[/permissionLevels]`, where `<type>` may be `sql/<x>`. */
function parsePermissionPath (call: Call): { type: TypeInfo, requestType: string, id: string, levels: boolean } {
  const rest = (call.params['*'] ?? '').split('/').filter(s => s !== '')
  const requestType = rest[0] === 'sql' ? `sql/${rest[1] ?? ''}` : rest[0] ?? ''
  const after = rest.slice(rest[0] === 'sql' ? 2 : 1)
  const type = typeInfo(requestType)
  if (after.length === 0 || after.length > 2 || (after.length === 2 && after[1] !== 'permissionLevels')) {
    throw endpointNotFound(call.request.method, call.request.url.split('?')[0] ?? '')
  }
  return { type, requestType, id: decodeURIComponent(after[0] as string), levels: after.length === 2 }
}

function objectOf (ws: Workspace, type: TypeInfo, id: string): WorkspaceObject {
  const object = ws.object(type.canonical, id)
  if (object === undefined) throw notFound(`${type.objectType.charAt(0).toUpperCase()}${type.objectType.slice(1)} ${id} does not exist.`)
  return object
}

interface Grant {
  permission_level: string
  inherited: boolean
  inherited_from_object?: string[]
}

function principalName (p: Principal): Record<string, string> {
  if (p.kind === 'user') return { user_name: p.userName, display_name: p.displayName }
  if (p.kind === 'group') return { group_name: p.displayName, display_name: p.displayName }
  return { service_principal_name: p.applicationId, display_name: p.displayName }
}

/** Direct and inherited grants of an object, by principal id, in response order. */
export function grants (ws: Workspace, object: WorkspaceObject): Map<string, Grant[]> {
  const out = new Map<string, Grant[]>()
  const add = (id: string, g: Grant): void => {
    const list = out.get(id)
    if (list === undefined) out.set(id, [g])
    else list.push(g)
  }
  for (const [id, level] of object.acl) add(id, { permission_level: level, inherited: false })
  if (TREE_TYPES.has(object.type)) {
    for (const dir of ws.ancestors(object)) {
      for (const [id, level] of dir.acl) add(id, { permission_level: level, inherited: true, inherited_from_object: [`/directories/${dir.id}`] })
    }
  }
  const root = TREE_TYPES.has(object.type) ? '/directories/' : `/${object.type}/`
  add(ws.adminsGroupId, { permission_level: 'CAN_MANAGE', inherited: true, inherited_from_object: [root] })
  return out
}

export function objectPermissions (account: DatabricksAccount, ws: Workspace, type: TypeInfo, object: WorkspaceObject): Record<string, unknown> {
  const acl: Array<Record<string, unknown>> = []
  for (const [id, list] of grants(ws, object)) {
    const p = account.get(id)
    if (p !== undefined) acl.push({ ...principalName(p), all_permissions: list })
  }
  return { object_id: `/${type.canonical}/${object.id}`, object_type: type.objectType, access_control_list: acl }
}

/** The account principal an ACL entry names; an unknown one is the documented 400. */
function principalOfEntry (account: DatabricksAccount, ws: Workspace, entry: Record<string, unknown>): Principal {
  const keys = (['user_name', 'group_name', 'service_principal_name'] as const).filter(k => entry[k] !== undefined && entry[k] !== null)
  if (keys.length !== 1) throw badParameter('Each access control entry needs exactly one of user_name, group_name or service_principal_name.')
  const key = keys[0] as 'user_name' | 'group_name' | 'service_principal_name'
  const name = entry[key]
  if (typeof name !== 'string' || name === '') throw badParameter(`${key} must be a non-empty string.`)
  const found = key === 'user_name'
    ? account.userByName(name)
    : key === 'group_name'
      ? account.groupByName(name, ws.id) ?? account.groupByName(name)
      : account.servicePrincipalByAppId(name)
  if (found === undefined) {
    const label = { user_name: 'UserName', group_name: 'GroupName', service_principal_name: 'ServicePrincipalName' }[key]
    throw new DatabricksError(400, 'BAD_REQUEST', `Principal: ${label}(${name}) does not exist`)
  }
  return found
}

export interface AclChange { principal: Principal, level: string }

function parseAcl (call: Call, ws: Workspace, type: TypeInfo): AclChange[] {
  const list = call.optionalBody()?.access_control_list
  if (list === undefined || list === null) return []
  if (!Array.isArray(list)) throw badParameter('access_control_list must be an array.')
  return list.map(raw => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badParameter('Each access control entry must be an object.')
    const entry = raw as Record<string, unknown>
    const level = entry.permission_level
    if (typeof level !== 'string' || !type.levels.includes(level)) {
      throw badParameter(`Permission level ${String(level)} is not supported for ${type.objectType}. Supported levels: ${type.levels.join(', ')}.`)
    }
    return { principal: principalOfEntry(call.account, ws, entry), level }
  })
}

/** Account admins (the built-in admin token and admin applications included) and workspace admins. */
function isAdmin (ws: Workspace, caller: Caller): boolean {
  return caller.accountAdmin || caller.principal === null || ws.access(caller.principal.id).level === 'ADMIN'
}

/** Changing grants takes account or workspace admin, or CAN_MANAGE/IS_OWNER on the object (own or through groups). */
function requireManage (account: DatabricksAccount, ws: Workspace, caller: Caller, object: WorkspaceObject): void {
  if (isAdmin(ws, caller)) return
  const me = caller.principal as Principal
  const access = ws.access(me.id).level
  // "Cluster policies: … only workspace admins manage a policy and its permissions."
  if (object.type === 'cluster-policies') {
    throw new DatabricksError(403, 'PERMISSION_DENIED', `Only workspace admins can change the permissions of cluster policy ${object.id}. ${caller.userName} is not a workspace admin.`)
  }
  const mine = new Set([me.id, ...account.transitiveParents(me.id), ...(access !== null ? [ws.usersGroupId] : [])])
  for (const [id, list] of grants(ws, object)) {
    if (mine.has(id) && list.some(g => g.permission_level === 'CAN_MANAGE' || g.permission_level === 'IS_OWNER')) return
  }
  throw new DatabricksError(403, 'PERMISSION_DENIED', `${caller.userName} does not have Manage permissions on ${object.type} ${object.id}.`)
}

/** Object types with an owner (IS_OWNER), and what Databricks calls one in its messages. */
const OWNED: Readonly<Record<string, string>> = { jobs: 'job', pipelines: 'pipeline', 'sql/warehouses': 'warehouse' }

/** `job`, `pipeline` or `warehouse` for the types with an owner; undefined for the others. */
export function ownedNoun (type: TypeInfo): string | undefined {
  return OWNED[type.canonical]
}

/** The principal id holding IS_OWNER on an object, if any. */
export function ownerOf (object: WorkspaceObject): string | undefined {
  for (const [id, level] of object.acl) if (level === 'IS_OWNER') return id
  return undefined
}

/** Databricks' message (databricks/cli #3849, #4466); the status and error_code (400 INVALID_PARAMETER_VALUE) are [UNCONF]. */
const oneOwner = (noun: string): DatabricksError => badParameter(`The ${noun} must have exactly one owner.`)

/** [UNCONF] wording: Databricks refuses a group owner ("A job cannot have a group as an owner", Terraform docs); its exact message is not known. */
export const groupOwner = (noun: string, name: string): DatabricksError =>
  badParameter(`Group ${name} cannot be the owner of a ${noun}: a group cannot be the owner. Give IS_OWNER to a user or a service principal.`)

export interface AclPlanOptions {
  /** PUT (true): the entries replace the direct grants; PATCH (false): they are merged in. */
  replace: boolean
  /** Whether the caller may set a new owner (workspace and account admins). */
  mayChangeOwner: boolean
  /** Whose request it is, for the messages. */
  callerName: string
  /** The control API seeds states the Permissions API would refuse to reach: an ownerless object, a replace without the previous owner. */
  seeding?: boolean
}

/**
 * The direct grants an object has after a PUT or PATCH, with the ownership rules of the types that have
 * an owner; the object is not changed, so a refused request changes nothing. Throws DatabricksError.
 */
export function planAcl (type: TypeInfo, object: WorkspaceObject, entries: readonly AclChange[], opts: AclPlanOptions): Map<string, string> {
  const requested = new Map<string, string>()
  for (const { principal, level } of entries) requested.set(principal.id, level)
  const next = opts.replace ? new Map<string, string>() : new Map(object.acl)
  const noun = OWNED[type.canonical]
  if (noun === undefined) {
    for (const [id, level] of requested) next.set(id, level)
    return next
  }
  for (const { principal, level } of entries) {
    if (level === 'IS_OWNER' && principal.kind === 'group') throw groupOwner(noun, principal.displayName)
  }
  const owners = [...requested].filter(([, level]) => level === 'IS_OWNER').map(([id]) => id)
  if (owners.length > 1) throw oneOwner(noun)
  const current = ownerOf(object)
  const wanted = owners[0]
  if (wanted !== undefined && wanted !== current && !opts.mayChangeOwner) {
    // [UNCONF] wording; the rule is the reference's "Only workspace admins change the owner".
    throw new DatabricksError(403, 'PERMISSION_DENIED', `Only workspace admins can change the owner of ${noun} ${object.id}. ${opts.callerName} is not a workspace admin.`)
  }
  for (const [id, level] of requested) next.set(id, level)
  if (opts.seeding === true) {
    // Seeding keeps the one-owner rule (a transfer by merge demotes the previous owner) and allows the rest.
    if (wanted !== undefined && current !== undefined && wanted !== current && !opts.replace && !requested.has(current)) next.set(current, 'CAN_MANAGE')
    return next
  }
  if (wanted === undefined) {
    if (opts.replace && noun !== 'warehouse') throw oneOwner(noun)
    if (current === undefined) {
      if (opts.replace) throw badParameter(`PUT requests for warehouse ${object.id} with no existing owner must provide a new owner.`)
      return next
    }
    // Naming the owner with another level, and no new owner, would leave none.
    if (requested.has(current)) throw oneOwner(noun)
    next.set(current, 'IS_OWNER')
    return next
  }
  // A transfer: the previous owner keeps CAN_MANAGE, unless the same request gives it another level.
  if (current !== undefined && current !== wanted && !requested.has(current)) next.set(current, 'CAN_MANAGE')
  return next
}

export function permissionRoutes (): RouteDef[] {
  const read: RouteConfig = { family: 'permissions-read', scope: 'workspace', scim: false, access: 'workspace-user' }
  const write: RouteConfig = { family: 'permissions-write', scope: 'workspace', scim: false, access: 'workspace-user' }
  const url = '/api/2.0/permissions/*'
  return [
    route('GET', url, read, call => {
      const ws = call.workspace as Workspace
      const { type, id, levels } = parsePermissionPath(call)
      const object = objectOf(ws, type, id)
      if (levels) return { permission_levels: type.levels.map(l => ({ permission_level: l, description: DESCRIPTIONS[l] ?? l })) }
      return objectPermissions(call.account, ws, type, object)
    }),
    ...(['PUT', 'PATCH'] as const).map(method => route(method, url, write, call => {
      const ws = call.workspace as Workspace
      const { type, id, levels } = parsePermissionPath(call)
      if (levels) throw endpointNotFound(method, call.request.url.split('?')[0] ?? '')
      const object = objectOf(ws, type, id)
      requireManage(call.account, ws, call.caller, object)
      const entries = parseAcl(call, ws, type)
      // PUT replaces every direct grant ("Deletes all direct permissions if none are specified"); PATCH merges.
      const next = planAcl(type, object, entries, { replace: method === 'PUT', mayChangeOwner: isAdmin(ws, call.caller), callerName: call.caller.userName })
      object.acl.clear()
      for (const [id, level] of next) object.acl.set(id, level)
      return objectPermissions(call.account, ws, type, object)
    }))
  ]
}
