// Change notifications as triggers (PUBLIC_URL set): the service subscribes to Graph's user and group
// notifications (the emulator validates the URL through the handshake), a change in Entra reaches
// Databricks through a round the notification starts — no trigger, no interval —, a forged delivery is
// refused and changes nothing, a burst of deliveries is at most two rounds, and reauthorizationRequired is
// answered.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { buildTestService, tokenFor } from '../../helpers/service.ts'

const SECRET = 'test-client-state-0123456789abcdef'
const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
const { ctx, origin } = emulator
const tenant = ctx.tenants.get(T.tenantId.toLowerCase())
if (tenant === undefined) throw new Error('no tenant')

async function control (method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${origin}/_emulator${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  const json = res.status === 204 ? {} : await res.json()
  if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

/** A free loopback port, so PUBLIC_URL can name it before the service listens. */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>(resolve => server.close(() => { resolve() }))
  return port
}

await control('POST', '/databricks/reset')
await control('PUT', '/databricks/settings', { aimEnabled: false })
await control('PUT', '/databricks/rate-limits', { enabled: false })
const dir = mkdtempSync(join(tmpdir(), 'jir-sync-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const port = await freePort()
const publicUrl = `http://127.0.0.1:${port}`
const service = await buildTestService(t, emulator, {
  DATABRICKS_HOST: origin,
  DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
  DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
  SYNC_ENABLED: 'true',
  SYNC_INTERVAL_SECONDS: '3600',
  SYNC_DIR: dir,
  PUBLIC_URL: publicUrl,
  SYNC_NOTIFICATION_SECRET: SECRET
})
t.teardown(service.close)
const sync = service.sync
if (sync === undefined) throw new Error('sync is off')
await sync.nextRound()
await service.app.listen({ port, host: '127.0.0.1' })
const admin = await tokenFor(emulator, T.etlSp, { claims: { roles: ['Identity.Admin'] } })
const status = async (): Promise<any> => (await service.app.inject({ method: 'GET', url: '/v1/sync', headers: { authorization: `Bearer ${admin}` } })).json()
const notify = async (body: unknown, query = ''): Promise<Response> => await fetch(`${publicUrl}/v1/sync/notifications${query}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
const metric = async (outcome: string): Promise<number> => {
  const text = await (await service.app.inject({ method: 'GET', url: '/metrics' })).body
  return Number(new RegExp(`^sync_notifications_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0)
}

t.test('the handshake is echoed as text/plain', async t => {
  const res = await fetch(`${publicUrl}/v1/sync/notifications?validationToken=${encodeURIComponent('Validation: Testing client application reachability for subscription Request-Id: 1')}`, { method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8' } })
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/plain/)
  t.equal(await res.text(), 'Validation: Testing client application reachability for subscription Request-Id: 1')
  const bad = await fetch(`${publicUrl}/v1/sync/notifications?validationToken=${encodeURIComponent('a\nb')}`, { method: 'POST' })
  t.equal(bad.status, 400)
  t.equal((await bad.json() as { code: string }).code, 'VALIDATION_TOKEN_INVALID')
})

t.test('the next round subscribes to users and groups, through Graph\'s handshake', async t => {
  const done = sync.nextRound()
  await sync.trigger()
  await done
  const subscriptions = (await status()).subscriptions as Array<{ resource: string, id?: string, error?: string }>
  t.same(subscriptions.map(s => s.resource), ['/users', '/groups'])
  t.ok(subscriptions.every(s => s.id !== undefined && s.error === undefined), JSON.stringify(subscriptions))
  const held = (await control('GET', '/graph/notifications')).subscriptions as Array<{ notificationUrl: string, resource: string }>
  t.equal(held.filter(s => s.notificationUrl === `${publicUrl}/v1/sync/notifications`).length, 2, 'Graph holds both')
  // Another round keeps them: nothing is made twice.
  const again = sync.nextRound()
  await sync.trigger()
  await again
  t.equal((await control('GET', '/graph/notifications')).subscriptions.length, 2)
})

t.test('a change in Entra reaches Databricks through the round its notification starts', async t => {
  const login = await service.app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, T.alice)}` } })
  t.equal(login.statusCode, 200)
  const accepted = await metric('accepted')
  const round = sync.nextRound()
  tenant.updateUser(T.alice, { accountEnabled: false })
  const report = await round
  t.equal(report.applied.deactivated, 1, 'the round the notification asked for deactivated alice')
  t.ok(await metric('accepted') > accepted, 'the delivery was accepted')
  const state = await control('GET', '/databricks/state') as { users: Array<{ externalId: string, active: boolean }> }
  t.equal(state.users.find(u => u.externalId === T.alice)?.active, false)
  const back = sync.nextRound()
  tenant.updateUser(T.alice, { accountEnabled: true })
  await back
})

t.test('a forged delivery is refused and changes nothing', async t => {
  const rounds = (await status()).totals.rounds
  const item = { subscriptionId: '00000000-0000-4000-8000-000000000000', changeType: 'updated', resource: `Users/${T.alice}`, tenantId: T.tenantId }
  for (const forged of [{ ...item, clientState: 'guess' }, { ...item }, { ...item, clientState: SECRET, tenantId: T.otherTenantId }]) {
    const res = await notify({ value: [forged] })
    t.equal(res.status, 403)
    t.equal((await res.json() as { code: string }).code, 'NOTIFICATION_REFUSED')
  }
  // One genuine item beside a forged one does not carry it.
  t.equal((await notify({ value: [{ ...item, clientState: SECRET }, { ...item, clientState: 'guess' }] })).status, 403)
  t.equal(await metric('refused'), 4)
  t.equal((await status()).totals.rounds, rounds, 'no round was run')
})

t.test('1,000 deliveries during a round are one more round', async t => {
  const rounds = (await status()).totals.rounds
  const item = { subscriptionId: '00000000-0000-4000-8000-000000000000', changeType: 'updated', resource: `Users/${T.alice}`, tenantId: T.tenantId, clientState: SECRET }
  // The first delivery starts a round that Graph keeps waiting (every attempt, until the fault is lifted
  // or the attempts run out), so the others arrive while it runs.
  await control('POST', '/faults', { route: '/v1.0/users/delta*', latencyMs: 30_000 })
  const first = sync.nextRound()
  t.equal((await notify({ value: [item] })).status, 202)
  const answers = await Promise.all(Array.from({ length: 999 }, async () => (await notify({ value: [item] })).status))
  t.ok(answers.every(s => s === 202), 'every delivery is answered 202 at once, while the round runs')
  await control('DELETE', '/faults')
  await first
  const second = await sync.nextRound()
  t.same(second.errors, [])
  t.equal((await status()).totals.rounds - rounds, 2, 'the round that was running, and one more for all the deliveries that came during it')
})

t.test('reauthorizationRequired is answered, and the subscriptions are renewed before they expire', async t => {
  const before = (await control('GET', '/graph/notifications')).subscriptions as Array<{ id: string, expirationDateTime: string }>
  // Graph's clock moves to 10 minutes before the subscriptions expire: it asks for reauthorization.
  const expiresAt = Math.min(...before.map(s => Date.parse(s.expirationDateTime)))
  const round = sync.nextRound()
  await control('POST', '/clock', { advanceSeconds: Math.floor((expiresAt - ctx.clock.now()) / 1000) - 600 })
  await control('POST', '/graph/notifications/flush')
  await round
  const snapshot = await control('GET', '/graph/notifications') as { subscriptions: Array<{ id: string, expirationDateTime: string }>, deliveries: Array<{ kind: string, state: string }> }
  t.ok(snapshot.deliveries.some(d => d.kind === 'lifecycle' && d.state === 'delivered'), 'the lifecycle event was delivered and answered 2xx')
  t.same(snapshot.subscriptions.map(s => s.id).sort(), before.map(s => s.id).sort(), 'the same subscriptions, not new ones')
  t.ok(snapshot.subscriptions.every(s => Date.parse(s.expirationDateTime) > expiresAt), 'renewed past their old expiration')
  await control('DELETE', '/clock')
})
