// Change-notification subscriptions for users and groups: creation with the validation handshake (on the
// notification and the lifecycle URL), the rules on resource, changeType, clientState, notificationUrl
// and expirationDateTime, the quota of 100 per application and tenant, and GET/PATCH/DELETE/reauthorize.
import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { T, assertGraphError, graphToken, startGraph } from '../../helpers/graph.ts'

const env = await startGraph(t)
const { ctx, origin, call } = env
t.teardown(() => { ctx.clock.reset() })

/** A webhook on loopback HTTP: validation requests get `validate`, notifications 202. */
async function webhook (validate: (token: string, res: ServerResponse) => void = (token, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' }).end(token)
}): Promise<{ url: string, tokens: string[], raw: string[] }> {
  const tokens: string[] = []
  const raw: string[] = []
  const server = createServer((req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const token = url.searchParams.get('validationToken')
    req.resume()
    if (token !== null) {
      tokens.push(token)
      raw.push(req.url ?? '')
      validate(token, res)
    } else {
      res.writeHead(202).end()
    }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook?source=graph`, tokens, raw }
}

const inMinutes = (m: number): string => new Date(ctx.clock.now() + m * 60_000).toISOString()
const hook = await webhook()
const body = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  changeType: 'updated,deleted',
  notificationUrl: hook.url,
  resource: '/users',
  expirationDateTime: inMinutes(120),
  clientState: 'secret-state',
  ...extra
})

t.test('create: the handshake, then 201 with the subscription', async t => {
  const before = hook.tokens.length
  const expirationDateTime = inMinutes(120)
  const res = await call('/v1.0/subscriptions', { body: body({ expirationDateTime }) })
  t.equal(res.status, 201)
  t.equal(hook.tokens.length, before + 1, 'one validation request')
  const token = hook.tokens[before] as string
  t.match(token, /^Validation: Testing client application reachability for subscription Request-Id: [0-9a-f-]{36}$/)
  t.match(hook.raw[before], /^\/hook\?source=graph&validationToken=Validation%3A\+Testing\+/, 'URL-encoded after the URL\'s own query')
  t.match(res.body, {
    '@odata.context': `${origin}/v1.0/$metadata#subscriptions/$entity`,
    id: /^[0-9a-f-]{36}$/,
    resource: '/users',
    applicationId: T.resolverAppId,
    changeType: 'updated,deleted',
    clientState: 'secret-state',
    notificationUrl: hook.url,
    lifecycleNotificationUrl: null,
    expirationDateTime: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/,
    creatorId: T.resolverSp,
    latestSupportedTlsVersion: 'v1_2'
  })
  t.equal(Date.parse(res.body.expirationDateTime), Date.parse(expirationDateTime), 'the expiration asked for')
  t.equal(res.headers.get('location'), `${origin}/v1.0/subscriptions/${res.body.id as string}`)

  const got = await call(`/v1.0/subscriptions/${res.body.id as string}`)
  t.equal(got.status, 200)
  t.same({ ...got.body, '@odata.context': undefined }, { ...res.body, '@odata.context': undefined })
  const list = await call('/v1.0/subscriptions')
  t.equal(list.body['@odata.context'], `${origin}/v1.0/$metadata#subscriptions`)
  t.ok(list.body.value.some((s: any) => s.id === res.body.id))
})

t.test('expiration: under 45 minutes is raised to 45, over 41,760 minutes or in the past is refused', async t => {
  const short = await call('/v1.0/subscriptions', { body: body({ expirationDateTime: inMinutes(5) }) })
  t.equal(short.status, 201)
  const raised = Date.parse(short.body.expirationDateTime) - ctx.clock.now()
  t.ok(raised > 44 * 60_000 && raised <= 45 * 60_000, 'raised to 45 minutes')
  t.equal((await call('/v1.0/subscriptions', { body: body({ expirationDateTime: inMinutes(41_759) }) })).status, 201)
  assertGraphError(t, await call('/v1.0/subscriptions', { body: body({ expirationDateTime: inMinutes(41_761) }) }), 400, 'InvalidRequest', /41760 minutes/)
  assertGraphError(t, await call('/v1.0/subscriptions', { body: body({ expirationDateTime: inMinutes(-1) }) }), 400, 'InvalidRequest', /future/)
  assertGraphError(t, await call('/v1.0/subscriptions', { body: body({ expirationDateTime: 'tomorrow' }) }), 400, 'InvalidRequest')
})

