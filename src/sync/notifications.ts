// Graph's change notifications, received: each one only asks for a delta round (its payload never changes
// anything by itself), so a forged, replayed or reordered notification can at worst cause a round.
//
// - Every item must carry our clientState, compared in constant time (hashes of equal length), and name
//   one of the tenants the service syncs; otherwise the whole delivery is refused and nothing happens.
// - Accepted: a round is asked for (with Redis, the request is a job in the queue, i.e. persisted) before
//   the 202, so Graph's 3-second budget holds; a burst of deliveries is one round (the scheduler coalesces).
// - Lifecycle events: `reauthorizationRequired` is answered in the background (POST …/reauthorize),
//   `subscriptionRemoved` forgets the subscription so the next round makes a new one, `missed` (not sent for
//   users and groups, but harmless) only asks for a round like the others.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { SubscriptionKeeper } from './subscriptions.ts'

export interface NotificationItem {
  subscriptionId?: unknown
  clientState?: unknown
  tenantId?: unknown
  lifecycleEvent?: unknown
}

export interface NotificationReceiverOptions {
  clientState: string
  tenants: string[]
  trigger: () => Promise<void>
  keeper?: SubscriptionKeeper
  log?: { warn: (obj: object, msg: string) => void }
}

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest()

export class NotificationReceiver {
  private readonly expected: Buffer
  private readonly tenants: Set<string>

  constructor (private readonly options: NotificationReceiverOptions) {
    this.expected = digest(options.clientState)
    this.tenants = new Set(options.tenants.map(t => t.toLowerCase()))
  }

  /** 'accepted' (a round was asked for), or 'forged' (nothing was done). */
  async receive (items: NotificationItem[]): Promise<'accepted' | 'forged'> {
    if (items.length === 0 || !items.every(item => this.genuine(item))) return 'forged'
    for (const item of items) {
      const tenantId = item.tenantId as string
      const subscriptionId = typeof item.subscriptionId === 'string' ? item.subscriptionId : ''
      if (item.lifecycleEvent === 'reauthorizationRequired') this.options.keeper?.reauthorize(tenantId, subscriptionId).catch(() => {}) // never throws; failures are in the status
      else if (item.lifecycleEvent === 'subscriptionRemoved') this.options.keeper?.forget(tenantId, subscriptionId)
    }
    await this.options.trigger()
    return 'accepted'
  }

  private genuine (item: NotificationItem): boolean {
    if (typeof item.clientState !== 'string' || typeof item.tenantId !== 'string') return false
    // Every item is compared, whatever the earlier ones gave: the time taken tells nothing.
    const stateMatches = timingSafeEqual(digest(item.clientState), this.expected)
    return stateMatches && this.tenants.has(item.tenantId.toLowerCase())
  }
}
