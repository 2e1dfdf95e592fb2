// DatabricksScimTarget against the Databricks emulator over HTTPS, AIM off (SCIM mode): creation of the
// principal, its groups and the nesting; the warm path; membership changes; active; service principals;
// internal groups and members left alone; duplicate names; guests; filter injection; memberships
// Databricks refuses (a nesting cycle, too many layers, a batched PATCH with one bad member).
import t from 'tap'
import { databricksNesting, entraNesting, entraRequest, scimEnv, smallTenant, T, withUser } from '../../helpers/target.ts'
import { scimString } from '../../../src/target/names.ts'
import { cycleClosingEdges, membershipSkipReason, type GroupNameCollision, type MembershipSkipped } from '../../../src/target/scim.ts'
import { SCIM, createGroup, createUser, patchBody } from '../../helpers/databricks.ts'

const withId = (name: string, id: string): string => `${name} (${id.slice(0, 8)})`

const dup1 = 'd1000000-0000-4000-8000-000000000001'
const dup2 = 'd2000000-0000-4000-8000-000000000002'

t.test('a first materialization creates the user, its groups and the nesting; the second makes no call', async t => {
  const env = await scimEnv(t)
  const request = env.request(T.alice)
  const result = await env.target.materialize(request)

  const state = await env.state()
  t.equal(state.users.length, 1, 'one user')
  const alice = state.users[0]
  t.match(alice, { userName: 'alice@contoso-test.onmicrosoft.com', externalId: T.alice, displayName: 'Alice Adams', active: true })
  t.equal(result.principalId, alice?.id)
  t.equal(result.active, true)
  t.same(new Set(state.groups.map(g => g.externalId)), new Set(request.groups.map(g => g.id)), 'every group of the closure, linked by externalId')
  for (const g of request.groups) {
    const made = state.groups.find(x => x.externalId === g.id)
    t.equal(made?.displayName, withId(g.displayName, g.id), `${g.displayName} is named with its object id (the default policy)`)
    t.equal(result.groupIds.get(g.id), made?.id, `${g.displayName}: id returned`)
  }
  t.same(databricksNesting(state, request), entraNesting(request), 'memberships equal Entra\'s')
  const user = await env.db.api('GET', `${SCIM}/Users/${result.principalId}`)
  t.same(user.body.emails, [{ value: 'alice@contoso.com', type: 'work', primary: true }], 'emails from mail')
  t.same(new Set(user.body.groups.filter((g: { type: string }) => g.type === 'indirect').map((g: { display: string }) => g.display)), new Set([withId('Engineering', T.engineering), withId('All Staff', T.allStaff)]), 'Databricks evaluates the nesting as Entra does')

  env.resetCalls()
  const again = await env.target.materialize(env.request(T.alice))
  t.equal(env.dbCalls().total, 0, 'a warm materialization with an unchanged request makes zero Databricks calls')
  t.same(again, result)
})

t.test('a membership change writes only the difference', async t => {
  const env = await scimEnv(t)
  await env.target.materialize(env.request(T.bob)) // Engineering, Finance, All Staff exist now
  await env.target.materialize(env.request(T.alice))

  // In Entra: alice leaves Data Platform, joins Finance.
  const fixture = {
    ...env.fixture,
    groups: env.fixture.groups.map(g => g.id === T.dataPlatform
      ? { ...g, members: (g.members ?? []).filter(m => m !== T.alice) }
      : g.id === T.finance ? { ...g, members: [...(g.members ?? []), T.alice] } : g)
  }
  const request = entraRequest(fixture, T.alice)
  env.resetCalls()
  const result = await env.target.materialize(request)
  const calls = env.dbCalls()
  t.equal(calls.routes['PATCH /api/2.0/accounts/:accountId/scim/v2/Groups/:id'], 2, 'two PATCHes: Finance gains alice, Data Platform loses her')
  t.notOk(calls.routes['POST /api/2.0/accounts/:accountId/scim/v2/Groups'], 'no group created')
  t.notOk(calls.routes['PATCH /api/2.0/accounts/:accountId/scim/v2/Users/:id'], 'the user is not rewritten')
  t.ok(calls.total <= 3, `at most one read besides (${JSON.stringify(calls.routes)})`)

  const state = await env.state()
  t.same(databricksNesting(state, request), entraNesting(request), 'memberships equal Entra\'s')
  const dataPlatform = state.groups.find(g => g.externalId === T.dataPlatform)
  t.same(dataPlatform?.members ?? [], [], 'alice left Data Platform')
  t.same(dataPlatform?.groups.map(g => g.externalId), [T.engineering], 'Data Platform stays in Engineering (not hers to change)')
  t.equal(result.groupIds.has(T.dataPlatform), false, 'no longer one of her groups')
  // The second run, unchanged, is free again.
  env.resetCalls()
  await env.target.materialize(entraRequest(fixture, T.alice))
  t.equal(env.dbCalls().total, 0)
})

