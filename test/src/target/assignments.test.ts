// Workspace access against the Databricks emulator over HTTPS (AIM on, so principals and groups come from
// Entra): the permission assignments of a workspace, the DIRECT / INDIRECT / NONE decision with the
// highest level, the identity API's workspace-access-details, an unknown workspace, and the short cache.
import t, { type Test } from 'tap'
import { aimEnv, DEFAULT_WORKSPACE_ID, T, type AimEnv } from '../../helpers/target-aim.ts'
import { decideWorkspaceAccess, WorkspaceNotFoundError, type PermissionAssignment } from '../../../src/target/assignments.ts'
import type { Materialized } from '../../../src/target/port.ts'

const LIST = 'GET /api/2.0/accounts/:accountId/workspaces/:workspaceId/permissionassignments'

interface World { env: AimEnv, alice: Materialized, bob: Materialized, guest: Materialized, etl: Materialized }

/** alice, bob, the guest and the ETL service principal, with their groups, in the account. */
async function world (t: Test): Promise<World> {
  const env = await aimEnv(t)
  const [alice, bob, guest, etl] = await Promise.all([T.alice, T.bob, T.guest, T.etlSp].map(async id => await env.target.materialize(env.request(id)))) as [Materialized, Materialized, Materialized, Materialized]
  return { env, alice, bob, guest, etl }
}
const groupsOf = (m: Materialized): string[] => [...m.groupIds.values()]
const gid = (m: Materialized, entraId: string): string => m.groupIds.get(entraId) as string

t.test('DIRECT (USER and ADMIN), INDIRECT through groups with the highest level, NONE', async t => {
  const { env, alice, bob, guest, etl } = await world(t)
  await env.assign(alice.principalId, ['USER'])
  await env.assign(bob.principalId, ['ADMIN'])
  await env.assign(gid(etl, T.dataPlatform), ['USER'])
  await env.assign(gid(etl, T.engineering), ['ADMIN'])

  const assignments = env.assignments()
  const list = await assignments.forWorkspace(DEFAULT_WORKSPACE_ID)
  const byId = new Map(list.map(a => [a.principalId, a]))
  t.match(byId.get(alice.principalId), { kind: 'user', name: 'alice@contoso-test.onmicrosoft.com', displayName: 'Alice Adams', permissions: ['USER'] })
  t.match(byId.get(bob.principalId), { kind: 'user', permissions: ['ADMIN'] })
  t.match(byId.get(gid(etl, T.engineering)), { kind: 'group', name: 'Engineering', permissions: ['ADMIN'] })
  t.match(byId.get(gid(etl, T.dataPlatform)), { kind: 'group', name: 'Data Platform', permissions: ['USER'] })

  t.same(decideWorkspaceAccess(list, bob.principalId, []), { access: 'DIRECT', permission: 'ADMIN' }, 'bob: DIRECT ADMIN')
  // The ETL service principal is in Data Platform (USER), which is in Engineering (ADMIN): the highest wins.
  t.same(decideWorkspaceAccess(list, etl.principalId, groupsOf(etl)), { access: 'INDIRECT', permission: 'ADMIN', via: [gid(etl, T.engineering)] }, 'etl: INDIRECT ADMIN via Engineering')
  // alice is assigned USER herself and inherits ADMIN from Engineering.
  t.same(decideWorkspaceAccess(list, alice.principalId, groupsOf(alice)), { access: 'DIRECT', permission: 'ADMIN', via: [gid(etl, T.engineering)] }, 'alice: DIRECT, raised to ADMIN by Engineering')
  t.same(decideWorkspaceAccess(list, alice.principalId, []), { access: 'DIRECT', permission: 'USER' }, 'alice on her own: DIRECT USER')
  // The guest is in Finance and All Staff: neither assigned.
  t.same(decideWorkspaceAccess(list, guest.principalId, groupsOf(guest)), { access: 'NONE' }, 'guest: NONE')
  t.same(await assignments.decide(DEFAULT_WORKSPACE_ID, etl.principalId, groupsOf(etl)), { access: 'INDIRECT', permission: 'ADMIN', via: [gid(etl, T.engineering)] }, 'decide() loads and decides')

  // The identity API (AIM) agrees.
  t.match(await assignments.accessDetails(DEFAULT_WORKSPACE_ID, bob.principalId), { access: 'DIRECT', permission: 'ADMIN', principalType: 'USER' })
  t.match(await assignments.accessDetails(DEFAULT_WORKSPACE_ID, etl.principalId), { access: 'INDIRECT', permission: 'ADMIN', principalType: 'SERVICE_PRINCIPAL', status: 'INACTIVE' })
  t.match(await assignments.accessDetails(DEFAULT_WORKSPACE_ID, alice.principalId), { access: 'DIRECT', permission: 'ADMIN' })
  t.same(await assignments.accessDetails(DEFAULT_WORKSPACE_ID, guest.principalId), { access: 'NONE' })
  const camel = env.assignments({ pathStyle: 'camel' })
  t.match(await camel.accessDetails(DEFAULT_WORKSPACE_ID, etl.principalId), { access: 'INDIRECT', permission: 'ADMIN' }, 'the camelCase path too')
})

