// The emulated Entra directory: users, service principals, groups with nested membership, applications.
// One Directory is one tenant. It keeps a change log so Graph delta queries can replay mutations, and
// computes transitive closures on demand (cycle-safe: Entra allows nesting, and cycles must terminate).
//
// Deletion is Entra's: a user, service principal or group (distribution groups excepted) is soft-deleted
// into `deleted` (restorable with its memberships for 30 days by the emulator clock, then purged), and a
// permanent delete removes it for good. Writes can lag behind reads (`setReplicationLag`), as Graph's
// replicas do: while a lag is set, writes go to a primary copy at once (their errors and answers come
// from it) and reach the copy every reader sees only when the lag has passed. Listeners hear each write
// as it is made (change notifications), not when it becomes visible.
import { createHash } from 'node:crypto'

import type { ApplicationFixture, GroupFixture, ServicePrincipalFixture, TenantFixture, UserFixture } from './fixture.ts'

export type { ApplicationFixture, GroupFixture, GroupMembershipClaims, ServicePrincipalFixture, TenantFixture, UserFixture, UserType } from './fixture.ts'

export interface User extends Required<Omit<UserFixture, 'password' | 'mail' | 'givenName' | 'surname' | 'jobTitle' | 'department'>> {
  mail: string | null
  givenName: string | null
  surname: string | null
  jobTitle: string | null
  department: string | null
  password?: string
}
export interface ServicePrincipal extends Required<ServicePrincipalFixture> {}
export interface Group extends Required<Omit<GroupFixture, 'members' | 'description'>> {
  description: string | null
}
export type Application = ApplicationFixture

export type ObjectKind = 'user' | 'group' | 'servicePrincipal'
export type DirectoryObject =
  | { kind: 'user', object: User }
  | { kind: 'group', object: Group }
  | { kind: 'servicePrincipal', object: ServicePrincipal }

/**
 * One entry of the change log that feeds delta queries and change notifications. `soft-deleted` moved
 * the object to deleted items (restorable); `deleted` removed it for good (a permanent delete, a
 * distribution group, or the end of the retention); a restore is `updated` plus the memberships it
 * brings back.
 */
export type Change =
  | { seq: number, at: number, kind: ObjectKind, id: string, op: 'updated' | 'soft-deleted' | 'deleted' }
  | { seq: number, at: number, kind: 'group', id: string, op: 'member-added' | 'member-removed', memberId: string, memberKind: ObjectKind }

type NewChange = Change extends infer C ? C extends Change ? Omit<C, 'seq' | 'at'> : never : never

/** A soft-deleted object, with the memberships a restore brings back. */
export type DeletedItem = DirectoryObject & {
  deletedAt: number
  /** Groups it was a direct member of. */
  parents: Set<string>
  /** Groups only: its direct members. */
  members: Set<string>
}

/** How long deleted items stay restorable before they are purged (Entra: 30 days). */
export const DELETED_ITEM_RETENTION_MS = 30 * 24 * 3600 * 1000

/** Called with the changes of each write, when it is made (before any replication lag). */
export type ChangeListener = (changes: Change[]) => void

/**
 * Distribution groups (mail-enabled, not security-enabled) are deleted permanently at once; users,
 * service principals, security and Microsoft 365 groups are soft-deleted (Graph's group-delete page).
 */
export const isDistributionGroup = (g: Group): boolean => g.mailEnabled && !g.securityEnabled