t.test('a disabled user becomes active: false, and active again when re-enabled', async t => {
  const env = await scimEnv(t)
  const disabled = env.request(T.disabled)
  t.equal(disabled.principal.accountEnabled, false)
  const first = await env.target.materialize(disabled)
  t.equal(first.active, false)
  const user = async (): Promise<{ active?: boolean }> => (await env.state()).users.find(u => u.externalId === T.disabled) ?? {}
  t.equal((await user()).active, false, 'created inactive')

  env.resetCalls()
  const enabled = await env.target.materialize({ ...disabled, principal: { ...disabled.principal, accountEnabled: true } })
  t.equal(enabled.active, true)
  t.equal((await user()).active, true, 're-enabled in Entra: active again')
  t.same(env.dbCalls().routes, { 'PATCH /api/2.0/accounts/:accountId/scim/v2/Users/:id': 1 }, 'one PATCH (replace active)')

  await env.target.materialize(disabled)
  t.equal((await user()).active, false, 'disabled again')
  // Another replica that never saw this user reads the state and corrects it too.
  await env.db.api('PATCH', `${SCIM}/Users/${first.principalId}`, patchBody({ op: 'replace', path: 'active', value: true }))
  await env.replica().materialize(disabled)
  t.equal((await user()).active, false, 'a cold replica also sets active from accountEnabled')
})

t.test('a service principal: applicationId, externalId, and its groups', async t => {
  const env = await scimEnv(t)
  const request = env.request(T.etlSp)
  const result = await env.target.materialize(request)
  const state = await env.state()
  t.equal(state.users.length, 0)
  t.equal(state.servicePrincipals.length, 1)
  t.match(state.servicePrincipals[0], { id: result.principalId, applicationId: T.etlAppId, externalId: T.etlSp, displayName: 'Nightly ETL', active: true })
  t.same(databricksNesting(state, request), entraNesting(request), 'memberships equal Entra\'s')

  // A service principal created by hand earlier (no externalId) is adopted by its application id.
  const env2 = await scimEnv(t)
  const made = await env2.db.api('POST', `${SCIM}/ServicePrincipals`, { applicationId: T.etlAppId, displayName: 'etl (manual)' })
  const adopted = await env2.target.materialize(env2.request(T.etlSp))
  t.equal(adopted.principalId, made.body.id, 'adopted, not duplicated')
  const sp = (await env2.state()).servicePrincipals
  t.equal(sp.length, 1)
  t.match(sp[0], { externalId: T.etlSp, displayName: 'Nightly ETL' }, 'linked to Entra and renamed as Entra has it')
})

t.test('Databricks-internal groups and non-Entra members are left alone', async t => {
  const env = await scimEnv(t)
  // Before the resolver: a hand-made alice (no externalId), an internal group she is in, and an internal
  // group that happens to be called like an Entra group.
  const aliceId = await createUser(env.db.api, 'Alice@Contoso-Test.onmicrosoft.com', { displayName: 'alice (manual)' })
  const internal = await createGroup(env.db.api, 'databricks-admins', { members: [{ value: aliceId }] })
  const sameName = await createGroup(env.db.api, 'Data Platform')
  const request = env.request(T.alice)
  const result = await env.target.materialize(request)
  t.equal(result.principalId, aliceId, 'the existing user is adopted by userName (case-insensitively)')

  // A contractor added by hand to an Entra-sourced group.
  const contractor = await createUser(env.db.api, 'contractor@example.com')
  await env.db.api('PATCH', `${SCIM}/Groups/${result.groupIds.get(T.engineering) as string}`, patchBody({ op: 'add', path: 'members', value: [{ value: contractor }] }))

  // Entra: alice leaves Data Platform for Engineering directly.
  const fixture = {
    ...env.fixture,
    groups: env.fixture.groups.map(g => g.id === T.dataPlatform
      ? { ...g, members: (g.members ?? []).filter(m => m !== T.alice) }
      : g.id === T.engineering ? { ...g, members: [...(g.members ?? []), T.alice] } : g)
  }
  const changed = entraRequest(fixture, T.alice)
  await env.target.materialize(changed)
  // And a cold replica reconciling from Databricks' state.
  await env.replica().materialize(changed)

  const state = await env.state()
  const byId = new Map(state.groups.map(g => [g.id, g]))
  t.same(byId.get(internal)?.members?.map(m => m.id), [aliceId], 'alice stays in the internal group')
  t.equal(byId.get(internal)?.externalId, null, 'the internal group is not linked')
  t.equal(byId.get(sameName)?.externalId, null, 'the internal "Data Platform" is not adopted')
  t.same(byId.get(sameName)?.members ?? [], [], 'and gets no members')
  t.equal(byId.get(result.groupIds.get(T.dataPlatform) as string)?.displayName, `Data Platform (${T.dataPlatform.slice(0, 8)})`, 'the Entra group gets a distinct name')
  t.ok(byId.get(result.groupIds.get(T.engineering) as string)?.members?.some(m => m.id === contractor), 'the contractor stays in Engineering')
  const nesting = databricksNesting(state, changed)
  t.same(nesting[T.alice], [T.distribution, T.engineering, 'internal:databricks-admins'].sort(), 'alice: her direct Entra groups plus the internal one')
})

