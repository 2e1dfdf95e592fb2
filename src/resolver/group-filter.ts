// Which Entra groups are materialized in Databricks (opt-in; default: all). Entra lets ordinary users
// create security groups, so a deployment may trust only some groups to become account groups:
//
// - `securityOnly`: security-enabled groups only (Microsoft 365 groups, which any user can create by
//   default and which Databricks' own connector skips, are left out). Graph says so with every group.
// - `parents`: only these groups and the groups nested in them, at any depth. Nesting a group in one of
//   them takes an owner of that group, so a user-created look-alike stays out. The nesting is read from the
//   principal's closure, which the resolver already has.
//
// Pure: the closure in, the admitted part of it out, with nesting through a left-out group collapsed onto
// the nearest admitted ancestors (A ⊂ X ⊂ C with X left out still puts A's members in C).
import type { GroupRef } from '../directory/port.ts'

export interface GroupFilter {
  securityOnly: boolean
  /** Lowercased object ids; empty: no restriction by parent. */
  parents: ReadonlySet<string>
}

export const ALL_GROUPS: GroupFilter = { securityOnly: false, parents: new Set() }

export function filtersAnything (filter: GroupFilter): boolean {
  return filter.securityOnly || filter.parents.size > 0
}

export interface Closure {
  groups: GroupRef[]
  /** Ids of the groups the principal is a direct member of. */
  directGroupIds: string[]
  /** Group id → its direct parents' ids (within the closure). */
  parents: Map<string, string[]>
}

/** Whether one group is admitted, given its own transitive groups (its ancestors). */
export function admitsGroup (filter: GroupFilter, group: GroupRef, ancestors: readonly GroupRef[]): boolean {
  if (filter.securityOnly && !group.securityEnabled) return false
  if (filter.parents.size === 0) return true
  return [group, ...ancestors].some(g => filter.parents.has(g.id.toLowerCase()))
}

/** The admitted part of a principal's closure, nesting through left-out groups collapsed. */
export function filterClosure (filter: GroupFilter, closure: Closure): Closure {
  if (!filtersAnything(filter)) return closure
  const byId = new Map(closure.groups.map(g => [g.id, g]))
  // Under a root: the roots in the closure and everything nested in them, found downwards from the roots.
  const children = new Map<string, string[]>()
  for (const [child, parents] of closure.parents) for (const p of parents) children.set(p, [...(children.get(p) ?? []), child])
  const underRoot = new Set<string>()
  const queue = filter.parents.size === 0 ? closure.groups.map(g => g.id) : closure.groups.filter(g => filter.parents.has(g.id.toLowerCase())).map(g => g.id)
  for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
    if (underRoot.has(id) || !byId.has(id)) continue
    underRoot.add(id)
    queue.push(...(children.get(id) ?? []))
  }
  const admitted = new Set(closure.groups.filter(g => (!filter.securityOnly || g.securityEnabled) && underRoot.has(g.id)).map(g => g.id))
  // The nearest admitted groups reached from `ids` through left-out ones.
  const nearest = (ids: readonly string[]): string[] => {
    const out = new Set<string>()
    const seen = new Set<string>()
    const todo = [...ids]
    for (let id = todo.shift(); id !== undefined; id = todo.shift()) {
      if (seen.has(id) || !byId.has(id)) continue
      seen.add(id)
      if (admitted.has(id)) out.add(id)
      else todo.push(...(closure.parents.get(id) ?? []))
    }
    return [...out]
  }
  return {
    groups: closure.groups.filter(g => admitted.has(g.id)),
    directGroupIds: nearest(closure.directGroupIds),
    parents: new Map([...admitted].map(id => [id, nearest(closure.parents.get(id) ?? []).filter(p => p !== id)]))
  }
}
