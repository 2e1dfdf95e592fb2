// Remembered permission answers. A warm permission question used to compute its answer again on every
// request (the ACL's group names matched against the principal's groups, the nesting paths walked, every
// grant's reason written) from inputs that had not changed; now it is a lookup.
//
// An answer is remembered with what it was computed from, and served only while each of those is what
// its own cache holds now, compared on every request: the ACL, the principal's profile and group list,
// the workspace's assignments and the account's group names by identity first (each cache hands out the
// one object it holds, until it is reloaded or forgotten), then by value (a reload with the same content
// keeps the answer), the
// nesting paths through the resolver (by the identity of the edges they came from), the dashboard's
// publication by identity. So no answer outlives any input: the ACL's TTL, a share (the ACL is replaced),
// an Entra change the sync applies (the resolver forgets the principal or the group), a group renamed in
// the account (the names are forgotten) each make the next question compute its answer again. There is
// nothing to invalidate here and no TTL of its own; an answer is held (weakly) by the cached ACL and
// principal objects it is for, so it never outlives them in memory either.
import type { DirectoryPrincipal, GroupRef } from '../directory/port.ts'
import type { GroupNameFacts } from '../target/account-groups.ts'
import type { PermissionAssignment } from '../target/assignments.ts'
import type { DashboardPublication, ObjectAcl } from '../target/workspace-objects.ts'

/** An answer and everything it was computed from. */
export interface RememberedAnswer<A> {
  acl: ObjectAcl
  assignments: readonly PermissionAssignment[]
  principal: DirectoryPrincipal
  groups: readonly GroupRef[]
  /** Read only when the ACL or the assignments name groups and the principal has some. */
  names: GroupNameFacts | undefined
  /** The resolver's group paths, when the answer shows nesting. */
  paths: ReadonlyMap<string, readonly string[]> | undefined
  /** Dashboards only. */
  publication: DashboardPublication | undefined
  answer: A
}

/** What every answer depends on, read from the caches by the request. */
export interface AnswerInputs {
  acl: ObjectAcl
  assignments: readonly PermissionAssignment[]
  principal: DirectoryPrincipal
  groups: readonly GroupRef[]
}

// The group names each cached ACL and each cached list of assignments holds, computed once per object
// (both caches hand out one frozen object until they load it again): the same set while it is unchanged.
const aclNames = new WeakMap<ObjectAcl, ReadonlySet<string>>()
const assignedNames = new WeakMap<readonly PermissionAssignment[], ReadonlySet<string>>()

/** The distinct `group_name`s of the ACL's entries, in order. */
export function aclGroupNames (acl: ObjectAcl): ReadonlySet<string> {
  let names = aclNames.get(acl)
  if (names === undefined) {
    const found = new Set<string>()
    for (const e of acl.accessControlList) if (typeof e.group_name === 'string') found.add(e.group_name)
    aclNames.set(acl, names = found)
  }
  return names
}

/** The names of the groups the workspace is assigned to. */
export function assignedGroupNames (assignments: readonly PermissionAssignment[]): ReadonlySet<string> {
  let names = assignedNames.get(assignments)
  if (names === undefined) {
    const found = new Set<string>()
    for (const a of assignments) if (a.kind === 'group' && a.name !== undefined) found.add(a.name)
    assignedNames.set(assignments, names = found)
  }
  return names
}

/** The answers for one principal on one object: with the nesting explained, and the level alone. */
interface Slots<A> { explained?: RememberedAnswer<A>, level?: RememberedAnswer<A> }

/**
 * Held weakly by the cached ACL object and the cached principal object an answer is for: it goes when
 * either leaves its cache (replaced, expired and reloaded, forgotten, evicted), so it needs no bound of its
 * own, and finding it costs two identity lookups (no key to build).
 */
export class AnswerCache<A> {
  private readonly byAcl = new WeakMap<ObjectAcl, WeakMap<DirectoryPrincipal, Slots<A>>>()

  get (acl: ObjectAcl, principal: DirectoryPrincipal, explained: boolean): RememberedAnswer<A> | undefined {
    const slots = this.byAcl.get(acl)?.get(principal)
    return explained ? slots?.explained : slots?.level
  }

  set (remembered: RememberedAnswer<A>, explained: boolean): void {
    let byPrincipal = this.byAcl.get(remembered.acl)
    if (byPrincipal === undefined) this.byAcl.set(remembered.acl, byPrincipal = new WeakMap())
    let slots = byPrincipal.get(remembered.principal)
    if (slots === undefined) byPrincipal.set(remembered.principal, slots = {})
    if (explained) slots.explained = remembered
    else slots.level = remembered
  }

  /** The inputs every answer has, unchanged. */
  sameInputs (remembered: RememberedAnswer<A>, now: AnswerInputs): boolean {
    return remembered.acl === now.acl && remembered.principal === now.principal &&
      sameGroups(remembered.groups, now.groups) && sameAssignments(remembered.assignments, now.assignments)
  }

  sameNames (a: GroupNameFacts, b: GroupNameFacts): boolean {
    if (a === b) return true
    if (a.external.size !== b.external.size || a.local.size !== b.local.size) return false
    for (const [name, id] of a.external) if (b.external.get(name) !== id) return false
    for (const name of a.local) if (!b.local.has(name)) return false
    return true
  }
}

/** The same list, or one with the same groups (ids and names) in the same order (a token's groups claim is new each time). */
function sameGroups (a: readonly GroupRef[], b: readonly GroupRef[]): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as GroupRef
    const y = b[i] as GroupRef
    if (x !== y && (x.id !== y.id || x.displayName !== y.displayName)) return false
  }
  return true
}

function sameAssignments (a: readonly PermissionAssignment[], b: readonly PermissionAssignment[]): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as PermissionAssignment
    const y = b[i] as PermissionAssignment
    if (x.principalId !== y.principalId || x.kind !== y.kind || x.name !== y.name || x.displayName !== y.displayName) return false
    if (x.permissions.length !== y.permissions.length) return false
    for (let j = 0; j < x.permissions.length; j++) if (x.permissions[j] !== y.permissions[j]) return false
  }
  return true
}
