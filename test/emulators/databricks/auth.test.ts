// Who may call (the admin PAT; Entra tokens for Azure Databricks from the account's tenant: admin apps
// by appid, users and service principals provisioned on first use under AIM; PATs of account principals;
// everything else a 401), and bad input: unparsable filters, unsupported operators, unknown attributes,
// malformed PATCH bodies, ids that do not exist, a 201-node filter, broken JSON, unknown endpoints,
// oversized bodies, injected faults. Every one gets Databricks' error shape and status, never a crash.
import t from 'tap'
import { smallTenant } from '../../helpers/tenant.ts'
import {
  ACCOUNT, DEFAULT_WORKSPACE_ID, IDENTITY, SCIM, T, WS_SCIM, assertApiError, assertScimError, createGroup, createUser, entraToken, patchBody, startDatabricks
} from '../../helpers/databricks.ts'

t.test('401 for anything but a PAT or an Entra token for Azure Databricks', async t => {
  const emulator = await startDatabricks(t)
  const { api, ctx } = emulator
  assertScimError(t, await api('GET', `${SCIM}/Users`, undefined, { token: null }), 401, undefined, 'Credential was not sent or was of an unsupported type for this API.')
  assertApiError(t, await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.alice }, { token: null }), 401, 'UNAUTHENTICATED')
  assertApiError(t, await api('GET', '/api/2.0/permissions/jobs/1', undefined, { token: null, headers: { authorization: 'Basic dXNlcjpwYXNz' } }), 401, 'UNAUTHENTICATED')
  assertApiError(t, await api('GET', '/api/2.0/lakeview/dashboards', undefined, { token: 'dapi00000000000000000000000000000000' }), 401, 'UNAUTHENTICATED', 'Invalid access token.')
  assertApiError(t, await api('GET', '/api/2.0/lakeview/dashboards', undefined, { token: 'not-a-token' }), 401, 'UNAUTHENTICATED')

  const graphToken = await entraToken(emulator, { oid: T.etlSp, appid: T.etlAppId, aud: 'https://graph.microsoft.com' })
  assertApiError(t, await api('GET', '/api/2.0/lakeview/dashboards', undefined, { token: graphToken }), 401, 'UNAUTHENTICATED', /audience/)
  const expired = await entraToken(emulator, { oid: T.etlSp, appid: T.etlAppId, exp: ctx.clock.nowSeconds() - 3600 })
  assertApiError(t, await api('GET', '/api/2.0/lakeview/dashboards', undefined, { token: expired }), 401, 'UNAUTHENTICATED', /expired/)
  const forged = (await entraToken(emulator, { oid: T.etlSp, appid: T.etlAppId })).slice(0, -4) + 'AAAA'
  assertApiError(t, await api('GET', '/api/2.0/lakeview/dashboards', undefined, { token: forged }), 401, 'UNAUTHENTICATED')
})

