// DatabricksScimTarget as TargetSync (the Entra change feed's writes) against the Databricks emulator over
// HTTPS, AIM off: principals deactivated and reactivated; principals and groups the service never
// materialized left alone; memberships removed and added (a user, a nested group), internal groups and
// members without externalId untouched; renames under the naming rules; soft and permanent retirement;
// the paged list; caches forgotten so the next login re-reads; idempotent repeats; 5xx and 429 as
// TargetUnavailableError; a refused membership reported.
import t from 'tap'
import { databricksNesting, entraNesting, entraRequest, scimEnv, T } from '../../helpers/target.ts'
import { SCIM, createGroup, createUser, patchBody } from '../../helpers/databricks.ts'
import { supportsSync, TargetUnavailableError, type MaterializedIdentity } from '../../../src/target/port.ts'
import { kindOfRef, retirementPlan } from '../../../src/target/scim-sync.ts'
import type { GroupNameCollision, MembershipSkipped } from '../../../src/target/scim.ts'
import type { TenantFixture } from '../../../emulators/tenant/model.ts'

const withId = (name: string, id: string): string => `${name} (${id.slice(0, 8)})`
const GROUP_PATCH = 'PATCH /api/2.0/accounts/:accountId/scim/v2/Groups/:id'
const USER_PATCH = 'PATCH /api/2.0/accounts/:accountId/scim/v2/Users/:id'
/** The nesting without memberships in Databricks-internal groups (which stay, and are not Entra's). */
const linkedOnly = (nesting: Record<string, string[]>): Record<string, string[]> =>
  Object.fromEntries(Object.entries(nesting).map(([k, v]) => [k, v.filter(x => !x.startsWith('internal:'))]))
const writes = (routes: Record<string, number>): string[] => Object.keys(routes).filter(r => !r.startsWith('GET '))

/** The fixture with `memberId` out of `groupId` (Entra after the change). */
function without (fixture: TenantFixture, groupId: string, memberId: string): TenantFixture {
  return { ...fixture, groups: fixture.groups.map(g => g.id === groupId ? { ...g, members: (g.members ?? []).filter(m => m !== memberId) } : g) }
}

t.test('both adapters offer the capability', async t => {
  const env = await scimEnv(t)
  t.ok(supportsSync(env.target))
})

t.test('a materialized user and service principal are deactivated and reactivated; repeats change nothing', async t => {
  const env = await scimEnv(t)
  const alice = await env.target.materialize(env.request(T.alice))
  const etl = await env.target.materialize(env.request(T.etlSp))
  const active = async (): Promise<[boolean | undefined, boolean | undefined]> => {
    const state = await env.state()
    return [state.users.find(u => u.externalId === T.alice)?.active, state.servicePrincipals.find(s => s.externalId === T.etlSp)?.active]
  }

  env.resetCalls()
  t.same(await env.target.setPrincipalActive(T.tenantId, { kind: 'user', id: T.alice }, false), { outcome: 'written', accountId: alice.principalId })
  t.same(await env.target.setPrincipalActive(T.tenantId, { kind: 'servicePrincipal', id: T.etlSp }, false), { outcome: 'written', accountId: etl.principalId })
  t.same(await active(), [false, false], 'both inactive in the account')
  t.same(env.dbCalls().routes, {
    'GET /api/2.0/accounts/:accountId/scim/v2/Users': 1,
    [USER_PATCH]: 1,
    'GET /api/2.0/accounts/:accountId/scim/v2/ServicePrincipals': 1,
    'PATCH /api/2.0/accounts/:accountId/scim/v2/ServicePrincipals/:id': 1
  }, 'one read and one PATCH each')

  env.resetCalls()
  t.same(await env.target.setPrincipalActive(T.tenantId, { kind: 'user', id: T.alice }, false), { outcome: 'unchanged', accountId: alice.principalId }, 'a repeat')
  t.same(writes(env.dbCalls().routes), [], 'writes nothing')

  // The next login of the deactivated user (Entra: disabled) reconciles with the account: no stale "active".
  const disabled = env.request(T.alice)
  disabled.principal.accountEnabled = false
  env.resetCalls()
  t.equal((await env.target.materialize(disabled)).active, false)
  t.notOk(env.dbCalls().routes[USER_PATCH], 'the account already agrees: the user is not rewritten')

  t.same(await env.target.setPrincipalActive(T.tenantId, { kind: 'user', id: T.alice }, true), { outcome: 'written', accountId: alice.principalId })
  t.same(await env.target.setPrincipalActive(T.tenantId, { kind: 'servicePrincipal', id: T.etlSp }, true), { outcome: 'written', accountId: etl.principalId })
  t.same(await active(), [true, true], 'both active again')
})

