// GraphDirectory against the emulated STS and Graph over HTTPS, the emulators' CA passed explicitly:
// app tokens with a client secret and with a certificate (PS256, x5t#S256), principals by id, UPN, mail
// and appId, transitive groups through a ten-level chain and a cycle, a service principal's groups,
// direct parents, and the configuration errors an operator has to act on.
import t from 'tap'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { selfSigned } from '../../../emulators/x509.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { graphToken } from '../../helpers/graph.ts'
import { R, T, directoryFor, mainTenant, spyingDispatcher } from '../../helpers/graph-directory.ts'
import { UpstreamClient } from '../../../src/upstream/client.ts'
import { DirectoryAmbiguousError, DirectoryConfigurationError } from '../../../src/directory/errors.ts'
import { GraphDirectory, odataString } from '../../../src/directory/graph.ts'

const cert = await selfSigned('jit-identity-resolver test client')
const emulator = await startTestEmulator(t, { tenants: [mainTenant(cert.certPem)] })
const { ctx, origin, ca } = emulator
const tid = T.tenantId

t.afterEach(() => { ctx.faults.remove(); ctx.calls.reset() })

const env = directoryFor(t, emulator)
const dir = env.directory

t.test('a principal by object id, whatever its kind: one $batch round trip', async t => {
  await dir.findPrincipal(tid, { id: T.bob }) // token and authority metadata first
  ctx.calls.reset()
  t.same(await dir.findPrincipal(tid, { id: T.alice }), {
    kind: 'user', id: T.alice, tenantId: tid, displayName: 'Alice Adams', userPrincipalName: 'alice@contoso-test.onmicrosoft.com', mail: 'alice@contoso.com', userType: 'Member', accountEnabled: true
  })
  t.equal(ctx.calls.snapshot().routes['POST /v1.0/$batch'], 1, 'one HTTP request to Graph')
  t.same(await dir.findPrincipal(tid, { id: T.etlSp }), { kind: 'servicePrincipal', id: T.etlSp, tenantId: tid, displayName: 'Nightly ETL', appId: T.etlAppId, accountEnabled: true })
  t.same(await dir.findPrincipal(tid, { id: T.distribution }), { kind: 'group', id: T.distribution, tenantId: tid, displayName: 'Newsletter', securityEnabled: false, accountEnabled: true })
})

t.test('a disabled user is found, with accountEnabled false', async t => {
  t.match(await dir.findPrincipal(tid, { id: T.disabled }), { kind: 'user', id: T.disabled, accountEnabled: false })
  ctx.tenants.get(tid)?.updateUser(T.alice, { accountEnabled: false })
  t.teardown(() => { ctx.tenants.get(tid)?.updateUser(T.alice, { accountEnabled: true }) })
  t.match(await dir.findPrincipal(tid, { userPrincipalName: 'alice@contoso-test.onmicrosoft.com' }), { id: T.alice, accountEnabled: false }, 'a change in the directory shows at once')
})

t.test('unknown and malformed ids are null; malformed ones cost no call', async t => {
  t.equal(await dir.findPrincipal(tid, { id: 'a0000000-0000-4000-8000-0000000000ff' }), null)
  ctx.calls.reset()
  for (const query of [{ id: 'not-a-guid' }, { id: '../users' }, { id: '' }, { appId: "x') or (1 eq 1" }, { userPrincipalName: 'no-at-sign' }, { mail: 'nobody' }]) {
    t.equal(await dir.findPrincipal(tid, query), null, JSON.stringify(query))
  }
  t.same(ctx.calls.snapshot().routes, {}, 'nothing was sent to Graph')
  t.equal(await dir.findPrincipal(tid, { userPrincipalName: 'ghost@contoso-test.onmicrosoft.com' }), null)
  t.equal(await dir.findPrincipal(tid, { appId: 'c0000000-0000-4000-8000-0000000000ff' }), null)
  t.equal(await dir.findPrincipal(tid, { mail: 'ghost@contoso.com' }), null)
})