t.test('the body rules', async t => {
  const bad = async (extra: Record<string, unknown>, message: RegExp, code = 'InvalidRequest', status = 400): Promise<void> => {
    assertGraphError(t, await call('/v1.0/subscriptions', { body: body(extra) }), status, code, message)
  }
  await bad({ changeType: 'created' }, /'created' is not supported/)
  await bad({ changeType: 'updated,bogus' }, /'bogus'/)
  await bad({ changeType: undefined }, /'changeType' is required/)
  await bad({ clientState: 'x'.repeat(129) }, /128 characters/)
  await bad({ resource: '/servicePrincipals' }, /not supported/)
  await bad({ resource: '/users/{id}/members' }, /not supported/)
  await bad({ resource: undefined }, /'resource' is required/)
  await bad({ notificationUrl: 'http://webhook.example/hook' }, /must be HTTPS/)
  await bad({ notificationUrl: 'ftp://127.0.0.1/hook' }, /must be HTTPS/)
  await bad({ notificationUrl: 'not a url' }, /absolute URL/)
  await bad({ lifecycleNotificationUrl: 'http://webhook.example/life' }, /lifecycleNotificationUrl must be HTTPS/)
  await bad({ includeResourceData: true }, /resource data/)
  await bad({ resource: '/users/a0000000-0000-4000-8000-0000000000ff' }, /does not exist/, 'Request_ResourceNotFound', 404)
  await bad({ resource: '/groups/not-a-guid' }, /does not exist/, 'Request_ResourceNotFound', 404)
  t.equal((await call('/v1.0/subscriptions', { body: body({ clientState: 'x'.repeat(128) }) })).status, 201, '128 characters are fine')
  t.equal((await call('/v1.0/subscriptions', { body: body({ resource: 'users/alice@contoso-test.onmicrosoft.com' }) })).status, 201, 'a user by UPN')
  t.equal((await call('/v1.0/subscriptions', { body: body({ resource: `/groups/${T.engineering}/members`, changeType: 'updated' }) })).status, 201)
  t.equal((await call('/v1.0/subscriptions', { body: body({ notificationUrl: hook.url.replace('127.0.0.1', 'localhost') }) })).status, 201, 'http on localhost')
  assertGraphError(t, await call('/v1.0/subscriptions', { body: 'nope', headers: { 'content-type': 'application/json' } }), 400, 'BadRequest')

  const appsOnly = await graphToken(ctx, { roles: ['Application.Read.All'] })
  assertGraphError(t, await call('/v1.0/subscriptions', { body: body(), token: appsOnly }), 403, 'Authorization_RequestDenied')
  const usersOnly = await graphToken(ctx, { roles: ['User.Read.All'] })
  assertGraphError(t, await call('/v1.0/subscriptions', { body: body({ resource: '/groups' }), token: usersOnly }), 403, 'Authorization_RequestDenied')
  t.equal((await call('/v1.0/subscriptions', { body: body(), token: usersOnly })).status, 201)
})

t.test('a failed handshake fails the creation with 400', async t => {
  const refusing = await webhook((_token, res) => { res.writeHead(500).end() })
  assertGraphError(t, await call('/v1.0/subscriptions', { body: body({ notificationUrl: refusing.url }) }), 400, 'ValidationError', /must respond with 200 OK/)
  const wrongBody = await webhook((token, res) => { res.writeHead(200, { 'content-type': 'text/plain' }).end(encodeURIComponent(token)) })
  assertGraphError(t, await call('/v1.0/subscriptions', { body: body({ notificationUrl: wrongBody.url }) }), 400, 'ValidationError', /exactly match/)
  const wrongType = await webhook((token, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(token)) })
  assertGraphError(t, await call('/v1.0/subscriptions', { body: body({ notificationUrl: wrongType.url }) }), 400, 'ValidationError', /text\/plain/)
  const closed = await webhook()
  const closedUrl = closed.url.replace(/:\d+\//, ':1/')
  assertGraphError(t, await call('/v1.0/subscriptions', { body: body({ notificationUrl: closedUrl }) }), 400, 'ValidationError', /could not be reached/)

  // Too slow: the limit is a knob (10 s by default); the webhook never answers.
  await fetch(`${origin}/_emulator/graph/notifications`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ validationTimeoutMs: 100 }) })
  t.teardown(async () => { await fetch(`${origin}/_emulator/graph/notifications`, { method: 'DELETE' }) })
  const silent = await webhook(() => {})
  assertGraphError(t, await call('/v1.0/subscriptions', { body: body({ notificationUrl: silent.url }) }), 400, 'ValidationError', /within 100 ms/)

  // The lifecycle URL is validated too.
  assertGraphError(t, await call('/v1.0/subscriptions', { body: body({ lifecycleNotificationUrl: refusing.url }) }), 400, 'ValidationError')
  const lifecycle = await webhook()
  t.equal((await call('/v1.0/subscriptions', { body: body({ lifecycleNotificationUrl: lifecycle.url }) })).status, 201)
  t.equal(lifecycle.tokens.length, 1)
})

