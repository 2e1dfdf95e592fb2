// AccountGroupNames against the Databricks emulator over HTTPS (account SCIM): group names as ACLs carry
// them → the Entra object ids the account groups are linked to; case-insensitive names, the cache (TTL and
// the shorter "missing" TTL on an injected clock), coalescing, 50 names per call, a disambiguated name,
// the workspace system groups, names that look like filter syntax, invalidate() during a lookup, and the
// remembered answer for an ACL's names (factsFor).
import t, { type Test } from 'tap'
import { scimEnv, T, type ScimEnv } from '../../helpers/target.ts'
import { createGroup, DEFAULT_WORKSPACE_ID } from '../../helpers/databricks.ts'
import { AccountGroupNames } from '../../../src/target/account-groups.ts'
import { TargetUnavailableError } from '../../../src/target/port.ts'

const LIST = 'GET /api/2.0/accounts/:accountId/scim/v2/Groups'

interface World {
  env: ScimEnv
  clock: { now: () => number, advance: (ms: number) => void }
  names: AccountGroupNames
}

async function world (t: Test): Promise<World> {
  const env = await scimEnv(t)
  await createGroup(env.db.api, 'Finance', { externalId: T.finance })
  await createGroup(env.db.api, 'Engineering', { externalId: T.engineering })
  await createGroup(env.db.api, 'databricks-admins')
  env.resetCalls()
  let now = 1_700_000_000_000
  const clock = { now: () => now, advance: (ms: number) => { now += ms } }
  return { env, clock, names: new AccountGroupNames({ client: env.client, clock }) }
}

const lists = (env: ScimEnv): number => env.dbCalls().routes[LIST] ?? 0

t.test('names → externalIds in one call; case-insensitive; null for unknown, unlinked and system groups', async t => {
  const { env, names } = await world(t)
  const got = await names.externalIds(['Finance', 'ENGINEERING', 'databricks-admins', 'Nobody', 'admins', 'users'])
  t.same([...got], [
    ['Finance', T.finance],
    ['ENGINEERING', T.engineering],
    ['databricks-admins', null],
    ['Nobody', null],
    ['admins', null],
    ['users', null]
  ], 'every name as given, in order')
  t.same(env.dbCalls().routes, { [LIST]: 1 }, 'one list call')

  env.resetCalls()
  t.same([...await names.externalIds(['admins', 'Users'])], [['admins', null], ['Users', null]])
  t.equal(env.dbCalls().total, 0, 'the workspace system groups cost no call')
  t.same([...await names.externalIds([])], [])
  t.equal(env.dbCalls().total, 0)
})

t.test('the cache: hits, the TTL, the shorter TTL of "missing", and concurrent lookups', async t => {
  const { env, clock, names } = await world(t)
  await names.externalIds(['Finance', 'Data Platform'])
  env.resetCalls()
  t.same([...await names.externalIds(['finance', 'Data Platform'])], [['finance', T.finance], ['Data Platform', null]])
  t.equal(env.dbCalls().total, 0, 'both from the cache (the names compare case-insensitively)')

  // The group appears (materialized meanwhile): "missing" is remembered for 30 s only.
  await createGroup(env.db.api, 'Data Platform', { externalId: T.dataPlatform })
  env.resetCalls()
  clock.advance(29_999)
  t.equal((await names.externalIds(['Data Platform'])).get('Data Platform'), null, 'within 30 s: still missing')
  clock.advance(2)
  t.equal((await names.externalIds(['Data Platform'])).get('Data Platform'), T.dataPlatform, 'after 30 s: read again')
  t.equal(lists(env), 1)
  t.equal((await names.externalIds(['Finance'])).get('Finance'), T.finance)
  t.equal(lists(env), 1, 'Finance is still cached (5 min)')
  clock.advance(300_000)
  await names.externalIds(['Finance'])
  t.equal(lists(env), 2, 'after 5 min it is read again')

  names.invalidate()
  env.resetCalls()
  const all = await Promise.all(Array.from({ length: 10 }, async (_, i) => await names.externalIds(i % 2 === 0 ? ['Finance'] : ['Finance', 'Engineering'])))
  t.ok(all.every(m => m.get('Finance') === T.finance))
  t.equal(lists(env), 2, '10 concurrent lookups: one call for Finance, one for Engineering (Finance joined the first)')
  env.resetCalls()
  await Promise.all(Array.from({ length: 10 }, async () => await names.externalIds(['Engineering'])))
  t.equal(env.dbCalls().total, 0)
  names.invalidate()
  await Promise.all(Array.from({ length: 10 }, async () => await names.externalIds(['Engineering'])))
  t.equal(lists(env), 1, 'invalidated: 10 concurrent lookups, one call')
})

