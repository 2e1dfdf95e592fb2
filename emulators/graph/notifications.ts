// Change notifications for users and groups (spec §2.7, freshness §A): the subscriptions Graph holds,
// the validation handshake, and the delivery of notifications to webhooks over real HTTP(S).
//
// Every directory write is heard as it is made (before any replication lag, so a notification can
// arrive before delta shows the change, as Graph's processing delays allow). Each write becomes, per
// matching subscription, one POST `{ value: [notification…] }` to its notificationUrl: creation, update
// and soft delete are `updated`, a permanent delete is `deleted`, a membership change is an `updated`
// group notification whose resourceData carries `members@delta`. A reply that is not 2xx, or slower
// than 3 s, is retried with exponential backoff by the emulator clock for up to 4 hours. A
// `reauthorizationRequired` lifecycle notification goes to lifecycleNotificationUrl once a subscription
// is within a window of its expiry. Knobs (control API) delay, drop, duplicate and reorder deliveries.
//
// Deliveries to one URL go one at a time, oldest due first, so tests can tell the order; delays and
// retries are scheduled on the emulator clock (a jump of the clock makes them due at once).
import { EventEmitter } from 'node:events'
import { randomUUID } from 'node:crypto'
import { rootCertificates } from 'node:tls'
import { Agent, request } from 'undici'
import type { EmulatorClock } from '../clock.ts'
import type { Change, Directory } from '../tenant/model.ts'

/** The longest a user or group subscription may last: 41,760 minutes (under 29 days). */
export const MAX_EXPIRATION_MS = 41_760 * 60_000
/** Shorter expirations are raised to 45 minutes. */
export const MIN_EXPIRATION_MS = 45 * 60_000
/** Subscriptions per application and tenant (users and groups); more get 403. */
export const QUOTA_PER_APP_AND_TENANT = 100
/** Subscriptions per tenant, all applications together. */
export const QUOTA_PER_TENANT = 1000
export const MAX_CLIENT_STATE = 128

export type ChangeType = 'updated' | 'deleted'

export interface Subscription {
  id: string
  tenantId: string
  /** The creating application (the throttling and quota scope). */
  applicationId: string
  /** The service principal (app-only) or user (delegated) that created it. */
  creatorId: string
  /** As given, e.g. `/users` or `groups/{id}/members`. */
  resource: string
  target: { set: 'users' | 'groups', id: string | null, members: boolean }
  changeType: string
  changeTypes: ReadonlySet<ChangeType>
  notificationUrl: string
  lifecycleNotificationUrl: string | null
  clientState: string | null
  latestSupportedTlsVersion: string
  expiresAt: number
  /** The expiration a reauthorizationRequired was sent (or made unnecessary) for. */
  reauthorizedFor: number | null
}

export interface NotificationKnobs {
  /** Seconds (emulator clock) between a write and the first delivery attempt. */
  delaySeconds: number
  /** Probability (0–1) that a change delivery is dropped: never sent. */
  dropRate: number
  /** Drop the next N change deliveries. */
  dropNext: number
  /** Probability (0–1) that a change delivery is sent twice (the copy after the first succeeds). */
  duplicateRate: number
  /** Send the next N change deliveries twice. */
  duplicateNext: number
  /** When above 1: hold change deliveries until this many wait, then release them newest first. */
  reorderWindow: number
  /** First retry after this many seconds; each later one waits twice as long. */
  retryBaseSeconds: number
  /** Retrying stops this many seconds after the first attempt (Graph: 4 hours). */
  retryForSeconds: number
  /** A webhook that has not answered within this many milliseconds (real time) failed the attempt. */
  responseTimeoutMs: number
  /** The validation handshake's time limit in milliseconds (real time). */
  validationTimeoutMs: number
  /** reauthorizationRequired is sent once a subscription expires within this many seconds. */
  reauthorizationWindowSeconds: number
  /**
   * The shape of `members@delta` in group notifications. [UNCONF] Graph does not document it:
   * `observed` is what a third-party sample parses (`{ id }`, removals `"@removed": "deleted"`);
   * `delta` is the delta query's (`{ "@odata.type", id }`, `"@removed": { reason: "deleted" }`).
   */
  membersDelta: 'observed' | 'delta'
  /** Seed of the random draws for dropRate and duplicateRate. */
  seed: number
}

