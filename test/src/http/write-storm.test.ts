// A storm of first logins under Databricks' account SCIM limits (the emulator's defaults: POST 5/s,
// PATCH 2/s), as a login hook sees it on a Monday morning: every new user gets in, membership writes are
// coalesced per group across users, nobody is created twice, a caller past its deadline gets 503 with a
// Retry-After that reflects its place in the write queue (never a reset socket), and its retry is answered
// without a new write. And a running registration job does not stand in front of a login.
import t from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'
import { accountState, adminToken, control, postRegistration } from '../../helpers/registrations.ts'

const USERS = 24
const GROUPS = 4
const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')
const userIds = Array.from({ length: USERS }, (_, i) => `f3000000-0000-4000-8000-${hex(i, 12)}`)
const groupIds = Array.from({ length: GROUPS }, (_, g) => `f1000000-0000-4000-8000-${hex(g, 12)}`)
// Each user in 3 of the 4 groups: 72 memberships, 36 s of PATCHes at 2/s if each were its own.
const base = smallTenant()
const REGISTERED = 60
const registeredIds = Array.from({ length: REGISTERED }, (_, i) => `f5000000-0000-4000-8000-${hex(i, 12)}`)
const fixture = {
  ...base,
  users: [
    ...base.users,
    ...userIds.map((id, i) => ({ id, userPrincipalName: `storm${i}@contoso-test.onmicrosoft.com`, displayName: `Storm ${i}` })),
    ...registeredIds.map((id, i) => ({ id, userPrincipalName: `batch${i}@contoso-test.onmicrosoft.com`, displayName: `Batch ${i}` }))
  ],
  groups: [
    ...base.groups,
    ...groupIds.map((id, g) => ({ id, displayName: `Storm team ${g}`, members: userIds.filter((_, i) => i % GROUPS !== g) })),
    { id: 'f6000000-0000-4000-8000-000000000000', displayName: 'Batch', members: registeredIds }
  ]
}
const emulator = await startTestEmulator(t, { tenants: [fixture] })

const env = {
  DATABRICKS_HOST: emulator.origin,
  DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
  DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
  DATABRICKS_MODE: 'scim'
}

async function fresh (): Promise<void> {
  await control(emulator, 'POST', '/databricks/reset')
  await control(emulator, 'PUT', '/databricks/settings', { aimEnabled: false })
  await control(emulator, 'PUT', '/databricks/rate-limits', { enabled: true })
  emulator.ctx.calls.reset()
}

function writes (): { posts: number, patches: number, groupPatches: number } {
  const routes = emulator.ctx.calls.snapshot().routes as Record<string, number>
  let posts = 0
  let patches = 0
  let groupPatches = 0
  for (const [route, n] of Object.entries(routes)) {
    if (!route.includes('/scim/v2/')) continue
    if (route.startsWith('POST ')) posts += n
    if (route.startsWith('PATCH ')) patches += n
    if (route.startsWith('PATCH ') && route.includes('/Groups')) groupPatches += n
  }
  return { posts, patches, groupPatches }
}

async function until (what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    if (await check()) return
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`never: ${what}`)
}

t.test(`${USERS} first logins at once: all get in, coalesced memberships, no duplicate, 503s that say how long`, async t => {
  await fresh()
  // Creates at 1 a second and a 5 s deadline: 28 creates take about 28 s, so however slowly a loaded
  // machine reaches them, the later callers are still queued for their create at their deadline.
  const { app } = await startService(t, emulator, { ...env, REQUEST_TIMEOUT_MS: '5000', DATABRICKS_SCIM_WRITES_PER_SECOND: '1' })
  const tokens = await Promise.all(userIds.map(async id => await tokenFor(emulator, id)))
  const login = async (token: string) => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  // The first user signs in twice while queued.
  const answers = await Promise.all([...tokens, tokens[0] as string].map(login))

  for (const a of answers) t.ok(a.statusCode === 200 || (a.statusCode === 503 && a.json().code === 'DEADLINE_EXCEEDED'), `200, or 503 at the deadline (${a.statusCode} ${a.json().code ?? ''})`)
  const late = answers.filter(a => a.statusCode === 503)
  t.ok(late.length > 0, `some callers were still queued at their deadline (${late.length})`)
  const retryAfters = late.map(a => Number(a.headers['retry-after']))
  t.ok(retryAfters.every(s => Number.isInteger(s) && s >= 1), `every 503 has a Retry-After (${retryAfters.join(', ')})`)
  t.ok(Math.max(...retryAfters) > 1, 'the later ones are told their place in the queue, not a flat second')

  // The work goes on after the 503s: every user and every membership lands.
  await until('every storm user and membership is in the account', async () => {
    const s = await accountState(emulator)
    const inAccount = userIds.filter(id => s.users.some(u => u.externalId === id))
    const memberships = (s.groups as Array<{ externalId: string | null, members?: unknown[] }>).filter(g => groupIds.includes(g.externalId ?? '')).reduce((n, g) => n + (g.members?.length ?? 0), 0)
    return inAccount.length === USERS && memberships === USERS * (GROUPS - 1)
  })
  const state = await accountState(emulator)
  for (const id of userIds) t.equal(state.users.filter(u => u.externalId === id).length, 1, `${id} created once`)
  const done = writes()
  const refused = state.rateLimits.refused.throttled
  t.ok(done.posts >= USERS + GROUPS && done.posts <= USERS + GROUPS + refused, `one create per user and per group, and only a refused one repeated: the user who signed in twice held one place (${JSON.stringify(done)}, ${refused} refused)`)
  t.ok(done.groupPatches < (USERS * (GROUPS - 1)) / 3, `membership writes coalesced per group: ${done.groupPatches} PATCHes for ${USERS * (GROUPS - 1)} memberships`)
  t.ok(refused <= (done.posts + done.patches) / 10, `the scheduler paced the writes within the limits: ${refused} of ${done.posts + done.patches} refused`)

  // The retries: answered from what the work produced, no new write.
  const retried = await Promise.all(tokens.map(login))
  t.same([...new Set(retried.map(a => a.statusCode))], [200], 'every retry gets in')
  t.same(writes(), done, 'and writes nothing')
})

