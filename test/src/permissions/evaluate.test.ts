import t from 'tap'
import { effectivePermission, hasAtLeast, type AclEntry } from '../../../src/permissions/evaluate.ts'
import { UnknownObjectTypeError } from '../../../src/permissions/levels.ts'

const alice = { kind: 'user' as const, userName: 'alice@contoso.com' }
const robot = { kind: 'servicePrincipal' as const, applicationId: '6f1c2d3e-0000-4000-8000-000000000001', databricksId: '123' }

t.test('direct user grant', async t => {
  const r = effectivePermission({
    objectType: 'dashboards',
    acl: [{ user_name: 'Alice@Contoso.com', all_permissions: [{ permission_level: 'CAN_RUN', inherited: false }] },
      { user_name: 'bob@contoso.com', all_permissions: [{ permission_level: 'CAN_MANAGE', inherited: false }] }],
    principal: alice
  })
  t.equal(r.level, 'CAN_RUN')
  t.equal(r.grants.length, 1)
  t.match(r.grants[0], { level: 'CAN_RUN', via: 'user', inherited: false })
  t.equal(r.grants[0]!.reason, "CAN_RUN granted to user 'Alice@Contoso.com', directly on the object")
  t.ok(hasAtLeast(r, 'CAN_READ'))
  t.notOk(hasAtLeast(r, 'CAN_EDIT'))
})

t.test('service principal grant (by application id)', async t => {
  const acl = {
    object_id: '/jobs/42',
    object_type: 'job',
    access_control_list: [
      { service_principal_name: robot.applicationId.toUpperCase(), all_permissions: [{ permission_level: 'CAN_MANAGE_RUN', inherited: false }] },
      { user_name: robot.applicationId, all_permissions: [{ permission_level: 'IS_OWNER', inherited: false }] }
    ]
  }
  const r = effectivePermission({ objectType: 'jobs', acl, principal: robot })
  t.equal(r.level, 'CAN_MANAGE_RUN')
  t.equal(r.grants.length, 1)
  t.match(r.grants[0], { via: 'servicePrincipal', inherited: false })
  t.match(r.grants[0]!.reason, /service principal/)
  // a user with the same name as the SP's user_name entry does not get the SP's grant
  const u = effectivePermission({ objectType: 'jobs', acl, principal: { kind: 'user', userName: 'x@y.com' } })
  t.equal(u.level, null)
})

t.test('user three groups deep under a group granted CAN_EDIT on the parent folder', async t => {
  const acl: AclEntry[] = [
    { user_name: 'owner@contoso.com', all_permissions: [{ permission_level: 'CAN_MANAGE', inherited: false }] },
    { group_name: 'All Staff', all_permissions: [{ permission_level: 'CAN_EDIT', inherited: true, inherited_from_object: ['/directories/123'] }] }
  ]
  const r = effectivePermission({
    objectType: 'dashboards',
    acl,
    principal: alice,
    groups: [
      { name: 'Finance EMEA', path: ['Finance EMEA'] },
      { name: 'Finance', path: ['Finance EMEA', 'Finance'] },
      { name: 'All Staff', path: ['Finance EMEA', 'Finance', 'All Staff'] }
    ]
  })
  t.equal(r.level, 'CAN_EDIT')
  t.equal(r.grants.length, 1)
  t.same(r.grants[0], {
    level: 'CAN_EDIT',
    via: 'group',
    group: 'All Staff',
    groupPath: ['Finance EMEA', 'Finance', 'All Staff'],
    inherited: true,
    inheritedFrom: ['/directories/123'],
    reason: "CAN_EDIT through group 'All Staff' (Finance EMEA ⊂ Finance ⊂ All Staff), inherited from /directories/123"
  })
})

