import t from 'tap'
import { derivedGuid, Directory, DirectoryError, isGuid, type TenantFixture } from '../../../emulators/tenant/model.ts'

const TENANT = '0f5e8a3c-1d2b-4c6e-9f70-8a1b2c3d4e5f'
// Readable fixed ids: the first digit says what it is (1 user, 2 group, 3 service principal, 4 application).
const id = (kind: number, n: number): string => `${kind}0000000-0000-4000-8000-${String(n).padStart(12, '0')}`
const ALICE = id(1, 1)
const BOB = id(1, 2)
const GUEST = id(1, 3)
const ALL = id(2, 1)
const ENG = id(2, 2)
const DATA = id(2, 3)
const SOLO = id(2, 4)
const ETL_SP = id(3, 1)
const ETL_APP = id(4, 1)
const LONE_APP = id(4, 2)

function fixture (): TenantFixture {
  return {
    tenantId: TENANT,
    domain: 'contoso.example',
    users: [
      { id: ALICE, userPrincipalName: 'alice@contoso.example', displayName: 'Alice' },
      { id: BOB, userPrincipalName: 'Bob@Contoso.example', displayName: 'Bob', accountEnabled: false, mail: 'bob@contoso.example', password: 'pw' },
      { id: GUEST, userPrincipalName: 'jane.doe_fabrikam.com#EXT#@contoso.example', displayName: 'Jane' }
    ],
    servicePrincipals: [{ id: ETL_SP, appId: ETL_APP, displayName: 'Nightly ETL' }],
    groups: [
      // All ⊃ Eng ⊃ Data ⊃ {Alice, ETL}; Bob directly in All.
      { id: ALL, displayName: 'All', members: [ENG, BOB] },
      { id: ENG, displayName: 'Engineering', members: [DATA] },
      { id: DATA, displayName: 'Data', members: [ALICE, ETL_SP.toUpperCase()] },
      { id: SOLO, displayName: 'Solo', description: 'alone', securityEnabled: false, mailEnabled: true, members: [] }
    ],
    applications: [
      { appId: ETL_APP, displayName: 'Nightly ETL', secret: 's', roles: ['User.Read.All'] },
      { appId: LONE_APP.toUpperCase(), displayName: 'Lonely app', roles: [] }
    ]
  }
}

const code = (c: DirectoryError['code']) => ({ name: 'Error', code: c })

t.test('loading applies the documented defaults', async t => {
  const dir = new Directory(fixture())
  t.equal(dir.tenantId, TENANT)
  t.equal(dir.displayName, 'contoso.example', 'displayName defaults to the domain')
  t.equal(new Directory({ ...fixture(), displayName: 'Contoso', tenantId: TENANT.toUpperCase() }).tenantId, TENANT, 'tenant id lowercased')

  const alice = dir.user(ALICE)
  t.match(alice, { accountEnabled: true, userType: 'Member', mail: null, givenName: null, surname: null, jobTitle: null, department: null })
  t.notOk(alice !== undefined && 'password' in alice, 'no password unless given')
  t.match(dir.user(BOB), { accountEnabled: false, mail: 'bob@contoso.example', password: 'pw' })
  t.equal(dir.user(GUEST)?.userType, 'Guest', '#EXT# in the UPN makes a guest')
  const explicit = { id: GUEST, userPrincipalName: 'x#EXT#@contoso.example', displayName: 'X', userType: 'Member' as const }
  t.equal(new Directory({ tenantId: TENANT, domain: 'contoso.example', users: [explicit], servicePrincipals: [], groups: [], applications: [] })
    .user(GUEST)?.userType, 'Member', 'an explicit userType wins')

  t.match(dir.groups.get(ALL), { description: null, securityEnabled: true, mailEnabled: false })
  t.match(dir.groups.get(SOLO), { description: 'alone', securityEnabled: false, mailEnabled: true })
  t.match(dir.servicePrincipals.get(ETL_SP), { accountEnabled: true, servicePrincipalType: 'Application', appId: ETL_APP })
})

