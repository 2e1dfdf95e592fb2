// Workspace access, read from the account: who is assigned to a workspace, and what a principal may do
// there directly or through its groups.
//
// - WorkspaceAssignments.forWorkspace(id): the workspace's permission assignments (v1 API, reference
//   §2.6: `GET /api/2.0/accounts/{account_id}/workspaces/{workspace_id}/permissionassignments`, every
//   page), cached briefly in a bounded LRU (TTL option, injected clock); concurrent loads of one workspace
//   share one upstream call. An unknown workspace is a WorkspaceNotFoundError.
// - decideWorkspaceAccess(assignments, principalId, groupIds): pure. DIRECT when the principal has an
//   assignment of its own, INDIRECT when only groups among `groupIds` (the principal's transitive groups,
//   Databricks ids) have one, NONE otherwise; `permission` is the highest of all that apply (ADMIN over
//   USER); `via` names the groups that grant it when it comes from groups.
// - WorkspaceAssignments.accessDetails(workspaceId, principalId): the identity API's own answer for
//   accounts with automatic identity management (`GET /api/2.0/identity/accounts/{account_id}/workspaces/
//   {workspace_id}/workspace-access-details/{principal_id}`, reference §1.2), not cached.
//
// Ids are compared as strings. The v1 API sends `principal_id` as a JSON number: exact below 2^53 only.
import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.ts'
import type { DatabricksClient } from './databricks-client.ts'
import { DatabricksNotFoundError } from './errors.ts'
import type { AimPathStyle } from './aim.ts'

export type WorkspacePermission = 'USER' | 'ADMIN'
export type AssignedPrincipalKind = 'user' | 'group' | 'servicePrincipal'

export interface PermissionAssignment {
  principalId: string
  kind: AssignedPrincipalKind
  displayName?: string
  /** user_name, group_name or service_principal_name (the application id). */
  name?: string
  /** The levels assigned (USER, ADMIN); other values the API may add are left out. */
  permissions: WorkspacePermission[]
}

export interface WorkspaceAccessDecision {
  access: 'DIRECT' | 'INDIRECT' | 'NONE'
  /** The highest level that applies (absent for NONE). */
  permission?: WorkspacePermission
  /** The groups granting `permission`, when it comes from groups (INDIRECT, or DIRECT raised by a group). */
  via?: string[]
}

export interface WorkspaceAccessDetails {
  access: 'DIRECT' | 'INDIRECT' | 'NONE'
  permission?: WorkspacePermission
  principalType?: 'USER' | 'GROUP' | 'SERVICE_PRINCIPAL'
  /** Users and service principals: ACTIVE, or INACTIVE (deactivated or never used). */
  status?: 'ACTIVE' | 'INACTIVE'
}

/** No such workspace in the account. */
export class WorkspaceNotFoundError extends Error {
  readonly code = 'WORKSPACE_NOT_FOUND'
  override readonly name = 'WorkspaceNotFoundError'

  constructor (readonly workspaceId: string, options?: ErrorOptions) {
    super(`Workspace ${workspaceId} does not exist in this Databricks account: check the workspace id (the number in the workspace URL, ?o=…) and DATABRICKS_ACCOUNT_ID.`, options)
  }
}

export interface WorkspaceAssignmentsOptions {
  client: DatabricksClient
  /** How long a workspace's assignments are served from memory (default 30 s). */
  ttlMs?: number
  /** Workspaces kept (default 1,000). */
  maxWorkspaces?: number
  /** `max_results` per page (default: the API's own). */
  pageSize?: number
  /** Path spelling of the identity API (`workspace-access-details` or `workspaceAccessDetails`). */
  pathStyle?: AimPathStyle
  clock?: Clock
}

const RANK: Record<WorkspacePermission, number> = { USER: 1, ADMIN: 2 }

function highest (levels: Iterable<WorkspacePermission>): WorkspacePermission | undefined {
  let best: WorkspacePermission | undefined
  for (const l of levels) if (best === undefined || RANK[l] > RANK[best]) best = l
  return best
}