t.test('principals and groups the service never materialized are left alone', async t => {
  const env = await scimEnv(t)
  // Bob exists only by hand, without externalId (same UPN); nothing else of his is in the account.
  const handMade = await createUser(env.db.api, 'bob@contoso-test.onmicrosoft.com', { active: true })
  await env.target.materializeGroup(T.tenantId, { id: T.finance, displayName: 'Finance', securityEnabled: true })
  const before = await env.state()
  env.resetCalls()
  t.same(await env.target.setPrincipalActive(T.tenantId, { kind: 'user', id: T.bob }, false), { outcome: 'absent' })
  t.same(await env.target.setPrincipalActive(T.tenantId, { kind: 'servicePrincipal', id: T.etlSp }, false), { outcome: 'absent' })
  t.match(await env.target.addMembership(T.tenantId, { groupId: T.finance, memberId: T.bob, memberKind: 'user' }), { outcome: 'absent' }, 'the member is not in the account')
  t.same(await env.target.addMembership(T.tenantId, { groupId: T.engineering, memberId: T.finance, memberKind: 'group' }), { outcome: 'absent' }, 'the group is not in the account')
  t.same(await env.target.removeMembership(T.tenantId, { groupId: T.allStaff, memberId: T.finance, memberKind: 'group' }), { outcome: 'absent' })
  t.same(await env.target.renameGroup(T.tenantId, { id: T.engineering, displayName: 'Eng' }), { outcome: 'absent' })
  t.same(await env.target.retireGroup(T.tenantId, T.engineering, 'soft-deleted'), { outcome: 'absent' })
  t.same(await env.target.retireGroup(T.tenantId, T.engineering, 'deleted'), { outcome: 'absent' })
  t.same(writes(env.dbCalls().routes), [], 'nothing written, nothing created')
  const after = await env.state()
  t.same(after, before, 'the account is as it was')
  t.match(after.users.find(u => u.id === handMade), { active: true, externalId: null }, 'the hand-made bob is untouched')
})

t.test('a user leaves a group, a group is un-nested; both come back; every repeat is unchanged', async t => {
  const env = await scimEnv(t)
  const alice = await env.target.materialize(env.request(T.alice))
  const dp = alice.groupIds.get(T.dataPlatform) as string
  const eng = alice.groupIds.get(T.engineering) as string
  const userEdge = { groupId: T.dataPlatform, memberId: T.alice, memberKind: 'user' as const }
  const groupEdge = { groupId: T.engineering, memberId: T.dataPlatform, memberKind: 'group' as const }

  env.resetCalls()
  t.same(await env.target.removeMembership(T.tenantId, userEdge), { outcome: 'written', accountId: dp })
  t.equal(env.dbCalls().routes[GROUP_PATCH], 1, 'one PATCH')
  t.ok(env.dbCalls().total <= 3, `two reads besides (${JSON.stringify(env.dbCalls().routes)})`)
  t.same(await env.target.removeMembership(T.tenantId, groupEdge), { outcome: 'written', accountId: eng })
  let state = await env.state()
  t.same(state.groups.find(g => g.id === dp)?.members ?? [], [], 'alice is out of Data Platform')
  t.same(state.groups.find(g => g.id === dp)?.groups ?? [], [], 'Data Platform is out of Engineering')
  t.same(state.groups.find(g => g.id === eng)?.groups.map(g => g.externalId), [T.allStaff], 'Engineering keeps its own parent')
  t.same(state.users.find(u => u.id === alice.principalId)?.groups.map(g => g.externalId), [T.distribution], 'alice keeps her other group')

  env.resetCalls()
  t.same(await env.target.removeMembership(T.tenantId, userEdge), { outcome: 'unchanged', accountId: dp })
  t.same(await env.target.removeMembership(T.tenantId, groupEdge), { outcome: 'unchanged', accountId: eng })
  t.same(writes(env.dbCalls().routes), [], 'repeats write nothing')

  t.same(await env.target.addMembership(T.tenantId, userEdge), { outcome: 'written', accountId: dp })
  t.same(await env.target.addMembership(T.tenantId, groupEdge), { outcome: 'written', accountId: eng })
  env.resetCalls()
  t.same(await env.target.addMembership(T.tenantId, userEdge), { outcome: 'unchanged', accountId: dp })
  t.same(await env.target.addMembership(T.tenantId, groupEdge), { outcome: 'unchanged', accountId: eng })
  t.same(writes(env.dbCalls().routes), [], 'repeats write nothing')
  state = await env.state()
  t.same(databricksNesting(state, env.request(T.alice)), entraNesting(env.request(T.alice)), 'back as Entra has it')
})

