// Workspace objects through the workspace APIs: an object's access control list (Permissions API,
// reference §3.1), a grant added to it, and whether a Lakeview dashboard is published with embedded
// credentials (reference §3.3).
//
// - acl(): `GET /api/2.0/permissions/{request_object_type}/{id}`, the type given in any spelling
//   `normalizeObjectType` knows and sent as the path segment below. Cached briefly (default 10 s: grants
//   change under us, and a permission answer should not lag much) in a bounded LRU on an injected clock;
//   concurrent reads of one object share one call; `fresh: true` reads again and refreshes the cache.
// - grant(): `PATCH` the same path with one entry (PATCH merges: the object's other grants stay); the
//   ACL Databricks answers with replaces the cached one — stored through fetch() with the ACL as its
//   context, never with set(): lru-cache aborts a fetch in flight when its key is set ("replaced"), which
//   failed every concurrent request awaiting that read (a permission question, another share).
//   Likewise no eviction aborts a read: a request always gets what its read returned (`ignoreFetchAbort`).
// - publication(): `GET /api/2.0/lakeview/dashboards/{id}/published`; a 404 is "not published".
// - Errors: no such object → ObjectNotFoundError; an unknown workspace (the emulator's 400 "Workspace X
//   does not exist", or a 404 saying so) → WorkspaceNotFoundError; "Principal: UserName(x) does not exist"
//   → PrincipalUnknownToDatabricksError; 403 → ObjectAccessDeniedError (a TargetConfigurationError: the
//   service's own identity lacks access); throttling and outages → the client's TargetUnavailableError.
import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.ts'
import { normalizeObjectType, type ObjectType } from '../permissions/levels.ts'
import type { AclEntry } from '../permissions/evaluate.ts'
import type { DatabricksClient } from './databricks-client.ts'
import {
  DatabricksBadRequestError, DatabricksNotFoundError, ObjectAccessDeniedError, ObjectNotFoundError, PrincipalUnknownToDatabricksError,
  TargetConfigurationError, type DatabricksPrincipalKind
} from './errors.ts'
import { WorkspaceNotFoundError } from './assignments.ts'

export type { AclEntry, AclPermission } from '../permissions/evaluate.ts'

/** An object's permissions as the Permissions API answers them (`ObjectPermissions`), in camelCase; frozen (cached and shared). */
export interface ObjectAcl {
  /** As Databricks names it, e.g. `/dashboards/<id>` (for dashboards sometimes a workspace file id). */
  objectId?: string
  /** As Databricks names it (`dashboard`, `directory`, `warehouses`, …): not always the request's type. */
  objectType?: string
  accessControlList: AclEntry[]
}

/** One grant: exactly one of the principal names, and the level. */
export interface AclGrant {
  user_name?: string
  group_name?: string
  /** A service principal's application id. */
  service_principal_name?: string
  permission_level: string
}

export interface DashboardPublication {
  published: boolean
  /** Published with the publisher's credentials embedded: viewers need no data or warehouse rights. */
  embedCredentials: boolean
}

export interface WorkspaceObjectsOptions {
  client: DatabricksClient
  /** How long an ACL (and a publication state) is served from memory (default 10 s). */
  ttlMs?: number
  /** Entries kept, per kind (default 10,000). */
  maxEntries?: number
  clock?: Clock
  /** After a grant changed an ACL (and this cache holds the new one): the other replicas forget theirs. Awaited. */
  onAclChanged?: (workspaceId: string, objectType: ObjectType, objectId: string) => Promise<void>
}

/**
 * The Permissions API path segment per type. Mostly the type itself (the SDK's list, `warehouses` as the
 * SDK's WarehousesAPI sends it); queries and alerts as Terraform sends them (`sql/…`), the spelling in use
 * against real workspaces. The emulator accepts both spellings of all three.
 */
const SEGMENT: Partial<Record<ObjectType, string>> = { queries: 'sql/queries', alerts: 'sql/alerts' }

