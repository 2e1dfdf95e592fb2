// Names in the Databricks account: how a value is quoted in a SCIM filter, which group names belong to
// Databricks itself, and what an Entra group is called there.
import type { GroupRef } from '../directory/port.ts'

/**
 * A SCIM filter string literal. RFC 7644 §3.4.2.2 makes a filter's value a JSON value, so the literal is a
 * JSON string: `"` and `\` escaped, and every control character too (a newline or a tab in a name would
 * otherwise end the filter's grammar), so no name can widen or break a filter.
 */
export function scimString (value: string): string {
  return JSON.stringify(value)
}

/**
 * How an Entra group is named in the account. `display-with-id` (the default): `Name (xxxxxxxx)`, the first
 * 8 characters of its object id, so a name says which Entra group it is and cannot be squatted by a
 * look-alike group created first. `display`: Entra's display name as it is, disambiguated only when taken.
 */
export type GroupNamePolicy = 'display' | 'display-with-id'

/** The names a group may get, in order of preference: the first one that is free is used. */
export function groupNameCandidates (group: Pick<GroupRef, 'id' | 'displayName'>, policy: GroupNamePolicy = 'display-with-id'): string[] {
  const base = group.displayName.trim() === '' ? group.id : group.displayName
  const withId = [`${base} (${group.id.slice(0, 8)})`, `${base} (${group.id})`]
  return policy === 'display' ? [base, ...withId] : withId
}

/** Names Databricks' system groups hold: in each workspace `admins` and `users`, in the account `account users`. */
export const RESERVED_GROUP_NAMES: ReadonlySet<string> = new Set(['admins', 'users', 'account users'])

/** Whether a group name belongs to a Databricks system group (case-insensitive). */
export function isReservedGroupName (name: string): boolean {
  return RESERVED_GROUP_NAMES.has(name.trim().toLowerCase())
}
