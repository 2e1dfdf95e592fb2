import t from 'tap'
import {
  DEMO_ALICE_ID, DEMO_ALICE_UPN, DEMO_BI_APP_ID, DEMO_BI_SECRET, DEMO_BI_SP_ID, DEMO_CHLOE_UPN, DEMO_CLI_APP_ID,
  DEMO_DISABLED_UPN, DEMO_DOMAIN, DEMO_ETL_APP_ID, DEMO_ETL_SECRET, DEMO_ETL_SP_ID, DEMO_GROUPS, DEMO_GUEST_UPN,
  DEMO_OBRIEN_UPN, DEMO_PASSWORD, DEMO_RESOLVER_APP_ID, DEMO_RESOLVER_SECRET, DEMO_RESOLVER_URI, DEMO_TENANT_ID,
  demoTenant
} from '../../../emulators/tenant/demo.ts'
import { Directory, isGuid } from '../../../emulators/tenant/model.ts'

const dir = new Directory(demoTenant())
const name = (id: string): string | undefined => dir.groups.get(id)?.displayName

t.test('the demo tenant loads with its documented ids', async t => {
  t.equal(DEMO_TENANT_ID, '8f2c5a1e-4b7d-4e3a-9c61-2d5e8f0a7b13')
  t.equal(dir.tenantId, DEMO_TENANT_ID)
  t.equal(dir.domain, 'contoso.onmicrosoft.com')
  t.equal(DEMO_DOMAIN, dir.domain)
  t.ok(dir.users.size >= 30, `${dir.users.size} users`)
  t.ok(dir.groups.size >= 15)
  t.equal(dir.servicePrincipals.size, 4, 'every application lists its service principal')
  t.equal(dir.applications.size, 4)
  const f = demoTenant()
  const ids = [...f.users.map(u => u.id), ...f.groups.map(g => g.id), ...f.servicePrincipals.map(s => s.id), ...f.applications.map(a => a.appId)]
  t.ok(ids.every(id => isGuid(id) && id === id.toLowerCase()))
  t.equal(new Set(ids).size, ids.length)
})

t.test('it is stable and every call returns a fresh copy', async t => {
  t.same(demoTenant(), demoTenant())
  const a = demoTenant()
  a.users.pop()
  ;(a.applications[0] as { roles: string[] }).roles.push('Directory.ReadWrite.All')
  t.equal(demoTenant().users.length, dir.users.size)
  t.same(demoTenant().applications[0]?.roles, ['User.Read.All', 'GroupMember.Read.All', 'Application.Read.All'])
})

