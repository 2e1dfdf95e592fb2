// DatabricksClient against the emulator: an Entra app token for Azure Databricks through msal (acquired
// once for concurrent calls), both Databricks error bodies read into typed errors, a refused token.
import t from 'tap'
import { scimEnv, T, DEFAULT_ACCOUNT_ID, QUICK } from '../../helpers/target.ts'
import { UpstreamClient } from '../../../src/upstream/client.ts'
import { DatabricksClient } from '../../../src/target/databricks-client.ts'
import { DatabricksBadRequestError, DatabricksConflictError, DatabricksNotFoundError, TargetConfigurationError } from '../../../src/target/errors.ts'
import { DatabricksScimTarget } from '../../../src/target/scim.ts'

t.test('an Entra app token for the Azure Databricks resource, acquired once', async t => {
  const env = await scimEnv(t)
  const sts = new UpstreamClient({ name: 'entra', ca: env.db.ca, ...QUICK })
  const http = new UpstreamClient({ name: 'databricks', ca: env.db.ca, ...QUICK })
  const client = new DatabricksClient({
    host: env.db.origin,
    accountId: DEFAULT_ACCOUNT_ID,
    entra: { tenantId: T.tenantId, clientId: T.resolverAppId, clientSecret: T.resolverSecret, authorityHost: env.db.origin, sts },
    http
  })
  t.teardown(async () => { await client.close(); await sts.close(); await http.close() })
  env.resetCalls()
  const target = new DatabricksScimTarget({ client })
  const results = await Promise.all([T.alice, T.bob, T.guest].map(async id => await target.materialize(env.request(id))))
  t.equal(results.length, 3)
  const tokenCalls = Object.entries(env.db.ctx.calls.snapshot().routes).filter(([r]) => r.includes('/oauth2/v2.0/token')).reduce((a, [, n]) => a + n, 0)
  t.equal(tokenCalls, 1, 'one token request for every concurrent call')
  t.equal((await env.state()).users.length, 3)
})

t.test('errors: SCIM bodies and { error_code, message } become typed errors', async t => {
  const env = await scimEnv(t)
  const c = env.client
  const created = await c.account<{ id: string }>('POST', '/scim/v2/Groups', { body: { displayName: 'dup' } })
  t.equal(created.status, 201)
  const conflict = await c.account('POST', '/scim/v2/Groups', { body: { displayName: 'DUP' } }).catch((e: unknown) => e)
  t.type(conflict, DatabricksConflictError)
  t.match(conflict, { status: 409, errorCode: 'SCIM_409', details: { scimType: 'uniqueness' }, message: /Group with name DUP already exists/ })
  const missing = await c.account('GET', '/scim/v2/Users/1234567890123456').catch((e: unknown) => e)
  t.type(missing, DatabricksNotFoundError)
  const badFilter = await c.account('GET', '/scim/v2/Users', { query: { filter: 'userName gt "a"' } }).catch((e: unknown) => e)
  t.type(badFilter, DatabricksBadRequestError)
  t.match(badFilter, { details: { scimType: 'invalidFilter' } })
  // The identity API answers `{ error_code, message }` (AIM is off here).
  const disabled = await c.identity('POST', '/users/resolve-by-external-id', { body: { external_id: T.alice } }).catch((e: unknown) => e)
  t.type(disabled, DatabricksBadRequestError)
  t.match(disabled, { errorCode: 'FEATURE_DISABLED', message: /not enabled/ })
  const noContent = await c.account('DELETE', `/scim/v2/Groups/${created.json?.id as string}`)
  t.same(noContent, { status: 204, json: undefined })
})

t.test('a refused token is a configuration error, not a retry loop', async t => {
  const env = await scimEnv(t)
  const client = new DatabricksClient({ host: env.db.origin, accountId: DEFAULT_ACCOUNT_ID, token: 'dapi00000000000000000000000000000000', http: env.http })
  env.resetCalls()
  const err = await client.account('GET', '/scim/v2/Users').catch((e: unknown) => e)
  t.type(err, TargetConfigurationError)
  t.equal(env.dbCalls().total, 1)
  t.throws(() => new DatabricksClient({ host: env.db.origin, accountId: DEFAULT_ACCOUNT_ID }), TypeError, 'a credential is required')
  t.throws(() => new DatabricksClient({ host: `${env.db.origin}/api`, accountId: DEFAULT_ACCOUNT_ID, token: 'x' }), TypeError, 'the host is an origin')
})

t.test('the write budget paces PATCHes', async t => {
  const env = await scimEnv(t, { client: { writeBudgets: { patch: 2, write: 50 } } })
  const started = Date.now()
  await env.target.materialize(env.request(T.alice)) // four group PATCHes at 2/s with a burst of 2
  t.ok(Date.now() - started >= 900, `paced (${Date.now() - started} ms)`)
  t.same((await env.state()).rateLimits.refused, { throttled: 0, concurrency: 0 })
})
