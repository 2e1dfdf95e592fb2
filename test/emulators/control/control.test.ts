import t from 'tap'
import { buildEmulator } from '../../../emulators/server.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'

const json = async (origin: string, method: string, path: string, body?: unknown): Promise<{ status: number, body: any, headers: Headers }> => {
  const res = await fetch(origin + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text), headers: res.headers }
}

t.test('tenants: load, list, generate, replace and remove', async t => {
  const { origin } = await startTestEmulator(t, { tenants: [smallTenant()] })
  const listed = await json(origin, 'GET', '/_emulator/tenant')
  t.match(listed.body, { primaryTenantId: T.tenantId, tenants: [{ tenantId: T.tenantId, users: 4, groups: 5, servicePrincipals: 3 }] })

  const second = await json(origin, 'PUT', '/_emulator/tenant', smallTenant({ tenantId: T.otherTenantId, domain: 'fabrikam.onmicrosoft.com' }))
  t.equal(second.status, 200)
  t.equal((await json(origin, 'GET', '/_emulator/tenant')).body.tenants.length, 2)
  t.equal((await json(origin, 'GET', '/_emulator/tenant')).body.primaryTenantId, T.tenantId, 'the first tenant stays primary')

  const generated = await json(origin, 'POST', '/_emulator/tenant/generate?primary=true', { seed: 7, users: 50, groups: 20, depth: 3 })
  t.equal(generated.status, 200)
  t.match(generated.body, { users: Number, groups: 20 })
  t.equal((await json(origin, 'GET', '/_emulator/tenant')).body.primaryTenantId, generated.body.tenantId)

  t.equal((await json(origin, 'DELETE', `/_emulator/tenant/${T.otherTenantId}`)).status, 204)
  t.equal((await json(origin, 'DELETE', `/_emulator/tenant/${T.otherTenantId}`)).status, 404)
})