t.test('a guest by UPN: #EXT# is percent-encoded, not cut off as a fragment', async t => {
  t.same(await dir.findPrincipal(tid, { userPrincipalName: 'gina_fabrikam.com#EXT#@contoso-test.onmicrosoft.com' }), {
    kind: 'user', id: T.guest, tenantId: tid, displayName: 'Gina Guest', userPrincipalName: 'gina_fabrikam.com#EXT#@contoso-test.onmicrosoft.com', mail: 'gina@fabrikam.com', userType: 'Guest', accountEnabled: true
  })
  t.match(await dir.findPrincipal(tid, { userPrincipalName: "Sean.O'Brien@contoso-test.onmicrosoft.com" }), { id: R.sean }, 'an apostrophe, and UPNs ignore case')
})

t.test('by mail: quotes are escaped, so a quote finds its user and an injection finds nobody', async t => {
  t.match(await dir.findPrincipal(tid, { mail: R.seanMail }), { id: R.sean, displayName: "Sean O'Brien", mail: R.seanMail })
  t.equal(odataString("o'brien"), "'o''brien'")

  // The attack is real: spliced into the filter unescaped, this value matches Alice.
  const injection = "nobody@x.com' or mail eq 'alice@contoso.com"
  const token = await graphToken(ctx)
  const raw = await fetch(`${origin}/v1.0/users?$filter=${encodeURIComponent(`mail eq '${injection}'`)}&$select=id`, { headers: { authorization: `Bearer ${token}` } })
  t.same((await raw.json() as { value: Array<{ id: string }> }).value.map(u => u.id), [T.alice], 'unescaped, the filter is rewritten by the input')
  t.equal(await dir.findPrincipal(tid, { mail: injection }), null, 'escaped, it is just an address nobody has')
  t.equal(await dir.findPrincipal(tid, { mail: "x@y.z' or mail ne 'q" }), null)
})

t.test('by mail, two users with the same address are ambiguous, not a coin toss', async t => {
  const d = ctx.tenants.get(tid)
  d?.updateUser(T.bob, { mail: 'alice@contoso.com' })
  t.teardown(() => { d?.updateUser(T.bob, { mail: 'bob@contoso.com' }) })
  const err = await dir.findPrincipal(tid, { mail: 'alice@contoso.com' }).catch((e: unknown) => e)
  t.type(err, DirectoryAmbiguousError)
  t.match(err, { code: 'PRINCIPAL_AMBIGUOUS', details: { tenantId: tid, matches: 2 } })
})

t.test('a service principal by appId', async t => {
  t.same(await dir.findPrincipal(tid, { appId: T.etlAppId }), { kind: 'servicePrincipal', id: T.etlSp, tenantId: tid, displayName: 'Nightly ETL', appId: T.etlAppId, accountEnabled: true })
  t.equal(ctx.calls.snapshot().routes['GET /v1.0/servicePrincipals/:id'], 1, "served through the (appId='…') key")
})

t.test('transitive groups through a ten-level chain', async t => {
  const groups = await dir.transitiveGroups(tid, { id: R.chainUser, kind: 'user' })
  t.same(groups.map(g => g.id).sort(), [...R.chain].sort(), 'all ten levels')
  t.same(groups.find(g => g.id === R.chain[0]), { id: R.chain[0], displayName: 'Chain level 1', securityEnabled: true })
})

t.test('direct groups: only the groups the principal is itself a member of', async t => {
  const deep = await dir.directGroups(tid, { id: R.chainUser, kind: 'user' })
  t.same(deep.map(g => g.id), [R.chain[9]], 'the innermost level only')
  const sp = await dir.directGroups(tid, { id: T.etlSp, kind: 'servicePrincipal' })
  t.same(sp.map(g => g.id), [T.dataPlatform])
  t.same(await dir.directGroups(tid, { id: 'not-a-guid', kind: 'user' }), [])
})

t.test('transitive groups through a cycle: each group once, no loop', async t => {
  const groups = await dir.transitiveGroups(tid, { id: R.cycleUser, kind: 'user' })
  t.same(groups.map(g => g.id).sort(), [...R.cycle].sort())
})

