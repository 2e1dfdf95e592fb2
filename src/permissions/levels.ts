/**
 * Databricks permission levels per object type, and their order.
 *
 * Pure data and functions, no I/O. The level sets follow the Databricks
 * Permissions API (Terraform `permission_definitions.go`); each set is listed
 * lowest to highest. The order is the conventional one ("effective = max over
 * the user and its transitive groups"); Databricks does not publish it.
 * Warehouses' CAN_MONITOR and CAN_USE are not strictly nested (MONITOR sees all
 * queries, USE runs them); they are ordered as the reference lists them.
 */

export type PermissionLevel =
  | 'CAN_ATTACH_TO' | 'CAN_BIND' | 'CAN_CREATE' | 'CAN_CREATE_APP' | 'CAN_EDIT'
  | 'CAN_EDIT_METADATA' | 'CAN_MANAGE' | 'CAN_MANAGE_PRODUCTION_VERSIONS'
  | 'CAN_MANAGE_RUN' | 'CAN_MANAGE_STAGING_VERSIONS' | 'CAN_MONITOR'
  | 'CAN_MONITOR_ONLY' | 'CAN_QUERY' | 'CAN_READ' | 'CAN_RESTART' | 'CAN_RUN'
  | 'CAN_USE' | 'CAN_VIEW' | 'CAN_VIEW_METADATA' | 'IS_OWNER'

const WORKSPACE_OBJECT: readonly PermissionLevel[] = ['CAN_READ', 'CAN_RUN', 'CAN_EDIT', 'CAN_MANAGE']
const USE_MANAGE: readonly PermissionLevel[] = ['CAN_USE', 'CAN_MANAGE']

/** Canonical object types: the Permissions API `request_object_type` path segment. */
export const OBJECT_TYPE_LEVELS = Object.freeze({
  dashboards: WORKSPACE_OBJECT,
  'dbsql-dashboards': WORKSPACE_OBJECT,
  notebooks: WORKSPACE_OBJECT,
  directories: WORKSPACE_OBJECT,
  files: WORKSPACE_OBJECT,
  repos: WORKSPACE_OBJECT,
  clusters: ['CAN_ATTACH_TO', 'CAN_RESTART', 'CAN_MANAGE'],
  jobs: ['CAN_VIEW', 'CAN_MANAGE_RUN', 'CAN_MANAGE', 'IS_OWNER'],
  pipelines: ['CAN_VIEW', 'CAN_RUN', 'CAN_MANAGE', 'IS_OWNER'],
  warehouses: ['CAN_VIEW', 'CAN_MONITOR', 'CAN_USE', 'CAN_MANAGE', 'IS_OWNER'],
  'cluster-policies': ['CAN_USE'],
  'instance-pools': ['CAN_ATTACH_TO', 'CAN_MANAGE'],
  'serving-endpoints': ['CAN_VIEW', 'CAN_QUERY', 'CAN_MANAGE'],
  experiments: ['CAN_READ', 'CAN_EDIT', 'CAN_MANAGE'],
  'registered-models': ['CAN_READ', 'CAN_EDIT', 'CAN_MANAGE_STAGING_VERSIONS', 'CAN_MANAGE_PRODUCTION_VERSIONS', 'CAN_MANAGE'],
  queries: WORKSPACE_OBJECT,
  alerts: WORKSPACE_OBJECT,
  alertsv2: WORKSPACE_OBJECT,
  apps: USE_MANAGE,
  'vector-search-endpoints': USE_MANAGE,
  'database-instances': USE_MANAGE
} satisfies Record<string, readonly PermissionLevel[]>)

export type ObjectType = keyof typeof OBJECT_TYPE_LEVELS

/** Other spellings: the response `object_type`, Terraform's `sql/...` paths, "folders". */
const OBJECT_TYPE_ALIASES: Readonly<Record<string, ObjectType>> = {
  dashboard: 'dashboards',
  'dbsql-dashboard': 'dbsql-dashboards',
  notebook: 'notebooks',
  directory: 'directories',
  folder: 'directories',
  folders: 'directories',
  file: 'files',
  repo: 'repos',
  cluster: 'clusters',
  job: 'jobs',
  pipeline: 'pipelines',
  warehouse: 'warehouses',
  'sql/warehouses': 'warehouses',
  'sql-warehouses': 'warehouses',
  'sql-warehouse': 'warehouses',
  'cluster-policy': 'cluster-policies',
  'instance-pool': 'instance-pools',
  'serving-endpoint': 'serving-endpoints',
  experiment: 'experiments',
  'registered-model': 'registered-models',
  query: 'queries',
  'sql/queries': 'queries',
  alert: 'alerts',
  'sql/alerts': 'alerts',
  app: 'apps',
  'vector-search-endpoint': 'vector-search-endpoints',
  'database-instance': 'database-instances'
}

