// The resolver through the service's composition root, against the emulated Graph: group parents,
// invalidation, renamed groups, and the service's own misconfiguration.
import t from 'tap'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { selfSigned } from '../../../emulators/x509.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'

const certificate = await selfSigned('jit-identity-resolver test client')
const fixture = smallTenant()
for (const app of fixture.applications) if (app.appId === T.resolverAppId) app.certificates = [certificate.certPem]
const emulator = await startTestEmulator(t, { tenants: [fixture] })
const { ctx } = emulator
const graphCalls = (): number => Object.entries(ctx.calls.snapshot().routes).filter(([r]) => r.includes(' /v1.0/')).reduce((n, [, c]) => n + c, 0)

t.test('direct parents of many groups: one batched load, then cached', async t => {
  const { resolver } = await startService(t, emulator)
  ctx.calls.reset()
  const parents = await resolver.directParents(T.tenantId, [T.dataPlatform, T.engineering, T.finance, T.allStaff])
  t.same(parents.get(T.dataPlatform), [T.engineering])
  t.same(parents.get(T.engineering), [T.allStaff])
  t.same(parents.get(T.finance), [T.allStaff])
  t.same(parents.get(T.allStaff), [])
  t.equal(ctx.calls.snapshot().routes['POST /v1.0/$batch'], 1, 'one $batch for four groups')
  ctx.calls.reset()
  t.same((await resolver.directParents(T.tenantId, [T.engineering])).get(T.engineering), [T.allStaff])
  t.equal(graphCalls(), 0, 'served from the cache')
})

t.test('invalidate forgets a principal: the next login asks Graph again', async t => {
  const { app, resolver } = await startService(t, emulator)
  const token = await tokenFor(emulator, T.bob)
  const login = async () => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
  await login()
  ctx.calls.reset()
  await login()
  t.equal(graphCalls(), 0, 'warm')
  resolver.invalidate(T.tenantId, { kind: 'user', id: T.bob })
  await login()
  t.ok(graphCalls() >= 2, 'principal and groups fetched again')
})

t.test('a renamed group shows its new name once the groups entry is refreshed', async t => {
  const { resolver } = await startService(t, emulator)
  const before = await resolver.resolve(T.tenantId, { id: T.alice })
  t.ok(before.groups.some(g => g.displayName === 'Data Platform'))
  const group = ctx.tenants.get(T.tenantId)?.groups.get(T.dataPlatform)
  t.ok(group)
  if (group !== undefined) group.displayName = 'Data Platform (renamed)'
  t.teardown(() => { if (group !== undefined) group.displayName = 'Data Platform' })
  ctx.clock.advance(301_000)
  const after = await resolver.resolve(T.tenantId, { id: T.alice })
  t.ok(after.groups.some(g => g.displayName === 'Data Platform (renamed)'))
})

t.test('group paths are remembered while the edges they came from are the cached ones, and computed again after', async t => {
  const { resolver } = await startService(t, emulator)
  const alice = await resolver.resolve(T.tenantId, { id: T.alice })
  const paths = await resolver.groupPaths(alice)
  t.same(paths.get(T.allStaff), [T.dataPlatform, T.engineering, T.allStaff])
  t.equal(resolver.warmGroupPaths(alice), paths, 'remembered')
  ctx.calls.reset()
  t.equal(await resolver.groupPaths(alice), paths)
  t.equal(graphCalls(), 0, 'no directory call')

  // Another group's edges (Finance: not alice's) loaded, then forgotten: nothing these paths came from changed.
  await resolver.directParents(T.tenantId, [T.finance])
  t.equal(resolver.warmGroupPaths(alice), paths, 'a new entry elsewhere changes nothing')
  resolver.forgetGroup(T.tenantId, T.finance)
  t.equal(resolver.warmGroupPaths(alice), paths, 'checked edge by edge after a change elsewhere: still the same')

  // An edge forgotten (a group's membership changed): computed again, from Graph.
  resolver.forgetGroup(T.tenantId, T.allStaff)
  const again = await resolver.resolve(T.tenantId, { id: T.alice })
  t.equal(resolver.warmGroupPaths(again), undefined, 'not served from the old edges')
  t.not(await resolver.groupPaths(again), paths)
  t.same((await resolver.groupPaths(again)).get(T.allStaff), [T.dataPlatform, T.engineering, T.allStaff])

  // An edge expired (CACHE_GROUPS_TTL_SECONDS, 300 s): not served past it.
  const current = await resolver.groupPaths(again)
  ctx.clock.advance(301_000)
  t.equal(resolver.warmGroupPaths(again), undefined, 'expired edges are not vouched for')
  ctx.calls.reset()
  const refreshed = await resolver.resolve(T.tenantId, { id: T.alice })
  t.not(await resolver.groupPaths(refreshed), current)
  t.ok(graphCalls() > 0, 'read from Graph again')
})

t.test('the service authenticates to Entra with a certificate', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'jir-'))
  const path = join(dir, 'client.pem')
  await writeFile(path, certificate.certPem + certificate.keyPem)
  const { app } = await startService(t, emulator, { ENTRA_CLIENT_SECRET: '', ENTRA_CLIENT_CERTIFICATE_PATH: path })
  const res = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, T.alice)}` } })
  t.equal(res.statusCode, 200)

  const broken = join(dir, 'broken.pem')
  await writeFile(broken, certificate.certPem)
  await t.rejects(startService(t, emulator, { ENTRA_CLIENT_SECRET: '', ENTRA_CLIENT_CERTIFICATE_PATH: broken }), /must hold a PEM certificate and its private key/)
})

t.test('an app registration without Graph permissions is a 502 naming the missing permission', async t => {
  const { app } = await startService(t, emulator, { ENTRA_CLIENT_ID: T.readOnlyAppId, ENTRA_CLIENT_SECRET: T.readOnlySecret, ENTRA_AUDIENCES: T.resolverAppId })
  const res = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, T.alice)}` } })
  t.equal(res.statusCode, 502)
  t.match(res.json(), { code: 'DIRECTORY_MISCONFIGURED', detail: /User\.Read\.All|GroupMember\.Read\.All|Directory\.Read\.All/ })
})
