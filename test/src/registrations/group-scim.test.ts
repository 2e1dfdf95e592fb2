// Bulk registration through account SCIM (an account without automatic identity management): the SCIM
// write limits (raised here so the test is quick, and the service's budgets set to match) are honoured,
// members and groups end up in the account once each, and every member is in its Entra groups.
import t from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { startService } from '../../helpers/service.ts'
import { accountState, adminToken, bigGroupTenant, callsMatching, control, occurrences, postRegistration, waitFor } from '../../helpers/registrations.ts'

const MEMBERS = 200
const { fixture, root, memberIds } = bigGroupTenant(MEMBERS, 2, 2)
const emulator = await startTestEmulator(t, { tenants: [fixture] })

t.test(`a group of ${MEMBERS} members in SCIM mode, within the SCIM write limits`, async t => {
  await control(emulator, 'PUT', '/databricks/settings', { aimEnabled: false })
  await control(emulator, 'PUT', '/databricks/rate-limits', { enabled: true, limits: { 'account-scim-patch': 30, 'account-scim-write': 50 } })
  t.teardown(async () => {
    await control(emulator, 'DELETE', '/databricks/rate-limits')
    await control(emulator, 'PUT', '/databricks/settings', { aimEnabled: true })
  })
  const { app } = await startService(t, emulator, {
    DATABRICKS_HOST: emulator.origin,
    DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID,
    DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT,
    DATABRICKS_MODE: 'scim',
    DATABRICKS_SCIM_PATCHES_PER_SECOND: '30',
    DATABRICKS_SCIM_WRITES_PER_SECOND: '50'
  })
  const admin = await adminToken(emulator)
  emulator.ctx.calls.reset()
  const started = performance.now()
  const posted = await postRegistration(app, admin, { group: root })
  const done = await waitFor(app, admin, posted.json.id)
  const seconds = (performance.now() - started) / 1000
  t.match(done, { status: 'completed', total: MEMBERS, registered: MEMBERS, failed: 0 })

  const state = await accountState(emulator)
  const counts = occurrences(state)
  t.equal(memberIds.filter(id => counts.get(id) === 1).length, MEMBERS, 'every member once in the account')
  const groups = new Map<string, number>()
  for (const g of state.groups) if (g.externalId !== null) groups.set(g.externalId, (groups.get(g.externalId) ?? 0) + 1)
  const entraGroups = fixture.groups.filter(g => g.id.startsWith('e'))
  t.equal(entraGroups.filter(g => groups.get(g.id) === 1).length, entraGroups.length, 'every group of the tree once in the account')
  // Memberships and nesting as in Entra: each group of the tree holds its Entra members (users, teams).
  const inAccount = new Map((state.groups as unknown as Array<{ externalId: string | null, members: Array<{ externalId?: string | null }> }>).map(g => [g.externalId, new Set(g.members.map(m => m.externalId))]))
  const missing = entraGroups.flatMap(g => g.members.filter(m => inAccount.get(g.id)?.has(m) !== true).map(m => `${m} in ${g.displayName}`))
  t.same(missing, [], 'every Entra membership is in the account')

  const writes = callsMatching(emulator, /^(POST|PATCH|PUT|DELETE) \/api\/2\.0\/accounts\/.*scim/)
  t.ok(state.rateLimits.refused.throttled <= writes / 10, `few refusals: the budgets keep within the limits (${state.rateLimits.refused.throttled} of ${writes} writes)`)
  t.comment(`${MEMBERS} members through SCIM in ${seconds.toFixed(1)} s: ${writes} SCIM writes, ${state.rateLimits.refused.throttled} refused and retried`)
})
