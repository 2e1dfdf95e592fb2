// Shared TypeBox schemas of the HTTP API: the single source of validation, types and the OpenAPI document.
// Request schemas are strict: every object refuses properties it does not know (`Strict`), ids are
// strings (nothing is coerced), and each id says what it must look like (`x-expected`, used by the 400's
// detail instead of the raw pattern; see validation.ts).
import { Type, type Static, type TProperties, type ObjectOptions } from '@sinclair/typebox'
import { EXPECTED } from './validation.ts'

// Response schemas compile to fast-json-stringify serializers. A union (anyOf) makes it validate every
// branch on each response, so enums and nullable strings are plain JSON-schema keywords instead.
const StringEnum = <T extends string[]>(values: [...T], options: object = {}) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: values, ...options })
const NullableString = (options: object = {}) => Type.Unsafe<string | null>({ type: ['string', 'null'], ...options })

export const Problem = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  code: Type.String({ description: 'Stable machine-readable error code, e.g. TOKEN_EXPIRED.' }),
  detail: Type.String({ description: 'What went wrong and what to do about it.' }),
  instance: Type.String(),
  requestId: Type.String({ description: 'The request\'s id, also in the `x-request-id` response header: quote it to the operator, who finds the request\'s log lines under it.' })
}, { $id: 'Problem', description: 'RFC 9457 problem details.' })

/** A request object: a property it does not define is a 400 UNKNOWN_PROPERTY, never silently dropped. */
export const Strict = <T extends TProperties>(properties: T, options: ObjectOptions = {}) =>
  Type.Object(properties, { ...options, additionalProperties: false })

/** Not blank, and no control characters (C0, DEL, C1, line and paragraph separators). */
export const PRINTABLE = '^(?=[\\s\\S]*\\S)[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$'

/** A name given by the caller (a UPN, mail, object id or application id): printable, not blank. */
export const Name = (maxLength: number, options: object = {}) =>
  Type.String({ minLength: 1, maxLength, pattern: PRINTABLE, [EXPECTED]: 'a name without control characters, not blank', ...options })

/** An Entra object or application id, in any case. */
export const GUID_PATTERN = '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$'
export const Guid = (options: object = {}) =>
  Type.String({ pattern: GUID_PATTERN, [EXPECTED]: 'an Entra object id (GUID), e.g. 8f3b9a0f-1206-4f5e-b418-b6e000a771b5', ...options })

export const Principal = Type.Object({
  id: Type.String({ description: 'Entra object id.' }),
  tenantId: Type.String(),
  kind: StringEnum(['user', 'servicePrincipal', 'group']),
  displayName: Type.String(),
  userPrincipalName: Type.Optional(Type.String()),
  mail: Type.Optional(NullableString()),
  userType: Type.Optional(StringEnum(['Member', 'Guest'])),
  appId: Type.Optional(Type.String()),
  accountEnabled: Type.Boolean()
})

export const Group = Type.Object({
  id: Type.String(),
  displayName: Type.String({ description: 'Empty when the groups came from the token\'s claim (ids only).' })
})

export const Resolution = Type.Object({
  principal: Principal,
  groups: Type.Array(Group, { description: 'Every group the principal belongs to, directly or through nesting.' }),
  groupCount: Type.Integer(),
  groupsSource: StringEnum(['graph', 'token'], { description: 'Microsoft Graph (cached), or the token\'s complete groups claim.' })
})
export type ResolutionBody = Static<typeof Resolution>

export const DatabricksIdentity = Type.Object({
  principalId: Type.String({ description: 'The principal\'s id in the Databricks account.' }),
  active: Type.Boolean({ description: 'false while the principal is disabled in Entra.' }),
  groups: Type.Array(Type.Object({ id: Type.String({ description: 'Entra group id.' }), databricksId: Type.String() }))
}, { description: 'Where the caller now is in the Databricks account (when one is configured).' })
export type DatabricksIdentityBody = Static<typeof DatabricksIdentity>

export const WorkspaceAccess = Type.Object({
  workspaceId: Type.String(),
  decision: StringEnum(['allow', 'deny']),
  access: StringEnum(['DIRECT', 'INDIRECT', 'NONE'], { description: 'DIRECT: assigned itself; INDIRECT: through one of its groups.' }),
  permission: Type.Optional(StringEnum(['USER', 'ADMIN'])),
  via: Type.Optional(Type.Array(Type.Object({ id: Type.String(), displayName: Type.String() }), { description: 'The Entra groups whose assignment grants the permission.' })),
  reason: Type.String()
}, { description: 'The decision for the workspace the login asked about.' })

export const LoginResult = Type.Composite([Resolution, Type.Object({
  databricks: Type.Optional(DatabricksIdentity),
  workspace: Type.Optional(WorkspaceAccess)
})])

/** Every error answer of an authenticated route. */
export const errorResponses = {
  401: Problem,
  403: Problem,
  503: Problem
} as const