t.test('Databricks-internal groups and members without externalId are never touched', async t => {
  const env = await scimEnv(t)
  const alice = await env.target.materialize(env.request(T.alice))
  const dp = alice.groupIds.get(T.dataPlatform) as string
  // An internal group holding alice and Data Platform; a contractor (no externalId) in Data Platform; a
  // look-alike internal group named as Entra's Data Platform once was.
  const internal = await createGroup(env.db.api, 'databricks-admins', { members: [{ value: alice.principalId }, { value: dp }] })
  const contractor = await createUser(env.db.api, 'contractor@example.com')
  await env.db.api('PATCH', `${SCIM}/Groups/${dp}`, patchBody({ op: 'add', path: 'members', value: [{ value: contractor }] }))
  const lookAlike = await createGroup(env.db.api, 'Data Platform', { members: [{ value: alice.principalId }] })

  t.same(await env.target.removeMembership(T.tenantId, { groupId: T.dataPlatform, memberId: T.alice, memberKind: 'user' }), { outcome: 'written', accountId: dp })
  t.same(await env.target.removeMembership(T.tenantId, { groupId: T.engineering, memberId: T.dataPlatform, memberKind: 'group' }), { outcome: 'written', accountId: alice.groupIds.get(T.engineering) })
  const state = await env.state()
  const byId = new Map(state.groups.map(g => [g.id, g]))
  t.same(byId.get(internal)?.members?.map(m => m.id).sort(), [alice.principalId, dp].sort(), 'the internal group keeps alice and Data Platform')
  t.same(byId.get(lookAlike)?.members?.map(m => m.id), [alice.principalId], 'the look-alike keeps alice')
  t.same(byId.get(dp)?.members?.map(m => m.id), [contractor], 'the contractor stays in Data Platform')
  t.same(byId.get(dp)?.groups.map(g => g.id), [internal], 'Data Platform stays in the internal group')
})