t.test('two Entra groups with one display name are told apart deterministically', async t => {
  const base = smallTenant()
  const fixture = {
    ...base,
    groups: [...base.groups, { id: dup2, displayName: 'Analysts', members: [T.alice] }, { id: dup1, displayName: 'Analysts', members: [T.alice] }]
  }
  const collisions: GroupNameCollision[] = []
  const env = await scimEnv(t, { tenant: fixture, target: { groupNames: 'display', observer: { onGroupNameCollision: c => collisions.push(c) } } })
  const request = env.request(T.alice)
  const result = await env.target.materialize(request)
  const state = await env.state()
  const name = (id: string): string | undefined => state.groups.find(g => g.id === result.groupIds.get(id))?.displayName
  t.equal(name(dup1), 'Analysts', 'the first by object id keeps the name')
  t.same(collisions, [{ entraGroupId: dup2, wanted: 'Analysts', used: `Analysts (${dup2.slice(0, 8)})`, reason: 'taken' }], 'the collision is reported')
  t.equal(name(dup2), `Analysts (${dup2.slice(0, 8)})`, 'the second gets a prefix of its object id')
  t.same(databricksNesting(state, request), entraNesting(request), 'both linked by externalId, alice in both')

  // Stable: a cold replica finds both by externalId; nothing is created or renamed.
  env.resetCalls()
  const again = await env.replica().materialize(request)
  t.same(again.groupIds, result.groupIds)
  t.notOk(env.dbCalls().routes['POST /api/2.0/accounts/:accountId/scim/v2/Groups'], 'no group created')
  t.equal((await env.state()).groups.length, state.groups.length)
})

t.test('a guest (#EXT# UPN)', async t => {
  const env = await scimEnv(t)
  const request = env.request(T.guest)
  const result = await env.target.materialize(request)
  const state = await env.state()
  t.match(state.users[0], { id: result.principalId, userName: 'gina_fabrikam.com#EXT#@contoso-test.onmicrosoft.com', externalId: T.guest })
  const user = await env.db.api('GET', `${SCIM}/Users/${result.principalId}`)
  t.same(user.body.emails, [{ value: 'gina@fabrikam.com', type: 'work', primary: true }])
  t.same(databricksNesting(state, request), entraNesting(request))
  env.resetCalls()
  await env.replica().materialize(request)
  t.same(Object.keys(env.dbCalls().routes).filter(r => !r.startsWith('GET')), [], 'found again by a cold replica: no write')
})

