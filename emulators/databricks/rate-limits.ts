// Databricks' throttling (reference §2.7), two modes:
// - per endpoint family, a token bucket of `rps` requests per second (burst: one second's worth), time
//   from the emulator clock; an empty bucket answers 429 REQUEST_LIMIT_EXCEEDED with Retry-After;
// - optionally (off by default), the SCIM concurrency quirk: more than `limit` (4) SCIM requests in
//   flight for one workspace (or the account) → HTTP 500 with a SCIM body whose detail is
//   "REQUEST_LIMIT_EXCEEDED: Workspace 1234 exceeded the concurrent limit of 4 requests." Handlers are
//   fast, so the mode holds each SCIM request for `holdMs` to make overlapping requests observable.
import type { EmulatorClock } from '../clock.ts'
import { DatabricksError } from './errors.ts'

export const FAMILIES = [
  'account-scim-get', 'account-scim-list', 'account-scim-patch', 'account-scim-write',
  'workspace-scim-read', 'workspace-scim-write',
  'permissions-read', 'permissions-write',
  'identity', 'assignments', 'lakeview', 'workspace'
] as const
export type Family = typeof FAMILIES[number]

/**
 * Requests per second; null = unlimited. [UNCONF] The reference quotes an aggregator of the Azure limits
 * page: account SCIM GET 20, LIST 240, PATCH 2, POST/PUT/DELETE 5; workspace SCIM GET 255; Permissions
 * GET 100, PATCH/PUT 30. All are read as per second. Families without a published figure are unlimited.
 */
export const DEFAULT_LIMITS: Readonly<Record<Family, number | null>> = {
  'account-scim-get': 20,
  'account-scim-list': 240,
  'account-scim-patch': 2,
  'account-scim-write': 5,
  'workspace-scim-read': 255,
  'workspace-scim-write': null,
  'permissions-read': 100,
  'permissions-write': 30,
  identity: null,
  assignments: null,
  lakeview: null,
  workspace: null
}

const DESCRIPTIONS: Record<Family, string> = {
  'account-scim-get': 'Account SCIM GET',
  'account-scim-list': 'Account SCIM LIST',
  'account-scim-patch': 'Account SCIM PATCH',
  'account-scim-write': 'Account SCIM POST/PUT/DELETE',
  'workspace-scim-read': 'Workspace SCIM GET',
  'workspace-scim-write': 'Workspace SCIM POST/PUT/PATCH/DELETE',
  'permissions-read': 'GetObjectPermissionsRequest',
  'permissions-write': 'SetObjectPermissionsRequest',
  identity: 'Identity',
  assignments: 'PermissionAssignments',
  lakeview: 'Lakeview',
  workspace: 'Workspace'
}

export interface ConcurrencySettings {
  enabled: boolean
  limit: number
  holdMs: number
}

export interface RateLimitSettings {
  /** false turns the per-family buckets off (the concurrency mode has its own switch). */
  enabled: boolean
  limits: Record<Family, number | null>
  concurrency: ConcurrencySettings
}

export interface RateLimitPatch {
  enabled?: boolean
  limits?: Partial<Record<Family, number | null>>
  concurrency?: Partial<ConcurrencySettings>
}

interface Bucket {
  tokens: number
  updated: number
}

export class RateLimiter {
  private settings: RateLimitSettings = defaults()
  private readonly buckets = new Map<Family, Bucket>()
  private readonly inFlight = new Map<string, number>()
  /** How many requests each mode refused, for the state endpoint. */
  readonly refused = { throttled: 0, concurrency: 0 }

  constructor (private readonly clock: EmulatorClock) {}

  get current (): RateLimitSettings {
    return structuredClone(this.settings)
  }

  configure (patch: RateLimitPatch): RateLimitSettings {
    if (patch.enabled !== undefined) this.settings.enabled = patch.enabled
    for (const [family, rps] of Object.entries(patch.limits ?? {})) {
      if (rps !== undefined) this.settings.limits[family as Family] = rps
    }
    Object.assign(this.settings.concurrency, patch.concurrency ?? {})
    // A new configuration starts every bucket full, so tests begin from a known state.
    this.buckets.clear()
    return this.current
  }

  reset (): RateLimitSettings {
    this.settings = defaults()
    this.buckets.clear()
    this.refused.throttled = 0
    this.refused.concurrency = 0
    return this.current
  }

  /** Takes one request from the family's bucket, or throws the 429. */
  take (family: Family): void {
    const rps = this.settings.limits[family]
    if (!this.settings.enabled || rps === null) return
    const now = this.clock.now()
    // Burst: one second's worth, and at least one request (limits below 1/s are allowed).
    const capacity = Math.max(1, rps)
    let b = this.buckets.get(family)
    if (b === undefined) {
      b = { tokens: capacity, updated: now }
      this.buckets.set(family, b)
    } else {
      b.tokens = Math.min(capacity, b.tokens + Math.max(0, now - b.updated) * rps / 1000)
      b.updated = now
    }
    if (b.tokens >= 1) {
      b.tokens -= 1
      return
    }
    this.refused.throttled += 1
    const retryAfter = Math.max(1, Math.ceil((1 - b.tokens) / rps))
    throw new DatabricksError(429, 'REQUEST_LIMIT_EXCEEDED',
      `${DESCRIPTIONS[family]} RPC token bucket limit has been exceeded (${rps} requests per second). Retry after ${retryAfter} second(s).`,
      { codeInDetail: true, headers: { 'retry-after': String(retryAfter) } })
  }

  /**
   * Enters a SCIM request into the concurrency count of `scope` (a workspace or the account), or throws
   * the quirk's 500. Returns the release function and how long to hold the request, or null when the mode
   * is off.
   */
  enter (scope: { kind: 'Workspace' | 'Account', id: string }): { release: () => void, holdMs: number } | null {
    const c = this.settings.concurrency
    if (!c.enabled) return null
    const key = `${scope.kind}/${scope.id}`
    const n = this.inFlight.get(key) ?? 0
    if (n >= c.limit) {
      this.refused.concurrency += 1
      throw new DatabricksError(500, 'REQUEST_LIMIT_EXCEEDED', `${scope.kind} ${scope.id} exceeded the concurrent limit of ${c.limit} requests.`, { codeInDetail: true })
    }
    this.inFlight.set(key, n + 1)
    let released = false
    return {
      holdMs: c.holdMs,
      release: () => {
        if (released) return
        released = true
        const left = (this.inFlight.get(key) ?? 1) - 1
        if (left <= 0) this.inFlight.delete(key)
        else this.inFlight.set(key, left)
      }
    }
  }
}

function defaults (): RateLimitSettings {
  return { enabled: true, limits: { ...DEFAULT_LIMITS }, concurrency: { enabled: false, limit: 4, holdMs: 50 } }
}
