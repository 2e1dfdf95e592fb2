// What the tokens say and who accepts them. jose, used as a resource would (discovery → issuer,
// createRemoteJWKSet on jwks_uri, jwtVerify with issuer and audience), accepts v1 and v2, user and app-only
// tokens, and rejects every `break` variant of the token factory for the reason it was broken. The password
// grant (plain fetch): v1 vs v2 shape by resource, groups per groupMembershipClaims, the 200-group limit and
// the overage claims, user errors, idtyp only for app tokens and only where the resource enables it.
import t from 'tap'
import { createRemoteJWKSet, decodeJwt, jwtVerify, UnsecuredJWT, type JWTPayload } from 'jose'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { verifyBearer } from '../../../emulators/sts/verify.ts'
import { accessToken, assertAadsts, header, otherTenant, postToken, stsTenant, T, validate, X } from '../../helpers/sts.ts'

interface Minted { access_token: string, claims: JWTPayload & Record<string, unknown> }

t.test('tokens verify with jose; broken tokens do not', async t => {
  const { origin, ctx } = await startTestEmulator(t, { tenants: [stsTenant(), otherTenant()] })
  const mint = async (body: Record<string, unknown>): Promise<{ status: number, json: Minted & { error?: { code: string } } }> => {
    const res = await fetch(`${origin}/_emulator/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: res.status, json: await res.json() as Minted & { error?: { code: string } } }
  }
  const api = `api://${T.resolverAppId}`

  t.test('client credentials, v2 app-only (the resolver API)', async t => {
    const { token } = await accessToken(origin, T.tenantId, { grant_type: 'client_credentials', client_id: T.etlAppId, client_secret: T.etlSecret, scope: `${api}/.default` })
    const { payload, protectedHeader } = await validate(origin, token, T.resolverAppId)
    t.equal(protectedHeader.alg, 'RS256')
    t.equal(protectedHeader.typ, 'JWT')
    t.equal(protectedHeader.kid, ctx.keys.current.kid)
    t.equal(payload.iss, `${origin}/${T.tenantId}/v2.0`)
    t.equal(payload.ver, '2.0')
    t.equal(payload.sub, T.etlSp)
    t.equal(payload.oid, T.etlSp)
    t.notOk('scp' in payload)
    t.notOk('roles' in payload, 'no roles when the app has none')
    t.equal(payload.idtyp, 'app', 'the resolver API enables idtyp')
    for (const c of ['aio', 'rh', 'uti']) t.type(payload[c], 'string')
    t.equal((payload.exp ?? 0) - (payload.iat ?? 0), 3600, 'tokenLifetimeSeconds')
    t.equal(payload.nbf, payload.iat)
    // The emulator's own resource-side validation agrees.
    const bearer = await verifyBearer(ctx, `Bearer ${token}`, [T.resolverAppId])
    t.equal(bearer.tenant.tenantId, T.tenantId)
  })

  t.test('client credentials, v1 app-only (Graph) with roles', async t => {
    const { token } = await accessToken(origin, T.tenantId, { grant_type: 'client_credentials', client_id: T.resolverAppId, client_secret: T.resolverSecret, scope: 'https://graph.microsoft.com/.default' })
    t.equal(header(token).x5t, header(token).kid, 'v1 tokens carry x5t too')
    const { payload } = await validate(origin, token, 'https://graph.microsoft.com')
    t.equal(payload.iss, `https://sts.windows.net/${T.tenantId}/`)
    t.equal(payload.ver, '1.0')
    t.equal(payload.appid, T.resolverAppId)
    t.equal(payload.appidacr, '1')
    t.same(payload.roles, ['User.Read.All', 'GroupMember.Read.All', 'Application.Read.All'])
    t.notOk('idtyp' in payload, 'Graph here has no idtyp optional claim')
    t.notOk('scp' in payload)
    await verifyBearer(ctx, `Bearer ${token}`, ['https://graph.microsoft.com'])
  })

  t.test('password grant, v1 and v2 user tokens', async t => {
    const v2 = await accessToken(origin, T.tenantId, { grant_type: 'password', client_id: X.publicClientAppId, username: 'alice@contoso-test.onmicrosoft.com', password: T.password, scope: `${api}/.default openid profile` })
    const r2 = await validate(origin, v2.token, T.resolverAppId)
    t.equal(r2.payload.oid, T.alice)
    t.equal(r2.payload.scp, 'user_impersonation')
    const v1 = await accessToken(origin, T.tenantId, { grant_type: 'password', client_id: X.publicClientAppId, username: 'alice@contoso-test.onmicrosoft.com', password: T.password, resource: X.allGroupsUri }, { v1: true })
    const r1 = await validate(origin, v1.token, X.allGroupsUri)
    t.equal(r1.payload.iss, `https://sts.windows.net/${T.tenantId}/`)
    t.equal(r1.payload.unique_name, 'alice@contoso-test.onmicrosoft.com')
  })

  t.test('factory tokens verify, for users (by UPN) and service principals (by appId), in either version', async t => {
    const user = await mint({ principalId: 'BOB@contoso-test.onmicrosoft.com' })
    t.equal(user.status, 200)
    t.equal(user.json.claims.aud, T.resolverAppId, 'default audience: the first app with an App ID URI (v2 → its GUID)')
    t.equal(user.json.claims.oid, T.bob)
    t.equal(user.json.claims.scp, 'user_impersonation')
    const verified = await validate(origin, user.json.access_token, T.resolverAppId)
    t.same(verified.payload, user.json.claims, 'the response claims are the token claims')

    const sp = await mint({ principalId: T.etlAppId, audience: 'https://graph.microsoft.com', version: 2 })
    t.equal(sp.json.claims.oid, T.etlSp)
    t.equal(sp.json.claims.aud, '00000003-0000-0000-c000-000000000000', 'v2 aud is the GUID')
    t.notOk('scp' in sp.json.claims)
    await validate(origin, sp.json.access_token, '00000003-0000-0000-c000-000000000000')

    const v1 = await mint({ principalId: T.resolverSp, audience: api, version: 1 })
    t.equal(v1.json.claims.aud, api, 'v1 aud is the identifier used')
    t.same(v1.json.claims.roles, ['User.Read.All', 'GroupMember.Read.All', 'Application.Read.All'])
    await validate(origin, v1.json.access_token, api)

    const other = await mint({ tenantId: X.otherDomain, principalId: 'fred@fabrikam-test.onmicrosoft.com', audience: '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d' })
    t.equal(other.json.claims.tid, X.otherTenantId)
    await validate(origin, other.json.access_token, '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d')
  })

  t.test('factory claims overrides are merged last; null removes', async t => {
    const res = await mint({ principalId: T.alice, claims: { scp: 'Files.Read', upn: null, xms_custom: ['a'] } })
    t.equal(res.json.claims.scp, 'Files.Read')
    t.notOk('upn' in res.json.claims)
    t.same(res.json.claims.xms_custom, ['a'])
    t.same(decodeJwt(res.json.access_token), res.json.claims)
  })

  t.test('factory groups switch', async t => {
    const on = await mint({ principalId: T.etlSp, groups: true })
    t.same(on.json.claims.groups, [T.dataPlatform, T.engineering, T.allStaff], 'an SP\'s transitive security groups')
    const off = await mint({ principalId: T.alice, groups: false })
    t.notOk('groups' in off.json.claims)
    const byDefault = await mint({ principalId: T.alice })
    t.same(byDefault.json.claims.groups, [T.dataPlatform, T.engineering, T.allStaff])
    const graphForced = await mint({ principalId: T.alice, audience: 'https://graph.microsoft.com', groups: true })
    t.same(graphForced.json.claims.groups, [T.dataPlatform, T.engineering, T.allStaff])
    const overage = await mint({ principalId: X.twoHundredOne })
    t.notOk('groups' in overage.json.claims)
    t.same(overage.json.claims._claim_names, { groups: 'src1' })
  })

  t.test('every break is rejected, for its own reason', async t => {
    const base = { principalId: T.alice, audience: api }
    // The unbroken token passes, so each failure below is the break's doing.
    const good = await mint(base)
    await validate(origin, good.json.access_token, T.resolverAppId)
    const jwks = createRemoteJWKSet(new URL(`${origin}/common/discovery/v2.0/keys`))

    const expectRejected = async (brk: string, check: (err: { code?: string, claim?: string }, minted: Minted) => Promise<void> | void, version?: 1 | 2): Promise<void> => {
      const { status, json } = await mint({ ...base, break: brk, ...(version !== undefined ? { version } : {}) })
      t.equal(status, 200, `${brk}: minted`)
      const audience = version === 1 ? api : T.resolverAppId
      const err = await validate(origin, json.access_token, audience, jwks).then(() => undefined, (e: unknown) => e as { code?: string, claim?: string })
      t.ok(err, `${brk}: rejected`)
      if (err !== undefined) await check(err, json)
    }

    await expectRejected('bad-signature', async (err, m) => {
      t.equal(err.code, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED')
      t.equal(header(m.access_token).kid, ctx.keys.current.kid, 'a published kid')
      t.same(decodeJwt(m.access_token), m.claims, 'claims intact, only the signature altered')
    })
    await expectRejected('unknown-kid', async (err, m) => {
      t.equal(err.code, 'ERR_JWKS_NO_MATCHING_KEY')
      t.equal(header(m.access_token).kid, ctx.keys.foreign.kid)
      await jwtVerify(m.access_token, ctx.keys.foreign.publicKey) // a valid signature, by an unpublished key
    })
    await expectRejected('expired', (err, m) => {
      t.equal(err.code, 'ERR_JWT_EXPIRED')
      t.ok((m.claims.exp ?? 0) <= ctx.clock.nowSeconds() - 3000, 'an hour in the past, beyond any skew')
    })
    await expectRejected('nbf-future', (err, m) => {
      t.equal(err.code, 'ERR_JWT_CLAIM_VALIDATION_FAILED')
      t.equal(err.claim, 'nbf')
      t.ok((m.claims.nbf ?? 0) >= ctx.clock.nowSeconds() + 3000)
    })
    await expectRejected('wrong-audience', (err, m) => {
      t.equal(err.claim, 'aud')
      t.match(m.claims.aud, /^[0-9a-f-]{36}$/)
      t.not(m.claims.aud, T.resolverAppId)
    })
    await expectRejected('wrong-issuer', (err, m) => {
      t.equal(err.claim, 'iss')
      t.equal(m.claims.iss, `https://login.evil.example/${T.tenantId}/v2.0`)
    })
    await expectRejected('wrong-issuer', (err, m) => {
      t.equal(err.claim, 'iss')
      t.equal(m.claims.iss, `https://sts.evil.example/${T.tenantId}/`)
    }, 1)
    await expectRejected('tid-mismatch', (err, m) => {
      t.equal(err.claim, 'iss', 'the issuer check fails')
      t.equal(m.claims.tid, T.tenantId, 'tid kept')
      t.equal(m.claims.iss, `${origin}/${X.otherTenantId}/v2.0`, 'issuer names another (loaded) tenant')
    })
    await expectRejected('tid-mismatch', (err, m) => {
      t.equal(err.claim, 'iss')
      t.equal(m.claims.iss, `https://sts.windows.net/${X.otherTenantId}/`)
    }, 1)
    await expectRejected('tid-not-guid', (err, m) => {
      t.equal(err.code, 'TID_NOT_GUID')
      t.equal(m.claims.iss, `${origin}/${String(m.claims.tid)}/v2.0`, 'issuer and tid agree, so only the GUID rule catches it')
    })
    await expectRejected('alg-none', (err, m) => {
      t.equal(err.code, 'ERR_JOSE_ALG_NOT_ALLOWED')
      t.equal(header(m.access_token).alg, 'none')
      t.ok(m.access_token.endsWith('.'), 'empty signature')
      t.same(UnsecuredJWT.decode(m.access_token).payload, m.claims, 'a well-formed unsecured JWT')
    })
    await expectRejected('hs256-public-key', async (err, m) => {
      t.equal(err.code, 'ERR_JOSE_ALG_NOT_ALLOWED')
      t.equal(header(m.access_token).alg, 'HS256')
      // A validator confused into using the PEM as an HMAC secret would accept it.
      const { payload } = await jwtVerify(m.access_token, new TextEncoder().encode(ctx.keys.current.publicPem), { algorithms: ['HS256'] })
      t.same(payload, m.claims)
    })

    // The emulator's own bearer validation rejects them all too.
    for (const brk of ['bad-signature', 'unknown-kid', 'expired', 'nbf-future', 'wrong-audience', 'wrong-issuer', 'tid-mismatch', 'tid-not-guid', 'alg-none', 'hs256-public-key']) {
      const { json } = await mint({ ...base, break: brk })
      await t.rejects(verifyBearer(ctx, `Bearer ${json.access_token}`, [T.resolverAppId]), `${brk}: verifyBearer rejects`)
    }
  })
})

const ALICE = 'alice@contoso-test.onmicrosoft.com'
const api = `api://${T.resolverAppId}`

t.test('password grant', async t => {
  const { origin } = await startTestEmulator(t, { tenants: [stsTenant(), otherTenant()] })
  const ropc = (form: Record<string, string>, opts: { v1?: boolean, tenant?: string } = {}): ReturnType<typeof postToken> =>
    postToken(origin, opts.tenant ?? T.tenantId, { grant_type: 'password', client_id: X.publicClientAppId, password: T.password, ...form }, opts)

  t.test('v2 user token for a v2 resource', async t => {
    const res = await ropc({ username: ALICE, scope: `${api}/.default openid profile offline_access` })
    t.equal(res.status, 200)
    t.equal(res.body.token_type, 'Bearer')
    t.equal(res.body.expires_in, 3600)
    t.equal(res.body.ext_expires_in, 3600)
    t.equal(res.body.scope, `${api}/user_impersonation openid profile offline_access`)
    t.type(res.body.id_token, 'string', 'openid asked: an id token')
    const c = decodeJwt(res.body.access_token as string)
    t.equal(c.ver, '2.0')
    t.equal(c.aud, T.resolverAppId, 'v2 aud: the API\'s GUID')
    t.equal(c.iss, `${origin}/${T.tenantId}/v2.0`)
    t.equal(c.tid, T.tenantId)
    t.equal(c.oid, T.alice)
    t.equal(c.preferred_username, ALICE)
    t.equal(c.upn, ALICE)
    t.notOk('unique_name' in c)
    t.equal(c.name, 'Alice Adams')
    t.equal(c.azp, X.publicClientAppId)
    t.equal(c.azpacr, '0', 'public client')
    t.notOk('appid' in c)
    t.equal(c.scp, 'user_impersonation')
    t.notOk('idtyp' in c, 'idtyp is for app tokens only, even where enabled')
    t.notOk('roles' in c)
    t.not(c.sub, T.alice, 'sub is pairwise, not the oid')
    t.match(c.sub, /^[A-Za-z0-9_-]{43}$/)
    t.same(c.groups, [T.dataPlatform, T.engineering, T.allStaff], 'transitive security groups (not the distribution list)')
    const idToken = decodeJwt(res.body.id_token as string)
    t.equal(idToken.aud, X.publicClientAppId)
    t.equal(idToken.sub, c.sub)
  })

  t.test('v1 user token for Graph: aud as used, v1 names, no groups', async t => {
    const res = await ropc({ username: ALICE, scope: 'User.Read openid' })
    t.equal(res.status, 200)
    t.equal(res.body.scope, 'User.Read openid')
    const c = decodeJwt(res.body.access_token as string)
    t.equal(c.ver, '1.0')
    t.equal(c.aud, 'https://graph.microsoft.com')
    t.equal(c.iss, `https://sts.windows.net/${T.tenantId}/`)
    t.equal(c.upn, ALICE)
    t.equal(c.unique_name, ALICE)
    t.notOk('preferred_username' in c)
    t.equal(c.appid, X.publicClientAppId)
    t.equal(c.appidacr, '0')
    t.equal(c.scp, 'User.Read')
    t.notOk('groups' in c, 'Graph tokens carry no groups claim')
    t.equal(header(res.body.access_token as string).x5t, header(res.body.access_token as string).kid)
  })

  t.test('the v1 endpoint takes resource=, and answers in v1 form', async t => {
    const res = await ropc({ username: ALICE, resource: '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d' }, { v1: true })
    t.equal(res.status, 200)
    t.equal(res.body.expires_in, '3600', 'v1 sends numbers as strings')
    t.equal(res.body.resource, '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d')
    t.match(res.body.expires_on, /^\d+$/)
    const c = decodeJwt(res.body.access_token as string)
    t.equal(c.ver, '1.0', 'Azure Databricks takes v1 tokens')
    t.equal(c.aud, '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d')
    t.equal(c.scp, 'user_impersonation')
    t.notOk('groups' in c)
  })

  t.test('named scopes on an App ID URI; a confidential client with its secret', async t => {
    const res = await postToken(origin, T.tenantId, {
      grant_type: 'password',
      client_id: T.etlAppId,
      client_secret: T.etlSecret,
      username: ALICE.toUpperCase(),
      password: T.password,
      scope: `${X.allGroupsUri}/Read ${X.allGroupsUri}/Write`
    })
    t.equal(res.status, 200)
    const c = decodeJwt(res.body.access_token as string)
    t.equal(c.ver, '1.0', 'no accessTokenAcceptedVersion: v1')
    t.equal(c.aud, X.allGroupsUri, 'v1 aud: the App ID URI used')
    t.equal(c.scp, 'Read Write')
    t.equal(c.appidacr, '1')
    t.equal(c.upn, ALICE, 'username is case-insensitive; the claim has the real UPN')
    t.same([...c.groups as string[]].sort(), [T.dataPlatform, T.engineering, T.allStaff, T.distribution].sort(), 'groupMembershipClaims All: distribution lists too')
  })

  t.test('groupMembershipClaims None: no groups', async t => {
    const c = decodeJwt((await ropc({ username: ALICE, scope: `${X.noGroupsAppId}/.default` })).body.access_token as string)
    t.equal(c.ver, '2.0')
    t.notOk('groups' in c)
    t.notOk('_claim_names' in c)
  })

  t.test('200 groups fit; 201 overflow into the overage claims', async t => {
    const at200 = decodeJwt((await ropc({ username: 'many200@contoso-test.onmicrosoft.com', scope: `${api}/.default` })).body.access_token as string)
    t.equal((at200.groups as string[]).length, 200)
    t.notOk('_claim_names' in at200)
    const at201 = decodeJwt((await ropc({ username: 'many201@contoso-test.onmicrosoft.com', scope: `${api}/.default` })).body.access_token as string)
    t.notOk('groups' in at201)
    t.same(at201._claim_names, { groups: 'src1' })
    t.same(at201._claim_sources, { src1: { endpoint: `https://graph.windows.net/${T.tenantId}/users/${X.twoHundredOne}/getMemberObjects` } })
  })

  t.test('the pairwise sub is stable per client app and differs across apps', async t => {
    const a = decodeJwt((await ropc({ username: ALICE, scope: `${api}/.default` })).body.access_token as string)
    const b = decodeJwt((await ropc({ username: ALICE, scope: `${api}/.default` })).body.access_token as string)
    const other = await accessToken(origin, T.tenantId, { grant_type: 'password', client_id: T.etlAppId, username: ALICE, password: T.password, scope: `${api}/.default` })
    t.equal(a.sub, b.sub)
    t.not(a.sub, other.claims.sub)
    t.equal(a.oid, other.claims.oid)
  })

  t.test('organizations: the UPN names the tenant', async t => {
    const res = await postToken(origin, 'organizations', { grant_type: 'password', client_id: 'c0000000-0000-4000-8000-00000000f001', username: 'fred@fabrikam-test.onmicrosoft.com', password: T.password, scope: 'https://graph.microsoft.com/.default' })
    t.equal(res.status, 200)
    t.equal(decodeJwt(res.body.access_token as string).tid, X.otherTenantId)
    const unknown = await postToken(origin, 'organizations', { grant_type: 'password', client_id: X.publicClientAppId, username: 'x@unknown.example', password: 'x', scope: 'User.Read' })
    assertAadsts(t, unknown, 400, 'invalid_grant', 50034)
  })

  t.test('user errors', async t => {
    assertAadsts(t, await ropc({ username: 'dan@contoso-test.onmicrosoft.com', scope: `${api}/.default` }), 400, 'invalid_grant', 50057)
    assertAadsts(t, await ropc({ username: ALICE, password: 'wrong', scope: `${api}/.default` }), 400, 'invalid_grant', 50126)
    assertAadsts(t, await ropc({ username: 'nobody@contoso-test.onmicrosoft.com', scope: `${api}/.default` }), 400, 'invalid_grant', 50034)
    assertAadsts(t, await ropc({ username: T.alice, scope: `${api}/.default` }), 400, 'invalid_grant', 50034)
    assertAadsts(t, await ropc({ username: 'gina_fabrikam.com#EXT#@contoso-test.onmicrosoft.com', scope: `${api}/.default` }), 400, 'invalid_grant', 50126)
    assertAadsts(t, await ropc({ username: ALICE, scope: `${api}/.default https://graph.microsoft.com/User.Read` }), 400, 'invalid_scope', 28000)
    assertAadsts(t, await ropc({ username: ALICE, scope: '' }), 400, 'invalid_scope', 70011)
    assertAadsts(t, await ropc({ username: ALICE, password: '', scope: `${api}/.default` }), 400, 'invalid_request', 900144)
    assertAadsts(t, await postToken(origin, T.tenantId, { grant_type: 'password', client_id: T.etlAppId, client_secret: 'wrong', username: ALICE, password: T.password, scope: `${api}/.default` }), 401, 'invalid_client', 7000215)
  })

  t.test('idtyp: app tokens, only where the resource enables it', async t => {
    const enabled = await accessToken(origin, T.tenantId, { grant_type: 'client_credentials', client_id: T.etlAppId, client_secret: T.etlSecret, scope: `${api}/.default` })
    t.equal(enabled.claims.idtyp, 'app')
    const disabled = await accessToken(origin, T.tenantId, { grant_type: 'client_credentials', client_id: T.resolverAppId, client_secret: T.resolverSecret, scope: `${X.allGroupsUri}/.default` })
    t.notOk('idtyp' in disabled.claims)
    t.notOk('groups' in disabled.claims, 'app-only tokens carry no groups')
  })
})
