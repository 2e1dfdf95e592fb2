/**
 * Effective permission of a principal on an object, from the object's ACL as
 * the Databricks Permissions API returns it. Pure: the caller supplies the ACL,
 * the principal's groups (with nesting paths) and whether it is a workspace admin.
 */
import {
  adminLevel,
  compareLevels,
  levelRank,
  normalizeObjectType,
  tryParseLevel,
  type ObjectType,
  type PermissionLevel
} from './levels.ts'

export const ADMINS_GROUP = 'admins'

/** One entry of `all_permissions`. */
export interface AclPermission {
  permission_level?: string
  inherited?: boolean
  inherited_from_object?: string[]
}

/** One entry of `access_control_list`. */
export interface AclEntry {
  user_name?: string
  service_principal_name?: string
  group_name?: string
  display_name?: string
  all_permissions?: AclPermission[]
}

/** The Permissions API response (`ObjectPermissions`), or just its list. */
export type Acl = readonly AclEntry[] | { object_id?: string, object_type?: string, access_control_list?: readonly AclEntry[] }

export interface EvaluatedPrincipal {
  kind: 'user' | 'servicePrincipal'
  /** Matched against `user_name`, case-insensitively. */
  userName?: string
  /** Matched against `service_principal_name` (the application id), case-insensitively. */
  applicationId?: string
  databricksId?: string
}

export interface PrincipalGroup {
  name: string
  /** Group names from the principal's direct group up to this one (ends with `name`). */
  path: string[]
}

export interface EffectivePermissionInput {
  objectType: string
  acl: Acl
  principal: EvaluatedPrincipal
  groups?: readonly PrincipalGroup[]
  isWorkspaceAdmin?: boolean
}

export type GrantVia = 'user' | 'servicePrincipal' | 'group' | 'admins'

export interface Grant {
  level: PermissionLevel
  via: GrantVia
  group?: string
  groupPath?: string[]
  inherited: boolean
  inheritedFrom?: string[]
  reason: string
}

/** An ACL entry that applies to the principal but carries a level the type does not know. */
export interface IgnoredPermission {
  via: Exclude<GrantVia, 'admins'>
  principal: string
  level: unknown
}

export interface EffectivePermission {
  objectType: ObjectType
  level: PermissionLevel | null
  grants: Grant[]
  ignored: IgnoredPermission[]
}

const VIA_ORDER: Record<GrantVia, number> = { user: 0, servicePrincipal: 0, group: 1, admins: 2 }

function aclEntries (acl: Acl): readonly AclEntry[] {
  if (Array.isArray(acl)) return acl
  const list = (acl as { access_control_list?: unknown }).access_control_list
  return Array.isArray(list) ? list as AclEntry[] : []
}

function sameName (a: unknown, b: string | undefined): boolean {
  return typeof a === 'string' && typeof b === 'string' && b !== '' && a.toLowerCase() === b.toLowerCase()
}

/** One membership per group name: the shortest path wins (then the lexicographically smallest). */
function membershipsByName (groups: readonly PrincipalGroup[]): Map<string, string[]> {
  const byName = new Map<string, string[]>()
  for (const group of groups) {
    if (typeof group?.name !== 'string' || group.name === '') continue
    const path = Array.isArray(group.path) && group.path.length > 0 ? [...group.path] : [group.name]
    if (path[path.length - 1] !== group.name) path.push(group.name)
    const current = byName.get(group.name)
    if (current === undefined || path.length < current.length ||
      (path.length === current.length && path.join('\u0000') < current.join('\u0000'))) {
      byName.set(group.name, path)
    }
  }
  return byName
}

function describePath (path: string[]): string {
  return path.length <= 1 ? 'direct member' : path.join(' ⊂ ')
}

