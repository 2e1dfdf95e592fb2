// Shared TypeBox schemas of the HTTP API: the single source of validation, types and the OpenAPI document.
import { Type, type Static } from '@sinclair/typebox'

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
  instance: Type.String()
}, { $id: 'Problem', description: 'RFC 9457 problem details.' })

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
