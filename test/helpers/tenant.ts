// A small hand-made tenant for tests: a three-level group chain, a cycle-free diamond, a service
// principal in a group, a guest and a disabled user, and two applications.
import type { TenantFixture } from '../../emulators/tenant/model.ts'

export const T = {
  tenantId: '11111111-1111-4111-8111-111111111111',
  otherTenantId: '22222222-2222-4222-8222-222222222222',
  alice: 'a0000000-0000-4000-8000-000000000001',
  bob: 'a0000000-0000-4000-8000-000000000002',
  guest: 'a0000000-0000-4000-8000-000000000003',
  disabled: 'a0000000-0000-4000-8000-000000000004',
  etlSp: 'b0000000-0000-4000-8000-000000000001',
  etlAppId: 'c0000000-0000-4000-8000-000000000001',
  etlSecret: 'etl-secret-value',
  resolverSp: 'b0000000-0000-4000-8000-000000000002',
  resolverAppId: 'c0000000-0000-4000-8000-000000000002',
  resolverSecret: 'resolver-secret-value',
  readOnlyAppId: 'c0000000-0000-4000-8000-000000000003',
  readOnlySecret: 'read-only-secret',
  allStaff: 'd0000000-0000-4000-8000-000000000001',
  engineering: 'd0000000-0000-4000-8000-000000000002',
  dataPlatform: 'd0000000-0000-4000-8000-000000000003',
  finance: 'd0000000-0000-4000-8000-000000000004',
  distribution: 'd0000000-0000-4000-8000-000000000005',
  password: 'Test-Passw0rd!'
} as const

export function smallTenant (overrides: Partial<TenantFixture> = {}): TenantFixture {
  return {
    tenantId: T.tenantId,
    domain: 'contoso-test.onmicrosoft.com',
    users: [
      { id: T.alice, userPrincipalName: 'alice@contoso-test.onmicrosoft.com', displayName: 'Alice Adams', mail: 'alice@contoso.com', password: T.password },
      { id: T.bob, userPrincipalName: 'bob@contoso-test.onmicrosoft.com', displayName: 'Bob Brown', mail: 'bob@contoso.com', password: T.password },
      { id: T.guest, userPrincipalName: 'gina_fabrikam.com#EXT#@contoso-test.onmicrosoft.com', displayName: 'Gina Guest', mail: 'gina@fabrikam.com' },
      { id: T.disabled, userPrincipalName: 'dan@contoso-test.onmicrosoft.com', displayName: 'Dan Disabled', accountEnabled: false }
    ],
    servicePrincipals: [
      { id: T.etlSp, appId: T.etlAppId, displayName: 'Nightly ETL' },
      { id: T.resolverSp, appId: T.resolverAppId, displayName: 'jit-identity-resolver' }
    ],
    groups: [
      { id: T.allStaff, displayName: 'All Staff', members: [T.engineering, T.finance] },
      { id: T.engineering, displayName: 'Engineering', members: [T.dataPlatform, T.bob] },
      { id: T.dataPlatform, displayName: 'Data Platform', members: [T.alice, T.etlSp] },
      { id: T.finance, displayName: 'Finance', members: [T.bob, T.guest] },
      { id: T.distribution, displayName: 'Newsletter', securityEnabled: false, mailEnabled: true, members: [T.alice] }
    ],
    applications: [
      { appId: T.etlAppId, displayName: 'Nightly ETL', secret: T.etlSecret, roles: [] },
      {
        appId: T.resolverAppId,
        displayName: 'jit-identity-resolver',
        secret: T.resolverSecret,
        roles: ['User.Read.All', 'GroupMember.Read.All', 'Application.Read.All'],
        accessTokenAcceptedVersion: 2,
        identifierUris: [`api://${T.resolverAppId}`],
        optionalClaims: ['idtyp']
      },
      { appId: T.readOnlyAppId, displayName: 'No Graph permissions', secret: T.readOnlySecret, roles: [] }
    ],
    ...overrides
  }
}