t.test('Entra tokens: admin applications, JIT users, the admin set, AIM off', async t => {
  const other = { ...smallTenant(), tenantId: T.otherTenantId, domain: 'fabrikam-test.onmicrosoft.com' }
  const emulator = await startDatabricks(t)
  const { api, control, origin } = emulator
  await fetch(`${origin}/_emulator/tenant`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(other) })

  // By default every application of the tenant is an account admin (local mode needs no set-up).
  const etl = await entraToken(emulator, { oid: T.etlSp, appid: T.etlAppId })
  t.equal((await api('GET', `${SCIM}/Users`, undefined, { token: etl })).status, 200, 'an app-only token of a tenant application')
  const foreign = await entraToken(emulator, { oid: T.etlSp, appid: T.etlAppId, tid: T.otherTenantId })
  assertScimError(t, await api('GET', `${SCIM}/Users`, undefined, { token: foreign }), 401, undefined, /not the tenant of account/)

  // A user token: the user is provisioned on first use (AIM), ACTIVE, but is no account admin.
  const bob = await entraToken(emulator, { oid: T.bob, appid: T.resolverAppId, scp: 'user_impersonation' })
  assertScimError(t, await api('GET', `${SCIM}/Users`, undefined, { token: bob }), 403, undefined, /is not an account admin/)
  const state = (await control('GET', '/state')).body
  t.match(state.users, [{ userName: 'bob@contoso-test.onmicrosoft.com', externalId: T.bob, status: 'ACTIVE', origin: 'aim' }])
  assertScimError(t, await api('GET', `${WS_SCIM}/Me`, undefined, { token: bob }), 403, undefined, /does not have access to workspace/)
  const bobId = state.users[0].id as string
  await control('PUT', `/workspaces/${state.workspaces[0].id as string}/assignments`, { principalId: bobId, permissions: ['USER'] })
  const me = await api('GET', `${WS_SCIM}/Me`, undefined, { token: bob })
  t.match(me.body, { id: bobId, userName: 'bob@contoso-test.onmicrosoft.com', groups: [{ display: 'Engineering', type: 'direct' }] })
  t.ok(me.body.groups.some((g: any) => g.display === 'All Staff' && g.type === 'indirect'), 'nested Entra groups are indirect')

  await control('PUT', '/admins', { principals: [bobId] })
  t.equal((await api('GET', `${SCIM}/Users`, undefined, { token: bob })).status, 200, 'an account admin principal')

  const admins = await control('PUT', '/admins', { applications: [T.resolverAppId], principals: [] })
  t.same(admins.body.applications, [T.resolverAppId])
  t.equal(admins.body.applicationsDefault, false)
  assertScimError(t, await api('GET', `${SCIM}/Users`, undefined, { token: etl }), 403)
  const resolver = await entraToken(emulator, { oid: T.resolverSp, appid: T.resolverAppId })
  t.equal((await api('GET', `${SCIM}/Users`, undefined, { token: resolver })).status, 200, 'the resolver app is in the admin set')
  t.match((await control('GET', '/state')).body.servicePrincipals, [{ applicationId: T.etlAppId, status: 'ACTIVE' }], 'the non-admin app was provisioned as a service principal')

  await control('PUT', '/settings', { aimEnabled: false })
  const alice = await entraToken(emulator, { oid: T.alice, appid: T.resolverAppId, scp: 'user_impersonation' })
  assertScimError(t, await api('GET', `${WS_SCIM}/Me`, undefined, { token: alice }), 403, undefined, /is not a member of account/)
  await control('PUT', '/admins', { applications: null })
  t.equal((await control('GET', '/state')).body.admins.applicationsDefault, true)
})

t.test('personal access tokens of account principals; deactivated principals', async t => {
  const { api, control } = await startDatabricks(t)
  const user = await createUser(api, 'pat-user@contoso.com')
  const token = (await control('POST', '/tokens', { userName: 'PAT-USER@contoso.com' })).body.token as string
  assertScimError(t, await api('GET', `${SCIM}/Users`, undefined, { token }), 403, undefined, /not an account admin/)
  await api('PATCH', `${SCIM}/Users/${user}`, patchBody({ op: 'add', path: 'roles', value: [{ value: 'account_admin' }] }))
  t.equal((await api('GET', `${SCIM}/Users`, undefined, { token })).status, 200, 'the account_admin role makes an account admin')
  await api('PATCH', `${SCIM}/Users/${user}`, { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'active', value: false }] })
  assertApiError(t, await api('GET', '/api/2.0/lakeview/dashboards', undefined, { token }), 403, 'PERMISSION_DENIED', /deactivated/)
  await api('DELETE', `${SCIM}/Users/${user}`)
  assertApiError(t, await api('GET', '/api/2.0/lakeview/dashboards', undefined, { token }), 401, 'UNAUTHENTICATED', 'Invalid access token.')
  t.equal((await control('POST', '/tokens', { principalId: '1234567890123456' })).status, 404)
  t.equal((await control('POST', '/tokens', {})).status, 404)
})

const orChain = (n: number): string => Array.from({ length: n }, (_, i) => `userName eq "user${i}@contoso.com"`).join(' or ')

