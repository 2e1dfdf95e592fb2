// What the compose `emulators` service relies on, in process: a certificate naming the host it is reached
// by, an advertised origin that issuers and links use, and the demo workspace seeded before it listens.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Agent, fetch } from 'undici'
import { certificateNames, ensurePki } from '../../emulators/pki.ts'
import { buildEmulator, parseOrigin, startEmulators } from '../../emulators/server.ts'
import { DEMO_DASHBOARD } from '../../emulators/databricks/demo-workspace.ts'
import { DEMO_TENANT_ID } from '../../emulators/tenant/demo.ts'
import { smallTenant } from '../helpers/tenant.ts'

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jir-pki-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

t.test('the server certificate names the hosts asked for, besides loopback, and keeps them', async t => {
  const dir = await tempDir(t)
  const first = await ensurePki(dir, ['emulators'])
  t.ok(certificateNames(first.cert, ['emulators', 'localhost', '127.0.0.1', '::1']))
  t.notOk(certificateNames(first.cert, ['emulators.example.com']), 'no wildcard, no other name')
  t.same(await ensurePki(dir, ['EMULATORS']), first, 'names already held: the same files')
  t.same(await ensurePki(dir), first, 'the loopback names alone: the same files')

  const second = await ensurePki(dir, ['[fd00::1]', 'emulators.internal'])
  t.not(second.ca, first.ca, 'a missing name: a new CA and certificate')
  t.ok(certificateNames(second.cert, ['fd00::1', 'emulators.internal', 'emulators', 'localhost', '::1']), 'the names held before are kept')
  t.equal(await readFile(second.caPath, 'utf8'), second.ca, 'ca.pem is the new CA')
})

t.test('an advertised origin is https://host[:port] and nothing more', async t => {
  t.same(parseOrigin('https://emulators:8443'), { origin: 'https://emulators:8443', hostname: 'emulators' })
  t.same(parseOrigin('https://Emulators:8443/'), { origin: 'https://emulators:8443', hostname: 'emulators' })
  t.same(parseOrigin('https://[::1]:8443'), { origin: 'https://[::1]:8443', hostname: '::1' })
  t.throws(() => parseOrigin('emulators:8443'), /not a URL|must be https/)
  t.throws(() => parseOrigin('not a url'), /is not a URL/)
  t.throws(() => parseOrigin('http://emulators:8443'), /must be https:\/\/host\[:port\]/)
  t.throws(() => parseOrigin('https://emulators:8443/v1.0'), /with no path/)
})

t.test('the emulators advertise their origin and name it in their certificate; the demo workspace is there from the start', async t => {
  const dir = await tempDir(t)
  const emulator = await startEmulators({ port: 0, dataDir: dir, origin: 'https://emulators:8443', demoWorkspace: true })
  t.teardown(emulator.close)
  t.equal(emulator.origin, 'https://emulators:8443')
  t.ok(certificateNames(await readFile(join(dir, 'server.pem'), 'utf8'), ['emulators']))

  const address = emulator.app.server.address()
  const local = `https://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  const dispatcher = new Agent({ connect: { ca: emulator.ca } })
  t.teardown(async () => { await dispatcher.close() })
  const discovery = await (await fetch(`${local}/${DEMO_TENANT_ID}/v2.0/.well-known/openid-configuration`, { dispatcher })).json() as Record<string, string>
  t.equal(discovery.issuer, `https://emulators:8443/${DEMO_TENANT_ID}/v2.0`, 'issuers name the advertised origin, whatever the address called')
  t.equal(discovery.token_endpoint, `https://emulators:8443/${DEMO_TENANT_ID}/oauth2/v2.0/token`)

  const state = await (await fetch(`${local}/_emulator/databricks/state`, { dispatcher })).json() as {
    users: Array<{ userName: string }>
    workspaces: Array<{
      id: string
      assignments: Array<{ principal: { name: string }, permissions: string[] }>
      objects: Array<{ type: string, id: string, path: string, acl: Array<{ principal: { name: string }, level: string }> }>
      dashboards: Array<{ dashboard_id: string, display_name: string, parent_path: string }>
    }>
  }
  const ws = state.workspaces.find(w => w.id === DEMO_DASHBOARD.workspaceId)
  t.match(ws?.dashboards, [{ dashboard_id: DEMO_DASHBOARD.id, display_name: DEMO_DASHBOARD.displayName, parent_path: DEMO_DASHBOARD.folder }])
  t.match(ws?.assignments, [{ principal: { name: 'Databricks Users' }, permissions: ['USER'] }])
  const folder = ws?.objects.find(o => o.type === 'directories' && o.path === DEMO_DASHBOARD.folder)
  t.match(folder?.acl, [{ principal: { name: 'Engineering' }, level: 'CAN_EDIT' }])
  const dashboard = ws?.objects.find(o => o.type === 'dashboards' && o.id === DEMO_DASHBOARD.id)
  t.match(dashboard?.acl, [{ principal: { name: DEMO_DASHBOARD.manager }, level: 'CAN_MANAGE' }])
})

t.test('a wildcard interface is advertised as localhost, which the certificate names', async t => {
  const dir = await tempDir(t)
  const emulator = await startEmulators({ port: 0, host: '0.0.0.0', dataDir: dir })
  t.teardown(emulator.close)
  t.match(emulator.origin, /^https:\/\/localhost:\d+$/)
})

t.test('the demo workspace needs the demo tenant', async t => {
  const dir = await tempDir(t)
  await t.rejects(buildEmulator({ dataDir: dir, tenants: [smallTenant()], demoWorkspace: true }), /the demo workspace needs the demo tenant/)
})