export class DirectoryError extends Error {
  constructor (readonly code: 'not-found' | 'conflict' | 'invalid', message: string) {
    super(message)
  }
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
export const isGuid = (s: string): boolean => GUID.test(s)

/** A stable GUID-shaped id derived from a name (for objects the fixture implies but does not list). */
export function derivedGuid (name: string): string {
  const h = createHash('sha1').update(name).digest('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`
}

/** Copies only the named, defined properties: ids and other keys never change through a patch. */
function assignKnown<T extends object> (target: T, patch: object, keys: Array<keyof T & string>): void {
  for (const k of keys) {
    const v = (patch as Record<string, unknown>)[k]
    if (v !== undefined) (target as Record<string, unknown>)[k] = v
  }
}

export class Directory {
  readonly tenantId: string
  readonly domain: string
  readonly displayName: string
  readonly users = new Map<string, User>()
  readonly servicePrincipals = new Map<string, ServicePrincipal>()
  readonly groups = new Map<string, Group>()
  readonly applications = new Map<string, Application>()
  private readonly usersByUpn = new Map<string, User>()
  private readonly spsByAppId = new Map<string, ServicePrincipal>()
  private readonly members = new Map<string, Set<string>>()
  private readonly parents = new Map<string, Set<string>>()
  /** Soft-deleted objects by id (Graph's deleted items), restorable until their retention ends. */
  readonly deleted = new Map<string, DeletedItem>()
  private readonly log: Change[] = []
  /** Sequence number of the oldest change still in the log (older delta tokens must resync). */
  private logStart = 1
  private seq = 0
  private readonly now: () => number
  private readonly onChange: ChangeListener | undefined
  /** The time a replayed write (or a purge) happened, while it is applied; else the clock. */
  private applyingAt: number | undefined
  private lagMs = 0
  /** While a lag is set: the copy writes go to at once (the one readers see is `this`). */
  private primary: Directory | undefined
  /** Writes made on the primary that become visible here at `at`, in order. */
  private pending: Array<{ at: number, op: (d: Directory) => unknown }> = []

  constructor (fixture: TenantFixture, now: () => number = Date.now, onChange?: ChangeListener) {
    this.now = now
    this.onChange = onChange
    if (!isGuid(fixture.tenantId)) throw new DirectoryError('invalid', `tenantId '${fixture.tenantId}' is not a GUID`)
    this.tenantId = fixture.tenantId.toLowerCase()
    this.domain = fixture.domain
    this.displayName = fixture.displayName ?? fixture.domain
    for (const u of fixture.users) this.putUser(u)
    for (const sp of fixture.servicePrincipals) this.putServicePrincipal(sp)
    for (const a of fixture.applications) {
      const appId = a.appId.toLowerCase()
      if (!isGuid(appId)) throw new DirectoryError('invalid', `appId '${a.appId}' is not a GUID`)
      if (this.applications.has(appId)) throw new DirectoryError('conflict', `appId '${a.appId}' is used by two applications`)
      this.applications.set(appId, structuredClone({ ...a, appId }))
      // Every application has a service principal in its home tenant; make one when the fixture lists none.
      if (!this.spsByAppId.has(appId)) this.putServicePrincipal({ id: derivedGuid(`sp:${appId}`), appId, displayName: a.displayName ?? appId })
    }
    for (const g of fixture.groups) this.putGroup(g)
    for (const g of fixture.groups) for (const m of g.members) this.link(g.id.toLowerCase(), m.toLowerCase())
  }

  // ---- lookups ------------------------------------------------------------------------------------

  kindOf (id: string): ObjectKind | undefined {
    const k = id.toLowerCase()
    if (this.users.has(k)) return 'user'
    if (this.groups.has(k)) return 'group'
    if (this.servicePrincipals.has(k)) return 'servicePrincipal'
    return undefined
  }

  get (id: string): DirectoryObject | undefined {
    const k = id.toLowerCase()
    const user = this.users.get(k)
    if (user !== undefined) return { kind: 'user', object: user }
    const group = this.groups.get(k)
    if (group !== undefined) return { kind: 'group', object: group }
    const sp = this.servicePrincipals.get(k)
    if (sp !== undefined) return { kind: 'servicePrincipal', object: sp }
    return undefined
  }

  /** A user by object id or (case-insensitive) userPrincipalName. */
  user (idOrUpn: string): User | undefined {
    const k = idOrUpn.toLowerCase()
    return this.users.get(k) ?? this.usersByUpn.get(k)
  }

  servicePrincipalByAppId (appId: string): ServicePrincipal | undefined {
    return this.spsByAppId.get(appId.toLowerCase())
  }

  application (appId: string): Application | undefined {
    return this.applications.get(appId.toLowerCase())
  }

  /** Size class of the tenant for Graph's throttling limits: S < 50 users, M ≤ 500, L above. */
  get sizeClass (): 'S' | 'M' | 'L' {
    return this.users.size < 50 ? 'S' : this.users.size <= 500 ? 'M' : 'L'
  }

  // ---- membership ---------------------------------------------------------------------------------

  directMembers (groupId: string): string[] {
    return [...(this.members.get(groupId.toLowerCase()) ?? [])]
  }

  directParents (id: string): string[] {
    return [...(this.parents.get(id.toLowerCase()) ?? [])]
  }

  /**
   * Every group `id` belongs to, directly or through nesting, in breadth-first order, each once. In a cycle a
   * group is not listed among its own parents (Graph never returns the object itself).
   */
  transitiveParents (id: string): string[] {
    return this.walk(id.toLowerCase(), this.parents)
  }

  /** Every member of `groupId`, directly or through nested groups, in breadth-first order, each once. */
  transitiveMembers (groupId: string): string[] {
    return this.walk(groupId.toLowerCase(), this.members)
  }

  private walk (start: string, edges: Map<string, Set<string>>): string[] {
    const seen = new Set<string>([start])
    const out: string[] = []
    let frontier = [start]
    while (frontier.length > 0) {
      const next: string[] = []
      for (const node of frontier) {
        for (const n of edges.get(node) ?? []) {
          if (seen.has(n)) continue // also what ends a cycle
          seen.add(n)
          out.push(n)
          next.push(n)
        }
      }
      frontier = next
    }
    return out
  }

  // ---- mutations (each one is recorded for delta and heard by the listener) ----------------------

  addMember (groupId: string, memberId: string): boolean {
    return this.write(d => d.applyAddMember(groupId, memberId))
  }

  removeMember (groupId: string, memberId: string): boolean {
    return this.write(d => d.applyRemoveMember(groupId, memberId))
  }

  /** Adds several members in one write (one change notification); returns how many were new. */
  addMembers (groupId: string, memberIds: readonly string[]): number {
    return this.write(d => memberIds.filter(m => d.applyAddMember(groupId, m)).length)
  }

  /** Removes several members in one write; returns how many were members. */
  removeMembers (groupId: string, memberIds: readonly string[]): number {
    return this.write(d => memberIds.filter(m => d.applyRemoveMember(groupId, m)).length)
  }

  updateUser (id: string, patch: Partial<Omit<UserFixture, 'id'>>): User {
    return this.write(d => d.applyUpdateUser(id, patch))
  }

  /** A rename (or another property change) of a group. */
  updateGroup (id: string, patch: Partial<Omit<GroupFixture, 'id' | 'members'>>): Group {
    return this.write(d => d.applyUpdateGroup(id, patch))
  }

  updateServicePrincipal (id: string, patch: Partial<Omit<ServicePrincipalFixture, 'id' | 'appId'>>): ServicePrincipal {
    return this.write(d => d.applyUpdateServicePrincipal(id, patch))
  }

  addUser (u: UserFixture): User {
    return this.write(d => d.applyAddUser(u))
  }

  addGroup (g: Omit<GroupFixture, 'members'> & { members?: string[] }): Group {
    return this.write(d => d.applyAddGroup(g))
  }

  addServicePrincipal (sp: ServicePrincipalFixture): ServicePrincipal {
    return this.write(d => d.applyAddServicePrincipal(sp))
  }

  /**
   * Deletes a user, group or service principal as Entra does: into deleted items with its memberships
   * (removed from view, recorded as member removals), restorable for 30 days; a distribution group, or
   * any object with `permanent`, is gone for good. `permanent` also purges an object already in deleted
   * items. With `kind`, an object of another kind is not found.
   */
  delete (id: string, options: { permanent?: boolean, kind?: ObjectKind } = {}): ObjectKind {
    return this.write(d => d.applyDelete(id, options.permanent === true, options.kind))
  }

  /**
   * Brings a soft-deleted object back with its memberships: the groups it was in (and, for a group, its
   * members) that still exist; links to objects that are themselves in deleted items come back when
   * those are restored. A user whose userPrincipalName (or a service principal whose appId) another
   * object took meanwhile cannot be restored (conflict). With `kind`, an item of another kind is not found.
   */
  restore (id: string, kind?: ObjectKind): DirectoryObject {
    return this.write(d => d.applyRestore(id, kind))
  }

  private applyAddMember (groupId: string, memberId: string): boolean {
    const g = groupId.toLowerCase()
    const m = memberId.toLowerCase()
    if (!this.groups.has(g)) throw new DirectoryError('not-found', `group '${groupId}' does not exist`)
    const memberKind = this.kindOf(m)
    if (memberKind === undefined) throw new DirectoryError('not-found', `object '${memberId}' does not exist`)
    if (g === m) throw new DirectoryError('invalid', 'a group cannot be a member of itself')
    if (this.members.get(g)?.has(m) === true) return false
    this.link(g, m)
    this.record({ kind: 'group', id: g, op: 'member-added', memberId: m, memberKind })
    return true
  }

  private applyRemoveMember (groupId: string, memberId: string): boolean {
    const g = groupId.toLowerCase()
    const m = memberId.toLowerCase()
    if (!this.groups.has(g)) throw new DirectoryError('not-found', `group '${groupId}' does not exist`)
    if (this.members.get(g)?.delete(m) !== true) return false
    this.parents.get(m)?.delete(g)
    this.record({ kind: 'group', id: g, op: 'member-removed', memberId: m, memberKind: this.kindOf(m) ?? 'user' })
    return true
  }

  private applyUpdateUser (id: string, patch: Partial<Omit<UserFixture, 'id'>>): User {
    const user = this.user(id)
    if (user === undefined) throw new DirectoryError('not-found', `user '${id}' does not exist`)
    if (patch.userPrincipalName !== undefined && patch.userPrincipalName.toLowerCase() !== user.userPrincipalName.toLowerCase()) {
      if (this.usersByUpn.has(patch.userPrincipalName.toLowerCase())) throw new DirectoryError('conflict', `userPrincipalName '${patch.userPrincipalName}' is taken`)
      this.usersByUpn.delete(user.userPrincipalName.toLowerCase())
      this.usersByUpn.set(patch.userPrincipalName.toLowerCase(), user)
    }
    assignKnown(user, patch, ['userPrincipalName', 'displayName', 'mail', 'accountEnabled', 'userType', 'givenName', 'surname', 'jobTitle', 'department', 'password'])
    this.record({ kind: 'user', id: user.id, op: 'updated' })
    return user
  }

  private applyUpdateGroup (id: string, patch: Partial<Omit<GroupFixture, 'id' | 'members'>>): Group {
    const group = this.groups.get(id.toLowerCase())
    if (group === undefined) throw new DirectoryError('not-found', `group '${id}' does not exist`)
    assignKnown(group, patch, ['displayName', 'description', 'securityEnabled', 'mailEnabled'])
    this.record({ kind: 'group', id: group.id, op: 'updated' })
    return group
  }

  private applyUpdateServicePrincipal (id: string, patch: Partial<Omit<ServicePrincipalFixture, 'id' | 'appId'>>): ServicePrincipal {
    const sp = this.servicePrincipals.get(id.toLowerCase())
    if (sp === undefined) throw new DirectoryError('not-found', `service principal '${id}' does not exist`)
    assignKnown(sp, patch, ['displayName', 'accountEnabled', 'servicePrincipalType'])
    this.record({ kind: 'servicePrincipal', id: sp.id, op: 'updated' })
    return sp
  }

  private applyAddUser (u: UserFixture): User {
    const user = this.putUser(u)
    this.record({ kind: 'user', id: user.id, op: 'updated' })
    return user
  }

  private applyAddGroup (g: Omit<GroupFixture, 'members'> & { members?: string[] }): Group {
    const unknown = (g.members ?? []).find(m => this.kindOf(m) === undefined)
    if (unknown !== undefined) throw new DirectoryError('not-found', `object '${unknown}' does not exist`)
    const group = this.putGroup({ ...g, members: [] })
    this.record({ kind: 'group', id: group.id, op: 'updated' })
    for (const m of g.members ?? []) this.applyAddMember(group.id, m)
    return group
  }

  private applyAddServicePrincipal (sp: ServicePrincipalFixture): ServicePrincipal {
    const created = this.putServicePrincipal(sp)
    this.record({ kind: 'servicePrincipal', id: created.id, op: 'updated' })
    return created
  }

  private applyDelete (id: string, permanent: boolean, expected?: ObjectKind): ObjectKind {
    const k = id.toLowerCase()
    const found = this.get(k)
    if (found === undefined || (expected !== undefined && found.kind !== expected)) {
      const item = this.deleted.get(k)
      if (item === undefined || !permanent || (expected !== undefined && item.kind !== expected)) throw new DirectoryError('not-found', `${expected ?? 'object'} '${id}' does not exist`)
      this.purge(k)
      return item.kind
    }
    const { kind } = found
    const parents = this.directParents(k)
    const members = kind === 'group' ? this.directMembers(k) : []
    for (const g of parents) this.applyRemoveMember(g, k)
    for (const m of members) this.applyRemoveMember(k, m)
    if (found.kind === 'user') {
      this.usersByUpn.delete(found.object.userPrincipalName.toLowerCase())
      this.users.delete(k)
    } else if (found.kind === 'group') {
      this.groups.delete(k)
      this.members.delete(k)
    } else {
      this.spsByAppId.delete(found.object.appId)
      this.servicePrincipals.delete(k)
    }
    this.parents.delete(k)
    if (permanent || (found.kind === 'group' && isDistributionGroup(found.object))) {
      this.forget(k)
      this.record({ kind, id: k, op: 'deleted' })
    } else {
      this.deleted.set(k, { ...found, deletedAt: this.time(), parents: new Set(parents), members: new Set(members) })
      this.record({ kind, id: k, op: 'soft-deleted' })
    }
    return kind
  }

  private applyRestore (id: string, kind?: ObjectKind): DirectoryObject {
    const k = id.toLowerCase()
    const item = this.deleted.get(k)
    if (item === undefined || (kind !== undefined && item.kind !== kind)) throw new DirectoryError('not-found', `deleted ${kind ?? 'item'} '${id}' does not exist`)
    if (item.kind === 'user' && this.usersByUpn.has(item.object.userPrincipalName.toLowerCase())) {
      throw new DirectoryError('conflict', `userPrincipalName '${item.object.userPrincipalName}' is used by another user`)
    }
    if (item.kind === 'servicePrincipal' && this.spsByAppId.has(item.object.appId)) {
      throw new DirectoryError('conflict', `appId '${item.object.appId}' has another service principal`)
    }
    this.deleted.delete(k)
    if (item.kind === 'user') {
      this.users.set(k, item.object)
      this.usersByUpn.set(item.object.userPrincipalName.toLowerCase(), item.object)
    } else if (item.kind === 'group') {
      this.groups.set(k, item.object)
      this.members.set(k, new Set())
    } else {
      this.servicePrincipals.set(k, item.object)
      this.spsByAppId.set(item.object.appId, item.object)
    }
    this.record({ kind: item.kind, id: k, op: 'updated' })
    // [UNCONF] Graph's restore page says "fully restore"; Entra restores a user's group memberships. For
    // groups (security groups are restorable since 2025) the emulator brings back both its members and
    // the groups it was in. A link whose other end is itself in deleted items waits in that item.
    for (const p of [...item.parents].sort()) {
      if (this.groups.has(p)) this.applyAddMember(p, k)
      else this.deleted.get(p)?.members.add(k)
    }
    for (const m of [...item.members].sort()) {
      if (this.kindOf(m) !== undefined) this.applyAddMember(k, m)
      else this.deleted.get(m)?.parents.add(k)
    }
    return { kind: item.kind, object: item.object } as DirectoryObject
  }

  /** Removes a deleted item for good. */
  private purge (id: string): void {
    const item = this.deleted.get(id)
    if (item === undefined) return
    this.deleted.delete(id)
    this.forget(id)
    this.record({ kind: item.kind, id, op: 'deleted' })
  }

  /** Drops every link other deleted items keep to `id`, which is gone for good. */
  private forget (id: string): void {
    for (const other of this.deleted.values()) {
      other.parents.delete(id)
      other.members.delete(id)
    }
  }

  /** Purges the deleted items whose retention ended by `upto`, each at the time it ended. */
  private purgeExpired (upto: number): void {
    if (this.deleted.size === 0) return
    const due = [...this.deleted.values()]
      .filter(i => i.deletedAt + DELETED_ITEM_RETENTION_MS <= upto)
      .sort((a, b) => a.deletedAt - b.deletedAt)
    for (const item of due) this.at(item.deletedAt + DELETED_ITEM_RETENTION_MS, () => this.purge(item.object.id))
  }

  // ---- deleted items ------------------------------------------------------------------------------

  /** A soft-deleted object by id. */
  deletedItem (id: string): DeletedItem | undefined {
    return this.deleted.get(id.toLowerCase())
  }

  /** When a deleted item is purged, by the emulator clock. */
  static purgeTime (item: DeletedItem): number {
    return item.deletedAt + DELETED_ITEM_RETENTION_MS
  }

  // ---- replication lag ----------------------------------------------------------------------------

  /** The current replication lag in milliseconds. */
  get replicationLag (): number {
    return this.lagMs
  }

  /** Writes not yet visible to readers. */
  get pendingWrites (): number {
    return this.pending.length
  }

  /**
   * From now on, a write becomes visible to reads (and to delta) `ms` after it is made. Setting 0 makes
   * every pending write visible at once.
   */
  setReplicationLag (ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new DirectoryError('invalid', 'the replication lag must be a non-negative number')
    this.lagMs = ms
    if (ms > 0) {
      this.primary ??= this.copy()
      return
    }
    const now = this.now()
    for (const p of this.pending.splice(0)) this.replay(Math.min(p.at, now), p.op)
    this.settle()
  }

  /**
   * Makes the writes whose lag has passed visible, and purges the deleted items whose retention ended.
   * The emulators call it before each request and when their clock moves; in-process readers that
   * bypass HTTP call it themselves.
   */
  settle (): void {
    if (this.pending.length === 0 && this.deleted.size === 0 && (this.primary?.deleted.size ?? 0) === 0) {
      if (this.lagMs === 0) this.primary = undefined
      return
    }
    const now = this.now()
    while (this.pending.length > 0 && (this.pending[0] as { at: number }).at <= now) {
      const p = this.pending.shift() as { at: number, op: (d: Directory) => unknown }
      this.purgeExpired(p.at)
      this.replay(p.at, p.op)
    }
    const writer = this.primary ?? this
    const from = writer.seq
    writer.purgeExpired(now)
    this.emit(writer, from)
    if (this.primary !== undefined) this.purgeExpired(now)
    if (this.primary !== undefined && this.lagMs === 0 && this.pending.length === 0) this.primary = undefined
  }

  /** A write: made on the primary (or here without a lag), heard by the listener, and queued for readers. */
  private write<T> (op: (d: Directory) => T): T {
    this.settle()
    const writer = this.primary ?? this
    const from = writer.seq
    let result: T
    try {
      result = op(writer)
    } finally {
      // A write that failed half-way still made (and reports) the changes it made.
      if (writer !== this && writer.seq > from) this.pending.push({ at: this.now() + this.lagMs, op })
      this.emit(writer, from)
    }
    return result
  }

  private replay (at: number, op: (d: Directory) => unknown): void {
    try {
      this.at(at, () => op(this))
    } catch {
      // The primary already answered this write; the same writes in the same order cannot fail here.
    }
  }

  private at (time: number, fn: () => void): void {
    const outer = this.applyingAt
    this.applyingAt = time
    try {
      fn()
    } finally {
      this.applyingAt = outer
    }
  }

  private time (): number {
    return this.applyingAt ?? this.now()
  }

  private emit (writer: Directory, from: number): void {
    if (this.onChange === undefined || writer.seq === from) return
    this.onChange(writer.log.slice(from + 1 - writer.logStart))
  }

  /** A deep copy of the state (not the log), for the primary of a replication lag. */
  private copy (): Directory {
    const c = new Directory({ tenantId: this.tenantId, domain: this.domain, displayName: this.displayName, users: [], servicePrincipals: [], groups: [], applications: [] }, this.now)
    c.seq = this.seq
    c.logStart = this.seq + 1
    for (const [id, u] of this.users) {
      const user = { ...u }
      c.users.set(id, user)
      c.usersByUpn.set(user.userPrincipalName.toLowerCase(), user)
    }
    for (const [id, sp] of this.servicePrincipals) {
      const copy = { ...sp }
      c.servicePrincipals.set(id, copy)
      c.spsByAppId.set(copy.appId, copy)
    }
    for (const [id, g] of this.groups) c.groups.set(id, { ...g })
    for (const [id, a] of this.applications) c.applications.set(id, structuredClone(a))
    for (const [id, set] of this.members) c.members.set(id, new Set(set))
    for (const [id, set] of this.parents) c.parents.set(id, new Set(set))
    for (const [id, item] of this.deleted) {
      c.deleted.set(id, { ...item, object: { ...item.object }, parents: new Set(item.parents), members: new Set(item.members) } as DeletedItem)
    }
    return c
  }

  // ---- change log ---------------------------------------------------------------------------------

  /** The sequence number of the latest change; a delta token remembers it. */
  get currentSeq (): number {
    return this.seq
  }

  /** Changes after `seq`, or undefined when the log no longer reaches back that far (or `seq` is from another log). */
  changesSince (seq: number): Change[] | undefined {
    if (seq > this.seq || seq + 1 < this.logStart) return undefined
    return this.log.slice(seq + 1 - this.logStart)
  }

  /** Drops log entries up to `seq`: delta tokens older than that must resync (410). */
  truncateLog (seq = this.seq): void {
    const drop = Math.min(Math.max(0, seq + 1 - this.logStart), this.log.length)
    this.log.splice(0, drop)
    this.logStart += drop
  }

  private record (c: NewChange): void {
    this.seq += 1
    this.log.push({ ...c, seq: this.seq, at: this.time() })
  }

  // ---- loading ------------------------------------------------------------------------------------

  private assertNewId (id: string): void {
    if (!isGuid(id)) throw new DirectoryError('invalid', `object id '${id}' is not a GUID`)
    // A deleted item keeps its id until it is purged.
    if (this.kindOf(id) !== undefined || this.deleted.has(id)) throw new DirectoryError('conflict', `object id '${id}' is used twice`)
  }

  private putUser (u: UserFixture): User {
    const id = u.id.toLowerCase()
    this.assertNewId(id)
    const upn = u.userPrincipalName.toLowerCase()
    if (this.usersByUpn.has(upn)) throw new DirectoryError('conflict', `userPrincipalName '${u.userPrincipalName}' is used twice`)
    const user: User = {
      id,
      userPrincipalName: u.userPrincipalName,
      displayName: u.displayName,
      mail: u.mail ?? null,
      accountEnabled: u.accountEnabled ?? true,
      userType: u.userType ?? (u.userPrincipalName.includes('#EXT#') ? 'Guest' : 'Member'),
      givenName: u.givenName ?? null,
      surname: u.surname ?? null,
      jobTitle: u.jobTitle ?? null,
      department: u.department ?? null,
      ...(u.password !== undefined ? { password: u.password } : {})
    }
    this.users.set(id, user)
    this.usersByUpn.set(upn, user)
    return user
  }

  private putServicePrincipal (sp: ServicePrincipalFixture): ServicePrincipal {
    const id = sp.id.toLowerCase()
    this.assertNewId(id)
    const appId = sp.appId.toLowerCase()
    if (this.spsByAppId.has(appId)) throw new DirectoryError('conflict', `appId '${sp.appId}' has two service principals`)
    const created: ServicePrincipal = {
      id,
      appId,
      displayName: sp.displayName,
      accountEnabled: sp.accountEnabled ?? true,
      servicePrincipalType: sp.servicePrincipalType ?? 'Application'
    }
    this.servicePrincipals.set(id, created)
    this.spsByAppId.set(appId, created)
    return created
  }

  private putGroup (g: GroupFixture): Group {
    const id = g.id.toLowerCase()
    this.assertNewId(id)
    const group: Group = {
      id,
      displayName: g.displayName,
      description: g.description ?? null,
      securityEnabled: g.securityEnabled ?? true,
      mailEnabled: g.mailEnabled ?? false
    }
    this.groups.set(id, group)
    this.members.set(id, new Set())
    return group
  }

  private link (groupId: string, memberId: string): void {
    if (this.kindOf(memberId) === undefined) throw new DirectoryError('invalid', `group '${groupId}' lists unknown member '${memberId}'`)
    if (groupId === memberId) throw new DirectoryError('invalid', `group '${groupId}' lists itself as a member`)
    this.members.get(groupId)?.add(memberId)
    let p = this.parents.get(memberId)
    if (p === undefined) this.parents.set(memberId, (p = new Set()))
    p.add(groupId)
  }
}
