// Object access: what a principal may do on a workspace object and why (effective permissions), and
// sharing an object with anyone in the directory. Orchestration only: the ACL, the workspace's
// assignments and the account's group names come from target/, the principal and its nesting from the
// Resolver, and the decision from the pure permissions/ functions.
//
// ACLs name principals the way the account knows them: users by userName (the UPN), service principals
// by application id, groups by their account display name. A group name is traced back to Entra through
// the account group's externalId, so a group the SCIM adapter had to rename (`Finance (d0000000)`) still
// counts, and a Databricks-only group of the same name never does.
import type { DirectoryPrincipal, GroupRef, PrincipalQuery } from '../directory/port.ts'
import {
  adminLevel,
  effectivePermission,
  hasAtLeast,
  levelsFor,
  normalizeObjectType,
  OBJECT_TYPE_LEVELS,
  parseLevel,
  shortestGroupPaths,
  tryParseLevel,
  UnknownObjectTypeError,
  InvalidPermissionLevelError,
  type AclEntry,
  type EffectivePermission,
  type ObjectType,
  type PermissionLevel,
  type PrincipalGroup
} from '../permissions/index.ts'
import type { WorkspaceObjects } from '../target/workspace-objects.ts'
import type { AccountGroupNames } from '../target/account-groups.ts'
import type { PermissionAssignment, WorkspacePermission } from '../target/assignments.ts'
import type { Materializer } from './materializer.ts'
import type { Resolution, Resolver } from './resolver.ts'
import {
  InvalidPermissionLevel,
  PrincipalNotFound,
  ShareTargetDisabled,
  ShareTargetNotFound,
  UnknownObjectType
} from './errors.ts'

export interface ObjectRef {
  workspaceId: string
  objectType: string
  objectId: string
}

export interface WorkspaceRole {
  access: 'DIRECT' | 'INDIRECT' | 'NONE'
  permission?: WorkspacePermission
}

export interface DashboardPublication {
  published: boolean
  embedCredentials: boolean
  /** The principal can open the published copy without workspace access (embedded credentials). */
  canViewPublished: boolean
  note: string
}

export interface ObjectAccessAnswer {
  objectType: ObjectType
  /** `level` is null for a principal disabled in Entra, whatever the grants (which are still listed). */
  effective: EffectivePermission
  /** Why the grants do not apply, when they do not. */
  blocked?: string
  workspace: WorkspaceRole
  /** Dashboards only: what a principal without workspace access can still see. */
  dashboard?: DashboardPublication
}

export interface ShareResult {
  objectType: ObjectType
  level: PermissionLevel
  /** The name the object's ACL now holds: userName, application id or account group name. */
  principalName: string
  principal: DirectoryPrincipal
  databricksId: string
  /** false when the ACL already granted this level or more directly (nothing was written). */
  changed: boolean
  workspace: WorkspaceRole & { reason: string }
  dashboard?: DashboardPublication
}

export interface ObjectAccessOptions {
  resolver: Resolver
  materializer: Materializer
  objects: WorkspaceObjects
  groupNames: AccountGroupNames
}

export class ObjectAccess {
  constructor (private readonly deps: ObjectAccessOptions) {}

  /** The object type as the Permissions API names it; a 400 problem for an unknown one. */
  static objectType (input: string): ObjectType {
    try {
      return normalizeObjectType(input)
    } catch (err) {
      if (err instanceof UnknownObjectTypeError) throw new UnknownObjectType(input, Object.keys(OBJECT_TYPE_LEVELS).join(', '))
      throw err
    }
  }

  /** The level as the type knows it; a 400 problem naming the allowed ones otherwise. */
  static level (objectType: ObjectType, level: string): PermissionLevel {
    try {
      return parseLevel(objectType, level)
    } catch (err) {
      if (err instanceof InvalidPermissionLevelError) throw new InvalidPermissionLevel(err.message)
      throw err
    }
  }

  /**
   * What `subject` may do on the object, every contributing grant with its reason. `explain: false` leaves
   * the nesting paths out (each group's path is the group alone): enough to decide, cheaper to compute.
   */
  async effective (subject: Resolution, ref: ObjectRef, { explain = true }: { explain?: boolean } = {}): Promise<ObjectAccessAnswer> {
    const objectType = ObjectAccess.objectType(ref.objectType)
    const { principal } = subject
    const [acl, assignments] = await this.deps.materializer.guard(Promise.all([
      this.deps.objects.acl(ref.workspaceId, objectType, ref.objectId),
      this.deps.materializer.assignments.forWorkspace(ref.workspaceId)
    ]))
    const entries = acl.accessControlList
    const groups = await this.memberships(subject, entries, assignments, explain)
    const workspace = workspaceRole(principal, assignments, groups)
    const effective = effectivePermission({
      objectType,
      acl: entries,
      principal: {
        kind: principal.kind === 'servicePrincipal' ? 'servicePrincipal' : 'user',
        ...(principal.userPrincipalName !== undefined ? { userName: principal.userPrincipalName } : {}),
        ...(principal.appId !== undefined ? { applicationId: principal.appId } : {})
      },
      // Every workspace user is in `users`: grants to it reach whoever may use the workspace.
      groups: workspace.access === 'NONE' ? groups : [...groups, { name: 'users', path: ['users'] }],
      isWorkspaceAdmin: workspace.permission === 'ADMIN'
    })
    // Databricks deactivates a principal disabled in Entra: no grant lets it in.
    const blocked = principal.accountEnabled ? undefined : `${principal.displayName} is disabled in Entra (accountEnabled=false), so Databricks refuses it whatever its grants.`
    return {
      objectType,
      effective: blocked === undefined ? effective : { ...effective, level: null },
      ...(blocked !== undefined ? { blocked } : {}),
      workspace,
      ...(objectType === 'dashboards' ? { dashboard: await this.publication(ref, workspace, effective.level) } : {})
    }
  }

