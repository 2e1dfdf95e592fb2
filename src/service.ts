// Builds the whole service from its configuration: upstream clients, token verifier, Graph directory,
// resolver, metrics, and the app. server.ts and the tests assemble the service the same way.
import { createHmac } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { listOf, parseWorkspaceUrls, upstreamTimeoutMs, type Config } from './config.ts'
import { systemClock, type Clock } from './clock.ts'
import { buildApp } from './app.ts'
import { Metrics } from './observability/metrics.ts'
import { UpstreamClient } from './upstream/client.ts'
import { createTokenVerifier } from './auth/verifier.ts'
import { GraphDirectory } from './directory/graph.ts'
import { Resolver } from './resolver/resolver.ts'
import { Materializer } from './resolver/materializer.ts'
import { RegistrationRunner, type Registrations } from './registrations/runner.ts'
import { FleetRegistrationRunner } from './registrations/fleet-runner.ts'
import { FileJobStore } from './registrations/store.ts'
import { RedisJobStore, type RedisStateChange } from './registrations/redis-store.ts'
import { DatabricksClient } from './target/databricks-client.ts'
import { DatabricksScimTarget, type ScimObject, type ScimTargetObserver, type SharedGroupCreate } from './target/scim.ts'
import { DatabricksAimTarget } from './target/aim.ts'
import { WorkspaceAssignments } from './target/assignments.ts'
import { WorkspaceObjects } from './target/workspace-objects.ts'
import { AccountGroupNames } from './target/account-groups.ts'
import { ObjectAccess } from './resolver/object-access.ts'
import { LookupBudget } from './resolver/lookup-budget.ts'
import { supportsSync } from './target/port.ts'
import { buildSync } from './sync/build.ts'
import type { Sync } from './sync/sync.ts'
import { FleetBus } from './fleet/bus.ts'
import { FleetPermits } from './fleet/permits.ts'
import { FleetFlights } from './fleet/flights.ts'
import { SignIns, type SignInTransfer } from './resolver/sign-in.ts'
import type { Caller } from './auth/caller.ts'
import { forgetChanged, forgetEverything, type FleetCaches } from './fleet/coherence.ts'

export interface Service {
  app: FastifyInstance
  resolver: Resolver
  metrics: Metrics
  /** Bulk registration jobs, with a Databricks account. */
  registrations?: Registrations
  /** The Entra change feed (SYNC_ENABLED). */
  sync?: Sync
  close: () => Promise<void>
}

export interface ServiceOptions {
  clock?: Clock
  /** Extra CA (PEM) for outbound HTTPS, e.g. the emulators' CA in local mode (else UPSTREAM_CA_FILE). */
  ca?: string
  /** Prometheus process metrics (off in tests that build many services). */
  processMetrics?: boolean
  /** Resume unfinished registration jobs at start (default true; off when only the OpenAPI document is built). */
  resumeRegistrations?: boolean
  /** Prefix of the registration jobs' Redis keys (default: REDIS_KEY_PREFIX + `registrations:`). */
  registrationsKeyPrefix?: string
  /** Prefix of the change feed's Redis keys: its cursors and its queue (default: REDIS_KEY_PREFIX). */
  syncKeyPrefix?: string
  /** Prefix of the replicas' shared channel and budgets (default: REDIS_KEY_PREFIX). */
  fleetKeyPrefix?: string
}

/**
 * Sign-ins one replica runs for the fleet at once: each mostly waits for Databricks' write budget, so as
 * many as a storm of new users needs, for their writes to be batched together (target/write-scheduler.ts).
 */
const SIGN_INS_PER_REPLICA = 500
/**
 * The share of Databricks' write limits the fleet's permits pace at. Paced at exactly the limit, requests
 * that leave different processes with different delays (a busy event loop) bunch up and drain Databricks'
 * one-second bucket into 429s over a long storm; a little below it, the bucket refills between bunches.
 */