export function permissionsPath (objectType: ObjectType, objectId: string): string {
  return `/api/2.0/permissions/${SEGMENT[objectType] ?? objectType}/${encodeURIComponent(objectId)}`
}

const WORKSPACE_ID = /^\d{1,20}$/
/** Every object id Databricks issues: digits, hexadecimal, `0123-456789-abcdefgh`, names of letters, digits, `.`, `_`, `-`. */
const OBJECT_ID = /^[A-Za-z0-9._-]{1,256}$/
const PRINCIPAL_UNKNOWN = /Principal:\s*(UserName|GroupName|ServicePrincipalName)\((.*)\)\s+does not exist/i
const KIND_OF: Record<string, DatabricksPrincipalKind> = { username: 'user', groupname: 'group', serviceprincipalname: 'servicePrincipal' }
const WORKSPACE_MISSING = /\bworkspace\b[^.]*\b(does not exist|not found|doesn't exist)/i
const NAME_KEYS = ['user_name', 'group_name', 'service_principal_name'] as const

interface RawAcl { object_id?: unknown, object_type?: unknown, access_control_list?: unknown }
interface RawPublished { embed_credentials?: unknown }

interface Ref { workspaceId: string, objectType: ObjectType, objectId: string, key: string }

/** The ACL as callers get it: deeply frozen, so the cached object can be shared without copies. */
function toAcl (body: RawAcl | undefined): ObjectAcl {
  const list = Array.isArray(body?.access_control_list) ? body.access_control_list : []
  return deepFreeze({
    ...(typeof body?.object_id === 'string' ? { objectId: body.object_id } : {}),
    ...(typeof body?.object_type === 'string' ? { objectType: body.object_type } : {}),
    accessControlList: list.filter((e): e is AclEntry => typeof e === 'object' && e !== null && !Array.isArray(e))
  })
}

function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}

export class WorkspaceObjects {
  private readonly client: DatabricksClient
  // The fetch context is an ACL a grant answered with: stored instead of reading (see store()).
  private readonly acls: LRUCache<string, ObjectAcl, unknown>
  private readonly publications: LRUCache<string, DashboardPublication>
  private readonly onAclChanged: WorkspaceObjectsOptions['onAclChanged']

  constructor (options: WorkspaceObjectsOptions) {
    this.client = options.client
    this.onAclChanged = options.onAclChanged
    const clock = options.clock
    const common = {
      max: options.maxEntries ?? 10_000,
      ttl: options.ttlMs ?? 10_000,
      // An entry evicted while its read is in flight: the read's callers still get its answer.
      ignoreFetchAbort: true,
      ...(clock === undefined ? {} : { perf: { now: () => clock.now() }, ttlResolution: 0 })
    }
    this.acls = new LRUCache<string, ObjectAcl, unknown>({
      ...common,
      fetchMethod: async (key, _stale, { context }) => (context as ObjectAcl | undefined) ?? await this.readAcl(parseKey(key))
    })
    this.publications = new LRUCache<string, DashboardPublication>({ ...common, fetchMethod: async key => await this.readPublication(parseKey(key)) })
  }

  /**
   * The object's ACL: direct and inherited grants of every principal (from memory for `ttlMs`; concurrent
   * reads share one call; `fresh` reads again, joining a read already in flight).
   */
  async acl (workspaceId: string, objectType: string, objectId: string, options: { fresh?: boolean } = {}): Promise<ObjectAcl> {
    const ref = refOf(workspaceId, objectType, objectId)
    // The warm path of every permission question: a plain lookup, no promise machinery, no copy (frozen).
    const hit = options.fresh === true ? undefined : this.acls.get(ref.key)
    if (hit !== undefined) return hit
    return await this.acls.fetch(ref.key, options.fresh === true ? { forceRefresh: true } : {}) as ObjectAcl
  }