/** `by`: what a principal parameter is. */
export const By = Type.Optional(StringEnum(['id', 'userPrincipalName', 'mail', 'appId'], {
  description: 'What the principal is given as; default: an object id when it is a GUID, else a user principal name.'
}))

export const WorkspaceId = Type.String({
  pattern: '^[0-9]{1,20}$',
  [EXPECTED]: 'a workspace id: up to 20 digits, the number in the workspace URL, ?o=…',
  description: 'The workspace (the number in its URL, ?o=…), as a string: a JSON number cannot hold every workspace id exactly.'
})

/** An object type as the Permissions API names it (any spelling normalizeObjectType knows). */
export const ObjectTypeName = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z/_-]+$',
  [EXPECTED]: 'an object type: letters, "-", "_" or "/", e.g. dashboards, notebooks, directories, warehouses',
  description: 'The Permissions API object type: dashboards, notebooks, directories, files, repos, clusters, jobs, pipelines, warehouses, queries, alerts, experiments, registered-models, serving-endpoints, apps, …'
})

/** An object id; its shape per type is checked by the route (object-ids.ts), which names it. */
export const ObjectIdString = Type.String({
  minLength: 1,
  maxLength: 256,
  pattern: PRINTABLE,
  [EXPECTED]: 'an object id, not blank and without control characters',
  description: 'The object\'s id, as its type has it: a dashboard\'s 32 hexadecimal characters, a notebook\'s, folder\'s or job\'s digits, a cluster\'s 0123-456789-abcdefgh, a warehouse\'s hexadecimal id, …'
})

export const PermissionGrant = Type.Object({
  level: Type.String(),
  via: StringEnum(['user', 'servicePrincipal', 'group', 'admins'], { description: 'Granted to the principal itself, to one of its groups, or by being a workspace admin.' }),
  group: Type.Optional(Type.String({ description: 'The group the ACL names.' })),
  groupPath: Type.Optional(Type.Array(Type.String(), { description: 'From the principal\'s direct group up to `group`.' })),
  inherited: Type.Boolean(),
  inheritedFrom: Type.Optional(Type.Array(Type.String(), { description: 'The parent objects the grant is inherited from, e.g. /directories/123.' })),
  reason: Type.String()
})

export const WorkspaceRole = Type.Object({
  access: StringEnum(['DIRECT', 'INDIRECT', 'NONE']),
  permission: Type.Optional(StringEnum(['USER', 'ADMIN'])),
  reason: Type.Optional(Type.String())
}, { description: 'The principal\'s access to the workspace that holds the object.' })

export const DashboardPublication = Type.Object({
  published: Type.Boolean(),
  embedCredentials: Type.Boolean(),
  canViewPublished: Type.Boolean({ description: 'Can open the published copy without workspace access (embedded credentials).' }),
  note: Type.String()
}, { description: 'Dashboards: what the principal can see given its workspace access and the publication.' })

export const EffectivePermissionResult = Type.Object({
  workspaceId: Type.String(),
  objectType: Type.String(),
  objectId: Type.String(),
  principal: Principal,
  level: NullableString({ description: 'The effective level; null when nothing is granted, or when the principal is disabled in Entra (see `blocked`).' }),
  blocked: Type.Optional(Type.String({ description: 'Why the grants do not apply (a principal disabled in Entra); the grants are still listed.' })),
  grants: Type.Array(PermissionGrant, { description: 'Every grant that applies, highest first; the first one decides.' }),
  workspace: WorkspaceRole,
  dashboard: Type.Optional(DashboardPublication)
})

export const ShareRequest = Strict({
  workspaceId: WorkspaceId,
  objectType: ObjectTypeName,
  objectId: ObjectIdString,
  principal: Name(1024, { description: 'Who to share with: an object id (user, service principal or group), a UPN, a mail or an appId.' }),
  by: By,
  level: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 64,
    pattern: '^[A-Za-z_]+$',
    [EXPECTED]: 'a permission level such as CAN_READ, CAN_RUN, CAN_EDIT or CAN_MANAGE',
    description: 'Default: the type\'s lowest level (CAN_READ for dashboards: "Can View").'
  }))
}, { description: 'Every property not listed here is refused (400 UNKNOWN_PROPERTY).' })

export const ShareResult = Type.Object({
  grant: Type.Object({
    workspaceId: Type.String(),
    objectType: Type.String(),
    objectId: Type.String(),
    level: Type.String(),
    principalName: Type.String({ description: 'How the ACL names the principal: userName, application id or account group name.' }),
    changed: Type.Boolean({ description: 'false when the principal already held this level or more directly: nothing was written.' })
  }),
  principal: Principal,
  databricks: Type.Object({ principalId: Type.String({ description: 'The id in the Databricks account (a group\'s for groups).' }) }),
  workspace: WorkspaceRole,
  dashboard: Type.Optional(DashboardPublication)
})