const FLEET_WRITE_HEADROOM = 0.95
/** Group creates one replica runs for the fleet at once (each waits for the create budget). */
const GROUP_CREATES_PER_REPLICA = 50

export async function buildService (config: Config, options: ServiceOptions = {}): Promise<Service> {
  const tenantId = config.ENTRA_TENANT_ID
  const clientId = config.ENTRA_CLIENT_ID
  if (tenantId === undefined || clientId === undefined) throw new Error('ENTRA_TENANT_ID and ENTRA_CLIENT_ID are required to build the service')
  const clock = options.clock ?? systemClock
  const ca = options.ca ?? (config.UPSTREAM_CA_FILE !== undefined ? await readFile(config.UPSTREAM_CA_FILE, 'utf8') : undefined)
  const metrics = new Metrics({ processMetrics: options.processMetrics })
  const observer = metrics.upstreamObserver
  // The app, and its logger, is built last: the parts built before it log through this once it exists.
  const logs: { log?: FastifyBaseLogger } = {}

  // One attempt of an outbound call fits in a request's deadline (REQUEST_TIMEOUT_MS), with room for a retry.
  const timeoutMs = upstreamTimeoutMs(config)
  // With replicas (REDIS_URL), the Graph budget and Databricks' write budgets hold for all of them together
  // (fleet/permits.ts); each replica's own pacing, at its share, covers the time Redis is away.
  const permits = config.REDIS_URL === undefined
    ? undefined
    : new FleetPermits({ url: config.REDIS_URL, prefix: `${options.fleetKeyPrefix ?? config.REDIS_KEY_PREFIX}bull`, log: { warn: (obj, msg) => { logs.log?.warn(obj, msg) } } })
  const share = permits === undefined ? 1 : config.REPLICAS
  const entra = new UpstreamClient({ name: 'entra', ca, observer, concurrency: 8, timeoutMs })
  const graph = new UpstreamClient({
    name: 'graph',
    ca,
    observer,
    timeoutMs,
    concurrency: config.GRAPH_MAX_CONCURRENCY,
    ratePerSecond: config.GRAPH_MAX_REQUESTS_PER_SECOND / share,
    burst: Math.max(1, Math.ceil(config.GRAPH_MAX_REQUESTS_PER_SECOND / share)),
    ...(permits !== undefined ? { permits: permits.budget('graph', config.GRAPH_MAX_REQUESTS_PER_SECOND) } : {})
  })

  const verifier = await createTokenVerifier({
    authorityHost: config.ENTRA_AUTHORITY_HOST,
    tenantId,
    allowedTenants: listOf(config.ENTRA_ALLOWED_TENANTS).length > 0 ? listOf(config.ENTRA_ALLOWED_TENANTS) : [tenantId],
    audiences: listOf(config.ENTRA_AUDIENCES).length > 0 ? listOf(config.ENTRA_AUDIENCES) : [clientId, `api://${clientId}`],
    clockSkewSeconds: config.TOKEN_CLOCK_SKEW_SECONDS,
    keyRefreshIntervalMs: config.ENTRA_KEYS_REFRESH_SECONDS * 1000,
    keyMinRefreshIntervalMs: config.ENTRA_KEYS_MIN_REFRESH_SECONDS * 1000,
    clock,
    fetchJson: async (url) => {
      const response = await entra.requestJson({ method: 'GET', url })
      if (response.status < 200 || response.status >= 300) throw new Error(`GET ${url}: HTTP ${response.status}`)
      return response.json
    },
    cacheObserver: metrics.cacheObserver,
    // Entra unreachable is expected now and then: the error's message, not its stack.
    logger: { warn: (obj, msg) => { logs.log?.warn({ component: 'entra-keys', ...obj, ...('err' in obj ? { err: messageOf(obj.err) } : {}) }, msg) } }
  })

  const credential = config.ENTRA_CLIENT_CERTIFICATE_PATH !== undefined
    ? { clientCertificate: await readCertificate(config.ENTRA_CLIENT_CERTIFICATE_PATH) }
    : { clientSecret: config.ENTRA_CLIENT_SECRET }
  const directory = new GraphDirectory({
    clientId,
    ...credential,
    graphBaseUrl: config.GRAPH_BASE_URL,
    authorityHost: config.ENTRA_AUTHORITY_HOST,
    graph,
    sts: entra
  })

  const resolver = new Resolver({
    directory,
    clock,
    principalTtlMs: config.CACHE_PRINCIPAL_TTL_SECONDS * 1000,
    groupsTtlMs: config.CACHE_GROUPS_TTL_SECONDS * 1000,
    notFoundTtlMs: config.CACHE_NOT_FOUND_TTL_SECONDS * 1000,
    maxStaleMs: config.CACHE_MAX_STALE_SECONDS * 1000,
    maxPrincipals: config.CACHE_MAX_PRINCIPALS,
    maxGroupRefs: config.CACHE_MAX_GROUP_REFS,
    useGroupsClaim: config.USE_TOKEN_GROUPS_CLAIM,
    observer: metrics.cacheObserver
  })

  const tenants = [...new Set([tenantId, ...listOf(config.ENTRA_ALLOWED_TENANTS)].map(t => t.toLowerCase()))]
  // Replicas sharing Redis tell each other what they changed or saw change (fleet/bus.ts); the caches it
  // reaches are known once they are built (below).
  const heard: { caches?: FleetCaches } = {}
  const fleet = config.REDIS_URL === undefined
    ? undefined
    : new FleetBus({
      url: config.REDIS_URL,
      prefix: options.fleetKeyPrefix ?? config.REDIS_KEY_PREFIX,
      onMessage: message => { if (heard.caches !== undefined) forgetChanged(heard.caches, message) },
      onGap: () => { if (heard.caches !== undefined) forgetEverything(heard.caches) },
      log: { warn: (obj, msg) => { logs.log?.warn(obj, msg) } }
    })

  // Databricks, when configured: every login also materializes the caller in the account.
  const writeBudgets = { patch: config.DATABRICKS_SCIM_PATCHES_PER_SECOND, write: config.DATABRICKS_SCIM_WRITES_PER_SECOND }
  const databricksHttp = config.DATABRICKS_HOST !== undefined ? new UpstreamClient({ name: 'databricks', ca, observer, concurrency: 4, timeoutMs }) : undefined
  const databricks = databricksHttp !== undefined && config.DATABRICKS_HOST !== undefined && config.DATABRICKS_ACCOUNT_ID !== undefined
    ? new DatabricksClient({
      http: databricksHttp,
      host: config.DATABRICKS_HOST,
      accountId: config.DATABRICKS_ACCOUNT_ID,
      ...(config.DATABRICKS_TOKEN !== undefined
        ? { token: config.DATABRICKS_TOKEN }
        : { entra: { tenantId, clientId, authorityHost: config.ENTRA_AUTHORITY_HOST, sts: entra, ...credential } }),
      ca,
      observer,
      writeBudgets,
      ...(permits !== undefined
        ? { writeFleet: { permits: { patch: permits.budget('databricks-patch', writeBudgets.patch * FLEET_WRITE_HEADROOM), write: permits.budget('databricks-write', writeBudgets.write * FLEET_WRITE_HEADROOM) }, replicas: config.REPLICAS } }
        : {}),
      writeObserver: metrics.writeObserver,
      workspaceUrls: parseWorkspaceUrls(config.DATABRICKS_WORKSPACE_URLS).urls
    })
    : undefined
  if (databricks !== undefined) metrics.watchWrites(databricks.writes)
  const groupNames = databricks === undefined ? undefined : new AccountGroupNames({ client: databricks, clock })
  // Group names no Entra group may take: those the local groups of the workspaces the service serves hold.
  const servedWorkspaces = [...parseWorkspaceUrls(config.DATABRICKS_WORKSPACE_URLS).urls.keys()]
  const namesHeldLocally = async (names: string[]): Promise<Set<string>> => {
    const held = await Promise.all(servedWorkspaces.map(async id => await (groupNames as AccountGroupNames).localNames(id, names)))
    return new Set(held.flatMap(set => [...set]))
  }
  const scimObserver: ScimTargetObserver = {
    onGroupNameCollision: collision => {
      metrics.groupNameCollision(collision.reason)
      logs.log?.warn({ component: 'databricks', collision }, `Entra group ${collision.entraGroupId} could not be named '${collision.wanted}' (${collision.reason}); named '${collision.used}'`)
    },
    onGroupSkipped: (group, reason) => {
      metrics.groupSkipped()
      logs.log?.warn({ component: 'databricks', entraGroupId: group.id }, `Entra group ${group.id} was left out: Databricks refused its name (${reason})`)
    },
    onMembershipBatch: members => { metrics.membershipBatch(members) },
    onMembershipSkipped: skipped => {
      metrics.membershipSkipped(skipped.reason)
      logs.log?.warn({ component: 'databricks', membership: skipped }, `Membership of ${skipped.childEntraId ?? skipped.childId} in Entra group ${skipped.parentEntraId ?? skipped.parentId} was left out: Databricks refused it (${skipped.reason}: ${skipped.detail})`)
    }
  }
  const target = databricks === undefined
    ? undefined
    : config.DATABRICKS_MODE === 'aim'
      ? new DatabricksAimTarget({ client: databricks })
      : new DatabricksScimTarget({ client: databricks, groupNames: config.DATABRICKS_GROUP_NAMES, namesHeldLocally, observer: scimObserver })
  const groupFilter = { securityOnly: config.DATABRICKS_GROUP_FILTER === 'security', parents: new Set(listOf(config.DATABRICKS_GROUP_PARENTS).map(id => id.toLowerCase())) }
  const materializer = databricks === undefined || target === undefined
    ? undefined
    : new Materializer(resolver, target, new WorkspaceAssignments({ client: databricks, clock }), groupFilter)
  // With replicas, work several of them may be asked for at once runs once for the fleet (fleet/flights.ts):
  // a cold sign-in, and a new group's create.
  const flights: Array<FleetFlights<object, unknown>> = []
  const shared = <D extends object, R>(name: string, concurrency: number, run: (data: D, progress: (data: unknown) => void) => Promise<R>): FleetFlights<D, R> | undefined => {
    if (config.REDIS_URL === undefined) return undefined
    const f = new FleetFlights<D, R>({
      url: config.REDIS_URL,
      prefix: `${options.fleetKeyPrefix ?? config.REDIS_KEY_PREFIX}bull`,
      name,
      concurrency,
      run,
      log: { error: (obj, msg) => { logs.log?.error(obj, msg) } }
    })
    flights.push(f as unknown as FleetFlights<object, unknown>)
    return f
  }
  if (target instanceof DatabricksScimTarget) target.sharedGroupCreates = shared<SharedGroupCreate, ScimObject>('group-creates', GROUP_CREATES_PER_REPLICA, async data => await target.createGroupForFleet(data))
  const signIns = materializer === undefined ? undefined : new SignIns(resolver, materializer)
  if (signIns !== undefined) signIns.shared = shared<Caller, SignInTransfer>('sign-ins', SIGN_INS_PER_REPLICA, async (caller, progress) => await signIns.forFleet(caller, progress))
  const objects = databricks === undefined
    ? undefined
    : new WorkspaceObjects({
      client: databricks,
      clock,
      ttlMs: config.CACHE_ACL_TTL_SECONDS * 1000,
      ...(fleet !== undefined ? { onAclChanged: async (workspaceId, objectType, objectId) => { await fleet.publish({ kind: 'acl', workspaceId, objectType, objectId }) } } : {})
    })
  const access = databricks === undefined || materializer === undefined || groupNames === undefined || objects === undefined
    ? undefined
    : new ObjectAccess({
      resolver,
      materializer,
      objects,
      groupNames,
      lookups: new LookupBudget({ perMinute: config.PRINCIPAL_LOOKUPS_PER_MINUTE }),
      observer: metrics.cacheObserver
    })

  // Bulk registration jobs: with Redis, kept there and their items spread over the replicas
  // (registrations/fleet-runner.ts); else in files, run by this process.
  const registrationsPrefix = options.registrationsKeyPrefix ?? `${config.REDIS_KEY_PREFIX}registrations:`
  const redis = materializer === undefined || config.REDIS_URL === undefined
    ? undefined
    : new RedisJobStore({ url: config.REDIS_URL, prefix: registrationsPrefix })
  // One line per change of the connection, never one per reconnection attempt.
  redis?.onStateChange(change => { logRedis(logs.log, change) })
  const registrationWork = materializer === undefined
    ? undefined
    : { resolver, materializer, clock, concurrency: config.REGISTRATIONS_CONCURRENCY, onItemSettled: (state: 'registered' | 'failed') => { metrics.registrationItem(state) } }
  const registrations: Registrations | undefined = registrationWork === undefined
    ? undefined
    : redis !== undefined && config.REDIS_URL !== undefined
      ? new FleetRegistrationRunner({ store: redis, url: config.REDIS_URL, prefix: `${registrationsPrefix}bull`, ...registrationWork })
      : new RegistrationRunner({ store: new FileJobStore(config.REGISTRATIONS_DIR), ...registrationWork })

  // The Entra change feed: Databricks and the caches follow what changes in Entra, within a round.
  const sync = !config.SYNC_ENABLED
    ? undefined
    : buildSync({
      config,
      clientState: config.SYNC_NOTIFICATION_SECRET ?? derivedClientState(clientId, credential),
      tenants,
      // Background work: Graph may slow it before the logins people wait on.
      directory: directory.withThrottlePriority('low'),
      resolver,
      target: target !== undefined && supportsSync(target) ? target : undefined,
      materializer,
      writeNesting: !groupFilter.securityOnly && groupFilter.parents.size === 0,
      clock,
      keyPrefix: options.syncKeyPrefix,
      // A renamed or retired group changes the names permission answers trace back to Entra.
      onForget: (changedTenant, ids) => {
        if (ids.groups.length > 0) groupNames?.invalidate()
        fleet?.tell({ kind: 'forget', tenantId: changedTenant, principals: ids.principals, groups: ids.groups })
      },
      onForgetTenant: changedTenant => { fleet?.tell({ kind: 'forget-tenant', tenantId: changedTenant }) },
      log: { warn: (obj, msg) => { logs.log?.warn({ component: 'sync', ...obj }, msg) } },
      onNotification: outcome => {
        metrics.syncNotification(outcome)
        if (outcome === 'forged') logs.log?.warn({ component: 'sync' }, 'a change-notification delivery without our clientState was refused')
      },
      onRound: report => {
        metrics.observeSyncRound(report)
        if (report.errors.length > 0) logs.log?.warn({ component: 'sync', errors: report.errors }, 'sync round: some changes could not be read or applied; the next round retries them')
        else if (Object.keys(report.applied).length > 0) logs.log?.info({ component: 'sync', read: report.read, applied: report.applied }, 'sync round applied changes')
      }
    })

  heard.caches = { resolver, tenants, ...(target !== undefined ? { target } : {}), ...(groupNames !== undefined ? { groupNames } : {}), ...(objects !== undefined ? { objects } : {}) }
  fleet?.start()

  const app = await buildApp({
    config,
    metrics,
    authenticator: verifier,
    resolver,
    registrations,
    materializer,
    signIns,
    access,
    sync,
    // Ready once the signing keys are loaded: without them no request can be served. Redis away is reported
    // (degraded) without taking the replica out: every replica shares it, and each serves on its own meanwhile.
    readinessChecks: [
      { name: 'entra-signing-keys', check: async () => { await verifier.warm() } },
      ...(redis !== undefined ? [{ name: 'redis', required: false, check: async () => { await redis.check() } }] : []),
      ...(fleet !== undefined ? [{ name: 'fleet', required: false, check: () => { if (!fleet.listening) throw new Error('not hearing the other replicas (Redis unreachable): this replica serves on its own, and forgets its caches when Redis is back') } }] : [])
    ]
  })

  logs.log = app.log
  // In the background: Redis or Graph being away at start must not keep the service from serving logins.
  sync?.start().catch(err => { app.log.warn({ component: 'sync', err: messageOf(err) }, 'the change feed could not start; it is retried at the next interval') })
  if (registrations !== undefined) {
    registrations.log = app.log.child({ component: 'registrations' })
    if (options.resumeRegistrations !== false) {
      // In the background: a store that is down must not keep the service from serving logins.
      registrations.resume().catch(err => { app.log.error({ err }, 'could not resume registrations') })
    }
  }

  return {
    app,
    resolver,
    metrics,
    registrations,
    sync,
    close: async () => {
      await app.close()
      // Before the upstream clients close: a round in flight finishes (its cursor stored, or replayed next time).
      await sync?.close()
      await fleet?.close()
      // Runs this replica makes for others are left to the fleet (another replica takes them over).
      await Promise.all(flights.map(async f => { await f.close() }))
      // Before the upstream clients close: in-flight items finish and the jobs are checkpointed.
      await registrations?.close()
      await registrations?.store.close()
      await verifier.close()
      await directory.close()
      await databricks?.close()
      await permits?.close()
      await Promise.all([entra.close(), graph.close(), databricksHttp?.close()])
    }
  }
}

