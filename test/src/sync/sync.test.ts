// The Entra change feed end to end, SCIM mode: a change made in the emulated tenant after a principal
// signed in reaches the emulated Databricks account within one round, without the principal passing
// through the service again; the caches follow; Databricks-only objects never change; and no change is
// lost across a restart, a Databricks outage during apply, or an expired cursor.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { tokenFor } from '../../helpers/service.ts'
import { groupOf, round, syncDir, syncHarness, userOf } from '../../helpers/sync.ts'

const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
const { tenant, control, scim, account, start, login, freshAccount } = syncHarness(emulator)

t.test('a user disabled in Entra is inactive in Databricks after one round, and refused at once; re-enabled, active again', async t => {
  await freshAccount()
  const { service, first } = await start(t, syncDir(t))
  t.teardown(service.close)
  t.same(first.reconciled.map(r => r.reason), ['no-cursor', 'no-cursor', 'no-cursor'], 'the first round starts every kind from now')
  t.equal((await login(service, T.alice)).statusCode, 200, 'alice signs in and is materialized')
  const token = await tokenFor(emulator, T.alice)
  t.equal(userOf(await account(), T.alice)?.active, true)

  tenant().updateUser(T.alice, { accountEnabled: false })
  const report = await round(service)
  t.equal(report.read.user, 1, 'one user change read')
  t.equal(report.applied.deactivated, 1, 'alice deactivated')
  t.ok(report.stalenessBoundSeconds !== undefined && report.stalenessBoundSeconds >= 0, 'the round says how stale its changes could have been')
  const metrics = (await service.app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /^sync_staleness_seconds_count 1$/m, 'and the staleness histogram counts the change')
  t.match(metrics, /^sync_changes_applied_total\{effect="deactivated"\} 1$/m)
  t.equal(userOf(await account(), T.alice)?.active, false, 'Databricks shows alice inactive without her signing in')
  const refused = await service.app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  t.equal(refused.statusCode, 403, 'her still-valid token is refused at once (not after the cache TTL)')
  t.equal(refused.json().code, 'PRINCIPAL_DISABLED')

  tenant().updateUser(T.alice, { accountEnabled: true })
  t.equal((await round(service)).applied.activated, 1)
  t.equal(userOf(await account(), T.alice)?.active, true, 'active again')

  const quiet = await round(service)
  t.same(quiet.applied, {}, 'a round with no change writes nothing')
  t.same(quiet.errors, [])
})

t.test('memberships follow Entra: a user removed from a group, a group un-nested; Databricks-only groups untouched', async t => {
  await freshAccount()
  const { service } = await start(t, syncDir(t))
  t.teardown(service.close)
  t.equal((await login(service, T.alice)).statusCode, 200)
  // A Databricks-only group holding alice, and Data Platform inside it: never the service's to change.
  const before = await account()
  const alice = userOf(before, T.alice)
  const dataPlatform = groupOf(before, T.dataPlatform)
  const engineering = groupOf(before, T.engineering)
  if (alice === undefined || dataPlatform === undefined || engineering === undefined) throw new Error('not materialized')
  t.ok(alice.groups.some(g => g.id === dataPlatform.id), 'alice ∈ Data Platform in Databricks')
  t.ok(dataPlatform.groups.some(g => g.id === engineering.id), 'Data Platform ⊂ Engineering in Databricks')
  const local = await scim('POST', '/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Databricks Only', members: [{ value: alice.id }, { value: dataPlatform.id }] })

  tenant().removeMember(T.dataPlatform, T.alice)
  tenant().removeMember(T.engineering, T.dataPlatform)
  const report = await round(service)
  t.equal(report.applied.membershipRemoved, 2, 'two memberships removed')
  const after = await account()
  t.notOk(userOf(after, T.alice)?.groups.some(g => g.id === dataPlatform.id), 'alice no longer in Data Platform')
  t.notOk(groupOf(after, T.dataPlatform)?.groups.some(g => g.id === engineering.id), 'Data Platform no longer in Engineering')
  const kept = after.groups.find(g => g.id === local.id)
  t.same(kept?.members.map(m => m.id).sort(), [alice.id, dataPlatform.id].sort(), 'the Databricks-only group keeps its members')

  // The caches followed: alice's groups are read again, without Data Platform.
  const me = await login(service, T.alice)
  t.equal(me.statusCode, 200)
  t.notOk(me.json().groups.some((g: { id: string }) => g.id === T.dataPlatform), 'her next login no longer lists Data Platform')

  // Added back in Entra: written again, since both are in the account.
  tenant().addMember(T.dataPlatform, T.alice)
  const readded = await round(service)
  t.equal(readded.applied.membershipAdded, 1, JSON.stringify(readded))
  t.ok(userOf(await account(), T.alice)?.groups.some(g => g.id === dataPlatform.id), 'alice back in Data Platform')
})

