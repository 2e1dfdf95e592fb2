// Issue 14, shared budgets: the Databricks write budgets hold for the fleet, not per replica. The same storm
// of first logins (each user sent to every replica at once) under the emulator's default account SCIM limits
// (POST 5/s, PATCH 2/s, token buckets of one second's burst), first through one replica, then through three
// (child processes running src/server.ts, sharing the real Redis): three replicas are refused no more often
// than one (Databricks' own 429 count), and within any second the fleet's writes stay within what
// Databricks' bucket allows. Without the shared budget, three replicas would write at three times the rate.
import t, { type Test } from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { busiestSecond, recordCalls, startFleet, type Replica } from '../../helpers/fleet.ts'
import { smallTenant } from '../../helpers/tenant.ts'
import { tokenFor } from '../../helpers/service.ts'
import { accountState, control, occurrences } from '../../helpers/registrations.ts'

const USERS = 12
const GROUPS = 3
const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')
const userIds = Array.from({ length: USERS }, (_, i) => `f7000000-0000-4000-8000-${hex(i, 12)}`)
const groupIds = Array.from({ length: GROUPS }, (_, g) => `f8000000-0000-4000-8000-${hex(g, 12)}`)
const base = smallTenant()
const emulator = await startTestEmulator(t, {
  tenants: [{
    ...base,
    users: [...base.users, ...userIds.map((id, i) => ({ id, userPrincipalName: `fleet${i}@contoso-test.onmicrosoft.com`, displayName: `Fleet ${i}` }))],
    groups: [...base.groups, ...groupIds.map((id, g) => ({ id, displayName: `Fleet team ${g}`, members: userIds.filter((_, i) => i % GROUPS !== g) }))]
  }]
})
const LIMITS = { write: 5, patch: 2 }

// Every SCIM write the emulator answers, with when it came, per family.
const isWrite = (route: string): boolean => route.includes('/scim/v2/') && /^(POST|PATCH|PUT|DELETE) /.test(route)
const writes = {
  write: recordCalls(emulator, route => isWrite(route) && !route.startsWith('PATCH ')),
  patch: recordCalls(emulator, route => isWrite(route) && route.startsWith('PATCH '))
}

/** Every user signs in through every replica at once; a 503 is retried after its Retry-After. */
async function storm (t: Test, replicas: Replica[]): Promise<{ refused: number, writes: number }> {
  await control(emulator, 'POST', '/databricks/reset')
  await control(emulator, 'PUT', '/databricks/settings', { aimEnabled: false })
  await control(emulator, 'PUT', '/databricks/rate-limits', { enabled: true })
  writes.write.length = 0
  writes.patch.length = 0
  const tokens = await Promise.all(userIds.map(async id => await tokenFor(emulator, id)))
  const login = async (r: Replica, token: string): Promise<number> => {
    for (;;) {
      const res = await fetch(`${r.url}/v1/login`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
      await res.arrayBuffer()
      if (res.status !== 503) return res.status
      await new Promise(resolve => setTimeout(resolve, Number(res.headers.get('retry-after') ?? 1) * 1000))
    }
  }
  const statuses = await Promise.all(tokens.flatMap(token => replicas.map(async r => await login(r, token))))
  t.same([...new Set(statuses)], [200], `all ${statuses.length} logins get in`)
  const state = await accountState(emulator)
  const seen = occurrences(state)
  for (const g of state.groups) if (g.externalId !== null) seen.set(g.externalId, (seen.get(g.externalId) ?? 0) + 1)
  t.ok([...userIds, ...groupIds].every(id => seen.get(id) === 1), 'every user and group exists once')
  for (const family of ['write', 'patch'] as const) {
    const most = busiestSecond(writes[family])
    // Databricks' bucket holds one second's worth: within any second, at most that plus what refills.
    t.ok(most <= 2 * LIMITS[family], `${family}s: at most ${most} within any second (limit ${LIMITS[family]}/s, a burst of ${LIMITS[family]})`)
  }
  return { refused: state.rateLimits.refused.throttled, writes: writes.write.length + writes.patch.length }
}

const databricks = { DATABRICKS_HOST: emulator.origin, DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID, DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT, DATABRICKS_MODE: 'scim' }
const results: { one?: { refused: number, writes: number }, three?: { refused: number, writes: number } } = {}

t.test('the storm through one replica', async t => {
  const { replicas } = await startFleet(t, emulator, 1, databricks)
  results.one = await storm(t, replicas)
})

t.test('the same storm through three replicas: refused no more often than one, within the budget', async t => {
  const { replicas } = await startFleet(t, emulator, 3, { ...databricks, REPLICAS: '3' })
  results.three = await storm(t, replicas)
  const { one, three } = results
  t.ok(one !== undefined && three !== undefined && three.refused <= one.refused, `Databricks refused ${three?.refused ?? '?'} writes of three replicas, ${one?.refused ?? '?'} of one`)
})