/**
 * The subscriptions' clientState when none is configured: an HMAC of the app's own credential, so every
 * replica derives the same value and nobody without the credential can forge it (nor learn the credential from it).
 */
function derivedClientState (clientId: string, credential: { clientSecret?: string, clientCertificate?: { privateKeyPem: string } }): string {
  const key = credential.clientSecret ?? credential.clientCertificate?.privateKeyPem ?? clientId
  return createHmac('sha256', key).update(`jit-identity-resolver change notifications ${clientId}`).digest('base64url')
}

/** An error as a log line shows an expected failure: its message, without the stack. */
function messageOf (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function logRedis (log: FastifyBaseLogger | undefined, change: RedisStateChange): void {
  const line = { component: 'redis', redis: change.state, ...(change.reason !== undefined ? { reason: change.reason } : {}), ...(change.downMs !== undefined ? { downMs: change.downMs } : {}) }
  switch (change.state) {
    case 'connected': log?.info(line, 'Redis connected'); break
    case 'reconnected': log?.info(line, `Redis reconnected after ${Math.round((change.downMs ?? 0) / 100) / 10} s; registrations go on`); break
    case 'unreachable': log?.warn(line, 'Redis unreachable; registrations wait for it, /readyz reports it'); break
    case 'lost': log?.warn(line, 'Redis connection lost; registrations pause until it is back, /readyz reports it')
  }
}

/** A PEM file with the app's certificate and its private key, in either order. */
async function readCertificate (path: string): Promise<{ certificatePem: string, privateKeyPem: string }> {
  const pem = await readFile(path, 'utf8')
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0]
  const key = /-----BEGIN (?:RSA )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA )?PRIVATE KEY-----/.exec(pem)?.[0]
  if (cert === undefined || key === undefined) throw new Error(`${path} must hold a PEM certificate and its private key`)
  return { certificatePem: cert, privateKeyPem: key }
}