/** What the principal may do in the workspace, from the assignments of itself and of its groups. */
export function decideWorkspaceAccess (assignments: readonly PermissionAssignment[], principalId: string, groupIds: readonly string[]): WorkspaceAccessDecision {
  const byId = new Map<string, WorkspacePermission[]>()
  for (const a of assignments) byId.set(a.principalId, [...(byId.get(a.principalId) ?? []), ...a.permissions])
  const direct = highest(byId.get(principalId) ?? [])
  const granting = new Map<string, WorkspacePermission>()
  for (const g of new Set(groupIds)) {
    if (g === principalId) continue
    const level = highest(byId.get(g) ?? [])
    if (level !== undefined) granting.set(g, level)
  }
  const viaGroups = highest(granting.values())
  const permission = highest([direct, viaGroups].filter((l): l is WorkspacePermission => l !== undefined))
  if (permission === undefined) return { access: 'NONE' }
  const via = [...granting].filter(([, l]) => l === permission).map(([g]) => g)
  if (direct !== undefined) {
    return RANK[direct] >= RANK[permission] ? { access: 'DIRECT', permission } : { access: 'DIRECT', permission, via }
  }
  return { access: 'INDIRECT', permission, via }
}

interface RawAssignment {
  principal?: { principal_id?: number | string, display_name?: string, user_name?: string, group_name?: string, service_principal_name?: string }
  permissions?: unknown[]
}

interface RawList { permission_assignments?: RawAssignment[], next_page_token?: string }

function toAssignment (raw: RawAssignment): PermissionAssignment | undefined {
  const p = raw.principal
  const id = p?.principal_id
  if (p === undefined || (typeof id !== 'string' && typeof id !== 'number')) return undefined
  const kind: AssignedPrincipalKind = p.group_name !== undefined ? 'group' : p.service_principal_name !== undefined ? 'servicePrincipal' : 'user'
  const name = p.user_name ?? p.group_name ?? p.service_principal_name
  const permissions = [...new Set((raw.permissions ?? []).filter((x): x is WorkspacePermission => x === 'USER' || x === 'ADMIN'))]
  return {
    principalId: String(id),
    kind,
    ...(p.display_name !== undefined ? { displayName: p.display_name } : {}),
    ...(name !== undefined ? { name } : {}),
    permissions
  }
}

const WORKSPACE_ID = /^\d{1,20}$/

export class WorkspaceAssignments {
  private readonly client: DatabricksClient
  private readonly cache: LRUCache<string, readonly PermissionAssignment[]>
  private readonly pageSize: number | undefined
  private readonly style: AimPathStyle

  constructor (options: WorkspaceAssignmentsOptions) {
    this.client = options.client
    this.pageSize = options.pageSize
    this.style = options.pathStyle ?? 'kebab'
    const clock = options.clock
    this.cache = new LRUCache<string, readonly PermissionAssignment[]>({
      max: options.maxWorkspaces ?? 1_000,
      ttl: options.ttlMs ?? 30_000,
      ...(clock === undefined ? {} : { perf: { now: () => clock.now() }, ttlResolution: 0 }),
      // invalidate() or an eviction during a load aborts its fetch: the callers waiting on it still get the
      // list (a rejection would fail their requests), and the cache does not keep it.
      ignoreFetchAbort: true,
      fetchMethod: async (workspaceId) => await this.load(workspaceId)
    })
  }

  /**
   * The workspace's permission assignments (from memory for `ttlMs`; concurrent misses share one load).
   * Frozen, and the same list until it is loaded again: callers may compare it by identity.
   */
  async forWorkspace (workspaceId: string): Promise<readonly PermissionAssignment[]> {
    const id = checkWorkspaceId(workspaceId)
    // The warm path: a plain lookup, no promise machinery.
    return this.cache.get(id) ?? await this.cache.fetch(id) as readonly PermissionAssignment[]
  }

