// Keeps Graph change-notification subscriptions for `/users` and `/groups` in each tenant, so a change in
// Entra starts a delta round at once instead of at the next interval. Notifications are only triggers:
// delta stays the source of truth (Graph promises no delivery latency and has no `missed` event for users
// and groups), so a subscription that cannot be made costs freshness, never correctness.
//
// - Run from the sync rounds (on the one replica running them): the first time, the application's
//   subscriptions are listed and those that call our notification URL reused; a missing one is created
//   (Graph first validates the URL through the handshake our route answers), one expiring within
//   RENEW_WITHIN_MS is renewed to the maximum lifetime; Graph's maximum for users and groups is 41,760 min.
// - A `reauthorizationRequired` lifecycle event is answered with POST /subscriptions/{id}/reauthorize; a
//   subscription Graph no longer has (404, `subscriptionRemoved`) is forgotten and made again next round.
// - Failures (the URL unreachable from Graph, a quota) are reported in the status and the log; polling
//   goes on regardless.
import type { Clock } from '../clock.ts'
import type { ChangeSubscription, DirectorySubscriptions } from '../directory/port.ts'

/** Graph's maximum lifetime of a user or group subscription is 41,760 minutes; ask a little less. */
export const SUBSCRIPTION_LIFETIME_MS = (41_760 - 60) * 60_000
/** Renewed when less than this is left (rounds run every few seconds, so there is ample time). */
export const RENEW_WITHIN_MS = 3 * 24 * 3600_000
/**
 * How long the list read from Graph is trusted: a subscription Graph removed, or one another replica's
 * keeper remade, is seen within this time even if its lifecycle event went to another replica.
 */
const RELIST_AFTER_MS = 3600_000
const RESOURCES = ['/users', '/groups'] as const

export interface SubscriptionStatus {
  tenantId: string
  resource: string
  id?: string
  expiresAt?: string
  /** Why there is none now (the next round tries again). */
  error?: string
}

export interface SubscriptionKeeperOptions {
  directory: DirectorySubscriptions
  clock: Clock
  /** Where Graph posts notifications and lifecycle events: `${PUBLIC_URL}/v1/sync/notifications`. */
  notificationUrl: string
  clientState: string
  log?: { warn: (obj: object, msg: string) => void }
}

export class SubscriptionKeeper {
  private readonly known = new Map<string, { listedAt: number, subscriptions: Map<string, ChangeSubscription> }>()
  private readonly errors = new Map<string, string>()

  constructor (private readonly options: SubscriptionKeeperOptions) {}

  /** Makes sure each resource of the tenant has a live subscription; never throws (polling goes on). */
  async ensure (tenantId: string): Promise<void> {
    const { directory, clock, notificationUrl, clientState } = this.options
    const tenant = tenantId.toLowerCase()
    let mine = this.known.get(tenant)?.subscriptions
    try {
      if (mine === undefined || clock.now() - (this.known.get(tenant)?.listedAt ?? 0) > RELIST_AFTER_MS) {
        const listed = await directory.listSubscriptions(tenantId)
        mine = new Map(listed.filter(s => s.notificationUrl === notificationUrl && s.expiresAt > clock.now()).map(s => [normalize(s.resource), s]))
        this.known.set(tenant, { listedAt: clock.now(), subscriptions: mine })
      }
    } catch (err) {
      this.failed(tenant, '*', err)
      return
    }
    for (const resource of RESOURCES) {
      const key = `${tenant}|${resource}`
      try {
        const held = mine.get(resource)
        const expiresAt = clock.now() + SUBSCRIPTION_LIFETIME_MS
        if (held !== undefined && held.expiresAt - clock.now() > RENEW_WITHIN_MS) continue
        const renewed = held === undefined ? null : await directory.renewSubscription(tenantId, held.id, expiresAt)
        const subscription = renewed ?? await directory.createSubscription(tenantId, { resource, changeType: 'updated,deleted', notificationUrl, lifecycleNotificationUrl: notificationUrl, clientState, expiresAt })
        mine.set(resource, subscription)
        this.errors.delete(key)
      } catch (err) {
        this.failed(tenant, resource, err)
      }
    }
  }

  /** A `reauthorizationRequired` event: reauthorize, or forget a subscription Graph no longer has. */
  async reauthorize (tenantId: string, subscriptionId: string): Promise<void> {
    try {
      if (!await this.options.directory.reauthorizeSubscription(tenantId, subscriptionId)) this.forget(tenantId, subscriptionId)
    } catch (err) {
      this.failed(tenantId.toLowerCase(), 'reauthorize', err)
    }
  }

  /** A subscription Graph removed: made again at the next round. */
  forget (tenantId: string, subscriptionId: string): void {
    const mine = this.known.get(tenantId.toLowerCase())?.subscriptions
    for (const [resource, s] of mine ?? []) if (s.id === subscriptionId) mine?.delete(resource)
  }

  status (tenantId: string): SubscriptionStatus[] {
    const tenant = tenantId.toLowerCase()
    const mine = this.known.get(tenant)?.subscriptions
    return RESOURCES.map(resource => {
      const s = mine?.get(resource)
      const error = this.errors.get(`${tenant}|${resource}`) ?? this.errors.get(`${tenant}|*`)
      return { tenantId: tenant, resource, ...(s !== undefined ? { id: s.id, expiresAt: new Date(s.expiresAt).toISOString() } : {}), ...(error !== undefined ? { error } : {}) }
    })
  }

  private failed (tenant: string, resource: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err)
    if (this.errors.get(`${tenant}|${resource}`) !== message) this.options.log?.warn({ tenantId: tenant, resource, err: message }, 'change notifications: could not keep the subscription; the feed polls meanwhile')
    this.errors.set(`${tenant}|${resource}`, message)
  }
}

/** Graph echoes the resource as given or without the leading slash (`users`); compare one form. */
function normalize (resource: string): string {
  return '/' + resource.replace(/^\/+/, '').toLowerCase()
}