t.test("a service principal's groups, and a user's mixed security and distribution groups", async t => {
  t.same((await dir.transitiveGroups(tid, { id: T.etlSp, kind: 'servicePrincipal' })).map(g => g.id).sort(), [T.allStaff, T.engineering, T.dataPlatform].sort())
  t.equal(ctx.calls.snapshot().routes['GET /v1.0/servicePrincipals/:id/transitiveMemberOf/:cast'], 1)
  const alice = await dir.transitiveGroups(tid, { id: T.alice, kind: 'user' })
  t.same(alice.find(g => g.id === T.distribution), { id: T.distribution, displayName: 'Newsletter', securityEnabled: false })
  t.same((await dir.transitiveGroups(tid, { id: T.dataPlatform, kind: 'group' })).map(g => g.id).sort(), [T.allStaff, T.engineering].sort(), 'a group\'s ancestors')
})

t.test('a principal gone from the directory has no groups; a malformed id costs no call', async t => {
  t.same(await dir.transitiveGroups(tid, { id: 'a0000000-0000-4000-8000-0000000000ff', kind: 'user' }), [])
  ctx.calls.reset()
  t.same(await dir.transitiveGroups(tid, { id: 'nope', kind: 'user' }), [])
  t.same(ctx.calls.snapshot().routes, {})
})

t.test('direct parents of groups', async t => {
  const parents = await dir.directParents(tid, [R.chain[9] as string, R.chain[0] as string, R.cycle[0] as string, T.engineering, T.engineering, 'bogus', 'd0000000-0000-4000-8000-0000000000ff'])
  t.same([...parents.entries()], [
    [R.chain[9], [R.chain[8]]],
    [R.chain[0], []],
    [R.cycle[0], [R.cycle[2]]],
    [T.engineering, [T.allStaff]],
    ['bogus', []],
    ['d0000000-0000-4000-8000-0000000000ff', []]
  ], 'every asked id answered once, unknown and malformed ones with no parents')
  t.equal(ctx.calls.snapshot().routes['POST /v1.0/$batch'], 1)
  t.same(await dir.directParents(tid, []), new Map(), 'nothing asked, nothing sent')
})

t.test('with a certificate: the assertion is PS256 with the SHA-256 thumbprint', async t => {
  const assertions: string[] = []
  const sts = new UpstreamClient({
    name: 'entra',
    dispatcher: spyingDispatcher(ca, opts => {
      if (typeof opts.body === 'string' && opts.body.includes('client_assertion=')) assertions.push(new URLSearchParams(opts.body).get('client_assertion') ?? '')
    })
  })
  t.teardown(async () => { await sts.close() })
  const { directory } = directoryFor(t, emulator, { clientId: R.certAppId, clientSecret: undefined, clientCertificate: { privateKeyPem: cert.keyPem, certificatePem: cert.certPem }, sts })
  t.match(await directory.findPrincipal(tid, { id: T.alice }), { id: T.alice })
  t.equal(assertions.length, 1)
  const header = decodeProtectedHeader(assertions[0] as string)
  t.equal(header.alg, 'PS256')
  t.type(header['x5t#S256'], 'string')
  t.match(decodeJwt(assertions[0] as string), { iss: R.certAppId, sub: R.certAppId, aud: `${origin}/${tid}/oauth2/v2.0/token` })
})

t.test('a certificate the app does not have is a configuration error', async t => {
  const stranger = await selfSigned('not registered')
  const { directory } = directoryFor(t, emulator, { clientId: R.certAppId, clientSecret: undefined, clientCertificate: { privateKeyPem: stranger.keyPem, certificatePem: stranger.certPem } })
  const err = await directory.findPrincipal(tid, { id: T.alice }).catch((e: unknown) => e)
  t.type(err, DirectoryConfigurationError)
  t.equal((err as DirectoryConfigurationError).code, 'DIRECTORY_MISCONFIGURED')
  t.match((err as DirectoryConfigurationError).details, { tenantId: tid, upstreamCode: 'invalid_client' })
})

t.test('a wrong secret, an unknown tenant: configuration errors that say what to check, without the secret', async t => {
  const { directory } = directoryFor(t, emulator, { clientSecret: 'wrong-secret-value' })
  const err = await directory.transitiveGroups(tid, { id: T.alice, kind: 'user' }).catch((e: unknown) => e) as DirectoryConfigurationError
  t.type(err, DirectoryConfigurationError)
  t.match(err.message, /check the tenant id, the client id and its secret or certificate/)
  t.notMatch(err.message, /wrong-secret-value/)

  const unknown = await dir.findPrincipal('99999999-9999-4999-8999-999999999999', { id: T.alice }).catch((e: unknown) => e)
  t.type(unknown, DirectoryConfigurationError, 'a tenant the STS does not know')
  const bad = await dir.findPrincipal('../../evil', { id: T.alice }).catch((e: unknown) => e)
  t.type(bad, DirectoryConfigurationError, 'a tenant id that is no GUID or domain never reaches a URL')
})

