// Delta queries: the initial round (paged, ending in a deltaLink), later rounds replaying Directory
// mutations (updates, deletions as @removed, membership as members@delta), $deltatoken=latest, and
// the 410 resync for tokens older than 7 days or older than the change log. Soft deletion, restore and
// purge as delta reports them are in deleted-items.test.ts.
import t from 'tap'
import type { Directory } from '../../../emulators/tenant/model.ts'
import { T, assertGraphError, graphToken, startGraph } from '../../helpers/graph.ts'

const env = await startGraph(t)
const { ctx, origin } = env
const directory = ctx.tenants.get(T.tenantId) as Directory
let token = env.token
const call: typeof env.call = async (path, init = {}) => await env.call(path, { token, ...init })

interface Round { pages: any[], items: any[], deltaLink: string }

/** Follows nextLinks to the deltaLink, as a sync client does. */
async function round (first: string, headers: Record<string, string> = {}): Promise<Round> {
  const pages: any[] = []
  let url = first
  for (;;) {
    const res = await call(url, { headers })
    if (res.status !== 200) throw new Error(`${url} → ${res.status} ${res.text}`)
    pages.push(res.body)
    if (typeof res.body['@odata.nextLink'] === 'string') {
      if ('@odata.deltaLink' in res.body) throw new Error('a page with both a nextLink and a deltaLink')
      url = res.body['@odata.nextLink']
      continue
    }
    return { pages, items: pages.flatMap(p => p.value), deltaLink: res.body['@odata.deltaLink'] }
  }
}

const byId = (items: any[]): Map<string, any> => new Map(items.map(i => [i.id, i]))

t.test('users: initial round, no-change round, then updates, additions and deletions', async t => {
  const initial = await round('/v1.0/users/delta?$select=displayName,accountEnabled', { Prefer: 'odata.maxpagesize=3' })
  t.same(initial.pages.map(p => p.value.length), [3, 1])
  const first = initial.pages[0]
  t.equal(first['@odata.context'], `${origin}/v1.0/$metadata#users(displayName,accountEnabled)`)
  t.match(first['@odata.nextLink'], new RegExp(`^${origin.replace(/\./g, '\\.')}/v1\\.0/users/delta\\?\\$skiptoken=`))
  t.match(initial.deltaLink, new RegExp(`^${origin.replace(/\./g, '\\.')}/v1\\.0/users/delta\\?\\$deltatoken=`))
  t.same(initial.items.map(i => i.id).sort(), [T.alice, T.bob, T.guest, T.disabled].sort(), 'every user once')
  t.same(Object.keys(initial.items[0]).sort(), ['accountEnabled', 'displayName', 'id'], 'selected properties plus id')

  const quiet = await round(initial.deltaLink)
  t.same(quiet.items, [], 'no changes: empty value and a new deltaLink')
  t.type(quiet.deltaLink, 'string')

  directory.updateUser(T.bob, { accountEnabled: false })
  directory.addUser({ id: 'a0000000-0000-4000-8000-0000000000d1', userPrincipalName: 'newbie@contoso-test.onmicrosoft.com', displayName: 'New Bie' })
  directory.delete(T.guest)
  const next = await round(quiet.deltaLink)
  const changed = byId(next.items)
  t.equal(next.items.length, 3)
  t.same(changed.get(T.bob), { displayName: 'Bob Brown', accountEnabled: false, id: T.bob })
  t.same(changed.get('a0000000-0000-4000-8000-0000000000d1'), { displayName: 'New Bie', accountEnabled: true, id: 'a0000000-0000-4000-8000-0000000000d1' })
  t.same(changed.get(T.guest), { id: T.guest, '@removed': { reason: 'changed' } }, 'soft-deleted: restorable')

  const after = await round(next.deltaLink)
  t.same(after.items, [], 'changes are reported once')
})

t.test('groups: members@delta in the initial round and for membership changes', async t => {
  const initial = await round('/v1.0/groups/delta?$select=displayName,members')
  const groups = byId(initial.items)
  t.equal(groups.size, 5)
  t.same(groups.get(T.engineering), {
    displayName: 'Engineering',
    id: T.engineering,
    'members@delta': [
      { '@odata.type': '#microsoft.graph.user', id: T.bob },
      { '@odata.type': '#microsoft.graph.group', id: T.dataPlatform }
    ].sort((a, b) => a.id.localeCompare(b.id))
  })
  t.equal(initial.pages[0]['@odata.context'], `${origin}/v1.0/$metadata#groups(displayName)`)

  directory.addMember(T.finance, T.alice)
  directory.removeMember(T.engineering, T.bob)
  directory.delete(T.distribution)
  const next = await round(initial.deltaLink)
  const changed = byId(next.items)
  t.same(changed.get(T.finance), { displayName: 'Finance', id: T.finance, 'members@delta': [{ '@odata.type': '#microsoft.graph.user', id: T.alice }] })
  t.same(changed.get(T.engineering), { displayName: 'Engineering', id: T.engineering, 'members@delta': [{ '@odata.type': '#microsoft.graph.user', id: T.bob, '@removed': { reason: 'deleted' } }] })
  t.same(changed.get(T.distribution), { id: T.distribution, '@removed': { reason: 'deleted' } }, 'a distribution group is deleted for good')
  t.equal(next.items.length, 3, 'untouched groups are not repeated')

  // Without members, membership changes do not show; with $expand=members they do.
  const plain = await round('/v1.0/groups/delta?$select=displayName')
  const expanded = await round('/v1.0/groups/delta?$expand=members')
  directory.addMember(T.dataPlatform, T.bob)
  t.same((await round(plain.deltaLink)).items, [])
  const viaExpand = await round(expanded.deltaLink)
  t.equal(viaExpand.items.length, 1)
  t.same(viaExpand.items[0]['members@delta'], [{ '@odata.type': '#microsoft.graph.user', id: T.bob }])
  t.equal(viaExpand.items[0].securityEnabled, true, 'default properties without $select')
})

