// Prometheus metrics for one app instance (its own registry, so tests and several apps in one process
// don't collide): request latency by route, cache lookups by result, upstream calls, latency, throttles
// and retries. The resolver and the upstream client report through the observers this exposes.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { CacheObserver, CacheResult } from '../resolver/fresh-cache.ts'
import type { UpstreamObserver } from '../upstream/client.ts'

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

export class Metrics {
  readonly registry = new Registry()
  private readonly requests = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Requests served, by route, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry]
  })

  private readonly cacheLookups = new Counter({
    name: 'resolver_cache_lookups_total',
    help: 'Cache lookups by cache and result: hit, stale (served while refreshing), coalesced (waited on another caller\'s load), miss.',
    labelNames: ['cache', 'result'] as const,
    registers: [this.registry]
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

  constructor (options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry })
  }

  observeRequest (route: string, method: string, status: number, seconds: number): void {
    this.requests.observe({ route, method, status: String(status) }, seconds)
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

  readonly cacheObserver: CacheObserver = {
    onLookup: (cache: string, result: CacheResult) => { this.cacheLookups.inc({ cache, result }) }
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