t.test('a rename keeps the naming rules: collisions, reserved names, workspace-local names; materializeGroup answers the new name', async t => {
  const collisions: GroupNameCollision[] = []
  const env = await scimEnv(t, { target: { observer: { onGroupNameCollision: c => collisions.push(c) } } })
  const finance = await env.target.materializeGroup(T.tenantId, { id: T.finance, displayName: 'Finance', securityEnabled: true })
  t.equal(finance.name, withId('Finance', T.finance))

  // Another group holds the name the new display name calls for: the full id is used.
  await createGroup(env.db.api, withId('Money', T.finance))
  env.resetCalls()
  const renamed = await env.target.renameGroup(T.tenantId, { id: T.finance, displayName: 'Money' })
  t.same(renamed, { outcome: 'written', accountId: finance.groupId, name: `Money (${T.finance})` })
  t.same(collisions, [{ entraGroupId: T.finance, wanted: withId('Money', T.finance), used: `Money (${T.finance})`, reason: 'taken' }], 'reported')
  t.same(env.dbCalls().routes, { 'GET /api/2.0/accounts/:accountId/scim/v2/Groups': 1, [GROUP_PATCH]: 1 }, 'one read, one PATCH')
  t.equal((await env.state()).groups.find(g => g.id === finance.groupId)?.displayName, `Money (${T.finance})`)
  t.same(await env.target.materializeGroup(T.tenantId, { id: T.finance, displayName: 'Money', securityEnabled: true }), { groupId: finance.groupId, name: `Money (${T.finance})` }, 'the cached name was forgotten')

  env.resetCalls()
  t.same(await env.target.renameGroup(T.tenantId, { id: T.finance, displayName: 'Money' }), { outcome: 'unchanged', accountId: finance.groupId, name: `Money (${T.finance})` }, 'a repeat: one of its candidates already, kept')
  t.same(writes(env.dbCalls().routes), [])

  // `display` policy: a reserved name and a name a workspace-local group holds are never taken.
  const env2 = await scimEnv(t, {
    target: {
      groupNames: 'display',
      observer: { onGroupNameCollision: c => collisions.push(c) },
      namesHeldLocally: async names => new Set(names.map(n => n.toLowerCase()).filter(n => n === 'ops'))
    }
  })
  const eng = await env2.target.materializeGroup(T.tenantId, { id: T.engineering, displayName: 'Engineering', securityEnabled: true })
  t.equal(eng.name, 'Engineering')
  collisions.length = 0
  t.same(await env2.target.renameGroup(T.tenantId, { id: T.engineering, displayName: 'Admins' }), { outcome: 'written', accountId: eng.groupId, name: withId('Admins', T.engineering) })
  t.same(await env2.target.renameGroup(T.tenantId, { id: T.engineering, displayName: 'Ops' }), { outcome: 'written', accountId: eng.groupId, name: withId('Ops', T.engineering) })
  t.same(collisions.map(c => c.reason), ['reserved', 'workspace-local'])
  t.same(await env2.target.renameGroup(T.tenantId, { id: T.engineering, displayName: 'Platform' }, { avoidNames: new Set(['platform']) }), { outcome: 'written', accountId: eng.groupId, name: withId('Platform', T.engineering) }, 'avoidNames')
  t.same(await env2.target.renameGroup(T.tenantId, { id: T.engineering, displayName: 'Engineering' }), { outcome: 'written', accountId: eng.groupId, name: 'Engineering' }, 'and back to the plain name when it is free')
})

