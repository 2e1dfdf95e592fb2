// The replication lag knob: a write becomes visible to reads and to delta only N seconds (emulator clock)
// after it is made, as Graph's processing delays allow; the write itself is answered at once.
import t from 'tap'
import { T, assertGraphError, graphToken, smallTenant, startGraph } from '../../helpers/graph.ts'

const env = await startGraph(t)
const { ctx, origin } = env
let token = env.token
const call: typeof env.call = async (path, init = {}) => await env.call(path, { token, ...init })
const advance = async (seconds: number): Promise<void> => {
  ctx.clock.advance(seconds * 1000)
  token = await graphToken(ctx)
}
t.teardown(() => { ctx.clock.reset() })

async function control (method: string, path: string, body?: unknown): Promise<{ status: number, body: any }> {
  const res = await fetch(`${origin}/_emulator${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

const NEWBIE = 'a0000000-0000-4000-8000-0000000000f1'

t.test('the knob: default 0, set, read back, refused when invalid', async t => {
  t.same((await control('GET', '/graph/replication')).body, { lagSeconds: 0, pendingWrites: { [T.tenantId]: 0 } })
  t.equal((await control('PUT', '/graph/replication', { lagSeconds: -1 })).status, 400)
  t.equal((await control('PUT', '/graph/replication', { lagSeconds: 5, extra: true })).status, 400)
  t.same((await control('PUT', '/graph/replication', { lagSeconds: 30 })).body, { lagSeconds: 30, pendingWrites: { [T.tenantId]: 0 } })
})

t.test('a created user, a rename and a membership are seen only after the lag', async t => {
  const users = (await call('/v1.0/users/delta?$deltatoken=latest&$select=displayName')).body['@odata.deltaLink']
  const groups = (await call('/v1.0/groups/delta?$deltatoken=latest&$select=displayName,members')).body['@odata.deltaLink']

  const created = await control('POST', '/tenant/users', { id: NEWBIE, userPrincipalName: 'newbie@contoso-test.onmicrosoft.com', displayName: 'New Bie' })
  t.equal(created.status, 201, 'the write is answered at once')
  t.equal((await control('POST', '/tenant/members', { groupId: T.finance, memberId: NEWBIE })).status, 200, 'and later writes build on it')
  t.equal((await control('POST', '/tenant/users', { id: 'a0000000-0000-4000-8000-0000000000f2', userPrincipalName: 'NEWBIE@contoso-test.onmicrosoft.com', displayName: 'dup' })).status, 409,
    'conflicts come from the written state')
  t.equal((await control('PATCH', `/tenant/groups/${T.engineering}`, { displayName: 'Platform' })).status, 200)
  t.same((await control('GET', '/graph/replication')).body.pendingWrites, { [T.tenantId]: 3 })

  assertGraphError(t, await call(`/v1.0/users/${NEWBIE}`), 404, 'Request_ResourceNotFound')
  t.equal((await call(`/v1.0/groups/${T.engineering}?$select=displayName`)).body.displayName, 'Engineering', 'the old name meanwhile')
  t.same((await call(users)).body.value, [], 'delta: nothing yet')
  const quiet = await call(groups)
  t.same(quiet.body.value, [])

  await advance(29)
  assertGraphError(t, await call(`/v1.0/users/${NEWBIE}`), 404, 'Request_ResourceNotFound')
  await advance(1)
  t.equal((await call(`/v1.0/users/${NEWBIE}?$select=displayName`)).body.displayName, 'New Bie')
  t.equal((await call(`/v1.0/groups/${T.engineering}?$select=displayName`)).body.displayName, 'Platform')
  t.same((await call(`/v1.0/users/${NEWBIE}/memberOf?$select=id`)).body.value.map((g: any) => g.id).sort(), [T.finance])
  t.same((await call(users)).body.value, [{ displayName: 'New Bie', id: NEWBIE }])
  const changed = (await call(quiet.body['@odata.deltaLink'])).body.value
  t.same(changed.map((g: any) => g.id).sort(), [T.engineering, T.finance].sort())
  t.same(changed.find((g: any) => g.id === T.finance)['members@delta'], [{ '@odata.type': '#microsoft.graph.user', id: NEWBIE }])
})

t.test('a soft delete lags too; lag 0 shows every pending write at once', async t => {
  t.equal((await control('DELETE', `/tenant/users/${NEWBIE}`)).status, 204)
  t.equal((await call(`/v1.0/users/${NEWBIE}`)).status, 200, 'still there for readers')
  t.same((await call('/v1.0/directory/deletedItems/microsoft.graph.user')).body.value, [])
  t.equal((await control('DELETE', `/tenant/users/${NEWBIE}`)).status, 404, 'but gone for writers')
  const quick = 'a0000000-0000-4000-8000-0000000000f3'
  t.equal((await control('POST', '/tenant/users', { id: quick, userPrincipalName: 'quick@contoso-test.onmicrosoft.com', displayName: 'Quick' })).status, 201)
  t.equal((await control('DELETE', `/tenant/users/${quick}`)).status, 204, 'the control API writes before readers see it')
  t.equal((await control('POST', `/tenant/users/${quick}/restore`)).status, 200)
  t.same((await control('PUT', '/graph/replication', { lagSeconds: 0 })).body, { lagSeconds: 0, pendingWrites: { [T.tenantId]: 0 } })
  assertGraphError(t, await call(`/v1.0/users/${NEWBIE}`), 404, 'Request_ResourceNotFound')
  t.same((await call('/v1.0/directory/deletedItems/microsoft.graph.user')).body.value.map((u: any) => u.id), [NEWBIE])
  t.equal((await call(`/v1.0/users/${quick}?$select=displayName`)).body.displayName, 'Quick')
})

t.test('a sign-in waits for the lag as well, and a tenant loaded later gets the lag', async t => {
  await control('PUT', '/graph/replication', { lagSeconds: 10 })
  await control('PATCH', `/tenant/users/${T.bob}`, { accountEnabled: false })
  const signIn = async (): Promise<number> => (await fetch(`${origin}/${T.tenantId}/oauth2/v2.0/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'password', client_id: T.resolverAppId, client_secret: T.resolverSecret, username: 'bob@contoso-test.onmicrosoft.com', password: T.password, scope: `api://${T.resolverAppId}/.default` })
  })).status
  t.equal(await signIn(), 200, 'not disabled yet where the STS reads')
  await advance(10)
  t.equal(await signIn(), 400, 'disabled once the lag has passed')

  const other = smallTenant({ tenantId: T.otherTenantId, domain: 'other.example' })
  t.equal((await control('PUT', '/tenant', other)).status, 200)
  t.equal(ctx.tenants.get(T.otherTenantId)?.replicationLag, 10_000)
  await control('PUT', '/graph/replication', { lagSeconds: 0 })
  t.equal(ctx.tenants.get(T.otherTenantId)?.replicationLag, 0)
})