t.test('a principal never materialized is left alone; it arrives at its first use', async t => {
  await freshAccount()
  const { service } = await start(t, syncDir(t))
  t.teardown(service.close)
  tenant().updateUser(T.bob, { displayName: 'Bob B. Brown' })
  tenant().addMember(T.finance, T.alice)
  const report = await round(service)
  t.same(report.errors, [])
  t.notOk(userOf(await account(), T.bob), 'bob was not created by the feed')
  t.equal((await account()).users.length, 0, 'nobody was created')
  tenant().updateUser(T.bob, { displayName: 'Bob Brown' })
  tenant().removeMember(T.finance, T.alice)
})

t.test('a restart resumes from the stored cursor: changes made while it was down are applied, once', async t => {
  await freshAccount()
  const dir = syncDir(t)
  const first = await start(t, dir)
  t.equal((await login(first.service, T.bob)).statusCode, 200)
  await first.service.close()

  tenant().removeMember(T.finance, T.bob)
  const second = await start(t, dir)
  t.teardown(second.service.close)
  t.same(second.first.reconciled, [], 'no reconcile: the cursors were found')
  t.equal(second.first.applied.membershipRemoved, 1, 'the change made while it was down is applied')
  const finance = groupOf(await account(), T.finance)
  t.notOk(finance?.members.some(m => m.externalId === T.bob), 'bob is out of Finance')
  const again = await round(second.service)
  t.same(again.applied, {}, 'and not applied again')
  tenant().addMember(T.finance, T.bob)
})

t.test('a Databricks outage during apply loses nothing: the round fails, the next one applies the change', async t => {
  await freshAccount()
  const { service } = await start(t, syncDir(t))
  t.teardown(service.close)
  t.equal((await login(service, T.alice)).statusCode, 200)
  await control('POST', '/faults', { route: '/api/2.0/accounts/*/scim/v2/Users*', status: 503 })
  tenant().updateUser(T.alice, { accountEnabled: false })
  const failed = await round(service)
  t.equal(failed.errors.length, 1, 'the user feed failed')
  t.equal(failed.errors[0]?.kind, 'user')
  t.equal(userOf(await account(), T.alice)?.active, true, 'nothing written yet')
  await control('DELETE', '/faults')
  const applied = await round(service)
  t.equal(applied.applied.deactivated, 1, 'the same change, read again from the old cursor, is applied')
  t.equal(userOf(await account(), T.alice)?.active, false)
  tenant().updateUser(T.alice, { accountEnabled: true })
})

t.test('a throttled write waits out Retry-After within the round: the change is applied, no error', async t => {
  await freshAccount()
  const { service } = await start(t, syncDir(t))
  t.teardown(service.close)
  t.equal((await login(service, T.alice)).statusCode, 200)
  // More 429s than the HTTP client's own 4 attempts: the round itself must wait and try again.
  await control('POST', '/faults', { route: '/api/2.0/accounts/*/scim/v2/Users/*', method: 'PATCH', status: 429, retryAfter: 0.1, times: 6 })
  tenant().updateUser(T.alice, { accountEnabled: false })
  const report = await round(service)
  t.same(report.errors, [], 'throttling is waited out, not reported as a failure')
  t.equal(report.applied.deactivated, 1)
  t.equal(userOf(await account(), T.alice)?.active, false)
  const faults = await control('GET', '/faults') as { faults: Array<{ matched: number }> }
  t.ok((faults.faults[0]?.matched ?? 0) >= 6, 'every throttled attempt reached Databricks before the write went through')
  await control('DELETE', '/faults')
  tenant().updateUser(T.alice, { accountEnabled: true })
  await round(service)
})