t.test('retiring a soft-deleted group takes away every Entra membership through it and keeps the group; a permanent deletion deletes it', async t => {
  const env = await scimEnv(t)
  const alice = await env.target.materialize(env.request(T.alice))
  const bob = await env.target.materialize(env.request(T.bob))
  const eng = alice.groupIds.get(T.engineering) as string
  const dp = alice.groupIds.get(T.dataPlatform) as string
  const contractor = await createUser(env.db.api, 'contractor@example.com')
  await env.db.api('PATCH', `${SCIM}/Groups/${eng}`, patchBody({ op: 'add', path: 'members', value: [{ value: contractor }] }))
  const internal = await createGroup(env.db.api, 'x-internal', { members: [{ value: eng }] })

  // Engineering: members Data Platform and bob (Entra) and the contractor; parents All Staff (Entra) and x-internal.
  env.resetCalls()
  t.same(await env.target.retireGroup(T.tenantId, T.engineering, 'soft-deleted'), { outcome: 'written', accountId: eng })
  t.equal(env.dbCalls().routes[GROUP_PATCH], 2, 'one PATCH for its members, one for its Entra parent')
  t.notOk(env.dbCalls().routes['GET /api/2.0/accounts/:accountId/scim/v2/ServicePrincipals'], 'members read by the kind their $ref names')
  let state = await env.state()
  const group = state.groups.find(g => g.id === eng)
  t.match(group, { externalId: T.engineering, displayName: withId('Engineering', T.engineering) }, 'the group stays (grants to it survive a restore)')
  t.same(group?.members?.map(m => m.id), [contractor], 'only the member without externalId stays')
  t.same(group?.groups.map(g => g.id), [internal], 'out of All Staff, still in the internal group')
  t.same(state.groups.find(g => g.id === dp)?.groups ?? [], [], 'Data Platform is out of it')
  t.notOk(state.users.find(u => u.id === bob.principalId)?.groups.some(g => g.id === eng), 'bob is out of it')

  env.resetCalls()
  t.same(await env.target.retireGroup(T.tenantId, T.engineering, 'soft-deleted'), { outcome: 'unchanged', accountId: eng }, 'a repeat')
  t.same(writes(env.dbCalls().routes), [])

  // Restored in Entra: bob's next login (Engineering among his groups again) puts him back; his remembered
  // materialization was forgotten, so it is not skipped as unchanged.
  await env.target.materialize(env.request(T.bob))
  state = await env.state()
  t.same(linkedOnly(databricksNesting(state, env.request(T.bob))), entraNesting(env.request(T.bob)), 'bob is back as Entra has him')

  // Finance, permanently deleted.
  const finance = bob.groupIds.get(T.finance) as string
  t.same(await env.target.retireGroup(T.tenantId, T.finance, 'deleted'), { outcome: 'written', accountId: finance })
  state = await env.state()
  t.notOk(state.groups.some(g => g.externalId === T.finance), 'the account group is deleted')
  t.same(await env.target.retireGroup(T.tenantId, T.finance, 'deleted'), { outcome: 'absent' }, 'a repeat finds nothing')
  // Bob's next login as Entra has him now (no Finance) converges without the deleted group.
  const fixture = { ...env.fixture, groups: env.fixture.groups.filter(g => g.id !== T.finance).map(g => ({ ...g, members: (g.members ?? []).filter(m => m !== T.finance) })) }
  const now = entraRequest(fixture, T.bob)
  await env.target.materialize(now)
  state = await env.state()
  t.same(linkedOnly(databricksNesting(state, now)), entraNesting(now))
  t.notOk(state.groups.some(g => g.externalId === T.finance), 'and Finance is not re-created')
})

t.test('listMaterialized: every Entra-linked user, service principal and group, page by page', async t => {
  const env = await scimEnv(t)
  await env.target.materialize(env.request(T.alice))
  await env.target.materialize(env.request(T.bob))
  await env.target.materialize(env.request(T.etlSp))
  await env.target.setPrincipalActive(T.tenantId, { kind: 'user', id: T.bob }, false)
  await createUser(env.db.api, 'contractor@example.com')
  await createGroup(env.db.api, 'x-internal')
  const state = await env.state()

  env.resetCalls()
  const listed: MaterializedIdentity[] = []
  for await (const item of env.target.listMaterialized(T.tenantId, { pageSize: 2 })) listed.push(item)
  const expected = [
    ...state.users.filter(u => u.externalId !== null).map(u => ({ kind: 'user', entraId: u.externalId, accountId: u.id, active: u.active, displayName: u.displayName })),
    ...state.servicePrincipals.filter(u => u.externalId !== null).map(u => ({ kind: 'servicePrincipal', entraId: u.externalId, accountId: u.id, active: u.active, displayName: u.displayName })),
    ...state.groups.filter(u => u.externalId !== null).map(u => ({ kind: 'group', entraId: u.externalId, accountId: u.id, active: true, displayName: u.displayName }))
  ]
  const sort = (xs: Array<{ accountId: string }>): unknown[] => [...xs].sort((a, b) => a.accountId.localeCompare(b.accountId))
  t.same(sort(listed), sort(expected), 'exactly the Entra-linked objects')
  t.equal(listed.length, 2 + 1 + 5, 'alice, bob; the ETL service principal; five groups')
  t.equal(listed.find(i => i.entraId === T.bob)?.active, false, 'bob as deactivated')
  t.notOk(listed.some(i => i.displayName === 'x-internal' || i.displayName === 'contractor@example.com'), 'nothing without externalId')
  const routes = env.dbCalls().routes
  t.equal(routes['GET /api/2.0/accounts/:accountId/scim/v2/Users'], 2, 'three users in pages of two')
  t.equal(routes['GET /api/2.0/accounts/:accountId/scim/v2/ServicePrincipals'], 1)
  t.equal(routes['GET /api/2.0/accounts/:accountId/scim/v2/Groups'], 3, 'six groups in pages of two')

  const groupsOnly: MaterializedIdentity[] = []
  for await (const item of env.target.listMaterialized(T.tenantId, { kinds: ['group'] })) groupsOnly.push(item)
  t.same(new Set(groupsOnly.map(g => g.kind)), new Set(['group']))
  t.equal(groupsOnly.length, 5)
})

