// Bad input never crashes the emulator: every failure has Graph's status and error envelope, and the
// emulator keeps answering afterwards.
import t from 'tap'
import { T, assertGraphError, startGraph } from '../../helpers/graph.ts'

const env = await startGraph(t)
const { call, ctx } = env
const memberOf = `/v1.0/users/${T.alice}/transitiveMemberOf`

t.afterEach(async () => {
  ctx.faults.remove()
  // The emulator still answers after each case.
  const res = await call(`/v1.0/users/${T.alice}?$select=id`)
  if (res.status !== 200) throw new Error(`the emulator stopped answering: ${res.status}`)
})

t.test('$top out of range or not a number', async t => {
  assertGraphError(t, await call(`${memberOf}?$top=abc`), 400, 'Request_BadRequest', 'Invalid page size specified: \'abc\'. Must be between 1 and 999 inclusive.')
  assertGraphError(t, await call(`${memberOf}?$top=5000`), 400, 'Request_BadRequest', 'Invalid page size specified: \'5000\'. Must be between 1 and 999 inclusive.')
  assertGraphError(t, await call(`${memberOf}?$top=0`), 400, 'Request_BadRequest', /^Invalid page size specified: '0'/)
  assertGraphError(t, await call(`${memberOf}?$top=-1`), 400, 'Request_BadRequest')
  assertGraphError(t, await call(`${memberOf}?$top=1.5`), 400, 'Request_BadRequest')
  assertGraphError(t, await call('/v1.0/users?$top=1000'), 400, 'Request_BadRequest', /'1000'/)
  t.equal((await call(`${memberOf}?$top=999`)).status, 200)
  t.equal((await call(`${memberOf}?$top=1`)).status, 200)
})

t.test('other malformed query options', async t => {
  assertGraphError(t, await call(`${memberOf}?$select=id,noSuchProperty`), 400, 'Request_BadRequest', 'Parsing OData Select and Expand failed: Could not find a property named \'noSuchProperty\' on type \'microsoft.graph.directoryObject\'.')
  assertGraphError(t, await call('/v1.0/groups?$select=userPrincipalName'), 400, 'Request_BadRequest', 'Parsing OData Select and Expand failed: Could not find a property named \'userPrincipalName\' on type \'microsoft.graph.group\'.')
  assertGraphError(t, await call('/v1.0/users?$top=1&$top=2'), 400, 'BadRequest', 'Query option \'$top\' was specified more than once, but it must be specified at most once.')
  assertGraphError(t, await call('/v1.0/users?$count=maybe'), 400, 'BadRequest')
  assertGraphError(t, await call('/v1.0/users?$skip=10'), 400, 'Request_BadRequest', '\'$skip\' is not supported by the service.')
  assertGraphError(t, await call(`/v1.0/users?$filter=${encodeURIComponent('('.repeat(3000))}`), 400, 'BadRequest', /Invalid filter clause/)
  assertGraphError(t, await call('/v1.0/users?$orderby=displayName sideways'), 400, 'BadRequest')
})

