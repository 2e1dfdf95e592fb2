// Shared TypeBox schemas of the HTTP API: the single source of validation, types and the OpenAPI document.
// Request schemas are strict: every object refuses properties it does not know (`Strict`), ids are
// strings (nothing is coerced), and each id says what it must look like (`x-expected`, used by the 400's
// detail instead of the raw pattern; see validation.ts).
import { Type, type Static, type TProperties, type ObjectOptions, type TSchema } from '@sinclair/typebox'
import { EXPECTED } from './validation.ts'

/** The ids the examples of the contract use (openapi/openapi.json, docs/errors.md): made up, consistent. */
export const EXAMPLE = {
  tenantId: 'fb4f8044-c03c-430b-af21-6c0464aa912d',
  /** A user, Ada Lovelace. */
  userId: '2d922fa3-0ccd-4b7b-89a4-4fec9512cb22',
  upn: 'ada.lovelace@contoso.com',
  /** Another user, Grace Hopper, who has never signed in. */
  otherUserId: '42cc7527-ae81-4df8-940a-4534f949a4a7',
  otherUpn: 'grace.hopper@contoso.com',
  /** Finance, nested in All Staff. */
  groupId: '8f3b9a0f-1206-4f5e-b418-b6e000a771b5',
  parentGroupId: 'a513d83d-6e3e-43ab-83c9-1d0ca47c13fa',
  /** The application id of an automation app. */
  appId: '49f044a1-6d02-4fc0-bc48-2468a854b303',
  workspaceId: '3141592653589793',
  dashboardId: '01ef3c8c0d4a1e6b9a7d4e1b8c9f0a2b',
  registrationId: '190b74a5-609e-413c-9a4a-110ada8e94d2',
  requestId: 'b1271595-7c7d-4e24-9425-c08b8c1bc126'
} as const

/**
 * A success response: `schema` with the response's own description (OpenAPI's, instead of "Default
 * Response") and the headers it carries. The schema itself is unchanged (its `description` describes the body).
 */
export function success<T extends TSchema> (description: string, schema: T, headers?: Record<string, object>): T {
  return { ...schema, 'x-response-description': description, ...(headers !== undefined ? { headers } : {}) }
}

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
}, {
  examples: [{
    id: EXAMPLE.userId,
    tenantId: EXAMPLE.tenantId,
    kind: 'user',
    displayName: 'Ada Lovelace',
    userPrincipalName: EXAMPLE.upn,
    mail: EXAMPLE.upn,
    userType: 'Member',
    accountEnabled: true
  }]
})
const [principalExample] = Principal.examples as [Static<typeof Principal>]

export const Group = Type.Object({
  id: Type.String(),
  displayName: Type.String({ description: 'Empty when the groups came from the token\'s claim (ids only).' })
})

export const Resolution = Type.Object({
  principal: Principal,
  groups: Type.Array(Group, { description: 'Every group the principal belongs to, directly or through nesting.' }),
  groupCount: Type.Integer(),
  groupsSource: StringEnum(['graph', 'token'], { description: 'Microsoft Graph (cached), or the token\'s complete groups claim.' })
}, {
  examples: [{
    principal: principalExample,
    groups: [{ id: EXAMPLE.groupId, displayName: 'Finance' }, { id: EXAMPLE.parentGroupId, displayName: 'All Staff' }],
    groupCount: 2,
    groupsSource: 'graph'
  }]
})
const [resolutionExample] = Resolution.examples as [Static<typeof Resolution>]
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
})], {
  examples: [{
    ...resolutionExample,
    databricks: {
      principalId: '7064310421285117',
      active: true,
      groups: [{ id: EXAMPLE.groupId, databricksId: '1123581321345589' }, { id: EXAMPLE.parentGroupId, databricksId: '2718281828459045' }]
    },
    workspace: {
      workspaceId: EXAMPLE.workspaceId,
      decision: 'allow',
      access: 'INDIRECT',
      permission: 'USER',
      via: [{ id: EXAMPLE.groupId, displayName: 'Finance' }],
      reason: 'Assigned USER in workspace 3141592653589793 through group \'Finance\'.'
    }
  }]
})

