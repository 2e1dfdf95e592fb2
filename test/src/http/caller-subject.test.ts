// A token whose `oid` names something that cannot sign in — a group, or no directory object of a kind a
// token can stand for — is refused with 401 TOKEN_SUBJECT_NOT_A_PRINCIPAL wherever the caller is resolved
// (the login hook, effective permissions), never a 500. Such a token is forged or minted by a broken
// issuer: Entra itself only issues tokens to users and service principals.
import t, { type Test } from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'

const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
const { origin } = emulator

/** A real, correctly signed token for alice whose `oid` (and `sub`) name the group "Engineering". */
const groupToken = async (): Promise<string> => await tokenFor(emulator, T.alice, { claims: { oid: T.engineering } })

function refusedAsNotAPrincipal (t: Test, res: { statusCode: number, headers: Record<string, unknown>, json: () => any, body: string }): void {
  t.equal(res.statusCode, 401, 'HTTP 401, not 500')
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(res.json(), { status: 401, code: 'TOKEN_SUBJECT_NOT_A_PRINCIPAL', detail: new RegExp(`${T.engineering}.*group`) })
  t.match(res.headers['www-authenticate'], /^Bearer /, 'with a Bearer challenge, like every token refusal')
}

t.test('POST /v1/login with a token whose oid is a group: 401, and the same again from the cache', async t => {
  const { app } = await startService(t, emulator)
  const token = await groupToken()
  for (const attempt of ['first', 'cached']) {
    const res = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${token}` } })
    refusedAsNotAPrincipal(t, res)
    t.pass(`${attempt} attempt`)
  }
  const alice = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await tokenFor(emulator, T.alice)}` } })
  t.equal(alice.statusCode, 200, 'a real user still signs in')
})

t.test('POST /v1/login with a Databricks account: refused before anything is materialized', async t => {
  t.equal((await fetch(`${origin}/_emulator/databricks/reset`, { method: 'POST' })).status, 200, 'an empty account')
  const { app } = await startService(t, emulator, { DATABRICKS_HOST: origin, DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID, DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT })
  const res = await app.inject({ method: 'POST', url: '/v1/login', headers: { authorization: `Bearer ${await groupToken()}` }, payload: { workspaceId: DEFAULT_WORKSPACE_ID } })
  refusedAsNotAPrincipal(t, res)
  const state = await (await fetch(`${origin}/_emulator/databricks/state`)).json() as Record<'users' | 'servicePrincipals' | 'groups', unknown[]>
  t.same([state.users.length, state.servicePrincipals.length, state.groups.length], [0, 0, 0], 'nothing was written to the account')
})

t.test('GET /v1/permissions with a token whose oid is a group: 401', async t => {
  const { app } = await startService(t, emulator, { DATABRICKS_HOST: origin, DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID, DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT })
  const res = await app.inject({
    method: 'GET',
    url: `/v1/permissions/dashboards/01ef0000000000000000000000000000?workspaceId=${DEFAULT_WORKSPACE_ID}`,
    headers: { authorization: `Bearer ${await groupToken()}` }
  })
  refusedAsNotAPrincipal(t, res)
})
