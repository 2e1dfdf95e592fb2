// TypeBox schemas of the control API's bodies: the tenant fixture, generator knobs, faults, directory edits.
import { Type, type Static } from '@sinclair/typebox'
import type { TenantFixture } from '../tenant/model.ts'

const Guid = Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' })
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Optional(Type.Union([t, Type.Null()]))

export const UserSchema = Type.Object({
  id: Guid,
  userPrincipalName: Type.String({ minLength: 3 }),
  displayName: Type.String(),
  mail: Nullable(Type.String()),
  accountEnabled: Type.Optional(Type.Boolean()),
  userType: Type.Optional(Type.Union([Type.Literal('Member'), Type.Literal('Guest')])),
  givenName: Nullable(Type.String()),
  surname: Nullable(Type.String()),
  jobTitle: Nullable(Type.String()),
  department: Nullable(Type.String()),
  password: Type.Optional(Type.String())
})

export const UserPatchSchema = Type.Partial(Type.Omit(UserSchema, ['id']), { additionalProperties: false })

export const ServicePrincipalSchema = Type.Object({
  id: Guid,
  appId: Guid,
  displayName: Type.String(),
  accountEnabled: Type.Optional(Type.Boolean()),
  servicePrincipalType: Type.Optional(Type.Union([Type.Literal('Application'), Type.Literal('ManagedIdentity')]))
})

export const GroupSchema = Type.Object({
  id: Guid,
  displayName: Type.String(),
  description: Nullable(Type.String()),
  securityEnabled: Type.Optional(Type.Boolean()),
  mailEnabled: Type.Optional(Type.Boolean()),
  members: Type.Optional(Type.Array(Guid))
})

export const ApplicationSchema = Type.Object({
  appId: Guid,
  displayName: Type.Optional(Type.String()),
  secret: Type.Optional(Type.String()),
  roles: Type.Array(Type.String()),
  certificates: Type.Optional(Type.Array(Type.String())),
  accessTokenAcceptedVersion: Type.Optional(Type.Union([Type.Literal(1), Type.Literal(2)])),
  identifierUris: Type.Optional(Type.Array(Type.String())),
  groupMembershipClaims: Type.Optional(Type.Union([Type.Literal('None'), Type.Literal('SecurityGroup'), Type.Literal('All')])),
  optionalClaims: Type.Optional(Type.Array(Type.String()))
})

export const TenantFixtureSchema = Type.Object({
  tenantId: Guid,
  domain: Type.String({ minLength: 1 }),
  displayName: Type.Optional(Type.String()),
  users: Type.Array(UserSchema),
  servicePrincipals: Type.Array(ServicePrincipalSchema),
  groups: Type.Array(Type.Intersect([Type.Omit(GroupSchema, ['members']), Type.Object({ members: Type.Array(Guid) })])),
  applications: Type.Array(ApplicationSchema)
})

// The schema and the model's fixture type must describe the same thing (a compile-time check).
export const asTenantFixture = (f: Static<typeof TenantFixtureSchema>): TenantFixture => f

const Count = (max: number) => Type.Optional(Type.Integer({ minimum: 0, maximum: max }))
export const GeneratorKnobsSchema = Type.Object({
  seed: Type.Optional(Type.Integer()),
  tenantId: Type.Optional(Guid),
  domain: Type.Optional(Type.String()),
  users: Count(1_000_000),
  groups: Count(500_000),
  depth: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 })),
  fanOut: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  membershipsPerUser: Count(1000),
  servicePrincipals: Count(100_000),
  heavyUsers: Count(1000),
  heavyUserGroups: Count(20_000),
  guests: Count(100_000),
  disabledUsers: Count(100_000)
}, { additionalProperties: false })

export const FaultSpecSchema = Type.Object({
  route: Type.String({ minLength: 1 }),
  method: Type.Optional(Type.String()),
  status: Type.Optional(Type.Integer({ minimum: 100, maximum: 599 })),
  retryAfter: Type.Optional(Type.Union([Type.Number({ minimum: 0 }), Type.String()])),
  latencyMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
  reset: Type.Optional(Type.Boolean()),
  timeout: Type.Optional(Type.Boolean()),
  hangMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
  times: Type.Optional(Type.Integer({ minimum: 1 })),
  skip: Type.Optional(Type.Integer({ minimum: 0 }))
}, { additionalProperties: false })
