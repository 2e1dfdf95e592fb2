// Deadlines end to end (issue 11): Microsoft Graph hangs on a first login. The caller gets 503
// DEADLINE_EXCEEDED with Retry-After at REQUEST_TIMEOUT_MS instead of waiting out the hang; the work goes
// on, and once the fault is lifted it completes and fills the caches, so the retry is a 200 that reads
// nothing from Graph. The same when the hang is in authentication (the signing keys). Every step waits on
// an answer or the service's state, never on the clock.
import t from 'tap'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { startService, tokenFor } from '../../helpers/service.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import type { LightMyRequestResponse } from 'fastify'
import type { Service } from '../../../src/service.ts'

const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
const { ctx } = emulator
// The principal read of a login is a Graph $batch (one request, retried by the client as a read).
const PRINCIPAL_READ = 'POST /v1.0/$batch'
// Short, so the test is quick; the hang (60 s) is far longer than anything here.
const ENV = { REQUEST_TIMEOUT_MS: '1500', UPSTREAM_TIMEOUT_MS: '1000' }

const login = async (service: Service, token: string): Promise<LightMyRequestResponse> =>
  await service.app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })

async function until (condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!await condition()) await new Promise(resolve => setTimeout(resolve, 20))
}

t.test('Graph hangs on a first login: 503 DEADLINE_EXCEEDED at once, then a fast retry from the work that went on', async t => {
  const service = await startService(t, emulator, ENV)
  const token = await tokenFor(emulator, T.alice)
  // Keys loaded first: this login's deadline is spent on Graph alone.
  t.equal((await service.app.inject('/readyz')).statusCode, 200)
  const fault = ctx.faults.add({ route: '/v1.0/$batch', method: 'POST', timeout: true, hangMs: 60_000 })
  t.teardown(() => ctx.faults.remove())

  const first = await login(service, token)
  t.equal(first.statusCode, 503)
  t.match(first.headers['content-type'], /^application\/problem\+json/)
  t.match(first.json(), { status: 503, code: 'DEADLINE_EXCEEDED' })
  t.equal(first.headers['retry-after'], '1', 'Retry-After says when to come back')
  t.ok((ctx.faults.list()[0]?.matched ?? 0) >= 1, 'the principal read was under way')
  t.notOk(service.resolver.isWarm(T.tenantId, { id: T.alice }), 'answered before the hung read ended')

  // Graph answers again: the read in flight times out (UPSTREAM_TIMEOUT_MS), is retried and completes.
  ctx.faults.remove(fault.id)
  await until(() => service.resolver.isWarm(T.tenantId, { id: T.alice }))

  ctx.calls.reset()
  const retry = await login(service, token)
  t.equal(retry.statusCode, 200)
  t.match(retry.json(), { principal: { id: T.alice }, groupsSource: 'graph' })
  const routes = ctx.calls.snapshot().routes
  t.notOk(routes[PRINCIPAL_READ], 'no new Graph read of the principal')
  t.same(Object.keys(routes).filter(r => r.includes('/v1.0/')), [], 'no Graph call at all: the first login\'s work is served')
})

t.test('a retry while the work is still running joins it', async t => {
  const service = await startService(t, emulator, ENV)
  const token = await tokenFor(emulator, T.bob)
  t.equal((await service.app.inject('/readyz')).statusCode, 200)
  const fault = ctx.faults.add({ route: '/v1.0/$batch', method: 'POST', timeout: true, hangMs: 60_000 })
  t.teardown(() => ctx.faults.remove())
  t.equal((await login(service, token)).statusCode, 503)
  t.equal(await coalesced(service), 0)

  // Still hung when the retry arrives: it waits on the same read instead of starting another.
  const retry = login(service, token)
  ctx.faults.remove(fault.id)
  const res = await retry
  t.ok(res.statusCode === 200 || (res.statusCode === 503 && res.json().code === 'DEADLINE_EXCEEDED'), `200, or another deadline on a slow machine (got ${res.statusCode})`)
  t.equal(await coalesced(service), 1, 'the retry joined the principal read in flight')
  await until(() => service.resolver.isWarm(T.tenantId, { id: T.bob }))
  t.equal((await login(service, token)).statusCode, 200)
})

/** Principal lookups that joined a read already in flight, from /metrics. */
async function coalesced (service: Service): Promise<number> {
  const text = (await service.app.inject('/metrics')).body
  return Number(/^resolver_cache_lookups_total\{cache="principals",result="coalesced"\} (\d+)/m.exec(text)?.[1] ?? 0)
}

t.test('the signing keys hang on the first request: the deadline covers authentication too', async t => {
  const service = await startService(t, emulator, ENV)
  const token = await tokenFor(emulator, T.alice)
  const fault = ctx.faults.add({ route: `/${T.tenantId}/v2.0/.well-known/openid-configuration`, timeout: true, hangMs: 60_000 })
  t.teardown(() => ctx.faults.remove())

  const first = await login(service, token)
  t.equal(first.statusCode, 503)
  t.match(first.json(), { code: 'DEADLINE_EXCEEDED' })
  t.equal(first.headers['retry-after'], '1')

  ctx.faults.remove(fault.id)
  await until(async () => (await service.app.inject('/readyz')).statusCode === 200)
  t.equal((await login(service, token)).statusCode, 200)
})
