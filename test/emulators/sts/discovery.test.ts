// Discovery documents (v2 and v1) for a tenant GUID, a verified domain, common and organizations; the key
// documents; and scripted signing-key rotation (publish, switch, retire) as a validator with a fresh JWKS
// sees it. All over HTTPS.
import t from 'tap'
import { createHash } from 'node:crypto'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant } from '../../helpers/tenant.ts'
import { accessToken, header, stsTenant, T, validate } from '../../helpers/sts.ts'

const V2_FIELDS = [
  'token_endpoint', 'token_endpoint_auth_methods_supported', 'jwks_uri', 'response_modes_supported', 'subject_types_supported',
  'id_token_signing_alg_values_supported', 'response_types_supported', 'scopes_supported', 'issuer', 'request_uri_parameter_supported',
  'userinfo_endpoint', 'authorization_endpoint', 'device_authorization_endpoint', 'http_logout_supported', 'frontchannel_logout_supported',
  'end_session_endpoint', 'claims_supported', 'kerberos_endpoint', 'tenant_region_scope', 'cloud_instance_name', 'cloud_graph_host_name',
  'msgraph_host', 'rbac_url'
]

t.test('discovery', async t => {
  const { origin } = await startTestEmulator(t, { tenants: [smallTenant()] })
  const get = async (path: string): Promise<{ status: number, headers: Headers, body: Record<string, unknown> }> => {
    const res = await fetch(`${origin}${path}`)
    return { status: res.status, headers: res.headers, body: await res.json() as Record<string, unknown> }
  }

  t.test('v2 document for the tenant GUID, field for field', async t => {
    const { status, headers, body } = await get(`/${T.tenantId}/v2.0/.well-known/openid-configuration`)
    t.equal(status, 200)
    t.same(Object.keys(body), V2_FIELDS, 'the captured fields in the captured order')
    const base = `${origin}/${T.tenantId}`
    t.equal(body.issuer, `${base}/v2.0`)
    t.equal(body.token_endpoint, `${base}/oauth2/v2.0/token`)
    t.equal(body.authorization_endpoint, `${base}/oauth2/v2.0/authorize`)
    t.equal(body.device_authorization_endpoint, `${base}/oauth2/v2.0/devicecode`)
    t.equal(body.end_session_endpoint, `${base}/oauth2/v2.0/logout`)
    t.equal(body.kerberos_endpoint, `${base}/kerberos`)
    t.equal(body.jwks_uri, `${base}/discovery/v2.0/keys`)
    t.same(body.token_endpoint_auth_methods_supported, ['client_secret_post', 'private_key_jwt', 'client_secret_basic'])
    t.same(body.id_token_signing_alg_values_supported, ['RS256'])
    t.same(body.subject_types_supported, ['pairwise'])
    t.equal(body.request_uri_parameter_supported, false)
    t.equal(body.userinfo_endpoint, 'https://graph.microsoft.com/oidc/userinfo')
    t.equal(body.cloud_instance_name, 'microsoftonline.com')
    t.equal(body.msgraph_host, 'graph.microsoft.com')
    t.type(body.tenant_region_scope, 'string', 'tenants carry a region')
    t.ok(headers.get('cache-control'), 'a Cache-Control header')
  })

  t.test('a verified domain resolves to the GUID in endpoints and issuer', async t => {
    const byDomain = await get('/contoso-test.onmicrosoft.com/v2.0/.well-known/openid-configuration')
    const byGuid = await get(`/${T.tenantId}/v2.0/.well-known/openid-configuration`)
    t.equal(byDomain.status, 200)
    t.same(byDomain.body, byGuid.body)
    const upper = await get(`/${T.tenantId.toUpperCase()}/v2.0/.well-known/openid-configuration`)
    t.equal(upper.body.issuer, `${origin}/${T.tenantId}/v2.0`, 'GUIDs are case-insensitive and normalised')
  })

  for (const segment of ['common', 'organizations']) {
    t.test(`${segment}: literal {tenantid} issuer, own path segment`, async t => {
      const { status, body } = await get(`/${segment}/v2.0/.well-known/openid-configuration`)
      t.equal(status, 200)
      t.same(Object.keys(body), V2_FIELDS)
      t.equal(body.issuer, `${origin}/{tenantid}/v2.0`)
      t.equal(body.token_endpoint, `${origin}/${segment}/oauth2/v2.0/token`)
      t.equal(body.authorization_endpoint, `${origin}/${segment}/oauth2/v2.0/authorize`)
      t.equal(body.jwks_uri, `${origin}/${segment}/discovery/v2.0/keys`)
      t.equal(body.tenant_region_scope, null)
    })
  }

  t.test('v1 documents', async t => {
    const tenant = await get(`/${T.tenantId}/.well-known/openid-configuration`)
    t.equal(tenant.status, 200)
    t.equal(tenant.body.issuer, `https://sts.windows.net/${T.tenantId}/`, 'v1 issuer, trailing slash')
    t.equal(tenant.body.jwks_uri, `${origin}/common/discovery/keys`)
    t.equal(tenant.body.token_endpoint, `${origin}/${T.tenantId}/oauth2/token`)
    t.equal(tenant.body.authorization_endpoint, `${origin}/${T.tenantId}/oauth2/authorize`)
    t.equal(tenant.body.check_session_iframe, `${origin}/${T.tenantId}/oauth2/checksession`)
    t.equal(tenant.body.userinfo_endpoint, `${origin}/${T.tenantId}/openid/userinfo`)
    t.equal(tenant.body.microsoft_multi_refresh_token, true)
    t.same(tenant.body.scopes_supported, ['openid'])
    const domain = await get('/contoso-test.onmicrosoft.com/.well-known/openid-configuration')
    t.same(domain.body, tenant.body, 'domain resolves to the GUID')
    const common = await get('/common/.well-known/openid-configuration')
    t.equal(common.body.issuer, 'https://sts.windows.net/{tenantid}/')
    t.equal(common.body.token_endpoint, `${origin}/common/oauth2/token`)
  })

  t.test('unknown tenant: AADSTS90002, never a crash', async t => {
    for (const path of ['/nope.example.com/v2.0/.well-known/openid-configuration', '/33333333-3333-4333-8333-333333333333/.well-known/openid-configuration',
      '/consumers/discovery/v2.0/keys', '/nope/discovery/keys']) {
      const { status, body } = await get(path)
      t.equal(status, 400, path)
      t.equal(body.error, 'invalid_tenant')
      t.same(body.error_codes, [90002])
      t.match(body.error_description, /^AADSTS90002: Tenant '.+' not found/)
    }
  })

  t.test('v2 keys: several keys, kid == x5t, no alg, template issuer, x5c', async t => {
    for (const segment of [T.tenantId, 'common', 'organizations', 'contoso-test.onmicrosoft.com']) {
      const { status, headers, body } = await get(`/${segment}/discovery/v2.0/keys?appid=${T.resolverAppId}`)
      t.equal(status, 200)
      t.match(headers.get('cache-control'), /max-age=\d+/)
      const keys = body.keys as Array<Record<string, unknown>>
      t.ok(keys.length >= 3, 'several keys published at once')
      for (const k of keys) {
        t.equal(k.kty, 'RSA')
        t.equal(k.use, 'sig')
        t.equal(k.kid, k.x5t)
        t.notOk('alg' in k, 'no alg member')
        t.equal(k.e, 'AQAB')
        t.type(k.n, 'string')
        t.equal(k.issuer, `${origin}/{tenantid}/v2.0`)
        t.ok(Array.isArray(k.x5c) && (k.x5c as string[]).length === 1)
        const der = Buffer.from((k.x5c as string[])[0] as string, 'base64')
        t.equal(createHash('sha1').update(der).digest('base64url'), k.x5t, 'x5t is the SHA-1 thumbprint of x5c')
      }
      t.equal(new Set(keys.map(k => k.kid)).size, keys.length, 'distinct kids')
    }
  })

  t.test('v1 keys: the same keys, no issuer member', async t => {
    const v1 = await get('/common/discovery/keys')
    const v2 = await get('/common/discovery/v2.0/keys')
    t.equal(v1.status, 200)
    const v1Keys = v1.body.keys as Array<Record<string, unknown>>
    t.same(v1Keys.map(k => k.kid), (v2.body.keys as Array<Record<string, unknown>>).map(k => k.kid))
    for (const k of v1Keys) t.notOk('issuer' in k)
    const tenant = await get(`/${T.tenantId}/discovery/keys`)
    t.same(tenant.body, v1.body, '/{tenant}/discovery/keys serves the same set')
  })

  t.test('unknown paths under the STS answer AADSTS-shaped', async t => {
    const { status, body } = await get(`/${T.tenantId}/discovery/v3.0/keys`)
    t.equal(status, 404)
    t.equal(body.error, 'invalid_request')
    t.match(body.error_description, /^AADSTS\d+: /)
  })
})

