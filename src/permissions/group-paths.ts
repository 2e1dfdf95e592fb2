/**
 * How a principal belongs to each of its groups: the shortest chain of nested groups from one it is a
 * direct member of up to the group. Pure: the caller supplies the direct groups and the parent edges.
 */

/**
 * Group id → the ids along the shortest membership chain (first: a direct group; last: the group
 * itself). Breadth-first from the direct groups over `parents`; ties go to the smaller id, so the
 * answer does not depend on the order Entra listed the edges in. Groups not reachable are left out.
 */
export function shortestGroupPaths (directGroupIds: Iterable<string>, parents: ReadonlyMap<string, readonly string[]>): Map<string, string[]> {
  const paths = new Map<string, string[]>()
  let frontier = [...new Set(directGroupIds)].sort()
  for (const id of frontier) paths.set(id, [id])
  while (frontier.length > 0) {
    const next: string[] = []
    for (const child of frontier) {
      for (const parent of [...(parents.get(child) ?? [])].sort()) {
        if (paths.has(parent)) continue
        paths.set(parent, [...paths.get(child)!, parent])
        next.push(parent)
      }
    }
    frontier = next.sort()
  }
  return paths
}
