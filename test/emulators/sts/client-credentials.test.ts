// The client-credentials grant. First as @azure/msal-node's ConfidentialClientApplication uses it over HTTPS:
// client secret, certificate (SHA-256 thumbprint → PS256 + x5t#S256; legacy SHA-1 → RS256 + x5t), the second
// call served from msal's cache, msal parsing AADSTS errors. Then the token endpoint's client authentication
// and errors with plain fetch: bad input never crashes, and every failure is the right AADSTS error and
// status; private_key_jwt checks, multi-tenant clients, client-request-id echo, injected faults on STS
// paths, and the control API's own errors.
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { ConfidentialClientApplication, ServerError, type Configuration } from '@azure/msal-node'
import { SignJWT, decodeJwt } from 'jose'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { selfSigned, thumbprints, type CertifiedKey } from '../../../emulators/x509.ts'
import type { TenantFixture } from '../../../emulators/tenant/model.ts'
import { assertAadsts, postToken, stsTenant, T, X, type TokenResponse } from '../../helpers/sts.ts'

const TOKEN_ROUTE = 'POST /:tenant/oauth2/v2.0/token'

t.test('msal-node confidential client', async t => {
  const cert = await selfSigned('nightly-etl client', 1)
  const { origin, ctx } = await startTestEmulator(t, { tenants: [stsTenant({ certificates: [cert.certPem] })] })
  const host = new URL(origin).host
  const thumbs = thumbprints(cert.der)
  const config = (auth: Partial<Configuration['auth']>): Configuration => ({
    auth: { clientId: T.etlAppId, authority: `${origin}/${T.tenantId}`, knownAuthorities: [host], ...auth }
  })
  const tokenCalls = (): number => ctx.calls.snapshot().routes[TOKEN_ROUTE] ?? 0

  t.test('client secret; the second call comes from msal\'s cache', async t => {
    ctx.calls.reset()
    const cca = new ConfidentialClientApplication(config({ clientSecret: T.etlSecret }))
    const request = { scopes: [`api://${T.resolverAppId}/.default`] }
    const first = await cca.acquireTokenByClientCredential(request)
    t.ok(first?.accessToken)
    t.equal(first?.fromCache, false)
    t.equal(first?.tokenType, 'Bearer')
    const claims = decodeJwt(first?.accessToken ?? '')
    t.equal(claims.ver, '2.0', 'the resolver API accepts v2 tokens')
    t.equal(claims.aud, T.resolverAppId)
    t.equal(claims.azp, T.etlAppId)
    t.equal(claims.azpacr, '1', 'secret')
    t.equal(claims.oid, T.etlSp)
    t.equal(claims.tid, T.tenantId)
    t.equal(tokenCalls(), 1)

    const second = await cca.acquireTokenByClientCredential(request)
    t.equal(second?.fromCache, true)
    t.equal(second?.accessToken, first?.accessToken)
    t.equal(tokenCalls(), 1, 'no second token-endpoint call')
    t.ok((first?.expiresOn?.getTime() ?? 0) > Date.now() + 50 * 60_000, 'msal read expires_in')
  })

  t.test('certificate with a SHA-256 thumbprint (PS256, x5t#S256)', async t => {
    ctx.calls.reset()
    const cca = new ConfidentialClientApplication(config({ clientCertificate: { thumbprintSha256: thumbs.sha256Hex, privateKey: cert.keyPem } }))
    const request = { scopes: ['https://graph.microsoft.com/.default'] }
    const first = await cca.acquireTokenByClientCredential(request)
    t.equal(first?.fromCache, false)
    const claims = decodeJwt(first?.accessToken ?? '')
    t.equal(claims.ver, '1.0', 'Graph takes v1 tokens')
    t.equal(claims.aud, 'https://graph.microsoft.com')
    t.equal(claims.iss, `https://sts.windows.net/${T.tenantId}/`)
    t.equal(claims.appid, T.etlAppId)
    t.equal(claims.appidacr, '2', 'certificate')
    const second = await cca.acquireTokenByClientCredential(request)
    t.equal(second?.fromCache, true)
    t.equal(tokenCalls(), 1)
  })

  t.test('certificate with a legacy SHA-1 thumbprint (RS256, x5t)', async t => {
    const cca = new ConfidentialClientApplication(config({ clientCertificate: { thumbprint: thumbs.sha1Hex, privateKey: cert.keyPem } }))
    const result = await cca.acquireTokenByClientCredential({ scopes: [`${T.resolverAppId}/.default`] })
    t.equal(decodeJwt(result?.accessToken ?? '').azpacr, '2')
  })

  t.test('a wrong secret surfaces as msal ServerError with the AADSTS details', async t => {
    const cca = new ConfidentialClientApplication(config({ clientSecret: 'not-the-secret' }))
    const err = await cca.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] }).then(() => undefined, (e: unknown) => e)
    t.type(err, ServerError)
    const e = err as ServerError
    t.equal(e.errorCode, 'invalid_client')
    t.match(e.errorMessage, /AADSTS7000215/)
    t.type(e.correlationId, 'string')
  })

  t.test('a certificate the app does not know is rejected (AADSTS700027)', async t => {
    const stranger = await selfSigned('stranger', 1)
    const cca = new ConfidentialClientApplication(config({ clientCertificate: { thumbprintSha256: thumbprints(stranger.der).sha256Hex, privateKey: stranger.keyPem } }))
    const err = await cca.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] }).then(() => undefined, (e: unknown) => e)
    t.type(err, ServerError)
    t.match((err as ServerError).errorMessage, /AADSTS700027/)
  })
})

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const GRAPH_DEFAULT = 'https://graph.microsoft.com/.default'

