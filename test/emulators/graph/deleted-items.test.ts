// Deletion as Entra does it: Graph's and the control API's deletes are soft (deleted items, restorable
// with memberships for 30 days by the emulator clock), lookups answer 404 meanwhile, delta says
// `@removed: changed` for a soft delete and `deleted` for a permanent one or at the end of the 30 days;
// GET/POST restore/DELETE on /directory/deletedItems; group renames through the control API.
import t from 'tap'
import { T, assertGraphError, graphToken, startGraph } from '../../helpers/graph.ts'

const env = await startGraph(t)
const { ctx, origin, call } = env
const writer = await graphToken(ctx, { roles: ['User.ReadWrite.All', 'Group.ReadWrite.All', 'Application.ReadWrite.All'] })
const write: typeof call = async (path, init = {}) => await call(path, { token: writer, ...init })

async function control (method: string, path: string, body?: unknown): Promise<{ status: number, body: any }> {
  const res = await fetch(`${origin}/_emulator${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

/** Follows a delta round to its deltaLink. */
async function round (first: string): Promise<{ items: any[], deltaLink: string }> {
  const items: any[] = []
  let url = first
  for (;;) {
    const res = await call(url)
    if (res.status !== 200) throw new Error(`${url} → ${res.status} ${res.text}`)
    items.push(...res.body.value)
    if (typeof res.body['@odata.nextLink'] === 'string') { url = res.body['@odata.nextLink']; continue }
    return { items, deltaLink: res.body['@odata.deltaLink'] }
  }
}

const ids = (res: { body: any }): string[] => res.body.value.map((v: any) => v.id).sort()

t.test('a soft-deleted user is not found, is listed in deleted items, and comes back with its groups', async t => {
  const users = await round('/v1.0/users/delta?$select=displayName')
  const groups = await round('/v1.0/groups/delta?$select=displayName,members')

  t.equal((await control('DELETE', `/tenant/users/${T.alice}`)).status, 204)
  assertGraphError(t, await call(`/v1.0/users/${T.alice}`), 404, 'Request_ResourceNotFound')
  assertGraphError(t, await call('/v1.0/users/alice@contoso-test.onmicrosoft.com'), 404, 'Request_ResourceNotFound')
  assertGraphError(t, await call(`/v1.0/users/${T.alice}/transitiveMemberOf`), 404, 'Request_ResourceNotFound')
  assertGraphError(t, await call(`/v1.0/directoryObjects/${T.alice}`), 404, 'Request_ResourceNotFound')
  t.notOk(ids(await call(`/v1.0/groups/${T.dataPlatform}/members`)).includes(T.alice), 'not a member meanwhile')

  const listed = await call('/v1.0/directory/deletedItems/microsoft.graph.user')
  t.equal(listed.status, 200)
  t.equal(listed.body['@odata.context'], `${origin}/v1.0/$metadata#users`)
  t.equal(listed.body.value.length, 1)
  const item = listed.body.value[0]
  t.equal(item.id, T.alice)
  t.equal(item.displayName, 'Alice Adams')
  const control$ = (await control('GET', '/tenant/deletedItems')).body.value[0]
  t.equal(item.deletedDateTime, control$.deletedDateTime.replace(/\.\d{3}Z$/, 'Z'), 'deletedDateTime, to the second')
  t.equal(item.userPrincipalName, `${T.alice.replace(/-/g, '')}alice@contoso-test.onmicrosoft.com`, 'the UPN is prefixed, freeing it')
  t.same((await call('/v1.0/directory/deletedItems/microsoft.graph.group')).body.value, [])
  const one = await call(`/v1.0/directory/deletedItems/${T.alice}?$select=id,displayName,deletedDateTime`)
  t.same(one.body, {
    '@odata.context': `${origin}/v1.0/$metadata#directoryObjects(id,displayName,deletedDateTime)/$entity`,
    '@odata.type': '#microsoft.graph.user',
    id: T.alice,
    displayName: 'Alice Adams',
    deletedDateTime: item.deletedDateTime
  })

  t.same((await round(users.deltaLink)).items, [{ id: T.alice, '@removed': { reason: 'changed' } }], 'delta: changed (restorable)')
  const groupRound = await round(groups.deltaLink)
  t.same(groupRound.items.map(i => i.id).sort(), [T.dataPlatform, T.distribution].sort(), 'the groups she was in')
  t.same(groupRound.items.find(i => i.id === T.dataPlatform), {
    displayName: 'Data Platform',
    id: T.dataPlatform,
    'members@delta': [{ '@odata.type': '#microsoft.graph.user', id: T.alice, '@removed': { reason: 'deleted' } }]
  })

  const restored = await write(`/v1.0/directory/deletedItems/${T.alice}/restore`, { method: 'POST' })
  t.equal(restored.status, 200)
  t.match(restored.body, { '@odata.context': `${origin}/v1.0/$metadata#directoryObjects/$entity`, '@odata.type': '#microsoft.graph.user', id: T.alice, userPrincipalName: 'alice@contoso-test.onmicrosoft.com' })
  t.equal((await call(`/v1.0/users/${T.alice}`)).status, 200)
  t.same(ids(await call(`/v1.0/users/${T.alice}/transitiveMemberOf?$select=id`)), [T.allStaff, T.dataPlatform, T.engineering, T.distribution].sort(), 'its groups are back')
  t.same((await call('/v1.0/directory/deletedItems/microsoft.graph.user')).body.value, [])
})