t.test('documented users', async t => {
  for (const upn of [DEMO_ALICE_UPN, DEMO_OBRIEN_UPN, DEMO_CHLOE_UPN, DEMO_GUEST_UPN, DEMO_DISABLED_UPN]) {
    t.ok(dir.user(upn), upn)
  }
  t.equal(dir.user(DEMO_ALICE_UPN)?.id, DEMO_ALICE_ID)
  t.ok([...dir.users.values()].every(u => u.password === DEMO_PASSWORD), 'everyone has the demo password')
  t.equal(DEMO_PASSWORD, 'Demo-Passw0rd!')

  t.match(dir.user(DEMO_GUEST_UPN), { userType: 'Guest', mail: 'jane.doe@fabrikam.com', accountEnabled: true })
  t.match(DEMO_GUEST_UPN, /#EXT#@contoso\.onmicrosoft\.com$/)
  t.equal([...dir.users.values()].filter(u => u.userType === 'Guest').length, 1)

  t.equal(dir.user(DEMO_DISABLED_UPN)?.accountEnabled, false)
  t.equal([...dir.users.values()].filter(u => !u.accountEnabled).length, 1)

  t.equal(dir.user(DEMO_OBRIEN_UPN)?.displayName, 'Sean O\'Brien')
  t.equal(dir.user(DEMO_CHLOE_UPN)?.displayName, 'Chloé Dubois')
  const upns = [...dir.users.values()].map(u => u.userPrincipalName)
  t.ok(upns.every(u => u.endsWith('@contoso.onmicrosoft.com')))
})

t.test('departments contain nested teams', async t => {
  const G = DEMO_GROUPS
  t.ok(dir.directMembers(G.allStaff).includes(G.engineering))
  t.ok(dir.directMembers(G.engineering).includes(G.dataPlatform))
  t.ok(dir.directMembers(G.dataPlatform).includes(G.dataPlatformOnCall))
  t.same(dir.transitiveParents(G.dataPlatformOnCall).filter(g => [G.dataPlatform, G.engineering, G.allStaff].includes(g)),
    [G.dataPlatform, G.engineering, G.allStaff], 'four levels: All Staff ⊃ Engineering ⊃ Data Platform ⊃ On-call')

  const alice = dir.transitiveParents(DEMO_ALICE_ID).map(name)
  for (const g of ['Data Platform On-call', 'Data Platform', 'Engineering', 'All Staff', 'Databricks Users']) {
    t.ok(alice.includes(g), `Alice is in ${g}`)
  }
  const departments = dir.directMembers(G.allStaff).map(name)
  t.same(departments, ['Engineering', 'Finance', 'Sales', 'Marketing', 'People', 'Legal', 'IT'])

  const analysts = [...dir.groups.values()].filter(g => g.displayName === 'Analysts')
  t.equal(analysts.length, 2, 'two different groups share the name Analysts')
  t.equal(dir.groups.get(G.socialClub)?.securityEnabled, false, 'the social club is a distribution list')
  t.ok(dir.transitiveParents(dir.user(DEMO_GUEST_UPN)?.id as string).includes(G.dataPlatform), 'the guest works with Data Platform')
  t.ok(dir.transitiveParents(dir.user(DEMO_DISABLED_UPN)?.id as string).includes(G.it), 'the disabled user is still in IT')
  // Every non-root group is reachable from All Staff or is one of the cross-cutting groups.
  const underAllStaff = new Set(dir.transitiveMembers(G.allStaff))
  const crossCutting = [G.allStaff, G.databricksUsers, G.databricksAdmins, G.externalCollaborators, G.socialClub]
  t.ok([...dir.groups.keys()].every(g => underAllStaff.has(g) || crossCutting.includes(g)))
})

t.test('service principals are group members', async t => {
  t.equal(dir.servicePrincipalByAppId(DEMO_ETL_APP_ID)?.id, DEMO_ETL_SP_ID)
  t.equal(dir.servicePrincipals.get(DEMO_ETL_SP_ID)?.displayName, 'Nightly ETL')
  t.equal(dir.servicePrincipals.get(DEMO_BI_SP_ID)?.displayName, 'BI Refresh')
  t.same(dir.directParents(DEMO_ETL_SP_ID).map(name).sort(), ['Databricks Admins', 'Databricks Users'])
  t.same(dir.directParents(DEMO_BI_SP_ID).map(name), ['Databricks Users'])
})

t.test('applications', async t => {
  t.match(dir.application(DEMO_RESOLVER_APP_ID), {
    displayName: 'jit-identity-resolver',
    secret: DEMO_RESOLVER_SECRET,
    roles: ['User.Read.All', 'GroupMember.Read.All', 'Application.Read.All'],
    accessTokenAcceptedVersion: 2,
    identifierUris: [`api://${DEMO_RESOLVER_APP_ID}`],
    optionalClaims: ['idtyp']
  })
  t.equal(DEMO_RESOLVER_URI, `api://${DEMO_RESOLVER_APP_ID}`)
  t.equal(dir.application(DEMO_ETL_APP_ID)?.secret, DEMO_ETL_SECRET)
  t.equal(dir.application(DEMO_BI_APP_ID)?.secret, DEMO_BI_SECRET)
  t.equal(dir.application(DEMO_CLI_APP_ID)?.displayName, 'demo-cli')
  t.equal(dir.application(DEMO_CLI_APP_ID)?.secret, undefined, 'demo-cli is a public client')
  const secrets = [DEMO_RESOLVER_SECRET, DEMO_ETL_SECRET, DEMO_BI_SECRET]
  t.equal(new Set(secrets).size, 3)
})