t.test('invalidate() during a lookup: its callers get their answer; a lookup after it reads again instead of joining it', async t => {
  const { env, names } = await world(t)
  const before = names.externalIds(['Finance'])
  // E.g. a group was renamed: what the lookup in flight reads may predate it.
  names.invalidate()
  const after = names.externalIds(['Finance'])
  t.equal((await before).get('Finance'), T.finance, 'the lookup in flight answers')
  t.equal((await after).get('Finance'), T.finance)
  t.equal(lists(env), 2, 'the lookup made after invalidate() has its own call')
  await names.externalIds(['Finance'])
  t.equal(lists(env), 2, 'and its answer is cached')
})

t.test('more than 50 names: 50 per call', async t => {
  const { env, names } = await world(t)
  const many = Array.from({ length: 120 }, (_, i) => `Team ${String(i).padStart(3, '0')}`)
  // Half of them exist, linked to made-up object ids.
  for (let i = 0; i < many.length; i += 2) await createGroup(env.db.api, many[i] as string, { externalId: `f0000000-0000-4000-8000-${String(i).padStart(12, '0')}` })
  env.resetCalls()
  const got = await names.externalIds(many)
  t.equal(lists(env), 3, '120 names: 3 calls (50, 50, 20)')
  t.equal(got.size, 120)
  t.ok(many.every((n, i) => got.get(n) === (i % 2 === 0 ? `f0000000-0000-4000-8000-${String(i).padStart(12, '0')}` : null)), 'each name its own answer')
})

t.test('a disambiguated name and names that look like filter syntax', async t => {
  const { env, names } = await world(t)
  // A second Entra "Finance" group, created under a disambiguated name by the SCIM target.
  const other = 'd9000000-0000-4000-8000-000000000009'
  const made = await env.target.materializeGroup(T.tenantId, { id: other, displayName: 'Finance', securityEnabled: true })
  t.equal(made.name, 'Finance (d9000000)')
  const got = await names.externalIds(['Finance', 'Finance (d9000000)', 'x" or displayName sw "', 'F\\"'])
  t.same([...got], [['Finance', T.finance], ['Finance (d9000000)', other], ['x" or displayName sw "', null], ['F\\"', null]], 'quoted names match only themselves')
})

t.test('a failed lookup is not cached: every waiting caller gets the error, the next call reads again', async t => {
  const { env, names } = await world(t)
  env.db.ctx.faults.add({ route: '/api/2.0/accounts/*/scim/v2/Groups', method: 'GET', status: 503, times: 100 })
  // One lookup, and a caller waiting on part of it. (Had the second caller started a lookup of its own, it
  // could still be retrying when both callers have their error, and the call below would join it: on a
  // loaded machine, its last attempt may be answered after the fault is lifted, or before.)
  const results = await Promise.allSettled([names.externalIds(['Finance', 'Engineering']), names.externalIds(['Finance'])])
  t.ok(results.every(r => r.status === 'rejected' && r.reason instanceof TargetUnavailableError), 'both callers: TargetUnavailableError')
  env.db.ctx.faults.remove()
  t.same([...await names.externalIds(['Finance', 'Engineering'])], [['Finance', T.finance], ['Engineering', T.engineering]], 'nothing wrong was remembered')
})

t.test('factsFor: one answer for an ACL\'s names, the same object while every answer it holds stays cached', async t => {
  const { env, clock, names } = await world(t)
  const ws = DEFAULT_WORKSPACE_ID
  const acl = new Set(['Finance', 'Nobody', 'admins'])
  const assigned = new Set(['Engineering'])
  t.equal(names.cachedFacts(ws, acl, assigned), undefined, 'nothing cached yet')
  const facts = await names.factsFor(ws, acl, assigned)
  t.same([...facts.external], [['Finance', T.finance], ['Nobody', null], ['admins', null], ['Engineering', T.engineering]])
  t.same([...facts.local], ['admins'], 'the reserved names always count as the workspace\'s own')
  env.resetCalls()
  t.equal(names.cachedFacts(ws, acl, assigned), facts, 'the same object from memory')
  t.equal(await names.factsFor(ws, acl, assigned), facts)
  t.equal(env.dbCalls().total, 0)
  const otherAssignments = names.cachedFacts(ws, acl, new Set(['Engineering']))
  t.not(otherAssignments, facts, 'other assignments: made again (from the cache)')
  t.same(otherAssignments, facts)
  t.equal(env.dbCalls().total, 0)

  // "Nobody" is remembered as missing for 30 s only: past that, the facts are read again.
  await createGroup(env.db.api, 'Nobody', { externalId: T.dataPlatform })
  clock.advance(30_001)
  t.equal(names.cachedFacts(ws, acl, assigned), undefined, 'one of its answers expired')
  const later = await names.factsFor(ws, acl, assigned)
  t.not(later, facts)
  t.equal(later.external.get('Nobody'), T.dataPlatform, 'the group that appeared is seen')

  names.invalidate()
  t.equal(names.cachedFacts(ws, acl, assigned), undefined, 'invalidate() forgets the remembered facts too')
})
