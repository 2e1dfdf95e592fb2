// Prometheus metrics for one app instance (its own registry, so tests and several apps in one process
// don't collide): request latency by route, cache lookups by result, upstream calls, latency, throttles
// and retries. The resolver and the upstream client report through the observers this exposes.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { CacheObserver, CacheResult } from '../resolver/fresh-cache.ts'
import type { UpstreamObserver } from '../upstream/client.ts'
import type { LaneObserver, WritePriority, WriteScheduler } from '../target/write-scheduler.ts'

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** One route, method and status: counts per bucket (not cumulative), their sum and count. */
interface Durations { labels: { route: string, method: string, status: string }, buckets: number[], sum: number, count: number }

/**
 * `http_request_duration_seconds`, observed on every request: a histogram that counts into plain arrays
 * (one per route, method and status, found by one string key) and is written out by prom-client's
 * registry in the shape of its own histograms. prom-client's observe() converts, validates and hashes the
 * labels on every call: a few microseconds on every request.
 */
class RequestDurations {
  readonly name = 'http_request_duration_seconds'
  readonly help = 'Requests served, by route, method and status.'
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly series = new Map<string, Durations>()

  constructor (registry: Registry) {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0])
  }

  observe (route: string, method: string, status: number, seconds: number): void {
    const key = `${status} ${method} ${route}`
    let d = this.series.get(key)
    if (d === undefined) this.series.set(key, d = { labels: { route, method, status: String(status) }, buckets: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 })
    let i = 0
    while (i < LATENCY_BUCKETS.length && seconds > (LATENCY_BUCKETS[i] as number)) i++
    if (i < LATENCY_BUCKETS.length) d.buckets[i] = (d.buckets[i] as number) + 1
    d.sum += seconds
    d.count += 1
  }

  async get (): Promise<{ name: string, help: string, type: string, aggregator: string, values: Array<{ metricName: string, labels: Record<string, string | number>, value: number }> }> {
    const values: Array<{ metricName: string, labels: Record<string, string | number>, value: number }> = []
    for (const d of this.series.values()) {
      let cumulative = 0
      LATENCY_BUCKETS.forEach((le, i) => {
        cumulative += d.buckets[i] as number
        values.push({ metricName: `${this.name}_bucket`, labels: { le, ...d.labels }, value: cumulative })
      })
      values.push(
        { metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...d.labels }, value: d.count },
        { metricName: `${this.name}_sum`, labels: d.labels, value: d.sum },
        { metricName: `${this.name}_count`, labels: d.labels, value: d.count }
      )
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset (): void {
    this.series.clear()
  }
}

export class Metrics {
  readonly registry = new Registry()
  private readonly requests = new RequestDurations(this.registry)

  // A warm request makes several lookups: each adds to a plain number, and prom-client (whose inc() hashes
  // and validates the labels every time) is told the sums when the registry is read.
  private readonly pendingLookups = new Map<string, Record<CacheResult, number>>()
  private readonly cacheLookups: Counter<'cache' | 'result'> = new Counter({
    name: 'resolver_cache_lookups_total',
    help: 'Cache lookups by cache and result: hit, stale (served while refreshing), coalesced (waited on another caller\'s load), miss.',
    labelNames: ['cache', 'result'] as const,
    registers: [this.registry],
    collect: () => { this.flushLookups() }
  })

  private readonly upstreamCalls = new Histogram({
    name: 'upstream_request_duration_seconds',
    help: 'Outbound calls (each attempt) by upstream, route and status (or timeout/connection when nothing answered).',
    labelNames: ['upstream', 'method', 'route', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry]
  })

  private readonly upstreamThrottles = new Counter({
    name: 'upstream_throttled_total',
    help: 'Answers from an upstream that asked us to slow down (429, or 503 with Retry-After).',
    labelNames: ['upstream'] as const,
    registers: [this.registry]
  })