  /** Whether the caller's answer allows managing the object (CAN_MANAGE, or the type's top level). */
  static canManage (answer: ObjectAccessAnswer): boolean {
    return hasAtLeast(answer.effective, adminLevel(answer.objectType))
  }

  /**
   * Grants `level` on the object to anyone in the directory: resolved in Entra (must exist and be
   * enabled), made to exist in the account (never assigned to the workspace), then added to the ACL with
   * a PATCH unless it already holds that level or more directly. The caller's right to share is checked
   * by the route before.
   */
  async share (tenantId: string, target: PrincipalQuery, ref: ObjectRef, requested: string | undefined): Promise<ShareResult> {
    const objectType = ObjectAccess.objectType(ref.objectType)
    // The type's lowest level (view) unless asked otherwise: sharing is usually "let them see it".
    const level = requested === undefined ? levelsFor(objectType)[0]! : ObjectAccess.level(objectType, requested)
    let resolution: Resolution
    try {
      resolution = await this.deps.resolver.resolve(tenantId, target)
    } catch (err) {
      if (err instanceof PrincipalNotFound) throw new ShareTargetNotFound(Object.values(target)[0] as string, tenantId)
      throw err
    }
    const { principal } = resolution
    if (!principal.accountEnabled) throw new ShareTargetDisabled(principal.kind === 'servicePrincipal' ? 'service principal' : principal.kind, principal.displayName)

    let principalName: string
    let databricksId: string
    let workspace: ShareResult['workspace']
    const entryKey = principal.kind === 'group' ? 'group_name' : principal.kind === 'servicePrincipal' ? 'service_principal_name' : 'user_name'
    if (principal.kind === 'group') {
      const group: GroupRef = { id: principal.id, displayName: principal.displayName, securityEnabled: principal.securityEnabled ?? true }
      const made = await this.deps.materializer.materializeGroup(tenantId, group)
      principalName = made.name
      databricksId = made.groupId
      const decided = await this.deps.materializer.guard(this.deps.materializer.assignments.decide(ref.workspaceId, made.groupId, []))
      workspace = {
        access: decided.access,
        ...(decided.permission !== undefined ? { permission: decided.permission } : {}),
        reason: decided.access === 'NONE'
          ? `The group is not assigned to workspace ${ref.workspaceId}; members with their own access can use the grant.`
          : `The group is assigned ${decided.permission ?? 'USER'} in workspace ${ref.workspaceId}.`
      }
    } else {
      const materialized = await this.deps.materializer.materialize(resolution)
      principalName = materialized.principalName
      databricksId = materialized.principalId
      const access = await this.deps.materializer.workspaceAccess(ref.workspaceId, resolution, materialized)
      workspace = { access: access.access, ...(access.permission !== undefined ? { permission: access.permission } : {}), reason: access.reason }
    }

    // Idempotent: read the ACL as it is now, and write only when the grant is missing or lower.
    const acl = await this.deps.materializer.guard(this.deps.objects.acl(ref.workspaceId, objectType, ref.objectId, { fresh: true }))
    const held = directLevel(objectType, acl.accessControlList, entryKey, principalName)
    const changed = held === undefined || levelsFor(objectType).indexOf(held) < levelsFor(objectType).indexOf(level)
    if (changed) {
      await this.deps.materializer.guard(this.deps.objects.grant(ref.workspaceId, objectType, ref.objectId, { [entryKey]: principalName, permission_level: level }))
    }
    const granted = changed ? level : held
    return {
      objectType,
      level: granted,
      principalName,
      principal,
      databricksId,
      changed,
      workspace,
      ...(objectType === 'dashboards' ? { dashboard: await this.publication(ref, workspace, granted) } : {})
    }
  }

