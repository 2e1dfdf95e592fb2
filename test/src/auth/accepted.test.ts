// Tokens the verifier accepts, and the Caller each becomes: v1 and v2, users (password grant and token
// factory) and service principals (client credentials and factory), with and without `idtyp`; App ID URI
// audiences with a trailing slash; the groups claim only when complete; several tenants only by opt-in.
import t from 'tap'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { accessToken, stsTenant, T, X } from '../../helpers/sts.ts'
import { smallTenant } from '../../helpers/tenant.ts'
import { API_URI, mint, verifierFor, refused, keyFetches } from '../../helpers/auth.ts'

const OTHER_DOMAIN = 'fabrikam.onmicrosoft.com'
const GROUPS_OF_ALICE = [T.dataPlatform, T.engineering, T.allStaff].sort()

t.test('accepted tokens', async t => {
  const { origin, ctx } = await startTestEmulator(t, { tenants: [stsTenant(), smallTenant({ tenantId: T.otherTenantId, domain: OTHER_DOMAIN })] })
  const verifier = await verifierFor(t, origin)

  t.test('v2 user token from the factory: every Caller field', async t => {
    const { token, claims } = await mint(origin, { principalId: T.alice })
    t.equal(claims.ver, '2.0')
    const caller = await verifier.verify(token)
    t.same({ ...caller, groupsClaim: [...caller.groupsClaim ?? []].sort() }, {
      tenantId: T.tenantId,
      oid: T.alice,
      kind: 'user',
      appId: T.resolverAppId,
      upn: 'alice@contoso-test.onmicrosoft.com',
      name: 'Alice Adams',
      roles: [],
      scopes: ['user_impersonation'],
      groupsClaim: GROUPS_OF_ALICE,
      expiresAt: (claims.exp as number) * 1000
    })
    t.ok(Object.isFrozen(caller) && Object.isFrozen(caller.roles), 'the cached Caller cannot be changed by one request for the next')
  })

  t.test('v1 user token: appid, upn, App ID URI audience with and without a trailing slash', async t => {
    for (const audience of [API_URI, `${API_URI}/`]) {
      const { token, claims } = await mint(origin, { principalId: T.bob, version: 1, audience, scp: 'user_impersonation Identity.Read' })
      t.equal(claims.aud, audience)
      t.equal(claims.iss, `https://sts.windows.net/${T.tenantId}/`)
      const caller = await verifier.verify(token)
      t.match(caller, { kind: 'user', oid: T.bob, appId: T.resolverAppId, upn: 'bob@contoso-test.onmicrosoft.com', scopes: ['user_impersonation', 'Identity.Read'] })
    }
  })

  t.test('password grant, v2 (the resolver API) and v1 (an API that takes v1 tokens)', async t => {
    const v2 = await accessToken(origin, T.tenantId, { grant_type: 'password', client_id: X.publicClientAppId, username: 'alice@contoso-test.onmicrosoft.com', password: T.password, scope: `${API_URI}/.default openid profile` })
    t.match(await verifier.verify(v2.token), { kind: 'user', oid: T.alice, appId: X.publicClientAppId, upn: 'alice@contoso-test.onmicrosoft.com', scopes: ['user_impersonation'] })

    const v1Api = await verifierFor(t, origin, { audiences: [X.allGroupsAppId, X.allGroupsUri] })
    const v1 = await accessToken(origin, T.tenantId, { grant_type: 'password', client_id: X.publicClientAppId, username: 'bob@contoso-test.onmicrosoft.com', password: T.password, resource: X.allGroupsUri }, { v1: true })
    t.equal(v1.claims.ver, '1.0')
    const caller = await v1Api.verify(v1.token)
    t.match(caller, { kind: 'user', oid: T.bob, appId: X.publicClientAppId, upn: 'bob@contoso-test.onmicrosoft.com' })
    t.ok(caller.groupsClaim?.includes(T.finance), 'groups claim of an API with groupMembershipClaims=All')
  })

  t.test('client credentials, v2 app-only with idtyp and no roles: a service principal', async t => {
    const { token, claims } = await accessToken(origin, T.tenantId, { grant_type: 'client_credentials', client_id: T.etlAppId, client_secret: T.etlSecret, scope: `${API_URI}/.default` })
    t.equal(claims.idtyp, 'app')
    t.notOk('roles' in claims)
    t.same(await verifier.verify(token), {
      tenantId: T.tenantId,
      oid: T.etlSp,
      kind: 'servicePrincipal',
      appId: T.etlAppId,
      roles: [],
      scopes: [],
      expiresAt: (claims.exp as number) * 1000
    })
  })

  t.test('client credentials, v1 app-only without idtyp: roles and no scp make a service principal', async t => {
    const v1Api = await verifierFor(t, origin, { audiences: [X.allGroupsUri] })
    const { token, claims } = await accessToken(origin, T.tenantId, { grant_type: 'client_credentials', client_id: T.resolverAppId, client_secret: T.resolverSecret, scope: `${X.allGroupsUri}/.default` })
    t.equal(claims.ver, '1.0')
    t.notOk('idtyp' in claims)
    t.match(await v1Api.verify(token), { kind: 'servicePrincipal', oid: T.resolverSp, appId: T.resolverAppId, roles: ['User.Read.All', 'GroupMember.Read.All', 'Application.Read.All'], scopes: [] })
  })

  t.test('factory app-only tokens, v1 and v2, with idtyp removed and no roles: oid = sub marks the app', async t => {
    for (const version of [1, 2]) {
      const { token, claims } = await mint(origin, { principalId: T.etlAppId, version, claims: { idtyp: null } })
      t.notOk('idtyp' in claims)
      t.notOk('roles' in claims)
      t.match(await verifier.verify(token), { kind: 'servicePrincipal', oid: T.etlSp, appId: T.etlAppId, scopes: [] })
    }
  })

  t.test('idtyp=app wins over a scp claim', async t => {
    const { token } = await mint(origin, { principalId: T.etlAppId, claims: { scp: 'user_impersonation' } })
    t.match(await verifier.verify(token), { kind: 'servicePrincipal', scopes: [] })
  })

  t.test('upn falls back to preferred_username (v2) and unique_name (v1)', async t => {
    const v2 = await mint(origin, { principalId: T.alice, claims: { upn: null } })
    t.equal((await verifier.verify(v2.token)).upn, 'alice@contoso-test.onmicrosoft.com')
    const v1 = await mint(origin, { principalId: T.alice, version: 1, claims: { upn: null, unique_name: 'alice.alias@contoso.com' } })
    t.equal((await verifier.verify(v1.token)).upn, 'alice.alias@contoso.com')
  })

  t.test('groups claim: present and complete, up to the 200-group limit', async t => {
    const { token, claims } = await mint(origin, { principalId: X.twoHundred })
    t.equal((claims.groups as string[]).length, 200)
    t.ok(token.length < 16 * 1024, `a 200-group token (${token.length} bytes) is under the size limit`)
    const caller = await verifier.verify(token)
    t.same(caller.groupsClaim, claims.groups)
  })

  t.test('groups overage: no groupsClaim, and the _claim_sources URL is never followed', async t => {
    const before = ctx.calls.snapshot().total
    const { token, claims } = await mint(origin, { principalId: X.twoHundredOne })
    t.notOk('groups' in claims, 'Entra drops groups above 200')
    t.same(claims._claim_names, { groups: 'src1' })
    const caller = await verifier.verify(token)
    t.equal(caller.groupsClaim, undefined)
    t.notOk('groupsClaim' in caller)

    const forced = await mint(origin, { principalId: T.alice, claims: { groups: [T.allStaff], _claim_names: { groups: 'src1' }, _claim_sources: { src1: { endpoint: `${origin}/v1.0/${T.tenantId}/users/${T.alice}/getMemberObjects` } } } })
    t.equal((await verifier.verify(forced.token)).groupsClaim, undefined, 'overage marker wins over a partial groups claim')
    const hasGroups = await mint(origin, { principalId: T.alice, claims: { hasgroups: true } })
    t.equal((await verifier.verify(hasGroups.token)).groupsClaim, undefined, 'hasgroups means: ask Graph')
    t.equal(ctx.calls.snapshot().total - before, 0, 'nothing fetched from the overage endpoint')
  })

  t.test('no groups claim: groupsClaim undefined', async t => {
    const { token } = await mint(origin, { principalId: T.alice, groups: false })
    t.equal((await verifier.verify(token)).groupsClaim, undefined)
  })

  t.test('several tenants by opt-in; a loaded tenant that is not allowed is refused', async t => {
    const other = await mint(origin, { tenantId: T.otherTenantId, principalId: T.alice })
    t.equal(other.claims.iss, `${origin}/${T.otherTenantId}/v2.0`)
    const otherV1 = await mint(origin, { tenantId: OTHER_DOMAIN, principalId: T.etlAppId, version: 1 })

    const before = keyFetches(ctx).total
    await refused(t, verifier.verify(other.token), 'TOKEN_TENANT_NOT_ALLOWED')
    await refused(t, verifier.verify(otherV1.token), 'TOKEN_TENANT_NOT_ALLOWED')
    t.equal(keyFetches(ctx).total, before, 'refused without any fetch')

    const both = await verifierFor(t, origin, { allowedTenants: [T.tenantId, T.otherTenantId.toUpperCase()] })
    t.match(await both.verify(other.token), { tenantId: T.otherTenantId, oid: T.alice, kind: 'user' })
    t.match(await both.verify(otherV1.token), { tenantId: T.otherTenantId, oid: T.etlSp, kind: 'servicePrincipal' })
    const home = await mint(origin, { principalId: T.alice })
    t.match(await both.verify(home.token), { tenantId: T.tenantId })

    const onlyOther = await verifierFor(t, origin, { allowedTenants: [T.otherTenantId] })
    await refused(t, onlyOther.verify(home.token), 'TOKEN_TENANT_NOT_ALLOWED')
    t.match(await onlyOther.verify(other.token), { tenantId: T.otherTenantId })
  })
})
