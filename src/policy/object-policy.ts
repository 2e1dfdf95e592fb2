// Who may do what on a workspace object through this service: share it, grant which level, ask about
// whom. Pure (no I/O), decided from what the caller holds on the object as Databricks itself evaluates it.
// The service writes with account-admin credentials, so every rule here is at least as strict as the one
// Databricks applies to the caller (reference: "Who may change permissions"); where the reference is
// unconfirmed, the stricter reading:
//
// - Managing an object's permissions needs CAN_MANAGE or IS_OWNER on it, or workspace admin. Types without
//   a CAN_MANAGE level (cluster policies: CAN_USE only) are managed by workspace admins alone.
// - A share never grants a level above the caller's own effective level on the object.
// - IS_OWNER (the run-as identity of a job, the owner of a pipeline or warehouse) is never granted through
//   a share unless the caller is a workspace admin, and only to a user or service principal: there is
//   exactly one owner, and Databricks demotes the previous one to CAN_MANAGE.
// - Asking what someone else may do on an object takes the app role Identity.Admin, or the right to manage
//   the object (whoever may change the ACL may read it). Decided before the subject is looked up.
import { levelsFor, type ObjectType, type PermissionLevel } from '../permissions/levels.ts'

/** What the caller holds on the object, as permissions/ evaluated it. */
export interface CallerStanding {
  objectType: ObjectType
  /** The caller's effective level (null: none, or disabled in Entra). */
  level: PermissionLevel | null
  isWorkspaceAdmin: boolean
}

export type Refusal =
  /** The type is managed by workspace admins only. */
  | 'ADMIN_ONLY_TYPE'
  /** The caller may not change the object's permissions. */
  | 'NOT_A_MANAGER'
  /** The requested level is above the caller's own. */
  | 'LEVEL_ABOVE_OWN'
  /** IS_OWNER is an admin's ownership transfer. */
  | 'OWNER_NEEDS_ADMIN'
  /** A group cannot own an object. */
  | 'OWNER_MUST_BE_PRINCIPAL'

export type Decision = { allowed: true } | { allowed: false, refusal: Refusal, reason: string }

const OWNER: PermissionLevel = 'IS_OWNER'
const MANAGE: PermissionLevel = 'CAN_MANAGE'

/** Whether only workspace admins manage objects of this type (it has no CAN_MANAGE level). */
export function isAdminOnlyType (objectType: ObjectType): boolean {
  return !levelsFor(objectType).includes(MANAGE)
}

/** The levels that let a holder change the object's permissions. */
export function managingLevels (objectType: ObjectType): PermissionLevel[] {
  return isAdminOnlyType(objectType) ? [] : levelsFor(objectType).filter(l => l === MANAGE || l === OWNER)
}

function rank (objectType: ObjectType, level: PermissionLevel): number {
  return levelsFor(objectType).indexOf(level)
}

function describe (standing: CallerStanding): string {
  if (standing.isWorkspaceAdmin) return 'workspace admin'
  return standing.level ?? 'no permission'
}

/** Whether the caller may change the object's permissions (share it, read others' standing on it). */
export function mayManage (standing: CallerStanding): Decision {
  if (standing.isWorkspaceAdmin) return { allowed: true }
  if (isAdminOnlyType(standing.objectType)) {
    return { allowed: false, refusal: 'ADMIN_ONLY_TYPE', reason: `Only workspace admins manage the permissions of ${standing.objectType}; you have ${describe(standing)}.` }
  }
  if (standing.level !== null && managingLevels(standing.objectType).includes(standing.level)) return { allowed: true }
  return {
    allowed: false,
    refusal: 'NOT_A_MANAGER',
    reason: `Changing who may use it needs ${managingLevels(standing.objectType).join(' or ')} on it, or workspace admin; you have ${describe(standing)}.`
  }
}

/** Whether the caller may grant `level` on the object to a principal of `targetKind`. */
export function mayGrant (standing: CallerStanding, level: PermissionLevel, targetKind: 'user' | 'servicePrincipal' | 'group'): Decision {
  const manage = mayManage(standing)
  if (!manage.allowed) return manage
  const { objectType } = standing
  if (level === OWNER) {
    if (!standing.isWorkspaceAdmin) {
      return { allowed: false, refusal: 'OWNER_NEEDS_ADMIN', reason: `${OWNER} transfers the ownership of the ${objectType} object (its run-as identity); only a workspace admin can do that.` }
    }
    if (targetKind === 'group') {
      return { allowed: false, refusal: 'OWNER_MUST_BE_PRINCIPAL', reason: `A group cannot own a ${objectType} object: make a user or service principal the owner.` }
    }
    return { allowed: true }
  }
  // Workspace admins hold CAN_MANAGE on every object: every level below the owner is theirs to grant.
  if (standing.isWorkspaceAdmin) return { allowed: true }
  const own = standing.level as PermissionLevel
  if (rank(objectType, level) > rank(objectType, own)) {
    return { allowed: false, refusal: 'LEVEL_ABOVE_OWN', reason: `You hold ${own} on it and cannot grant ${level}, which is above your own level.` }
  }
  return { allowed: true }
}

/**
 * Whether the caller may ask what another principal may do on the object. Decided from the caller alone,
 * before the subject is looked up, so the answer says nothing about whether the subject exists.
 */
export function mayAskAboutOthers (standing: CallerStanding, roles: readonly string[]): Decision {
  if (roles.includes('Identity.Admin')) return { allowed: true }
  const manage = mayManage(standing)
  if (manage.allowed) return manage
  return { allowed: false, refusal: manage.refusal, reason: `Asking about another principal needs the app role Identity.Admin or the right to manage the object. ${manage.reason}` }
}