function reasonFor (grant: Omit<Grant, 'reason'>, principalName: string): string {
  let text: string
  switch (grant.via) {
    case 'user':
      text = `${grant.level} granted to user '${principalName}'`
      break
    case 'servicePrincipal':
      text = `${grant.level} granted to service principal '${principalName}'`
      break
    case 'group':
      text = `${grant.level} through group '${grant.group}' (${describePath(grant.groupPath ?? [])})`
      break
    case 'admins':
      return grant.groupPath !== undefined
        ? `${grant.level} as a workspace admin (member of '${ADMINS_GROUP}': ${describePath(grant.groupPath)})`
        : `${grant.level} as a workspace admin`
  }
  if (grant.inherited) {
    text += grant.inheritedFrom !== undefined && grant.inheritedFrom.length > 0
      ? `, inherited from ${grant.inheritedFrom.join(', ')}`
      : ', inherited from a parent object'
  } else {
    text += ', directly on the object'
  }
  return text
}

/**
 * The principal's effective level on the object and every grant that contributes
 * to it, sorted by level (highest first), then direct before inherited.
 * Throws UnknownObjectTypeError for an unknown object type. Levels the type does not
 * know are left out of the answer and reported in `ignored`.
 */
export function effectivePermission (input: EffectivePermissionInput): EffectivePermission {
  const objectType = normalizeObjectType(input.objectType)
  const { principal } = input
  const memberships = membershipsByName(input.groups ?? [])
  const grants: Grant[] = []
  const ignored: IgnoredPermission[] = []

  const add = (partial: Omit<Grant, 'reason'>, principalName: string): void => {
    grants.push({ ...partial, reason: reasonFor(partial, principalName) })
  }

  for (const entry of aclEntries(input.acl)) {
    if (entry === null || typeof entry !== 'object') continue
    let via: Exclude<GrantVia, 'admins'>
    let name: string
    let groupPath: string[] | undefined
    if (principal.kind === 'user' && sameName(entry.user_name, principal.userName)) {
      via = 'user'
      name = entry.user_name!
    } else if (principal.kind === 'servicePrincipal' && sameName(entry.service_principal_name, principal.applicationId)) {
      via = 'servicePrincipal'
      name = entry.service_principal_name!
    } else if (typeof entry.group_name === 'string' && memberships.has(entry.group_name)) {
      via = 'group'
      name = entry.group_name
      groupPath = memberships.get(name)
    } else {
      continue
    }
    for (const permission of Array.isArray(entry.all_permissions) ? entry.all_permissions : []) {
      if (permission === null || typeof permission !== 'object') continue
      const level = tryParseLevel(objectType, permission.permission_level)
      if (level === undefined) {
        ignored.push({ via, principal: name, level: permission.permission_level })
        continue
      }
      const inherited = permission.inherited === true
      const from = Array.isArray(permission.inherited_from_object)
        ? permission.inherited_from_object.filter((o): o is string => typeof o === 'string')
        : undefined
      add({
        level,
        via,
        ...(via === 'group' ? { group: name, groupPath: [...groupPath!] } : {}),
        inherited,
        ...(inherited && from !== undefined && from.length > 0 ? { inheritedFrom: from } : {})
      }, name)
    }
  }

  const adminsPath = memberships.get(ADMINS_GROUP)
  if (input.isWorkspaceAdmin === true || adminsPath !== undefined) {
    add({
      level: adminLevel(objectType),
      via: 'admins',
      group: ADMINS_GROUP,
      ...(adminsPath !== undefined ? { groupPath: [...adminsPath] } : {}),
      inherited: false
    }, ADMINS_GROUP)
  }

  grants.sort((a, b) =>
    compareLevels(objectType, b.level, a.level) ||
    Number(a.inherited) - Number(b.inherited) ||
    VIA_ORDER[a.via] - VIA_ORDER[b.via] ||
    (a.groupPath?.length ?? 0) - (b.groupPath?.length ?? 0) ||
    (a.group ?? '').localeCompare(b.group ?? ''))

  const top = grants[0]
  return {
    objectType,
    level: top === undefined ? null : top.level,
    grants,
    ignored
  }
}

/** True when the principal holds at least `level` on the object. */
export function hasAtLeast (result: EffectivePermission, level: string): boolean {
  return result.level !== null && levelRank(result.objectType, result.level) >= levelRank(result.objectType, level)
}
