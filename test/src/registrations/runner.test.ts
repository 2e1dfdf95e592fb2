// The runner through outages: Databricks or Graph failing for a while (items and listings retried, never
// lost), failing for good (recorded as UPSTREAM_UNAVAILABLE after the bounded attempts), a close during a
// backoff (the job is checkpointed and a new runner finishes it), and groups that vanish or are too large.
// Built from the real parts (the service's resolver, a Databricks client with quick retries, the AIM
// target), with a short backoff so outages pass in milliseconds.
import t from 'tap'
import type { Test } from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { startService } from '../../helpers/service.ts'
import { QUICK } from '../../helpers/target.ts'
import { T } from '../../helpers/tenant.ts'
import { bigGroupTenant } from '../../helpers/registrations.ts'
import { UpstreamClient } from '../../../src/upstream/client.ts'
import { DatabricksClient } from '../../../src/target/databricks-client.ts'
import { DatabricksAimTarget } from '../../../src/target/aim.ts'
import { WorkspaceAssignments } from '../../../src/target/assignments.ts'
import { Materializer } from '../../../src/resolver/materializer.ts'
import { RegistrationRunner, type RegistrationRunnerOptions } from '../../../src/registrations/runner.ts'
import { FileJobStore } from '../../../src/registrations/store.ts'
import type { RegistrationJob } from '../../../src/registrations/job.ts'

// 10,001 members in one group: one more than a job takes.
const { fixture, root } = bigGroupTenant(10_001, 1, 1)
const emulator = await startTestEmulator(t, { tenants: [fixture] })
const { ctx } = emulator
const USER_RESOLVE = '/api/2.0/identity/accounts/*/users/resolve-by-external-id'

async function runnerFor (t: Test, options: Partial<RegistrationRunnerOptions> = {}): Promise<RegistrationRunner> {
  const { resolver } = await startService(t, emulator)
  const http = new UpstreamClient({ name: 'databricks', ca: emulator.ca, concurrency: 4, ...QUICK })
  const client = new DatabricksClient({ host: emulator.origin, accountId: DEFAULT_ACCOUNT_ID, token: DATABRICKS_ADMIN_PAT, http, maxThrottleRetries: 1 })
  t.teardown(async () => { await client.close(); await http.close() })
  const materializer = new Materializer(resolver, new DatabricksAimTarget({ client }), new WorkspaceAssignments({ client }))
  const runner = new RegistrationRunner({
    // t.testdir() empties the test's directory: only when the test brings no store of its own.
    store: options.store ?? new FileJobStore(t.testdir()),
    resolver,
    materializer,
    clock: { now: () => Date.now() },
    concurrency: 4,
    maxAttempts: 3,
    backoffBaseMs: 5,
    backoffMaxMs: 20,
    ...options
  })
  t.teardown(async () => { await runner.close() })
  return runner
}

