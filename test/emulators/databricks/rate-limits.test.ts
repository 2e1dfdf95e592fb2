// Both throttling modes are observable: the per-family token buckets (429 REQUEST_LIMIT_EXCEEDED with
// Retry-After, SCIM- or API-shaped by route, refilled by the emulator clock) and the SCIM concurrency
// quirk (500 "… exceeded the concurrent limit of 4 requests."); a client that honours Retry-After gets
// through; limits are configurable and can be switched off.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID, IDENTITY, SCIM, T, WS_SCIM, assertApiError, assertScimError, createGroup, patchBody, startDatabricks, type Api, type Res
} from '../../helpers/databricks.ts'

t.test('defaults from the reference, 429 with Retry-After, refilled by the clock', async t => {
  const { api, control, ctx } = await startDatabricks(t, { rateLimits: true })
  const limits = (await control('GET', '/rate-limits')).body
  t.match(limits, {
    enabled: true,
    limits: { 'account-scim-get': 20, 'account-scim-list': 240, 'account-scim-patch': 2, 'account-scim-write': 5, 'workspace-scim-read': 255, 'permissions-read': 100, 'permissions-write': 30 },
    concurrency: { enabled: false, limit: 4 }
  })

  const group = await createGroup(api, 'Throttled')
  const rename = async (name: string): Promise<Res> => await api('PATCH', `${SCIM}/Groups/${group}`, patchBody({ op: 'replace', path: 'displayName', value: name }))
  t.equal((await rename('a')).status, 200)
  t.equal((await rename('b')).status, 200)
  const throttled = await rename('c')
  assertScimError(t, throttled, 429)
  t.match(throttled.body.detail, /^REQUEST_LIMIT_EXCEEDED: Account SCIM PATCH RPC token bucket limit has been exceeded/)
  t.equal(throttled.headers.get('retry-after'), '1', 'Retry-After in seconds')
  t.equal((await api('GET', `${SCIM}/Groups/${group}`)).body.displayName, 'b', 'the throttled PATCH did nothing')
  t.equal((await api('GET', `${SCIM}/Groups`)).status, 200, 'other families have their own buckets')

  ctx.clock.advance(1000)
  t.equal((await rename('d')).status, 200, 'a second later (emulator clock) the bucket has refilled')

  // Below one request per second: one request, then Retry-After until the next token.
  await control('PUT', '/rate-limits', { limits: { 'account-scim-patch': 0.2 } })
  t.equal((await rename('e')).status, 200)
  const slow = await rename('f')
  t.equal(slow.status, 429)
  t.equal(slow.headers.get('retry-after'), '5')
  ctx.clock.advance(5000)
  t.equal((await rename('g')).status, 200)

  // Non-SCIM routes answer { error_code, message }.
  await control('PUT', '/rate-limits', { limits: { identity: 1 } })
  t.equal((await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.alice })).status, 200)
  const identity = await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.alice })
  assertApiError(t, identity, 429, 'REQUEST_LIMIT_EXCEEDED', /Identity RPC token bucket limit has been exceeded/)
  t.equal(identity.headers.get('retry-after'), '1')
  t.match((await control('GET', '/state')).body.rateLimits.refused, { throttled: 3 })

  await control('PUT', '/rate-limits', { enabled: false })
  const burst = await Promise.all(Array.from({ length: 10 }, async (_, i) => await rename(`burst-${i}`)))
  t.ok(burst.every(r => r.status === 200), 'switched off: no 429')
  const reset = await control('DELETE', '/rate-limits')
  t.match(reset.body, { enabled: true, limits: { identity: null, 'account-scim-patch': 2 } }, 'DELETE restores the defaults')
  const typo = await control('PUT', '/rate-limits', { limits: { 'no-such-family': 1 } })
  t.equal(typo.status, 400, 'an unknown family is refused')
  t.equal(typo.body.error.code, 'invalid-request')
})

/** A client as a careful integration would write it: on 429, wait Retry-After seconds and retry. */
async function honouringRetryAfter (api: Api, method: string, path: string, body: unknown): Promise<{ res: Res, retries: number }> {
  let retries = 0
  for (;;) {
    const res = await api(method, path, body)
    if (res.status !== 429 || retries === 5) return { res, retries }
    retries += 1
    await sleep(Number(res.headers.get('retry-after') ?? '1') * 1000)
  }
}

t.test('a client that honours Retry-After gets through', async t => {
  const { api, control } = await startDatabricks(t, { rateLimits: true })
  await control('PUT', '/rate-limits', { limits: { 'account-scim-patch': 2 } })
  const group = await createGroup(api, 'Patient')
  const users = await Promise.all(['u1', 'u2', 'u3', 'u4'].map(async u => (await api('POST', `${SCIM}/Users`, { userName: `${u}@contoso.com` })).body.id as string))
  let retried = 0
  for (const id of users) {
    const { res, retries } = await honouringRetryAfter(api, 'PATCH', `${SCIM}/Groups/${group}`, patchBody({ op: 'add', path: 'members', value: [{ value: id }] }))
    t.equal(res.status, 200)
    retried += retries
  }
  t.ok(retried >= 1, 'it was throttled on the way')
  t.same((await api('GET', `${SCIM}/Groups/${group}`)).body.members.map((m: any) => m.value).sort(), [...users].sort(), 'every member got in')
})

t.test('the SCIM concurrency quirk: 500 REQUEST_LIMIT_EXCEEDED beyond 4 requests in flight', async t => {
  const { api, control } = await startDatabricks(t)
  const on = await control('PUT', '/rate-limits', { concurrency: { enabled: true, holdMs: 800 } })
  t.match(on.body.concurrency, { enabled: true, limit: 4, holdMs: 800 })

  const account = await Promise.all(Array.from({ length: 8 }, async () => await api('GET', `${SCIM}/Users`)))
  t.equal(account.filter(r => r.status === 200).length, 4, 'four in flight are served')
  const refused = account.filter(r => r.status === 500)
  t.equal(refused.length, 4)
  for (const r of refused) {
    assertScimError(t, r, 500)
    t.equal(r.body.detail, `REQUEST_LIMIT_EXCEEDED: Account ${DEFAULT_ACCOUNT_ID} exceeded the concurrent limit of 4 requests.`)
  }

  const ws = await Promise.all(Array.from({ length: 6 }, async () => await api('GET', `${WS_SCIM}/Users`)))
  const wsRefused = ws.filter(r => r.status === 500)
  t.equal(wsRefused.length, 2)
  t.equal(wsRefused[0]?.body.detail, `REQUEST_LIMIT_EXCEEDED: Workspace ${DEFAULT_WORKSPACE_ID} exceeded the concurrent limit of 4 requests.`)

  const identity = await Promise.all(Array.from({ length: 6 }, async () => await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.alice })))
  t.ok(identity.every(r => r.status === 200), 'only SCIM routes have the quirk')
  t.equal((await api('GET', `${SCIM}/Users`)).status, 200, 'once the others finished, requests pass again')
  t.match((await control('GET', '/rate-limits')).body.refused, { concurrency: 6 })
})