t.test('a display name crafted as a filter injection matches nothing but itself', async t => {
  const evil = 'e1000000-0000-4000-8000-000000000001'
  const evil2 = 'e2000000-0000-4000-8000-000000000002'
  const unicode = 'e3000000-0000-4000-8000-000000000003'
  const base = smallTenant()
  const fixture = withUser({
    ...base,
    groups: [
      ...base.groups,
      { id: evil, displayName: 'x" or displayName sw "', members: [] },
      { id: evil2, displayName: 'y\\" or externalId sw \\"', members: [] },
      { id: unicode, displayName: 'Équipe données 数据 "α"', members: [] }
    ]
  }, { id: 'a0000000-0000-4000-8000-0000000000ee', userPrincipalName: 'eve@contoso-test.onmicrosoft.com', displayName: 'Eve' }, [evil, evil2, unicode])
  const env = await scimEnv(t, { tenant: fixture })
  // Objects an injected filter would match: internal groups, another user.
  const internal = await createGroup(env.db.api, 'x-internal')
  await createGroup(env.db.api, 'y-internal')
  const other = await createUser(env.db.api, 'x@contoso.com')
  const request = env.request('a0000000-0000-4000-8000-0000000000ee')
  const result = await env.target.materialize(request)
  const state = await env.state()
  const made = (id: string): { displayName?: string, externalId?: string | null } => state.groups.find(g => g.id === result.groupIds.get(id)) ?? {}
  t.match(made(evil), { displayName: withId('x" or displayName sw "', evil), externalId: evil }, 'created under its own name: the filter matched no other group')
  t.equal(made(evil2).displayName, withId('y\\" or externalId sw \\"', evil2), 'backslashes too')
  t.equal(made(unicode).displayName, withId('Équipe données 数据 "α"', unicode), 'non-ASCII and quotes')
  t.not(result.groupIds.get(evil), internal, 'no other group adopted')
  t.equal(state.groups.find(g => g.id === internal)?.externalId, null, 'the internal group is untouched')
  t.equal(state.users.find(u => u.id === other)?.externalId, null, 'the other user is untouched')
  t.equal(state.users.length, 2)
  t.same(databricksNesting(state, request), entraNesting(request))
  // A cold replica finds the same groups again (by externalId) and creates nothing.
  env.resetCalls()
  const again = await env.replica().materialize(request)
  t.same(again.groupIds, result.groupIds)
  t.notOk(env.dbCalls().routes['POST /api/2.0/accounts/:accountId/scim/v2/Groups'])

  // The escaped literal, as the adapter sends it, matches exactly the one group.
  for (const name of [withId('x" or displayName sw "', evil), withId('Équipe données 数据 "α"', unicode)]) {
    const res = await env.db.api('GET', `${SCIM}/Groups?filter=${encodeURIComponent(`displayName eq ${scimString(name)}`)}`)
    t.same(res.body.Resources?.map((g: { displayName: string }) => g.displayName), [name], `filter for ${name}`)
  }
  t.equal(scimString('a\\" or "'), '"a\\\\\\" or \\""', 'backslashes and quotes escaped')
})

t.test('principalName: the account\'s userName (as adopted) or the application id; the warm path keeps it', async t => {
  const env = await scimEnv(t)
  const alice = await env.target.materialize(env.request(T.alice))
  t.equal(alice.principalName, 'alice@contoso-test.onmicrosoft.com', 'a created user: its userName, the UPN')
  const etl = await env.target.materialize(env.request(T.etlSp))
  t.equal(etl.principalName, T.etlAppId, 'a service principal: its application id')
  env.resetCalls()
  t.equal((await env.target.materialize(env.request(T.alice))).principalName, 'alice@contoso-test.onmicrosoft.com')
  t.equal((await env.target.materialize(env.request(T.etlSp))).principalName, T.etlAppId)
  t.equal(env.dbCalls().total, 0, 'warm: no call')

  // A user the account already had under another spelling of the name is adopted: the account's name is the one ACLs use.
  await createUser(env.db.api, 'Bob@Contoso-Test.onmicrosoft.com')
  const bob = await env.target.materialize(env.request(T.bob))
  t.equal(bob.principalName, 'Bob@Contoso-Test.onmicrosoft.com')
  env.resetCalls()
  t.equal((await env.replica().materialize(env.request(T.bob))).principalName, 'Bob@Contoso-Test.onmicrosoft.com', 'a cold replica finds the same name')
})

t.test('materializeGroup: the group linked by externalId, no members, its real name; known groups cost nothing', async t => {
  const env = await scimEnv(t)
  const finance = { id: T.finance, displayName: 'Finance', securityEnabled: true }
  const made = await env.target.materializeGroup(T.tenantId, finance)
  const state = await env.state()
  t.equal(state.groups.length, 1)
  t.match(state.groups[0], { id: made.groupId, displayName: withId('Finance', T.finance), externalId: T.finance, members: [] })
  t.same(made, { groupId: state.groups[0]?.id, name: withId('Finance', T.finance) })

  env.resetCalls()
  t.same(await env.target.materializeGroup(T.tenantId, finance), made)
  t.equal(env.dbCalls().total, 0, 'a known group: no call')
  t.same(await env.replica().materializeGroup(T.tenantId, finance), made, 'a cold replica finds it')
  t.notOk(env.dbCalls().routes['POST /api/2.0/accounts/:accountId/scim/v2/Groups'], 'and creates nothing')

  // A principal materialized later uses the same group.
  const bob = await env.target.materialize(env.request(T.bob))
  t.equal(bob.groupIds.get(T.finance), made.groupId)

  // Concurrent calls for one group: one group, one create.
  env.resetCalls()
  const engineering = { id: T.engineering, displayName: 'Engineering', securityEnabled: true }
  const fresh = env.replica()
  await env.db.api('DELETE', `${SCIM}/Groups/${bob.groupIds.get(T.engineering) as string}`)
  const all = await Promise.all(Array.from({ length: 10 }, async () => await fresh.materializeGroup(T.tenantId, engineering)))
  t.equal(new Set(all.map(g => g.groupId)).size, 1)
  t.equal(env.dbCalls().routes['POST /api/2.0/accounts/:accountId/scim/v2/Groups'], 1, 'one create')
})

