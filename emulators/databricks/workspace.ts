// One emulated workspace: permission assignments (who may use it, as USER or ADMIN), workspace-level
// entitlements, the object tree (directories with notebooks, files and dashboards in them) plus flat
// objects (clusters, jobs, warehouses…), each with its direct ACL, and the Lakeview dashboards.
import { randomUUID } from 'node:crypto'
import type { DatabricksAccount, Principal } from './account.ts'

export type AssignmentLevel = 'USER' | 'ADMIN'

export interface WorkspaceObject {
  /** The canonical `request_object_type` of the Permissions API (`directories`, `sql/warehouses`…). */
  type: string
  id: string
  name: string
  /** Workspace path (tree objects only), without the `/Workspace` prefix. */
  path: string | null
  /** Id of the parent directory (tree objects only; null for the root). */
  parentId: string | null
  /** Direct grants: principal id → permission level. */
  acl: Map<string, string>
}

export interface PublishedDashboard {
  displayName: string
  embedCredentials: boolean
  warehouseId: string | null
  revisionCreateTime: number
}

export interface Dashboard {
  dashboardId: string
  /** The numeric workspace-file id (`object_id` of get-status; `resource_id` there is the dashboard id). */
  objectId: string
  displayName: string
  parentPath: string
  path: string
  warehouseId: string | null
  serializedDashboard: string
  createTime: number
  updateTime: number
  etag: string
  published: PublishedDashboard | null
}

/** Object types that live in the workspace file tree and inherit from their parent directories. */
export const TREE_TYPES = new Set(['directories', 'notebooks', 'files', 'dashboards', 'repos'])

export class WorkspaceError extends Error {
  constructor (readonly code: 'not-found' | 'conflict' | 'invalid', message: string) {
    super(message)
  }
}

/** `/Workspace/Users/a/` → `/Users/a`; paths must be absolute. */
export function normalizePath (path: string): string {
  if (!path.startsWith('/')) throw new WorkspaceError('invalid', `Path (${path}) must be absolute.`)
  let p = path.replace(/\/+/g, '/')
  if (p === '/Workspace' || p.startsWith('/Workspace/')) p = p.slice('/Workspace'.length) || '/'
  if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1)
  if (p.split('/').some(s => s === '.' || s === '..')) throw new WorkspaceError('invalid', `Path (${path}) is not valid.`)
  return p
}

export class Workspace {
  readonly id: string
  readonly name: string
  readonly adminsGroupId: string
  readonly usersGroupId: string
  readonly assignments = new Map<string, AssignmentLevel>()
  readonly entitlements = new Map<string, Set<string>>()
  readonly objects = new Map<string, WorkspaceObject>()
  readonly dashboards = new Map<string, Dashboard>()
  private readonly paths = new Map<string, string>()
  readonly rootId: string

  constructor (private readonly account: DatabricksAccount, init: { id: string, name: string, adminsGroupId: string, usersGroupId: string }) {
    this.id = init.id
    this.name = init.name
    this.adminsGroupId = init.adminsGroupId
    this.usersGroupId = init.usersGroupId
    const root = this.put({ type: 'directories', id: account.nextId(), name: '', path: '/', parentId: null, acl: new Map() })
    this.rootId = root.id
    this.mkdirs('/Users')
    this.mkdirs('/Shared')
  }

  // ---- access ---------------------------------------------------------------------------------------

  /** Workspace access of a principal: its own assignment, and the best one of its (transitive) groups. */
  access (principalId: string): { direct: AssignmentLevel | null, viaGroups: AssignmentLevel | null, level: AssignmentLevel | null } {
    const direct = this.assignments.get(principalId) ?? null
    let viaGroups: AssignmentLevel | null = null
    for (const g of this.account.transitiveParents(principalId)) {
      const level = this.assignments.get(g)
      if (level === 'ADMIN') viaGroups = 'ADMIN'
      else if (level === 'USER' && viaGroups === null) viaGroups = 'USER'
    }
    const level = direct === 'ADMIN' || viaGroups === 'ADMIN' ? 'ADMIN' : (direct ?? viaGroups)
    return { direct, viaGroups, level }
  }

  setAssignment (principalId: string, level: AssignmentLevel | null): void {
    if (level === null) this.assignments.delete(principalId)
    else this.assignments.set(principalId, level)
  }

  /** Members of the `admins` / `users` system groups: derived from the assignments. */
  systemGroupMembers (which: 'admins' | 'users'): string[] {
    const out: string[] = []
    for (const p of this.account.principals.values()) {
      if (p.kind === 'group') continue
      const level = this.access(p.id).level
      if (level === 'ADMIN' || (which === 'users' && level === 'USER')) out.push(p.id)
    }
    return out
  }

  forgetPrincipal (id: string): void {
    this.assignments.delete(id)
    this.entitlements.delete(id)
    for (const o of this.objects.values()) o.acl.delete(id)
  }

  // ---- objects --------------------------------------------------------------------------------------

  object (type: string, id: string): WorkspaceObject | undefined {
    return this.objects.get(`${type}/${id}`)
  }