t.test('after a removal through the sync the next login re-reads: a request without the group re-adds nothing, one with it re-adds it', async t => {
  const env = await scimEnv(t)
  await env.target.materialize(env.request(T.alice))
  await env.target.removeMembership(T.tenantId, { groupId: T.dataPlatform, memberId: T.alice, memberKind: 'user' })

  // Entra now: alice out of Data Platform.
  const now = entraRequest(without(env.fixture, T.dataPlatform, T.alice), T.alice)
  env.resetCalls()
  await env.target.materialize(now)
  t.notOk(env.dbCalls().routes[GROUP_PATCH], 'nothing re-added, nothing to remove')
  t.same(databricksNesting(await env.state(), now), entraNesting(now))

  // Another removal, then a login whose request still names the group (the same request as before the
  // change): not skipped as unchanged, the membership is written again.
  const before = env.request(T.alice)
  await env.target.materialize(before)
  await env.target.removeMembership(T.tenantId, { groupId: T.dataPlatform, memberId: T.alice, memberKind: 'user' })
  env.resetCalls()
  await env.target.materialize(before)
  t.equal(env.dbCalls().routes[GROUP_PATCH], 1, 'alice re-added to Data Platform')
  t.same(databricksNesting(await env.state(), before), entraNesting(before))
  env.resetCalls()
  await env.target.materialize(before)
  t.equal(env.dbCalls().total, 0, 'then warm again: no call')
})

t.test('after an un-nesting through the sync, a group\'s known parents are not served stale', async t => {
  const env = await scimEnv(t)
  await env.target.materialize(env.request(T.alice)) // Data Platform ⊂ Engineering is known now
  t.same(await env.target.removeMembership(T.tenantId, { groupId: T.engineering, memberId: T.dataPlatform, memberKind: 'group' }), { outcome: 'written', accountId: (await env.state()).groups.find(g => g.externalId === T.engineering)?.id })

  // The ETL service principal (in Data Platform) logs in for the first time with Entra still nesting Data
  // Platform in Engineering: the nesting is read again and written, not taken from the cache.
  const etl = env.request(T.etlSp)
  await env.target.materialize(etl)
  t.same(databricksNesting(await env.state(), etl), entraNesting(etl), 'Data Platform ⊂ Engineering written again')

  // Un-nested again, and alice logs in with the same request: her materialization is not trusted either.
  await env.target.removeMembership(T.tenantId, { groupId: T.engineering, memberId: T.dataPlatform, memberKind: 'group' })
  env.resetCalls()
  await env.target.materialize(env.request(T.alice))
  t.ok((env.dbCalls().routes[GROUP_PATCH] ?? 0) >= 1, 'reconciled, not skipped')
  t.same(databricksNesting(await env.state(), env.request(T.alice)), entraNesting(env.request(T.alice)))

  // Entra un-nests it for real: a login with the new request leaves it out, no write back.
  const fixture = without(env.fixture, T.engineering, T.dataPlatform)
  await env.target.removeMembership(T.tenantId, { groupId: T.engineering, memberId: T.dataPlatform, memberKind: 'group' })
  const now = entraRequest(fixture, T.alice)
  env.resetCalls()
  await env.target.materialize(now)
  t.notOk(env.dbCalls().routes[GROUP_PATCH], 'nothing re-added')
  t.same(databricksNesting(await env.state(), now), entraNesting(now))
})