  /** The cached ACL, without a promise; undefined when it is not cached (or the ids name nothing: acl() says why). */
  cachedAcl (workspaceId: string, objectType: string, objectId: string): ObjectAcl | undefined {
    const key = cacheKey(workspaceId, objectType, objectId)
    return key === undefined ? undefined : this.acls.get(key)
  }

  /** The cached publication state of a dashboard, as cachedAcl(). */
  cachedPublication (workspaceId: string, dashboardId: string): DashboardPublication | undefined {
    const key = cacheKey(workspaceId, 'dashboards', dashboardId)
    return key === undefined ? undefined : this.publications.get(key)
  }

  /** Adds (or changes) one principal's grant; the object's other grants stay. Returns the ACL after it. */
  async grant (workspaceId: string, objectType: string, objectId: string, entry: AclGrant): Promise<ObjectAcl> {
    const ref = refOf(workspaceId, objectType, objectId)
    const names = NAME_KEYS.filter(k => entry[k] !== undefined)
    if (names.length !== 1) throw new TypeError('A grant names exactly one of user_name, group_name or service_principal_name.')
    const nameKey = names[0] as typeof NAME_KEYS[number]
    const name = entry[nameKey]
    if (typeof name !== 'string' || name.trim() === '') throw new TypeError(`${nameKey} must be a non-empty string.`)
    if (typeof entry.permission_level !== 'string' || entry.permission_level === '') throw new TypeError('permission_level must be a non-empty string.')
    let acl: ObjectAcl
    try {
      const res = await this.client.workspace<RawAcl>(ref.workspaceId, 'PATCH', permissionsPath(ref.objectType, ref.objectId), {
        body: { access_control_list: [{ [nameKey]: name, permission_level: entry.permission_level }] }
      })
      acl = toAcl(res.json)
    } catch (err) {
      throw this.mapError(err, ref, true)
    }
    await this.store(ref.key, acl)
    await this.onAclChanged?.(ref.workspaceId, ref.objectType, ref.objectId)
    return acl
  }

  /** Forgets an object's cached ACL (another replica changed it): the next question reads it again. */
  forgetAcl (workspaceId: string, objectType: string, objectId: string): void {
    const key = cacheKey(workspaceId, objectType, objectId)
    if (key !== undefined) this.acls.delete(key)
  }

  /** Forgets every cached ACL and publication. */
  clear (): void {
    this.acls.clear()
    this.publications.clear()
  }

  /**
   * Caches an ACL obtained otherwise than by reading (a grant's answer) through fetch(), so that it joins a
   * read of the same object in flight instead of aborting it. That read may have been answered before the
   * grant landed: it is let finish (its callers get what they asked for), then replaced by this ACL. A read
   * started after that one is younger than the grant, and is joined rather than overwritten.
   */
  private async store (key: string, acl: ObjectAcl): Promise<void> {
    const status: LRUCache.Status<string, ObjectAcl, unknown> = {}
    // A failure of the joined read is its callers' to see; this ACL is stored by the second fetch.
    await this.acls.fetch(key, { forceRefresh: true, context: acl, status }).catch(() => undefined)
    if (status.fetch === 'inflight') await this.acls.fetch(key, { forceRefresh: true, context: acl }).catch(() => undefined)
  }

  /** Whether a Lakeview dashboard is published, and with embedded credentials (cached like ACLs). */
  async publication (workspaceId: string, dashboardId: string, options: { fresh?: boolean } = {}): Promise<DashboardPublication> {
    const ref = refOf(workspaceId, 'dashboards', dashboardId)
    const hit = options.fresh === true ? undefined : this.publications.get(ref.key)
    return hit ?? await this.publications.fetch(ref.key, options.fresh === true ? { forceRefresh: true } : {}) as DashboardPublication
  }

  private async readAcl (ref: Ref): Promise<ObjectAcl> {
    try {
      const res = await this.client.workspace<RawAcl>(ref.workspaceId, 'GET', permissionsPath(ref.objectType, ref.objectId))
      return toAcl(res.json)
    } catch (err) {
      throw this.mapError(err, ref, false)
    }
  }