t.test('bad fixtures are rejected with a reason, and the emulator keeps serving', async t => {
  const { origin } = await startTestEmulator(t, { tenants: [smallTenant()] })
  const notGuid = await json(origin, 'PUT', '/_emulator/tenant', { ...smallTenant(), tenantId: 'contoso' })
  t.equal(notGuid.status, 400)
  t.match(notGuid.body.error.message, /tenantId/)
  const unknownMember = smallTenant()
  unknownMember.groups[0]?.members.push('99999999-9999-4999-8999-999999999999')
  const bad = await json(origin, 'PUT', '/_emulator/tenant', unknownMember)
  t.equal(bad.status, 400)
  t.match(bad.body.error.message, /unknown member/)
  const duplicate = smallTenant()
  duplicate.users.push({ ...duplicate.users[0]!, id: '99999999-9999-4999-8999-999999999999' })
  t.equal((await json(origin, 'PUT', '/_emulator/tenant', duplicate)).status, 409)
  const notJson = await fetch(origin + '/_emulator/tenant', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"users": [' })
  t.equal(notJson.status, 400)
  t.equal((await json(origin, 'POST', '/_emulator/tenant/generate', { depth: 11 })).status, 400)
  t.equal((await json(origin, 'GET', '/_emulator/tenant')).status, 200)
})

t.test('directory mutations', async t => {
  const { origin, ctx } = await startTestEmulator(t, { tenants: [smallTenant()] })
  const d = ctx.tenants.get(T.tenantId)!
  const seq = d.currentSeq

  t.match((await json(origin, 'POST', '/_emulator/tenant/members', { groupId: T.finance, memberIds: [T.alice, T.etlSp] })).body, { added: 2 })
  t.ok(d.transitiveParents(T.alice).includes(T.finance))
  t.match((await json(origin, 'POST', '/_emulator/tenant/members', { groupId: T.finance, memberId: T.alice })).body, { added: 0 }, 'adding twice changes nothing')
  t.match((await json(origin, 'DELETE', '/_emulator/tenant/members', { groupId: T.finance, memberId: T.alice })).body, { removed: 1 })
  t.notOk(d.transitiveParents(T.alice).includes(T.finance))
  t.equal((await json(origin, 'POST', '/_emulator/tenant/members', { groupId: T.finance, memberId: '99999999-9999-4999-8999-999999999999' })).status, 404)
  t.equal((await json(origin, 'POST', '/_emulator/tenant/members', { groupId: T.finance })).status, 400)

  const disabled = await json(origin, 'PATCH', `/_emulator/tenant/users/${T.alice}`, { accountEnabled: false })
  t.equal(disabled.body.accountEnabled, false)
  t.notOk('password' in disabled.body, 'passwords are never echoed')
  t.equal((await json(origin, 'PATCH', `/_emulator/tenant/users/${T.alice}`, { shoeSize: 44 })).status, 400)
  t.equal((await json(origin, 'PATCH', `/_emulator/tenant/servicePrincipals/${T.etlSp}`, { accountEnabled: false })).body.accountEnabled, false)

  const newUser = { id: 'a0000000-0000-4000-8000-0000000000aa', userPrincipalName: 'new@contoso-test.onmicrosoft.com', displayName: 'New Person' }
  t.equal((await json(origin, 'POST', '/_emulator/tenant/users', newUser)).status, 201)
  t.equal((await json(origin, 'POST', '/_emulator/tenant/users', newUser)).status, 409)
  t.equal((await json(origin, 'POST', '/_emulator/tenant/groups', { id: 'd0000000-0000-4000-8000-0000000000aa', displayName: 'New team', members: [newUser.id] })).status, 201)
  t.equal((await json(origin, 'POST', '/_emulator/tenant/servicePrincipals', { id: 'b0000000-0000-4000-8000-0000000000aa', appId: 'c0000000-0000-4000-8000-0000000000aa', displayName: 'New app' })).status, 201)

  t.equal((await json(origin, 'DELETE', `/_emulator/tenant/groups/${T.alice}`)).status, 404, 'kind must match the path')
  t.equal((await json(origin, 'DELETE', `/_emulator/tenant/users/${T.bob}`)).status, 204)
  t.equal(d.user(T.bob), undefined)
  t.notOk(d.directMembers(T.finance).includes(T.bob), 'a deleted user leaves its groups')
  t.ok(d.currentSeq > seq, 'every mutation is in the change log')
})

t.test('faults: status with Retry-After, limited times, skip, latency, reset', async t => {
  const { origin } = await startTestEmulator(t, { tenants: [smallTenant()] })
  const url = `${origin}/${T.tenantId}/v2.0/.well-known/openid-configuration`
  const added = await json(origin, 'POST', '/_emulator/faults', { route: '/*/v2.0/.well-known/*', status: 503, retryAfter: 2.5, times: 2, skip: 1 })
  t.equal(added.status, 201)
  const statuses = []
  for (let i = 0; i < 4; i++) {
    const res = await fetch(url)
    statuses.push(res.status)
    if (res.status === 503) t.equal(res.headers.get('retry-after'), '2.5')
  }
  t.same(statuses.map(s => s === 503), [false, true, true, false], 'skips one, fails two, then passes')
  t.match((await json(origin, 'GET', '/_emulator/faults')).body.faults, [{ matched: 4 }])
  t.equal((await json(origin, 'DELETE', '/_emulator/faults')).body.removed, 1)

  const slow = await json(origin, 'POST', '/_emulator/faults', { route: '^/common/discovery/keys$', latencyMs: 150 })
  const started = Date.now()
  t.equal((await fetch(`${origin}/common/discovery/keys`)).status, 200)
  t.ok(Date.now() - started >= 140, 'latency is injected')
  t.equal((await json(origin, 'DELETE', `/_emulator/faults/${String(slow.body.faults[0].id)}`)).status, 200)
  t.equal((await json(origin, 'DELETE', `/_emulator/faults/${String(slow.body.faults[0].id)}`)).status, 404)

  await json(origin, 'POST', '/_emulator/faults', { route: '/common/discovery/keys', reset: true, times: 1 })
  await t.rejects(fetch(`${origin}/common/discovery/keys`), 'the connection is dropped')
  t.equal((await fetch(`${origin}/common/discovery/keys`)).status, 200, 'and the emulator keeps serving')

  t.equal((await json(origin, 'POST', '/_emulator/faults', { route: '/x', status: 42 })).status, 400)
})

t.test('a hanging route never answers until the client gives up', async t => {
  const { origin } = await startTestEmulator(t, { tenants: [smallTenant()] })
  await json(origin, 'POST', '/_emulator/faults', { route: '/common/discovery/keys', timeout: true, hangMs: 1000, times: 1 })
  await t.rejects(fetch(`${origin}/common/discovery/keys`, { signal: AbortSignal.timeout(300) }), { name: 'TimeoutError' })
})

t.test('call counts per route, and reset', async t => {
  const { origin } = await startTestEmulator(t, { tenants: [smallTenant()] })
  await json(origin, 'DELETE', '/_emulator/calls')
  await fetch(`${origin}/common/discovery/keys`)
  await fetch(`${origin}/common/discovery/keys`)
  const calls = await json(origin, 'GET', '/_emulator/calls')
  t.equal(calls.body.total, 2)
  t.equal(Object.values(calls.body.routes)[0], 2)
  t.equal((await json(origin, 'DELETE', '/_emulator/calls')).status, 204)
  t.equal((await json(origin, 'GET', '/_emulator/calls')).body.total, 0, 'control calls are not counted')
})

t.test('the clock moves forward on request and resets', async t => {
  const { origin, ctx } = await startTestEmulator(t, { tenants: [smallTenant()] })
  const before = ctx.clock.now()
  const moved = await json(origin, 'POST', '/_emulator/clock', { advanceSeconds: 3600 })
  t.equal(moved.body.offsetSeconds, 3600)
  t.ok(ctx.clock.now() - before >= 3_600_000)
  t.equal((await json(origin, 'POST', '/_emulator/clock', { advanceSeconds: -5 })).status, 400)
  t.equal((await json(origin, 'DELETE', '/_emulator/clock')).body.offsetSeconds, 0)
})

t.test('the control API refuses callers that are not on loopback', async t => {
  const { app } = await buildEmulator({ tenants: [smallTenant()] })
  t.teardown(async () => await app.close())
  const forbidden = await app.inject({ method: 'GET', url: '/_emulator/calls', remoteAddress: '10.1.2.3' })
  t.equal(forbidden.statusCode, 403)
  t.match(forbidden.json(), { error: { code: 'forbidden' } })
  t.equal((await app.inject({ method: 'GET', url: '/_emulator/calls', remoteAddress: '127.0.0.1' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/_emulator/calls', remoteAddress: '::ffff:127.0.0.1' })).statusCode, 200)
})
