// JSON batching: mixed items, dependsOn and 424, per-item throttling and faults, and the whole-batch
// 400s (more than 20 requests, duplicate ids, malformed payloads).
import t from 'tap'
import { T, assertGraphError, startGraph } from '../../helpers/graph.ts'

const env = await startGraph(t)
const { call, ctx, origin } = env

interface Item { id: string, status: number, headers: Record<string, string>, body?: any }
const batch = async (requests: unknown[], headers: Record<string, string> = {}): Promise<{ status: number, items: Map<string, Item>, res: Awaited<ReturnType<typeof call>> }> => {
  const res = await call('/v1.0/$batch', { body: { requests }, headers })
  const items = new Map<string, Item>((res.body?.responses ?? []).map((r: Item) => [r.id, r]))
  return { status: res.status, items, res }
}

t.afterEach(async () => {
  ctx.faults.remove()
  await fetch(`${origin}/_emulator/graph/throttle`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ limitPer10s: null }) })
})

t.test('mixed requests each get their own status, headers and body; the batch is 200', async t => {
  const { status, items, res } = await batch([
    { id: '1', method: 'GET', url: `/users/${T.alice}?$select=id,displayName` },
    { id: '2', method: 'GET', url: `users/${T.bob}/transitiveMemberOf/microsoft.graph.group?$select=id` },
    { id: '3', method: 'POST', url: `/users/${T.alice}/getMemberGroups`, headers: { 'Content-Type': 'application/json' }, body: { securityEnabledOnly: true } },
    { id: '4', method: 'GET', url: '/groups/not-a-guid' },
    { id: '5', method: 'GET', url: `/users/${T.alice}/transitiveMemberOf/$count`, headers: { ConsistencyLevel: 'eventual' } },
    { id: '6', method: 'GET', url: '/users/nobody@contoso-test.onmicrosoft.com' },
    { id: '7', method: 'GET', url: '/nowhere' }
  ])
  t.equal(status, 200)
  t.equal(res.headers.get('content-type'), 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8')
  t.same([...items.keys()], ['1', '2', '3', '4', '5', '6', '7'])

  const one = items.get('1') as Item
  t.equal(one.status, 200)
  t.same(one.body, { '@odata.context': `${origin}/v1.0/$metadata#users(id,displayName)/$entity`, id: T.alice, displayName: 'Alice Adams' })
  t.match(one.headers['Content-Type'], /^application\/json;odata\.metadata=minimal/)
  t.equal(one.headers['x-ms-resource-unit'], '1')

  const two = items.get('2') as Item
  t.equal(two.status, 200)
  t.same(two.body.value.map((g: { id: string }) => g.id).sort(), [T.engineering, T.finance, T.allStaff].sort(), 'relative url without a leading slash')

  const three = items.get('3') as Item
  t.equal(three.status, 200)
  t.same([...three.body.value].sort(), [T.dataPlatform, T.engineering, T.allStaff].sort())
  t.equal(three.headers['x-ms-resource-unit'], '2')

  const four = items.get('4') as Item
  t.equal(four.status, 400)
  t.equal(four.body.error.code, 'Request_BadRequest')
  t.equal(four.body.error.message, 'Invalid object identifier \'not-a-guid\'.')

  const five = items.get('5') as Item
  t.equal(five.status, 200, 'per-request headers such as ConsistencyLevel apply')
  t.equal(five.body, '4')

  t.equal((items.get('6') as Item).status, 404)
  t.equal((items.get('6') as Item).body.error.code, 'Request_ResourceNotFound')
  t.equal((items.get('7') as Item).status, 400)
  t.equal((items.get('7') as Item).body.error.message, 'Resource not found for the segment \'nowhere\'.')

  const calls = ctx.calls.snapshot().routes
  t.ok((calls['GET /v1.0/users/:id'] ?? 0) >= 2, 'batch items are counted per route')
  t.ok((calls['POST /v1.0/$batch'] ?? 0) >= 1)
})

t.test('dependsOn: a failed dependency gives 424; a successful one lets the request run', async t => {
  const { status, items } = await batch([
    { id: 'a', method: 'GET', url: '/groups/not-a-guid' },
    { id: 'b', method: 'GET', url: `/users/${T.alice}?$select=id`, dependsOn: ['a'] },
    { id: 'c', method: 'GET', url: `/users/${T.bob}?$select=id` },
    { id: 'd', method: 'GET', url: `/groups/${T.finance}?$select=id`, dependsOn: ['C'] },
    { id: 'e', method: 'GET', url: `/groups/${T.finance}?$select=id`, dependsOn: ['b'] }
  ])
  t.equal(status, 200)
  t.equal(items.get('a')?.status, 400)
  t.equal(items.get('b')?.status, 424)
  t.equal(items.get('b')?.body.error.code, 'FailedDependency')
  t.equal(items.get('c')?.status, 200)
  t.equal(items.get('d')?.status, 200, 'dependsOn ids are case-insensitive')
  t.equal(items.get('d')?.body.id, T.finance)
  t.equal(items.get('e')?.status, 424, 'failure propagates along the chain')
})

t.test('each item is throttled on its own, with its own Retry-After', async t => {
  await fetch(`${origin}/_emulator/graph/throttle`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ limitPer10s: 3 }) })
  const requests = Array.from({ length: 5 }, (_, i) => ({ id: String(i + 1), method: 'GET', url: `/users/${T.alice}?$select=id`, dependsOn: i === 0 ? undefined : [String(i)] }))
  const { status, items } = await batch(requests)
  t.equal(status, 200)
  t.same([...items.values()].map(i => i.status), [200, 200, 200, 429, 424])
  const throttled = items.get('4') as Item
  t.equal(throttled.body.error.code, 'TooManyRequests')
  t.match(throttled.headers['Retry-After'], /^\d+$/)
  t.equal(throttled.headers['x-ms-throttle-information'], 'ResourceUnitLimitExceeded')
  t.equal(throttled.headers['x-ms-throttle-scope'], `Tenant_Application/Read/${T.resolverAppId}/${T.tenantId}`)

  ctx.clock.advance(Number(throttled.headers['Retry-After']) * 1000)
  const parallel = await batch([{ id: 'x', method: 'GET', url: `/users/${T.alice}?$select=id` }])
  t.equal(parallel.items.get('x')?.status, 200)
})

