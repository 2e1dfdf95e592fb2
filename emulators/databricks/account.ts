// The emulated Databricks account: users, service principals and groups (account groups and the
// workspace-local ones), memberships, workspaces, settings (AIM), admins and personal access tokens.
//
// Memberships come from two sources, as under automatic identity management (reference §1.1, §1.2):
// - INTERNAL: added through SCIM (PATCH/PUT/create) or the identity API; stored here;
// - IDENTITY_PROVIDER: read from the account's Entra tenant at request time, between principals that are
//   in the account and linked to Entra objects by `externalId`, while AIM is enabled ("Databricks uses
//   Microsoft Entra ID as the source of record, so any changes to group memberships are respected").
// The account lives as long as the emulator; tests reach it through `databricksAccount(ctx)`.
import type { EmulatorContext } from '../context.ts'
import type { Directory } from '../tenant/model.ts'
import { Workspace } from './workspace.ts'

/** A fixed account id (Databricks account ids are GUIDs). */
export const DEFAULT_ACCOUNT_ID = '7d3c9a5e-1f2b-4c6d-8e9f-0a1b2c3d4e5f'
/** The seeded workspace; Azure workspace ids are 16-digit numbers. */
export const DEFAULT_WORKSPACE_ID = '3141592653589793'
/** Personal access token of the built-in account admin (Databricks PATs are `dapi` + 32 hex digits). */
export const DATABRICKS_ADMIN_PAT = 'dapi5e1f0c7a9b3d2e4f6a8b0c1d2e3f4a5b'
/** The built-in admin's user name (it is not a principal of the account: SCIM never lists it). */
export const ADMIN_USER_NAME = 'admin@databricks-emulator.local'

/** "Layers of nested groups: 10" (resource limits). */
export const MAX_NESTING = 10
/** "Direct group memberships: 1500" per principal (resource limits; read as per principal). */
export const MAX_DIRECT_GROUPS = 1500

export type PrincipalKind = 'user' | 'group' | 'servicePrincipal'
export type MembershipSource = 'INTERNAL' | 'IDENTITY_PROVIDER'

export interface Email {
  value: string
  type?: string
  primary?: boolean
}

interface PrincipalBase {
  /** Numeric string of 16 digits, below 2^53 so clients that parse it as a number keep it exact. */
  id: string
  externalId: string | null
  displayName: string
  roles: string[]
  created: number
  lastModified: number
  /** How it came into the account: SCIM/API, automatic identity management, the control API, or built in. */
  origin: 'scim' | 'aim' | 'control' | 'system'
}

export interface AccountUser extends PrincipalBase {
  kind: 'user'
  userName: string
  givenName: string | null
  familyName: string | null
  emails: Email[]
  /** SCIM `active`: false = deactivated. */
  active: boolean
  /** Has used the account (signed in / called an API). AIM-resolved principals start without. */
  loggedIn: boolean
}

export interface AccountServicePrincipal extends PrincipalBase {
  kind: 'servicePrincipal'
  applicationId: string
  active: boolean
  loggedIn: boolean
}

export interface AccountGroup extends PrincipalBase {
  kind: 'group'
  /** INTERNAL direct members. */
  members: Set<string>
  /** Set for workspace-local groups (legacy ones and the `admins`/`users` system groups). */
  workspaceId: string | null
  system: 'admins' | 'users' | null
}

export type Principal = AccountUser | AccountServicePrincipal | AccountGroup

export class AccountError extends Error {
  constructor (readonly code: 'not-found' | 'conflict' | 'invalid', message: string) {
    super(message)
  }
}

export interface AccountEnv {
  now: () => number
  /** The account's Entra tenant, looked up at call time (the control API may load another one). */
  tenant: () => Directory | undefined
}