export const DEFAULT_KNOBS: Readonly<NotificationKnobs> = {
  delaySeconds: 0,
  dropRate: 0,
  dropNext: 0,
  duplicateRate: 0,
  duplicateNext: 0,
  reorderWindow: 0,
  retryBaseSeconds: 1,
  retryForSeconds: 4 * 3600,
  responseTimeoutMs: 3000,
  validationTimeoutMs: 10_000,
  // [UNCONF] Graph does not say how long before expiry; 15 minutes fits inside the 45-minute minimum.
  reauthorizationWindowSeconds: 900,
  membersDelta: 'observed',
  seed: 1
}

export type DeliveryState = 'held' | 'pending' | 'sending' | 'delivered' | 'dropped' | 'gave-up'

export interface Delivery {
  id: string
  kind: 'change' | 'lifecycle'
  subscriptionId: string
  url: string
  /** The JSON body sent (the same for retries and duplicates). */
  payload: { value: Array<Record<string, unknown>> }
  state: DeliveryState
  /** Emulator-clock time of the next attempt. */
  dueAt: number
  firstAttemptAt: number | null
  attempts: number
  /** HTTP status, or an error name (`timeout`, `ECONNREFUSED`…), per attempt. */
  outcomes: Array<number | string>
  /** Further copies to send after a success (the duplicate knob). */
  copies: number
  seq: number
}

/** What the hub tells listeners (tests wait on these instead of sleeping). */
export interface NotificationEvents {
  /** A delivery was queued (or dropped at once). */
  queued: [Delivery]
  attempt: [Delivery, number | string]
  delivered: [Delivery]
  dropped: [Delivery]
  'gave-up': [Delivery]
}

const iso7 = (ms: number): string => new Date(ms).toISOString().replace(/Z$/, '0000Z')

/** The ISO form Graph gives `expirationDateTime`: seven fractional digits. */
export const expirationString = iso7

