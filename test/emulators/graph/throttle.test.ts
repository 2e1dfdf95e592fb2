// Throttling: resource-unit costs, the per-(app, tenant) token bucket, Graph's 429, recovery after the
// emulator clock moves by Retry-After, and the loopback-only control route that sets the limit.
import t from 'tap'
import { LIMITS, Throttle, requestCost } from '../../../emulators/graph/throttle.ts'
import type { GraphError } from '../../../emulators/graph/errors.ts'
import { EmulatorClock } from '../../../emulators/clock.ts'
import { Directory } from '../../../emulators/tenant/model.ts'
import { T, assertGraphError, graphToken, smallTenant, startGraph } from '../../helpers/graph.ts'

const env = await startGraph(t)
const { call, ctx, origin } = env

async function control (method: 'GET' | 'PUT', body?: unknown): Promise<{ status: number, body: any }> {
  const res = await fetch(`${origin}/_emulator/graph/throttle`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: res.status, body: await res.json() }
}

t.afterEach(async () => { await control('PUT', { limitPer10s: null, disabled: false }) })

t.test('each request reports its cost in x-ms-resource-unit (spec §2.4)', async t => {
  const unit = async (path: string, init: { body?: unknown } = {}): Promise<string | null> => (await call(path, init)).headers.get('x-ms-resource-unit')
  t.equal(await unit('/v1.0/users'), '2', 'GET users')
  t.equal(await unit('/v1.0/users?$select=id'), '1', '$select −1')
  t.equal(await unit(`/v1.0/users/${T.alice}`), '1', 'other GET')
  t.equal(await unit(`/v1.0/users/${T.alice}/transitiveMemberOf`), '2')
  t.equal(await unit(`/v1.0/users/${T.alice}/memberOf`), '2')
  t.equal(await unit(`/v1.0/users/${T.alice}/transitiveMemberOf?$top=5`), '1', '$top < 20 −1')
  t.equal(await unit(`/v1.0/users/${T.alice}/transitiveMemberOf?$top=20`), '2', '$top 20 is no discount')
  t.equal(await unit(`/v1.0/users/${T.alice}/transitiveMemberOf?$select=id&$top=5`), '1', 'never below 1')
  t.equal(await unit(`/v1.0/groups/${T.allStaff}/members`), '3')
  t.equal(await unit(`/v1.0/groups/${T.allStaff}/transitiveMembers`), '5')
  t.equal(await unit(`/v1.0/groups/${T.allStaff}/transitiveMembers?$select=id`), '4')
  t.equal(await unit(`/v1.0/groups/${T.allStaff}?$expand=members`), '2', '$expand +1')
  t.equal(await unit(`/v1.0/users/${T.alice}/getMemberGroups`, { body: { securityEnabledOnly: true } }), '2')
  t.equal(await unit(`/v1.0/users/${T.alice}/getMemberObjects`, { body: { securityEnabledOnly: true } }), '2')
  t.equal(await unit(`/v1.0/users/${T.alice}/checkMemberGroups`, { body: { groupIds: [T.allStaff] } }), '4')
  t.equal(await unit('/v1.0/directoryObjects/getByIds', { body: { ids: [T.alice] } }), '3')
  t.equal(await unit('/v1.0/no/such/route'), '1')
  t.equal(requestCost(2, { $SELECT: 'id', $Top: '3' }), 1, 'options are matched case-insensitively')
})

t.test('over the limit: 429 with Retry-After and Graph\'s headers; after Retry-After it recovers', async t => {
  const set = await control('PUT', { limitPer10s: 10 })
  t.equal(set.status, 200)
  t.equal(set.body.settings.limitPer10s, 10)

  const percentages: Array<string | null> = []
  for (let i = 0; i < 10; i++) {
    const res = await call(`/v1.0/users/${T.alice}`)
    t.equal(res.status, 200, `request ${i + 1} fits`)
    percentages.push(res.headers.get('x-ms-throttle-limit-percentage'))
  }
  t.same(percentages.slice(0, 8), Array(8).fill(null), 'no percentage header up to 80 % of the limit')
  // Real time refills 10 % of the bucket per second, so the last one reads 0.9 on a slow machine.
  t.equal(percentages[8], '0.9')
  t.match(percentages[9], /^(1\.0|0\.9)$/)

  const throttled = await call(`/v1.0/users/${T.alice}`, { headers: { 'client-request-id': 'throttled-call' } })
  t.equal(throttled.status, 429)
  t.equal(throttled.body.error.code, 'TooManyRequests')
  t.equal(throttled.body.error.message, 'Please retry again later.')
  t.match(throttled.body.error.innerError, { code: '429', status: '429', message: 'Please retry after', 'client-request-id': 'throttled-call' })
  t.equal(throttled.body.error.innerError['request-id'], throttled.headers.get('request-id'))
  const retryAfter = throttled.headers.get('retry-after') ?? ''
  t.match(retryAfter, /^\d+$/, 'Retry-After is an integer number of seconds')
  t.ok(Number(retryAfter) >= 1)
  t.equal(throttled.headers.get('x-ms-throttle-scope'), `Tenant_Application/Read/${T.resolverAppId}/${T.tenantId}`)
  t.equal(throttled.headers.get('x-ms-throttle-information'), 'ResourceUnitLimitExceeded')
  t.equal(throttled.headers.get('x-ms-resource-unit'), '1')

  // A costlier request needs more refill: 5 units at 1 unit/s.
  const costly = await call(`/v1.0/groups/${T.allStaff}/transitiveMembers`)
  t.equal(costly.status, 429)
  t.equal(costly.headers.get('retry-after'), '5')

  ctx.clock.advance(Number(retryAfter) * 1000)
  const after = await call(`/v1.0/users/${T.alice}`)
  t.equal(after.status, 200, 'succeeds once Retry-After has passed')
})