t.test('materializeGroup: a taken name gives the disambiguated name the account holds', async t => {
  const env = await scimEnv(t, { target: { groupNames: 'display' } })
  await createGroup(env.db.api, 'Finance')
  const made = await env.target.materializeGroup(T.tenantId, { id: T.finance, displayName: 'Finance', securityEnabled: true })
  t.equal(made.name, `Finance (${T.finance.slice(0, 8)})`)
  const state = await env.state()
  t.match(state.groups.find(g => g.id === made.groupId), { displayName: made.name, externalId: T.finance })
  t.equal(state.groups.find(g => g.displayName === 'Finance')?.externalId, null, 'the internal group is left alone')
  // A materialization of a member then knows the name without reading it.
  const bob = await env.target.materialize(env.request(T.bob))
  t.equal(bob.groupIds.get(T.finance), made.groupId)
})

t.test('names no Entra group may take: the system groups\', and those workspace-local groups hold', async t => {
  const users = 'e4000000-0000-4000-8000-000000000004'
  const admins = 'e5000000-0000-4000-8000-000000000005'
  const accountUsers = 'e6000000-0000-4000-8000-000000000006'
  const ops = 'e7000000-0000-4000-8000-000000000007'
  const base = smallTenant()
  const fixture = withUser({
    ...base,
    groups: [
      ...base.groups,
      { id: users, displayName: 'users', members: [] },
      { id: admins, displayName: 'Admins', members: [] },
      { id: accountUsers, displayName: 'account users', members: [] },
      { id: ops, displayName: 'Ops', members: [] }
    ]
  }, { id: 'a0000000-0000-4000-8000-0000000000e5', userPrincipalName: 'mallory@contoso-test.onmicrosoft.com', displayName: 'Mallory' }, [users, admins, accountUsers, ops])
  const collisions: GroupNameCollision[] = []
  const asked: string[][] = []
  // Even with Entra's names as they are, none of these is ever used.
  const env = await scimEnv(t, {
    tenant: fixture,
    target: {
      groupNames: 'display',
      observer: { onGroupNameCollision: c => collisions.push(c) },
      namesHeldLocally: async names => { asked.push(names); return new Set(names.map(n => n.toLowerCase()).filter(n => n === 'ops')) }
    }
  })
  const result = await env.target.materialize(env.request('a0000000-0000-4000-8000-0000000000e5'))
  const state = await env.state()
  const name = (id: string): string | undefined => state.groups.find(g => g.id === result.groupIds.get(id))?.displayName
  t.equal(name(users), withId('users', users))
  t.equal(name(admins), withId('Admins', admins), 'case-insensitive')
  t.equal(name(accountUsers), withId('account users', accountUsers))
  t.equal(name(ops), withId('Ops', ops), 'the name a workspace-local group holds')
  t.same(collisions.map(c => [c.entraGroupId, c.reason]).sort(), [[users, 'reserved'], [admins, 'reserved'], [accountUsers, 'reserved'], [ops, 'workspace-local']].sort(), 'each one reported')
  t.ok(asked.flat().includes('Ops'), 'the candidate names were checked against the workspaces')
})

t.test('a group found under a name it must not have (made before the rule) is renamed', async t => {
  const env = await scimEnv(t, { target: { groupNames: 'display' } })
  // An earlier version created the account group for Entra's `Finance` under the name `Ops`, which a
  // workspace-local group holds too.
  const old = await createGroup(env.db.api, 'Ops', { externalId: T.finance })
  const made = await env.target.materializeGroup(T.tenantId, { id: T.finance, displayName: 'Finance', securityEnabled: true }, { avoidNames: new Set(['ops']) })
  t.equal(made.groupId, old, 'the same group (grants to it stay)')
  t.equal(made.name, 'Finance', 'under the name it should have')
  t.equal((await env.state()).groups.find(g => g.id === old)?.displayName, 'Finance')
  // Asked to avoid its current name again: the next candidate.
  const again = await env.replica().materializeGroup(T.tenantId, { id: T.finance, displayName: 'Finance', securityEnabled: true }, { avoidNames: new Set(['finance']) })
  t.equal(again.name, withId('Finance', T.finance))
})