  private async readPublication (ref: Ref): Promise<DashboardPublication> {
    try {
      const res = await this.client.workspace<RawPublished>(ref.workspaceId, 'GET', `/api/2.0/lakeview/dashboards/${encodeURIComponent(ref.objectId)}/published`)
      return Object.freeze({ published: true, embedCredentials: res.json?.embed_credentials === true })
    } catch (err) {
      const mapped = workspaceMissing(err, ref)
      if (mapped !== undefined) throw mapped
      // Not published (or no such dashboard: the ACL read is what tells a missing dashboard apart).
      if (err instanceof DatabricksNotFoundError && err.errorCode !== 'ENDPOINT_NOT_FOUND') return Object.freeze({ published: false, embedCredentials: false })
      if (err instanceof TargetConfigurationError && err.details.status === 403) throw new ObjectAccessDeniedError(ref.workspaceId, ref.objectType, ref.objectId, false, err)
      throw err
    }
  }

  private mapError (err: unknown, ref: Ref, change: boolean): unknown {
    if (err instanceof DatabricksBadRequestError || err instanceof DatabricksNotFoundError) {
      const unknown = PRINCIPAL_UNKNOWN.exec(err.message)
      if (unknown !== null) {
        return new PrincipalUnknownToDatabricksError(KIND_OF[(unknown[1] as string).toLowerCase()] as DatabricksPrincipalKind, unknown[2] as string, ref.workspaceId, { cause: err })
      }
    }
    const missing = workspaceMissing(err, ref)
    if (missing !== undefined) return missing
    if (err instanceof DatabricksNotFoundError && err.errorCode !== 'ENDPOINT_NOT_FOUND') return new ObjectNotFoundError(ref.workspaceId, ref.objectType, ref.objectId, { cause: err })
    if (err instanceof TargetConfigurationError && err.details.status === 403) return new ObjectAccessDeniedError(ref.workspaceId, ref.objectType, ref.objectId, change, err)
    return err
  }
}

/** Databricks saying the workspace itself does not exist (400 on a unified host, as the emulator answers, or 404). */
function workspaceMissing (err: unknown, ref: Ref): WorkspaceNotFoundError | undefined {
  if ((err instanceof DatabricksBadRequestError || err instanceof DatabricksNotFoundError) && WORKSPACE_MISSING.test(err.message)) {
    return new WorkspaceNotFoundError(ref.workspaceId, { cause: err })
  }
  return undefined
}

function refOf (workspaceId: string, objectType: string, objectId: string): Ref {
  const ws = String(workspaceId).trim()
  if (!WORKSPACE_ID.test(ws)) throw new WorkspaceNotFoundError(ws)
  const type = normalizeObjectType(objectType)
  const id = String(objectId).trim()
  if (id === '') throw new TypeError('An object id is required.')
  // No Databricks id has another character, and none of these can change the path it is sent on
  // (`..`, an encoded `/`, `?`, `#`): such an id names nothing, and Databricks is not asked.
  if (!OBJECT_ID.test(id) || id.includes('..')) throw new ObjectNotFoundError(ws, type, JSON.stringify(id.slice(0, 64)))
  return { workspaceId: ws, objectType: type, objectId: id, key: `${ws}|${type}|${id}` }
}

/** The cache key refOf() would make, or undefined where refOf() would throw. */
function cacheKey (workspaceId: string, objectType: string, objectId: string): string | undefined {
  try {
    return refOf(workspaceId, objectType, objectId).key
  } catch {
    return undefined
  }
}

function parseKey (key: string): Ref {
  const first = key.indexOf('|')
  const second = key.indexOf('|', first + 1)
  return { workspaceId: key.slice(0, first), objectType: key.slice(first + 1, second) as ObjectType, objectId: key.slice(second + 1), key }
}