/** Deprecated spellings accepted per type, mapped to the current level. */
const LEVEL_ALIASES: Partial<Record<ObjectType, Readonly<Record<string, PermissionLevel>>>> = {
  'dbsql-dashboards': { CAN_VIEW: 'CAN_READ' }
}

export class PermissionsError extends Error {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.name = new.target.name
    this.code = code
  }
}

export class UnknownObjectTypeError extends PermissionsError {
  readonly objectType: string
  constructor (objectType: string) {
    super('UNKNOWN_OBJECT_TYPE', `unknown object type '${objectType}'`)
    this.objectType = objectType
  }
}

export class InvalidPermissionLevelError extends PermissionsError {
  readonly objectType: ObjectType
  readonly level: string
  readonly allowed: readonly PermissionLevel[]
  constructor (objectType: ObjectType, level: string) {
    const allowed = OBJECT_TYPE_LEVELS[objectType]
    super('INVALID_PERMISSION_LEVEL', `permission level '${level}' does not apply to ${objectType} (allowed: ${allowed.join(', ')})`)
    this.objectType = objectType
    this.level = level
    this.allowed = allowed
  }
}

function isCanonical (value: string): value is ObjectType {
  return Object.hasOwn(OBJECT_TYPE_LEVELS, value)
}

/** Returns the object type for `dashboards`, `dashboard`, `/sql/warehouses/`, `Folders`, …; throws UnknownObjectTypeError. */
export function normalizeObjectType (input: string): ObjectType {
  // Already canonical (every call after the route's own): no string work, no regex.
  if (typeof input === 'string' && isCanonical(input)) return input
  const key = String(input).trim().toLowerCase().replace(/^\/+|\/+$/g, '')
  if (isCanonical(key)) return key
  if (Object.hasOwn(OBJECT_TYPE_ALIASES, key)) return OBJECT_TYPE_ALIASES[key]!
  throw new UnknownObjectTypeError(String(input))
}

export function isObjectType (input: string): boolean {
  try {
    normalizeObjectType(input)
    return true
  } catch {
    return false
  }
}

/** The levels of a type, lowest first. */
export function levelsFor (objectType: string): readonly PermissionLevel[] {
  return OBJECT_TYPE_LEVELS[normalizeObjectType(objectType)]
}

/** The level as the type knows it (deprecated aliases applied), or undefined when it does not belong to the type. */
export function tryParseLevel (objectType: string, level: unknown): PermissionLevel | undefined {
  const type = normalizeObjectType(objectType)
  if (typeof level !== 'string') return undefined
  const name = level.trim().toUpperCase()
  const aliases = LEVEL_ALIASES[type]
  const mapped = aliases !== undefined && Object.hasOwn(aliases, name) ? aliases[name]! : name
  return (OBJECT_TYPE_LEVELS[type] as readonly string[]).includes(mapped) ? mapped as PermissionLevel : undefined
}

/** Like tryParseLevel, but throws InvalidPermissionLevelError. */
export function parseLevel (objectType: string, level: string): PermissionLevel {
  const parsed = tryParseLevel(objectType, level)
  if (parsed === undefined) throw new InvalidPermissionLevelError(normalizeObjectType(objectType), level)
  return parsed
}

export function isLevelOf (objectType: string, level: string): boolean {
  return tryParseLevel(objectType, level) !== undefined
}

/** Position of the level in its type's order (0 = lowest). */
export function levelRank (objectType: string, level: string): number {
  return levelsFor(objectType).indexOf(parseLevel(objectType, level))
}

/** Negative when a < b, 0 when equal, positive when a > b; throws for levels outside the type. */
export function compareLevels (objectType: string, a: string, b: string): number {
  return levelRank(objectType, a) - levelRank(objectType, b)
}

/** The highest of the given levels, or null for none. */
export function maxLevel (objectType: string, levels: Iterable<string>): PermissionLevel | null {
  let best: PermissionLevel | null = null
  for (const level of levels) {
    const parsed = parseLevel(objectType, level)
    if (best === null || compareLevels(objectType, parsed, best) > 0) best = parsed
  }
  return best
}

/** What the workspace `admins` group effectively holds: CAN_MANAGE, or the type's top level when it has no CAN_MANAGE. */
export function adminLevel (objectType: string): PermissionLevel {
  const levels = levelsFor(objectType)
  return levels.includes('CAN_MANAGE') ? 'CAN_MANAGE' : levels[levels.length - 1]!
}