t.test('injected faults apply per item', async t => {
  ctx.faults.add({ route: '/v1.0/groups/*', status: 503, retryAfter: 7 })
  const { items } = await batch([
    { id: 'u', method: 'GET', url: `/users/${T.alice}?$select=id` },
    { id: 'g', method: 'GET', url: `/groups/${T.finance}` }
  ])
  t.equal(items.get('u')?.status, 200)
  const g = items.get('g') as Item
  t.equal(g.status, 503)
  t.equal(g.headers['Retry-After'], '7')
  t.equal(g.body.error.code, 'serviceNotAvailable')
  t.ok(g.body.error.innerError['request-id'], 'Graph error shape')
})

t.test('items run with the batch\'s own bearer token', async t => {
  const res = await call('/v1.0/$batch', { body: { requests: [{ id: '1', method: 'GET', url: `/users/${T.alice}` }] }, token: null })
  t.equal(res.status, 200)
  t.equal(res.body.responses[0].status, 401)
  t.equal(res.body.responses[0].body.error.code, 'InvalidAuthenticationToken')
  t.match(res.body.responses[0].headers['WWW-Authenticate'], /^Bearer/)
})

t.test('malformed batches fail as a whole with 400', async t => {
  const get = (id: string): unknown => ({ id, method: 'GET', url: `/users/${T.alice}` })
  const twentyOne = await batch(Array.from({ length: 21 }, (_, i) => get(String(i))))
  assertGraphError(t, twentyOne.res, 400, 'BadRequest', /limit of 20/)
  const twenty = await batch(Array.from({ length: 20 }, (_, i) => get(String(i))))
  t.equal(twenty.status, 200)
  t.equal(twenty.items.size, 20)

  assertGraphError(t, (await batch([get('one'), get('ONE')])).res, 400, 'BadRequest', /unique/)
  assertGraphError(t, (await batch([{ method: 'GET', url: '/users' }])).res, 400, 'BadRequest', /'id'/)
  assertGraphError(t, (await batch([{ id: '1', url: '/users' }])).res, 400, 'BadRequest', /'method'/)
  assertGraphError(t, (await batch([{ id: '1', method: 'GET' }])).res, 400, 'BadRequest', /'url'/)
  assertGraphError(t, (await batch([{ id: '1', method: 'GET', url: 'https://graph.microsoft.com/v1.0/users' }])).res, 400, 'BadRequest', /relative/)
  assertGraphError(t, (await batch([{ id: '1', method: 'GET', url: '$batch' }])).res, 400, 'BadRequest')
  assertGraphError(t, (await batch([{ id: '1', method: 'POST', url: `/users/${T.alice}/getMemberGroups`, body: { securityEnabledOnly: true } }])).res, 400, 'BadRequest', /Content-Type/)
  assertGraphError(t, (await batch([get('1'), { ...get('2') as object, dependsOn: ['3'] }, get('3')])).res, 400, 'BadRequest', /depends on '3'/)
  assertGraphError(t, (await batch([])).res, 400, 'BadRequest')
  assertGraphError(t, await call('/v1.0/$batch', { body: { requests: 'all of them' } }), 400, 'BadRequest')
  assertGraphError(t, await call('/v1.0/$batch', { body: '{"requests": [', headers: { 'content-type': 'application/json' } }), 400, 'BadRequest', 'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.')
  assertGraphError(t, await call('/v1.0/$batch', { body: 'requests', headers: { 'content-type': 'text/plain' } }), 400, 'BadRequest', /^Unable to read JSON request payload/)
})