export class DatabricksAccount {
  readonly id: string
  readonly principals = new Map<string, Principal>()
  readonly workspaces = new Map<string, Workspace>()
  readonly settings = { aimEnabled: true }
  /** Entra application ids whose tokens are account admins; null = every application of the tenant. */
  adminApplications: Set<string> | null = null
  /** Account principals (users, service principals) that are account admins. */
  readonly adminPrincipals = new Set<string>()
  /** Personal access tokens → principal id (null: the built-in admin). */
  readonly tokens = new Map<string, string | null>([[DATABRICKS_ADMIN_PAT, null]])

  private readonly usersByName = new Map<string, string>()
  private readonly spsByAppId = new Map<string, string>()
  private readonly groupsByName = new Map<string, string>()
  private readonly byExternalId = new Map<string, string>()
  /** Reverse index of INTERNAL memberships: member → groups. */
  private readonly parents = new Map<string, Set<string>>()
  /**
   * SCIM list filters look `eq` up here instead of testing every principal: displayName lower-cased (the
   * filter ignores its case), externalId exactly (the filter compares it exactly); every principal,
   * workspace-local groups too. Change those fields only through setDisplayName, renameGroup and
   * setExternalId, or the index goes stale.
   */
  private readonly byDisplayName = new Map<string, Set<string>>()
  private readonly byExactExternalId = new Map<string, Set<string>>()
  /** Creation order, which is the order of `principals` and so of SCIM lists. */
  private readonly ordinals = new Map<string, number>()
  private nextOrdinal = 0
  private seq = 0

  constructor (readonly env: AccountEnv, id = DEFAULT_ACCOUNT_ID) {
    this.id = id
    this.createWorkspace({ id: DEFAULT_WORKSPACE_ID, name: 'emulated-workspace' })
  }

  // ---- ids ------------------------------------------------------------------------------------------

  /** Unique, deterministic, random-looking 16-digit ids (a bijection of the sequence number). */
  nextId (): string {
    this.seq += 1
    return String(1_000_000_000_000_000n + (BigInt(this.seq) * 2_654_435_761n) % 8_000_000_000_000_000n)
  }

  // ---- lookups --------------------------------------------------------------------------------------

  get (id: string): Principal | undefined {
    return this.principals.get(id)
  }

  /** Account-level principals only (no workspace-local groups). */
  accountPrincipal (id: string): Principal | undefined {
    const p = this.principals.get(id)
    return p !== undefined && !(p.kind === 'group' && p.workspaceId !== null) ? p : undefined
  }

  userByName (userName: string): AccountUser | undefined {
    const id = this.usersByName.get(userName.toLowerCase())
    return id === undefined ? undefined : this.principals.get(id) as AccountUser
  }

  servicePrincipalByAppId (appId: string): AccountServicePrincipal | undefined {
    const id = this.spsByAppId.get(appId.toLowerCase())
    return id === undefined ? undefined : this.principals.get(id) as AccountServicePrincipal
  }

  /** An account group by name (case-insensitive), or a workspace-local group of `workspaceId`. */
  groupByName (name: string, workspaceId: string | null = null): AccountGroup | undefined {
    const key = workspaceId === null ? name.toLowerCase() : `${workspaceId}/${name.toLowerCase()}`
    const id = this.groupsByName.get(key)
    return id === undefined ? undefined : this.principals.get(id) as AccountGroup
  }

  byExternal (externalId: string): Principal | undefined {
    const id = this.byExternalId.get(externalId.toLowerCase())
    return id === undefined ? undefined : this.principals.get(id)
  }

  /** Every principal whose displayName equals `name` in any case (any kind; unordered). */
  withDisplayName (name: string): Principal[] {
    return this.lookup(this.byDisplayName, name.toLowerCase())
  }

  /** Every principal whose externalId is exactly `externalId` (any kind; unordered). */
  withExternalId (externalId: string): Principal[] {
    return this.lookup(this.byExactExternalId, externalId)
  }

  /** A principal's place in creation order (the order lists follow); Infinity when it is not in the account. */
  ordinal (id: string): number {
    return this.ordinals.get(id) ?? Infinity
  }

  users (): AccountUser[] {
    return [...this.principals.values()].filter((p): p is AccountUser => p.kind === 'user')
  }