t.test('an application without a service principal gets a derived one', async t => {
  const dir = new Directory(fixture())
  const sp = dir.servicePrincipalByAppId(LONE_APP)
  t.ok(sp)
  t.equal(sp?.id, derivedGuid(`sp:${LONE_APP}`))
  t.equal(sp?.displayName, 'Lonely app')
  t.equal(dir.servicePrincipalByAppId(ETL_APP.toUpperCase())?.id, ETL_SP, 'a listed one is kept')
  t.equal(dir.servicePrincipals.size, 2)
  t.equal(dir.application(LONE_APP.toUpperCase())?.appId, LONE_APP, 'appIds are lowercased')
  const unnamed = new Directory({ ...fixture(), applications: [{ appId: LONE_APP, roles: [] }] })
  t.equal(unnamed.servicePrincipalByAppId(LONE_APP)?.displayName, LONE_APP, 'named after the appId when the app has no name')
})

t.test('derivedGuid and isGuid', async t => {
  t.equal(derivedGuid('x'), derivedGuid('x'))
  t.not(derivedGuid('x'), derivedGuid('y'))
  t.ok(isGuid(derivedGuid('x')))
  t.match(derivedGuid('x'), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/)
  t.ok(isGuid(TENANT.toUpperCase()))
  t.notOk(isGuid('not-a-guid'))
  t.notOk(isGuid(`${TENANT}0`))
})

t.test('lookups', async t => {
  const dir = new Directory(fixture())
  t.equal(dir.user('BOB@contoso.EXAMPLE')?.id, BOB, 'UPN lookup is case-insensitive')
  t.equal(dir.user(ALICE.toUpperCase())?.id, ALICE)
  t.equal(dir.user('nobody@contoso.example'), undefined)
  t.equal(dir.kindOf(ALICE), 'user')
  t.equal(dir.kindOf(ALL), 'group')
  t.equal(dir.kindOf(ETL_SP), 'servicePrincipal')
  t.equal(dir.kindOf(id(9, 9)), undefined)
  t.equal(dir.get(ALICE)?.kind, 'user')
  t.equal(dir.get(ALL)?.kind, 'group')
  t.equal(dir.get(ETL_SP)?.kind, 'servicePrincipal')
  t.equal(dir.get(id(9, 9)), undefined)
  t.equal(dir.application(id(9, 9)), undefined)
  t.equal(dir.sizeClass, 'S')
  const users = (n: number) => Array.from({ length: n }, (_, i) => ({ id: id(1, i + 1), userPrincipalName: `u${i}@c.example`, displayName: `U${i}` }))
  const sized = (n: number) => new Directory({ tenantId: TENANT, domain: 'c.example', users: users(n), servicePrincipals: [], groups: [], applications: [] }).sizeClass
  t.same([sized(49), sized(50), sized(500), sized(501)], ['S', 'M', 'M', 'L'])
})

t.test('direct and transitive membership', async t => {
  const dir = new Directory(fixture())
  t.same(dir.directMembers(DATA), [ALICE, ETL_SP], 'member ids are lowercased')
  t.same(dir.directParents(ALICE), [DATA])
  t.same(dir.transitiveParents(ALICE), [DATA, ENG, ALL], 'breadth-first, nearest first')
  t.same(dir.transitiveParents(ETL_SP), [DATA, ENG, ALL])
  t.same(dir.transitiveMembers(ALL), [ENG, BOB, DATA, ALICE, ETL_SP])
  t.same(dir.transitiveParents(GUEST), [])
  t.same(dir.directMembers(id(2, 99)), [])
  t.same(dir.transitiveMembers(ALL.toUpperCase()), dir.transitiveMembers(ALL))
})

t.test('a membership cycle terminates and lists each group once', async t => {
  const dir = new Directory(fixture())
  t.equal(dir.addMember(DATA, ALL), true, 'All ⊃ Eng ⊃ Data ⊃ All')
  const parents = dir.transitiveParents(ALICE)
  t.same(new Set(parents), new Set([DATA, ENG, ALL]))
  t.equal(parents.length, 3, 'each group once')
  const members = dir.transitiveMembers(ALL)
  t.equal(members.length, new Set(members).size)
  t.same(new Set(members), new Set([ENG, BOB, DATA, ALICE, ETL_SP]))
  t.same(dir.transitiveParents(ENG), [ALL, DATA], 'a group in a cycle is not listed as its own parent')
  // A two-group cycle too.
  t.equal(dir.addMember(ENG, ALL), true)
  t.equal(dir.transitiveParents(ALICE).length, 3)
})

