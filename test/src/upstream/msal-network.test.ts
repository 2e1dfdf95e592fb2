// msal-node's network module over the upstream client: msal gets its token from the emulated STS through
// it (same CA, timeouts, retries, metrics), and an STS that stays unavailable surfaces as msal error that
// still carries the upstream's status and Retry-After.
import t, { type Test } from 'tap'
import { ConfidentialClientApplication } from '@azure/msal-node'
import { decodeJwt } from 'jose'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { T, smallTenant } from '../../helpers/tenant.ts'
import { UpstreamClient, type UpstreamResponseEvent } from '../../../src/upstream/client.ts'
import { UpstreamUnavailableError } from '../../../src/upstream/errors.ts'
import { UpstreamAuthError, msalNetworkModule } from '../../../src/upstream/msal-network.ts'

const { origin, ctx, ca } = await startTestEmulator(t, { tenants: [smallTenant()] })
t.afterEach(() => { ctx.faults.remove(); ctx.calls.reset() })

function setup (t: Test): { cca: ConfidentialClientApplication, seen: UpstreamResponseEvent[] } {
  const seen: UpstreamResponseEvent[] = []
  const client = new UpstreamClient({
    name: 'entra',
    ca,
    observer: { onResponse: e => { seen.push(e) } },
    retry: { maxRetries: 1, baseDelayMs: 10, maxDelayMs: 20, maxRetryAfterMs: 2_000 }
  })
  t.teardown(async () => { await client.close() })
  const cca = new ConfidentialClientApplication({
    auth: { clientId: T.resolverAppId, clientSecret: T.resolverSecret, authority: `${origin}/${T.tenantId}`, knownAuthorities: [new URL(origin).host] },
    system: { networkClient: msalNetworkModule(client) }
  })
  return { cca, seen }
}

t.test('msal gets its token through the upstream client, and the observer sees the STS calls', async t => {
  const { cca, seen } = setup(t)
  const result = await cca.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] })
  t.ok(result?.accessToken, 'a token')
  t.match(decodeJwt(result?.accessToken ?? ''), { tid: T.tenantId, aud: 'https://graph.microsoft.com' }, 'an app token for Graph in the tenant')
  t.match(seen, [
    { upstream: 'entra', method: 'GET', route: '/{id}/v2.0/.well-known/openid-configuration', status: 200 },
    { upstream: 'entra', method: 'POST', route: '/{id}/oauth2/v2.0/token', status: 200 }
  ])
  t.equal(ctx.calls.snapshot().routes['POST /:tenant/oauth2/v2.0/token'], 1)

  const again = await cca.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] })
  t.equal(again?.accessToken, result?.accessToken, 'msal\'s own cache answers the second time')
  t.equal(seen.length, 2, 'no further STS call')
})

t.test('a throttled token request is retried under msal, invisibly to it', async t => {
  ctx.faults.add({ route: `/${T.tenantId}/oauth2/v2.0/token`, status: 429, retryAfter: 0.2, times: 1 })
  const { cca, seen } = setup(t)
  const result = await cca.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] })
  t.ok(result?.accessToken)
  t.same(seen.filter(e => e.method === 'POST').map(e => e.status), [429, 200])
})

t.test('an STS that stays unavailable: msal rethrows our error, with status and Retry-After', async t => {
  ctx.faults.add({ route: `/${T.tenantId}/oauth2/v2.0/token`, status: 503, retryAfter: 0.1 })
  const { cca } = setup(t)
  const err = await cca.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] }).catch((e: unknown) => e)
  t.type(err, UpstreamAuthError)
  const upstream = (err as UpstreamAuthError).upstreamError
  t.type(upstream, UpstreamUnavailableError)
  t.match((upstream as UpstreamUnavailableError).details, { status: 503, retryAfterSeconds: 0.1, attempts: 2, reason: 'exhausted' })
  t.equal((err as UpstreamAuthError).errorCode, 'upstream_error')
  t.notMatch((err as Error).message, new RegExp(T.resolverSecret), 'the secret is nowhere in the error')
})

t.test('an STS error answer (wrong secret) reaches msal as a response, so msal reports it', async t => {
  const client = new UpstreamClient({ name: 'entra', ca })
  t.teardown(async () => { await client.close() })
  const cca = new ConfidentialClientApplication({
    auth: { clientId: T.resolverAppId, clientSecret: 'not-the-secret', authority: `${origin}/${T.tenantId}`, knownAuthorities: [new URL(origin).host] },
    system: { networkClient: msalNetworkModule(client) }
  })
  const err = await cca.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] }).catch((e: unknown) => e)
  t.match(err, { name: 'ServerError', errorCode: 'invalid_client' })
})
