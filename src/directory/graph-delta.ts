// Graph delta pages → directory changes (pure). Graph may name one object on several pages (a large group's
// `members@delta` split across them) and repeats objects across rounds; pages are merged per object here,
// and the callers' writes are idempotent, so a replay changes nothing.
//
// Shapes (reference §2.6; parsed leniently where the wire form is unconfirmed):
// - removed: `{ id, "@removed": { reason: "changed" | "deleted" } }` — `changed` is restorable (deleted
//   items), `deleted` permanent. An unknown reason counts as restorable: the safe reading deactivates
//   without forgetting.
// - members: `"members@delta": [{ "@odata.type": "#microsoft.graph.user", id }, { …, "@removed": {…} }]`;
//   a third-party sample shows `"@removed": "deleted"` as a string and no `@odata.type` (a member without
//   a type is taken as a user: groups and service principals nested in groups carry their type).
import type { DirectoryChange, DirectoryObjectKind, MemberChange } from './port.ts'

type GraphObject = Record<string, unknown>

const KIND_OF_TYPE: Record<string, DirectoryObjectKind> = {
  '#microsoft.graph.user': 'user',
  '#microsoft.graph.group': 'group',
  '#microsoft.graph.serviceprincipal': 'servicePrincipal'
}

/** The `$select` of each kind's delta query: what the sync needs and nothing else. */
export const DELTA_SELECT: Record<DirectoryObjectKind, string> = {
  user: 'id,displayName,accountEnabled',
  servicePrincipal: 'id,displayName,accountEnabled',
  group: 'id,displayName,members'
}

/** Merges one page's `value` into the changes collected so far (keyed by lowercase id). */
export function mergeDeltaPage (changes: Map<string, DirectoryChange>, kind: DirectoryObjectKind, value: unknown[]): void {
  for (const raw of value) {
    if (typeof raw !== 'object' || raw === null) continue
    const o = raw as GraphObject
    if (typeof o.id !== 'string' || o.id === '') continue
    const key = o.id.toLowerCase()
    if ('@removed' in o) {
      changes.set(key, { op: 'removed', kind, id: o.id, permanent: removedReason(o['@removed']) === 'deleted' })
      continue
    }
    const known = changes.get(key)
    const upsert: DirectoryChange = known?.op === 'upserted' ? known : { op: 'upserted', kind, id: o.id, members: [] }
    if (typeof o.displayName === 'string') upsert.displayName = o.displayName
    if (typeof o.accountEnabled === 'boolean') upsert.accountEnabled = o.accountEnabled
    if (Array.isArray(o['members@delta'])) upsert.members.push(...memberChanges(o['members@delta']))
    // Re-set so an object removed on an earlier page and back on a later one ends as its latest state.
    changes.delete(key)
    changes.set(key, upsert)
  }
}

function memberChanges (list: unknown[]): MemberChange[] {
  const out: MemberChange[] = []
  for (const m of list) {
    if (typeof m !== 'object' || m === null) continue
    const o = m as GraphObject
    if (typeof o.id !== 'string' || o.id === '') continue
    const type = typeof o['@odata.type'] === 'string' ? o['@odata.type'].toLowerCase() : '#microsoft.graph.user'
    const kind = KIND_OF_TYPE[type]
    if (kind === undefined) continue // a device or an org contact: nothing the service materializes
    out.push({ id: o.id, kind, removed: '@removed' in o })
  }
  return out
}

function removedReason (removed: unknown): string | undefined {
  if (typeof removed === 'string') return removed
  if (typeof removed === 'object' && removed !== null && typeof (removed as GraphObject).reason === 'string') return (removed as GraphObject).reason as string
  return undefined
}