t.test('addMember and removeMember', async t => {
  const dir = new Directory(fixture(), () => 1234)
  const start = dir.currentSeq
  t.equal(start, 0, 'loading records nothing')
  t.equal(dir.addMember(SOLO, BOB.toUpperCase()), true)
  t.equal(dir.addMember(SOLO, BOB), false, 'adding twice is a no-op')
  t.same(dir.directParents(BOB), [ALL, SOLO])
  t.equal(dir.addMember(SOLO, ETL_SP), true)
  t.equal(dir.addMember(SOLO, ENG), true)
  t.same(dir.transitiveParents(ALICE), [DATA, ENG, ALL, SOLO])

  t.throws(() => dir.addMember(id(2, 99), BOB), code('not-found'))
  t.throws(() => dir.addMember(SOLO, id(1, 99)), code('not-found'))
  t.throws(() => dir.addMember(SOLO, SOLO), code('invalid'))
  t.throws(() => dir.addMember(ALICE, BOB), code('not-found'), 'a user is not a group')

  t.equal(dir.removeMember(SOLO, ENG), true)
  t.equal(dir.removeMember(SOLO, ENG), false)
  t.same(dir.transitiveParents(ALICE), [DATA, ENG, ALL])
  t.same(dir.directParents(ENG), [ALL])
  t.throws(() => dir.removeMember(id(2, 99), BOB), code('not-found'))

  t.same(dir.changesSince(start), [
    { seq: 1, at: 1234, kind: 'group', id: SOLO, op: 'member-added', memberId: BOB, memberKind: 'user' },
    { seq: 2, at: 1234, kind: 'group', id: SOLO, op: 'member-added', memberId: ETL_SP, memberKind: 'servicePrincipal' },
    { seq: 3, at: 1234, kind: 'group', id: SOLO, op: 'member-added', memberId: ENG, memberKind: 'group' },
    { seq: 4, at: 1234, kind: 'group', id: SOLO, op: 'member-removed', memberId: ENG, memberKind: 'group' }
  ])
  t.equal(dir.currentSeq, 4)
})

t.test('delete is soft: the object and its memberships leave every view and wait in deleted items', async t => {
  const dir = new Directory(fixture(), () => 1_000)
  t.equal(dir.delete(ALICE.toUpperCase()), 'user')
  t.equal(dir.user(ALICE), undefined)
  t.equal(dir.user('alice@contoso.example'), undefined)
  t.equal(dir.get(ALICE), undefined)
  t.notOk(dir.directMembers(DATA).includes(ALICE))
  t.same(dir.changesSince(0)?.map(c => [c.op, c.id]), [['member-removed', DATA], ['soft-deleted', ALICE]])
  t.match(dir.deletedItem(ALICE), { kind: 'user', deletedAt: 1_000, object: { id: ALICE, displayName: 'Alice' } })
  t.same([...(dir.deletedItem(ALICE)?.parents ?? [])], [DATA], 'the memberships a restore brings back')
  // The UPN is free for another user; the id stays taken until the item is purged.
  t.doesNotThrow(() => dir.addUser({ id: id(1, 20), userPrincipalName: 'alice@contoso.example', displayName: 'Another Alice' }))
  t.throws(() => dir.addUser({ id: ALICE, userPrincipalName: 'alice2@contoso.example', displayName: 'Alice again' }), code('conflict'))
  t.throws(() => dir.delete(ALICE), code('not-found'), 'deleting twice')

  t.equal(dir.delete(ENG), 'group')
  t.equal(dir.groups.has(ENG), false)
  t.same(dir.directMembers(ALL), [BOB])
  t.same(dir.directParents(DATA), [])
  t.same(dir.transitiveParents(ETL_SP), [DATA])
  t.match(dir.deletedItem(ENG), { kind: 'group', parents: new Set([ALL]), members: new Set([DATA]) })

  t.equal(dir.delete(ETL_SP), 'servicePrincipal')
  t.equal(dir.servicePrincipalByAppId(ETL_APP), undefined)
  t.same(dir.directMembers(DATA), [])
  t.ok(dir.application(ETL_APP), 'the application registration stays')
})