async function until (runner: RegistrationRunner, id: string, done: (job: RegistrationJob) => boolean = job => job.status === 'completed' || job.status === 'failed'): Promise<RegistrationJob> {
  for (;;) {
    const job = await runner.get(id)
    if (job !== undefined && done(job)) return structuredClone(job)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

const principals = (...ids: string[]): Array<{ query: { id: string } }> => ids.map(id => ({ query: { id } }))

t.test('an outage that passes: the item is retried and registered', async t => {
  const runner = await runnerFor(t)
  // Four answers per attempt (one try and three retries of the client): two attempts fail, the third passes.
  ctx.faults.add({ route: USER_RESOLVE, status: 503, retryAfter: 0, times: 8 })
  t.teardown(() => ctx.faults.remove())
  const job = await runner.submit({ tenantId: T.tenantId, requestedBy: T.etlSp, source: { kind: 'principals' }, items: principals(T.bob) })
  const done = await until(runner, job.id)
  t.equal(done.status, 'completed')
  t.match(done.items[0], { state: 'registered', attempts: 2 })
  t.ok(done.items[0]?.databricksId !== undefined)
})

t.test('an outage that stays: UPSTREAM_UNAVAILABLE after the bounded attempts, the other items go on', async t => {
  const runner = await runnerFor(t)
  ctx.faults.add({ route: '^/api/2\\.0/identity/accounts/[^/]+/service-principals/resolve-by-external-id$', status: 503, retryAfter: 0 })
  t.teardown(() => ctx.faults.remove())
  const job = await runner.submit({ tenantId: T.tenantId, requestedBy: T.etlSp, source: { kind: 'principals' }, items: principals(T.etlSp, T.alice) })
  const done = await until(runner, job.id)
  t.equal(done.status, 'completed', 'per-principal failures do not fail the job')
  t.match(done.items[0], { state: 'failed', attempts: 3, failure: { code: 'UPSTREAM_UNAVAILABLE', message: /through 3 attempts/ } })
  t.match(done.items[1], { state: 'registered' })
})

t.test('close during a backoff: checkpointed, and a new runner on the store finishes the job', async t => {
  const dir = t.testdir()
  const runner = await runnerFor(t, { store: new FileJobStore(dir), backoffBaseMs: 60_000, backoffMaxMs: 60_000 })
  const fault = ctx.faults.add({ route: USER_RESOLVE, status: 503 })
  const job = await runner.submit({ tenantId: T.tenantId, requestedBy: T.etlSp, source: { kind: 'principals' }, items: principals(T.alice, T.guest) })
  await until(runner, job.id, j => j.items.every(i => i.attempts >= 1))
  // The wait of a minute is cut short: close returns as soon as nothing is in flight.
  await runner.close()
  ctx.faults.remove(fault.id)
  const stored = await new FileJobStore(dir).get(job.id)
  t.match(stored, { status: 'running', items: [{ state: 'pending', attempts: 1 }, { state: 'pending', attempts: 1 }] })
  await t.rejects(runner.submit({ tenantId: T.tenantId, requestedBy: T.etlSp, source: { kind: 'principals' }, items: principals(T.bob) }), { code: 'SHUTTING_DOWN', statusCode: 503 })

  const next = await runnerFor(t, { store: new FileJobStore(dir) })
  t.equal(await next.resume(), 1)
  t.match(await until(next, job.id), { status: 'completed', items: [{ state: 'registered' }, { state: 'registered' }] })
})

t.test('a Graph outage while listing: the listing is retried', async t => {
  const runner = await runnerFor(t)
  ctx.faults.add({ route: '/v1.0/groups/*/transitiveMembers/*', status: 503, retryAfter: 0, times: 4 })
  t.teardown(() => ctx.faults.remove())
  const job = await runner.submit({ tenantId: T.tenantId, requestedBy: T.etlSp, source: { kind: 'group', groupId: T.engineering } })
  t.match(await until(runner, job.id), { status: 'completed', items: [{ state: 'registered' }, { state: 'registered' }, { state: 'registered' }] })
})

t.test('a group that is gone, or too large, fails the job with a code saying so', async t => {
  const runner = await runnerFor(t)
  const gone = await runner.submit({ tenantId: T.tenantId, requestedBy: T.etlSp, source: { kind: 'group', groupId: '99999999-9999-4999-8999-999999999999' } })
  t.match(await until(runner, gone.id), { status: 'failed', error: { code: 'GROUP_NOT_FOUND' }, items: [] })
  const large = await runner.submit({ tenantId: T.tenantId, requestedBy: T.etlSp, source: { kind: 'group', groupId: root } })
  const failed = await until(runner, large.id)
  t.match(failed, { status: 'failed', error: { code: 'GROUP_TOO_LARGE', message: /10001 users and service principals; a registration takes at most 10000/ } })
  t.ok(failed.finishedAt !== undefined)
})

t.test('a Graph outage that outlasts the attempts while listing fails the job', async t => {
  const runner = await runnerFor(t)
  ctx.faults.add({ route: '/v1.0/groups/*/transitiveMembers/*', status: 503, retryAfter: 0 })
  t.teardown(() => ctx.faults.remove())
  const job = await runner.submit({ tenantId: T.tenantId, requestedBy: T.etlSp, source: { kind: 'group', groupId: T.finance } })
  t.match(await until(runner, job.id), { status: 'failed', error: { code: 'UPSTREAM_UNAVAILABLE' } })
})