t.test('several grants: the maximum wins and all are listed in order', async t => {
  const r = effectivePermission({
    objectType: 'dashboard',
    acl: [
      { group_name: 'Readers', all_permissions: [{ permission_level: 'CAN_READ', inherited: false }] },
      { user_name: 'alice@contoso.com', all_permissions: [{ permission_level: 'CAN_EDIT', inherited: true, inherited_from_object: ['/directories/9'] }, { permission_level: 'CAN_RUN', inherited: false }] },
      { group_name: 'Editors', all_permissions: [{ permission_level: 'CAN_EDIT', inherited: false }] },
      { group_name: 'Strangers', all_permissions: [{ permission_level: 'CAN_MANAGE', inherited: false }] }
    ],
    principal: alice,
    groups: [
      { name: 'Readers', path: ['Team', 'Readers'] },
      { name: 'Readers', path: ['Readers'] },
      { name: 'Editors', path: ['Editors'] },
      { name: 'Team', path: ['Team'] }
    ]
  })
  t.equal(r.level, 'CAN_EDIT')
  t.same(r.grants.map(g => [g.level, g.via, g.inherited, g.group ?? null]), [
    ['CAN_EDIT', 'group', false, 'Editors'],
    ['CAN_EDIT', 'user', true, null],
    ['CAN_RUN', 'user', false, null],
    ['CAN_READ', 'group', false, 'Readers']
  ])
  t.same(r.grants[3]!.groupPath, ['Readers'], 'the shortest membership path is shown')
  t.equal(r.grants[3]!.reason, "CAN_READ through group 'Readers' (direct member), directly on the object")
  t.equal(r.grants[1]!.reason, "CAN_EDIT granted to user 'alice@contoso.com', inherited from /directories/9")
})

t.test('workspace admins get CAN_MANAGE', async t => {
  const acl: AclEntry[] = [{ user_name: 'alice@contoso.com', all_permissions: [{ permission_level: 'CAN_READ', inherited: false }] }]
  const flagged = effectivePermission({ objectType: 'notebooks', acl, principal: alice, isWorkspaceAdmin: true })
  t.equal(flagged.level, 'CAN_MANAGE')
  t.match(flagged.grants[0], { level: 'CAN_MANAGE', via: 'admins', group: 'admins', inherited: false, reason: 'CAN_MANAGE as a workspace admin' })
  t.equal(flagged.grants.length, 2)

  const member = effectivePermission({ objectType: 'jobs', acl: [], principal: robot, groups: [{ name: 'admins', path: ['admins'] }] })
  t.equal(member.level, 'CAN_MANAGE')
  t.same(member.grants[0]!.groupPath, ['admins'])
  t.match(member.grants[0]!.reason, /workspace admin/)
})

t.test('no grant → null', async t => {
  const r = effectivePermission({
    objectType: 'clusters',
    acl: [{ user_name: 'bob@contoso.com', all_permissions: [{ permission_level: 'CAN_MANAGE', inherited: false }] }],
    principal: alice,
    groups: [{ name: 'Finance', path: ['Finance'] }]
  })
  t.equal(r.level, null)
  t.same(r.grants, [])
  t.notOk(hasAtLeast(r, 'CAN_ATTACH_TO'))
  t.equal(effectivePermission({ objectType: 'clusters', acl: {}, principal: alice }).level, null)
})

t.test('unknown and malformed levels are ignored safely', async t => {
  const r = effectivePermission({
    objectType: 'dashboards',
    acl: [
      { user_name: 'alice@contoso.com', all_permissions: [{ permission_level: 'CAN_MANAGE_RUN', inherited: false }, { permission_level: 'CAN_FLY' }, { inherited: false }, { permission_level: 'CAN_READ', inherited: false }] },
      { user_name: 'alice@contoso.com' },
      null as unknown as AclEntry
    ],
    principal: alice
  })
  t.equal(r.level, 'CAN_READ')
  t.equal(r.grants.length, 1)
  t.same(r.ignored.map(i => i.level), ['CAN_MANAGE_RUN', 'CAN_FLY', undefined])
})

t.test('unknown object type → typed error', async t => {
  t.throws(() => effectivePermission({ objectType: 'spaceships', acl: [], principal: alice }), UnknownObjectTypeError)
})
