// The official Microsoft Graph JavaScript client (v3) against the emulator's change tracking: it
// creates, reads, renews and deletes a subscription (the emulator's handshake reaching a local webhook
// in between), deletes a user, reads deleted items, restores and purges, and follows a user delta round
// that reports the soft delete as `changed`. This proves the protocol shapes, not our own parsing.
import t from 'tap'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Client, GraphError } from '@microsoft/microsoft-graph-client'
import type { NotificationHub } from '../../../emulators/graph/notifications.ts'
import { T, graphToken, startGraph } from '../../helpers/graph.ts'

const env = await startGraph(t)
const { ctx } = env
const token = await graphToken(ctx, { roles: ['User.ReadWrite.All', 'Group.ReadWrite.All'] })
const client = Client.initWithMiddleware({
  baseUrl: env.origin,
  customHosts: new Set([new URL(env.origin).hostname]),
  authProvider: { getAccessToken: async () => token }
})

// A webhook that answers the validation handshake and keeps the notifications.
const received: any[] = []
const server = createServer((req, res) => {
  const validationToken = new URL(req.url ?? '/', 'http://x').searchParams.get('validationToken')
  let body = ''
  req.setEncoding('utf8')
  req.on('data', (c: string) => { body += c })
  req.on('end', () => {
    if (validationToken !== null) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(validationToken)
      return
    }
    received.push(...JSON.parse(body).value)
    res.writeHead(202).end()
  })
})
await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
t.teardown(() => { server.closeAllConnections(); server.close() })
const notificationUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graph`

t.test('a subscription: create, get, list, renew, notified, delete', async t => {
  const expirationDateTime = new Date(ctx.clock.now() + 2 * 3600_000).toISOString()
  const created = await client.api('/subscriptions').post({
    changeType: 'updated,deleted',
    notificationUrl,
    resource: '/users',
    expirationDateTime,
    clientState: 'sdk-state'
  })
  t.match(created, { resource: '/users', changeType: 'updated,deleted', clientState: 'sdk-state', notificationUrl, applicationId: T.resolverAppId })
  t.equal(Date.parse(created.expirationDateTime), Date.parse(expirationDateTime))

  const got = await client.api(`/subscriptions/${created.id as string}`).get()
  t.equal(got.id, created.id)
  const list = await client.api('/subscriptions').get()
  t.same(list.value.map((s: { id: string }) => s.id), [created.id])

  const renewed = await client.api(`/subscriptions/${created.id as string}`).patch({ expirationDateTime: new Date(ctx.clock.now() + 24 * 3600_000).toISOString() })
  t.ok(Date.parse(renewed.expirationDateTime) > Date.parse(created.expirationDateTime))

  const delivered = once(ctx.graphNotifications as NotificationHub, 'delivered')
  ctx.tenants.get(T.tenantId)?.updateUser(T.bob, { jobTitle: 'Notified' })
  await delivered
  t.match(received, [{ subscriptionId: created.id, clientState: 'sdk-state', changeType: 'updated', resource: `Users/${T.bob}`, resourceData: { id: T.bob } }])

  await client.api(`/subscriptions/${created.id as string}`).delete()
  try {
    await client.api(`/subscriptions/${created.id as string}`).get()
    t.fail('expected 404')
  } catch (err) {
    t.equal((err as GraphError).statusCode, 404)
    t.equal((err as GraphError).code, 'Request_ResourceNotFound')
  }
})

t.test('a refused handshake surfaces as a GraphError 400', async t => {
  try {
    await client.api('/subscriptions').post({ changeType: 'updated', notificationUrl: notificationUrl.replace(/:\d+\//, ':1/'), resource: '/groups', expirationDateTime: new Date(ctx.clock.now() + 3600_000).toISOString() })
    t.fail('expected 400')
  } catch (err) {
    t.ok(err instanceof GraphError)
    t.equal((err as GraphError).statusCode, 400)
    t.equal((err as GraphError).code, 'ValidationError')
  }
})

t.test('delete a user, read deleted items, restore, purge, and delta in between', async t => {
  const first = await client.api('/users/delta').select(['displayName']).get()
  let link: string = first['@odata.deltaLink']
  t.type(link, 'string')

  await client.api(`/users/${T.guest}`).delete()
  const deleted = await client.api('/directory/deletedItems/microsoft.graph.user').select(['id', 'displayName', 'deletedDateTime']).get()
  t.match(deleted.value, [{ id: T.guest, displayName: 'Gina Guest', deletedDateTime: /Z$/ }])
  const one = await client.api(`/directory/deletedItems/${T.guest}`).get()
  t.equal(one['@odata.type'], '#microsoft.graph.user')

  const round = await client.api(link).get()
  t.same(round.value, [{ id: T.guest, '@removed': { reason: 'changed' } }])
  link = round['@odata.deltaLink']

  const restored = await client.api(`/directory/deletedItems/${T.guest}/restore`).post({})
  t.match(restored, { '@odata.type': '#microsoft.graph.user', id: T.guest })
  t.same((await client.api(`/users/${T.guest}/memberOf`).select('id').get()).value.map((g: { id: string }) => g.id), [T.finance], 'back in Finance')

  await client.api(`/users/${T.guest}`).delete()
  await client.api(`/directory/deletedItems/${T.guest}`).delete()
  t.same((await client.api('/directory/deletedItems/microsoft.graph.user').get()).value, [])
  const last = await client.api(link).get()
  t.same(last.value, [{ id: T.guest, '@removed': { reason: 'deleted' } }], 'restored, then deleted for good: deleted')
})
