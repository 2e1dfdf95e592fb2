// DatabricksScimTarget under concurrency, faults and throttling (emulator over HTTPS, AIM off).
import t from 'tap'
import { databricksNesting, entraNesting, scimEnv, T } from '../../helpers/target.ts'
import { TargetUnavailableError } from '../../../src/target/port.ts'

const GROUP_PATCH = 'PATCH /api/2.0/accounts/:accountId/scim/v2/Groups/:id'

t.test('50 concurrent materializations of one principal → one user, one of each group', async t => {
  const env = await scimEnv(t)
  const request = env.request(T.alice)
  const results = await Promise.all(Array.from({ length: 50 }, async () => await env.target.materialize(env.request(T.alice))))
  t.equal(new Set(results.map(r => r.principalId)).size, 1)
  const calls = env.dbCalls()
  t.equal(calls.routes['POST /api/2.0/accounts/:accountId/scim/v2/Users'], 1, 'single-flight: one create')

  // Three replicas (nothing shared but Databricks) racing: 409s are resolved by reading.
  const cold = env.request(T.bob)
  const replicas = [env.replica(), env.replica(), env.replica()]
  const raced = await Promise.all(Array.from({ length: 30 }, async (_, i) => await (replicas[i % 3] as typeof replicas[0]).materialize(cold)))
  t.equal(new Set(raced.map(r => r.principalId)).size, 1)
  const state = await env.state()
  t.equal(state.users.filter(u => u.externalId === T.alice).length, 1, 'exactly one alice')
  t.equal(state.users.filter(u => u.externalId === T.bob).length, 1, 'exactly one bob')
  const externalIds = state.groups.map(g => g.externalId)
  t.equal(new Set(externalIds).size, externalIds.length, 'no duplicate groups')
  t.same(databricksNesting(state, request), entraNesting(request))
  t.same(databricksNesting(state, cold), entraNesting(cold))
})

t.test('a fault half-way, then a retry: no duplicates, memberships equal Entra\'s', async t => {
  const env = await scimEnv(t)
  const request = env.request(T.alice)
  // The second group PATCH fails with a 500 (not retried: not a throttle).
  env.db.ctx.faults.add({ route: '/api/2.0/accounts/*/scim/v2/Groups/*', method: 'PATCH', status: 500, skip: 1, times: 1 })
  const failure = await env.target.materialize(request).catch((e: unknown) => e)
  t.type(failure, TargetUnavailableError, 'the failure reaches the caller')
  const partial = await env.state()
  t.not(JSON.stringify(databricksNesting(partial, request)), JSON.stringify(entraNesting(request)), 'left half-done')

  const result = await env.target.materialize(request)
  const state = await env.state()
  t.equal(state.users.length, 1, 'no duplicate user')
  t.equal(state.groups.length, request.groups.length, 'no duplicate group')
  t.same(databricksNesting(state, request), entraNesting(request), 'converged')
  t.equal(result.principalId, state.users[0]?.id)

  // A dropped connection on a create (the client repeats it; a repeat that meets the first create is a 409).
  const bob = env.request(T.bob)
  env.db.ctx.faults.add({ route: '/api/2.0/accounts/*/scim/v2/Groups', method: 'POST', reset: true, times: 1 })
  await env.target.materialize(bob)
  const after = await env.state()
  t.same(databricksNesting(after, bob), entraNesting(bob))
  const externalIds = after.groups.map(g => g.externalId)
  t.equal(new Set(externalIds).size, externalIds.length, 'no duplicate groups')

  // A group deleted out of band: the next write to it (404) makes the adapter read everything again.
  const finance = after.groups.find(g => g.externalId === T.finance)
  await env.db.api('DELETE', `/api/2.0/accounts/${env.client.accountId}/scim/v2/Groups/${finance?.id as string}`)
  const guest = env.request(T.guest) // in Finance
  await env.target.materialize(guest)
  const healed = await env.state()
  t.same(databricksNesting(healed, guest), entraNesting(guest), 'the deleted group is re-created and the nesting restored')
  t.equal(healed.groups.filter(g => g.externalId === T.finance).length, 1)
})

t.test('a 429 storm: completes once it passes, with bounded calls', async t => {
  const env = await scimEnv(t)
  const request = env.request(T.alice)
  env.db.ctx.faults.add({ route: '/api/2.0/accounts/*/scim/v2/Groups/*', method: 'PATCH', status: 429, retryAfter: 0.25, times: 3 })
  const started = Date.now()
  await env.target.materialize(request)
  t.ok(Date.now() - started >= 250, 'Retry-After honoured (a fractional one: short, as waits in tests should be)')
  t.same(databricksNesting(await env.state(), request), entraNesting(request))
  t.equal(env.dbCalls().routes[GROUP_PATCH], 4 + 3, 'four PATCHes (one per parent group) plus three refused ones')

  // A storm longer than the retries: a typed error with Retry-After, no loop; afterwards it completes.
  const bob = env.request(T.bob)
  env.db.ctx.faults.add({ route: '/api/2.0/accounts/*/scim/v2/*', status: 429, retryAfter: 0.05 })
  env.resetCalls()
  const err = await env.target.materialize(bob).catch((e: unknown) => e)
  t.type(err, TargetUnavailableError)
  t.equal((err as TargetUnavailableError).throttled, true)
  t.ok((err as TargetUnavailableError).retryAfterSeconds !== undefined, 'retryAfterSeconds for the caller\'s 503')
  t.ok(env.dbCalls().total <= 4 * 4, `bounded: ${env.dbCalls().total} calls`)
  env.db.ctx.faults.remove()
  await env.target.materialize(bob)
  t.same(databricksNesting(await env.state(), bob), entraNesting(bob))
})

t.test('the 500 REQUEST_LIMIT_EXCEEDED concurrency quirk is throttling: retried, bounded, completes', async t => {
  const env = await scimEnv(t, { rateLimits: true, http: { concurrency: 4 } })
  await env.db.control('PUT', '/rate-limits', { enabled: false, concurrency: { enabled: true, limit: 2, holdMs: 20 } })
  const requests = [env.request(T.alice), env.request(T.bob), env.request(T.guest), env.request(T.etlSp)]
  await Promise.all(requests.map(async r => await env.target.materialize(r)))
  const state = await env.state()
  t.ok((state.rateLimits.refused.concurrency ?? 0) > 0, `the quirk fired: ${JSON.stringify(state.rateLimits.refused)}`)
  for (const r of requests) t.same(databricksNesting(state, r), entraNesting(r), `${r.principal.displayName} converged`)
  const throttledRetries = env.rec.events.filter(e => e.hook === 'retry').length
  t.ok(throttledRetries > 0, `retried ${throttledRetries} times`)
  t.ok(env.dbCalls().total < 200, `bounded (${env.dbCalls().total} calls)`)
})
