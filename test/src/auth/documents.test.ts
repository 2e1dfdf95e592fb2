// What the verifier makes of the authority's documents when they are not what it expects (a multi-tenant
// issuer template, an http or broken jwks_uri, foreign and unusable keys, a key bound to another issuer),
// and of its own options. The documents are the emulators', altered on the way by the injected fetchJson.
import t from 'tap'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { stsTenant, T } from '../../helpers/sts.ts'
import { smallTenant } from '../../helpers/tenant.ts'
import { createTokenVerifier, TokenVerifier, type TokenVerifierOptions } from '../../../src/auth/verifier.ts'
import { isTokenError } from '../../../src/auth/errors.ts'
import { AUDIENCES, fetchJson, keyFetches, mint, refused, tamper, verifierFor, type Claims } from '../../helpers/auth.ts'

type Rewrite = (url: string, body: Claims) => Claims

const rewriting = (rewrite: Rewrite, seen: string[] = []) => async (url: string): Promise<unknown> => {
  seen.push(url)
  return rewrite(url, await fetchJson(url) as Claims)
}

const MSA_TENANT = '9188040d-6c67-4c5b-b112-36a304b66dad'

t.test('authority documents', async t => {
  const { origin, ctx } = await startTestEmulator(t, { tenants: [stsTenant(), smallTenant({ tenantId: T.otherTenantId, domain: 'fabrikam.onmicrosoft.com' })] })
  const good = await mint(origin, { principalId: T.alice })
  const goodV1 = await mint(origin, { principalId: T.alice, version: 1 })
  const other = await mint(origin, { tenantId: T.otherTenantId, principalId: T.bob })

  t.test('a multi-tenant discovery document ({tenantid} in its issuer) works like the tenant\'s own', async t => {
    const organizations = async (url: string): Promise<unknown> => await fetchJson(url.replace(`/${T.tenantId}/`, '/organizations/'))
    const verifier = await verifierFor(t, origin, { fetchJson: organizations, allowedTenants: [T.tenantId, T.otherTenantId] })
    t.equal((await verifier.verify(good.token)).oid, T.alice)
    t.equal((await verifier.verify(goodV1.token)).oid, T.alice)
    t.equal((await verifier.verify(other.token)).tenantId, T.otherTenantId)
    await refused(t, verifier.verify((await mint(origin, { principalId: T.alice, break: 'tid-mismatch' })).token), 'TOKEN_TENANT_MISMATCH')
  })

  t.test('a key published for one exact issuer (the MSA tenant) signs nothing for a work tenant', async t => {
    const msaKeys: Rewrite = (url, body) => url.endsWith('/discovery/v2.0/keys')
      ? { keys: (body.keys as Claims[]).map(k => ({ ...k, issuer: `${origin}/${MSA_TENANT}/v2.0` })) }
      : body
    const verifier = await verifierFor(t, origin, { fetchJson: rewriting(msaKeys) })
    const e = await refused(t, verifier.verify(good.token), 'TOKEN_ISSUER_INVALID')
    t.match(e.message, /the issuer its signing key is published for/)
    t.equal((await verifier.verify(goodV1.token)).oid, T.alice, 'v1 keys carry no issuer: the key set binds them')
  })

  t.test('keys that are not RS256 signature keys are skipped, the others used', async t => {
    const mixed: Rewrite = (url, body) => {
      if (!url.includes('/discovery/')) return body
      const [first, ...rest] = body.keys as Claims[]
      return {
        keys: [
          'not a key',
          { ...first, alg: 'RS512' },
          { ...first, use: 'enc' },
          { ...first, n: 'AQAB' },
          { ...first, e: '' },
          { ...first, n: 42 },
          { kty: 'EC', kid: first?.kid, crv: 'P-256', x: 'x', y: 'y' },
          ...rest
        ]
      }
    }
    const verifier = await verifierFor(t, origin, { fetchJson: rewriting(mixed) })
    await refused(t, verifier.verify(good.token), 'TOKEN_UNKNOWN_KEY')
    t.pass('the signing key was published only in forms that cannot be used (another algorithm, encryption, a 17-bit modulus, an exponent of 0)')
    t.equal(verifier.stats().keys.v2.keys, 2, 'the two other keys were taken')
  })

  t.test('documents that cannot be used: 503, and the keys are never fetched from elsewhere', async t => {
    const cases: Array<[string, Rewrite]> = [
      ['an http jwks_uri', (url, body) => url.includes('openid-configuration') ? { ...body, jwks_uri: String(body.jwks_uri).replace('https:', 'http:') } : body],
      ['a jwks_uri that is not a URL', (url, body) => url.includes('openid-configuration') ? { ...body, jwks_uri: 'keys' } : body],
      ['no issuer', (url, body) => url.includes('openid-configuration') ? { ...body, issuer: undefined } : body],
      ['an issuer naming neither {tenantid} nor the tenant', (url, body) => url.includes('openid-configuration') ? { ...body, issuer: `${origin}/v2.0` } : body],
      ['a key set without keys', (url, body) => url.includes('/discovery/') ? { value: [] } : body],
      ['a key set with no usable key', (url, body) => url.includes('/discovery/') ? { keys: [] } : body]
    ]
    for (const [name, rewrite] of cases) {
      const seen: string[] = []
      const verifier = await verifierFor(t, origin, { fetchJson: rewriting(rewrite, seen) })
      const e = await refused(t, verifier.verify(good.token), 'SIGNING_KEYS_UNAVAILABLE', 503)
      t.match(e.cause, { message: /./ }, `${name}: ${(e.cause as Error).message}`)
      t.ok(seen.every(url => url.startsWith(`${origin}/`)), 'only the authority was asked')
    }
  })

  t.test('warm() loads both key sets up front', async t => {
    const verifier = await verifierFor(t, origin)
    const before = keyFetches(ctx)
    await verifier.warm()
    const after = keyFetches(ctx)
    t.same([after.discoveryV2 - before.discoveryV2, after.jwksV2 - before.jwksV2, after.discoveryV1 - before.discoveryV1, after.jwksV1 - before.jwksV1], [1, 1, 1, 1])
    await verifier.verify(good.token)
    await verifier.verify(goodV1.token)
    t.equal(keyFetches(ctx).total, after.total, 'then verification fetches nothing')
  })

  t.test('a cache observer sees hits, coalesced waits and misses', async t => {
    const seen: string[] = []
    const verifier = await verifierFor(t, origin, { cacheObserver: { onLookup: (cache, result) => seen.push(`${cache}:${result}`) } })
    await Promise.all([verifier.verify(good.token), verifier.verify(good.token)])
    await verifier.verify(good.token)
    t.same(seen, ['verified-tokens:miss', 'verified-tokens:coalesced', 'verified-tokens:hit'])
  })

  t.test('the LRU is bounded', async t => {
    const verifier = await verifierFor(t, origin, { cacheMaxEntries: 2 })
    for (const principalId of [T.alice, T.bob, T.etlAppId]) await verifier.verify((await mint(origin, { principalId })).token)
    t.equal(verifier.stats().cache.entries, 2)
    const budget = 4096 + 1024
    const small = await verifierFor(t, origin, { maxTokenBytes: 4096, cacheMaxBytes: budget })
    const weights: number[] = []
    for (const principalId of [T.alice, T.bob, T.etlAppId, T.alice]) {
      const { token } = await mint(origin, { principalId })
      await small.verify(token)
      weights.unshift(token.length + 1024)
    }
    let fit = 0
    for (let used = 0; fit < weights.length && used + (weights[fit] as number) <= budget; fit++) used += weights[fit] as number
    t.ok(fit < weights.length)
    t.equal(small.stats().cache.entries, fit, `and by bytes: the ${fit} most recent tokens that fit in ${budget} bytes`)
  })

  t.test('messages quote what the token said, shortened and without control characters', async t => {
    const verifier = await verifierFor(t, origin)
    const long = await mint(origin, { principalId: T.alice, claims: { aud: `api://${'x'.repeat(500)}` } })
    const e = await refused(t, verifier.verify(long.token), 'TOKEN_AUDIENCE_INVALID')
    t.match(e.message, /"api:\/\/x{111}\.\.\."/)
    const control = await refused(t, verifier.verify(tamper(good.token, { header: { kid: 'a\nb\u0000c' } })), 'TOKEN_UNKNOWN_KEY')
    t.match(control.message, /"a\?b\?c"/)
    const object = await refused(t, verifier.verify(tamper(good.token, { header: { alg: { name: 'RS256' } } })), 'TOKEN_ALGORITHM_NOT_ALLOWED')
    t.match(object.message, /"\{"name":"RS256"\}"/)
    t.ok(isTokenError(e) && !isTokenError(new Error('x')))
  })
})