t.test('buckets are per (application, tenant)', async t => {
  await control('PUT', { limitPer10s: 2 })
  t.equal((await call(`/v1.0/users/${T.alice}`)).status, 200)
  t.equal((await call(`/v1.0/users/${T.alice}`)).status, 200)
  t.equal((await call(`/v1.0/users/${T.alice}`)).status, 429)
  const otherApp = await graphToken(ctx, { appId: T.etlAppId, oid: T.etlSp, roles: ['User.Read.All'] })
  t.equal((await call(`/v1.0/users/${T.alice}`, { token: otherApp })).status, 200, 'another app has its own bucket')
  const status = await control('GET')
  t.same(status.body.buckets.map((b: { appId: string }) => b.appId).sort(), [T.etlAppId, T.resolverAppId].sort())
})

t.test('disabled throttling never answers 429', async t => {
  await control('PUT', { limitPer10s: 1, disabled: true })
  for (let i = 0; i < 5; i++) t.equal((await call(`/v1.0/users/${T.alice}`)).status, 200)
})

t.test('the control route: defaults by tenant size, validation, loopback only', async t => {
  const state = await control('GET')
  t.equal(state.status, 200)
  t.same(state.body.settings, { disabled: false })
  t.equal(state.body.limits[T.tenantId], 3500, 'a small tenant gets 3,500 units per 10 s')
  t.equal((await control('PUT', { limitPer10s: -1 })).status, 400)
  t.equal((await control('PUT', { disabled: 'yes' })).status, 400)
  t.equal((await control('PUT', [1])).status, 400)

  const remote = await env.app.inject({ method: 'GET', url: '/_emulator/graph/throttle', remoteAddress: '10.1.2.3' })
  t.equal(remote.statusCode, 403)
  const remotePut = await env.app.inject({ method: 'PUT', url: '/_emulator/graph/throttle', remoteAddress: '192.168.1.9', payload: { disabled: true } })
  t.equal(remotePut.statusCode, 403)
  t.same((await control('GET')).body.settings, { disabled: false }, 'a remote caller changed nothing')
})

class ManualClock extends EmulatorClock {
  ms = 0
  override now (): number {
    return this.ms
  }
}

t.test('size classes and continuous refill, without a server', async t => {
  t.same(LIMITS, { S: 3500, M: 5000, L: 8000 })
  const clock = new ManualClock()
  const fixture = smallTenant()
  const users = Array.from({ length: 60 }, (_, i) => ({ id: `b1000000-0000-4000-8000-${String(i).padStart(12, '0')}`, userPrincipalName: `u${i}@x`, displayName: `U${i}` }))
  const medium = new Directory({ ...fixture, users: [...fixture.users, ...users] })
  const throttle = new Throttle(clock)
  t.equal(throttle.limitFor(medium), 5000, '60 users: a medium tenant')
  const refused = (appId: string): GraphError | undefined => {
    try {
      throttle.take(appId, medium, 5)
      return undefined
    } catch (err) {
      return err as GraphError
    }
  }
  let taken = 0
  for (let i = 0; i < 1000; i++) if (refused('app') === undefined) taken++
  t.equal(taken, 1000, '5,000 units fit in a full medium bucket')
  const first = refused('app')
  t.equal(first?.status, 429)
  t.equal(first?.headers['retry-after'], '1', 'Retry-After is at least 1 s')
  clock.ms += 9
  t.equal(refused('app')?.status, 429, '9 ms refill 4.5 units at 500 units/s')
  clock.ms += 1
  t.equal(refused('app'), undefined, '10 ms refill 5 units')
  t.equal(refused('other-app'), undefined, 'another app has a full bucket')
})

t.test('a 429 is Graph-shaped for the other throttled routes too', async t => {
  await control('PUT', { limitPer10s: 1 })
  t.equal((await call(`/v1.0/users/${T.alice}/transitiveMemberOf?$select=id`)).status, 200)
  const res = await call(`/v1.0/users/${T.alice}/getMemberGroups`, { body: { securityEnabledOnly: true } })
  assertGraphError(t, res, 429, 'TooManyRequests', 'Please retry again later.')
})
