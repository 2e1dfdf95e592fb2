// Tokens the verifier refuses, each with its own code, through a fastify route as a client sees them
// (401 application/problem+json with `WWW-Authenticate`), and without any upstream call: every `break`
// of the token factory in v1 and v2, garbage, missing/empty/Basic/oversized headers, tampered tokens,
// other audiences, and forged issuers pointing at a server of the attacker's, which is never contacted.
import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { stsTenant, T } from '../../helpers/sts.ts'
import { smallTenant } from '../../helpers/tenant.ts'
import { registerProblemHandlers } from '../../../src/http/problems.ts'
import { createTokenVerifier, type TokenVerifier } from '../../../src/auth/verifier.ts'
import { TOKEN_ERROR_CODES } from '../../../src/auth/errors.ts'
import { AUDIENCES, decodePart, fetchJson, forge, keyFetches, mint, randomKid, refused, tamper, verifierFor } from '../../helpers/auth.ts'

const BREAKS: Array<[string, string]> = [
  ['bad-signature', 'TOKEN_SIGNATURE_INVALID'],
  ['unknown-kid', 'TOKEN_UNKNOWN_KEY'],
  ['expired', 'TOKEN_EXPIRED'],
  ['nbf-future', 'TOKEN_NOT_YET_VALID'],
  ['wrong-audience', 'TOKEN_AUDIENCE_INVALID'],
  ['wrong-issuer', 'TOKEN_ISSUER_INVALID'],
  ['tid-mismatch', 'TOKEN_TENANT_MISMATCH'],
  ['tid-not-guid', 'TOKEN_TENANT_INVALID'],
  ['alg-none', 'TOKEN_ALGORITHM_NOT_ALLOWED'],
  ['hs256-public-key', 'TOKEN_ALGORITHM_NOT_ALLOWED']
]

/** The service's shape: problem+json errors, and a route behind the verifier (on the app as host). */
async function appWith (t: Test, origin: string): Promise<{ app: FastifyInstance, verifier: TokenVerifier }> {
  const app = Fastify({ logger: false })
  t.teardown(async () => await app.close())
  registerProblemHandlers(app)
  // No refetch on a schedule or an unknown kid while the test runs, however slow the machine: the refusals
  // below must cost no fetch at all (keys.test.ts tests the refresh schedule, on an injected clock).
  const hour = 3600_000
  const verifier = await createTokenVerifier({ authorityHost: origin, tenantId: T.tenantId, audiences: AUDIENCES, fetchJson, keyRefreshIntervalMs: hour, keyMinRefreshIntervalMs: hour }, { host: app })
  app.get('/whoami', async (request) => await verifier.authenticate(request.headers.authorization))
  await app.ready()
  return { app, verifier }
}

