// The Redis job store (REDIS_URL): a key per job holding its JSON, and a set of the unfinished jobs' ids,
// both written in one MULTI so the set never disagrees with the documents. Finished jobs expire after
// FINISHED_TTL_SECONDS; unfinished ones never do (they wait for a service to resume them).
import { Redis } from 'ioredis'
import { isFinished, type RegistrationJob } from './job.ts'
import type { JobStore } from './store.ts'

/** How long a completed or failed job can still be read. */
export const FINISHED_TTL_SECONDS = 30 * 24 * 3600

export interface RedisJobStoreOptions {
  url: string
  /** Prefix of every key (tests use their own). */
  prefix?: string
}

export class RedisJobStore implements JobStore {
  private readonly redis: Redis
  private readonly prefix: string

  constructor (options: RedisJobStoreOptions) {
    this.prefix = options.prefix ?? 'jir:registrations:'
    // Commands wait (bounded) for a reconnect instead of failing at once; a Redis that stays away fails them.
    this.redis = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 3, enableOfflineQueue: true })
  }

  async save (job: RegistrationJob): Promise<void> {
    const key = this.key(job.id)
    const multi = this.redis.multi()
    if (isFinished(job.status)) {
      multi.set(key, JSON.stringify(job), 'EX', FINISHED_TTL_SECONDS).srem(this.unfinishedKey, job.id)
    } else {
      multi.set(key, JSON.stringify(job)).sadd(this.unfinishedKey, job.id)
    }
    const results = await multi.exec()
    const failed = results?.find(([err]) => err !== null)
    if (failed?.[0] != null) throw failed[0]
  }

  async get (id: string): Promise<RegistrationJob | undefined> {
    const text = await this.redis.get(this.key(id))
    return text === null ? undefined : JSON.parse(text) as RegistrationJob
  }

  async unfinished (): Promise<string[]> {
    return await this.redis.smembers(this.unfinishedKey)
  }

  async close (): Promise<void> {
    await this.redis.quit().catch(() => { this.redis.disconnect() })
  }

  private get unfinishedKey (): string { return `${this.prefix}unfinished` }

  private key (id: string): string { return `${this.prefix}job:${id.toLowerCase()}` }
}