t.test('an app without Graph permissions: the error names the permission to grant', async t => {
  const { directory } = directoryFor(t, emulator, { clientId: T.readOnlyAppId, clientSecret: T.readOnlySecret })
  const groups = await directory.transitiveGroups(tid, { id: T.alice, kind: 'user' }).catch((e: unknown) => e) as DirectoryConfigurationError
  t.type(groups, DirectoryConfigurationError)
  t.equal(groups.missingPermission, 'GroupMember.Read.All')
  t.match(groups.details, { tenantId: tid, status: 403, upstreamCode: 'Authorization_RequestDenied', requestId: String })
  t.match(groups.message, /grant it the application permission GroupMember\.Read\.All/)

  t.match(await directory.findPrincipal(tid, { userPrincipalName: 'alice@contoso-test.onmicrosoft.com' }).catch((e: unknown) => e), { missingPermission: 'User.Read.All' })
  t.match(await directory.findPrincipal(tid, { appId: T.etlAppId }).catch((e: unknown) => e), { missingPermission: 'Application.Read.All' })
  t.match(await directory.findPrincipal(tid, { id: T.alice }).catch((e: unknown) => e), { name: 'DirectoryConfigurationError', missingPermission: 'User.Read.All' }, 'refused everywhere: it may exist, so not null')
  t.match(await directory.directParents(tid, [T.engineering]).catch((e: unknown) => e), { missingPermission: 'GroupMember.Read.All' })
})

t.test('x-ms-throttle-priority is sent only when asked for', async t => {
  const sent: Array<string | undefined> = []
  const graph = new UpstreamClient({
    name: 'graph',
    dispatcher: spyingDispatcher(ca, opts => {
      if (opts.path.startsWith('/v1.0/')) sent.push((opts.headers as Record<string, string>)['x-ms-throttle-priority'])
    })
  })
  t.teardown(async () => { await graph.close() })
  const background = directoryFor(t, emulator, { graph }).directory
  const interactive = background.withThrottlePriority('high')
  await background.transitiveGroups(tid, { id: T.alice, kind: 'user' })
  await interactive.transitiveGroups(tid, { id: T.alice, kind: 'user' })
  await interactive.directParents(tid, [T.engineering])
  await background.transitiveGroups(tid, { id: T.alice, kind: 'user' })
  t.same(sent, [undefined, 'high', 'high', undefined], 'per view; the $batch carries it too')
  t.equal(ctx.calls.snapshot().routes['POST /:tenant/oauth2/v2.0/token'], 1, 'the views share one token')
  await interactive.close()
  t.equal((await background.transitiveGroups(tid, { id: T.bob, kind: 'user' })).length, 3, 'closing a view closes nothing')
})

t.test('GraphDirectory needs a credential', async t => {
  t.throws(() => new GraphDirectory({ clientId: T.resolverAppId }), TypeError)
})

t.test('a directory that builds its own clients trusts the CA it is given and reports to the observer', async t => {
  const seen: string[] = []
  const own = new GraphDirectory({
    clientId: T.resolverAppId,
    clientSecret: T.resolverSecret,
    graphBaseUrl: `${origin}/v1.0`,
    authorityHost: origin,
    ca,
    observer: { onResponse: e => { seen.push(`${e.upstream} ${e.method} ${e.route} ${e.status}`) } }
  })
  t.teardown(async () => { await own.close() })
  t.match(await own.findPrincipal(tid, { appId: T.etlAppId }), { id: T.etlSp })
  t.same(seen, [
    'entra GET /{id}/v2.0/.well-known/openid-configuration 200',
    'entra POST /{id}/oauth2/v2.0/token 200',
    'graph GET /v1.0/servicePrincipals({key}) 200'
  ])
})
