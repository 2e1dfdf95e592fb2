// The service under concurrent load and awkward nesting, against the emulated Entra, Graph and Databricks:
// - many shares, permission questions and logins at once on one object and one principal never seen
//   before all succeed (no cache write may cancel another request's read), and leave the account with
//   exactly one user and one grant for it;
// - a user in a group that is in a nesting cycle in Entra (A ⊂ B ⊂ A), which Databricks cannot hold, signs
//   in and can be shared with: the one refused membership is left out, counted and logged, the rest is
//   written, and a warm login still costs no call.
import t, { type Test } from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'

const WS = DEFAULT_WORKSPACE_ID
const D = 'contoso-test.onmicrosoft.com'
const carol = { id: 'a0000000-0000-4000-8000-0000000000c1', userPrincipalName: `carol@${D}`, displayName: 'Carol Never-Signed-In' }
// In a nesting cycle: cyril signs in (he is in Cycle A and Finance), cora is shared with (she is in Cycle B).
const cyril = { id: 'a0000000-0000-4000-8000-0000000000c2', userPrincipalName: `cyril@${D}`, displayName: 'Cyril Cycle' }
const cora = { id: 'a0000000-0000-4000-8000-0000000000c3', userPrincipalName: `cora@${D}`, displayName: 'Cora Cycle' }
const CYCLE_A = 'ca000000-0000-4000-8000-00000000000a'
const CYCLE_B = 'cb000000-0000-4000-8000-00000000000b'

const base = smallTenant()
const tenant = smallTenant({
  users: [...base.users, carol, cyril, cora],
  groups: [
    ...base.groups.map(g => g.id === T.finance ? { ...g, members: [...(g.members ?? []), cyril.id] } : g),
    { id: CYCLE_A, displayName: 'Cycle A', members: [cyril.id, CYCLE_B] },
    { id: CYCLE_B, displayName: 'Cycle B', members: [CYCLE_A, cora.id] }
  ]
})
const emulator = await startTestEmulator(t, { tenants: [tenant] })
const { ctx, origin } = emulator