t.test('options', async t => {
  const base: TokenVerifierOptions = { authorityHost: 'https://login.microsoftonline.com', tenantId: T.tenantId, audiences: AUDIENCES, fetchJson }
  const bad: Array<[Partial<Record<keyof TokenVerifierOptions, unknown>>, RegExp]> = [
    [{ authorityHost: 'http://login.microsoftonline.com' }, /authorityHost must be https/],
    [{ authorityHost: 'login.microsoftonline.com' }, /authorityHost is not a URL/],
    [{ tenantId: 'contoso.onmicrosoft.com' }, /tenantId must be a tenant GUID/],
    [{ allowedTenants: [] }, /allowedTenants must name at least one tenant/],
    [{ allowedTenants: ['common'] }, /allowedTenants must be tenant GUIDs \(got common\)/],
    [{ audiences: [] }, /audiences must list/],
    [{ audiences: [' '] }, /audiences must list/],
    [{ fetchJson: 'https://example.com' }, /fetchJson must be a function/],
    [{ clockSkewSeconds: -1 }, /clockSkewSeconds must be a non-negative number/],
    [{ keyRefreshIntervalMs: Number.NaN }, /keyRefreshIntervalMs must be a non-negative number/],
    [{ keyMinRefreshIntervalMs: 0 }, /keyMinRefreshIntervalMs must be at least 1/],
    [{ maxTokenBytes: '16k' }, /maxTokenBytes must be a non-negative number/],
    [{ cacheMaxEntries: 0 }, /cacheMaxEntries must be at least 1/],
    [{ cacheMaxBytes: 1000 }, /cacheMaxBytes must hold at least one token/]
  ]
  for (const [change, message] of bad) {
    t.throws(() => new TokenVerifier({ ...base, ...change } as TokenVerifierOptions), { name: 'TypeError', message }, JSON.stringify(change))
  }
  t.throws(() => new TokenVerifier({ ...base, tenantId: 'x', audiences: [] }), { message: /tenantId.*; .*audiences/ }, 'every problem at once')

  const unattached = new TokenVerifier({ ...base, authorityHost: 'https://login.microsoftonline.com/' })
  await t.rejects(unattached.verify('a.b.c'), { message: /not attached: build it with createTokenVerifier/ })
  const verifier = await createTokenVerifier(base)
  await t.rejects(verifier.attach(await import('fastify').then(f => f.default())), { message: /already attached/ })
  await verifier.close()
})
