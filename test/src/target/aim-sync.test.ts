// DatabricksAimTarget as TargetSync against the Databricks emulator with automatic identity management on:
// the account follows Entra itself, so every sync operation writes nothing and answers `mirrored`; what a
// change makes stale (a principal's status, a group's id and name) is forgotten, and listMaterialized()
// lists nothing. The caller treats both modes alike.
import t from 'tap'
import { aimEnv, T } from '../../helpers/target-aim.ts'
import { supportsSync, type MaterializedIdentity } from '../../../src/target/port.ts'

const RESOLVE = {
  user: 'POST /api/2.0/identity/accounts/:accountId/users/resolve-by-external-id',
  group: 'POST /api/2.0/identity/accounts/:accountId/groups/resolve-by-external-id',
  pages: 'GET /api/2.0/identity/accounts/:accountId/principals/:principalId/transitive-parent-groups'
}

t.test('every sync operation is mirrored and makes no Databricks call', async t => {
  const env = await aimEnv(t)
  t.ok(supportsSync(env.target))
  await env.target.materialize(env.request(T.alice))
  const before = await env.state()
  env.resetCalls()
  const edge = { groupId: T.dataPlatform, memberId: T.alice, memberKind: 'user' as const }
  t.same(await env.target.setPrincipalActive(T.tenantId, { kind: 'user', id: T.alice }, false), { outcome: 'mirrored' })
  t.same(await env.target.addMembership(T.tenantId, edge), { outcome: 'mirrored' })
  t.same(await env.target.removeMembership(T.tenantId, edge), { outcome: 'mirrored' })
  t.same(await env.target.renameGroup(T.tenantId, { id: T.finance, displayName: 'Money' }), { outcome: 'mirrored' })
  t.same(await env.target.retireGroup(T.tenantId, T.engineering, 'soft-deleted'), { outcome: 'mirrored' })
  t.same(await env.target.retireGroup(T.tenantId, T.engineering, 'deleted'), { outcome: 'mirrored' })
  const listed: MaterializedIdentity[] = []
  for await (const item of env.target.listMaterialized(T.tenantId)) listed.push(item)
  t.same(listed, [], 'nothing to reconcile')
  t.equal(env.dbCalls().total, 0, 'no call')
  t.same(await env.state(), before, 'the account is as it was')
})

t.test('what a change makes stale is forgotten: the next materialization resolves it again', async t => {
  const env = await aimEnv(t)
  const request = env.request(T.alice)
  await env.target.materialize(request)
  env.resetCalls()
  await env.target.materialize(request)
  t.equal(env.dbCalls().total, 0, 'warm')

  await env.target.setPrincipalActive(T.tenantId, { kind: 'user', id: T.alice }, false)
  await env.target.materialize(request)
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1 }, 'the principal\'s status is read again')

  env.resetCalls()
  await env.target.retireGroup(T.tenantId, T.engineering, 'soft-deleted')
  await env.target.renameGroup(T.tenantId, { id: T.dataPlatform, displayName: 'Data' })
  await env.target.materialize(request)
  t.same(env.dbCalls().routes, { [RESOLVE.pages]: 1 }, 'the two groups are read again (one page of alice\'s parent groups: cheaper than two resolves)')

  env.resetCalls()
  await env.target.addMembership(T.tenantId, { groupId: T.finance, memberId: T.alice, memberKind: 'user' })
  await env.target.materialize(request)
  t.equal(env.dbCalls().total, 0, 'a membership change forgets nothing: no membership is cached')

  env.target.invalidate(T.tenantId, { principals: [T.alice], groups: [T.allStaff] })
  await env.target.materialize(request)
  t.same(env.dbCalls().routes, { [RESOLVE.user]: 1, [RESOLVE.group]: 1 }, 'invalidate(): both resolved again')
})