t.test('filters', async t => {
  const { api } = await startDatabricks(t)
  await createUser(api, 'user0@contoso.com')
  const list = async (filter: string, resource = 'Users'): Promise<any> => await api('GET', `${SCIM}/${resource}?filter=${encodeURIComponent(filter)}`)
  for (const filter of ['userName eq', 'userName eq "x" garbage', '(userName eq "x"', 'userName eq "x', "userName eq 'x", 'eq "x"', '"x"', 'userName eq "a" and']) {
    const res = await list(filter)
    assertScimError(t, res, 400, 'invalidFilter', /^INVALID_FILTER: /)
  }
  for (const filter of ['userName gt "a"', 'not (userName eq "x")', 'emails[type eq "work"]', 'userName pr', 'userName ew "com"']) {
    assertScimError(t, await list(filter), 400, 'invalidFilter', /Unsupported/)
  }
  assertScimError(t, await list('nickName eq "x"'), 400, 'invalidFilter', /Unsupported attribute 'nickName'/)
  assertScimError(t, await list('applicationId eq "x"'), 400, 'invalidFilter', /applicationId/)
  assertScimError(t, await list('userName eq "x"', 'Groups'), 400, 'invalidFilter', /userName/)

  // Nodes: one per comparison, one per `or` between two: n comparisons are 2n - 1 nodes.
  const ok = await list(orChain(100))
  t.equal(ok.status, 200, '199 nodes are accepted')
  t.equal(ok.body.totalResults, 1)
  const tooBig = await list(orChain(101))
  assertScimError(t, tooBig, 400, 'invalidFilter', 'INVALID_FILTER: Filter has 201 nodes, more than the maximum of 200. Break large filters into multiple smaller requests.')
  assertScimError(t, await list(`(${orChain(60)}) and (${orChain(41)})`), 400, 'invalidFilter', /201 nodes/)
  assertScimError(t, await list('('.repeat(5000) + 'userName eq "x"' + ')'.repeat(5000)), 400, 'invalidFilter')

  assertScimError(t, await api('GET', `${SCIM}/Users?startIndex=first`), 400, 'invalidValue', /startIndex/)
  assertScimError(t, await api('GET', `${SCIM}/Users?count=1.5`), 400, 'invalidValue', /count/)
})