/** A local server standing in for an attacker's host: counts every request it gets. */
async function attackerServer (t: Test): Promise<{ url: string, hits: () => number }> {
  let hits = 0
  const server = createServer((_req, res) => { hits++; res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":[]}') })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => await new Promise<void>(resolve => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits }
}

t.test('refused tokens', async t => {
  const { origin, ctx } = await startTestEmulator(t, { tenants: [stsTenant(), smallTenant({ tenantId: T.otherTenantId, domain: 'fabrikam.onmicrosoft.com' })] })
  const { app, verifier } = await appWith(t, origin)
  const get = async (authorization?: string): Promise<{ status: number, code: string, detail: string, headers: Record<string, unknown>, body: Record<string, unknown> }> => {
    const res = await app.inject({ method: 'GET', url: '/whoami', headers: authorization === undefined ? {} : { authorization } })
    const body = res.json() as Record<string, unknown>
    return { status: res.statusCode, code: String(body.code), detail: String(body.detail), headers: res.headers, body }
  }

  const good = await mint(origin, { principalId: T.alice })
  const ok = await get(`Bearer ${good.token}`)
  t.equal(ok.status, 200, 'a good token passes, which loads the discovery documents and keys')
  t.equal(ok.body.oid, T.alice)
  await verifier.warm()
  t.notOk(app.hasDecorator('jwt') || app.hasRequestDecorator('jwtVerify') || app.hasRequestDecorator('user'), '@fastify/jwt stays encapsulated: nothing leaks into the app')
  const baseline = keyFetches(ctx)

  t.test('every break of the token factory, v1 and v2, user and app: 401 with its own code', async t => {
    for (const [brk, code] of BREAKS) {
      for (const version of [1, 2]) {
        for (const principalId of [T.alice, T.etlAppId]) {
          const { token } = await mint(origin, { principalId, version, break: brk })
          const res = await get(`Bearer ${token}`)
          t.equal(res.status, 401, `${brk} v${version}: 401`)
          t.equal(res.code, code, `${brk} v${version} ${principalId === T.alice ? 'user' : 'app'}: ${code}`)
          t.match(res.headers['content-type'], /^application\/problem\+json/)
          t.equal(res.headers['www-authenticate'], `Bearer error="invalid_token", error_description="${code}"`)
          t.notMatch(res.detail, token.split('.')[2] as string, 'the token never appears in the answer')
        }
      }
    }
  })

  t.test('no header, an empty one, another scheme, or Bearer without a token: TOKEN_MISSING', async t => {
    for (const header of [undefined, '', '   ', 'Basic dXNlcjpwYXNz', 'Bearer', 'Bearer   ', `Negotiate ${good.token}`]) {
      const res = await get(header)
      t.equal(res.status, 401)
      t.equal(res.code, 'TOKEN_MISSING', `${JSON.stringify(header)?.slice(0, 30)}`)
      t.equal(res.headers['www-authenticate'], 'Bearer', 'the challenge names the scheme, without an error (RFC 6750 §3.1)')
      t.match(res.detail, /Authorization: Bearer <token>/, 'says what to send')
    }
    t.equal((await get(`bearer  ${good.token}`)).status, 200, 'the scheme is case-insensitive, and extra spaces are tolerated')
  })

  t.test('garbage: TOKEN_MALFORMED', async t => {
    const payloadOnly = good.token.split('.').slice(0, 2).join('.')
    const cases = [
      'garbage', 'a.b', 'a.b.c.d', `${good.token}!`, '!!!.???.###', 'eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln', `Bearer ${good.token}`,
      `${Buffer.from('[1]').toString('base64url')}.${payloadOnly.split('.')[1] as string}.abc`,
      `${payloadOnly.split('.')[0] as string}.${Buffer.from('"a string"').toString('base64url')}.abc`
    ]
    for (const token of cases) {
      const res = await get(`Bearer ${token}`)
      t.equal(res.code, 'TOKEN_MALFORMED', `${token.slice(0, 40)}: ${res.detail}`)
    }
    t.equal((await get(`Bearer ${good.token} extra`)).code, 'TOKEN_MALFORMED', 'two values after Bearer')
    const header = decodePart(good.token, 0)
    for (const change of [{ kid: null }, { kid: '' }]) {
      t.equal((await get(`Bearer ${forge({ ...header, ...change }, good.claims)}`)).code, 'TOKEN_MALFORMED', 'no kid')
    }
    for (const claims of [{ ver: '3.0' }, { ver: null }, { exp: null }, { exp: 'tomorrow' }, { nbf: 'now' }, { iss: null }, { oid: 'alice' }, { azp: null }]) {
      const { token } = await mint(origin, { principalId: T.alice, claims })
      t.equal((await get(`Bearer ${token}`)).code, 'TOKEN_MALFORMED', `signed by Entra but ${JSON.stringify(claims)}`)
    }
    const neither = await mint(origin, { principalId: T.etlAppId, claims: { idtyp: null, sub: 'pairwise-subject' } })
    const res = await get(`Bearer ${neither.token}`)
    t.equal(res.code, 'TOKEN_MALFORMED', 'neither delegated (scp) nor app-only (idtyp, roles, oid = sub)')
    t.match(res.detail, /neither a delegated token/)
  })

  t.test('an oversized header or token: TOKEN_TOO_LARGE, before parsing', async t => {
    const huge = `Bearer ${'A'.repeat(16 * 1024 + 1)}`
    const res = await get(huge)
    t.equal(res.status, 401)
    t.equal(res.code, 'TOKEN_TOO_LARGE')
    t.match(res.detail, /16385 bytes, more than the 16384/)
    t.equal((await get(`Bearer ${'A'.repeat(1024 * 1024)}`)).code, 'TOKEN_TOO_LARGE', 'a megabyte too')
    await refused(t, verifier.verify('A'.repeat(16 * 1024 + 1)), 'TOKEN_TOO_LARGE')
    const padded = await mint(origin, { principalId: T.alice, claims: { padding: 'x'.repeat(16 * 1024) } })
    t.equal((await get(`Bearer ${padded.token}`)).code, 'TOKEN_TOO_LARGE', 'even when Entra signed it')
  })

  t.test('tampered and forged tokens', async t => {
    const res = await get(`Bearer ${tamper(good.token, { payload: { oid: T.bob } })}`)
    t.equal(res.code, 'TOKEN_SIGNATURE_INVALID', 'a changed claim breaks the signature')
    const [h, p] = good.token.split('.') as [string, string]
    t.equal((await get(`Bearer ${h}.${p}.`)).code, 'TOKEN_SIGNATURE_INVALID', 'RS256 without a signature')
    for (const alg of ['RS384', 'RS512', 'PS256', 'ES256', 'HS512', 'none', 'NONE', 'rs256']) {
      t.equal((await get(`Bearer ${tamper(good.token, { header: { alg } })}`)).code, 'TOKEN_ALGORITHM_NOT_ALLOWED', alg)
    }
    t.equal((await get(`Bearer ${tamper(good.token, { header: { alg: null } })}`)).code, 'TOKEN_ALGORITHM_NOT_ALLOWED', 'no alg')
    t.equal((await get(`Bearer ${tamper(good.token, { header: { kid: randomKid() } })}`)).code, 'TOKEN_UNKNOWN_KEY')
  })

  t.test('another audience: TOKEN_AUDIENCE_INVALID', async t => {
    for (const body of [{ audience: 'https://graph.microsoft.com' }, { audience: 'https://graph.microsoft.com', version: 2 }, { claims: { aud: `${AUDIENCES[1] as string}//` } }, { claims: { aud: ['api://other'] } }, { claims: { aud: null } }]) {
      const { token } = await mint(origin, { principalId: T.alice, ...body })
      const res = await get(`Bearer ${token}`)
      t.equal(res.code, 'TOKEN_AUDIENCE_INVALID', JSON.stringify(body))
      t.match(res.detail, new RegExp(`not for this API: request a token for one of ${T.resolverAppId}, api://`))
    }
    const list = await mint(origin, { principalId: T.alice, claims: { aud: ['api://other', T.resolverAppId.toUpperCase()] } })
    t.equal((await get(`Bearer ${list.token}`)).status, 200, 'an aud list with this API in it (client ids in any case) passes')
  })

  t.test('a token from an allowed tenant whose issuer names another: TOKEN_TENANT_MISMATCH', async t => {
    const { token } = await mint(origin, { principalId: T.alice, claims: { iss: `${origin}/${T.otherTenantId}/v2.0` } })
    t.equal((await get(`Bearer ${token}`)).code, 'TOKEN_TENANT_MISMATCH')
    const v1 = await mint(origin, { principalId: T.alice, version: 1, claims: { iss: `https://sts.windows.net/${T.otherTenantId}/` } })
    t.equal((await get(`Bearer ${v1.token}`)).code, 'TOKEN_TENANT_MISMATCH')
    const v1AsV2 = await mint(origin, { principalId: T.alice, version: 1, claims: { iss: `${origin}/${T.tenantId}/v2.0` } })
    t.equal((await get(`Bearer ${v1AsV2.token}`)).code, 'TOKEN_ISSUER_INVALID', 'a v2 issuer in a v1 token')
    for (const iss of [`${origin}/${T.tenantId}/v2.0/`, `${origin.toUpperCase()}/${T.tenantId}/v2.0`, `${origin}/${T.tenantId}/V2.0`]) {
      const { token } = await mint(origin, { principalId: T.alice, claims: { iss } })
      t.equal((await get(`Bearer ${token}`)).code, 'TOKEN_ISSUER_INVALID', `the issuer match is exact: ${iss}`)
    }
  })

  t.test('every token refused above cost no upstream call: keys were loaded, and none was refetched', async t => {
    t.same(keyFetches(ctx), baseline)
  })

  t.test('an iss pointing at a foreign host: refused, and that host is never contacted', async t => {
    const attacker = await attackerServer(t)
    const tokens: string[] = []
    for (const version of [1, 2]) {
      const iss = version === 2 ? `${attacker.url}/${T.tenantId}/v2.0` : `${attacker.url}/${T.tenantId}/`
      tokens.push((await mint(origin, { principalId: T.alice, version, claims: { iss } })).token)
      tokens.push((await mint(origin, { principalId: T.alice, version, break: 'unknown-kid', claims: { iss } })).token)
      tokens.push(forge({ typ: 'JWT', alg: 'RS256', kid: randomKid(), jku: `${attacker.url}/keys`, x5u: `${attacker.url}/cert` },
        { ...good.claims, ver: `${version}.0`, iss }))
    }
    const cold = await verifierFor(t, origin)
    const before = keyFetches(ctx)
    for (const token of tokens) {
      t.equal((await get(`Bearer ${token}`)).code, 'TOKEN_ISSUER_INVALID')
      await refused(t, cold.verify(token), 'TOKEN_ISSUER_INVALID')
    }
    t.equal(attacker.hits(), 0, 'the attacker\'s host got no request')
    const after = keyFetches(ctx)
    t.same({
      discoveryV2: after.discoveryV2 - before.discoveryV2,
      jwksV2: after.jwksV2 - before.jwksV2,
      discoveryV1: after.discoveryV1 - before.discoveryV1,
      jwksV1: after.jwksV1 - before.jwksV1,
      total: after.total - before.total
    }, { discoveryV2: 1, jwksV2: 1, discoveryV1: 1, jwksV1: 1, total: 4 },
    'the cold verifier loaded the configured authority\'s documents and keys once, to learn the issuer; the warm one fetched nothing')
  })

  t.test('the codes are the documented ones', async t => {
    t.same([...TOKEN_ERROR_CODES].sort(), [
      'TOKEN_ALGORITHM_NOT_ALLOWED', 'TOKEN_AUDIENCE_INVALID', 'TOKEN_EXPIRED', 'TOKEN_ISSUER_INVALID', 'TOKEN_MALFORMED', 'TOKEN_MISSING',
      'TOKEN_NOT_YET_VALID', 'TOKEN_SIGNATURE_INVALID', 'TOKEN_TENANT_INVALID', 'TOKEN_TENANT_MISMATCH', 'TOKEN_TENANT_NOT_ALLOWED',
      'TOKEN_TOO_LARGE', 'TOKEN_UNKNOWN_KEY'
    ])
  })
})
