// How many other principals one caller may have looked up in Entra: asking about someone, or sharing with
// someone, costs Graph calls when the principal is not cached, so a caller who may ask could otherwise
// turn requests into Graph traffic and slow everyone's logins. Only lookups that miss the caches count. A token bucket per caller (limiter's), in a bounded LRU; holders of the app
// role Identity.Admin (automation that registers and audits) are not limited.
import { LRUCache } from 'lru-cache'
import { TokenBucket } from 'limiter'
import type { Caller } from '../auth/caller.ts'
import { principalLookupsThrottled } from './errors.ts'

export interface LookupBudgetOptions {
  /** Lookups per minute and caller (also the burst). */
  perMinute: number
  /** Callers tracked at once (default 10,000; the least recent are forgotten, with a full bucket). */
  maxCallers?: number
}

export class LookupBudget {
  private readonly buckets: LRUCache<string, TokenBucket>

  constructor (private readonly options: LookupBudgetOptions) {
    this.buckets = new LRUCache({ max: options.maxCallers ?? 10_000 })
  }

  /** Spends one lookup of `caller`'s budget, or throws the 429 problem saying when to retry. */
  take (caller: Caller): void {
    if (caller.roles.includes('Identity.Admin')) return
    const key = `${caller.tenantId}|${caller.oid}`
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      const size = Math.max(1, this.options.perMinute)
      bucket = new TokenBucket({ bucketSize: size, tokensPerInterval: this.options.perMinute, interval: 'minute' })
      // limiter's bucket starts empty; a caller starts with its whole budget.
      bucket.content = size
      this.buckets.set(key, bucket)
    }
    if (!bucket.tryRemoveTokens(1)) throw principalLookupsThrottled(this.options.perMinute, bucket.getWaitTime(1) / 1000)
  }
}
