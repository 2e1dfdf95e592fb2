// Issue 14, one write per identity across replicas: 500 new users sign in at once, each sent to all three
// replicas (1,500 concurrent cold logins, as a load balancer spreading a login hook's retries would). Each
// user's sign-in runs once in the fleet (src/fleet/flights.ts): every login succeeds, every user and group
// exists once in the account, the account receives exactly the writes one replica would make (one create
// per user and group, each membership written once), and Graph is asked for each user's groups once in
// the whole fleet. Then every user signs in again on every replica: the replicas that did not run a user's
// sign-in adopted it, so the 1,500 warm logins make no Graph and no Databricks call at all.
//
// The budgets are raised (the emulator's rate limits off) so the storm takes seconds; the shared budgets
// at Databricks' real limits are budgets.test.ts's subject.
import t from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { recordCalls, startFleet, type Replica } from '../../helpers/fleet.ts'
import { smallTenant } from '../../helpers/tenant.ts'
import { tokenFor } from '../../helpers/service.ts'
import { accountState, control, occurrences } from '../../helpers/registrations.ts'

const USERS = 500
const GROUPS = 30
const GROUPS_PER_USER = 3
const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')
const userIds = Array.from({ length: USERS }, (_, i) => `f9000000-0000-4000-8000-${hex(i, 12)}`)
const groupIds = Array.from({ length: GROUPS }, (_, g) => `fa000000-0000-4000-8000-${hex(g, 12)}`)
// User i is in groups i, i+10 and i+20 (mod 30): three groups each, every group shared by 50 users.
const groupsOf = (i: number): number[] => Array.from({ length: GROUPS_PER_USER }, (_, k) => (i + k * (GROUPS / GROUPS_PER_USER)) % GROUPS)
const base = smallTenant()
const emulator = await startTestEmulator(t, {
  tenants: [{
    ...base,
    users: [...base.users, ...userIds.map((id, i) => ({ id, userPrincipalName: `crowd${i}@contoso-test.onmicrosoft.com`, displayName: `Crowd ${i}` }))],
    groups: [...base.groups, ...groupIds.map((id, g) => ({ id, displayName: `Crowd team ${g}`, members: userIds.filter((_, i) => groupsOf(i).includes(g)) }))]
  }]
})

const graphGroupReads = {
  transitive: recordCalls(emulator, route => route.startsWith('GET /v1.0/users/:id/transitiveMemberOf')),
  direct: recordCalls(emulator, route => route.startsWith('GET /v1.0/users/:id/memberOf'))
}
const databricksCalls = recordCalls(emulator, route => route.includes('/api/2.0/accounts/'))
const graphCalls = recordCalls(emulator, route => route.includes('/v1.0/'))

/** Members written by the replica's coalesced membership PATCHes (its metrics). */
async function membersWritten (r: Replica): Promise<number> {
  const text = await (await fetch(`${r.url}/metrics`)).text()
  return Number(/^databricks_membership_batch_members_sum (\S+)$/m.exec(text)?.[1] ?? 0)
}

async function login (r: Replica, token: string): Promise<number> {
  for (;;) {
    const res = await fetch(`${r.url}/v1/login`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
    await res.arrayBuffer()
    if (res.status !== 503) return res.status
    await new Promise(resolve => setTimeout(resolve, Number(res.headers.get('retry-after') ?? 1) * 1000))
  }
}

await control(emulator, 'PUT', '/databricks/settings', { aimEnabled: false })
await control(emulator, 'PUT', '/databricks/rate-limits', { enabled: false })
const { replicas } = await startFleet(t, emulator, 3, {
  DATABRICKS_HOST: emulator.origin,
  DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
  DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
  DATABRICKS_MODE: 'scim',
  REPLICAS: '3',
  DATABRICKS_SCIM_WRITES_PER_SECOND: '200',
  DATABRICKS_SCIM_PATCHES_PER_SECOND: '100',
  GRAPH_MAX_REQUESTS_PER_SECOND: '1000'
})
const tokens = await Promise.all(userIds.map(async id => await tokenFor(emulator, id)))

t.test('1,500 concurrent cold logins: one sign-in per user in the fleet', async t => {
  for (const times of [graphGroupReads.transitive, graphGroupReads.direct, databricksCalls]) times.length = 0
  const statuses = await Promise.all(tokens.flatMap(token => replicas.map(async r => await login(r, token))))
  t.same([...new Set(statuses)], [200], `all ${statuses.length} logins get in`)

  const state = await accountState(emulator)
  const seen = occurrences(state)
  for (const g of state.groups) if (g.externalId !== null) seen.set(g.externalId, (seen.get(g.externalId) ?? 0) + 1)
  t.equal(userIds.filter(id => seen.get(id) === 1).length, USERS, 'every user exists once')
  t.equal(groupIds.filter(id => seen.get(id) === 1).length, GROUPS, 'every group exists once')

  const { routes } = emulator.ctx.calls.snapshot()
  const count = (prefix: string): number => Object.entries(routes).filter(([route]) => route.startsWith(prefix)).reduce((sum, [, n]) => sum + n, 0)
  t.equal(count('POST /api/2.0/accounts/:accountId/scim/v2/Users'), USERS, 'one user create per user')
  t.equal(count('POST /api/2.0/accounts/:accountId/scim/v2/Groups'), GROUPS, 'one group create per group')
  const members = (await Promise.all(replicas.map(membersWritten))).reduce((a, b) => a + b, 0)
  t.equal(members, USERS * GROUPS_PER_USER, 'each membership written once')
  t.equal(graphGroupReads.transitive.length, USERS, 'Graph asked once per user for its groups, in the whole fleet')
  t.equal(graphGroupReads.direct.length, USERS, 'and once for its direct groups')
})

t.test('then every user again on every replica: all warm, no upstream call', async t => {
  graphCalls.length = 0
  databricksCalls.length = 0
  const statuses = await Promise.all(tokens.flatMap(token => replicas.map(async r => await login(r, token))))
  t.same([...new Set(statuses)], [200], `all ${statuses.length} logins get in`)
  t.equal(graphCalls.length, 0, 'no Graph call')
  t.equal(databricksCalls.length, 0, 'no Databricks call')
})