/** A small seeded generator (mulberry32): rate knobs are reproducible. */
function random (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export class ValidationFailed extends Error {}

/** Deliveries kept for `GET /_emulator/graph/notifications`, newest last. */
const LOG_SIZE = 1000

export class NotificationHub extends EventEmitter<NotificationEvents> {
  readonly subscriptions = new Map<string, Subscription>()
  private knobs: NotificationKnobs = { ...DEFAULT_KNOBS }
  private rand = random(DEFAULT_KNOBS.seed)
  private readonly queue: Delivery[] = []
  private held: Delivery[] = []
  private readonly log: Delivery[] = []
  private readonly sending = new Set<string>()
  private readonly inFlight = new Set<AbortController>()
  private timer: NodeJS.Timeout | undefined
  private seq = 0
  private closed = false
  private readonly agent: Agent
  private readonly stopClock: () => void

  constructor (private readonly clock: EmulatorClock, ca: string) {
    super()
    // The emulators' own CA (webhooks in tests use its certificates) and the public roots.
    this.agent = new Agent({ connect: { ca: [...rootCertificates, ca] }, keepAliveTimeout: 1000 })
    this.stopClock = clock.onMove(() => { this.pump() })
  }

  // ---- knobs ----------------------------------------------------------------------------------------

  get settings (): NotificationKnobs {
    return { ...this.knobs }
  }

  configure (patch: Partial<NotificationKnobs>): NotificationKnobs {
    this.knobs = { ...this.knobs, ...patch }
    if (patch.seed !== undefined) this.rand = random(patch.seed)
    if (this.knobs.reorderWindow <= 1) this.release()
    this.pump()
    return this.settings
  }

  /** Default knobs; waiting and held deliveries are cancelled (one being sent finishes) and the log cleared. */
  reset (): NotificationKnobs {
    this.knobs = { ...DEFAULT_KNOBS }
    this.rand = random(DEFAULT_KNOBS.seed)
    this.held = []
    for (const d of this.queue.splice(0)) if (d.state === 'sending') this.queue.push(d)
    this.log.splice(0)
    this.pump()
    return this.settings
  }

  /** Releases held deliveries and makes every waiting one due now. */
  flush (): void {
    this.release()
    const now = this.clock.now()
    for (const d of this.queue) if (d.state === 'pending') d.dueAt = Math.min(d.dueAt, now)
    this.pump()
  }

  snapshot (): Record<string, unknown> {
    const count = (state: DeliveryState): number => this.log.filter(d => d.state === state).length
    return {
      settings: this.settings,
      stats: {
        queued: this.queue.filter(d => d.state === 'pending' || d.state === 'sending').length,
        held: this.held.length,
        delivered: count('delivered'),
        dropped: count('dropped'),
        gaveUp: count('gave-up'),
        failedAttempts: this.log.reduce((n, d) => n + d.outcomes.filter(o => typeof o !== 'number' || o < 200 || o > 299).length, 0)
      },
      subscriptions: [...this.subscriptions.values()].map(s => ({ ...publicSubscription(s), tenantId: s.tenantId })),
      deliveries: this.log.map(d => ({
        id: d.id,
        kind: d.kind,
        subscriptionId: d.subscriptionId,
        url: d.url,
        state: d.state,
        attempts: d.attempts,
        outcomes: d.outcomes,
        dueAt: new Date(d.dueAt).toISOString(),
        notifications: d.payload.value.map(n => n.id ?? n.lifecycleEvent)
      }))
    }
  }

  // ---- subscriptions -------------------------------------------------------------------------------

  /** Active subscriptions (expired ones are removed on the way). */
  active (): Subscription[] {
    const now = this.clock.now()
    for (const [id, s] of this.subscriptions) if (s.expiresAt <= now) this.subscriptions.delete(id)
    return [...this.subscriptions.values()]
  }

  get (id: string): Subscription | undefined {
    return this.active().find(s => s.id === id.toLowerCase())
  }

  /**
   * Graph's validation handshake: POST `{url}?validationToken=…` and expect 200, `text/plain`, and the
   * decoded token as the body, within the time limit.
   */
  async validate (url: string): Promise<void> {
    // [UNCONF] The wording of the token, from what endpoints receive in practice; clients must treat it
    // as opaque and echo it decoded.
    const token = `Validation: Testing client application reachability for subscription Request-Id: ${randomUUID()}`
    const target = new URL(url)
    target.searchParams.set('validationToken', token)
    const abort = new AbortController()
    this.inFlight.add(abort)
    try {
      const res = await request(target, {
        method: 'POST',
        dispatcher: this.agent,
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        body: '',
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(this.knobs.validationTimeoutMs)])
      })
      const text = await res.body.text()
      const type = String(res.headers['content-type'] ?? '')
      if (res.statusCode !== 200) throw new ValidationFailed(`Notification endpoint must respond with 200 OK to validation request (it answered ${res.statusCode}).`)
      if (!/^text\/plain/i.test(type)) throw new ValidationFailed('Notification endpoint must respond with Content-Type text/plain to validation request.')
      if (text !== token) throw new ValidationFailed('Response must exactly match validationToken query parameter.')
    } catch (err) {
      if (err instanceof ValidationFailed) throw err
      const name = (err as { name?: string }).name
      throw new ValidationFailed(name === 'TimeoutError' || name === 'AbortError'
        ? `Notification endpoint did not respond to the validation request within ${this.knobs.validationTimeoutMs} ms.`
        : `Notification endpoint could not be reached: ${(err as Error).message}.`)
    } finally {
      this.inFlight.delete(abort)
    }
  }

  add (s: Subscription): void {
    this.subscriptions.set(s.id, s)
    this.pump()
  }

  remove (id: string): boolean {
    return this.subscriptions.delete(id.toLowerCase())
  }

  /** A renewal re-arms reauthorizationRequired for the new expiration. */
  renew (s: Subscription, expiresAt: number): void {
    s.expiresAt = expiresAt
    this.pump()
  }

  /** `POST /subscriptions/{id}/reauthorize`: no reauthorizationRequired is owed for this expiration. */
  reauthorize (s: Subscription): void {
    s.reauthorizedFor = s.expiresAt
  }

  // ---- change notifications -------------------------------------------------------------------------

  /** Hears one directory write of `tenant`. */
  onDirectoryChange (tenant: Directory, changes: Change[]): void {
    if (this.closed) return
    const subs = this.active().filter(s => s.tenantId === tenant.tenantId)
    if (subs.length === 0) return
    const objects = summarize(changes)
    for (const s of subs) {
      const value: Array<Record<string, unknown>> = []
      for (const o of objects) {
        if (!matches(s, o)) continue
        value.push(this.notification(s, tenant.tenantId, o))
      }
      if (value.length > 0) this.enqueue('change', s, s.notificationUrl, { value })
    }
  }

  private notification (s: Subscription, tenantId: string, o: ObjectChange): Record<string, unknown> {
    const set = o.kind === 'user' ? 'Users' : 'Groups'
    const resourceData: Record<string, unknown> = {
      '@odata.type': o.kind === 'user' ? '#Microsoft.Graph.User' : '#Microsoft.Graph.Group',
      '@odata.id': `${set}/${o.id}`,
      id: o.id,
      // [UNCONF] Seen in real user and group notifications, not in the payload reference.
      organizationId: tenantId
    }
    if (o.members.size > 0 && o.changeType === 'updated') {
      resourceData['members@delta'] = [...o.members].map(([id, m]) => this.knobs.membersDelta === 'delta'
        ? { '@odata.type': `#microsoft.graph.${m.kind}`, id, ...(m.added ? {} : { '@removed': { reason: 'deleted' } }) }
        : { id, ...(m.added ? {} : { '@removed': 'deleted' }) })
    }
    return {
      id: randomUUID(),
      subscriptionId: s.id,
      subscriptionExpirationDateTime: iso7(s.expiresAt),
      clientState: s.clientState,
      changeType: o.changeType,
      resource: `${set}/${o.id}`,
      tenantId,
      resourceData
    }
  }

  private enqueue (kind: Delivery['kind'], s: Subscription, url: string, payload: Delivery['payload']): void {
    const now = this.clock.now()
    const d: Delivery = {
      id: randomUUID(),
      kind,
      subscriptionId: s.id,
      url,
      payload,
      state: 'pending',
      dueAt: now + this.knobs.delaySeconds * 1000,
      firstAttemptAt: null,
      attempts: 0,
      outcomes: [],
      copies: 0,
      seq: ++this.seq
    }
    this.remember(d)
    if (kind === 'change') {
      if (this.knobs.dropNext > 0 || (this.knobs.dropRate > 0 && this.rand() < this.knobs.dropRate)) {
        if (this.knobs.dropNext > 0) this.knobs.dropNext -= 1
        d.state = 'dropped'
        this.emit('queued', d)
        this.emit('dropped', d)
        return
      }
      if (this.knobs.duplicateNext > 0 || (this.knobs.duplicateRate > 0 && this.rand() < this.knobs.duplicateRate)) {
        if (this.knobs.duplicateNext > 0) this.knobs.duplicateNext -= 1
        d.copies = 1
      }
      if (this.knobs.reorderWindow > 1) {
        d.state = 'held'
        this.held.push(d)
        this.emit('queued', d)
        if (this.held.length >= this.knobs.reorderWindow) this.release()
        return
      }
    }
    this.queue.push(d)
    this.emit('queued', d)
    this.pump()
  }

  /** Held deliveries go out newest first, each as if queued now. */
  private release (): void {
    if (this.held.length === 0) return
    const released = this.held.reverse()
    this.held = []
    const now = this.clock.now()
    for (const d of released) {
      d.state = 'pending'
      d.dueAt = Math.max(d.dueAt, now)
      d.seq = ++this.seq
      this.queue.push(d)
    }
    this.pump()
  }

  private remember (d: Delivery): void {
    this.log.push(d)
    if (this.log.length > LOG_SIZE) this.log.splice(0, this.log.length - LOG_SIZE)
  }

  // ---- lifecycle ----------------------------------------------------------------------------------

  /** Queues reauthorizationRequired for subscriptions now within the window of their expiry. */
  private lifecycle (now: number): void {
    const window = this.knobs.reauthorizationWindowSeconds * 1000
    for (const s of this.active()) {
      if (s.lifecycleNotificationUrl === null || s.reauthorizedFor === s.expiresAt || now < s.expiresAt - window) continue
      s.reauthorizedFor = s.expiresAt
      this.enqueue('lifecycle', s, s.lifecycleNotificationUrl, {
        value: [{
          subscriptionId: s.id,
          subscriptionExpirationDateTime: iso7(s.expiresAt),
          tenantId: s.tenantId,
          clientState: s.clientState,
          lifecycleEvent: 'reauthorizationRequired'
        }]
      })
    }
  }

  // ---- delivery -----------------------------------------------------------------------------------

  /** Sends what is due (one delivery at a time per URL) and sets a timer for what falls due later. */
  private pump (): void {
    if (this.closed) return
    const now = this.clock.now()
    this.lifecycle(now)
    const due = this.queue
      .filter(d => d.state === 'pending' && d.dueAt <= now && !this.sending.has(d.url))
      .sort((a, b) => a.dueAt - b.dueAt || a.seq - b.seq)
    for (const d of due) {
      if (this.sending.has(d.url)) continue
      this.send(d).catch(() => {})
    }
    this.schedule(now)
  }

  private schedule (now: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    const window = this.knobs.reauthorizationWindowSeconds * 1000
    const times = [
      ...this.queue.filter(d => d.state === 'pending' && d.dueAt > now).map(d => d.dueAt),
      ...[...this.subscriptions.values()]
        .filter(s => s.lifecycleNotificationUrl !== null && s.reauthorizedFor !== s.expiresAt)
        .map(s => s.expiresAt - window)
        .filter(t => t > now)
    ]
    if (times.length === 0) return
    const wait = Math.min(Math.max(0, Math.min(...times) - now), 2 ** 31 - 1)
    this.timer = setTimeout(() => { this.timer = undefined; this.pump() }, wait)
    this.timer.unref()
  }

  private async send (d: Delivery): Promise<void> {
    d.state = 'sending'
    this.sending.add(d.url)
    d.attempts += 1
    d.firstAttemptAt ??= this.clock.now()
    const abort = new AbortController()
    this.inFlight.add(abort)
    let outcome: number | string
    try {
      const res = await request(d.url, {
        method: 'POST',
        dispatcher: this.agent,
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify(d.payload),
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(this.knobs.responseTimeoutMs)])
      })
      await res.body.dump()
      outcome = res.statusCode
    } catch (err) {
      const e = err as { name?: string, code?: string }
      outcome = e.name === 'TimeoutError' ? 'timeout' : e.code ?? e.name ?? 'error'
    } finally {
      this.inFlight.delete(abort)
      this.sending.delete(d.url)
    }
    if (this.closed) return
    d.outcomes.push(outcome)
    this.emit('attempt', d, outcome)
    const now = this.clock.now()
    if (typeof outcome === 'number' && outcome >= 200 && outcome <= 299) {
      if (d.copies > 0) {
        d.copies -= 1
        d.state = 'pending'
        d.dueAt = now
        this.emit('delivered', d)
      } else {
        d.state = 'delivered'
        this.removeFromQueue(d)
        this.emit('delivered', d)
      }
    } else {
      const next = now + this.knobs.retryBaseSeconds * 1000 * 2 ** (d.attempts - 1)
      if (next - (d.firstAttemptAt ?? now) > this.knobs.retryForSeconds * 1000) {
        // The next retry would fall outside the retry period: the notification is lost.
        d.state = 'gave-up'
        this.removeFromQueue(d)
        this.emit('gave-up', d)
      } else {
        d.state = 'pending'
        d.dueAt = next
      }
    }
    this.pump()
  }

  private removeFromQueue (d: Delivery): void {
    const i = this.queue.indexOf(d)
    if (i >= 0) this.queue.splice(i, 1)
  }

  async close (): Promise<void> {
    this.closed = true
    this.stopClock()
    if (this.timer !== undefined) clearTimeout(this.timer)
    for (const abort of this.inFlight) abort.abort()
    await this.agent.destroy()
  }
}