t.test('names with control characters: escaped in every filter, created and found again', async t => {
  const ids = ['e8000000-0000-4000-8000-000000000001', 'e8000000-0000-4000-8000-000000000002', 'e8000000-0000-4000-8000-000000000003', 'e8000000-0000-4000-8000-000000000004']
  const names = ['Line\nbreak', 'Tab\there', 'Bell\u0001\u001f', 'Trailing\\']
  const base = smallTenant()
  const fixture = withUser({
    ...base,
    groups: [...base.groups, ...ids.map((id, i) => ({ id, displayName: names[i] as string, members: [] }))]
  }, { id: 'a0000000-0000-4000-8000-0000000000e6', userPrincipalName: 'ctl@contoso-test.onmicrosoft.com', displayName: 'Ctl' }, [...ids, T.finance])
  for (const policy of ['display', 'display-with-id'] as const) {
    const env = await scimEnv(t, { tenant: fixture, target: { groupNames: policy } })
    const request = env.request('a0000000-0000-4000-8000-0000000000e6')
    const result = await env.target.materialize(request)
    const state = await env.state()
    for (const [i, id] of ids.entries()) {
      const expected = policy === 'display' ? names[i] : withId(names[i] as string, id)
      t.equal(state.groups.find(g => g.id === result.groupIds.get(id))?.displayName, expected, `${policy}: ${JSON.stringify(names[i])}`)
    }
    t.same(databricksNesting(state, request), entraNesting(request))
    env.resetCalls()
    const again = await env.replica().materialize(request)
    t.same(again.groupIds, result.groupIds, `${policy}: a cold replica finds every one again`)
    t.notOk(env.dbCalls().routes['POST /api/2.0/accounts/:accountId/scim/v2/Groups'], 'and creates nothing')
  }
})

t.test('a group Databricks refuses to create is left out, with a warning; the rest of the login goes on', async t => {
  const skipped: string[] = []
  const env = await scimEnv(t, { target: { observer: { onGroupSkipped: g => skipped.push(g.id) } } })
  // Bob is in Engineering and Finance, and through them in All Staff: Finance is the one group created.
  const allStaff = await createGroup(env.db.api, withId('All Staff', T.allStaff), { externalId: T.allStaff })
  await createGroup(env.db.api, withId('Engineering', T.engineering), { externalId: T.engineering })
  env.db.ctx.faults.add({ route: '/api/2.0/accounts/*/scim/v2/Groups', method: 'POST', status: 400, times: 1 })
  const request = env.request(T.bob)
  const result = await env.target.materialize(request)
  env.db.ctx.faults.remove()
  t.same(skipped, [T.finance], 'Finance was refused and reported')
  t.notOk(result.groupIds.has(T.finance))
  t.equal(result.groupIds.get(T.allStaff), allStaff, 'the other group is there')
  const state = await env.state()
  t.equal(state.users.length, 1, 'bob is materialized')
})

const GROUP_PATCH = 'PATCH /api/2.0/accounts/:accountId/scim/v2/Groups/:id'
const cyclic = { a: 'ca000000-0000-4000-8000-00000000000a', b: 'cb000000-0000-4000-8000-00000000000b' }
const cyril = { id: 'a0000000-0000-4000-8000-0000000000c2', userPrincipalName: 'cyril@contoso-test.onmicrosoft.com', displayName: 'Cyril Cycle' }
const cora = { id: 'a0000000-0000-4000-8000-0000000000c3', userPrincipalName: 'cora@contoso-test.onmicrosoft.com', displayName: 'Cora Cycle' }