t.test('key rotation', async t => {
  const { origin } = await startTestEmulator(t, { tenants: [stsTenant()] })
  const control = async (method: string, path: string): Promise<{ status: number, body: Record<string, unknown> }> => {
    const res = await fetch(`${origin}/_emulator/keys${path}`, { method })
    return { status: res.status, body: await res.json() as Record<string, unknown> }
  }
  const jwksKids = async (): Promise<string[]> => {
    const body = await (await fetch(`${origin}/${T.tenantId}/discovery/v2.0/keys`)).json() as { keys: Array<{ kid: string }> }
    return body.keys.map(k => k.kid)
  }
  const appToken = async (): Promise<string> => (await accessToken(origin, T.tenantId, {
    grant_type: 'client_credentials', client_id: T.etlAppId, client_secret: T.etlSecret, scope: `api://${T.resolverAppId}/.default`
  })).token

  const initial = await control('GET', '')
  t.equal(initial.status, 200)
  const oldKid = initial.body.signing as string
  const before = await jwksKids()
  t.ok(before.includes(oldKid))
  t.same((initial.body.keys as Array<{ kid: string }>).map(k => k.kid), before, 'GET /_emulator/keys lists the published keys')
  const tokenA = await appToken()
  t.equal(header(tokenA).kid, oldKid)

  t.equal((await control('POST', '/switch')).status, 409, 'switching with no next key published is a conflict')

  // 1. publish: one more key in the JWKS, tokens still signed by the old one.
  const published = await control('POST', '/publish')
  t.equal(published.status, 200)
  t.equal(published.body.state, 'next')
  const newKid = published.body.kid as string
  const afterPublish = await jwksKids()
  t.equal(afterPublish.length, before.length + 1)
  t.ok(afterPublish.includes(newKid))
  t.equal(header(await appToken()).kid, oldKid, 'still signed by the old key')
  t.equal((await control('POST', '/publish')).body.kid, newKid, 'publishing again returns the same next key')

  // 2. switch: new tokens use the new kid; old tokens still verify.
  const switched = await control('POST', '/switch')
  t.equal(switched.body.kid, newKid)
  t.equal(switched.body.state, 'current')
  const tokenC = await appToken()
  t.equal(header(tokenC).kid, newKid)
  await validate(origin, tokenC, T.resolverAppId)
  await validate(origin, tokenA, T.resolverAppId)
  const states = (await control('GET', '')).body.keys as Array<{ kid: string, state: string }>
  t.equal(states.find(k => k.kid === oldKid)?.state, 'previous')

  // 3. retire: with a fresh JWKS, old tokens no longer verify; new ones do.
  const retired = await control('POST', '/retire')
  t.ok((retired.body.retired as string[]).includes(oldKid))
  t.same(await jwksKids(), [newKid])
  const err = await validate(origin, tokenA, T.resolverAppId).then(() => undefined, (e: unknown) => e as { code?: string })
  t.equal(err?.code, 'ERR_JWKS_NO_MATCHING_KEY')
  await validate(origin, tokenC, T.resolverAppId)
  t.same((await control('POST', '/retire')).body.retired, [], 'nothing left to retire')
})