// ---- what a write changed, per object ---------------------------------------------------------------

interface ObjectChange {
  kind: 'user' | 'group'
  id: string
  changeType: ChangeType
  /** Only a membership change (no property change, creation or deletion). */
  membersOnly: boolean
  members: Map<string, { added: boolean, kind: string }>
}

/** One entry per user or group a write touched, in the order first touched. */
function summarize (changes: Change[]): ObjectChange[] {
  const out = new Map<string, ObjectChange>()
  for (const c of changes) {
    if (c.kind === 'servicePrincipal') continue
    let o = out.get(c.id)
    if (o === undefined) out.set(c.id, (o = { kind: c.kind, id: c.id, changeType: 'updated', membersOnly: true, members: new Map() }))
    if (c.op === 'member-added' || c.op === 'member-removed') {
      o.members.set(c.memberId, { added: c.op === 'member-added', kind: c.memberKind })
      continue
    }
    o.membersOnly = false
    // Creation, update and soft delete are `updated`; a permanent delete is `deleted` (a restore after it
    // cannot happen: the id is gone).
    o.changeType = c.op === 'deleted' ? 'deleted' : 'updated'
  }
  return [...out.values()]
}

function matches (s: Subscription, o: ObjectChange): boolean {
  if (!s.changeTypes.has(o.changeType)) return false
  const { set, id, members } = s.target
  if ((set === 'users') !== (o.kind === 'user')) return false
  if (id !== null && id !== o.id) return false
  // [UNCONF] `/groups/{id}/members` hears membership changes and the group's deletion, not renames.
  if (members && o.membersOnly === false && o.changeType === 'updated' && o.members.size === 0) return false
  return true
}

/** The subscription as Graph returns it. */
export function publicSubscription (s: Subscription): Record<string, unknown> {
  return {
    id: s.id,
    resource: s.resource,
    applicationId: s.applicationId,
    changeType: s.changeType,
    clientState: s.clientState,
    notificationUrl: s.notificationUrl,
    notificationQueryOptions: null,
    lifecycleNotificationUrl: s.lifecycleNotificationUrl,
    expirationDateTime: iso7(s.expiresAt),
    creatorId: s.creatorId,
    includeResourceData: false,
    latestSupportedTlsVersion: s.latestSupportedTlsVersion,
    encryptionCertificate: null,
    encryptionCertificateId: null,
    notificationUrlAppId: null
  }
}
