// Bearer validation and application permissions on Graph routes.
import t from 'tap'
import { T, assertGraphError, graphToken, startGraph } from '../../helpers/graph.ts'

const env = await startGraph(t)
const { call, ctx } = env
const userUrl = `/v1.0/users/${T.alice}`

t.test('no token, a garbled one, a foreign signature → 401 InvalidAuthenticationToken', async t => {
  const none = await call(userUrl, { token: null })
  assertGraphError(t, none, 401, 'InvalidAuthenticationToken', 'Access token is empty.')
  t.match(none.headers.get('www-authenticate'), /^Bearer /)

  assertGraphError(t, await call(userUrl, { token: 'not.a.jwt' }), 401, 'InvalidAuthenticationToken', /Access token validation failure/)
  assertGraphError(t, await call(userUrl, { headers: { authorization: 'Basic Zm9vOmJhcg==' }, token: null }), 401, 'InvalidAuthenticationToken', 'Access token is empty.')

  const good = await graphToken(ctx)
  const [header, payload] = good.split('.') as [string, string, string]
  const foreign = await ctx.keys.sign(JSON.parse(Buffer.from(payload, 'base64url').toString()), { key: ctx.keys.foreign })
  assertGraphError(t, await call(userUrl, { token: foreign }), 401, 'InvalidAuthenticationToken')
  const tampered = `${header}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), roles: ['Directory.ReadWrite.All'] })).toString('base64url')}.${good.split('.')[2] as string}`
  assertGraphError(t, await call(userUrl, { token: tampered }), 401, 'InvalidAuthenticationToken')
})

t.test('expired token → 401', async t => {
  const expired = await graphToken(ctx, { lifetime: -3600 })
  assertGraphError(t, await call(userUrl, { token: expired }), 401, 'InvalidAuthenticationToken', 'Access token has expired or is not yet valid.')
  // A valid token stops working once the emulator clock passes its expiry (plus 5 min skew).
  const token = await graphToken(ctx, { lifetime: 600 })
  t.equal((await call(userUrl, { token })).status, 200)
  ctx.clock.advance(16 * 60 * 1000)
  t.teardown(() => { ctx.clock.advance(-16 * 60 * 1000) })
  assertGraphError(t, await call(userUrl, { token }), 401, 'InvalidAuthenticationToken', 'Access token has expired or is not yet valid.')
})

t.test('a token for another resource → 401', async t => {
  const arm = await graphToken(ctx, { aud: 'https://management.azure.com' })
  assertGraphError(t, await call(userUrl, { token: arm }), 401, 'InvalidAuthenticationToken', /Invalid audience/)
  const byAppId = await graphToken(ctx, { aud: '00000003-0000-0000-c000-000000000000' })
  t.equal((await call(userUrl, { token: byAppId })).status, 200, 'Graph\'s app id is a valid audience')
  const trailingSlash = await graphToken(ctx, { aud: 'https://graph.microsoft.com/' })
  t.equal((await call(userUrl, { token: trailingSlash })).status, 200)
})

t.test('a token from a tenant the emulator has not loaded → 401', async t => {
  const other = await graphToken(ctx, { tid: T.otherTenantId })
  assertGraphError(t, await call(userUrl, { token: other }), 401, 'InvalidAuthenticationToken', /Invalid issuer or tenant/)
  const wrongIssuer = await graphToken(ctx, { iss: `https://sts.windows.net/${T.otherTenantId}/` })
  assertGraphError(t, await call(userUrl, { token: wrongIssuer }), 401, 'InvalidAuthenticationToken')
})

t.test('an app without Graph roles → 403 Authorization_RequestDenied', async t => {
  const noRoles = await graphToken(ctx, { appId: T.readOnlyAppId, roles: [] })
  for (const [method, url, body] of [
    ['GET', userUrl, undefined],
    ['GET', `/v1.0/users/${T.alice}/transitiveMemberOf`, undefined],
    ['GET', `/v1.0/groups/${T.allStaff}/members`, undefined],
    ['GET', `/v1.0/servicePrincipals/${T.etlSp}`, undefined],
    ['GET', '/v1.0/users/delta', undefined],
    ['POST', `/v1.0/users/${T.alice}/getMemberGroups`, { securityEnabledOnly: true }],
    ['POST', '/v1.0/directoryObjects/getByIds', { ids: [T.alice] }]
  ] as const) {
    const res = await call(url, { method, body, token: noRoles })
    assertGraphError(t, res, 403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.')
  }
})

t.test('each route family needs a role that grants it', async t => {
  const usersOnly = await graphToken(ctx, { roles: ['User.Read.All'] })
  t.equal((await call(userUrl, { token: usersOnly })).status, 200)
  t.equal((await call(`/v1.0/users/${T.alice}/transitiveMemberOf`, { token: usersOnly })).status, 200)
  assertGraphError(t, await call(`/v1.0/servicePrincipals/${T.etlSp}`, { token: usersOnly }), 403, 'Authorization_RequestDenied')
  assertGraphError(t, await call(`/v1.0/groups/${T.allStaff}/transitiveMembers`, { token: usersOnly }), 403, 'Authorization_RequestDenied')

  const appsOnly = await graphToken(ctx, { roles: ['Application.Read.All'] })
  t.equal((await call(`/v1.0/servicePrincipals(appId='${T.etlAppId}')`, { token: appsOnly })).status, 200)
  assertGraphError(t, await call(userUrl, { token: appsOnly }), 403, 'Authorization_RequestDenied')

  const groupMembers = await graphToken(ctx, { roles: ['GroupMember.Read.All'] })
  t.equal((await call(`/v1.0/groups/${T.allStaff}/transitiveMembers`, { token: groupMembers })).status, 200)
  t.equal((await call(`/v1.0/servicePrincipals/${T.etlSp}/transitiveMemberOf`, { token: groupMembers })).status, 200)

  const directory = await graphToken(ctx, { roles: ['Directory.Read.All'] })
  for (const url of [userUrl, `/v1.0/groups/${T.allStaff}`, `/v1.0/servicePrincipals/${T.etlSp}`, `/v1.0/directoryObjects/${T.alice}`]) {
    t.equal((await call(url, { token: directory })).status, 200, url)
  }
})
