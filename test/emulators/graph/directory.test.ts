// Entity and collection reads: response conventions, default and selected properties, lookups by
// id, UPN (guest #EXT# UPNs percent-encoded) and the servicePrincipals(appId='…') alternate key,
// $filter / $count / $orderby / $search / $expand on the collections, /directoryObjects and getByIds.
import t from 'tap'
import { T, assertGraphError, graphToken, guids, smallTenant, startGraph } from '../../helpers/graph.ts'

const OBRIEN = 'a0000000-0000-4000-8000-0000000000b1'
const tenant = smallTenant()
tenant.users.push({ id: OBRIEN, userPrincipalName: 'sean.obrien@contoso-test.onmicrosoft.com', displayName: 'Seán O\'Brien', mail: 'sean.o\'brien@contoso.com', givenName: 'Seán', surname: 'O\'Brien', jobTitle: 'Data Engineer', department: 'Data' })

const env = await startGraph(t, [tenant])
const { call, origin } = env
const ctxUrl = (fragment: string): string => `${origin}/v1.0/$metadata#${fragment}`
const GUEST_UPN_ENCODED = 'gina_fabrikam.com%23EXT%23@contoso-test.onmicrosoft.com'

t.test('every response carries Graph\'s standard headers', async t => {
  const res = await call(`/v1.0/users/${T.alice}`, { headers: { 'client-request-id': 'my-correlation-id' } })
  t.equal(res.status, 200)
  t.match(res.headers.get('request-id'), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
  t.equal(res.headers.get('client-request-id'), 'my-correlation-id', 'client-request-id is echoed')
  t.ok(Number.isFinite(Date.parse(res.headers.get('date') ?? '')), 'Date')
  t.equal(res.headers.get('cache-control'), 'no-store')
  t.equal(res.headers.get('odata-version'), '4.0')
  t.match(res.headers.get('strict-transport-security'), /max-age=\d+/)
  t.ok(JSON.parse(res.headers.get('x-ms-ags-diagnostic') ?? '{}').ServerInfo, 'x-ms-ags-diagnostic')
  t.equal(res.headers.get('content-type'), 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8')
  t.equal(res.headers.get('x-ms-resource-unit'), '1')

  const fresh = await call(`/v1.0/users/${T.alice}`)
  t.equal(fresh.headers.get('client-request-id'), fresh.headers.get('request-id'), 'without one, client-request-id is the request id')
})

t.test('GET /users/{id} returns the default property set', async t => {
  const res = await call(`/v1.0/users/${T.alice}`)
  t.same(Object.keys(res.body), ['@odata.context', 'businessPhones', 'displayName', 'givenName', 'jobTitle', 'mail', 'mobilePhone', 'officeLocation', 'preferredLanguage', 'surname', 'userPrincipalName', 'id'])
  t.equal(res.body['@odata.context'], ctxUrl('users/$entity'))
  t.same(res.body.businessPhones, [])
  t.equal(res.body.mail, 'alice@contoso.com')
  t.equal(res.body.id, T.alice)
  t.notOk('accountEnabled' in res.body, 'accountEnabled only with $select')
  t.notOk('@odata.type' in res.body, 'no @odata.type on a non-polymorphic entity')
})

t.test('$select picks properties (case-insensitively) and changes the context', async t => {
  const res = await call(`/v1.0/users/${T.disabled}?$select=ID,displayName,accountEnabled,userType,department,onPremisesSyncEnabled`)
  t.equal(res.status, 200)
  t.same(res.body, {
    '@odata.context': ctxUrl('users(id,displayName,accountEnabled,userType,department,onPremisesSyncEnabled)/$entity'),
    id: T.disabled,
    displayName: 'Dan Disabled',
    accountEnabled: false,
    userType: 'Member',
    department: null,
    onPremisesSyncEnabled: null
  })
  const bad = await call(`/v1.0/users/${T.alice}?$select=displayName,favouriteColour`)
  assertGraphError(t, bad, 400, 'Request_BadRequest', 'Parsing OData Select and Expand failed: Could not find a property named \'favouriteColour\' on type \'microsoft.graph.user\'.')
})

t.test('users by userPrincipalName, guests by their percent-encoded #EXT# UPN', async t => {
  const byUpn = await call('/v1.0/users/ALICE@contoso-test.onmicrosoft.com?$select=id')
  t.equal(byUpn.status, 200)
  t.equal(byUpn.body.id, T.alice)

  const guest = await call(`/v1.0/users/${GUEST_UPN_ENCODED}?$select=id,userPrincipalName,userType,externalUserState`)
  t.equal(guest.status, 200)
  t.same(guest.body, {
    '@odata.context': ctxUrl('users(id,userPrincipalName,userType,externalUserState)/$entity'),
    id: T.guest,
    userPrincipalName: 'gina_fabrikam.com#EXT#@contoso-test.onmicrosoft.com',
    userType: 'Guest',
    externalUserState: 'Accepted'
  })

  // Sent unencoded, `#EXT#…` is a URL fragment: the server only sees the part before it.
  const unencoded = await call('/v1.0/users/gina_fabrikam.com#EXT#@contoso-test.onmicrosoft.com')
  assertGraphError(t, unencoded, 404, 'Request_ResourceNotFound', 'Resource \'gina_fabrikam.com\' does not exist or one of its queried reference-property objects are not present.')

  const unknown = await call('/v1.0/users/nobody@contoso-test.onmicrosoft.com')
  assertGraphError(t, unknown, 404, 'Request_ResourceNotFound', 'Resource \'nobody@contoso-test.onmicrosoft.com\' does not exist or one of its queried reference-property objects are not present.')
  const notAGuid = await call('/v1.0/users/not-a-guid')
  assertGraphError(t, notAGuid, 404, 'Request_ResourceNotFound', /^Resource 'not-a-guid' does not exist/)
  const aGroupId = await call(`/v1.0/users/${T.allStaff}`)
  assertGraphError(t, aGroupId, 404, 'Request_ResourceNotFound', `Resource '${T.allStaff}' does not exist or one of its queried reference-property objects are not present.`)
})

t.test('groups: entity, malformed and unknown ids', async t => {
  const res = await call(`/v1.0/groups/${T.distribution}`)
  t.equal(res.status, 200)
  t.equal(res.body['@odata.context'], ctxUrl('groups/$entity'))
  t.match(res.body, { id: T.distribution, displayName: 'Newsletter', securityEnabled: false, mailEnabled: true, groupTypes: [], mailNickname: 'Newsletter', mail: 'Newsletter@contoso-test.onmicrosoft.com', description: null })
  t.match(res.body.securityIdentifier, /^S-1-12-1-\d+-\d+-\d+-\d+$/)

  assertGraphError(t, await call('/v1.0/groups/not-a-guid'), 400, 'Request_BadRequest', 'Invalid object identifier \'not-a-guid\'.')
  assertGraphError(t, await call('/v1.0/groups/d0000000-0000-4000-8000-00000000000'), 400, 'Request_BadRequest', 'Invalid object identifier \'d0000000-0000-4000-8000-00000000000\'.')
  const missing = 'd0000000-0000-4000-8000-0000000000ff'
  assertGraphError(t, await call(`/v1.0/groups/${missing}`), 404, 'Request_ResourceNotFound', `Resource '${missing}' does not exist or one of its queried reference-property objects are not present.`)
  assertGraphError(t, await call(`/v1.0/groups/${T.alice}`), 404, 'Request_ResourceNotFound')
})

t.test('$expand=members on a group inlines its members with @odata.type', async t => {
  const res = await call(`/v1.0/groups/${T.engineering}?$select=id,displayName&$expand=members`)
  t.equal(res.status, 200)
  t.same(res.body.members.map((m: { id: string }) => m.id).sort(), [T.bob, T.dataPlatform].sort())
  t.ok(res.body.members.every((m: Record<string, unknown>) => typeof m['@odata.type'] === 'string'))
  t.equal(res.headers.get('x-ms-resource-unit'), '1', 'GET 1, $select −1, $expand +1')
  assertGraphError(t, await call(`/v1.0/groups/${T.engineering}?$expand=owners`), 400, 'Request_BadRequest', /Could not find a property named 'owners' on type 'microsoft\.graph\.group'/)
})

t.test('service principals by id, by appId alternate key (quotes raw or %27) and by $filter', async t => {
  const byId = await call(`/v1.0/servicePrincipals/${T.resolverSp}`)
  t.equal(byId.status, 200)
  t.equal(byId.body['@odata.context'], ctxUrl('servicePrincipals/$entity'))
  t.match(byId.body, {
    id: T.resolverSp,
    appId: T.resolverAppId,
    displayName: 'jit-identity-resolver',
    appDisplayName: 'jit-identity-resolver',
    accountEnabled: true,
    servicePrincipalType: 'Application',
    appOwnerOrganizationId: T.tenantId
  })
  t.same(byId.body.servicePrincipalNames, [T.resolverAppId, `api://${T.resolverAppId}`])

  for (const path of [`/v1.0/servicePrincipals(appId='${T.etlAppId}')`, `/v1.0/servicePrincipals(appId=%27${T.etlAppId}%27)`, `/v1.0/servicePrincipals%28appId=%27${T.etlAppId.toUpperCase()}%27%29?$select=id,appId`]) {
    const res = await call(path)
    t.equal(res.status, 200, path)
    t.equal(res.body.id, T.etlSp, path)
    t.equal(res.body.appId, T.etlAppId)
  }
  const unknownApp = 'c0000000-0000-4000-8000-0000000000ff'
  assertGraphError(t, await call(`/v1.0/servicePrincipals(appId='${unknownApp}')`), 404, 'Request_ResourceNotFound', `Resource '${unknownApp}' does not exist or one of its queried reference-property objects are not present.`)
  assertGraphError(t, await call('/v1.0/servicePrincipals/12345'), 400, 'Request_BadRequest', 'Invalid object identifier \'12345\'.')

  const filtered = await call(`/v1.0/servicePrincipals?$filter=appId eq '${T.etlAppId}'&$select=id,appId,displayName`)
  t.equal(filtered.status, 200)
  t.same(filtered.body, {
    '@odata.context': ctxUrl('servicePrincipals(id,appId,displayName)'),
    value: [{ id: T.etlSp, appId: T.etlAppId, displayName: 'Nightly ETL' }]
  })
})

t.test('the /v1.0/{tenantId}/… alias serves the token\'s tenant and refuses another', async t => {
  const res = await call(`/v1.0/${T.tenantId}/users/${T.alice}?$select=id`)
  t.equal(res.status, 200)
  t.equal(res.body.id, T.alice)
  const sp = await call(`/v1.0/${T.tenantId}/servicePrincipals(appId='${T.etlAppId}')?$select=id`)
  t.equal(sp.body.id, T.etlSp)
  const other = await call(`/v1.0/${T.otherTenantId}/users/${T.alice}`)
  assertGraphError(t, other, 401, 'InvalidAuthenticationToken')
})

t.test('GET /users?$filter= supports the default operators', async t => {
  const ids = async (filter: string, headers: Record<string, string> = {}): Promise<string[]> => {
    const res = await call(`/v1.0/users?$filter=${encodeURIComponent(filter)}&$select=id`, { headers })
    t.equal(res.status, 200, filter)
    return res.body.value.map((u: { id: string }) => u.id).sort()
  }
  t.same(await ids('mail eq \'alice@contoso.com\''), [T.alice])
  t.same(await ids('mail eq \'sean.o\'\'brien@contoso.com\''), [OBRIEN], 'quotes in literals are doubled')
  t.same(await ids('userPrincipalName eq \'BOB@contoso-test.onmicrosoft.com\''), [T.bob])
  t.same(await ids('displayName eq \'Seán O\'\'Brien\''), [OBRIEN])
  t.same(await ids(`id eq '${T.guest}'`), [T.guest])
  t.same(await ids('accountEnabled eq false'), [T.disabled])
  t.same(await ids('startswith(displayName,\'b\')'), [T.bob])
  t.same(await ids('startswith(userPrincipalName,\'gina_\') or startswith(mail,\'alice\')'), [T.alice, T.guest].sort())
  t.same(await ids(`id in ('${T.alice}', '${T.bob}', 'a0000000-0000-4000-8000-0000000000ff')`), [T.alice, T.bob].sort())
  t.same(await ids('accountEnabled eq true and startswith(displayName,\'d\')'), [])
  t.same(await ids('userType eq \'Guest\''), [T.guest])

  // Advanced operators: rejected without ConsistencyLevel + $count, answered with them.
  const endsWith = await call(`/v1.0/users?$filter=${encodeURIComponent('endswith(mail,\'@contoso.com\')')}`)
  assertGraphError(t, endsWith, 400, 'Request_UnsupportedQuery', /^Operator 'endsWith' is not supported because the required parameters might be missing/)
  const onlyHeader = await call(`/v1.0/users?$filter=${encodeURIComponent('endswith(mail,\'@contoso.com\')')}`, { headers: { ConsistencyLevel: 'eventual' } })
  assertGraphError(t, onlyHeader, 400, 'Request_UnsupportedQuery')
  const advanced = await call(`/v1.0/users?$filter=${encodeURIComponent('endswith(mail,\'@contoso.com\')')}&$count=true&$select=id`, { headers: { ConsistencyLevel: 'eventual' } })
  t.equal(advanced.status, 200)
  t.equal(advanced.body['@odata.count'], 3)
  t.same(advanced.body.value.map((u: { id: string }) => u.id).sort(), [T.alice, T.bob, OBRIEN].sort())
  const ne = await call(`/v1.0/users?$filter=${encodeURIComponent('userType ne \'Member\'')}&$count=true&$select=id`, { headers: { ConsistencyLevel: 'eventual' } })
  t.same(ne.body.value.map((u: { id: string }) => u.id), [T.guest])
  const not = await call(`/v1.0/users?$filter=${encodeURIComponent('not(accountEnabled eq true)')}&$count=true&$select=id`, { headers: { ConsistencyLevel: 'eventual' } })
  t.same(not.body.value.map((u: { id: string }) => u.id), [T.disabled])

  assertGraphError(t, await call(`/v1.0/users?$filter=${encodeURIComponent('createdDateTime ge 2020-01-01')}`), 400, 'BadRequest', /Invalid filter clause/)
  assertGraphError(t, await call(`/v1.0/users?$filter=${encodeURIComponent('employeeType eq \'x\'')}`), 400, 'Request_UnsupportedQuery', 'Unsupported or invalid query filter clause specified for property \'employeeType\' of resource \'User\'.')
  assertGraphError(t, await call(`/v1.0/users?$filter=${encodeURIComponent('mail eq ')}`), 400, 'BadRequest', /^Invalid filter clause/)
})

t.test('GET /groups?$filter=displayName and securityEnabled', async t => {
  const names = async (filter: string): Promise<string[]> => {
    const res = await call(`/v1.0/groups?$filter=${encodeURIComponent(filter)}&$select=displayName`)
    t.equal(res.status, 200, filter)
    t.equal(res.body['@odata.context'], ctxUrl('groups(displayName)'))
    return res.body.value.map((g: { displayName: string }) => g.displayName).sort()
  }
  t.same(await names('displayName eq \'engineering\''), ['Engineering'])
  t.same(await names('startswith(displayName,\'Data\')'), ['Data Platform'])
  t.same(await names('securityEnabled eq false'), ['Newsletter'])
  t.same(await names('securityEnabled eq true and startswith(displayName,\'f\')'), ['Finance'])
  assertGraphError(t, await call(`/v1.0/groups?$filter=${encodeURIComponent('userPrincipalName eq \'x\'')}`), 400, 'Request_UnsupportedQuery', 'Unsupported or invalid query filter clause specified for property \'userPrincipalName\' of resource \'Group\'.')
})

t.test('$count on collections: @odata.count only with ConsistencyLevel, /$count segment needs it', async t => {
  const noHeader = await call('/v1.0/users?$count=true&$select=id')
  t.equal(noHeader.status, 200)
  t.notOk('@odata.count' in noHeader.body, '@odata.count is silently omitted without ConsistencyLevel')
  const withHeader = await call('/v1.0/users?$count=true&$select=id', { headers: { ConsistencyLevel: 'eventual' } })
  t.equal(withHeader.body['@odata.count'], 5)

  assertGraphError(t, await call('/v1.0/users/$count'), 400, 'Request_BadRequest', '$count is not currently supported.')
  const count = await call('/v1.0/users/$count', { headers: { ConsistencyLevel: 'eventual' } })
  t.equal(count.status, 200)
  t.match(count.headers.get('content-type'), /^text\/plain/)
  t.equal(count.text, '5')
  const filtered = await call(`/v1.0/groups/$count?$filter=${encodeURIComponent('securityEnabled eq true')}`, { headers: { ConsistencyLevel: 'eventual' } })
  t.equal(filtered.text, '4')
})

t.test('$orderby, $search and $top on the users collection', async t => {
  const ordered = await call('/v1.0/users?$orderby=displayName desc&$select=displayName')
  t.same(ordered.body.value.map((u: { displayName: string }) => u.displayName), ['Seán O\'Brien', 'Gina Guest', 'Dan Disabled', 'Bob Brown', 'Alice Adams'])
  const filteredOrder = await call(`/v1.0/users?$orderby=displayName&$filter=${encodeURIComponent('accountEnabled eq true')}`)
  assertGraphError(t, filteredOrder, 400, 'Request_UnsupportedQuery', 'Sorting not supported for current query.')

  const search = await call('/v1.0/users?$search="displayName:brien"&$select=id')
  assertGraphError(t, search, 400, 'Request_UnsupportedQuery', 'Request with $search query parameter only works through MSGraph with a special request header: \'ConsistencyLevel: eventual\'')
  const searched = await call(`/v1.0/users?$search=${encodeURIComponent('"displayName:brien" OR "mail:gina"')}&$select=id`, { headers: { ConsistencyLevel: 'eventual' } })
  t.equal(searched.status, 200)
  t.same(searched.body.value.map((u: { id: string }) => u.id).sort(), [OBRIEN, T.guest].sort())

  const top = await call('/v1.0/users?$top=2&$select=id')
  t.equal(top.body.value.length, 2)
  t.match(top.body['@odata.nextLink'], /\$skiptoken=/)
})

t.test('GET /directoryObjects/{id} answers any type with @odata.type', async t => {
  const group = await call(`/v1.0/directoryObjects/${T.finance}`)
  t.equal(group.status, 200)
  t.equal(group.body['@odata.context'], ctxUrl('directoryObjects/$entity'))
  t.equal(group.body['@odata.type'], '#microsoft.graph.group')
  t.equal(group.body.displayName, 'Finance')
  const sp = await call(`/v1.0/directoryObjects/${T.etlSp}?$select=id,appId`)
  t.same(sp.body, { '@odata.context': ctxUrl('directoryObjects(id,appId)/$entity'), '@odata.type': '#microsoft.graph.servicePrincipal', id: T.etlSp, appId: T.etlAppId })
  assertGraphError(t, await call('/v1.0/directoryObjects/xyz'), 400, 'Request_BadRequest', 'Invalid object identifier \'xyz\'.')
})

t.test('POST /directoryObjects/getByIds', async t => {
  const unknown = 'a0000000-0000-4000-8000-0000000000ff'
  const res = await call('/v1.0/directoryObjects/getByIds', { body: { ids: [T.alice, T.finance, unknown, T.etlSp] } })
  t.equal(res.status, 200)
  t.equal(res.body['@odata.context'], ctxUrl('directoryObjects'))
  t.same(res.body.value.map((o: Record<string, string>) => [o['@odata.type'], o.id]), [
    ['#microsoft.graph.user', T.alice], ['#microsoft.graph.group', T.finance], ['#microsoft.graph.servicePrincipal', T.etlSp]
  ], 'in request order, unknown ids left out')
  t.equal(res.headers.get('x-ms-resource-unit'), '3')

  const onlyGroups = await call('/v1.0/directoryObjects/getByIds?$select=id,displayName', { body: { ids: [T.alice, T.finance, T.engineering], types: ['group'] } })
  t.same(onlyGroups.body.value, [
    { '@odata.type': '#microsoft.graph.group', id: T.finance, displayName: 'Finance' },
    { '@odata.type': '#microsoft.graph.group', id: T.engineering, displayName: 'Engineering' }
  ])

  assertGraphError(t, await call('/v1.0/directoryObjects/getByIds', { body: { ids: guids('e0', 1001) } }), 400, 'Request_BadRequest', /limit of 1000/)
  const thousand = await call('/v1.0/directoryObjects/getByIds', { body: { ids: guids('e0', 1000) } })
  t.equal(thousand.status, 200, '1,000 ids are fine')
  assertGraphError(t, await call('/v1.0/directoryObjects/getByIds', { body: { ids: ['nope'] } }), 400, 'Request_BadRequest', 'Invalid object identifier \'nope\'.')
  assertGraphError(t, await call('/v1.0/directoryObjects/getByIds', { body: { ids: [T.alice], types: ['printer'] } }), 400, 'Request_BadRequest')
  assertGraphError(t, await call('/v1.0/directoryObjects/getByIds', { body: { types: ['user'] } }), 400, 'Request_BadRequest')
  assertGraphError(t, await call('/v1.0/directoryObjects/getByIds', { body: '{"ids": [', headers: { 'content-type': 'application/json' } }), 400, 'BadRequest', 'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.')
})

t.test('delegated tokens read too', async t => {
  const token = await graphToken(env.ctx, { scp: 'User.Read.All' })
  const res = await call(`/v1.0/users/${T.bob}?$select=id`, { token })
  t.equal(res.status, 200)
})