  private readonly upstreamRetries = new Counter({
    name: 'upstream_retries_total',
    help: 'Retries of outbound calls, by upstream and reason.',
    labelNames: ['upstream', 'reason'] as const,
    registers: [this.registry]
  })

  private readonly groupNameCollisions = new Counter({
    name: 'databricks_group_name_collisions_total',
    help: 'Entra groups that could not get their preferred account name, by reason: reserved (a Databricks system group\'s), workspace-local (a local group holds it), taken (another account group).',
    labelNames: ['reason'] as const,
    registers: [this.registry]
  })

  private readonly groupsSkipped = new Counter({
    name: 'databricks_groups_skipped_total',
    help: 'Entra groups left out of a materialization because Databricks refused their name.',
    registers: [this.registry]
  })

  private readonly membershipsSkipped = new Counter({
    name: 'databricks_memberships_skipped_total',
    help: 'Entra memberships (nesting edges) left out of a materialization because Databricks refused them, by reason: cycle, depth (over 10 layers), limit (too many direct groups), refused (any other 400).',
    labelNames: ['reason'] as const,
    registers: [this.registry]
  })

  private readonly syncRounds = new Histogram({
    name: 'sync_round_duration_seconds',
    help: 'Entra change-feed rounds, by outcome: ok, or failed (some kind could not be read or applied; the next round retries it).',
    labelNames: ['outcome'] as const,
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry]
  })

  private readonly syncChangesRead = new Counter({
    name: 'sync_changes_read_total',
    help: 'Changes the Entra change feed read, by kind of object (user, servicePrincipal, group).',
    labelNames: ['kind'] as const,
    registers: [this.registry]
  })

  private readonly syncEffects = new Counter({
    name: 'sync_changes_applied_total',
    help: 'What applying Entra\'s changes did, by effect: deactivated, activated, membershipRemoved, membershipAdded, groupRenamed, groupRetired, groupDeleted, rematerialized; or unchanged, absent (not materialized here), refused, mirrored (AIM).',
    labelNames: ['effect'] as const,
    registers: [this.registry]
  })

  private readonly syncReconciles = new Counter({
    name: 'sync_reconciles_total',
    help: 'Full reconciles of what the service materialized, by reason: no-cursor (first start, lost cursor), cursor-expired (Graph answered 410).',
    labelNames: ['reason'] as const,
    registers: [this.registry]
  })

  private readonly syncStaleness = new Histogram({
    name: 'sync_staleness_seconds',
    help: 'For each change a round applied, a bound on how long Databricks lagged behind Entra: from the start of the previous round (after which the change was made) to the end of the round that applied it.',
    buckets: [1, 2, 5, 10, 15, 30, 60, 120, 300, 900],
    registers: [this.registry]
  })

  private readonly syncNotifications = new Counter({
    name: 'sync_notifications_total',
    help: 'Deliveries of Graph change notifications, by outcome: accepted (a round was asked for), refused (wrong clientState or tenant; nothing done).',
    labelNames: ['outcome'] as const,
    registers: [this.registry]
  })

  syncNotification (outcome: 'accepted' | 'forged'): void {
    this.syncNotifications.inc({ outcome: outcome === 'forged' ? 'refused' : outcome })
  }

  /** One finished change-feed round. */
  observeSyncRound (report: { startedAt: string, finishedAt: string, read: Partial<Record<string, number>>, applied: Record<string, number>, reconciled: Array<{ reason: string }>, errors: unknown[], stalenessBoundSeconds?: number }): void {
    const changes = Object.values(report.read).reduce<number>((n, c) => n + (c ?? 0), 0)
    if (report.stalenessBoundSeconds !== undefined) for (let i = 0; i < changes; i++) this.syncStaleness.observe(report.stalenessBoundSeconds)
    const seconds = Math.max(0, Date.parse(report.finishedAt) - Date.parse(report.startedAt)) / 1000
    this.syncRounds.observe({ outcome: report.errors.length === 0 ? 'ok' : 'failed' }, seconds)
    for (const [kind, n] of Object.entries(report.read)) if (n !== undefined && n > 0) this.syncChangesRead.inc({ kind }, n)
    for (const [effect, n] of Object.entries(report.applied)) if (n > 0) this.syncEffects.inc({ effect }, n)
    for (const { reason } of report.reconciled) this.syncReconciles.inc({ reason })
  }

  constructor (options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry })
  }

  observeRequest (route: string, method: string, status: number, seconds: number): void {
    this.requests.observe(route, method, status, seconds)
  }

  groupNameCollision (reason: string): void {
    this.groupNameCollisions.inc({ reason })
  }

  groupSkipped (): void {
    this.groupsSkipped.inc()
  }

  membershipSkipped (reason: string): void {
    this.membershipsSkipped.inc({ reason })
  }

  private readonly writeWaits = new Histogram({
    name: 'databricks_write_wait_seconds',
    help: 'How long a Databricks write waited for its family\'s budget (patch: PATCH; write: POST, PUT, DELETE), by priority: interactive (logins, shares) or background (registrations, the change feed).',
    labelNames: ['family', 'priority'] as const,
    buckets: [0, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry]
  })

  private readonly membershipBatches = new Histogram({
    name: 'databricks_membership_batch_members',
    help: 'Members added or removed by one coalesced membership PATCH (writes of every principal materialized at that moment).',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 1000],
    registers: [this.registry]
  })

  private writeLanes: WriteScheduler | undefined
  private readonly writeQueue = new Gauge({
    name: 'databricks_write_queue_depth',
    help: 'Databricks writes waiting for their family\'s budget, by family and priority.',
    labelNames: ['family', 'priority'] as const,
    registers: [this.registry],
    collect: () => {
      for (const lane of Object.values(this.writeLanes?.lanes ?? {})) {
        for (const [priority, n] of Object.entries(lane.depth())) this.writeQueue.set({ family: lane.family, priority }, n)
      }
    }
  })

  /** Reports the queue depth of these write lanes. */
  watchWrites (scheduler: WriteScheduler): void {
    this.writeLanes = scheduler
  }

  readonly writeObserver: LaneObserver = {
    onGranted: (family: string, priority: WritePriority, waitedMs: number) => { this.writeWaits.observe({ family, priority }, waitedMs / 1000) }
  }

  membershipBatch (members: number): void {
    this.membershipBatches.observe(members)
  }

  private readonly registrationItems = new Counter({
    name: 'registration_items_total',
    help: 'Registration items this replica settled, by state: registered or failed (with REDIS_URL the items of one job are spread over the replicas).',
    labelNames: ['state'] as const,
    registers: [this.registry]
  })

  registrationItem (state: 'registered' | 'failed'): void {
    this.registrationItems.inc({ state })
  }

  readonly cacheObserver: CacheObserver = {
    onLookup: (cache: string, result: CacheResult) => {
      let counts = this.pendingLookups.get(cache)
      if (counts === undefined) this.pendingLookups.set(cache, counts = { hit: 0, stale: 0, coalesced: 0, miss: 0 })
      counts[result] += 1
    }
  }

  private flushLookups (): void {
    for (const [cache, counts] of this.pendingLookups) {
      for (const result of Object.keys(counts) as CacheResult[]) {
        if (counts[result] === 0) continue
        this.cacheLookups.inc({ cache, result }, counts[result])
        counts[result] = 0
      }
    }
  }

  readonly upstreamObserver: UpstreamObserver = {
    onResponse: (e) => {
      const status = e.error ?? String(e.status)
      this.upstreamCalls.observe({ upstream: e.upstream, method: e.method, route: e.route, status }, e.ms / 1000)
    },
    onRetry: (e) => { this.upstreamRetries.inc({ upstream: e.upstream, reason: e.reason }) },
    onThrottled: (e) => { this.upstreamThrottles.inc({ upstream: e.upstream }) }
  }
}