  servicePrincipals (): AccountServicePrincipal[] {
    return [...this.principals.values()].filter((p): p is AccountServicePrincipal => p.kind === 'servicePrincipal')
  }

  /** Account groups, or the workspace-local groups of one workspace. */
  groups (workspaceId: string | null = null): AccountGroup[] {
    return [...this.principals.values()].filter((p): p is AccountGroup => p.kind === 'group' && p.workspaceId === workspaceId)
  }

  /** ACTIVE / INACTIVE as the identity API reports it: deactivated, or never used, is INACTIVE. */
  status (p: Principal): 'ACTIVE' | 'INACTIVE' {
    if (p.kind === 'group') return 'ACTIVE'
    return p.active && p.loggedIn ? 'ACTIVE' : 'INACTIVE'
  }

  // ---- creation -------------------------------------------------------------------------------------

  createUser (input: { userName: string, displayName?: string | null, givenName?: string | null, familyName?: string | null, emails?: Email[], active?: boolean, externalId?: string | null, roles?: string[], origin: PrincipalBase['origin'] }): AccountUser {
    if (this.userByName(input.userName) !== undefined) throw new AccountError('conflict', `User with email ${input.userName} already exists in this account`)
    this.assertExternalIdFree(input.externalId)
    const now = this.env.now()
    const user: AccountUser = {
      kind: 'user',
      id: this.nextId(),
      userName: input.userName,
      displayName: input.displayName ?? input.userName,
      givenName: input.givenName ?? null,
      familyName: input.familyName ?? null,
      emails: input.emails ?? [{ value: input.userName, type: 'work', primary: true }],
      active: input.active ?? true,
      externalId: input.externalId ?? null,
      roles: input.roles ?? [],
      created: now,
      lastModified: now,
      origin: input.origin,
      loggedIn: input.origin !== 'aim'
    }
    this.principals.set(user.id, user)
    this.indexForFilters(user)
    this.usersByName.set(user.userName.toLowerCase(), user.id)
    this.indexExternalId(user)
    return user
  }

  createServicePrincipal (input: { applicationId: string, displayName?: string | null, active?: boolean, externalId?: string | null, roles?: string[], origin: PrincipalBase['origin'] }): AccountServicePrincipal {
    if (this.servicePrincipalByAppId(input.applicationId) !== undefined) throw new AccountError('conflict', `Service principal with application ID ${input.applicationId} already exists.`)
    this.assertExternalIdFree(input.externalId)
    const now = this.env.now()
    const sp: AccountServicePrincipal = {
      kind: 'servicePrincipal',
      id: this.nextId(),
      applicationId: input.applicationId,
      displayName: input.displayName ?? input.applicationId,
      active: input.active ?? true,
      externalId: input.externalId ?? null,
      roles: input.roles ?? [],
      created: now,
      lastModified: now,
      origin: input.origin,
      loggedIn: input.origin !== 'aim'
    }
    this.principals.set(sp.id, sp)
    this.indexForFilters(sp)
    this.spsByAppId.set(sp.applicationId.toLowerCase(), sp.id)
    this.indexExternalId(sp)
    return sp
  }

  createGroup (input: { displayName: string, externalId?: string | null, roles?: string[], workspaceId?: string | null, system?: 'admins' | 'users', origin: PrincipalBase['origin'] }): AccountGroup {
    const workspaceId = input.workspaceId ?? null
    if (this.groupByName(input.displayName, workspaceId) !== undefined) throw new AccountError('conflict', `Group with name ${input.displayName} already exists.`)
    if (workspaceId === null) this.assertExternalIdFree(input.externalId)
    const now = this.env.now()
    const group: AccountGroup = {
      kind: 'group',
      id: this.nextId(),
      displayName: input.displayName,
      externalId: input.externalId ?? null,
      roles: input.roles ?? [],
      members: new Set(),
      workspaceId,
      system: input.system ?? null,
      created: now,
      lastModified: now,
      origin: input.origin
    }
    this.principals.set(group.id, group)
    this.indexForFilters(group)
    this.groupsByName.set(this.groupKey(group), group.id)
    if (workspaceId === null) this.indexExternalId(group)
    return group
  }

