// The emulated Entra directory: users, service principals, groups with nested membership, applications.
// One Directory is one tenant. It keeps a change log so Graph delta queries can replay mutations, and
// computes transitive closures on demand (cycle-safe: Entra allows nesting, and cycles must terminate).
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

/** One entry of the change log that feeds delta queries. */
export type Change =
  | { seq: number, at: number, kind: ObjectKind, id: string, op: 'updated' }
  | { seq: number, at: number, kind: ObjectKind, id: string, op: 'deleted' }
  | { seq: number, at: number, kind: 'group', id: string, op: 'member-added' | 'member-removed', memberId: string, memberKind: ObjectKind }

type NewChange = Change extends infer C ? C extends Change ? Omit<C, 'seq' | 'at'> : never : never

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
  private readonly log: Change[] = []
  /** Sequence number of the oldest change still in the log (older delta tokens must resync). */
  private logStart = 1
  private seq = 0
  private readonly now: () => number

  constructor (fixture: TenantFixture, now: () => number = Date.now) {
    this.now = now
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

  // ---- mutations (each one is recorded for delta) -------------------------------------------------

  addMember (groupId: string, memberId: string): boolean {
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

  removeMember (groupId: string, memberId: string): boolean {
    const g = groupId.toLowerCase()
    const m = memberId.toLowerCase()
    if (!this.groups.has(g)) throw new DirectoryError('not-found', `group '${groupId}' does not exist`)
    if (this.members.get(g)?.delete(m) !== true) return false
    this.parents.get(m)?.delete(g)
    this.record({ kind: 'group', id: g, op: 'member-removed', memberId: m, memberKind: this.kindOf(m) ?? 'user' })
    return true
  }

  updateUser (id: string, patch: Partial<Omit<UserFixture, 'id'>>): User {
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

  updateServicePrincipal (id: string, patch: Partial<Omit<ServicePrincipalFixture, 'id' | 'appId'>>): ServicePrincipal {
    const sp = this.servicePrincipals.get(id.toLowerCase())
    if (sp === undefined) throw new DirectoryError('not-found', `service principal '${id}' does not exist`)
    assignKnown(sp, patch, ['displayName', 'accountEnabled', 'servicePrincipalType'])
    this.record({ kind: 'servicePrincipal', id: sp.id, op: 'updated' })
    return sp
  }

  addUser (u: UserFixture): User {
    const user = this.putUser(u)
    this.record({ kind: 'user', id: user.id, op: 'updated' })
    return user
  }

  addGroup (g: Omit<GroupFixture, 'members'> & { members?: string[] }): Group {
    const unknown = (g.members ?? []).find(m => this.kindOf(m) === undefined)
    if (unknown !== undefined) throw new DirectoryError('not-found', `object '${unknown}' does not exist`)
    const group = this.putGroup({ ...g, members: [] })
    this.record({ kind: 'group', id: group.id, op: 'updated' })
    for (const m of g.members ?? []) this.addMember(group.id, m)
    return group
  }

  addServicePrincipal (sp: ServicePrincipalFixture): ServicePrincipal {
    const created = this.putServicePrincipal(sp)
    this.record({ kind: 'servicePrincipal', id: created.id, op: 'updated' })
    return created
  }

  /** Deletes a user, group or service principal, and every membership it had. */
  delete (id: string): ObjectKind {
    const k = id.toLowerCase()
    const kind = this.kindOf(k)
    if (kind === undefined) throw new DirectoryError('not-found', `object '${id}' does not exist`)
    for (const g of this.directParents(k)) this.removeMember(g, k)
    if (kind === 'group') for (const m of this.directMembers(k)) this.removeMember(k, m)
    if (kind === 'user') {
      const user = this.users.get(k) as User
      this.usersByUpn.delete(user.userPrincipalName.toLowerCase())
      this.users.delete(k)
    } else if (kind === 'group') {
      this.groups.delete(k)
      this.members.delete(k)
    } else {
      const sp = this.servicePrincipals.get(k) as ServicePrincipal
      this.spsByAppId.delete(sp.appId)
      this.servicePrincipals.delete(k)
    }
    this.parents.delete(k)
    this.record({ kind, id: k, op: 'deleted' })
    return kind
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
    this.log.push({ ...c, seq: this.seq, at: this.now() })
  }

  // ---- loading ------------------------------------------------------------------------------------

  private assertNewId (id: string): void {
    if (!isGuid(id)) throw new DirectoryError('invalid', `object id '${id}' is not a GUID`)
    if (this.kindOf(id) !== undefined) throw new DirectoryError('conflict', `object id '${id}' is used twice`)
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