t.test('INDIRECT: every group granting the highest level is named', async t => {
  const { env, etl } = await world(t)
  await env.assign(gid(etl, T.dataPlatform), ['USER'])
  await env.assign(gid(etl, T.allStaff), ['USER'])
  const list = await env.assignments().forWorkspace(DEFAULT_WORKSPACE_ID)
  const decision = decideWorkspaceAccess(list, etl.principalId, groupsOf(etl))
  t.equal(decision.access, 'INDIRECT')
  t.equal(decision.permission, 'USER')
  t.same(new Set(decision.via), new Set([gid(etl, T.dataPlatform), gid(etl, T.allStaff)]))
})

t.test('decideWorkspaceAccess is pure and picks the highest level', async t => {
  const a = (principalId: string, permissions: PermissionAssignment['permissions'], kind: PermissionAssignment['kind'] = 'group'): PermissionAssignment => ({ principalId, kind, permissions })
  t.same(decideWorkspaceAccess([], 'p', ['g']), { access: 'NONE' })
  t.same(decideWorkspaceAccess([a('p', [], 'user')], 'p', []), { access: 'NONE' }, 'an assignment without a level grants nothing')
  t.same(decideWorkspaceAccess([a('p', ['USER', 'ADMIN'], 'user')], 'p', []), { access: 'DIRECT', permission: 'ADMIN' }, 'ADMIN takes precedence')
  t.same(decideWorkspaceAccess([a('g1', ['USER']), a('g2', ['ADMIN']), a('g3', ['ADMIN'])], 'p', ['g1', 'g2', 'g3']), { access: 'INDIRECT', permission: 'ADMIN', via: ['g2', 'g3'] })
  t.same(decideWorkspaceAccess([a('p', ['ADMIN'], 'user'), a('g1', ['ADMIN'])], 'p', ['g1']), { access: 'DIRECT', permission: 'ADMIN' }, 'a direct ADMIN needs no group to explain it')
  t.same(decideWorkspaceAccess([a('g9', ['ADMIN'])], 'p', ['g1']), { access: 'NONE' }, 'groups the principal is not in do not count')
})

t.test('an unknown workspace is a typed not-found error', async t => {
  const env = await aimEnv(t)
  const assignments = env.assignments()
  const err = await assignments.forWorkspace('999999').catch((e: unknown) => e)
  t.type(err, WorkspaceNotFoundError)
  t.equal((err as WorkspaceNotFoundError).code, 'WORKSPACE_NOT_FOUND')
  t.equal((err as WorkspaceNotFoundError).workspaceId, '999999')
  t.match((err as Error).message, /Workspace 999999 does not exist/)
  t.type(await assignments.accessDetails('999999', '1000000000000001').catch((e: unknown) => e), WorkspaceNotFoundError, 'accessDetails too')
  env.resetCalls()
  t.type(await assignments.forWorkspace('../scim/v2/Users').catch((e: unknown) => e), WorkspaceNotFoundError, 'not an id: refused without a call')
  t.equal(env.dbCalls().total, 0)
  // Not remembered: a failure is not cached.
  await assignments.forWorkspace('999999').catch(() => {})
  t.equal(env.dbCalls().routes[LIST], 1)
})