t.test('a distribution group, or a permanent delete, is gone at once; a permanent delete purges a deleted item', async t => {
  const dir = new Directory(fixture())
  dir.addMember(SOLO, BOB)
  t.equal(dir.delete(SOLO), 'group', 'SOLO is mail-enabled and not security-enabled')
  t.equal(dir.deletedItem(SOLO), undefined)
  t.same(dir.changesSince(1)?.map(c => [c.op, c.id]), [['member-removed', SOLO], ['deleted', SOLO]])
  t.doesNotThrow(() => dir.addGroup({ id: SOLO, displayName: 'Solo again' }), 'the id is free')

  const seq = dir.currentSeq
  dir.delete(BOB, { permanent: true })
  t.equal(dir.deletedItem(BOB), undefined)
  t.same(dir.changesSince(seq)?.map(c => [c.op, c.id]), [['member-removed', ALL], ['deleted', BOB]])

  dir.delete(GUEST)
  const before = dir.currentSeq
  t.equal(dir.delete(GUEST, { permanent: true }), 'user', 'purged from deleted items')
  t.equal(dir.deletedItem(GUEST), undefined)
  t.same(dir.changesSince(before)?.map(c => [c.op, c.id]), [['deleted', GUEST]])
  t.throws(() => dir.restore(GUEST), code('not-found'))
})

t.test('restore brings the object back with its memberships, across deleted groups too', async t => {
  const dir = new Directory(fixture())
  dir.delete(ALICE)
  const seq = dir.currentSeq
  t.match(dir.restore(ALICE), { kind: 'user', object: { id: ALICE } })
  t.equal(dir.user('alice@contoso.example')?.id, ALICE)
  t.same(dir.transitiveParents(ALICE), [DATA, ENG, ALL])
  t.same(dir.changesSince(seq)?.map(c => [c.op, c.id, 'memberId' in c ? c.memberId : '']), [['updated', ALICE, ''], ['member-added', DATA, ALICE]])
  t.equal(dir.deletedItem(ALICE), undefined)

  // Both ends deleted: whichever is restored first, the link comes back with the second.
  dir.delete(ALICE)
  dir.delete(DATA)
  dir.restore(ALICE)
  t.same(dir.directParents(ALICE), [], 'Data is still deleted')
  dir.restore(DATA)
  t.same(dir.directMembers(DATA).sort(), [ALICE, ETL_SP].sort())
  t.same(dir.directParents(DATA), [ENG])

  dir.delete(ENG)
  dir.delete(DATA)
  dir.restore(DATA)
  t.same(dir.directParents(DATA), [])
  dir.restore(ENG)
  t.same(dir.transitiveParents(ALICE), [DATA, ENG, ALL], 'the chain is whole again')

  // A link to an object deleted for good does not come back.
  dir.delete(BOB)
  dir.delete(ALL, { permanent: true })
  dir.restore(BOB)
  t.same(dir.directParents(BOB), [])
})

t.test('restore refuses a user whose UPN, or a service principal whose appId, was taken meanwhile', async t => {
  const dir = new Directory(fixture())
  dir.delete(ALICE)
  dir.addUser({ id: id(1, 30), userPrincipalName: 'ALICE@contoso.example', displayName: 'New Alice' })
  t.throws(() => dir.restore(ALICE), code('conflict'))
  t.ok(dir.deletedItem(ALICE), 'still in deleted items')
  dir.delete(id(1, 30), { permanent: true })
  t.equal(dir.restore(ALICE).object.id, ALICE)

  dir.delete(ETL_SP)
  dir.addServicePrincipal({ id: id(3, 30), appId: ETL_APP, displayName: 'replacement' })
  t.throws(() => dir.restore(ETL_SP), code('conflict'))
})