t.test('invalidate() from another replica: the next login reconciles instead of trusting its fingerprint', async t => {
  const env = await scimEnv(t)
  const leader = env.replica()
  await env.target.materialize(env.request(T.alice))
  // The leader applies the change; this replica only hears the ids.
  await leader.removeMembership(T.tenantId, { groupId: T.dataPlatform, memberId: T.alice, memberKind: 'user' })
  env.resetCalls()
  await env.target.materialize(env.request(T.alice))
  t.equal(env.dbCalls().total, 0, 'without the broadcast this replica trusts its fingerprint')
  env.target.invalidate(T.tenantId, { principals: [T.alice] })
  await env.target.materialize(env.request(T.alice))
  t.equal(env.dbCalls().routes[GROUP_PATCH], 1, 'with it, the request is reconciled (alice re-added, as the request says)')

  // A group id: every materialization that includes the group is reconciled.
  await leader.removeMembership(T.tenantId, { groupId: T.engineering, memberId: T.dataPlatform, memberKind: 'group' })
  env.target.invalidate(T.tenantId, { groups: [T.dataPlatform] })
  await env.target.materialize(env.request(T.alice))
  t.same(databricksNesting(await env.state(), env.request(T.alice)), entraNesting(env.request(T.alice)))
})

t.test('invalidate() while a materialization is in flight: what that run read is not trusted afterwards', async t => {
  const env = await scimEnv(t)
  // Runs `fn` the moment the emulator receives the next call of `route`, before it answers.
  const onArrival = (route: string, fn: () => void): void => {
    const calls = env.db.ctx.calls
    const count = calls.count.bind(calls)
    calls.count = (r: string) => {
      count(r)
      if (r !== route) return
      calls.count = count
      fn()
    }
  }
  for (const ids of [{ principals: [T.alice] }, { groups: [T.dataPlatform] }]) {
    const target = env.replica()
    onArrival('GET /api/2.0/accounts/:accountId/scim/v2/Groups', () => { target.invalidate(T.tenantId, ids) })
    await target.materialize(env.request(T.alice))
    env.resetCalls()
    await target.materialize(env.request(T.alice))
    t.ok(env.dbCalls().total > 0, `${JSON.stringify(ids)}: the run in flight is not remembered as trusted`)
    env.resetCalls()
    await target.materialize(env.request(T.alice))
    t.equal(env.dbCalls().total, 0, 'the next one is')
  }
})

t.test('a membership Databricks refuses is skipped and reported, not thrown', async t => {
  const skipped: MembershipSkipped[] = []
  const env = await scimEnv(t, { target: { observer: { onMembershipSkipped: s => skipped.push(s) } } })
  const alice = await env.target.materialize(env.request(T.alice))
  // All Staff into Data Platform closes a cycle (Data Platform ⊂ Engineering ⊂ All Staff).
  const edge = { groupId: T.dataPlatform, memberId: T.allStaff, memberKind: 'group' as const }
  t.same(await env.target.addMembership(T.tenantId, edge), { outcome: 'refused', accountId: alice.groupIds.get(T.dataPlatform) })
  t.match(skipped, [{ parentId: alice.groupIds.get(T.dataPlatform), childId: alice.groupIds.get(T.allStaff), parentEntraId: T.dataPlatform, childEntraId: T.allStaff, reason: 'cycle' }])
  t.same(databricksNesting(await env.state(), env.request(T.alice)), entraNesting(env.request(T.alice)), 'nothing else changed')
})

