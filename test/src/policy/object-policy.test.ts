import t from 'tap'
import { isAdminOnlyType, managingLevels, mayAskAboutOthers, mayGrant, mayManage, type CallerStanding } from '../../../src/policy/object-policy.ts'
import type { ObjectType, PermissionLevel } from '../../../src/permissions/levels.ts'

const standing = (objectType: ObjectType, level: PermissionLevel | null, isWorkspaceAdmin = false): CallerStanding => ({ objectType, level, isWorkspaceAdmin })

t.test('which levels manage a type', async t => {
  t.same(managingLevels('jobs'), ['CAN_MANAGE', 'IS_OWNER'])
  t.same(managingLevels('dashboards'), ['CAN_MANAGE'])
  t.same(managingLevels('cluster-policies'), [], 'CAN_USE is not a managing level')
  t.ok(isAdminOnlyType('cluster-policies'))
  t.notOk(isAdminOnlyType('warehouses'))
})

t.test('grant caps: what a caller may grant, per type and level', async t => {
  // [type, caller level, admin, requested, target kind, allowed or the refusal]
  const table: Array<[ObjectType, PermissionLevel | null, boolean, PermissionLevel, 'user' | 'servicePrincipal' | 'group', true | string]> = [
    ['jobs', 'CAN_MANAGE', false, 'IS_OWNER', 'user', 'OWNER_NEEDS_ADMIN'],
    ['jobs', 'CAN_MANAGE', false, 'CAN_MANAGE', 'user', true],
    ['jobs', 'CAN_MANAGE', false, 'CAN_MANAGE_RUN', 'group', true],
    ['jobs', 'IS_OWNER', false, 'IS_OWNER', 'user', 'OWNER_NEEDS_ADMIN'],
    ['jobs', 'IS_OWNER', false, 'CAN_MANAGE', 'user', true],
    ['jobs', 'CAN_MANAGE_RUN', false, 'CAN_VIEW', 'user', 'NOT_A_MANAGER'],
    ['jobs', null, true, 'IS_OWNER', 'user', true],
    ['jobs', null, true, 'IS_OWNER', 'servicePrincipal', true],
    ['jobs', null, true, 'IS_OWNER', 'group', 'OWNER_MUST_BE_PRINCIPAL'],
    ['warehouses', 'CAN_MANAGE', false, 'IS_OWNER', 'user', 'OWNER_NEEDS_ADMIN'],
    ['warehouses', 'CAN_MANAGE', false, 'CAN_USE', 'user', true],
    ['pipelines', 'CAN_MANAGE', false, 'IS_OWNER', 'servicePrincipal', 'OWNER_NEEDS_ADMIN'],
    ['notebooks', 'CAN_EDIT', false, 'CAN_MANAGE', 'user', 'NOT_A_MANAGER'],
    ['notebooks', 'CAN_EDIT', false, 'CAN_READ', 'user', 'NOT_A_MANAGER'],
    ['notebooks', 'CAN_MANAGE', false, 'CAN_MANAGE', 'user', true],
    ['notebooks', null, true, 'CAN_MANAGE', 'group', true],
    ['dashboards', null, false, 'CAN_READ', 'user', 'NOT_A_MANAGER'],
    ['cluster-policies', 'CAN_USE', false, 'CAN_USE', 'user', 'ADMIN_ONLY_TYPE'],
    ['cluster-policies', null, true, 'CAN_USE', 'group', true],
    ['registered-models', 'CAN_MANAGE_PRODUCTION_VERSIONS', false, 'CAN_READ', 'user', 'NOT_A_MANAGER']
  ]
  for (const [type, level, admin, requested, kind, expected] of table) {
    const d = mayGrant(standing(type, level, admin), requested, kind)
    const label = `${type}: ${admin ? 'admin' : level ?? 'none'} grants ${requested} to a ${kind}`
    if (expected === true) t.ok(d.allowed, label)
    else {
      t.notOk(d.allowed, label)
      if (!d.allowed) {
        t.equal(d.refusal, expected, label)
        t.match(d.reason, /\S/, 'says why')
      }
    }
  }
})

t.test('a grant never exceeds the caller\'s own level (a manager below the top of a longer order)', async t => {
  // registered-models: CAN_MANAGE is the top, every level below may be granted by a CAN_MANAGE holder.
  for (const level of ['CAN_READ', 'CAN_EDIT', 'CAN_MANAGE_STAGING_VERSIONS', 'CAN_MANAGE_PRODUCTION_VERSIONS', 'CAN_MANAGE'] as const) {
    t.ok(mayGrant(standing('registered-models', 'CAN_MANAGE'), level, 'user').allowed, level)
  }
})

t.test('asking about others', async t => {
  t.ok(mayAskAboutOthers(standing('dashboards', null), ['Identity.Admin']).allowed, 'the app role is enough')
  t.ok(mayAskAboutOthers(standing('dashboards', 'CAN_MANAGE'), []).allowed)
  t.ok(mayAskAboutOthers(standing('jobs', 'IS_OWNER'), []).allowed)
  t.ok(mayAskAboutOthers(standing('cluster-policies', null, true), []).allowed, 'a workspace admin')
  const user = mayAskAboutOthers(standing('cluster-policies', 'CAN_USE'), [])
  t.notOk(user.allowed, 'using a policy is not managing it')
  if (!user.allowed) t.equal(user.refusal, 'ADMIN_ONLY_TYPE')
  const reader = mayAskAboutOthers(standing('dashboards', 'CAN_EDIT'), ['Other.Role'])
  t.notOk(reader.allowed)
  if (!reader.allowed) t.match(reader.reason, /Identity\.Admin/)
})

t.test('managing without any level', async t => {
  const d = mayManage(standing('dashboards', null))
  t.notOk(d.allowed)
  if (!d.allowed) t.match(d.reason, /you have no permission/)
})
