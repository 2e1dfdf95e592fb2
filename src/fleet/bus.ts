// Cache coherence across replicas (REDIS_URL): what one replica writes or observes is published on one
// Redis pub/sub channel, and every other replica forgets the cache entries it makes stale.
//
// - Messages name what changed (an object's ACL after a share; principals and groups the change feed saw
//   change; a tenant after a gap in the feed), never a value: a replica that forgets reads the upstream
//   again, so a message can only make a cache fresher, never wrong.
// - A share answers its caller only after the message is in Redis, so a question sent to another replica
//   after that answer finds its cache already forgotten (Redis has written the message to every subscriber
//   before it acknowledges the publish). Publishing waits at most PUBLISH_TIMEOUT_MS: Redis being away must
//   not hold up a share, and every replica forgets everything when its own subscription comes back.
// - Pub/sub delivers nothing to a subscriber that was disconnected. So each time a replica's subscription
//   is (re-)established (Redis restarted, a network cut, Redis away at start), once the subscription is
//   confirmed, it forgets everything it cannot vouch for (`onGap`).
// - A replica ignores its own messages (it has applied them already) and anything that is not a message of
//   this shape (the channel is ours, but Redis is not a place to trust blindly).
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'

export type FleetMessage =
  | { kind: 'acl', workspaceId: string, objectType: string, objectId: string }
  | { kind: 'forget', tenantId: string, principals: string[], groups: string[] }
  | { kind: 'forget-tenant', tenantId: string }

export interface FleetBusOptions {
  url: string
  /** Prefix of the channel's name (REDIS_KEY_PREFIX): deployments sharing a Redis do not hear each other. */
  prefix: string
  /** A message from another replica. */
  onMessage: (message: FleetMessage) => void
  /** The subscription was interrupted and is back: messages may have been missed. */
  onGap: () => void
  log?: { warn: (obj: object, msg: string) => void }
}

const PUBLISH_TIMEOUT_MS = 1000
const MAX_MESSAGE_BYTES = 1 << 20

export class FleetBus {
  readonly channel: string
  /** Who this replica is on the channel (its own messages come back to it). */
  private readonly self = randomUUID()
  private readonly publisher: Redis
  private readonly subscriber: Redis
  private closing = false

  constructor (private readonly options: FleetBusOptions) {
    this.channel = `${options.prefix}fleet:changes`
    // Publishing fails at once while Redis is away (no queue of stale messages delivered later).
    this.publisher = new Redis(options.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true })
    // Subscribed by hand on every connection, to know when the subscription (not just the socket) is back.
    // Named after the deployment and the process, so an operator (or a test) can tell whose it is in CLIENT LIST.
    this.subscriber = new Redis(options.url, { lazyConnect: true, autoResubscribe: false, connectionName: `${options.prefix}fleet:${process.pid}` })
    // Connection trouble is reported by /readyz and the job store's state lines; without listeners ioredis
    // prints every reconnection attempt with its stack.
    this.publisher.on('error', () => {})
    this.subscriber.on('error', () => {})
    this.subscriber.on('message', (channel: string, text: string) => { if (channel === this.channel) this.receive(text) })
    this.subscriber.on('ready', () => {
      this.subscriber.subscribe(this.channel).then(() => { if (!this.closing) this.options.onGap() }, () => { /* the next 'ready' subscribes */ })
    })
  }

  /** Connects (in the background: Redis being away at start must not keep the service from serving). */
  start (): void {
    this.publisher.connect().catch(() => { /* retried by ioredis; publishing fails fast meanwhile */ })
    this.subscriber.connect().catch(() => { /* retried by ioredis */ })
  }

  /** Whether this replica hears the others now. */
  get listening (): boolean { return this.subscriber.status === 'ready' }

  /** Tells the other replicas; waits until Redis has it, at most PUBLISH_TIMEOUT_MS (then logs and goes on). */
  async publish (message: FleetMessage): Promise<void> {
    if (this.closing) return
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        this.publisher.publish(this.channel, JSON.stringify({ from: this.self, message })),
        new Promise((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`no answer within ${PUBLISH_TIMEOUT_MS} ms`)) }, PUBLISH_TIMEOUT_MS) })
      ])
    } catch (err) {
      this.options.log?.warn({ component: 'fleet', change: message.kind, err: err instanceof Error ? err.message : String(err) }, 'a change could not be told to the other replicas; they forget their caches when their connection to Redis is back, or at their TTL')
    } finally {
      clearTimeout(timer)
    }
  }

  /** publish() without waiting (the change feed: the other replicas need not have heard before it goes on). */
  tell (message: FleetMessage): void {
    this.publish(message).catch(() => { /* publish() logs its failures */ })
  }

  async close (): Promise<void> {
    this.closing = true
    await Promise.all([this.publisher, this.subscriber].map(async r => { await r.quit().catch(() => { r.disconnect() }) }))
  }

  private receive (text: string): void {
    if (text.length > MAX_MESSAGE_BYTES) return
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return
    }
    if (typeof parsed !== 'object' || parsed === null) return
    const { from, message } = parsed as { from?: unknown, message?: unknown }
    if (from === this.self || !isFleetMessage(message)) return
    this.options.onMessage(message)
  }
}

const isString = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString)

export function isFleetMessage (m: unknown): m is FleetMessage {
  if (typeof m !== 'object' || m === null) return false
  const r = m as Record<string, unknown>
  switch (r.kind) {
    case 'acl': return isString(r.workspaceId) && isString(r.objectType) && isString(r.objectId)
    case 'forget': return isString(r.tenantId) && isStrings(r.principals) && isStrings(r.groups)
    case 'forget-tenant': return isString(r.tenantId)
    default: return false
  }
}
