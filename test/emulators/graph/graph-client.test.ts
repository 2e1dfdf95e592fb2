// The official Microsoft Graph JavaScript client (v3), pointed at the emulator, pages the transitive
// groups of a user in 2,500 nested groups with PageIterator and sees every group exactly once.
import t from 'tap'
import { Client, PageIterator, type PageCollection } from '@microsoft/microsoft-graph-client'
import type { GroupFixture } from '../../../emulators/tenant/model.ts'
import { T, guids, smallTenant, startGraph } from '../../helpers/graph.ts'

const USER = 'a0000000-0000-4000-8000-0000000000c1'
const CHAINS = 500
const DEPTH = 5
const ids = guids('e5', CHAINS * DEPTH)
const at = (chain: number, level: number): string => ids[chain * DEPTH + level] as string

// 500 chains, 5 levels each: level 0 ∋ level 1 ∋ … ∋ level 4 ∋ USER. Every level-2 group is also a
// member of the next chain's level-0 group, so many groups are reachable along two paths.
const groups: GroupFixture[] = []
for (let c = 0; c < CHAINS; c++) {
  for (let l = 0; l < DEPTH; l++) {
    const members = l === DEPTH - 1 ? [USER] : [at(c, l + 1)]
    if (l === 0) members.push(at((c + CHAINS - 1) % CHAINS, 2))
    groups.push({ id: at(c, l), displayName: `Chain ${c} level ${l}`, members })
  }
}
const tenant = smallTenant()
tenant.users.push({ id: USER, userPrincipalName: 'many.groups@contoso-test.onmicrosoft.com', displayName: 'Many Groups' })
tenant.groups.push(...groups)

const env = await startGraph(t, [tenant])
const host = new URL(env.origin).hostname

t.test('PageIterator over transitiveMemberOf with $top=999 sees all 2,500 groups once', async t => {
  const client = Client.initWithMiddleware({
    baseUrl: env.origin,
    customHosts: new Set([host]),
    authProvider: { getAccessToken: async () => env.token }
  })
  env.ctx.calls.reset()
  const first: PageCollection = await client.api(`/users/${USER}/transitiveMemberOf/microsoft.graph.group`).select(['id', 'displayName']).top(999).get()
  t.equal(first.value.length, 999)
  t.type(first['@odata.nextLink'], 'string')

  const seen = new Map<string, number>()
  const iterator = new PageIterator(client, first, (group: { id: string }) => {
    seen.set(group.id, (seen.get(group.id) ?? 0) + 1)
    return true
  })
  await iterator.iterate()
  t.equal(iterator.isComplete(), true)
  t.equal(seen.size, 2500, 'every group')
  t.ok([...seen.values()].every(n => n === 1), 'each exactly once')
  t.same([...seen.keys()].sort(), [...ids].sort())
  const calls = env.ctx.calls.snapshot().routes['GET /v1.0/users/:id/transitiveMemberOf/:cast']
  t.equal(calls, 3, 'three requests: 999 + 999 + 502')
})

t.test('Client.init with a callback auth provider reads entities', async t => {
  const client = Client.init({
    baseUrl: env.origin,
    customHosts: new Set([host]),
    authProvider: (done) => { done(null, env.token) }
  })
  const user = await client.api(`/users/${USER}`).select('id,userPrincipalName').get()
  t.same(user.userPrincipalName, 'many.groups@contoso-test.onmicrosoft.com')
  const sp = await client.api(`/servicePrincipals(appId='${T.etlAppId}')`).get()
  t.equal(sp.id, T.etlSp)
  const groups = await client.api(`/users/${USER}/getMemberGroups`).post({ securityEnabledOnly: true })
  t.equal(groups.value.length, 2500)
  try {
    await client.api('/groups/not-a-guid').get()
    t.fail('expected an error')
  } catch (err) {
    const e = err as { statusCode: number, code: string, message: string }
    t.equal(e.statusCode, 400)
    t.equal(e.code, 'Request_BadRequest')
    t.equal(e.message, 'Invalid object identifier \'not-a-guid\'.')
  }
})