/** `by`: what a principal parameter is. */
export const By = Type.Optional(StringEnum(['id', 'userPrincipalName', 'mail', 'appId'], {
  description: 'What the principal is given as; default: an object id when it is a GUID, else a user principal name.'
}))

export const WorkspaceId = Type.String({
  pattern: '^[0-9]{1,20}$',
  [EXPECTED]: 'a workspace id: up to 20 digits, the number in the workspace URL, ?o=…',
  description: 'The workspace (the number in its URL, ?o=…), as a string: a JSON number cannot hold every workspace id exactly.',
  examples: [EXAMPLE.workspaceId]
})

/** An object type as the Permissions API names it (any spelling normalizeObjectType knows). */
export const ObjectTypeName = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z/_-]+$',
  [EXPECTED]: 'an object type: letters, "-", "_" or "/", e.g. dashboards, notebooks, directories, warehouses',
  description: 'The Permissions API object type: dashboards, notebooks, directories, files, repos, clusters, jobs, pipelines, warehouses, queries, alerts, experiments, registered-models, serving-endpoints, apps, …',
  examples: ['dashboards']
})

/** An object id; its shape per type is checked by the route (object-ids.ts), which names it. */
export const ObjectIdString = Type.String({
  minLength: 1,
  maxLength: 256,
  pattern: PRINTABLE,
  [EXPECTED]: 'an object id, not blank and without control characters',
  description: 'The object\'s id, as its type has it: a dashboard\'s 32 hexadecimal characters, a notebook\'s, folder\'s or job\'s digits, a cluster\'s 0123-456789-abcdefgh, a warehouse\'s hexadecimal id, …',
  examples: [EXAMPLE.dashboardId]
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
}, {
  examples: [{
    workspaceId: EXAMPLE.workspaceId,
    objectType: 'dashboards',
    objectId: EXAMPLE.dashboardId,
    principal: principalExample,
    level: 'CAN_READ',
    grants: [{
      level: 'CAN_READ',
      via: 'group',
      group: 'All Staff (a513d83d)',
      groupPath: ['Finance', 'All Staff (a513d83d)'],
      inherited: true,
      inheritedFrom: ['/directories/4242424242424242'],
      reason: 'CAN_READ through group \'All Staff (a513d83d)\' (Finance ⊂ All Staff (a513d83d)), inherited from /directories/4242424242424242'
    }],
    workspace: { access: 'INDIRECT', permission: 'USER' },
    dashboard: { published: true, embedCredentials: true, canViewPublished: true, note: 'Has access to the workspace: opens the dashboard with its own permissions.' }
  }]
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
}, {
  description: 'Every property not listed here is refused (400 UNKNOWN_PROPERTY).',
  examples: [{ workspaceId: EXAMPLE.workspaceId, objectType: 'dashboards', objectId: EXAMPLE.dashboardId, principal: EXAMPLE.otherUpn, level: 'CAN_READ' }]
})

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
}, {
  examples: [{
    grant: { workspaceId: EXAMPLE.workspaceId, objectType: 'dashboards', objectId: EXAMPLE.dashboardId, level: 'CAN_READ', principalName: EXAMPLE.otherUpn, changed: true },
    principal: { id: EXAMPLE.otherUserId, tenantId: EXAMPLE.tenantId, kind: 'user', displayName: 'Grace Hopper', userPrincipalName: EXAMPLE.otherUpn, mail: EXAMPLE.otherUpn, userType: 'Member', accountEnabled: true },
    databricks: { principalId: '5772156649015328' },
    workspace: { access: 'NONE', reason: 'No permission assignment in workspace 3141592653589793 for the principal or any of its 1 groups.' },
    dashboard: { published: true, embedCredentials: true, canViewPublished: true, note: 'No access to the workspace: can view the published copy, which runs with the publisher\'s embedded credentials; not the draft.' }
  }]
})