t.test('PATCH bodies', async t => {
  const { api } = await startDatabricks(t)
  const user = await createUser(api, 'p@contoso.com')
  const group = await createGroup(api, 'G')
  const patch = async (body: unknown, opts: { raw?: string, id?: string, resource?: string } = {}): Promise<any> =>
    await api('PATCH', `${SCIM}/${opts.resource ?? 'Groups'}/${opts.id ?? group}`, body, { raw: opts.raw })
  const UNPARSABLE = /^Request is unparsable, syntactically incorrect, or violates schema\./
  assertScimError(t, await patch(undefined), 400, 'invalidSyntax', UNPARSABLE)
  assertScimError(t, await patch(undefined, { raw: '{"Operations": [' }), 400, 'invalidSyntax', UNPARSABLE)
  assertScimError(t, await patch(undefined, { raw: '[]' }), 400, 'invalidSyntax')
  assertScimError(t, await patch({ schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'] }), 400, 'invalidSyntax', /Operations/)
  assertScimError(t, await patch(patchBody()), 400, 'invalidSyntax', /Operations/)
  assertScimError(t, await patch({ Operations: { op: 'add' } }), 400, 'invalidSyntax')
  assertScimError(t, await patch({ schemas: 'PatchOp', Operations: [{ op: 'add', path: 'members', value: [{ value: user }] }] }), 400, 'invalidSyntax')
  assertScimError(t, await patch(patchBody('add')), 400, 'invalidSyntax')
  assertScimError(t, await patch(patchBody({ op: 'move', path: 'members', value: [] })), 400, 'invalidSyntax', /unsupported op 'move'/)
  assertScimError(t, await patch(patchBody({ op: 'remove' })), 400, 'noTarget')
  assertScimError(t, await patch(patchBody({ op: 'add', path: 'members' })), 400, 'invalidSyntax', /needs a value/)
  assertScimError(t, await patch(patchBody({ op: 'add', value: [{ value: user }] })), 400, 'invalidSyntax')
  assertScimError(t, await patch(patchBody({ op: 'add', path: 42, value: [] })), 400, 'invalidSyntax')
  assertScimError(t, await patch(patchBody({ op: 'add', path: 'members', value: user })), 400, 'invalidSyntax', UNPARSABLE)
  assertScimError(t, await patch(patchBody({ op: 'add', path: 'members', value: [user] })), 400, 'invalidSyntax', UNPARSABLE)
  assertScimError(t, await patch(patchBody({ op: 'add', path: 'members', value: [{ display: 'no value' }] })), 400, 'invalidSyntax')
  assertScimError(t, await patch(patchBody({ op: 'add', path: 'nickName', value: 'x' })), 400, 'invalidPath', /nickName/)
  assertScimError(t, await patch(patchBody({ op: 'replace', value: { nickName: 'x' } })), 400, 'invalidPath', /nickName/)
  assertScimError(t, await patch(patchBody({ op: 'add', path: 'members[value eq', value: [] })), 400, 'invalidPath')
  assertScimError(t, await patch(patchBody({ op: 'remove', path: 'members[value gt "1"]' })), 400, 'invalidFilter')
  assertScimError(t, await patch(patchBody({ op: 'remove', path: 'members[nope eq "1"]' })), 400, 'invalidFilter')
  assertScimError(t, await patch(patchBody({ op: 'add', path: 'members[value eq "1"]', value: [] })), 400, 'invalidPath')
  assertScimError(t, await patch(patchBody({ op: 'add', path: 'a b c', value: 1 })), 400, 'invalidPath')
  assertScimError(t, await patch(patchBody({ op: 'remove', path: `members[value eq "${'x'.repeat(70_000)}"]` })), 400, 'invalidPath', /longer than/)
  assertScimError(t, await patch(patchBody({ op: 'replace', path: 'displayName', value: 7 })), 400, 'invalidValue')
  assertScimError(t, await patch(patchBody({ op: 'remove', path: 'displayName' })), 400, 'invalidValue')
  assertScimError(t, await patch(patchBody({ op: 'replace', path: 'active', value: 'maybe' }), { resource: 'Users', id: user }), 400, 'invalidValue', /active/)
  assertScimError(t, await patch(patchBody({ op: 'replace', path: 'name.middleName', value: 'x' }), { resource: 'Users', id: user }), 400, 'invalidPath')
  assertScimError(t, await patch(patchBody({ op: 'add', path: 'members', value: [{ value: user }] }), { resource: 'Users', id: user }), 400, 'invalidPath')
  // A valid op followed by an invalid one: nothing is applied.
  assertScimError(t, await patch(patchBody({ op: 'add', path: 'members', value: [{ value: user }] }, { op: 'add', path: 'members', value: 'x' })), 400, 'invalidSyntax')
  t.notOk('members' in (await api('GET', `${SCIM}/Groups/${group}`)).body, 'the group is unchanged')
})

t.test('ids that do not exist, broken bodies, unknown endpoints', async t => {
  const { api } = await startDatabricks(t)
  const group = await createGroup(api, 'G')
  for (const resource of ['Users', 'Groups', 'ServicePrincipals']) {
    for (const id of ['1234567890123456', 'not-a-number', group]) {
      if (id === group && resource === 'Groups') continue
      assertScimError(t, await api('GET', `${SCIM}/${resource}/${id}`), 404, undefined, /not found/)
      assertScimError(t, await api('PATCH', `${SCIM}/${resource}/${id}`, patchBody({ op: 'replace', path: 'displayName', value: 'x' })), 404)
      assertScimError(t, await api('PUT', `${SCIM}/${resource}/${id}`, { displayName: 'x' }), 404)
      assertScimError(t, await api('DELETE', `${SCIM}/${resource}/${id}`), 404)
      assertScimError(t, await api('GET', `${WS_SCIM}/${resource}/${id}`), 404)
    }
  }
  assertApiError(t, await api('GET', `${IDENTITY}/principals/not-a-number/transitive-parent-groups`), 404, 'RESOURCE_DOES_NOT_EXIST')
  assertApiError(t, await api('GET', `${IDENTITY}/groups/1234567890123456/direct-members`), 404, 'RESOURCE_DOES_NOT_EXIST')
  assertApiError(t, await api('GET', `${IDENTITY}/workspaces/${DEFAULT_WORKSPACE_ID}/workspace-access-details/1`), 404, 'RESOURCE_DOES_NOT_EXIST')
  assertApiError(t, await api('GET', `${ACCOUNT}/workspaces/nope/permissionassignments`), 404, 'RESOURCE_DOES_NOT_EXIST')
  assertApiError(t, await api('GET', '/api/2.0/lakeview/dashboards/0123/published'), 404, 'RESOURCE_DOES_NOT_EXIST')
  assertApiError(t, await api('GET', '/api/2.0/workspace/get-status?path=/Nowhere'), 404, 'RESOURCE_DOES_NOT_EXIST')
  assertApiError(t, await api('GET', '/api/2.0/workspace/get-status'), 400, 'INVALID_PARAMETER_VALUE')
  assertApiError(t, await api('GET', '/api/2.0/workspace/get-status?path=relative'), 400, 'INVALID_PARAMETER_VALUE', /absolute/)

  assertApiError(t, await api('POST', `${IDENTITY}/users/resolve-by-external-id`, undefined, { raw: '{"external_id": ' }), 400, 'MALFORMED_REQUEST')
  assertApiError(t, await api('POST', `${IDENTITY}/users/resolve-by-external-id`, undefined, { raw: '"just a string"' }), 400, 'MALFORMED_REQUEST')
  assertApiError(t, await api('POST', `${IDENTITY}/users/resolve-by-external-id`), 400, 'MALFORMED_REQUEST')
  assertApiError(t, await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: 12 }), 400, 'INVALID_PARAMETER_VALUE')
  assertScimError(t, await api('POST', `${SCIM}/Users`, undefined, { raw: 'userName=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 400, 'invalidSyntax')
  assertScimError(t, await api('POST', `${SCIM}/Users`, { userName: 42 }), 400, 'invalidValue')
  assertScimError(t, await api('POST', `${SCIM}/Users`, { userName: 'x@contoso.com', emails: 'x@contoso.com' }), 400, 'invalidValue')
  assertScimError(t, await api('POST', `${SCIM}/Users`, { userName: 'x@contoso.com', name: 'X' }), 400, 'invalidValue')
  assertScimError(t, await api('POST', `${SCIM}/Users`, { userName: 'x@contoso.com', active: 'sometimes' }), 400, 'invalidValue')
  assertScimError(t, await api('POST', `${SCIM}/Groups`, {}), 400, 'invalidValue', /displayName/)
  assertScimError(t, await api('POST', `${SCIM}/Groups`, { displayName: 'H', members: 'all' }), 400, 'invalidValue')
  assertScimError(t, await api('POST', `${SCIM}/Groups`, { displayName: 'H', members: [{ value: '1234567890123456' }] }), 400, 'invalidValue', /does not exist/)
  t.equal((await api('GET', `${SCIM}/Groups?filter=${encodeURIComponent('displayName eq "H"')}`)).body.totalResults, 0, 'a failed create makes no group')
  assertScimError(t, await api('POST', `${WS_SCIM}/Users`, { userName: 'w@contoso.com', entitlements: [{ value: 'fly' }] }), 400, 'invalidValue', /entitlement/)

  assertApiError(t, await api('GET', '/api/2.0/clusters/list'), 404, 'ENDPOINT_NOT_FOUND', "No API found for 'GET /api/2.0/clusters/list'")
  assertApiError(t, await api('DELETE', `${IDENTITY}/users/resolve-by-external-id`), 404, 'ENDPOINT_NOT_FOUND')
  assertScimError(t, await api('GET', `${SCIM}/Unicorns`), 404)
  assertScimError(t, await api('POST', `${SCIM}/Users`, undefined, { raw: JSON.stringify({ userName: 'big@contoso.com', displayName: 'x'.repeat(1_100_000) }) }), 413)
})

t.test('injected faults on Databricks paths look like Databricks errors', async t => {
  const { api, origin } = await startDatabricks(t)
  const faults = await fetch(`${origin}/_emulator/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify([
      { route: `${SCIM}/Users`, method: 'GET', status: 503, times: 1 },
      { route: '/api/2.0/identity/*', status: 429, retryAfter: 2, times: 1 }
    ])
  })
  t.equal(faults.status, 201)
  assertScimError(t, await api('GET', `${SCIM}/Users`), 503)
  t.equal((await api('GET', `${SCIM}/Users`)).status, 200, 'once')
  const throttled = await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: 'x' })
  assertApiError(t, throttled, 429, 'REQUEST_LIMIT_EXCEEDED')
  t.equal(throttled.headers.get('retry-after'), '2')
  const calls = await (await fetch(`${origin}/_emulator/calls`)).json() as { routes: Record<string, number> }
  t.equal(calls.routes['GET /api/2.0/accounts/:accountId/scim/v2/Users'], 2, 'calls are counted per route pattern')
})