t.test('a round that failed part-way keeps what it applied: the next round writes only the rest', async t => {
  await freshAccount()
  const { service } = await start(t, syncDir(t))
  t.teardown(service.close)
  t.equal((await login(service, T.alice)).statusCode, 200)
  t.equal((await login(service, T.bob)).statusCode, 200)
  const bobId = userOf(await account(), T.bob)?.id ?? ''
  await control('POST', '/faults', { route: `/api/2.0/accounts/*/scim/v2/Users/${bobId}`, method: 'PATCH', status: 503 })
  tenant().updateUser(T.alice, { accountEnabled: false })
  tenant().updateUser(T.bob, { accountEnabled: false })
  const failed = await round(service)
  t.equal(failed.errors.length, 1, 'the user feed failed on bob')
  const during = await account()
  t.equal(userOf(during, T.alice)?.active, false, 'alice was applied')
  t.equal(userOf(during, T.bob)?.active, true, 'bob was not')

  await control('DELETE', '/faults')
  await control('DELETE', '/calls')
  const resumed = await round(service)
  t.same(resumed.errors, [])
  t.equal(resumed.read.user, 2, 'both changes are read again from the old cursor')
  t.equal(resumed.applied.appliedEarlier, 1, "alice's change is known to be applied")
  t.equal(resumed.applied.deactivated, 1, 'bob is deactivated')
  t.notOk('unchanged' in resumed.applied, 'alice is not even read again')
  const calls = await control('GET', '/calls') as { routes: Record<string, number> }
  const userPatches = Object.entries(calls.routes).filter(([route]) => route.startsWith('PATCH ') && route.includes('/Users')).reduce((n, [, c]) => n + c, 0)
  t.equal(userPatches, 1, 'one PATCH: bob')
  t.equal(userOf(await account(), T.bob)?.active, false)

  tenant().updateUser(T.alice, { accountEnabled: true })
  tenant().updateUser(T.bob, { accountEnabled: true })
  t.equal((await round(service)).applied.activated, 2, 'a later change to an object applied earlier is applied again')
})

t.test('an expired cursor (410) makes a full reconcile of what was materialized, then the feed resumes', async t => {
  await freshAccount()
  const { service } = await start(t, syncDir(t))
  t.teardown(service.close)
  t.equal((await login(service, T.alice)).statusCode, 200)
  tenant().updateUser(T.alice, { accountEnabled: false })
  tenant().removeMember(T.engineering, T.dataPlatform)
  // Graph forgets the change log: every stored cursor is now too old.
  tenant().truncateLog()
  const report = await round(service)
  t.same(report.reconciled.map(r => r.reason), ['cursor-expired', 'cursor-expired', 'cursor-expired'])
  t.same(report.errors, [])
  const s = await account()
  t.equal(userOf(s, T.alice)?.active, false, 'the reconcile found alice disabled')
  t.notOk(groupOf(s, T.dataPlatform)?.groups.some(g => g.externalId === T.engineering), 'and Data Platform out of Engineering')
  tenant().updateUser(T.alice, { accountEnabled: true })
  tenant().addMember(T.engineering, T.dataPlatform)
  const resumed = await round(service)
  t.same(resumed.reconciled, [], 'the feed resumed from its new cursors')
  t.equal(resumed.applied.activated, 1)
})

t.test('GET /v1/sync: Identity.Admin only, the caller\'s tenant only', async t => {
  await freshAccount()
  const { service } = await start(t, syncDir(t))
  t.teardown(service.close)
  const user = await service.app.inject({ method: 'GET', url: '/v1/sync', headers: { authorization: `Bearer ${await tokenFor(emulator, T.alice)}` } })
  t.equal(user.statusCode, 403)
  t.equal(user.json().code, 'MISSING_ROLE')
  const admin = await tokenFor(emulator, T.etlSp, { claims: { roles: ['Identity.Admin'] } })
  const res = await service.app.inject({ method: 'GET', url: '/v1/sync', headers: { authorization: `Bearer ${admin}` } })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(body.enabled, true)
  t.equal(body.intervalSeconds, 3600)
  t.same(body.cursors.map((c: { kind: string }) => c.kind).sort(), ['group', 'servicePrincipal', 'user'])
  t.ok(body.lastRound.finishedAt, 'the last round is reported')
  t.equal(body.totals.rounds, 1)
})

t.test('a stored cursor Graph cannot read (another directory\'s, a damaged file) starts a reconcile, not a round that fails forever', async t => {
  await freshAccount()
  const dir = syncDir(t)
  const tenantKey = T.tenantId.toLowerCase()
  writeFileSync(join(dir, 'cursors.json'), JSON.stringify({
    [`${tenantKey}|user`]: `${emulator.origin}/v1.0/users/delta?$deltatoken=not-a-token-of-this-directory`,
    [`${tenantKey}|servicePrincipal`]: `${emulator.origin}/v1.0/servicePrincipals/delta?$deltatoken=not-a-token-of-this-directory`,
    [`${tenantKey}|group`]: `${emulator.origin}/v1.0/groups/delta?$deltatoken=not-a-token-of-this-directory`
  }))
  const { service, first } = await start(t, dir)
  t.teardown(service.close)
  t.same(first.errors, [])
  t.same(first.reconciled.map(r => r.reason), ['cursor-expired', 'cursor-expired', 'cursor-expired'])
  t.same((await round(service)).errors, [], 'and the feed goes on from fresh cursors')
})