t.test('deleted items are purged 30 days after their deletion, by the clock', async t => {
  let now = 0
  const dir = new Directory(fixture(), () => now)
  dir.delete(ALICE)
  now = 10 * 86_400_000
  dir.delete(ENG)
  now = 30 * 86_400_000 - 1
  dir.settle()
  t.ok(dir.deletedItem(ALICE), 'not yet')
  now = 30 * 86_400_000
  const seq = dir.currentSeq
  dir.settle()
  t.equal(dir.deletedItem(ALICE), undefined, 'purged')
  t.ok(dir.deletedItem(ENG))
  t.same(dir.changesSince(seq), [{ seq: seq + 1, at: 30 * 86_400_000, kind: 'user', id: ALICE, op: 'deleted' }], 'recorded when the retention ended')
  t.same([...(dir.deletedItem(ENG)?.members ?? [])], [DATA])
  now = 41 * 86_400_000
  dir.settle()
  t.equal(dir.deleted.size, 0)
  t.equal(dir.changesSince(seq + 1)?.[0]?.at, 40 * 86_400_000)
})

t.test('a group rename is recorded like any update', async t => {
  const dir = new Directory(fixture())
  t.match(dir.updateGroup(ENG, { displayName: 'Platform Engineering' }), { id: ENG, displayName: 'Platform Engineering', description: null })
  t.same(dir.changesSince(0)?.map(c => [c.op, c.id]), [['updated', ENG]])
  t.throws(() => dir.updateGroup(ALICE, { displayName: 'x' }), code('not-found'))
})

t.test('the listener hears each write as it is made', async t => {
  const heard: string[][] = []
  const dir = new Directory(fixture(), () => 5, changes => heard.push(changes.map(c => `${c.op}:${c.id}`)))
  dir.addMember(SOLO, GUEST)
  dir.addMember(SOLO, GUEST)
  dir.delete(ALICE)
  t.throws(() => dir.delete(ALICE))
  t.same(heard, [[`member-added:${SOLO}`], [`member-removed:${DATA}`, `soft-deleted:${ALICE}`]], 'no-ops and refusals are silent')
})

t.test('replication lag: writes are answered at once and seen by readers only when the lag has passed', async t => {
  let now = 0
  const heard: string[] = []
  const dir = new Directory(fixture(), () => now, changes => heard.push(...changes.map(c => `${c.op}:${c.id}`)))
  dir.setReplicationLag(5_000)
  t.equal(dir.replicationLag, 5_000)
  const carol = dir.addUser({ id: id(1, 40), userPrincipalName: 'carol@contoso.example', displayName: 'Carol' })
  t.equal(carol.displayName, 'Carol', 'the write is answered')
  t.same(heard, [`updated:${id(1, 40)}`], 'and heard at once')
  t.equal(dir.user(id(1, 40)), undefined, 'readers do not see it yet')
  // A later write builds on the earlier one (the primary has it), and a refusal comes from there too.
  dir.addMember(DATA, id(1, 40))
  t.throws(() => dir.addUser({ id: id(1, 41), userPrincipalName: 'CAROL@contoso.example', displayName: 'dup' }), code('conflict'))
  dir.updateGroup(DATA, { displayName: 'Data (renamed)' })
  t.equal(dir.pendingWrites, 3)
  const seq = dir.currentSeq

  now = 4_999
  dir.settle()
  t.equal(dir.user(id(1, 40)), undefined)
  t.equal(dir.groups.get(DATA)?.displayName, 'Data')
  t.equal(dir.currentSeq, seq, 'delta sees nothing yet')

  now = 5_000
  dir.settle()
  t.equal(dir.user(id(1, 40))?.displayName, 'Carol')
  t.ok(dir.directMembers(DATA).includes(id(1, 40)))
  t.equal(dir.groups.get(DATA)?.displayName, 'Data (renamed)')
  t.same(dir.changesSince(seq)?.map(c => [c.op, c.at]), [['updated', 5_000], ['member-added', 5_000], ['updated', 5_000]], 'recorded when visible')
  t.equal(dir.pendingWrites, 0)
  t.equal(heard.length, 3, 'heard once each, when written')

  // Deletion and restore lag too; turning the lag off shows every pending write at once.
  dir.delete(BOB)
  t.ok(dir.user(BOB), 'still visible')
  t.throws(() => dir.delete(BOB), code('not-found'), 'but already deleted on the primary')
  dir.setReplicationLag(0)
  t.equal(dir.user(BOB), undefined)
  t.match(dir.deletedItem(BOB), { deletedAt: 5_000 })
  t.equal(dir.pendingWrites, 0)
  dir.restore(BOB)
  t.ok(dir.user(BOB), 'without a lag, writes are visible at once')
  t.throws(() => dir.setReplicationLag(-1), code('invalid'))
})

