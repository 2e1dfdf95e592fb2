// Lakeview (AI/BI) dashboards, minimal (reference §3.3): create a draft in a workspace folder, get,
// list, publish with `embed_credentials`, read and delete the published version; and the few Workspace
// API calls that tie the folder tree to ids: get-status, mkdirs, list.
import type { Caller } from './auth.ts'
import { badParameter, notFound } from './errors.ts'
import { queryString, route, type Call, type RouteConfig, type RouteDef } from './http.ts'
import type { Dashboard, Workspace, WorkspaceObject } from './workspace.ts'

const iso = (ms: number): string => new Date(ms).toISOString()

export function renderDashboard (d: Dashboard, withBody = true): Record<string, unknown> {
  return {
    dashboard_id: d.dashboardId,
    display_name: d.displayName,
    path: d.path,
    parent_path: d.parentPath,
    create_time: iso(d.createTime),
    update_time: iso(d.updateTime),
    etag: d.etag,
    lifecycle_state: 'ACTIVE',
    ...(d.warehouseId !== null ? { warehouse_id: d.warehouseId } : {}),
    ...(withBody ? { serialized_dashboard: d.serializedDashboard } : {})
  }
}

function renderPublished (d: Dashboard): Record<string, unknown> {
  const p = d.published as NonNullable<Dashboard['published']>
  return {
    display_name: p.displayName,
    embed_credentials: p.embedCredentials,
    revision_create_time: iso(p.revisionCreateTime),
    ...(p.warehouseId !== null ? { warehouse_id: p.warehouseId } : {})
  }
}

function dashboardOf (call: Call): Dashboard {
  const id = call.params.dashboardId as string
  const d = (call.workspace as Workspace).dashboards.get(id)
  if (d === undefined) throw notFound(`Unable to find dashboard [${id}].`)
  return d
}

/** The caller's home folder, the default parent of new dashboards. */
function home (ws: Workspace, caller: Caller): WorkspaceObject {
  const p = caller.principal
  if (p?.kind === 'user') return ws.homeFolder(p)
  const dir = ws.mkdirs(`/Users/${caller.userName}`)
  if (p !== null) dir.acl.set(p.id, 'CAN_MANAGE')
  return dir
}

function optional (body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') throw badParameter(`${key} must be a string.`)
  return v
}

const OBJECT_TYPE: Record<string, string> = { directories: 'DIRECTORY', notebooks: 'NOTEBOOK', files: 'FILE', dashboards: 'DASHBOARD', repos: 'REPO' }

function status (ws: Workspace, o: WorkspaceObject): Record<string, unknown> {
  const dashboard = o.type === 'dashboards' ? ws.dashboards.get(o.id) : undefined
  return {
    object_type: OBJECT_TYPE[o.type] ?? 'FILE',
    path: o.path,
    object_id: Number(dashboard?.objectId ?? o.id),
    ...(dashboard !== undefined ? { resource_id: dashboard.dashboardId } : {})
  }
}

function pathParam (call: Call): string {
  const path = queryString(call, 'path')
  if (path === undefined || path === '') throw badParameter('path is required.')
  return path
}

function existing (ws: Workspace, path: string): WorkspaceObject {
  const o = ws.objectByPath(path)
  if (o === undefined) throw notFound(`Path (${path}) doesn't exist.`)
  return o
}

export function dashboardRoutes (): RouteDef[] {
  const cfg: RouteConfig = { family: 'lakeview', scope: 'workspace', scim: false, access: 'workspace-user' }
  const ws: RouteConfig = { family: 'workspace', scope: 'workspace', scim: false, access: 'workspace-user' }
  const base = '/api/2.0/lakeview/dashboards'
  return [
    route('POST', base, cfg, call => {
      const workspace = call.workspace as Workspace
      const body = call.body()
      const displayName = optional(body, 'display_name')
      if (displayName === undefined || displayName.trim() === '') throw badParameter('display_name is required.')
      const parentPath = optional(body, 'parent_path') ?? home(workspace, call.caller).path ?? '/'
      const d = workspace.createDashboard({
        displayName,
        parentPath,
        warehouseId: optional(body, 'warehouse_id'),
        serializedDashboard: optional(body, 'serialized_dashboard'),
        now: call.ctx.clock.now()
      })
      // The creator manages its dashboard.
      if (call.caller.principal !== null) workspace.object('dashboards', d.dashboardId)?.acl.set(call.caller.principal.id, 'CAN_MANAGE')
      return renderDashboard(d)
    }),
    route('GET', base, cfg, call => ({ dashboards: [...(call.workspace as Workspace).dashboards.values()].map(d => renderDashboard(d, false)) })),
    route('GET', `${base}/:dashboardId`, cfg, call => renderDashboard(dashboardOf(call))),
    route('POST', `${base}/:dashboardId/published`, cfg, call => {
      const d = dashboardOf(call)
      const body = call.optionalBody() ?? {}
      const embed = body.embed_credentials
      if (embed !== undefined && typeof embed !== 'boolean') throw badParameter('embed_credentials must be a boolean.')
      // [UNCONF] default: embedded credentials, as the UI's publish dialog defaults to.
      d.published = {
        displayName: d.displayName,
        embedCredentials: embed ?? true,
        warehouseId: optional(body, 'warehouse_id') ?? d.warehouseId,
        revisionCreateTime: call.ctx.clock.now()
      }
      return renderPublished(d)
    }),
    route('GET', `${base}/:dashboardId/published`, cfg, call => {
      const d = dashboardOf(call)
      if (d.published === null) throw notFound(`Dashboard [${d.dashboardId}] is not published.`)
      return renderPublished(d)
    }),
    route('DELETE', `${base}/:dashboardId/published`, cfg, call => {
      const d = dashboardOf(call)
      if (d.published === null) throw notFound(`Dashboard [${d.dashboardId}] is not published.`)
      d.published = null
      return {}
    }),
    route('GET', '/api/2.0/workspace/get-status', ws, call => {
      const workspace = call.workspace as Workspace
      return status(workspace, existing(workspace, pathParam(call)))
    }),
    route('GET', '/api/2.0/workspace/list', ws, call => {
      const workspace = call.workspace as Workspace
      const dir = existing(workspace, pathParam(call))
      const children = [...workspace.objects.values()].filter(o => o.parentId === dir.id && o.path !== null)
      return children.length === 0 ? {} : { objects: children.map(o => status(workspace, o)) }
    }),
    route('POST', '/api/2.0/workspace/mkdirs', { ...ws, access: 'workspace-user' }, call => {
      const path = optional(call.body(), 'path')
      if (path === undefined || path === '') throw badParameter('path is required.')
      ;(call.workspace as Workspace).mkdirs(path)
      return {}
    })
  ]
}
