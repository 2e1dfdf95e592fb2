// Shared by the GraphDirectory tests (not a test itself): tenants with the shapes the tests need (a ten-
// level chain, a cycle, a user in thousands of groups, groups with many parents), upstream clients with a
// short retry policy and an observer that records, and a GraphDirectory pointed at the emulators with
// their CA passed explicitly.
import { rootCertificates } from 'node:tls'
import type { Test } from 'tap'
import { Agent, type Dispatcher } from 'undici'
import type { Emulator } from '../../emulators/server.ts'
import type { GroupFixture, TenantFixture } from '../../emulators/tenant/model.ts'
import { T, smallTenant } from './tenant.ts'
import { UpstreamClient, type UpstreamClientOptions, type UpstreamObserver } from '../../src/upstream/client.ts'
import { GraphDirectory, type GraphDirectoryOptions } from '../../src/directory/graph.ts'

export { T }

const id = (prefix: string, n: number): string => `${prefix}-0000-4000-8000-${n.toString(16).padStart(12, '0')}`

/** Extra objects of the main test tenant. */
export const R = {
  /** A user whose mail has an apostrophe. */
  sean: id('a0000000', 0x10),
  seanMail: "sean.o'brien@contoso.com",
  chainUser: id('a0000000', 0x11),
  cycleUser: id('a0000000', 0x12),
  /** chain[0] ⊃ chain[1] ⊃ … ⊃ chain[9] ⊃ chainUser. */
  chain: Array.from({ length: 10 }, (_, i) => id('e0000000', i + 1)),
  /** cycle[0] ⊃ cycle[1] ⊃ cycle[2] ⊃ cycle[0], cycleUser ∈ cycle[2]. */
  cycle: [id('f0000000', 1), id('f0000000', 2), id('f0000000', 3)],
  certAppId: 'c0000000-0000-4000-8000-000000000010',
  otherCertAppId: 'c0000000-0000-4000-8000-000000000011'
}

const GRAPH_ROLES = ['User.Read.All', 'GroupMember.Read.All', 'Application.Read.All']

/** The small tenant plus a chain, a cycle, an apostrophe and a certificate-only app. */
export function mainTenant (certificatePem: string): TenantFixture {
  const base = smallTenant()
  const chain: GroupFixture[] = R.chain.map((g, i) => ({ id: g, displayName: `Chain level ${i + 1}`, members: [R.chain[i + 1] ?? R.chainUser] }))
  const cycle: GroupFixture[] = R.cycle.map((g, i) => ({ id: g, displayName: `Cycle ${'ABC'[i] as string}`, members: i === 2 ? [R.cycle[0] as string, R.cycleUser] : [R.cycle[i + 1] as string] }))
  return {
    ...base,
    users: [
      ...base.users,
      { id: R.sean, userPrincipalName: "sean.o'brien@contoso-test.onmicrosoft.com", displayName: "Sean O'Brien", mail: R.seanMail },
      { id: R.chainUser, userPrincipalName: 'chain@contoso-test.onmicrosoft.com', displayName: 'Chain User' },
      { id: R.cycleUser, userPrincipalName: 'cycle@contoso-test.onmicrosoft.com', displayName: 'Cycle User' }
    ],
    groups: [...base.groups, ...chain, ...cycle],
    applications: [
      ...base.applications,
      { appId: R.certAppId, displayName: 'resolver (certificate)', roles: GRAPH_ROLES, certificates: [certificatePem] }
    ]
  }
}

/** A second tenant: a user in `groups` groups, 45 groups with known parents, one group with 1,000 parents. */
export const BIG = {
  tenantId: '33333333-3333-4333-8333-333333333333',
  heavy: id('a1000000', 1),
  heavyGroups: 2_500,
  /** p[i] ∈ root, and p[i] ∈ p[i+1]. */
  p: Array.from({ length: 45 }, (_, i) => id('b1000000', i + 1)),
  root: id('b2000000', 1),
  popular: id('b3000000', 1),
  popularParents: Array.from({ length: 1_000 }, (_, i) => id('b4000000', i + 1))
}