t.test('PATCH renews or moves the webhook; DELETE; reauthorize; another app sees none of them', async t => {
  const created = (await call('/v1.0/subscriptions', { body: body() })).body
  const id = created.id as string
  const renewed = await call(`/v1.0/subscriptions/${id}`, { method: 'PATCH', body: { expirationDateTime: inMinutes(600) } })
  t.equal(renewed.status, 200)
  t.ok(Date.parse(renewed.body.expirationDateTime) > Date.parse(created.expirationDateTime))
  assertGraphError(t, await call(`/v1.0/subscriptions/${id}`, { method: 'PATCH', body: { expirationDateTime: inMinutes(50_000) } }), 400, 'InvalidRequest')
  assertGraphError(t, await call(`/v1.0/subscriptions/${id}`, { method: 'PATCH', body: { lifecycleNotificationUrl: hook.url } }), 400, 'InvalidRequest', /cannot be changed/)
  assertGraphError(t, await call(`/v1.0/subscriptions/${id}`, { method: 'PATCH', body: { resource: '/groups' } }), 400, 'InvalidRequest')
  const moved = await webhook()
  const patched = await call(`/v1.0/subscriptions/${id}`, { method: 'PATCH', body: { notificationUrl: moved.url } })
  t.equal(patched.body.notificationUrl, moved.url)
  t.equal(moved.tokens.length, 1, 'the new URL is validated')

  t.equal((await call(`/v1.0/subscriptions/${id}/reauthorize`, { method: 'POST' })).status, 204)

  const other = await graphToken(ctx, { appId: T.etlAppId, oid: T.etlSp })
  assertGraphError(t, await call(`/v1.0/subscriptions/${id}`, { token: other }), 404, 'Request_ResourceNotFound')
  assertGraphError(t, await call(`/v1.0/subscriptions/${id}`, { method: 'DELETE', token: other }), 404, 'Request_ResourceNotFound')
  t.same((await call('/v1.0/subscriptions', { token: other })).body.value, [])

  t.equal((await call(`/v1.0/subscriptions/${id}`, { method: 'DELETE' })).status, 204)
  assertGraphError(t, await call(`/v1.0/subscriptions/${id}`), 404, 'Request_ResourceNotFound')
  assertGraphError(t, await call(`/v1.0/subscriptions/${id}/reauthorize`, { method: 'POST' }), 404, 'Request_ResourceNotFound')
  assertGraphError(t, await call(`/v1.0/subscriptions/${id}/bogus`, { method: 'POST' }), 400, 'BadRequest')
  assertGraphError(t, await call('/v1.0/subscriptions', { method: 'DELETE' }), 405, 'Request_BadRequest')
})

t.test('an expired subscription is gone', async t => {
  const id = (await call('/v1.0/subscriptions', { body: body({ expirationDateTime: inMinutes(60) }) })).body.id as string
  ctx.clock.advance(61 * 60_000)
  const token = await graphToken(ctx)
  assertGraphError(t, await call(`/v1.0/subscriptions/${id}`, { token }), 404, 'Request_ResourceNotFound')
  t.notOk((await call('/v1.0/subscriptions', { token })).body.value.some((s: any) => s.id === id))
  ctx.clock.reset()
})

t.test('quota: 100 subscriptions per application and tenant, then 403', async t => {
  await fetch(`${origin}/_emulator/graph/subscriptions`, { method: 'DELETE' })
  for (let i = 0; i < 100; i++) {
    const res = await call('/v1.0/subscriptions', { body: body({ resource: i % 2 === 0 ? '/users' : '/groups' }) })
    if (res.status !== 201) throw new Error(`subscription ${i}: ${res.status} ${res.text}`)
  }
  assertGraphError(t, await call('/v1.0/subscriptions', { body: body() }), 403, 'ExtensionError', /100 subscriptions per application and tenant/)
  const other = await graphToken(ctx, { appId: T.etlAppId, oid: T.etlSp })
  t.equal((await call('/v1.0/subscriptions', { body: body(), token: other })).status, 201, 'another application has its own quota')
  const id = (await call('/v1.0/subscriptions')).body.value[0].id as string
  await call(`/v1.0/subscriptions/${id}`, { method: 'DELETE' })
  t.equal((await call('/v1.0/subscriptions', { body: body() })).status, 201, 'room again after a delete')
})