t.test('a nesting cycle in Entra (A ⊂ B ⊂ A): the edge closing it is left out and reported, the rest is written', async t => {
  const base = smallTenant()
  // cyril is in Cycle A and Finance; cora in Cycle B.
  const fixture = withUser(withUser({
    ...base,
    groups: [...base.groups, { id: cyclic.a, displayName: 'Cycle A', members: [cyclic.b] }, { id: cyclic.b, displayName: 'Cycle B', members: [cyclic.a] }]
  }, cyril, [cyclic.a, T.finance]), cora, [cyclic.b])
  const skipped: MembershipSkipped[] = []
  const env = await scimEnv(t, { tenant: fixture, target: { observer: { onMembershipSkipped: s => skipped.push(s) } } })
  const request = env.request(cyril.id)
  const result = await env.target.materialize(request)

  t.same(new Set(result.groupIds.keys()), new Set([cyclic.a, cyclic.b, T.finance, T.allStaff]), 'every group of the closure is in the account')
  const state = await env.state()
  const nesting = databricksNesting(state, request)
  t.same(nesting[cyril.id], [cyclic.a, T.finance].sort(), 'cyril\'s memberships')
  t.same(nesting[T.finance], [T.allStaff])
  t.same(nesting[cyclic.a], [cyclic.b], 'Cycle A ⊂ Cycle B: cyril reaches Cycle B through it')
  t.same(nesting[cyclic.b], [], 'Cycle B ⊂ Cycle A would close the cycle: left out')
  t.same(skipped.map(({ detail: _detail, ...rest }) => rest), [{
    parentId: result.groupIds.get(cyclic.a),
    childId: result.groupIds.get(cyclic.b),
    parentEntraId: cyclic.a,
    childEntraId: cyclic.b,
    reason: 'cycle'
  }], 'reported once, with both groups\' ids')
  t.match(skipped[0]?.detail, `Adding group ${result.groupIds.get(cyclic.b) as string} to group ${result.groupIds.get(cyclic.a) as string} would create a cycle.`, 'with Databricks\' answer')
  const user = await env.db.api('GET', `${SCIM}/Users/${result.principalId}`)
  t.ok(user.body.groups.some((g: { value: string }) => g.value === result.groupIds.get(cyclic.b)), 'Databricks counts cyril in Cycle B')

  env.resetCalls()
  t.same(await env.target.materialize(request), result)
  t.equal(env.dbCalls().total, 0, 'a warm materialization with an unchanged request makes no call, the refused edge included')
  t.equal(skipped.length, 1, 'and reports nothing again')

  // cora (in Cycle B) wants the same edge: refused a moment ago, so it is not asked for again, only reported.
  env.resetCalls()
  const coraResult = await env.target.materialize(env.request(cora.id))
  t.equal(env.dbCalls().routes[GROUP_PATCH], 1, 'one PATCH: cora into Cycle B')
  t.same(databricksNesting(await env.state(), env.request(cora.id))[cora.id], [cyclic.b])
  t.match(skipped[1], { parentEntraId: cyclic.a, childEntraId: cyclic.b, reason: 'cycle' })
  t.equal(coraResult.groupIds.size, 2)

  // Another replica (nothing remembered) asks Databricks again: the refusal is not remembered as done.
  env.resetCalls()
  await env.replica({ observer: { onMembershipSkipped: s => skipped.push(s) } }).materialize(request)
  t.equal(env.dbCalls().routes[GROUP_PATCH], 1, 'a cold replica tries the edge once more (refused again)')
  t.match(skipped[2], { parentEntraId: cyclic.a, childEntraId: cyclic.b, reason: 'cycle' })
})

t.test('a batched PATCH with one membership Databricks refuses: that one is left out, the others are written; retried later', async t => {
  const P = 'f0000000-0000-4000-8000-0000000000f0'
  const C = ['f0000000-0000-4000-8000-0000000000f1', 'f0000000-0000-4000-8000-0000000000f2', 'f0000000-0000-4000-8000-0000000000f3']
  const pat = { id: 'a0000000-0000-4000-8000-0000000000f9', userPrincipalName: 'pat@contoso-test.onmicrosoft.com', displayName: 'Pat' }
  const base = smallTenant()
  const fixture = withUser({
    ...base,
    groups: [...base.groups, { id: P, displayName: 'Parent', members: [...C] }, ...C.map((id, i) => ({ id, displayName: `Child ${i + 1}`, members: [] }))]
  }, pat, C)
  let now = 1_700_000_000_000
  const clock = { now: () => now }
  const skipped: MembershipSkipped[] = []
  const env = await scimEnv(t, { tenant: fixture, target: { clock, observer: { onMembershipSkipped: s => skipped.push(s) } } })
  // In the account already: Parent ⊂ X ⊂ Child 2 through an internal group X, so Child 2 cannot join Parent.
  const parent = await createGroup(env.db.api, withId('Parent', P), { externalId: P })
  const x = await createGroup(env.db.api, 'x-internal', { members: [{ value: parent }] })
  await createGroup(env.db.api, withId('Child 2', C[1] as string), { externalId: C[1], members: [{ value: x }] })
  env.resetCalls()

  const request = env.request(pat.id)
  const result = await env.target.materialize(request)
  const nesting = databricksNesting(await env.state(), request)
  t.same(nesting[pat.id], [...C].sort(), 'pat is in the three children')
  t.same(nesting[C[0] as string], [P], 'Child 1 ⊂ Parent')
  t.same(nesting[C[2] as string], [P], 'Child 3 ⊂ Parent')
  t.same(nesting[C[1] as string], [], 'Child 2 ⊂ Parent, refused, is left out')
  t.same(skipped.map(s => [s.parentEntraId, s.childEntraId, s.reason]), [[P, C[1], 'cycle']], 'and reported')
  t.equal(skipped[0]?.parentId, parent)
  // pat into each child (3); Parent's PATCH of three, refused, then in halves: [1, 2] refused, [1], [2], [3] (5).
  t.equal(env.dbCalls().routes[GROUP_PATCH], 3 + 5, 'the refused PATCH is retried in halves down to the refused member')

  env.resetCalls()
  await env.target.materialize(request)
  t.equal(env.dbCalls().total, 0, 'warm and unchanged: no call')

  // The obstacle goes; a changed request soon after does not ask again, one after the refusal's TTL does.
  await env.db.api('PATCH', `${SCIM}/Groups/${x}`, patchBody({ op: 'remove', path: `members[value eq "${parent}"]` }))
  const renamed = { ...request, principal: { ...request.principal, displayName: 'Pat P.' } }
  env.resetCalls()
  await env.target.materialize(renamed)
  t.notOk(env.dbCalls().routes[GROUP_PATCH], 'within the refusal\'s TTL the edge is not asked for')
  t.equal(skipped.length, 2, 'but reported')
  now += 600_001
  await env.target.materialize({ ...request, principal: { ...request.principal, displayName: 'Pat Q.' } })
  t.same(databricksNesting(await env.state(), request)[C[1] as string], [P], 'after it, the next reconcile writes it')
  t.equal(skipped.length, 2, 'without a report')
  t.equal(result.groupIds.size, 4)
})