  objectByPath (path: string): WorkspaceObject | undefined {
    const key = this.paths.get(normalizePath(path))
    return key === undefined ? undefined : this.objects.get(key)
  }

  /** Creates every missing directory on `path` and returns the last one. */
  mkdirs (path: string): WorkspaceObject {
    const norm = normalizePath(path)
    let current = this.objects.get(`directories/${this.rootId}`) as WorkspaceObject
    let at = ''
    for (const segment of norm.split('/').filter(s => s !== '')) {
      at += `/${segment}`
      const existing = this.objectByPath(at)
      if (existing !== undefined) {
        if (existing.type !== 'directories') throw new WorkspaceError('conflict', `Path (${at}) already exists and is not a directory.`)
        current = existing
        continue
      }
      current = this.put({ type: 'directories', id: this.account.nextId(), name: segment, path: at, parentId: current.id, acl: new Map() })
    }
    return current
  }

  /** A user's home folder `/Users/<userName>`, created with CAN_MANAGE for its owner. */
  homeFolder (user: Principal & { kind: 'user' }): WorkspaceObject {
    const path = `/Users/${user.userName}`
    const existing = this.objectByPath(path)
    if (existing !== undefined) return existing
    const dir = this.mkdirs(path)
    dir.acl.set(user.id, 'CAN_MANAGE')
    return dir
  }

  /**
   * Adds an object. Tree types need a path (their parent directories are created); flat types an id or a
   * name. Ids are generated when absent (numbers; dashboards get 32-hex ids).
   */
  addObject (input: { type: string, id?: string, name?: string, path?: string }): WorkspaceObject {
    if (input.type === 'directories' && input.path !== undefined) {
      if (this.objectByPath(input.path) !== undefined) throw new WorkspaceError('conflict', `Path (${input.path}) already exists.`)
      const dir = this.mkdirs(input.path)
      return input.id === undefined ? dir : this.reId(dir, input.id)
    }
    const id = input.id ?? (input.type === 'dashboards' ? randomUUID().replace(/-/g, '') : this.account.nextId())
    if (this.object(input.type, id) !== undefined) throw new WorkspaceError('conflict', `${input.type} ${id} already exists.`)
    if (TREE_TYPES.has(input.type)) {
      if (input.path === undefined) throw new WorkspaceError('invalid', `A ${input.type} object needs a path.`)
      const path = normalizePath(input.path)
      if (this.objectByPath(path) !== undefined) throw new WorkspaceError('conflict', `Path (${path}) already exists.`)
      const slash = path.lastIndexOf('/')
      const parent = this.mkdirs(slash === 0 ? '/' : path.slice(0, slash))
      return this.put({ type: input.type, id, name: path.slice(slash + 1), path, parentId: parent.id, acl: new Map() })
    }
    return this.put({ type: input.type, id, name: input.name ?? `${input.type}-${id}`, path: null, parentId: null, acl: new Map() })
  }

  /** Ancestor directories of an object, nearest first. */
  ancestors (object: WorkspaceObject): WorkspaceObject[] {
    const out: WorkspaceObject[] = []
    let parentId = object.parentId
    while (parentId !== null) {
      const dir = this.object('directories', parentId)
      if (dir === undefined) break
      out.push(dir)
      parentId = dir.parentId
    }
    return out
  }

  // ---- dashboards -----------------------------------------------------------------------------------

  createDashboard (input: { displayName: string, parentPath: string, warehouseId?: string | null, serializedDashboard?: string, dashboardId?: string, now: number }): Dashboard {
    const parentPath = normalizePath(input.parentPath)
    const parent = this.objectByPath(parentPath)
    if (parent === undefined) throw new WorkspaceError('not-found', `Path (${parentPath}) doesn't exist.`)
    if (parent.type !== 'directories') throw new WorkspaceError('invalid', `Path (${parentPath}) is not a directory.`)
    const path = `${parentPath === '/' ? '' : parentPath}/${input.displayName}.lvdash.json`
    const object = this.addObject({ type: 'dashboards', id: input.dashboardId, path })
    const dashboard: Dashboard = {
      dashboardId: object.id,
      objectId: this.account.nextId(),
      displayName: input.displayName,
      parentPath,
      path,
      warehouseId: input.warehouseId ?? null,
      serializedDashboard: input.serializedDashboard ?? '{"pages":[]}',
      createTime: input.now,
      updateTime: input.now,
      etag: String(input.now),
      published: null
    }
    this.dashboards.set(dashboard.dashboardId, dashboard)
    return dashboard
  }

  // ---- internals ------------------------------------------------------------------------------------

  private put (object: WorkspaceObject): WorkspaceObject {
    this.objects.set(`${object.type}/${object.id}`, object)
    if (object.path !== null) this.paths.set(object.path, `${object.type}/${object.id}`)
    return object
  }

  private reId (dir: WorkspaceObject, id: string): WorkspaceObject {
    if (this.object('directories', id) !== undefined) throw new WorkspaceError('conflict', `directories ${id} already exists.`)
    this.objects.delete(`directories/${dir.id}`)
    const old = dir.id
    dir.id = id
    this.put(dir)
    for (const o of this.objects.values()) if (o.parentId === old) o.parentId = id
    return dir
  }
}