t.test('the cache coalesces concurrent loads and expires after its TTL', async t => {
  const { env, alice, bob } = await world(t)
  await env.assign(alice.principalId, ['USER'])
  const assignments = env.assignments({ ttlMs: 5_000 })
  env.resetCalls()
  const lists = await Promise.all(Array.from({ length: 20 }, async () => await assignments.forWorkspace(DEFAULT_WORKSPACE_ID)))
  t.equal(env.dbCalls().routes[LIST], 1, '20 concurrent loads, one call')
  t.ok(lists.every(l => JSON.stringify(l) === JSON.stringify(lists[0])), 'every caller gets the same list')
  t.same(lists[0]?.map(a => a.principalId), [alice.principalId])

  // bob is assigned meanwhile: within the TTL the cached list is served, after it the new one.
  await env.assign(bob.principalId, ['ADMIN'])
  env.clock.advance(4_000)
  t.same((await assignments.forWorkspace(DEFAULT_WORKSPACE_ID)).map(a => a.principalId), [alice.principalId], 'still cached')
  t.equal(env.dbCalls().routes[LIST], 1)
  env.clock.advance(1_001)
  const fresh = await assignments.forWorkspace(DEFAULT_WORKSPACE_ID)
  t.equal(env.dbCalls().routes[LIST], 2, 'expired: loaded again')
  t.same(decideWorkspaceAccess(fresh, bob.principalId, []), { access: 'DIRECT', permission: 'ADMIN' }, 'the change is seen')

  // Callers share one frozen list until it is loaded again: none of them can change what the others see.
  t.equal(await assignments.forWorkspace(DEFAULT_WORKSPACE_ID), fresh, 'the same list while cached')
  t.throws(() => { (fresh as PermissionAssignment[]).length = 0 }, TypeError)
  t.throws(() => { (fresh[0]?.permissions as string[]).push('ADMIN') }, TypeError)
  t.equal((await assignments.forWorkspace(DEFAULT_WORKSPACE_ID)).length, 2)
  assignments.invalidate(DEFAULT_WORKSPACE_ID)
  await assignments.forWorkspace(DEFAULT_WORKSPACE_ID)
  t.equal(env.dbCalls().routes[LIST], 3, 'invalidate() forgets')

  // invalidate() during a load: the requests waiting on it still get their answer (lru-cache aborts a
  // fetch whose entry is deleted), and the next one loads again.
  assignments.invalidate(DEFAULT_WORKSPACE_ID)
  const loading = assignments.forWorkspace(DEFAULT_WORKSPACE_ID)
  assignments.invalidate(DEFAULT_WORKSPACE_ID)
  t.equal((await loading).length, 2, 'a load invalidated in flight still answers')
  const everything = assignments.forWorkspace(DEFAULT_WORKSPACE_ID)
  assignments.invalidate()
  t.equal((await everything).length, 2, 'so does one in flight when everything is forgotten')
  await assignments.forWorkspace(DEFAULT_WORKSPACE_ID)
  t.equal(env.dbCalls().routes[LIST], 6, 'neither was kept: the next call loads again')
})

t.test('every page is read', async t => {
  const { env, alice, bob, guest, etl } = await world(t)
  for (const m of [alice, bob, guest, etl]) await env.assign(m.principalId, ['USER'])
  env.resetCalls()
  const list = await env.assignments({ pageSize: 3 }).forWorkspace(DEFAULT_WORKSPACE_ID)
  t.same(new Set(list.map(a => a.principalId)), new Set([alice, bob, guest, etl].map(m => m.principalId)))
  t.equal(env.dbCalls().routes[LIST], 2, 'two pages of three')
  t.match(list.find(a => a.principalId === etl.principalId), { kind: 'servicePrincipal', name: T.etlAppId })
})