/** A second tenant where the ETL app (registered in the first) has a service principal: a multi-tenant app. */
const guestTenant: TenantFixture = {
  tenantId: X.otherTenantId,
  domain: X.otherDomain,
  users: [],
  servicePrincipals: [{ id: 'b0000000-0000-4000-8000-00000000f0e1', appId: T.etlAppId, displayName: 'Nightly ETL (multi-tenant)' }],
  groups: [],
  applications: []
}

t.test('token endpoint', async t => {
  const cert = await selfSigned('nightly-etl client', 1)
  const stranger = await selfSigned('stranger', 1)
  const { origin, ctx, app } = await startTestEmulator(t, { tenants: [stsTenant({ certificates: [cert.certPem] }), guestTenant] })
  const endpoint = `${origin}/${T.tenantId}/oauth2/v2.0/token`
  const cc = (form: Record<string, string>, opts: { tenant?: string, v1?: boolean, headers?: Record<string, string> } = {}): Promise<TokenResponse> =>
    postToken(origin, opts.tenant ?? T.tenantId, { grant_type: 'client_credentials', client_id: T.etlAppId, scope: GRAPH_DEFAULT, ...form }, opts)
  const raw = async (init: RequestInit, url = endpoint): Promise<TokenResponse> => {
    const res = await fetch(url, { method: 'POST', ...init })
    return { status: res.status, headers: res.headers, body: await res.json() as Record<string, unknown> }
  }

  t.test('bad bodies never crash', async t => {
    assertAadsts(t, await raw({ body: new URLSearchParams({}) }), 400, 'invalid_request', 900144)
    assertAadsts(t, await raw({ body: 'a=%zz&&&=&%%%', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 400, 'invalid_request', 900144)
    assertAadsts(t, await raw({ body: '\u0000\u0001garbage' }), 400, 'invalid_request', 900144)
    assertAadsts(t, await raw({ body: Buffer.from([0xff, 0xfe, 0x00]), headers: { 'content-type': 'application/octet-stream' } }), 400, 'invalid_request', 900144)
    assertAadsts(t, await raw({}), 400, 'invalid_request', 900144)
    // A JSON body with every right field is still no form: Entra reads form bodies only.
    const json = await raw({ body: JSON.stringify({ grant_type: 'client_credentials', client_id: T.etlAppId, client_secret: T.etlSecret, scope: GRAPH_DEFAULT }), headers: { 'content-type': 'application/json' } })
    assertAadsts(t, json, 400, 'invalid_request', 900144)
    t.match(json.body.error_description, /'grant_type'/)
    const huge = await raw({ body: new URLSearchParams({ grant_type: 'client_credentials', pad: 'x'.repeat(1_100_000) }) })
    t.equal(huge.status, 413)
    t.match(huge.body.error_description, /^AADSTS\d+: /)
    assertAadsts(t, await fetch(endpoint).then(async r => ({ status: r.status, headers: r.headers, body: await r.json() as Record<string, unknown> })), 400, 'invalid_request', 900561)
  })

  t.test('grant, tenant, client and scope errors', async t => {
    assertAadsts(t, await cc({ grant_type: 'authorization_code' }), 400, 'unsupported_grant_type', 70003)
    assertAadsts(t, await cc({ client_secret: T.etlSecret }, { tenant: 'nope.example.com' }), 400, 'invalid_request', 90002)
    assertAadsts(t, await cc({ client_secret: T.etlSecret }, { tenant: '33333333-3333-4333-8333-333333333333', v1: true }), 400, 'invalid_request', 90002)
    assertAadsts(t, await cc({ client_secret: T.etlSecret }, { tenant: 'common' }), 400, 'invalid_request', 50059)
    assertAadsts(t, await cc({ client_id: '' }), 400, 'invalid_request', 900144)
    assertAadsts(t, await cc({ client_id: randomUUID(), client_secret: 'x' }), 400, 'unauthorized_client', 700016)
    assertAadsts(t, await cc({ client_secret: 'wrong' }), 401, 'invalid_client', 7000215)
    assertAadsts(t, await cc({ client_id: X.publicClientAppId, client_secret: 'anything' }), 401, 'invalid_client', 7000215)
    assertAadsts(t, await cc({}), 401, 'invalid_client', 7000218)
    assertAadsts(t, await cc({ client_secret: T.etlSecret, scope: '' }), 400, 'invalid_scope', 70011)
    assertAadsts(t, await cc({ client_secret: T.etlSecret, scope: 'openid' }), 400, 'invalid_scope', 70011)
    assertAadsts(t, await cc({ client_secret: T.etlSecret, scope: 'https://graph.microsoft.com/User.Read.All' }), 400, 'invalid_scope', 1002012)
    assertAadsts(t, await cc({ client_secret: T.etlSecret, scope: `${GRAPH_DEFAULT} openid` }), 400, 'invalid_scope', 1002012)
    assertAadsts(t, await cc({ client_secret: T.etlSecret, scope: `${GRAPH_DEFAULT} api://${T.resolverAppId}/.default` }), 400, 'invalid_scope', 28000)
    assertAadsts(t, await cc({ client_secret: T.etlSecret, scope: 'api://nothing-here/.default' }), 400, 'invalid_resource', 500011)
    assertAadsts(t, await cc({ client_secret: T.etlSecret, scope: `${randomUUID()}/.default` }), 400, 'invalid_resource', 500011)
    assertAadsts(t, await cc({ client_secret: T.etlSecret }, { v1: true }), 400, 'invalid_request', 900144) // v1 needs resource=
  })

  t.test('a disabled service principal cannot get tokens', async t => {
    const d = ctx.tenants.get(T.tenantId)
    d?.updateServicePrincipal(T.etlSp, { accountEnabled: false })
    t.teardown(() => { d?.updateServicePrincipal(T.etlSp, { accountEnabled: true }) })
    assertAadsts(t, await cc({ client_secret: T.etlSecret }), 400, 'unauthorized_client', 7000112)
  })

  t.test('client secret: post, Basic, extra parameters ignored, client-request-id echoed', async t => {
    const cid = randomUUID()
    const post = await cc({ client_secret: T.etlSecret, 'x-client-SKU': 'msal.js.node', 'x-client-VER': '7.2.3', 'x-ms-lib-capability': 'retry-after, h429', claims: '{}' }, { headers: { 'client-request-id': cid } })
    t.equal(post.status, 200)
    t.equal(post.headers.get('client-request-id'), cid)
    t.equal(post.headers.get('cache-control'), 'no-store, no-cache')
    t.same(Object.keys(post.body), ['token_type', 'expires_in', 'ext_expires_in', 'access_token'])
    const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`
    const viaBasic = await postToken(origin, T.tenantId, { grant_type: 'client_credentials', scope: GRAPH_DEFAULT }, { headers: { authorization: basic(T.etlAppId, T.etlSecret) } })
    t.equal(viaBasic.status, 200)
    t.equal(decodeJwt(viaBasic.body.access_token as string).appidacr, '1')
    assertAadsts(t, await postToken(origin, T.tenantId, { grant_type: 'client_credentials', scope: GRAPH_DEFAULT }, { headers: { authorization: basic(T.etlAppId, 'nope') } }), 401, 'invalid_client', 7000215)
    assertAadsts(t, await cc({}, { headers: { authorization: basic(T.resolverAppId, T.resolverSecret) } }), 400, 'invalid_request', 9002313)
    // The correlation id may also come as a form field (msal sends both).
    const fieldCid = randomUUID()
    const failed = await cc({ client_secret: 'wrong', 'client-request-id': fieldCid })
    assertAadsts(t, failed, 401, 'invalid_client', 7000215, fieldCid)
    t.equal(failed.headers.get('client-request-id'), fieldCid)
    const headerCid = randomUUID()
    assertAadsts(t, await cc({ client_secret: 'wrong' }, { headers: { 'client-request-id': headerCid } }), 401, 'invalid_client', 7000215, headerCid)
  })

  t.test('the v1 endpoint: resource=, v1 response fields', async t => {
    const res = await cc({ client_secret: T.etlSecret, resource: 'https://graph.microsoft.com/' }, { v1: true })
    t.equal(res.status, 200)
    t.same(Object.keys(res.body), ['token_type', 'expires_in', 'ext_expires_in', 'expires_on', 'not_before', 'resource', 'access_token'])
    t.equal(res.body.expires_in, '3600')
    t.equal(Number(res.body.expires_on) - Number(res.body.not_before), 3600)
    t.equal(decodeJwt(res.body.access_token as string).aud, 'https://graph.microsoft.com/', 'v1 aud: exactly the identifier used')
  })

  t.test('a multi-tenant client gets tokens in a tenant where it has a service principal', async t => {
    const res = await cc({ client_secret: T.etlSecret }, { tenant: X.otherDomain })
    t.equal(res.status, 200)
    const c = decodeJwt(res.body.access_token as string)
    t.equal(c.tid, X.otherTenantId)
    t.equal(c.oid, 'b0000000-0000-4000-8000-00000000f0e1', 'oid: the client\'s SP in that tenant')
    t.equal(c.iss, `https://sts.windows.net/${X.otherTenantId}/`)
    assertAadsts(t, await cc({ client_id: T.resolverAppId, client_secret: T.resolverSecret }, { tenant: X.otherTenantId }), 400, 'unauthorized_client', 700016)
  })

  t.test('private_key_jwt', async t => {
    const now = Math.floor(Date.now() / 1000)
    const assertion = async (opts: { signer?: CertifiedKey, x5t?: string | null, alg?: string, aud?: string, iss?: string, nbf?: number, exp?: number | null } = {}): Promise<string> => {
      const signer = opts.signer ?? cert
      const hdr: Record<string, unknown> = { alg: opts.alg ?? 'RS256', typ: 'JWT' }
      if (opts.x5t !== null) hdr.x5t = opts.x5t ?? thumbprints(cert.der).x5t
      const jwt = new SignJWT({ jti: randomUUID(), nbf: opts.nbf ?? now, ...(opts.exp !== null ? { exp: opts.exp ?? now + 600 } : {}) })
        .setProtectedHeader(hdr as { alg: string })
        .setIssuer(opts.iss ?? T.etlAppId)
        .setSubject(opts.iss ?? T.etlAppId)
        .setAudience(opts.aud ?? endpoint)
        .setIssuedAt(now)
      return await jwt.sign(signer.keys.privateKey)
    }
    const withAssertion = async (jwt: string, type = JWT_BEARER, tenant = T.tenantId): Promise<TokenResponse> =>
      await cc({ client_assertion_type: type, client_assertion: jwt }, { tenant })

    const ok = await withAssertion(await assertion())
    t.equal(ok.status, 200)
    t.equal(decodeJwt(ok.body.access_token as string).appidacr, '2')
    t.equal((await withAssertion(await assertion({ aud: `${origin}/${T.tenantId}/oauth2/token` }))).status, 200, 'the v1 endpoint URL as aud')
    t.equal((await withAssertion(await assertion({ aud: `${origin}/contoso-test.onmicrosoft.com/oauth2/v2.0/token` }))).status, 200, 'the domain form as aud')
    const byS256 = await new SignJWT({ exp: now + 600, nbf: now })
      .setProtectedHeader({ alg: 'RS256', 'x5t#S256': thumbprints(cert.der).x5tS256 }).setIssuer(T.etlAppId).setSubject(T.etlAppId).setAudience(endpoint)
      .sign(cert.keys.privateKey)
    t.equal((await withAssertion(byS256)).status, 200, 'x5t#S256 with RS256')

    assertAadsts(t, await withAssertion(await assertion({ signer: stranger })), 401, 'invalid_client', 700027)
    assertAadsts(t, await withAssertion(await assertion({ signer: stranger, x5t: thumbprints(stranger.der).x5t })), 401, 'invalid_client', 700027)
    assertAadsts(t, await withAssertion(await assertion({ x5t: null })), 401, 'invalid_client', 700027)
    const hs = await new SignJWT({ exp: now + 600 }).setProtectedHeader({ alg: 'HS256', x5t: thumbprints(cert.der).x5t }).setIssuer(T.etlAppId).setSubject(T.etlAppId).setAudience(endpoint).sign(new TextEncoder().encode('k'.repeat(32)))
    assertAadsts(t, await withAssertion(hs), 401, 'invalid_client', 700027)
    assertAadsts(t, await withAssertion(await assertion({ exp: now - 3600, nbf: now - 4200 })), 401, 'invalid_client', 700024)
    assertAadsts(t, await withAssertion(await assertion({ nbf: now + 3600, exp: now + 4200 })), 401, 'invalid_client', 700024)
    assertAadsts(t, await withAssertion(await assertion({ exp: null })), 401, 'invalid_client', 700024)
    assertAadsts(t, await withAssertion(await assertion({ aud: 'https://login.microsoftonline.com/common/oauth2/v2.0/token' })), 401, 'invalid_client', 50012)
    assertAadsts(t, await withAssertion(await assertion({ aud: `${origin}/${X.otherTenantId}/oauth2/v2.0/token` })), 401, 'invalid_client', 50012)
    assertAadsts(t, await withAssertion(await assertion({ iss: T.resolverAppId })), 401, 'invalid_client', 700021)
    assertAadsts(t, await withAssertion('not.a.jwt'), 400, 'invalid_request', 50027)
    assertAadsts(t, await withAssertion(await assertion(), 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer'), 401, 'invalid_client', 7000218)

    // Time is the emulator's clock: two hours on, a freshly signed assertion is out of range.
    ctx.clock.advance(2 * 3600_000)
    t.teardown(() => { ctx.clock.reset() })
    assertAadsts(t, await withAssertion(await assertion()), 401, 'invalid_client', 700024)
    ctx.clock.reset()
    t.equal((await withAssertion(await assertion())).status, 200)
  })

  t.test('injected faults on STS paths are AADSTS-shaped, with Retry-After', async t => {
    t.teardown(() => { ctx.faults.remove() })
    ctx.faults.add({ route: `/${T.tenantId}/oauth2/v2.0/token`, status: 429, retryAfter: 7, times: 1 })
    const throttled = await cc({ client_secret: T.etlSecret })
    assertAadsts(t, throttled, 429, 'temporarily_unavailable', 90055)
    t.equal(throttled.headers.get('retry-after'), '7')
    ctx.faults.add({ route: '/*/discovery/v2.0/keys', status: 503, retryAfter: 2, times: 1 })
    const down = await fetch(`${origin}/common/discovery/v2.0/keys`)
    assertAadsts(t, { status: down.status, headers: down.headers, body: await down.json() as Record<string, unknown> }, 503, 'temporarily_unavailable', 90033)
    t.equal(down.headers.get('retry-after'), '2')
    t.equal((await cc({ client_secret: T.etlSecret })).status, 200, 'faults with `times` run out')
  })

  t.test('control API errors', async t => {
    const post = async (body: unknown, path = '/_emulator/tokens'): Promise<{ status: number, body: { error?: { code: string, message: string } } }> => {
      const res = await fetch(`${origin}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) })
      return { status: res.status, body: await res.json() as { error?: { code: string, message: string } } }
    }
    const remote = await app.inject({ method: 'POST', url: '/_emulator/tokens', remoteAddress: '203.0.113.9', payload: { principalId: T.alice } })
    t.equal(remote.statusCode, 403, 'non-loopback callers are refused')
    t.equal((await app.inject({ method: 'POST', url: '/_emulator/keys/publish', remoteAddress: '10.1.2.3' })).statusCode, 403)
    t.equal((await app.inject({ method: 'POST', url: '/_emulator/tokens', remoteAddress: '127.0.0.1', payload: { principalId: T.alice } })).statusCode, 200)

    for (const [body, why] of [[{}, 'no principalId'], [{ principalId: T.alice, break: 'nope' }, 'unknown break'], [{ principalId: T.alice, version: 3 }, 'bad version'],
      [{ principalId: T.alice, claims: 'x' }, 'claims not an object'], ['{not json', 'not JSON']] as const) {
      const res = await post(body)
      t.equal(res.status, 400, why)
      t.equal(res.body.error?.code, 'invalid-request')
      t.type(res.body.error?.message, 'string')
    }
    const missing = await post({ principalId: randomUUID() })
    t.equal(missing.status, 404)
    t.equal(missing.body.error?.code, 'not-found')
    t.equal((await post({ principalId: T.alice, tenantId: randomUUID() })).status, 404, 'unknown tenant')
    t.equal((await post({ principalId: T.alice, audience: 'api://unknown' })).status, 400, 'unknown audience')
    t.equal((await post({ principalId: 'b0000000-0000-4000-8000-00000000f0e1', tenantId: X.otherTenantId })).status, 400, 'no default audience in a tenant without App ID URIs')
    t.equal((await post({ principalId: 'b0000000-0000-4000-8000-00000000f0e1', tenantId: X.otherTenantId, audience: 'https://graph.microsoft.com' })).status, 200)
  })
})