t.test('servicePrincipals delta and a delta scoped to ids', async t => {
  const initial = await round('/v1.0/servicePrincipals/delta?$select=displayName,accountEnabled')
  t.same(initial.items.map(i => i.id).sort(), [...directory.servicePrincipals.keys()].sort())
  directory.updateServicePrincipal(T.etlSp, { accountEnabled: false })
  const next = await round(initial.deltaLink)
  t.same(next.items, [{ displayName: 'Nightly ETL', accountEnabled: false, id: T.etlSp }])

  const scoped = await round(`/v1.0/users/delta?$filter=${encodeURIComponent(`id eq '${T.alice}' or id eq '${T.bob}'`)}&$select=displayName`)
  t.same(scoped.items.map(i => i.id).sort(), [T.alice, T.bob].sort())
  directory.updateUser(T.disabled, { displayName: 'Dan Still Disabled' })
  directory.updateUser(T.alice, { jobTitle: 'Lead' })
  t.same((await round(scoped.deltaLink)).items.map(i => i.id), [T.alice], 'only the scoped ids')
  assertGraphError(t, await call(`/v1.0/users/delta?$filter=${encodeURIComponent('startswith(displayName,\'a\')')}`), 400, 'Request_UnsupportedQuery')
})

t.test('the function-call form delta() is the same query', async t => {
  for (const path of ['/v1.0/users/delta()?$select=displayName', `/v1.0/${T.tenantId}/users/microsoft.graph.delta()?$select=displayName`]) {
    const res = await call(path)
    t.equal(res.status, 200, path)
    t.equal(res.body.value.length, directory.users.size)
    t.match(res.body['@odata.deltaLink'], /\$deltatoken=/)
  }
})

t.test('$deltatoken=latest answers only a deltaLink, from which changes follow', async t => {
  const latest = await call('/v1.0/users/delta?$deltatoken=latest&$select=displayName')
  t.equal(latest.status, 200)
  t.same(latest.body.value, [])
  t.notOk('@odata.nextLink' in latest.body)
  directory.updateUser(T.alice, { displayName: 'Alice A. Adams' })
  const next = await round(latest.body['@odata.deltaLink'])
  t.same(next.items, [{ displayName: 'Alice A. Adams', id: T.alice }])
})

t.test('a delta token older than 7 days → 410 Gone with a Location to restart from', async t => {
  const initial = await round('/v1.0/groups/delta?$select=displayName,members')
  ctx.clock.advance(8 * 24 * 3600 * 1000)
  token = await graphToken(ctx)
  const gone = await call(initial.deltaLink)
  assertGraphError(t, gone, 410, 'syncStateNotFound')
  const location = gone.headers.get('location') ?? ''
  t.equal(location, `${origin}/v1.0/groups/delta?$select=displayName,members&$deltatoken=`)
  const restart = await round(location)
  t.equal(restart.items.length, directory.groups.size, 'the Location URL starts a full sync')
  t.ok(restart.items.every(i => Array.isArray(i['members@delta'])), 'with the same $select')

  // A token issued just under 7 days ago still works.
  ctx.clock.advance(6 * 24 * 3600 * 1000)
  token = await graphToken(ctx)
  t.equal((await call(restart.deltaLink)).status, 200)
})

t.test('a delta token the change log no longer reaches → 410', async t => {
  const initial = await round('/v1.0/users/delta')
  directory.updateUser(T.bob, { jobTitle: 'Engineer' })
  directory.truncateLog()
  const gone = await call(initial.deltaLink)
  assertGraphError(t, gone, 410, 'syncStateNotFound')
  t.equal(gone.headers.get('location'), `${origin}/v1.0/users/delta?$deltatoken=`)

  const fresh = await round('/v1.0/users/delta')
  directory.updateUser(T.bob, { jobTitle: 'Senior Engineer' })
  t.same((await round(fresh.deltaLink)).items.map(i => i.id), [T.bob], 'tokens after the truncation work')
})

t.test('garbage, tampered or mismatched tokens → 400', async t => {
  assertGraphError(t, await call('/v1.0/users/delta?$deltatoken=garbage'), 400, 'Request_BadRequest')
  assertGraphError(t, await call('/v1.0/users/delta?$skiptoken=garbage'), 400, 'Request_BadRequest')
  const groups = await round('/v1.0/groups/delta')
  const groupToken = new URL(groups.deltaLink).searchParams.get('$deltatoken') as string
  assertGraphError(t, await call(`/v1.0/users/delta?$deltatoken=${encodeURIComponent(groupToken)}`), 400, 'Request_BadRequest')
  const [body, mac] = groupToken.split('.') as [string, string]
  const state = JSON.parse(Buffer.from(body, 'base64url').toString())
  state.s = 0
  const forged = `${Buffer.from(JSON.stringify(state)).toString('base64url')}.${mac}`
  assertGraphError(t, await call(`/v1.0/groups/delta?$deltatoken=${encodeURIComponent(forged)}`), 400, 'Request_BadRequest')
  assertGraphError(t, await call('/v1.0/groups/delta?$expand=owners'), 400, 'Request_UnsupportedQuery')
  assertGraphError(t, await call('/v1.0/users/delta?$select=favouriteColour'), 400, 'Request_BadRequest', /favouriteColour/)
})