t.test('delta reports a restore as the object, and a permanent delete as deleted', async t => {
  const users = await round('/v1.0/users/delta?$select=displayName')
  await control('DELETE', `/tenant/users/${T.bob}`)
  const soft = await round(users.deltaLink)
  t.same(soft.items, [{ id: T.bob, '@removed': { reason: 'changed' } }])
  t.match((await control('POST', `/tenant/users/${T.bob}/restore`)).body, { id: T.bob, displayName: 'Bob Brown' })
  const restored = await round(soft.deltaLink)
  t.same(restored.items, [{ displayName: 'Bob Brown', id: T.bob }], 'restored: the object again')

  await control('DELETE', `/tenant/users/${T.bob}`)
  t.equal((await write(`/v1.0/directory/deletedItems/${T.bob}`, { method: 'DELETE' })).status, 204, 'permanently deleted from deleted items')
  t.same((await round(restored.deltaLink)).items, [{ id: T.bob, '@removed': { reason: 'deleted' } }], 'soft then permanent in one round: deleted')
  assertGraphError(t, await call(`/v1.0/directory/deletedItems/${T.bob}`), 404, 'Request_ResourceNotFound')
  assertGraphError(t, await write(`/v1.0/directory/deletedItems/${T.bob}/restore`, { method: 'POST' }), 404, 'Request_ResourceNotFound')
})

t.test('deleted items are purged after 30 days by the emulator clock: delta then says deleted', async t => {
  t.teardown(() => { ctx.clock.reset() })
  const users = await round('/v1.0/users/delta?$select=displayName')
  t.equal((await control('DELETE', `/tenant/users/${T.disabled}`)).status, 204)
  let link = (await round(users.deltaLink)).deltaLink
  const listed = await control('GET', '/tenant/deletedItems')
  t.match(listed.body.value, [{ id: T.disabled, kind: 'user', displayName: 'Dan Disabled' }])
  t.equal(Date.parse(listed.body.value[0].purgeDateTime) - Date.parse(listed.body.value[0].deletedDateTime), 30 * 86_400_000)

  // A client that syncs at least weekly (delta tokens last 7 days) sees nothing until the purge.
  for (let day = 6; day < 30; day += 6) {
    ctx.clock.advance(6 * 86_400_000)
    const token = await graphToken(ctx)
    const res = await call(link, { token })
    t.same(res.body.value, [], `day ${day}: still restorable`)
    link = res.body['@odata.deltaLink']
  }
  ctx.clock.advance(6 * 86_400_000)
  const token = await graphToken(ctx)
  const purged = await call(link, { token })
  t.same(purged.body.value, [{ id: T.disabled, '@removed': { reason: 'deleted' } }], 'after 30 days: deleted')
  t.same((await call('/v1.0/directory/deletedItems/microsoft.graph.user', { token })).body.value, [], 'gone from deleted items')
  t.equal((await control('GET', '/tenant/deletedItems')).body.value.length, 0)
  t.equal((await control('POST', `/tenant/users/${T.disabled}/restore`)).status, 404)
})

