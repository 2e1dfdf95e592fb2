// The Permissions API (reference §3.1, §3.2): `/api/2.0/permissions/{request_object_type}/{id}` GET, PUT
// (replace the direct grants), PATCH (merge), and `…/permissionLevels`, with each object type's levels.
// Objects in the workspace tree (directories, notebooks, files, dashboards, repos) inherit the grants of
// their parent directories: `inherited: true, inherited_from_object: ["/directories/<id>"]`. The
// workspace `admins` group always has CAN_MANAGE, inherited from the type's root ([UNCONF] strings:
// "/directories/" for tree objects, "/<type>/" otherwise, after the reference's example "/clusters/").
// A grant to a principal the account does not know: 400 `Principal: UserName(x) does not exist`.
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

function parseAcl (call: Call, ws: Workspace, type: TypeInfo): Array<{ principal: Principal, level: string }> {
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

/** Changing grants takes account or workspace admin, or CAN_MANAGE/IS_OWNER on the object (own or through groups). */
function requireManage (account: DatabricksAccount, ws: Workspace, caller: Caller, object: WorkspaceObject): void {
  if (caller.accountAdmin || caller.principal === null) return
  const me = caller.principal
  const access = ws.access(me.id).level
  if (access === 'ADMIN') return
  const mine = new Set([me.id, ...account.transitiveParents(me.id), ...(access !== null ? [ws.usersGroupId] : [])])
  for (const [id, list] of grants(ws, object)) {
    if (mine.has(id) && list.some(g => g.permission_level === 'CAN_MANAGE' || g.permission_level === 'IS_OWNER')) return
  }
  throw new DatabricksError(403, 'PERMISSION_DENIED', `${caller.userName} does not have Manage permissions on ${object.type} ${object.id}.`)
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
      if (method === 'PUT') object.acl.clear()
      for (const { principal, level } of entries) object.acl.set(principal.id, level)
      return objectPermissions(call.account, ws, type, object)
    }))
  ]
}