  /** The cached assignments, without a promise; undefined when not cached (or the id is not a workspace id). */
  cached (workspaceId: string): readonly PermissionAssignment[] | undefined {
    const id = String(workspaceId).trim()
    return WORKSPACE_ID.test(id) ? this.cache.get(id) : undefined
  }

  /** Loads the assignments, then decides (a convenience over forWorkspace + decideWorkspaceAccess). */
  async decide (workspaceId: string, principalId: string, groupIds: readonly string[]): Promise<WorkspaceAccessDecision> {
    return decideWorkspaceAccess(await this.forWorkspace(workspaceId), principalId, groupIds)
  }

  /** Forgets one workspace's assignments, or all. */
  invalidate (workspaceId?: string): void {
    if (workspaceId === undefined) this.cache.clear()
    else this.cache.delete(workspaceId)
  }

  /**
   * The identity API's answer (accounts with automatic identity management): DIRECT / INDIRECT with the
   * effective level and the principal's status, or NONE when the principal has no access.
   */
  async accessDetails (workspaceId: string, principalId: string): Promise<WorkspaceAccessDetails> {
    const id = checkWorkspaceId(workspaceId)
    if (!/^\d{1,20}$/.test(principalId)) throw new TypeError(`Principal id ${JSON.stringify(principalId)} is not a Databricks id (digits).`)
    const segment = this.style === 'kebab' ? 'workspace-access-details' : 'workspaceAccessDetails'
    let body: Record<string, unknown>
    try {
      const res = await this.client.identity<Record<string, unknown>>('GET', `/workspaces/${id}/${segment}/${principalId}`, { query: { view: 'BASIC' } })
      body = res.json ?? {}
    } catch (err) {
      if (!(err instanceof DatabricksNotFoundError)) throw err
      // 404 is both "no access" and "no such workspace": tell them apart by the workspace's assignments.
      await this.forWorkspace(id)
      return { access: 'NONE' }
    }
    const type = body.access_type
    const permissions = Array.isArray(body.permissions) ? body.permissions : []
    const permission = permissions.includes('ADMIN_PERMISSION') ? 'ADMIN' : permissions.includes('USER_PERMISSION') ? 'USER' : undefined
    const principalType = body.principal_type
    const status = body.status
    return {
      access: type === 'DIRECT' || type === 'INDIRECT' ? type : 'NONE',
      ...(permission !== undefined ? { permission } : {}),
      ...(principalType === 'USER' || principalType === 'GROUP' || principalType === 'SERVICE_PRINCIPAL' ? { principalType } : {}),
      ...(status === 'ACTIVE' || status === 'INACTIVE' ? { status } : {})
    }
  }

  private async load (workspaceId: string): Promise<readonly PermissionAssignment[]> {
    const out: PermissionAssignment[] = []
    const seen = new Set<string>()
    let token: string | undefined
    for (;;) {
      let res
      try {
        res = await this.client.account<RawList>('GET', `/workspaces/${workspaceId}/permissionassignments`, {
          query: { max_results: this.pageSize, page_token: token }
        })
      } catch (err) {
        if (err instanceof DatabricksNotFoundError) throw new WorkspaceNotFoundError(workspaceId, { cause: err })
        throw err
      }
      for (const raw of res.json?.permission_assignments ?? []) {
        const a = toAssignment(raw)
        if (a !== undefined) out.push(a)
      }
      token = res.json?.next_page_token
      // A token seen before would loop forever: stop there.
      if (token === undefined || token === '' || seen.has(token)) return Object.freeze(out.map(a => Object.freeze({ ...a, permissions: Object.freeze(a.permissions) as WorkspacePermission[] })))
      seen.add(token)
    }
  }
}

function checkWorkspaceId (workspaceId: string): string {
  const id = String(workspaceId).trim()
  if (!WORKSPACE_ID.test(id)) throw new WorkspaceNotFoundError(id)
  return id
}