  // ---- updates --------------------------------------------------------------------------------------

  setExternalId (p: Principal, externalId: string | null): void {
    if ((p.externalId ?? '').toLowerCase() === (externalId ?? '').toLowerCase()) {
      this.move(this.byExactExternalId, p.id, p.externalId, externalId)
      p.externalId = externalId
      return
    }
    this.assertExternalIdFree(externalId)
    if (p.externalId !== null) this.byExternalId.delete(p.externalId.toLowerCase())
    this.move(this.byExactExternalId, p.id, p.externalId, externalId)
    p.externalId = externalId
    if (!(p.kind === 'group' && p.workspaceId !== null)) this.indexExternalId(p)
    this.touch(p)
  }

  renameGroup (group: AccountGroup, displayName: string): void {
    if (displayName === group.displayName) return
    const other = this.groupByName(displayName, group.workspaceId)
    if (other !== undefined && other.id !== group.id) throw new AccountError('conflict', `Group with name ${displayName} already exists.`)
    this.groupsByName.delete(this.groupKey(group))
    this.move(this.byDisplayName, group.id, group.displayName.toLowerCase(), displayName.toLowerCase())
    group.displayName = displayName
    this.groupsByName.set(this.groupKey(group), group.id)
    this.touch(group)
  }

  /** A user's or service principal's new displayName (not unique; groups are renamed with renameGroup). */
  setDisplayName (p: AccountUser | AccountServicePrincipal, displayName: string): void {
    this.move(this.byDisplayName, p.id, p.displayName.toLowerCase(), displayName.toLowerCase())
    p.displayName = displayName
  }

  touch (p: Principal): void {
    p.lastModified = this.env.now()
  }

  /** Removes a principal and every trace of it: memberships, assignments, entitlements, ACL entries, tokens. */
  delete (id: string): void {
    const p = this.principals.get(id)
    if (p === undefined) throw new AccountError('not-found', `Principal ${id} does not exist.`)
    for (const g of [...(this.parents.get(id) ?? [])]) this.removeMember(g, id)
    if (p.kind === 'group') for (const m of [...p.members]) this.removeMember(p.id, m)
    this.parents.delete(id)
    if (p.kind === 'user') this.usersByName.delete(p.userName.toLowerCase())
    if (p.kind === 'servicePrincipal') this.spsByAppId.delete(p.applicationId.toLowerCase())
    if (p.kind === 'group') this.groupsByName.delete(this.groupKey(p))
    if (p.externalId !== null && this.byExternalId.get(p.externalId.toLowerCase()) === id) this.byExternalId.delete(p.externalId.toLowerCase())
    this.move(this.byDisplayName, id, p.displayName.toLowerCase(), null)
    this.move(this.byExactExternalId, id, p.externalId, null)
    this.ordinals.delete(id)
    for (const ws of this.workspaces.values()) ws.forgetPrincipal(id)
    for (const [token, owner] of this.tokens) if (owner === id) this.tokens.delete(token)
    this.adminPrincipals.delete(id)
    this.principals.delete(id)
  }

  // ---- membership -----------------------------------------------------------------------------------

  /** Adds an INTERNAL membership after the checks Databricks makes; false when it already existed. */
  addMember (groupId: string, memberId: string): boolean {
    const group = this.principals.get(groupId)
    if (group?.kind !== 'group') throw new AccountError('not-found', `Group ${groupId} does not exist.`)
    const member = this.principals.get(memberId)
    if (member === undefined) throw new AccountError('invalid', `Member ${memberId} does not exist.`)
    if (group.members.has(memberId)) return false
    this.checkMembership(group, member)
    group.members.add(memberId)
    let up = this.parents.get(memberId)
    if (up === undefined) this.parents.set(memberId, (up = new Set()))
    up.add(groupId)
    this.touch(group)
    return true
  }

