// Graph's identity-and-access throttling (spec §2.4): a token bucket of resource units per
// (application, tenant), refilled continuously over 10 s, sized by the tenant (S 3,500 · M 5,000 ·
// L 8,000 per 10 s). Each request costs units by route, adjusted by its query options. Time is the
// emulator clock, so a test advances the clock instead of sleeping. The limit can be overridden (or
// throttling disabled) at run time through `PUT /_emulator/graph/throttle`.
import type { EmulatorClock } from '../clock.ts'
import type { Directory } from '../tenant/model.ts'
import { GraphError } from './errors.ts'

export const WINDOW_MS = 10_000
export const LIMITS: Record<Directory['sizeClass'], number> = { S: 3_500, M: 5_000, L: 8_000 }

/**
 * Resource units of a request: the route's base cost, −1 with `$select`, −1 with `$top` below 20,
 * +1 with `$expand`, never below 1.
 */
export function requestCost (base: number, query: Record<string, unknown>): number {
  let cost = base
  const keys = new Map(Object.entries(query).map(([k, v]) => [k.toLowerCase(), v]))
  if (keys.has('$select')) cost -= 1
  const top = Number(keys.get('$top'))
  if (Number.isInteger(top) && top >= 1 && top < 20) cost -= 1
  if (keys.has('$expand')) cost += 1
  return Math.max(1, cost)
}

interface Bucket {
  appId: string
  tenantId: string
  limit: number
  tokens: number
  updated: number
}

export interface ThrottleSettings {
  /** Overrides the size-class limit for every bucket (resource units per 10 s). */
  limitPer10s?: number
  disabled: boolean
}

export interface ThrottleOutcome {
  /** Response headers to add: always `x-ms-resource-unit`, and the throttle ones when relevant. */
  headers: Record<string, string>
}

export class Throttle {
  private readonly buckets = new Map<string, Bucket>()
  readonly settings: ThrottleSettings = { disabled: false }

  constructor (private readonly clock: EmulatorClock) {}

  configure (patch: { limitPer10s?: number | null, disabled?: boolean }): ThrottleSettings {
    if (patch.limitPer10s === null) delete this.settings.limitPer10s
    else if (patch.limitPer10s !== undefined) this.settings.limitPer10s = patch.limitPer10s
    if (patch.disabled !== undefined) this.settings.disabled = patch.disabled
    // A new limit starts every bucket full, so tests begin from a known state.
    this.buckets.clear()
    return { ...this.settings }
  }

  limitFor (tenant: Directory): number {
    return this.settings.limitPer10s ?? LIMITS[tenant.sizeClass]
  }

  /** Takes `cost` units from the caller's bucket, or throws Graph's 429. */
  take (appId: string, tenant: Directory, cost: number): ThrottleOutcome {
    const headers: Record<string, string> = { 'x-ms-resource-unit': String(cost) }
    if (this.settings.disabled) return { headers }
    const bucket = this.refill(appId, tenant)
    if (bucket.tokens + 1e-9 >= cost) {
      bucket.tokens -= cost
      const used = (bucket.limit - bucket.tokens) / bucket.limit
      if (used > 0.8) headers['x-ms-throttle-limit-percentage'] = used.toFixed(1)
      return { headers }
    }
    const ratePerSecond = bucket.limit / (WINDOW_MS / 1000)
    const retryAfter = Math.max(1, Math.ceil((cost - bucket.tokens) / ratePerSecond))
    const pct = Math.min(1.8, (bucket.limit - bucket.tokens + cost) / bucket.limit)
    throw new GraphError(429, 'TooManyRequests', 'Please retry again later.', {
      ...headers,
      'retry-after': String(retryAfter),
      'x-ms-throttle-limit-percentage': pct.toFixed(1),
      'x-ms-throttle-scope': `Tenant_Application/Read/${appId}/${tenant.tenantId}`,
      'x-ms-throttle-information': 'ResourceUnitLimitExceeded'
    }, { code: '429', status: '429', message: 'Please retry after' })
  }

  snapshot (tenants: Iterable<Directory>): { settings: ThrottleSettings, limits: Record<string, number>, buckets: Array<{ appId: string, tenantId: string, limit: number, available: number }> } {
    const limits: Record<string, number> = {}
    for (const t of tenants) limits[t.tenantId] = this.limitFor(t)
    const now = this.clock.now()
    const buckets = [...this.buckets.values()].map(b => ({
      appId: b.appId,
      tenantId: b.tenantId,
      limit: b.limit,
      available: Math.min(b.limit, b.tokens + (now - b.updated) * b.limit / WINDOW_MS)
    }))
    return { settings: { ...this.settings }, limits, buckets }
  }

  private refill (appId: string, tenant: Directory): Bucket {
    const key = `${appId}/${tenant.tenantId}`
    const limit = this.limitFor(tenant)
    const now = this.clock.now()
    let b = this.buckets.get(key)
    if (b === undefined) {
      b = { appId, tenantId: tenant.tenantId, limit, tokens: limit, updated: now }
      this.buckets.set(key, b)
      return b
    }
    const elapsed = Math.max(0, now - b.updated)
    b.limit = limit
    b.tokens = Math.min(limit, b.tokens + elapsed * limit / WINDOW_MS)
    b.updated = now
    return b
  }
}