export function bigTenant (): TenantFixture {
  const heavyGroups: GroupFixture[] = Array.from({ length: BIG.heavyGroups }, (_, i) => ({ id: id('c1000000', i + 1), displayName: `Team ${i + 1}`, members: [BIG.heavy] }))
  const p: GroupFixture[] = BIG.p.map((g, i) => ({ id: g, displayName: `P${i}`, members: i > 0 ? [BIG.p[i - 1] as string] : [] }))
  return {
    tenantId: BIG.tenantId,
    domain: 'fabrikam-test.onmicrosoft.com',
    users: [{ id: BIG.heavy, userPrincipalName: 'heavy@fabrikam-test.onmicrosoft.com', displayName: 'Heavy User' }],
    servicePrincipals: [],
    groups: [
      ...heavyGroups,
      ...p,
      { id: BIG.root, displayName: 'Root', members: [...BIG.p] },
      { id: BIG.popular, displayName: 'Popular', members: [] },
      ...BIG.popularParents.map((g, i) => ({ id: g, displayName: `Parent ${i}`, members: [BIG.popular] }))
    ],
    applications: [{ appId: T.resolverAppId, displayName: 'jit-identity-resolver', secret: T.resolverSecret, roles: GRAPH_ROLES }]
  }
}

export interface Recorder extends UpstreamObserver {
  events: Array<{ hook: 'response' | 'retry' | 'throttled', upstream: string, route: string, status?: number, [k: string]: unknown }>
}

export function recorder (): Recorder {
  const events: Recorder['events'] = []
  return {
    events,
    onResponse: e => { events.push({ hook: 'response', ...e }) },
    onRetry: e => { events.push({ hook: 'retry', ...e }) },
    onThrottled: e => { events.push({ hook: 'throttled', ...e }) }
  }
}

/** A short retry policy: real waits stay small (Retry-After ≤ 1 s honoured, backoff ≤ 100 ms). */
export const FAST: Partial<UpstreamClientOptions> = {
  retry: { maxRetries: 2, baseDelayMs: 20, maxDelayMs: 100, maxRetryAfterMs: 2_000 },
  // Generous: a loaded CI machine must not turn a slow answer into a retry the test did not expect. A
  // test that proves a timeout sets its own, with the emulator's hang fault.
  timeoutMs: 60_000
}

/** An Agent trusting the emulators' CA, with an interceptor that sees every request's options. */
export function spyingDispatcher (ca: string, spy: (opts: Dispatcher.DispatchOptions) => void): Dispatcher {
  return new Agent({ connect: { ca: [...rootCertificates, ca] } }).compose(dispatch => (opts, handler) => {
    spy(opts)
    return dispatch(opts, handler)
  })
}

export interface DirectoryEnv {
  directory: GraphDirectory
  rec: Recorder
  graph: UpstreamClient
  sts: UpstreamClient
}

/** A GraphDirectory for the emulators (CA passed explicitly), with clients the test can observe. */
export function directoryFor (t: Test, emulator: Pick<Emulator, 'origin' | 'ca'>, options: Partial<GraphDirectoryOptions> = {}, client: Partial<UpstreamClientOptions> = {}): DirectoryEnv {
  const rec = recorder()
  const graph = new UpstreamClient({ name: 'graph', ca: emulator.ca, observer: rec, ...FAST, ...client })
  const sts = new UpstreamClient({ name: 'entra', ca: emulator.ca, observer: rec, ...FAST })
  const directory = new GraphDirectory({
    clientId: T.resolverAppId,
    clientSecret: T.resolverSecret,
    graphBaseUrl: `${emulator.origin}/v1.0`,
    authorityHost: emulator.origin,
    graph,
    sts,
    ...options
  })
  t.teardown(async () => { await directory.close(); await graph.close(); await sts.close() })
  return { directory, rec, graph, sts }
}