async function control (method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${origin}/_emulator/databricks${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const json = await res.json()
  if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

interface StatePrincipal { id: string, externalId: string | null, userName?: string, groups: Array<{ externalId: string | null }> }
interface State {
  users: StatePrincipal[]
  groups: StatePrincipal[]
  workspaces: Array<{ id: string, objects: Array<{ type: string, id: string, acl: Array<{ principal: { id: string, name?: string }, level: string }> }> }>
}
const state = async (): Promise<State> => await control('GET', '/state') as State
const parentsIn = (s: State, externalId: string): string[] =>
  [...s.users, ...s.groups].find(p => p.externalId === externalId)?.groups.map(g => g.externalId ?? 'internal').sort() ?? ['<missing>']
const upstreamCalls = (): number => Object.entries(ctx.calls.snapshot().routes).filter(([r]) => / \/(v1\.0|api)\//.test(r)).reduce((n, [, c]) => n + c, 0)

/** A fresh SCIM-mode account: bob signed in and manages the dashboard "Pipeline". */
async function setUp (t: Test) {
  await control('POST', '/reset')
  await control('PUT', '/rate-limits', { enabled: false })
  await control('PUT', '/settings', { aimEnabled: false })
  const service = await startService(t, emulator, {
    DATABRICKS_HOST: origin,
    DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
    DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
    // Budgets out of the way: what is under test is what concurrent requests do to each other.
    DATABRICKS_SCIM_PATCHES_PER_SECOND: '1000',
    DATABRICKS_SCIM_WRITES_PER_SECOND: '1000',
    PRINCIPAL_LOOKUPS_PER_MINUTE: '10000'
  })
  const { app } = service
  const bob = await tokenFor(emulator, T.bob)
  const login = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${bob}` } })
  t.equal(login.statusCode, 200, 'bob signed in')
  const dashboard = await control('POST', `/workspaces/${WS}/dashboards`, { displayName: 'Pipeline', parentPath: '/Shared' })
  const dashboardId = dashboard.dashboard_id as string
  await control('PUT', `/workspaces/${WS}/acls`, { type: 'dashboards', id: dashboardId, access_control_list: [{ user_name: `bob@${D}`, permission_level: 'CAN_MANAGE' }] })
  const inject = async (token: string, method: 'GET' | 'POST', url: string, payload?: Record<string, unknown>) =>
    await app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload !== undefined ? { payload } : {}) })
  const share = async (token: string, principal: string) =>
    await inject(token, 'POST', '/v1/shares', { workspaceId: WS, objectType: 'dashboards', objectId: dashboardId, principal })
  const permissions = async (token: string, principal?: string) =>
    await inject(token, 'GET', `/v1/permissions/dashboards/${dashboardId}?workspaceId=${WS}${principal === undefined ? '' : `&principal=${encodeURIComponent(principal)}`}`)
  const aclOf = async (): Promise<State['workspaces'][number]['objects'][number]['acl']> =>
    (await state()).workspaces.find(w => w.id === WS)?.objects.find(o => o.type === 'dashboards' && o.id === dashboardId)?.acl ?? []
  return { service, app, bob, dashboardId, inject, share, permissions, aclOf }
}

t.test('50 concurrent shares, permission questions and logins on one object and one new principal all succeed', async t => {
  const { bob, share, permissions, inject, aclOf } = await setUp(t)
  const carolToken = await tokenFor(emulator, carol.id)
  const N = 50
  const kinds = {
    share: async () => await share(bob, carol.userPrincipalName),
    'bob asks about carol': async () => await permissions(bob, carol.userPrincipalName),
    'carol signs in': async () => await inject(carolToken, 'POST', '/v1/login'),
    'carol asks': async () => await permissions(carolToken),
    'bob asks': async () => await permissions(bob)
  }
  // Interleaved, so every kind of request overlaps every other, and launched one event-loop turn apart
  // (all in one tick, they would move in lockstep: every read would coalesce with every other).
  const calls = Array.from({ length: N }, () => Object.entries(kinds)).flat()
  const pending: Array<Promise<{ kind: string, res: Awaited<ReturnType<typeof share>> }>> = []
  for (const [kind, call] of calls) {
    pending.push(call().then(res => ({ kind, res })))
    await new Promise(resolve => setTimeout(resolve, 1))
  }
  const answers = await Promise.all(pending)
  const failed = answers.filter(a => a.res.statusCode < 200 || a.res.statusCode >= 300)
  t.same(failed.map(a => `${a.kind}: ${a.res.statusCode} ${a.res.body}`), [], `all ${answers.length} answered 2xx`)
  t.ok(answers.filter(a => a.kind === 'share').every(a => a.res.json().grant.level === 'CAN_READ'), 'every share answers the grant')
  t.ok(answers.filter(a => a.kind === 'bob asks').every(a => a.res.json().level === 'CAN_MANAGE'), 'the sharer keeps CAN_MANAGE in every answer')

  const s = await state()
  t.equal(s.users.filter(u => u.externalId === carol.id).length, 1, 'exactly one user for carol in the account')
  const carolEntries = (await aclOf()).filter(e => e.principal.name?.toLowerCase() === carol.userPrincipalName)
  t.same(carolEntries.map(e => e.level), ['CAN_READ'], 'and exactly one grant to her on the dashboard')

  // Afterwards the caches agree with Databricks: carol's own question answers her grant.
  const after = await permissions(carolToken)
  t.equal(after.statusCode, 200, 'carol asks again')
  t.equal(after.json().level, 'CAN_READ', 'and has CAN_READ')
})

t.test('a user in a group in a nesting cycle signs in; a user in the cycle can be shared with', async t => {
  const { app, bob, share, permissions } = await setUp(t)
  const cyrilToken = await tokenFor(emulator, cyril.id)
  const login = async () => await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${cyrilToken}` } })

  const skippedCount = async (): Promise<string | undefined> =>
    /databricks_memberships_skipped_total\{reason="cycle"\} (\d+)/.exec((await app.inject({ url: '/metrics' })).body)?.[1]
  const first = await login()
  t.equal(first.statusCode, 200, `cyril signs in (${first.statusCode === 200 ? 'ok' : first.body})`)
  t.equal(first.json().databricks.groups.length, 4, 'Cycle A, Cycle B, Finance and All Staff all have a Databricks id')
  let s = await state()
  t.same(parentsIn(s, cyril.id), [CYCLE_A, T.finance].sort(), 'cyril\'s own memberships are written')
  t.same(parentsIn(s, T.finance), [T.allStaff], 'Finance ⊂ All Staff is written')
  t.same(parentsIn(s, CYCLE_A), [CYCLE_B], 'Cycle A ⊂ Cycle B is written (cyril reaches both groups)')
  t.same(parentsIn(s, CYCLE_B), [], 'Cycle B ⊂ Cycle A, which would close the cycle, is left out')
  t.equal(await skippedCount(), '1', 'the refused membership is counted')

  ctx.calls.reset()
  t.equal((await login()).statusCode, 200, 'cyril signs in again')
  t.equal(upstreamCalls(), 0, 'a warm login with nothing changed makes no call, the skipped edge included')

  // Sharing with cora (in Cycle B, never signed in) materializes her despite the cycle.
  ctx.calls.reset()
  const shared = await share(bob, cora.userPrincipalName)
  t.equal(shared.statusCode, 200, `shared with cora (${shared.statusCode === 200 ? 'ok' : shared.body})`)
  t.match(shared.json(), { grant: { level: 'CAN_READ', principalName: cora.userPrincipalName, changed: true } })
  s = await state()
  t.same(parentsIn(s, cora.id), [CYCLE_B], 'cora is in Cycle B')
  t.same(parentsIn(s, CYCLE_B), [], 'the cycle is still not closed')
  const groupPatches = Object.entries(ctx.calls.snapshot().routes).filter(([r]) => r === 'PATCH /api/2.0/accounts/:accountId/scim/v2/Groups/:id').reduce((n, [, c]) => n + c, 0)
  t.equal(groupPatches, 1, 'one PATCH (cora into Cycle B): the membership refused a moment ago is not asked for again')
  t.equal(await skippedCount(), '2', 'but it is reported again, for cora')
  const asked = await permissions(bob, cora.userPrincipalName)
  t.equal(asked.statusCode, 200, 'bob asks about cora')
  t.equal(asked.json().level, 'CAN_READ', 'she has CAN_READ')

  // And sharing with cyril, who is materialized already.
  const withCyril = await share(bob, cyril.userPrincipalName)
  t.equal(withCyril.statusCode, 200, `shared with cyril (${withCyril.statusCode === 200 ? 'ok' : withCyril.body})`)
})