  /**
   * The principal's groups as the ACL and the assignments name them, each with its nesting path in
   * Entra display names. Only names that trace back (by externalId) to a group the principal is in count.
   */
  private async memberships (subject: Resolution, entries: readonly AclEntry[], assignments: readonly PermissionAssignment[], explain: boolean): Promise<PrincipalGroup[]> {
    const names = new Set<string>()
    // The workspace-local `admins` and `users` trace to no Entra group (AccountGroupNames answers null for
    // them): the ADMIN assignment, and any assignment, decide those.
    for (const e of entries) if (typeof e.group_name === 'string') names.add(e.group_name)
    for (const a of assignments) if (a.kind === 'group' && a.name !== undefined) names.add(a.name)
    if (names.size === 0 || subject.groups.length === 0) return []
    const external = await this.deps.materializer.guard(this.deps.groupNames.externalIds([...names]))
    const inClosure = new Map(subject.groups.map(g => [g.id.toLowerCase(), g]))
    const matched = [...names].flatMap(name => {
      const id = external.get(name)?.toLowerCase()
      const group = id === undefined ? undefined : inClosure.get(id)
      return group === undefined ? [] : [{ name, group }]
    })
    if (matched.length === 0) return []
    if (!explain) return matched.map(({ name }) => ({ name, path: [name] }))
    const paths = await this.paths(subject)
    return matched.map(({ name, group }) => {
      const ids = paths.get(group.id) ?? [group.id]
      // Entra names along the way, the ACL's own name for the group at the end.
      return { name, path: [...ids.slice(0, -1).map(id => inClosure.get(id.toLowerCase())?.displayName ?? id), name] }
    })
  }

  /** The nesting path of each of the principal's groups (from the resolver's cached edges). */
  private async paths ({ principal, groups }: Resolution): Promise<Map<string, string[]>> {
    const [direct, parents] = await Promise.all([
      this.deps.resolver.directGroups(principal),
      this.deps.resolver.directParents(principal.tenantId, groups.map(g => g.id))
    ])
    return shortestGroupPaths(direct.map(g => g.id), parents)
  }

  private async publication (ref: ObjectRef, workspace: WorkspaceRole, level: PermissionLevel | null): Promise<DashboardPublication> {
    const { published, embedCredentials } = await this.deps.materializer.guard(this.deps.objects.publication(ref.workspaceId, ref.objectId))
    const granted = level !== null
    const canViewPublished = granted && published && embedCredentials
    let note: string
    if (workspace.access !== 'NONE') note = granted ? 'Has access to the workspace: opens the dashboard with its own permissions.' : 'Has access to the workspace but no grant on the dashboard.'
    else if (!granted) note = 'No access to the workspace and no grant on the dashboard.'
    else if (canViewPublished) note = 'No access to the workspace: can view the published copy, which runs with the publisher\'s embedded credentials; not the draft.'
    else if (published) note = 'No access to the workspace, and the dashboard is published without embedded credentials: it cannot be viewed until the principal gets workspace access or the dashboard is published with embedded credentials.'
    else note = 'No access to the workspace, and the dashboard is not published: it cannot be viewed until the principal gets workspace access or the dashboard is published with embedded credentials.'
    return { published, embedCredentials, canViewPublished, note }
  }
}

/** The highest level the ACL grants directly (not inherited) to the named principal. */
function directLevel (objectType: ObjectType, entries: readonly AclEntry[], key: 'user_name' | 'group_name' | 'service_principal_name', name: string): PermissionLevel | undefined {
  let best: PermissionLevel | undefined
  for (const e of entries) {
    const named = e[key]
    if (typeof named !== 'string' || named.toLowerCase() !== name.toLowerCase()) continue
    for (const p of e.all_permissions ?? []) {
      if (p.inherited === true) continue
      const level = tryParseLevel(objectType, p.permission_level)
      if (level !== undefined && (best === undefined || levelsFor(objectType).indexOf(level) > levelsFor(objectType).indexOf(best))) best = level
    }
  }
  return best
}

/** The principal's access to the workspace from the assignments of itself and of its groups (by name). */
function workspaceRole (principal: DirectoryPrincipal, assignments: readonly PermissionAssignment[], groups: readonly PrincipalGroup[]): WorkspaceRole {
  const own = (a: PermissionAssignment): boolean => {
    const name = a.name?.toLowerCase()
    if (name === undefined) return false
    if (a.kind === 'user') return principal.kind === 'user' && name === principal.userPrincipalName?.toLowerCase()
    if (a.kind === 'servicePrincipal') return principal.kind === 'servicePrincipal' && name === principal.appId?.toLowerCase()
    return false
  }
  const groupNames = new Set(groups.map(g => g.name))
  const direct = assignments.filter(own).flatMap(a => a.permissions)
  const viaGroups = assignments.filter(a => a.kind === 'group' && a.name !== undefined && groupNames.has(a.name)).flatMap(a => a.permissions)
  const all = [...direct, ...viaGroups]
  if (all.length === 0) return { access: 'NONE' }
  return { access: direct.length > 0 ? 'DIRECT' : 'INDIRECT', permission: all.includes('ADMIN') ? 'ADMIN' : 'USER' }
}