t.test('more than 10 layers of nesting: the one edge over the limit is left out', async t => {
  const chain = Array.from({ length: 11 }, (_, i) => `c1000000-0000-4000-8000-0000000000${String(i).padStart(2, '0')}`)
  const deep = { id: 'a0000000-0000-4000-8000-0000000000d1', userPrincipalName: 'deep@contoso-test.onmicrosoft.com', displayName: 'Deep' }
  const base = smallTenant()
  // deep ∈ L0 ⊂ L1 ⊂ … ⊂ L10: eleven layers of groups.
  const fixture = withUser({
    ...base,
    groups: [...base.groups, ...chain.map((id, i) => ({ id, displayName: `Layer ${i}`, members: i === 0 ? [] : [chain[i - 1] as string] }))]
  }, deep, [chain[0] as string])
  const skipped: MembershipSkipped[] = []
  const env = await scimEnv(t, { tenant: fixture, target: { observer: { onMembershipSkipped: s => skipped.push(s) } } })
  const request = env.request(deep.id)
  const result = await env.target.materialize(request)
  t.equal(result.groupIds.size, 11, 'every layer is in the account')
  t.equal(skipped.length, 1, 'one edge left out')
  t.equal(skipped[0]?.reason, 'depth')
  const nesting = databricksNesting(await env.state(), request)
  const written = chain.slice(0, -1).filter((id, i) => nesting[id]?.[0] === chain[i + 1])
  t.equal(written.length, 9, 'the other nine edges are written')
  t.same(nesting[deep.id], [chain[0]])
})

t.test('cycleClosingEdges: the edges back into the walk from the principal, in id order', async t => {
  const graph = (edges: Record<string, string[]>): Map<string, Set<string>> => new Map(Object.entries(edges).map(([k, v]) => [k, new Set(v)]))
  t.same(cycleClosingEdges('u', graph({ u: ['a'], a: ['b'], b: ['c'], c: [] })), new Set(), 'a chain: none')
  t.same(cycleClosingEdges('u', graph({ u: ['a'], a: ['b'], b: ['a'] })), new Set(['b|a']), 'A ⊂ B ⊂ A, u in A: B ⊂ A closes it')
  t.same(cycleClosingEdges('u', graph({ u: ['b'], a: ['b'], b: ['a'] })), new Set(['a|b']), 'u in B: A ⊂ B closes it')
  t.same(cycleClosingEdges('u', graph({ u: ['a', 'b'], a: ['b'], b: ['a'] })), new Set(['b|a']), 'u in both: decided by id order')
  t.same(cycleClosingEdges('u', graph({ u: ['a'], a: ['b', 'c'], b: ['d'], c: ['d'], d: [] })), new Set(), 'a diamond is no cycle')
  t.same(cycleClosingEdges('u', graph({ u: ['a'], a: ['b'], b: ['c'], c: ['a'], d: ['e'], e: ['d'] })), new Set(['c|a', 'e|d']), 'a three-cycle, and one the principal does not reach')
  const long = graph(Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`g${i}`, [`g${(i + 1) % 20_000}`]])))
  t.same(cycleClosingEdges('g0', long), new Set(['g19999|g0']), '20,000 groups deep: no stack overflow')
})

t.test('membershipSkipReason: Databricks\' refusals by rule', async t => {
  t.equal(membershipSkipReason('Adding group 1 to group 2 would create a cycle.'), 'cycle')
  t.equal(membershipSkipReason('Adding group 1 to group 2 would nest groups 11 levels deep; the maximum is 10.'), 'depth')
  t.equal(membershipSkipReason('Principal 1 is already a direct member of 1500 groups, the maximum.'), 'limit')
  t.equal(membershipSkipReason('Workspace group x cannot be a member of account group y.'), 'refused')
})