  removeMember (groupId: string, memberId: string): boolean {
    const group = this.principals.get(groupId)
    if (group?.kind !== 'group') return false
    if (!group.members.delete(memberId)) return false
    this.parents.get(memberId)?.delete(groupId)
    this.touch(group)
    return true
  }

  /** Throws when `member` cannot join `group`: itself, a cycle, more than 10 layers, too many groups. */
  checkMembership (group: AccountGroup, member: Principal): void {
    if (member.id === group.id) throw new AccountError('invalid', `Group ${group.id} cannot be a member of itself.`)
    if (group.workspaceId === null && member.kind === 'group' && member.workspaceId !== null) {
      throw new AccountError('invalid', `Workspace group ${member.displayName} cannot be a member of account group ${group.displayName}.`)
    }
    if ((this.parents.get(member.id)?.size ?? 0) >= MAX_DIRECT_GROUPS) {
      throw new AccountError('invalid', `Principal ${member.id} is already a direct member of ${MAX_DIRECT_GROUPS} groups, the maximum.`)
    }
    if (member.kind !== 'group') return
    if (this.transitiveParents(group.id).includes(member.id)) {
      throw new AccountError('invalid', `Adding group ${member.id} to group ${group.id} would create a cycle.`)
    }
    const layers = this.heightUp(group.id, new Set()) + this.heightDown(member.id, new Set())
    if (layers > MAX_NESTING) {
      throw new AccountError('invalid', `Adding group ${member.id} to group ${group.id} would nest groups ${layers} levels deep; the maximum is ${MAX_NESTING}.`)
    }
  }

  private heightUp (id: string, seen: Set<string>): number {
    seen.add(id)
    let best = 0
    for (const p of this.directParents(id)) if (!seen.has(p.id)) best = Math.max(best, this.heightUp(p.id, seen))
    seen.delete(id)
    return 1 + best
  }

  private heightDown (id: string, seen: Set<string>): number {
    seen.add(id)
    let best = 0
    for (const m of this.directMembers(id)) {
      if (!seen.has(m.id) && this.principals.get(m.id)?.kind === 'group') best = Math.max(best, this.heightDown(m.id, seen))
    }
    seen.delete(id)
    return 1 + best
  }

  /** Direct members of a group: INTERNAL ones and, under AIM, the Entra group's members that are in the account. */
  directMembers (groupId: string): Array<{ id: string, source: MembershipSource }> {
    const group = this.principals.get(groupId)
    if (group?.kind !== 'group') return []
    const out = new Map<string, MembershipSource>()
    for (const id of this.idpMembers(group)) out.set(id, 'IDENTITY_PROVIDER')
    for (const id of group.members) if (!out.has(id)) out.set(id, 'INTERNAL')
    return [...out].map(([id, source]) => ({ id, source }))
  }

  /** Groups `id` is a direct member of (both sources). */
  directParents (id: string): Array<{ id: string, source: MembershipSource }> {
    const p = this.principals.get(id)
    if (p === undefined) return []
    const out = new Map<string, MembershipSource>()
    for (const g of this.idpParents(p)) out.set(g, 'IDENTITY_PROVIDER')
    for (const g of this.parents.get(id) ?? []) if (!out.has(g)) out.set(g, 'INTERNAL')
    return [...out].map(([gid, source]) => ({ id: gid, source }))
  }

  /** Every group `id` belongs to directly or through nesting, breadth first, each once (cycle-safe). */
  transitiveParents (id: string): string[] {
    const seen = new Set([id])
    const out: string[] = []
    let frontier = [id]
    while (frontier.length > 0) {
      const next: string[] = []
      for (const node of frontier) {
        for (const { id: g } of this.directParents(node)) {
          if (seen.has(g)) continue
          seen.add(g)
          out.push(g)
          next.push(g)
        }
      }
      frontier = next
    }
    return out
  }

