// POST /v1/registrations and GET /v1/registrations/{id}: who may call them, what they refuse, and what a
// job reports for principals that cannot be registered. Against the emulators, in AIM mode.
import t from 'tap'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'
import { accountState, adminToken, getRegistration, occurrences, postRegistration, waitFor } from '../../helpers/registrations.ts'

const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
const aim = { DATABRICKS_HOST: emulator.origin, DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID, DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT, DATABRICKS_MODE: 'aim' }
const admin = await adminToken(emulator)

t.test('a list job: registered principals, and a failure with its code for each one that cannot be', async t => {
  const { app } = await startService(t, emulator, aim)
  const posted = await postRegistration(app, admin, {
    principals: [
      'alice@contoso-test.onmicrosoft.com', // a UPN
      T.bob, // an object id
      T.etlAppId, // a GUID that is no object id: an application id
      'gina@fabrikam.com', // not a UPN: a mail address
      { appId: T.etlAppId }, // an explicit key (the same principal again: registered once in the account)
      'nobody@contoso-test.onmicrosoft.com',
      T.disabled,
      T.finance, // a group
      'alice@contoso-test.onmicrosoft.com' // the same name twice is one item
    ]
  })
  t.equal(posted.status, 202)
  t.equal(posted.location, `/v1/registrations/${posted.json.id}`)
  t.match(posted.json, { status: 'queued', total: 8, pending: 8, registered: 0, failed: 0, failures: [] })

  const done = await waitFor(app, admin, posted.json.id)
  t.match(done, { status: 'completed', total: 8, registered: 5, failed: 3, pending: 0, failuresTruncated: false })
  t.ok(done.finishedAt !== undefined)
  const codes = Object.fromEntries(done.failures.map(f => [f.principal, f.code]))
  t.same(codes, {
    'nobody@contoso-test.onmicrosoft.com': 'PRINCIPAL_NOT_FOUND',
    [T.disabled]: 'PRINCIPAL_DISABLED',
    [T.finance]: 'NOT_A_PRINCIPAL'
  })
  t.ok(done.failures.every(f => f.message.length > 20), 'each failure says what to do')

  const counts = occurrences(await accountState(emulator))
  for (const id of [T.alice, T.bob, T.guest, T.etlSp]) t.equal(counts.get(id), 1, `${id} once in the account`)
  t.notOk(counts.has(T.disabled), 'the disabled user is not registered')
})

t.test('a group job registers the group\'s transitive users and service principals', async t => {
  const { app } = await startService(t, emulator, aim)
  const posted = await postRegistration(app, admin, { group: T.engineering })
  t.equal(posted.status, 202)
  t.equal(posted.json.group, T.engineering)
  const done = await waitFor(app, admin, posted.json.id)
  // Engineering: Bob, and through Data Platform: Alice and the ETL service principal.
  t.match(done, { status: 'completed', total: 3, registered: 3, failed: 0 })
})

t.test('bad requests are refused with a code that says what to fix', async t => {
  const { app } = await startService(t, emulator, aim)
  const tooMany = await postRegistration(app, admin, { principals: Array.from({ length: 10_001 }, (_, i) => `user${i}@contoso-test.onmicrosoft.com`) })
  t.equal(tooMany.status, 400)
  t.match(tooMany.json, { code: 'TOO_MANY_PRINCIPALS', detail: /at most 10000 principals; this one has 10001/ })
  const both = await postRegistration(app, admin, { principals: [T.alice], group: T.finance })
  t.match(both, { status: 400, json: { code: 'AMBIGUOUS_SOURCE' } })
  const neither = await postRegistration(app, admin, {})
  t.match(neither, { status: 400, json: { code: 'NO_PRINCIPALS' } })
  t.match(await postRegistration(app, admin, { principals: [] }), { status: 400, json: { code: 'NO_PRINCIPALS' } })
  t.match(await postRegistration(app, admin, { group: 'engineering' }), { status: 400, json: { code: 'INVALID_REQUEST' } })
  const unknownGroup = await postRegistration(app, admin, { group: '99999999-9999-4999-8999-999999999999' })
  t.match(unknownGroup, { status: 404, json: { code: 'GROUP_NOT_FOUND', detail: /No group 99999999-/ } })
  t.match(await postRegistration(app, admin, { group: T.alice }), { status: 400, json: { code: 'NOT_A_GROUP', detail: /is a user/ } })
})

t.test('only callers with Identity.Admin; unknown ids are 404', async t => {
  const { app } = await startService(t, emulator, aim)
  const noToken = await app.inject({ method: 'POST', url: '/v1/registrations', payload: { principals: [T.alice] } })
  t.equal(noToken.statusCode, 401)
  t.equal(noToken.headers['content-type'], 'application/problem+json; charset=utf-8')
  const user = await tokenFor(emulator, T.alice)
  const forbidden = await postRegistration(app, user, { principals: [T.alice] })
  t.match(forbidden, { status: 403, json: { code: 'MISSING_ROLE', detail: /Identity\.Admin/ } })

  const posted = await postRegistration(app, admin, { principals: [T.bob] })
  const readByUser = await app.inject({ method: 'GET', url: `/v1/registrations/${posted.json.id}`, headers: { authorization: `Bearer ${user}` } })
  t.equal(readByUser.statusCode, 403)
  t.equal((await app.inject({ method: 'GET', url: `/v1/registrations/${posted.json.id}` })).statusCode, 401)

  for (const id of ['5b7e0a43-3f0d-4c58-9d1e-2f6a8b9c0d1e', 'not-a-job']) {
    const missing = await app.inject({ method: 'GET', url: `/v1/registrations/${id}`, headers: { authorization: `Bearer ${admin}` } })
    t.equal(missing.statusCode, 404)
    t.match(missing.json(), { code: 'REGISTRATION_NOT_FOUND', detail: /Location header/ })
  }
  await waitFor(app, admin, posted.json.id)
})

t.test('without a Databricks account: DATABRICKS_NOT_CONFIGURED', async t => {
  const { app } = await startService(t, emulator)
  const res = await postRegistration(app, admin, { principals: [T.alice] })
  t.match(res, { status: 400, json: { code: 'DATABRICKS_NOT_CONFIGURED', detail: /DATABRICKS_HOST/ } })
  const get = await app.inject({ method: 'GET', url: '/v1/registrations/5b7e0a43-3f0d-4c58-9d1e-2f6a8b9c0d1e', headers: { authorization: `Bearer ${admin}` } })
  t.equal(get.json().code, 'DATABRICKS_NOT_CONFIGURED')
})

t.test('Databricks refusing the service\'s credentials fails the job once, not every principal', async t => {
  const { app } = await startService(t, emulator, { ...aim, DATABRICKS_TOKEN: 'not-a-valid-token' })
  const posted = await postRegistration(app, admin, { principals: [T.alice, T.bob, T.etlSp] })
  const done = await waitFor(app, admin, posted.json.id)
  t.match(done, { status: 'failed', error: { code: 'TARGET_MISCONFIGURED' }, failed: 0 })
  t.equal(done.pending, 3, 'the principals stay pending')
  t.same(await getRegistration(app, admin, posted.json.id), done, 'the stored job is the final one')
})