t.test('a 5xx or a throttling storm during a write is TargetUnavailableError; the retry converges', async t => {
  const env = await scimEnv(t)
  await env.target.materialize(env.request(T.alice))
  const edge = { groupId: T.dataPlatform, memberId: T.alice, memberKind: 'user' as const }

  env.db.ctx.faults.add({ route: '/api/2.0/accounts/*/scim/v2/Groups/*', method: 'PATCH', status: 500, times: 1 })
  const failed = await env.target.removeMembership(T.tenantId, edge).catch((e: unknown) => e)
  t.type(failed, TargetUnavailableError, 'a 500')
  t.equal((failed as TargetUnavailableError).throttled, false)
  t.match(await env.target.removeMembership(T.tenantId, edge), { outcome: 'written' }, 'the retry')

  env.db.ctx.faults.add({ route: '/api/2.0/accounts/*/scim/v2/Users/*', method: 'PATCH', status: 429, retryAfter: 0.05 })
  const throttled = await env.target.setPrincipalActive(T.tenantId, { kind: 'user', id: T.alice }, false).catch((e: unknown) => e)
  t.type(throttled, TargetUnavailableError, 'a 429 storm longer than the retries')
  t.equal((throttled as TargetUnavailableError).throttled, true)
  t.ok((throttled as TargetUnavailableError).retryAfterSeconds !== undefined, 'with retryAfterSeconds for the caller')
  env.db.ctx.faults.remove()
  t.match(await env.target.setPrincipalActive(T.tenantId, { kind: 'user', id: T.alice }, false), { outcome: 'written' })

  // A failed retirement half-way (the second PATCH): the repeat finishes it.
  await env.target.materialize(env.request(T.bob))
  env.db.ctx.faults.add({ route: '/api/2.0/accounts/*/scim/v2/Groups/*', method: 'PATCH', status: 503, times: 10 })
  t.type(await env.target.retireGroup(T.tenantId, T.engineering, 'soft-deleted').catch((e: unknown) => e), TargetUnavailableError)
  env.db.ctx.faults.remove()
  t.match(await env.target.retireGroup(T.tenantId, T.engineering, 'soft-deleted'), { outcome: 'written' })
  const eng = (await env.state()).groups.find(g => g.externalId === T.engineering)
  t.same([eng?.members ?? [], eng?.groups ?? []], [[], []], 'converged')
})

t.test('bad input is a TypeError, before any call', async t => {
  const env = await scimEnv(t)
  env.resetCalls()
  await t.rejects(env.target.setPrincipalActive(T.tenantId, { kind: 'group' as 'user', id: T.alice }, false), TypeError)
  await t.rejects(env.target.addMembership(T.tenantId, { groupId: '', memberId: T.alice, memberKind: 'user' }), TypeError)
  await t.rejects(env.target.retireGroup(T.tenantId, T.finance, 'gone' as 'deleted'), TypeError)
  await t.rejects(env.target.listMaterialized(T.tenantId, { pageSize: 0 })[Symbol.asyncIterator]().next(), TypeError)
  t.equal(env.dbCalls().total, 0)
})

t.test('retirementPlan: only what has an externalId', async t => {
  const plan = retirementPlan([
    { id: '1', kind: 'user', externalId: 'u1' },
    { id: '2', kind: 'user', externalId: null },
    { id: '3', kind: 'group', externalId: 'g3' },
    { id: '4', kind: 'servicePrincipal', externalId: 's4' },
    { id: '5', kind: 'group', externalId: null }
  ], new Map([['p2', 'pg2'], ['p1', 'pg1'], ['p3', null]]))
  t.same(plan, { members: ['1', '3', '4'], parents: ['p1', 'p2'], principals: ['u1', 's4'], groups: ['g3'] })
  t.same(retirementPlan([], new Map()), { members: [], parents: [], principals: [], groups: [] })
})

t.test('kindOfRef: the kind a member reference names', async t => {
  t.equal(kindOfRef({ value: '1', $ref: 'Users/1' }), 'user')
  t.equal(kindOfRef({ value: '2', $ref: 'Groups/2' }), 'group')
  t.equal(kindOfRef({ value: '3', $ref: 'https://accounts.example/api/2.0/accounts/x/scim/v2/ServicePrincipals/3' }), 'servicePrincipal')
  t.equal(kindOfRef({ value: '4' }), undefined, 'none: looked up in each resource')
  t.equal(kindOfRef({ value: '5', $ref: 'Me/5' }), undefined)
})