t.test('replication lag: a purge is heard when the retention ends on the primary', async t => {
  let now = 0
  const heard: string[] = []
  const dir = new Directory(fixture(), () => now, changes => heard.push(...changes.map(c => `${c.op}:${c.id}`)))
  dir.setReplicationLag(60_000)
  dir.delete(GUEST)
  now = 60_000
  dir.settle()
  t.ok(dir.deletedItem(GUEST))
  now = 30 * 86_400_000
  dir.settle()
  t.same(heard, [`soft-deleted:${GUEST}`, `deleted:${GUEST}`])
  t.ok(dir.deletedItem(GUEST), 'readers still see the deleted item until the lag has passed')
  now += 60_000
  dir.settle()
  t.equal(dir.deletedItem(GUEST), undefined)
})

t.test('updateUser and updateServicePrincipal', async t => {
  const dir = new Directory(fixture())
  const u = dir.updateUser('alice@contoso.example', { displayName: 'Alice M.', jobTitle: 'Engineer', accountEnabled: false, surname: undefined })
  t.match(u, { id: ALICE, displayName: 'Alice M.', jobTitle: 'Engineer', accountEnabled: false, surname: null })
  t.equal(dir.user(ALICE), u, 'updated in place')

  dir.updateUser(ALICE, { userPrincipalName: 'alice.martin@contoso.example' })
  t.equal(dir.user('alice.martin@contoso.example')?.id, ALICE, 'new UPN resolves')
  t.equal(dir.user('alice@contoso.example'), undefined, 'old UPN does not')
  dir.updateUser(ALICE, { userPrincipalName: 'Alice.Martin@contoso.example' })
  t.equal(dir.user('alice.martin@contoso.example')?.userPrincipalName, 'Alice.Martin@contoso.example', 'a case-only change is fine')
  t.throws(() => dir.updateUser(ALICE, { userPrincipalName: 'BOB@contoso.example' }), code('conflict'))
  t.equal(dir.user(ALICE)?.userPrincipalName, 'Alice.Martin@contoso.example', 'a refused change changes nothing')
  t.throws(() => dir.updateUser(id(1, 99), { displayName: 'x' }), code('not-found'))

  const sp = dir.updateServicePrincipal(ETL_SP, { accountEnabled: false })
  t.equal(sp.accountEnabled, false)
  t.throws(() => dir.updateServicePrincipal(id(3, 99), {}), code('not-found'))

  t.same(dir.changesSince(0)?.map(c => [c.kind, c.op, c.id]), [
    ['user', 'updated', ALICE], ['user', 'updated', ALICE], ['user', 'updated', ALICE], ['servicePrincipal', 'updated', ETL_SP]
  ])
})

t.test('addUser, addGroup and addServicePrincipal', async t => {
  const dir = new Directory(fixture())
  dir.addUser({ id: id(1, 10), userPrincipalName: 'carol@contoso.example', displayName: 'Carol' })
  const g = dir.addGroup({ id: id(2, 10), displayName: 'New', members: [id(1, 10), DATA] })
  t.equal(g.securityEnabled, true)
  t.same(dir.directMembers(id(2, 10)), [id(1, 10), DATA])
  dir.addGroup({ id: id(2, 11), displayName: 'Empty' })
  t.same(dir.directMembers(id(2, 11)), [])
  dir.addServicePrincipal({ id: id(3, 10), appId: id(4, 10), displayName: 'New SP' })
  t.equal(dir.servicePrincipalByAppId(id(4, 10))?.id, id(3, 10))
  t.same(dir.changesSince(0)?.map(c => c.op), ['updated', 'updated', 'member-added', 'member-added', 'updated', 'updated'])

  t.throws(() => dir.addUser({ id: id(1, 11), userPrincipalName: 'ALICE@contoso.example', displayName: 'dup' }), code('conflict'))
  t.throws(() => dir.addUser({ id: ALL, userPrincipalName: 'x@contoso.example', displayName: 'dup' }), code('conflict'))
  t.throws(() => dir.addServicePrincipal({ id: id(3, 11), appId: ETL_APP, displayName: 'second' }), code('conflict'))
  t.throws(() => dir.addGroup({ id: id(2, 12), displayName: 'bad', members: [id(1, 99)] }), code('not-found'))
})