  /** Entra-sourced members of an account group linked to an Entra group (AIM only). */
  private idpMembers (group: AccountGroup): string[] {
    const tenant = this.aimTenant()
    if (tenant === undefined || group.workspaceId !== null || group.externalId === null || tenant.groups.get(group.externalId.toLowerCase()) === undefined) return []
    const out: string[] = []
    for (const m of tenant.directMembers(group.externalId)) {
      const p = this.byExternal(m)
      if (p !== undefined) out.push(p.id)
    }
    return out
  }

  private idpParents (p: Principal): string[] {
    const tenant = this.aimTenant()
    if (tenant === undefined || p.externalId === null || (p.kind === 'group' && p.workspaceId !== null)) return []
    const out: string[] = []
    for (const g of tenant.directParents(p.externalId)) {
      const group = this.byExternal(g)
      if (group?.kind === 'group') out.push(group.id)
    }
    return out
  }

  private aimTenant (): Directory | undefined {
    return this.settings.aimEnabled ? this.env.tenant() : undefined
  }

  // ---- automatic identity management ----------------------------------------------------------------

  /**
   * resolve-by-external-id: the account principal for an Entra object id, created when missing (INACTIVE
   * until first use). Existing principals are matched by externalId, then by userName / applicationId /
   * group name when they have no externalId yet (a SCIM-provisioned account migrating to AIM), so a
   * resolve never makes a duplicate. The principal's Entra parent groups are resolved too ("Will resolve
   * metadata such as the user's displayname, status, and inherited parent groups").
   */
  resolveExternal (kind: PrincipalKind, externalId: string): Principal {
    const tenant = this.env.tenant()
    const object = tenant?.get(externalId)
    if (tenant === undefined || object === undefined || object.kind !== kind) {
      const what = { user: 'User', group: 'Group', servicePrincipal: 'Service principal' }[kind]
      throw new AccountError('not-found', `${what} with external ID ${externalId} does not exist in the identity provider.`)
    }
    const principal = this.materialize(object)
    for (const g of tenant.transitiveParents(object.object.id)) {
      const parent = tenant.get(g)
      if (parent?.kind === 'group' && parent.object.securityEnabled) this.materialize(parent)
    }
    return principal
  }

  private materialize (object: NonNullable<ReturnType<Directory['get']>>): Principal {
    const existing = this.byExternal(object.object.id)
    if (existing !== undefined) return existing
    if (object.kind === 'user') {
      const u = object.object
      const byName = this.userByName(u.userPrincipalName)
      if (byName !== undefined) {
        // Same user name, no link yet: adopt it. Linked to another Entra object: a conflict, not a duplicate.
        if (byName.externalId !== null) throw new AccountError('conflict', `User with email ${u.userPrincipalName} already exists in this account`)
        this.setExternalId(byName, u.id)
        return byName
      }
      const email = u.mail ?? u.userPrincipalName
      return this.createUser({
        userName: u.userPrincipalName,
        displayName: u.displayName,
        givenName: u.givenName,
        familyName: u.surname,
        emails: [{ value: email, type: 'work', primary: true }],
        active: u.accountEnabled,
        externalId: u.id,
        origin: 'aim'
      })
    }
    if (object.kind === 'servicePrincipal') {
      const sp = object.object
      const byApp = this.servicePrincipalByAppId(sp.appId)
      if (byApp !== undefined) {
        if (byApp.externalId === null) this.setExternalId(byApp, sp.id)
        return byApp
      }
      return this.createServicePrincipal({ applicationId: sp.appId, displayName: sp.displayName, active: sp.accountEnabled, externalId: sp.id, origin: 'aim' })
    }
    const g = object.object
    const byName = this.groupByName(g.displayName)
    if (byName !== undefined && byName.externalId === null) {
      this.setExternalId(byName, g.id)
      return byName
    }
    // Entra allows two groups with one name; Databricks does not. The second one gets its id appended.
    const name = byName === undefined ? g.displayName : `${g.displayName} (${g.id})`
    return this.createGroup({ displayName: name, externalId: g.id, origin: 'aim' })
  }

