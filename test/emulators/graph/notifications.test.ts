// Change-notification delivery: what each directory write sends to which subscription (users, groups,
// one object, a group's members; updated vs deleted; members@delta), retries of failed or slow
// deliveries on the emulator clock, the knobs (delay, drops, duplicates, reordering), reauthorization
// lifecycle notifications, an HTTPS webhook trusted through the emulators' CA, and a notification that
// arrives before a lagged change shows in delta. Waits are on events, never on time.
import t from 'tap'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import type { NotificationHub } from '../../../emulators/graph/notifications.ts'
import { T, graphToken, startGraph } from '../../helpers/graph.ts'

const env = await startGraph(t)
const { ctx, origin } = env
let token = env.token
const call: typeof env.call = async (path, init = {}) => await env.call(path, { token, ...init })
const hub = ctx.graphNotifications as NotificationHub
t.teardown(() => { ctx.clock.reset() })

async function control (method: string, path: string, body?: unknown): Promise<{ status: number, body: any }> {
  const res = await fetch(`${origin}/_emulator${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

const knobs = async (k: Record<string, unknown>): Promise<void> => {
  const res = await control('PUT', '/graph/notifications', k)
  if (res.status !== 200) throw new Error(JSON.stringify(res.body))
}

interface Post { body: any, res: ServerResponse }

/**
 * A webhook: answers validation, records every notification POST and answers it with `answer` (default
 * 202). `next(n)` resolves with the first n posts once they have arrived.
 */
class Webhook {
  readonly posts: Post[] = []
  answer: (post: Post) => void = post => { post.res.writeHead(202).end() }
  url = ''
  private readonly waiters: Array<{ n: number, resolve: () => void }> = []

  handle (req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x')
    const validation = url.searchParams.get('validationToken')
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => { text += c })
    req.on('end', () => {
      if (validation !== null) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end(validation)
        return
      }
      const post = { body: JSON.parse(text), res }
      this.posts.push(post)
      this.answer(post)
      for (const w of this.waiters.splice(0)) {
        if (this.posts.length >= w.n) w.resolve()
        else this.waiters.push(w)
      }
    })
  }

  async next (n: number): Promise<Post[]> {
    if (this.posts.length < n) await new Promise<void>(resolve => this.waiters.push({ n, resolve }))
    return this.posts.slice(0, n)
  }

  /** The notifications received so far, flattened. */
  get notifications (): any[] {
    return this.posts.flatMap(p => p.body.value)
  }
}

async function webhook (tls = false): Promise<Webhook> {
  const hook = new Webhook()
  const handler = (req: IncomingMessage, res: ServerResponse): void => { hook.handle(req, res) }
  const dir = dirname(env.caPath)
  const server = tls
    ? createHttpsServer({ cert: readFileSync(join(dir, 'server.pem')), key: readFileSync(join(dir, 'server-key.pem')) }, handler)
    : createServer(handler)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  hook.url = `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}/notify`
  return hook
}

async function subscribe (hook: Webhook, resource: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await call('/v1.0/subscriptions', {
    body: { changeType: 'updated,deleted', notificationUrl: hook.url, resource, expirationDateTime: new Date(ctx.clock.now() + 3 * 3600_000).toISOString(), clientState: 'cs', ...extra }
  })
  if (res.status !== 201) throw new Error(`subscribe: ${res.status} ${res.text}`)
  return res.body.id as string
}

/** Fresh subscriptions, default knobs and the real time for each test. */
t.beforeEach(async () => {
  ctx.clock.reset()
  token = env.token
  await control('DELETE', '/graph/subscriptions')
  await control('DELETE', '/graph/notifications')
})

t.test('a user update: one POST with Graph\'s notification shape', async t => {
  const hook = await webhook()
  const id = await subscribe(hook, '/users')
  t.equal((await control('PATCH', `/tenant/users/${T.bob}`, { accountEnabled: false })).status, 200)
  const [post] = await hook.next(1)
  const sub = (await call(`/v1.0/subscriptions/${id}`)).body
  t.same(post?.body, {
    value: [{
      id: post?.body.value[0].id,
      subscriptionId: id,
      subscriptionExpirationDateTime: sub.expirationDateTime,
      clientState: 'cs',
      changeType: 'updated',
      resource: `Users/${T.bob}`,
      tenantId: T.tenantId,
      resourceData: { '@odata.type': '#Microsoft.Graph.User', '@odata.id': `Users/${T.bob}`, id: T.bob, organizationId: T.tenantId }
    }]
  })
  t.match(post?.body.value[0].id, /^[0-9a-f-]{36}$/)
  await control('PATCH', `/tenant/users/${T.bob}`, { accountEnabled: true })
  await hook.next(2)
})

t.test('creation, soft delete and restore are updated; a permanent delete is deleted', async t => {
  const hook = await webhook()
  const onlyDeleted = await webhook()
  await subscribe(hook, '/users')
  await subscribe(onlyDeleted, 'users', { changeType: 'deleted' })
  const id = 'a0000000-0000-4000-8000-0000000000c1'
  await control('POST', '/tenant/users', { id, userPrincipalName: 'carl@contoso-test.onmicrosoft.com', displayName: 'Carl' })
  await control('DELETE', `/tenant/users/${id}`)
  await control('POST', `/tenant/users/${id}/restore`)
  await control('DELETE', `/tenant/users/${id}?permanent=true`)
  await hook.next(4)
  t.same(hook.notifications.map(n => [n.changeType, n.resourceData.id]), [['updated', id], ['updated', id], ['updated', id], ['deleted', id]])
  const [gone] = await onlyDeleted.next(1)
  t.same(gone?.body.value.map((n: any) => [n.changeType, n.resourceData.id]), [['deleted', id]], 'a deleted-only subscription hears only the permanent delete')
})

t.test('groups: membership changes carry members@delta; a user subscription hears only its user', async t => {
  const groups = await webhook()
  const members = await webhook()
  const alice = await webhook()
  await subscribe(groups, '/groups')
  await subscribe(members, `/groups/${T.finance}/members`)
  await subscribe(alice, `/users/${T.alice}`)

  await control('POST', '/tenant/members', { groupId: T.finance, memberIds: [T.alice, T.etlSp] })
  const [added] = await groups.next(1)
  t.same(added?.body.value.map((n: any) => [n.changeType, n.resource, n.resourceData['@odata.type'], n.resourceData['members@delta']]), [
    ['updated', `Groups/${T.finance}`, '#Microsoft.Graph.Group', [{ id: T.alice }, { id: T.etlSp }]]
  ], 'one notification per group for the write, members in the observed form')
  await members.next(1)

  await control('PATCH', `/tenant/groups/${T.finance}`, { displayName: 'Finance (renamed)' })
  await control('DELETE', '/tenant/members', { groupId: T.finance, memberId: T.alice })
  const [, renamed, removed] = await groups.next(3)
  t.same(renamed?.body.value[0].resourceData, { '@odata.type': '#Microsoft.Graph.Group', '@odata.id': `Groups/${T.finance}`, id: T.finance, organizationId: T.tenantId }, 'a rename: no members@delta')
  t.same(removed?.body.value[0].resourceData['members@delta'], [{ id: T.alice, '@removed': 'deleted' }])
  const [, memberRemoved] = await members.next(2)
  t.same(memberRemoved?.body.value[0].resourceData['members@delta'], [{ id: T.alice, '@removed': 'deleted' }], 'the members subscription skipped the rename')

  await knobs({ membersDelta: 'delta' })
  await control('POST', '/tenant/members', { groupId: T.finance, memberId: T.alice })
  const [,,, deltaForm] = await groups.next(4)
  t.same(deltaForm?.body.value[0].resourceData['members@delta'], [{ '@odata.type': '#microsoft.graph.user', id: T.alice }], 'the delta-query form')

  // Deleting Bob (in Engineering and Finance) tells /groups about both groups in one POST.
  await control('DELETE', `/tenant/users/${T.bob}`)
  const [,,,, bobGone] = await groups.next(5)
  t.same(bobGone?.body.value.map((n: any) => n.resourceData.id).sort(), [T.engineering, T.finance].sort())
  t.same(bobGone?.body.value[0].resourceData['members@delta'], [{ '@odata.type': '#microsoft.graph.user', id: T.bob, '@removed': { reason: 'deleted' } }])
  await control('POST', `/tenant/users/${T.bob}/restore`)
  await groups.next(6)
  t.same(alice.notifications.map(n => n.resourceData.id), [], 'nothing about Alice herself changed')
  await control('PATCH', `/tenant/users/${T.alice}`, { displayName: 'Alice A.' })
  t.same((await alice.next(1))[0]?.body.value.map((n: any) => n.resourceData.id), [T.alice])
})

t.test('a failed delivery is retried with backoff on the emulator clock', async t => {
  const hook = await webhook()
  await subscribe(hook, '/users')
  await knobs({ retryBaseSeconds: 600 })
  let answers = 0
  hook.answer = post => { post.res.writeHead(++answers === 1 ? 503 : 202).end() }
  const attempt = once(hub, 'attempt')
  await control('PATCH', `/tenant/users/${T.bob}`, { jobTitle: 'First' })
  t.equal((await attempt)[1], 503)
  const state = (await control('GET', '/graph/notifications')).body
  t.match(state.deliveries.at(-1), { state: 'pending', attempts: 1, outcomes: [503] }, 'waiting for its retry')
  const delivered = once(hub, 'delivered')
  ctx.clock.advance(600_000)
  await delivered
  t.equal(hook.posts.length, 2)
  t.same(hook.posts[1]?.body, hook.posts[0]?.body, 'the same notification again')
  t.match((await control('GET', '/graph/notifications')).body.deliveries.at(-1), { state: 'delivered', attempts: 2, outcomes: [503, 202] })
})

t.test('a slow reply counts as a failure and is retried', async t => {
  const hook = await webhook()
  await subscribe(hook, '/users')
  await knobs({ responseTimeoutMs: 100, retryBaseSeconds: 60 })
  let answers = 0
  // The first POST is never answered; the emulator gives up on it after 100 ms.
  hook.answer = post => { if (++answers > 1) post.res.writeHead(200).end() }
  const attempt = once(hub, 'attempt')
  await control('PATCH', `/tenant/users/${T.bob}`, { jobTitle: 'Slow' })
  t.equal((await attempt)[1], 'timeout')
  const delivered = once(hub, 'delivered')
  ctx.clock.advance(60_000)
  await delivered
  t.equal(hook.posts.length, 2)
})

t.test('retrying stops after retryForSeconds (4 hours by default)', async t => {
  const hook = await webhook()
  await subscribe(hook, '/users')
  await knobs({ retryBaseSeconds: 3600, retryForSeconds: 4 * 3600 })
  hook.answer = post => { post.res.writeHead(500).end() }
  const gaveUp = once(hub, 'gave-up')
  await control('PATCH', `/tenant/users/${T.bob}`, { jobTitle: 'Never' })
  await once(hub, 'attempt')
  // Backoff 1 h, then 2 h: the third attempt, 3 h after the first, fails, and the next (4 h later)
  // would fall outside the 4 hours.
  const second = once(hub, 'attempt')
  ctx.clock.advance(3600_000)
  await second
  ctx.clock.advance(2 * 3600_000)
  const [delivery] = await gaveUp
  t.match(delivery, { state: 'gave-up', attempts: 3, outcomes: [500, 500, 500] })
})

t.test('knobs: delay, drops, duplicates, reordering, flush', async t => {
  const hook = await webhook()
  await subscribe(hook, '/users')

  await knobs({ delaySeconds: 120 })
  const queued = once(hub, 'queued')
  await control('PATCH', `/tenant/users/${T.bob}`, { jobTitle: 'Delayed' })
  await queued
  t.match((await control('GET', '/graph/notifications')).body.deliveries.at(-1), { state: 'pending', attempts: 0 }, 'not sent yet')
  const delivered = once(hub, 'delivered')
  ctx.clock.advance(120_000)
  await delivered
  t.equal(hook.posts.length, 1)

  await knobs({ delaySeconds: 0, dropNext: 1 })
  const dropped = once(hub, 'dropped')
  await control('PATCH', `/tenant/users/${T.bob}`, { jobTitle: 'Dropped' })
  await dropped
  await control('PATCH', `/tenant/users/${T.bob}`, { jobTitle: 'Kept' })
  await hook.next(2)
  t.equal(hook.posts.length, 2, 'the dropped one never came')

  await knobs({ duplicateNext: 1 })
  await control('PATCH', `/tenant/users/${T.bob}`, { jobTitle: 'Twice' })
  const [,, first, second] = await hook.next(4)
  t.same(second?.body, first?.body, 'the same notification (same id) twice')

  await knobs({ reorderWindow: 3 })
  for (const title of ['one', 'two', 'three']) await control('PATCH', `/tenant/users/${T.alice}`, { jobTitle: title })
  await hook.next(7)
  const held = hook.posts.slice(4).map(p => p.body.value[0].resourceData.id)
  t.same(held, [T.alice, T.alice, T.alice])
  const order = hook.posts.slice(4).map(p => p.body.value[0].id)
  const log = (await control('GET', '/graph/notifications')).body.deliveries.slice(-3).map((d: any) => d.notifications[0])
  t.same(order, [...log].reverse(), 'released newest first')

  await control('PATCH', `/tenant/users/${T.alice}`, { jobTitle: 'held' })
  t.equal((await control('GET', '/graph/notifications')).body.stats.held, 1)
  await control('POST', '/graph/notifications/flush')
  await hook.next(8)

  await knobs({ reorderWindow: 0, dropRate: 1 })
  const allDropped = once(hub, 'dropped')
  await control('PATCH', `/tenant/users/${T.alice}`, { jobTitle: 'lost' })
  await allDropped
  t.match((await control('GET', '/graph/notifications')).body.stats, { dropped: 2 })
  t.equal((await control('PUT', '/graph/notifications', { dropRate: 2 })).status, 400)
  t.equal((await control('PUT', '/graph/notifications', { bogus: 1 })).status, 400)
})

t.test('reauthorizationRequired goes to the lifecycle URL within the window of expiry', async t => {
  const hook = await webhook()
  const life = await webhook()
  const id = await subscribe(hook, '/groups', { lifecycleNotificationUrl: life.url, expirationDateTime: new Date(ctx.clock.now() + 60 * 60_000).toISOString() })
  await knobs({ reauthorizationWindowSeconds: 600 })
  ctx.clock.advance(49 * 60_000)
  token = await graphToken(ctx)
  t.equal(life.posts.length, 0, 'not yet')
  ctx.clock.advance(60_000)
  const [post] = await life.next(1)
  const expiration = (await call(`/v1.0/subscriptions/${id}`)).body.expirationDateTime
  t.same(post?.body, { value: [{ subscriptionId: id, subscriptionExpirationDateTime: expiration, tenantId: T.tenantId, clientState: 'cs', lifecycleEvent: 'reauthorizationRequired' }] })
  t.equal((await call(`/v1.0/subscriptions/${id}/reauthorize`, { method: 'POST' })).status, 204)

  // A renewal re-arms it for the new expiration.
  const renewed = await call(`/v1.0/subscriptions/${id}`, { method: 'PATCH', body: { expirationDateTime: new Date(ctx.clock.now() + 120 * 60_000).toISOString() } })
  t.equal(renewed.status, 200)
  ctx.clock.advance(111 * 60_000)
  token = await graphToken(ctx)
  const [, again] = await life.next(2)
  t.equal(again?.body.value[0].subscriptionExpirationDateTime, renewed.body.expirationDateTime)
  ctx.clock.advance(10 * 60_000)
  token = await graphToken(ctx)
  t.equal((await call(`/v1.0/subscriptions/${id}`)).status, 404, 'expired')
  await control('PATCH', `/tenant/groups/${T.finance}`, { displayName: 'After expiry' })
  const kinds = (await control('GET', '/graph/notifications')).body.deliveries.map((d: any) => d.kind)
  t.same(kinds, ['lifecycle', 'lifecycle'], 'an expired subscription hears nothing')
  t.equal(hook.posts.length, 0)
})

t.test('an HTTPS webhook is trusted through the emulators\' CA', async t => {
  const hook = await webhook(true)
  t.match(hook.url, /^https:/)
  await subscribe(hook, '/users')
  await control('PATCH', `/tenant/users/${T.alice}`, { displayName: 'Alice over TLS' })
  const [post] = await hook.next(1)
  t.equal(post?.body.value[0].resourceData.id, T.alice)
})

t.test('with a replication lag the notification comes before delta shows the change', async t => {
  const hook = await webhook()
  await subscribe(hook, '/users')
  const link = (await call('/v1.0/users/delta?$deltatoken=latest&$select=displayName')).body['@odata.deltaLink']
  await control('PUT', '/graph/replication', { lagSeconds: 30 })
  t.teardown(async () => { await control('PUT', '/graph/replication', { lagSeconds: 0 }) })
  await control('PATCH', `/tenant/users/${T.alice}`, { displayName: 'Alice (lagging)' })
  const [post] = await hook.next(1)
  t.equal(post?.body.value[0].resourceData.id, T.alice, 'notified at once')
  const early = await call(link)
  t.same(early.body.value, [], 'delta does not have it yet: retry later')
  ctx.clock.advance(30_000)
  token = await graphToken(ctx)
  t.same((await call(early.body['@odata.deltaLink'])).body.value, [{ displayName: 'Alice (lagging)', id: T.alice }])
})

t.test('the control API lists subscriptions and deliveries', async t => {
  const hook = await webhook()
  const id = await subscribe(hook, '/users')
  await control('PATCH', `/tenant/users/${T.alice}`, { jobTitle: 'listed' })
  await hook.next(1)
  const state = (await control('GET', '/graph/notifications')).body
  t.match(state.settings, { delaySeconds: 0, retryBaseSeconds: 1, retryForSeconds: 14400, responseTimeoutMs: 3000, validationTimeoutMs: 10000, membersDelta: 'observed' })
  t.match(state.subscriptions, [{ id, resource: '/users', tenantId: T.tenantId }])
  t.match(state.deliveries, [{ kind: 'change', subscriptionId: id, url: hook.url, state: 'delivered', attempts: 1, outcomes: [202] }])
  t.match(state.stats, { delivered: 1, dropped: 0, queued: 0 })
  t.same((await control('DELETE', '/graph/subscriptions')).body, { removed: 1 })
  t.same((await control('DELETE', '/graph/notifications')).body.deliveries, [])
})
