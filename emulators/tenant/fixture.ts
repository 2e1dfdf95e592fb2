// The tenant fixture format (docs/tenant-fixture.md) as TypeBox schemas: the one source of the control
// API's validation and of the fixture types the directory model is built from.
import { Type, type Static, type TString } from '@sinclair/typebox'

export const Guid = Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' })
const Nullable = (t: TString) => Type.Optional(Type.Union([t, Type.Null()]))

export const UserFixtureSchema = Type.Object({
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
  password: Type.Optional(Type.String({ description: 'Only for the password grant of demo users; never returned by Graph.' }))
})

export const ServicePrincipalFixtureSchema = Type.Object({
  id: Guid,
  appId: Guid,
  displayName: Type.String(),
  accountEnabled: Type.Optional(Type.Boolean()),
  servicePrincipalType: Type.Optional(Type.Union([Type.Literal('Application'), Type.Literal('ManagedIdentity')]))
})

export const GroupFixtureSchema = Type.Object({
  id: Guid,
  displayName: Type.String(),
  description: Nullable(Type.String()),
  securityEnabled: Type.Optional(Type.Boolean()),
  mailEnabled: Type.Optional(Type.Boolean()),
  members: Type.Array(Guid, { description: 'Object ids of users, service principals and groups.' })
})

export const GroupMembershipClaimsSchema = Type.Union([Type.Literal('None'), Type.Literal('SecurityGroup'), Type.Literal('All')])

export const ApplicationFixtureSchema = Type.Object({
  appId: Guid,
  displayName: Type.Optional(Type.String()),
  secret: Type.Optional(Type.String({ description: 'Client secret for client_credentials (and the password grant).' })),
  roles: Type.Array(Type.String(), { description: 'Application permissions granted to the app; they appear in its app-only tokens\' `roles`.' }),
  certificates: Type.Optional(Type.Array(Type.String(), { description: 'PEM certificates accepted for private_key_jwt client assertions.' })),
  accessTokenAcceptedVersion: Type.Optional(Type.Union([Type.Literal(1), Type.Literal(2)], { description: 'As a resource: the token version it accepts (null/1 → v1).' })),
  identifierUris: Type.Optional(Type.Array(Type.String(), { description: 'As a resource: App ID URIs that name it in a scope, e.g. `api://<appId>`.' })),
  groupMembershipClaims: Type.Optional({ ...GroupMembershipClaimsSchema, description: 'As a resource: which groups go into the `groups` claim. Default SecurityGroup.' }),
  optionalClaims: Type.Optional(Type.Array(Type.String(), { description: 'As a resource: optional access-token claims, e.g. `idtyp`.' }))
})

export const TenantFixtureSchema = Type.Object({
  tenantId: Guid,
  domain: Type.String({ minLength: 1 }),
  displayName: Type.Optional(Type.String()),
  users: Type.Array(UserFixtureSchema),
  servicePrincipals: Type.Array(ServicePrincipalFixtureSchema),
  groups: Type.Array(GroupFixtureSchema),
  applications: Type.Array(ApplicationFixtureSchema)
})

export type UserFixture = Static<typeof UserFixtureSchema>
export type ServicePrincipalFixture = Static<typeof ServicePrincipalFixtureSchema>
export type GroupFixture = Static<typeof GroupFixtureSchema>
export type ApplicationFixture = Static<typeof ApplicationFixtureSchema>
export type TenantFixture = Static<typeof TenantFixtureSchema>
export type UserType = NonNullable<UserFixture['userType']>
export type GroupMembershipClaims = Static<typeof GroupMembershipClaimsSchema>