  /** First use of the account by a principal: INACTIVE → ACTIVE. */
  markLoggedIn (p: Principal): void {
    if (p.kind !== 'group' && !p.loggedIn) {
      p.loggedIn = true
      this.touch(p)
    }
  }

  // ---- admins ---------------------------------------------------------------------------------------

  isAdminApplication (appId: string): boolean {
    const key = appId.toLowerCase()
    if (this.adminApplications !== null) return this.adminApplications.has(key)
    return this.env.tenant()?.application(key) !== undefined
  }

  // ---- workspaces -----------------------------------------------------------------------------------

  createWorkspace (input: { id?: string, name?: string }): Workspace {
    const id = input.id ?? this.nextId()
    if (this.workspaces.has(id)) throw new AccountError('conflict', `Workspace ${id} already exists.`)
    const admins = this.createGroup({ displayName: 'admins', workspaceId: id, system: 'admins', origin: 'system' })
    const users = this.createGroup({ displayName: 'users', workspaceId: id, system: 'users', origin: 'system' })
    const ws = new Workspace(this, { id, name: input.name ?? `workspace-${id}`, adminsGroupId: admins.id, usersGroupId: users.id })
    this.workspaces.set(id, ws)
    return ws
  }

  // ---- internals ------------------------------------------------------------------------------------

  private groupKey (g: AccountGroup): string {
    return g.workspaceId === null ? g.displayName.toLowerCase() : `${g.workspaceId}/${g.displayName.toLowerCase()}`
  }

  private assertExternalIdFree (externalId: string | null | undefined): void {
    if (externalId === null || externalId === undefined || externalId === '') return
    if (this.byExternalId.has(externalId.toLowerCase())) throw new AccountError('conflict', `A principal with external ID ${externalId} already exists in this account.`)
  }

  private indexExternalId (p: Principal): void {
    if (p.externalId !== null && p.externalId !== '') this.byExternalId.set(p.externalId.toLowerCase(), p.id)
  }

  private indexForFilters (p: Principal): void {
    this.ordinals.set(p.id, this.nextOrdinal++)
    this.move(this.byDisplayName, p.id, null, p.displayName.toLowerCase())
    this.move(this.byExactExternalId, p.id, null, p.externalId)
  }

  /** Moves `id` from key `from` to key `to` of a multi-valued index (null: not in it). */
  private move (index: Map<string, Set<string>>, id: string, from: string | null, to: string | null): void {
    if (from === to) return
    if (from !== null) {
      const ids = index.get(from)
      ids?.delete(id)
      if (ids?.size === 0) index.delete(from)
    }
    if (to !== null) {
      let ids = index.get(to)
      if (ids === undefined) index.set(to, (ids = new Set()))
      ids.add(id)
    }
  }

  private lookup (index: Map<string, Set<string>>, key: string): Principal[] {
    const out: Principal[] = []
    for (const id of index.get(key) ?? []) {
      const p = this.principals.get(id)
      if (p !== undefined) out.push(p)
    }
    return out
  }
}

const accounts = new WeakMap<EmulatorContext, DatabricksAccount>()

/** The Databricks account of an emulator instance (created when the Databricks routes are registered). */
export function databricksAccount (ctx: EmulatorContext): DatabricksAccount {
  const account = accounts.get(ctx)
  if (account === undefined) throw new Error('the Databricks emulator is not registered on this context')
  return account
}

export function createAccount (ctx: EmulatorContext): DatabricksAccount {
  const account = new DatabricksAccount({ now: () => ctx.clock.now(), tenant: () => ctx.tenants.get(ctx.primaryTenantId) })
  accounts.set(ctx, account)
  return account
}

/** Replaces the account with a fresh one (control API `POST /_emulator/databricks/reset`). */
export function resetAccount (ctx: EmulatorContext): DatabricksAccount {
  return createAccount(ctx)
}