t.test('a running registration job does not stand in front of a login', async t => {
  await fresh()
  const { app } = await startService(t, emulator, { ...env, REGISTRATIONS_CONCURRENCY: '8' })
  const admin = await adminToken(emulator)
  const posted = await postRegistration(app, admin, { principals: registeredIds })
  t.equal(posted.status, 202)
  // Until the job's writes have the budget queued up.
  await until('the job is writing', async () => writes().posts >= 3)

  const login = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, userIds[5] as string)}` } })
  t.equal(login.statusCode, 200, 'the new user gets in')
  const job = await app.inject({ method: 'GET', url: `/v1/registrations/${String(posted.json.id)}`, headers: { authorization: `Bearer ${admin}` } })
  t.ok(job.json().registered < REGISTERED, `while the job is still running (${String(job.json().registered)} of ${REGISTERED} registered): the login's writes went first`)
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /databricks_write_wait_seconds_count\{family="write",priority="background"\} [1-9]/, 'background writes waited in their lane')
  t.match(metrics.body, /databricks_write_queue_depth\{family="write",priority="background"\} \d+/)
  t.match(metrics.body, /databricks_membership_batch_members_count [1-9]/)
  await until('the job finishes', async () => {
    const j = await app.inject({ method: 'GET', url: `/v1/registrations/${String(posted.json.id)}`, headers: { authorization: `Bearer ${admin}` } })
    return j.json().status === 'completed'
  })
})

t.test('Databricks down, then throttling, in the middle of a storm: 503s with Retry-After, then everyone gets in exactly once', async t => {
  await fresh()
  const { app } = await startService(t, emulator, { ...env, REQUEST_TIMEOUT_MS: '3000' })
  const some = userIds.slice(0, 8)
  const tokens = await Promise.all(some.map(async id => await tokenFor(emulator, id)))
  const login = async (token: string) => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })

  await control(emulator, 'POST', '/faults', { route: '/api/2.0/accounts/*/scim/v2/*', status: 503 })
  const down = await Promise.all(tokens.map(login))
  t.same([...new Set(down.map(a => a.statusCode))], [503], 'every caller gets a 503 while Databricks is down')
  t.ok(down.every(a => Number(a.headers['retry-after']) >= 1), 'each with a Retry-After')
  t.ok(down.every(a => String(a.headers['content-type']).startsWith('application/problem+json')), 'as problem+json')

  // Back, but throttling every write for a moment: the lanes pause and retry, never loop.
  await control(emulator, 'DELETE', '/faults')
  await control(emulator, 'POST', '/faults', { route: '/api/2.0/accounts/*/scim/v2/*', method: 'POST', status: 429, retryAfter: 0.2, times: 6 })
  emulator.ctx.calls.reset()
  for (let round = 0; round < 60; round++) {
    const answers = await Promise.all(tokens.map(login))
    if (answers.every(a => a.statusCode === 200)) break
    t.ok(answers.every(a => a.statusCode === 200 || a.statusCode === 503), 'meanwhile 200 or 503, nothing else')
    await new Promise(resolve => setTimeout(resolve, 1000))
  }
  const state = await accountState(emulator)
  for (const id of some) t.equal(state.users.filter(u => u.externalId === id).length, 1, `${id} in the account exactly once`)
  const done = writes()
  t.ok(done.posts <= some.length + GROUPS + 6, `creates bounded: ${done.posts} POSTs (${some.length} users, ${GROUPS} groups, 6 refused)`)
  const again = await Promise.all(tokens.map(login))
  t.same([...new Set(again.map(a => a.statusCode))], [200])
  t.same(writes(), done, 'once in, a login writes nothing')
})