t.test('groups: soft delete and restore bring back members and parents; distribution groups go at once', async t => {
  const groups = await round('/v1.0/groups/delta?$select=displayName')
  const del = await write(`/v1.0/groups/${T.engineering}`, { method: 'DELETE' })
  t.equal(del.status, 204)
  assertGraphError(t, await call(`/v1.0/groups/${T.engineering}`), 404, 'Request_ResourceNotFound')
  t.same(ids(await call(`/v1.0/groups/${T.allStaff}/members?$select=id`)), [T.finance])
  const listed = await call('/v1.0/directory/deletedItems/microsoft.graph.group?$select=id,displayName,deletedDateTime')
  t.equal(listed.body['@odata.context'], `${origin}/v1.0/$metadata#groups(id,displayName,deletedDateTime)`)
  t.match(listed.body.value, [{ id: T.engineering, displayName: 'Engineering', deletedDateTime: /Z$/ }])
  t.same((await round(groups.deltaLink)).items.find(i => i.id === T.engineering), { id: T.engineering, '@removed': { reason: 'changed' } })

  t.equal((await write(`/v1.0/directory/deletedItems/${T.engineering}/restore`, { method: 'POST' })).status, 200)
  t.same(ids(await call(`/v1.0/groups/${T.engineering}/members?$select=id`)), [T.dataPlatform], 'members restored (Bob was deleted for good above)')
  t.same(ids(await call(`/v1.0/groups/${T.engineering}/memberOf?$select=id`)), [T.allStaff], 'parents restored')

  assertGraphError(t, await write(`/v1.0/groups/${T.distribution}`, { method: 'DELETE' }), 400, 'Request_BadRequest', /distribution list/)
  t.equal((await control('DELETE', `/tenant/groups/${T.distribution}`)).status, 204, 'the control API (an Exchange admin) can')
  t.same((await call('/v1.0/directory/deletedItems/microsoft.graph.group')).body.value, [], 'not in deleted items')
  assertGraphError(t, await call(`/v1.0/groups/${T.distribution}`), 404, 'Request_ResourceNotFound')
})

t.test('service principals are soft-deleted too', async t => {
  t.equal((await control('DELETE', `/tenant/servicePrincipals/${T.etlSp}`)).status, 204)
  assertGraphError(t, await call(`/v1.0/servicePrincipals(appId='${T.etlAppId}')`), 404, 'Request_ResourceNotFound')
  t.same(ids(await call('/v1.0/directory/deletedItems/microsoft.graph.servicePrincipal')), [T.etlSp])
  t.match((await control('POST', `/tenant/servicePrincipals/${T.etlSp}/restore`)).body, { id: T.etlSp, appId: T.etlAppId })
  t.same(ids(await call(`/v1.0/servicePrincipals/${T.etlSp}/memberOf?$select=id`)), [T.dataPlatform])
})

t.test('the control API: permanent deletes, restore conflicts and kinds', async t => {
  const created = await control('POST', '/tenant/users', { id: 'a0000000-0000-4000-8000-0000000000e1', userPrincipalName: 'temp@contoso-test.onmicrosoft.com', displayName: 'Temp' })
  t.equal(created.status, 201)
  t.equal((await control('DELETE', '/tenant/users/a0000000-0000-4000-8000-0000000000e1?permanent=true')).status, 204)
  t.same((await control('GET', '/tenant/deletedItems')).body.value.filter((i: any) => i.id === 'a0000000-0000-4000-8000-0000000000e1'), [])
  t.equal((await control('POST', '/tenant/users/a0000000-0000-4000-8000-0000000000e1/restore')).status, 404)

  // The UPN of a deleted user can be taken; then its restore conflicts.
  await control('DELETE', `/tenant/users/${T.alice}`)
  const squatter = await control('POST', '/tenant/users', { id: 'a0000000-0000-4000-8000-0000000000e2', userPrincipalName: 'alice@contoso-test.onmicrosoft.com', displayName: 'Other Alice' })
  t.equal(squatter.status, 201)
  t.equal((await control('POST', `/tenant/users/${T.alice}/restore`)).status, 409)
  assertGraphError(t, await write(`/v1.0/directory/deletedItems/${T.alice}/restore`, { method: 'POST' }), 400, 'Request_BadRequest', /userPrincipalName/)
  t.equal((await control('DELETE', '/tenant/users/a0000000-0000-4000-8000-0000000000e2?permanent=true')).status, 204)
  t.equal((await control('POST', `/tenant/users/${T.alice}/restore`)).status, 200)

  // Kinds must match the path; a soft-deleted object is found only to purge it.
  t.equal((await control('POST', `/tenant/groups/${T.alice}/restore`)).status, 404)
  await control('DELETE', `/tenant/users/${T.alice}`)
  t.equal((await control('DELETE', `/tenant/users/${T.alice}`)).status, 404, 'already deleted')
  t.equal((await control('DELETE', `/tenant/groups/${T.alice}?permanent=true`)).status, 404)
  t.equal((await control('DELETE', `/tenant/users/${T.alice}?permanent=true`)).status, 204, 'purged')
  t.same((await control('GET', '/tenant/deletedItems')).body.value.filter((i: any) => i.id === T.alice), [])
})

