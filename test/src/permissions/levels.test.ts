import t from 'tap'
import {
  adminLevel,
  compareLevels,
  InvalidPermissionLevelError,
  isLevelOf,
  levelsFor,
  maxLevel,
  normalizeObjectType,
  parseLevel,
  PermissionsError,
  tryParseLevel,
  UnknownObjectTypeError
} from '../../../src/permissions/levels.ts'

t.test('level sets per object type, lowest first', async t => {
  t.same(levelsFor('dashboards'), ['CAN_READ', 'CAN_RUN', 'CAN_EDIT', 'CAN_MANAGE'])
  t.same(levelsFor('directories'), ['CAN_READ', 'CAN_RUN', 'CAN_EDIT', 'CAN_MANAGE'])
  t.same(levelsFor('notebooks'), ['CAN_READ', 'CAN_RUN', 'CAN_EDIT', 'CAN_MANAGE'])
  t.same(levelsFor('jobs'), ['CAN_VIEW', 'CAN_MANAGE_RUN', 'CAN_MANAGE', 'IS_OWNER'])
  t.same(levelsFor('clusters'), ['CAN_ATTACH_TO', 'CAN_RESTART', 'CAN_MANAGE'])
  t.same(levelsFor('warehouses'), ['CAN_VIEW', 'CAN_MONITOR', 'CAN_USE', 'CAN_MANAGE', 'IS_OWNER'])
  t.same(levelsFor('cluster-policies'), ['CAN_USE'])
})

t.test('object type spellings', async t => {
  t.equal(normalizeObjectType('dashboard'), 'dashboards')
  t.equal(normalizeObjectType('Folders'), 'directories')
  t.equal(normalizeObjectType('directory'), 'directories')
  t.equal(normalizeObjectType('/sql/warehouses/'), 'warehouses')
  t.equal(normalizeObjectType('cluster'), 'clusters')
  t.equal(normalizeObjectType('job'), 'jobs')
})

t.test('unknown object type is a typed error', async t => {
  const err = t.throws(() => levelsFor('spaceships')) as UnknownObjectTypeError
  t.ok(err instanceof UnknownObjectTypeError)
  t.ok(err instanceof PermissionsError)
  t.equal(err.code, 'UNKNOWN_OBJECT_TYPE')
  t.equal(err.objectType, 'spaceships')
  t.throws(() => normalizeObjectType('toString'), UnknownObjectTypeError)
  t.throws(() => compareLevels('spaceships', 'CAN_READ', 'CAN_EDIT'), UnknownObjectTypeError)
})

t.test('a level of another type is rejected', async t => {
  t.notOk(isLevelOf('dashboards', 'CAN_MANAGE_RUN'))
  t.ok(isLevelOf('jobs', 'CAN_MANAGE_RUN'))
  t.notOk(isLevelOf('dashboards', 'IS_OWNER'))
  t.notOk(isLevelOf('clusters', 'CAN_READ'))
  const err = t.throws(() => parseLevel('dashboards', 'CAN_MANAGE_RUN')) as InvalidPermissionLevelError
  t.ok(err instanceof InvalidPermissionLevelError)
  t.equal(err.code, 'INVALID_PERMISSION_LEVEL')
  t.equal(err.objectType, 'dashboards')
  t.equal(err.level, 'CAN_MANAGE_RUN')
  t.same(err.allowed, ['CAN_READ', 'CAN_RUN', 'CAN_EDIT', 'CAN_MANAGE'])
  t.throws(() => compareLevels('dashboards', 'CAN_MANAGE_RUN', 'CAN_READ'), InvalidPermissionLevelError)
  t.equal(tryParseLevel('dashboards', 42), undefined)
})

t.test('deprecated CAN_VIEW on legacy SQL dashboards reads as CAN_READ', async t => {
  t.equal(parseLevel('dbsql-dashboards', 'CAN_VIEW'), 'CAN_READ')
  t.notOk(isLevelOf('dashboards', 'CAN_VIEW'))
})

t.test('compare and max', async t => {
  t.ok(compareLevels('dashboards', 'CAN_READ', 'CAN_RUN') < 0)
  t.ok(compareLevels('dashboards', 'CAN_MANAGE', 'CAN_EDIT') > 0)
  t.equal(compareLevels('jobs', 'CAN_MANAGE', 'CAN_MANAGE'), 0)
  t.ok(compareLevels('jobs', 'IS_OWNER', 'CAN_MANAGE') > 0)
  t.ok(compareLevels('clusters', 'CAN_RESTART', 'CAN_ATTACH_TO') > 0)
  t.equal(maxLevel('notebooks', ['CAN_RUN', 'CAN_EDIT', 'CAN_READ']), 'CAN_EDIT')
  t.equal(maxLevel('notebooks', []), null)
})

t.test('admin level', async t => {
  t.equal(adminLevel('dashboards'), 'CAN_MANAGE')
  t.equal(adminLevel('jobs'), 'CAN_MANAGE')
  t.equal(adminLevel('cluster-policies'), 'CAN_USE')
})