t.test('malformed object ids', async t => {
  for (const id of ['not-a-guid', '12345', 'd0000000-0000-4000-8000-00000000000g', `${T.allStaff}x`, '%27%27']) {
    assertGraphError(t, await call(`/v1.0/groups/${id}`), 400, 'Request_BadRequest', /^Invalid object identifier '/)
    assertGraphError(t, await call(`/v1.0/groups/${id}/transitiveMembers`), 400, 'Request_BadRequest', /^Invalid object identifier '/)
    assertGraphError(t, await call(`/v1.0/directoryObjects/${id}`), 400, 'Request_BadRequest', /^Invalid object identifier '/)
  }
  assertGraphError(t, await call(`/v1.0/groups/${T.allStaff}/checkMemberGroups`, { body: { groupIds: ['x'] } }), 400, 'Request_BadRequest', 'Invalid object identifier \'x\'.')
})

t.test('bodies that are not JSON, or not the expected JSON', async t => {
  const url = `/v1.0/users/${T.alice}/getMemberGroups`
  const message = 'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.'
  assertGraphError(t, await call(url, { body: '{"securityEnabledOnly": tru', headers: { 'content-type': 'application/json' } }), 400, 'BadRequest', message)
  assertGraphError(t, await call(url, { body: 'securityEnabledOnly', headers: { 'content-type': 'text/plain' } }), 400, 'BadRequest', message)
  assertGraphError(t, await call(url, { method: 'POST' }), 400, 'BadRequest', message)
  assertGraphError(t, await call(url, { body: '[true]', headers: { 'content-type': 'application/json' } }), 400, 'BadRequest', message)
  assertGraphError(t, await call(url, { body: '"true"', headers: { 'content-type': 'application/json' } }), 400, 'BadRequest', message)
  assertGraphError(t, await call(url, { body: { securityEnabledOnly: 'yes' } }), 400, 'Request_BadRequest', /securityEnabledOnly/)
  const big = await call(url, { body: JSON.stringify({ securityEnabledOnly: true, pad: 'x'.repeat(2 * 1024 * 1024) }) })
  assertGraphError(t, big, 413, 'Request_EntityTooLarge')
})

t.test('bad percent-encoding and long path segments', async t => {
  assertGraphError(t, await call('/v1.0/users/%E0%A4%A'), 400, 'BadRequest', /not a valid url component/)
  const longGuestUpn = encodeURIComponent(`${'a'.repeat(150)}_fabrikam.com#EXT#@contoso-test.onmicrosoft.com`)
  assertGraphError(t, await call(`/v1.0/users/${longGuestUpn}`), 404, 'Request_ResourceNotFound')
})

t.test('a $batch of 21', async t => {
  const requests = Array.from({ length: 21 }, (_, i) => ({ id: String(i), method: 'GET', url: `/users/${T.alice}` }))
  assertGraphError(t, await call('/v1.0/$batch', { body: { requests } }), 400, 'BadRequest', /limit of 20/)
})

t.test('unknown routes and methods', async t => {
  assertGraphError(t, await call('/v1.0/printers'), 400, 'BadRequest', 'Resource not found for the segment \'printers\'.')
  assertGraphError(t, await call(`/v1.0/users/${T.alice}/manager`), 400, 'BadRequest', 'Resource not found for the segment \'manager\'.')
  assertGraphError(t, await call(`/v1.0/users/${T.alice}/transitiveMemberOf/microsoft.graph.group/extra`), 400, 'BadRequest', 'Resource not found for the segment \'extra\'.')
  assertGraphError(t, await call('/v1.0/'), 400, 'BadRequest')
  assertGraphError(t, await call(`/v1.0/users/${T.alice}`, { method: 'PATCH', body: {} }), 405, 'Request_BadRequest', 'Specified HTTP method is not allowed for the request target.')
  assertGraphError(t, await call('/v1.0/$batch'), 405, 'Request_BadRequest')
  assertGraphError(t, await call(`/v1.0/users/${T.alice}/transitiveMemberOf`, { body: {} }), 405, 'Request_BadRequest')
})

t.test('injected faults come back in Graph\'s error shape, with the caller\'s client-request-id', async t => {
  ctx.faults.add({ route: '/v1.0/users/*', status: 503, retryAfter: 3, times: 1 })
  const res = await call(`/v1.0/users/${T.bob}`, { headers: { 'client-request-id': 'fault-check' } })
  assertGraphError(t, res, 503, 'serviceNotAvailable')
  t.equal(res.headers.get('retry-after'), '3')
  t.equal(res.body.error.innerError['client-request-id'], 'fault-check')
  t.equal(res.headers.get('odata-version'), '4.0')
  ctx.faults.add({ route: '/v1.0/groups/*', status: 429, retryAfter: 2, times: 1 })
  const throttled = await call(`/v1.0/groups/${T.finance}`)
  assertGraphError(t, throttled, 429, 'TooManyRequests', 'Please retry again later.')
  t.match(throttled.body.error.innerError, { code: '429', status: '429' })
})