t.test('a group rename through the control API shows in delta', async t => {
  const groups = await round('/v1.0/groups/delta?$select=displayName')
  const renamed = await control('PATCH', `/tenant/groups/${T.finance}`, { displayName: 'Finance & Controlling' })
  t.equal(renamed.status, 200)
  t.match(renamed.body, { id: T.finance, displayName: 'Finance & Controlling' })
  t.equal((await control('PATCH', `/tenant/groups/${T.finance}`, { members: [] })).status, 400, 'members are changed through /tenant/members')
  t.equal((await control('PATCH', '/tenant/groups/d0000000-0000-4000-8000-0000000000ff', { displayName: 'x' })).status, 404)
  t.same((await round(groups.deltaLink)).items, [{ displayName: 'Finance & Controlling', id: T.finance }])
  t.equal((await call(`/v1.0/groups/${T.finance}?$select=displayName`)).body.displayName, 'Finance & Controlling')
})

t.test('Graph: permissions, casts and bad paths', async t => {
  await control('DELETE', `/tenant/groups/${T.finance}`)
  assertGraphError(t, await call(`/v1.0/directory/deletedItems/${T.finance}/restore`, { method: 'POST' }), 403, 'Authorization_RequestDenied')
  assertGraphError(t, await call(`/v1.0/groups/${T.allStaff}`, { method: 'DELETE' }), 403, 'Authorization_RequestDenied')
  const usersOnly = await graphToken(ctx, { roles: ['User.ReadWrite.All'] })
  assertGraphError(t, await call(`/v1.0/directory/deletedItems/${T.finance}/restore`, { method: 'POST', token: usersOnly }), 403, 'Authorization_RequestDenied', undefined)
  const groupReader = await graphToken(ctx, { roles: ['GroupMember.Read.All'] })
  assertGraphError(t, await call('/v1.0/directory/deletedItems/microsoft.graph.user', { token: groupReader }), 403, 'Authorization_RequestDenied')
  t.equal((await call('/v1.0/directory/deletedItems/microsoft.graph.group', { token: groupReader })).status, 200)

  t.same(ids(await call('/v1.0/directory/deleteditems/Microsoft.Graph.Group')), [T.finance], 'path and cast are case-insensitive')
  t.same((await call('/v1.0/directory/deletedItems/microsoft.graph.application')).body.value, [])
  assertGraphError(t, await call('/v1.0/directory/deletedItems'), 400, 'Request_BadRequest', /cast/)
  assertGraphError(t, await call('/v1.0/directory/deletedItems/microsoft.graph.device'), 400, 'BadRequest')
  assertGraphError(t, await call('/v1.0/directory/deletedItems/not-a-guid/restore', { method: 'POST', token: writer }), 400, 'Request_BadRequest')
  assertGraphError(t, await call('/v1.0/directory/deletedItems/microsoft.graph.group/bogus'), 400, 'BadRequest')
  assertGraphError(t, await call('/v1.0/directory/deletedItems/microsoft.graph.group', { method: 'PATCH', body: {} }), 405, 'Request_BadRequest')
  const batch = await call('/v1.0/$batch', {
    token: writer,
    body: { requests: [{ id: '1', method: 'POST', url: `/directory/deletedItems/${T.finance}/restore` }, { id: '2', method: 'GET', url: `/groups/${T.finance}?$select=id`, dependsOn: ['1'] }] }
  })
  t.same(batch.body.responses.map((r: any) => r.status), [200, 200], 'through $batch too')
})