t.test('the change log: changesSince and truncateLog', async t => {
  let now = 100
  const dir = new Directory(fixture(), () => now++)
  for (const g of [SOLO, ENG, ALL]) dir.addMember(g, GUEST)
  dir.removeMember(ALL, GUEST)
  t.equal(dir.currentSeq, 4)
  t.same(dir.changesSince(0)?.map(c => [c.seq, c.at]), [[1, 100], [2, 101], [3, 102], [4, 103]])
  t.same(dir.changesSince(2)?.map(c => c.seq), [3, 4])
  t.same(dir.changesSince(4), [], 'nothing new')

  dir.truncateLog(2)
  t.equal(dir.changesSince(0), undefined, 'too old: must resync')
  t.equal(dir.changesSince(1), undefined)
  t.same(dir.changesSince(2)?.map(c => c.seq), [3, 4], 'a token at the truncation point still works')
  t.same(dir.changesSince(3)?.map(c => c.seq), [4])

  dir.truncateLog(1)
  t.same(dir.changesSince(2)?.map(c => c.seq), [3, 4], 'truncating to an older seq drops nothing more')

  dir.addMember(ALL, GUEST)
  dir.truncateLog()
  t.equal(dir.changesSince(4), undefined, 'truncateLog() drops everything')
  t.same(dir.changesSince(5), [])
  t.equal(dir.currentSeq, 5, 'sequence numbers keep counting')
  dir.removeMember(ALL, GUEST)
  t.same(dir.changesSince(5)?.map(c => c.seq), [6])

  dir.truncateLog(100)
  t.same(dir.changesSince(6), [], 'truncating past the end is harmless')
})

t.test('bad fixtures are rejected', async t => {
  const f = fixture
  t.throws(() => new Directory({ ...f(), tenantId: 'nope' }), code('invalid'))
  t.throws(() => new Directory({ ...f(), users: [...f().users, { id: ALICE, userPrincipalName: 'other@contoso.example', displayName: 'x' }] }),
    code('conflict'), 'duplicate user id')
  t.throws(() => new Directory({ ...f(), users: [...f().users, { id: id(1, 9), userPrincipalName: 'ALICE@CONTOSO.EXAMPLE', displayName: 'x' }] }),
    code('conflict'), 'duplicate UPN, whatever the case')
  t.throws(() => new Directory({ ...f(), groups: [...f().groups, { id: ALICE, displayName: 'x', members: [] }] }),
    code('conflict'), 'a group with a user\'s id')
  t.throws(() => new Directory({ ...f(), groups: [...f().groups, { id: 'g1', displayName: 'x', members: [] }] }),
    code('invalid'), 'a non-GUID id')
  t.throws(() => new Directory({ ...f(), groups: [...f().groups, { id: id(2, 9), displayName: 'x', members: [id(1, 99)] }] }),
    code('invalid'), 'an unknown member')
  t.throws(() => new Directory({ ...f(), groups: [...f().groups, { id: id(2, 9), displayName: 'x', members: [id(2, 9)] }] }),
    code('invalid'), 'a group in itself')
  t.throws(() => new Directory({ ...f(), servicePrincipals: [...f().servicePrincipals, { id: id(3, 9), appId: ETL_APP, displayName: 'x' }] }),
    code('conflict'), 'two service principals for one app')
  const err = t.throws(() => new Directory({ ...f(), groups: [{ id: id(2, 9), displayName: 'x', members: [id(1, 99)] }] })) as DirectoryError
  t.ok(err instanceof DirectoryError)
  t.match(err.message, /unknown member/)
})
