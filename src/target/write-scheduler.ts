// The Databricks write scheduler: who gets the next write when account SCIM's write budgets (PATCH 2/s,
// other writes 5/s) are the bottleneck. Without it a storm of new users queues behind a background job, a
// user with ten new groups makes every later user wait for all ten, and the caller learns nothing of its
// wait. One lane per endpoint family, each a token bucket (a burst of one second) that grants in order:
//
// - Priority first: interactive work (a login, a share, a permission answer) before background work (a
//   registration job, the change feed). The caller says which in a WriteContext passed down with the work
//   (explicitly, not through an AsyncLocalStorage: on Node 20 one makes every await of the process several
//   times slower, the warm path included); a ticket raised to interactive while it waits (an interactive
//   caller joined the work it is for) moves up.
// - Fair within a priority: owners (a principal's materialization) take turns, least recently served
//   first, FIFO within an owner. So one user's ten group creates do not hold up the next user's own create.
// - Bounded: a lane holds at most `maxQueued` waiting tickets; beyond that a write is refused at once with
//   TargetUnavailableError (throttled) and the lane's estimated wait, rather than queued for minutes.
// - A wait estimate per ticket ((tickets granted before it + 1) / rate), which a request past its deadline
//   turns into its Retry-After (`retryAfterSeconds`), so a caller learns its place in the queue.
// - `pause`: a 429 with Retry-After from Databricks empties the family's bucket until then, for everyone.
// - Several replicas (REDIS_URL): the tokens come from the fleet instead (`PermitSource`, one permit per
//   write, paced for all replicas together, src/fleet/permits.ts); everything above stays the lane's.
//   While the fleet cannot be asked, the lane paces itself at its share (`fallbackRatePerSecond`).
//
// Pure scheduling: no I/O, injected clock and timers, so tests and benches see every decision.
import { TargetUnavailableError } from './port.ts'
import type { PermitPriority, PermitSource } from '../upstream/permits.ts'

export type WritePriority = PermitPriority
export type WriteFamily = 'patch' | 'write'

/** Who a write is for and how urgent it is, passed down with the work that makes it. */
export interface WriteContext {
  priority: WritePriority
  /** Who the writes are for (a principal's materialization): the unit of fairness. */
  owner?: string
  /** What the caller waits on: its own tickets and the shared work it joined (its Retry-After). */
  waiting?: Waits
}

/** Tickets a piece of work waits on, and other work it waits for (a shared run, a membership batch). */
export class Waits {
  readonly tickets = new Set<Ticket>()
  readonly joined = new Set<Waits>()
  /** Work run by another replica (fleet/flights.ts): its last estimate, and when it came. */
  private elsewhere: { seconds: number, at: number } | undefined

  /** The estimate of work another replica runs for this caller (its latest report). */
  expectElsewhere (seconds: number): void {
    this.elsewhere = { seconds, at: performance.now() }
  }

  /** Seconds until everything waited on is expected to be granted (0: nothing waits). */
  etaSeconds (depth = 0): number {
    let seconds = this.elsewhere === undefined ? 0 : Math.max(0, this.elsewhere.seconds - (performance.now() - this.elsewhere.at) / 1000)
    for (const t of this.tickets) if (!t.settled) seconds = Math.max(seconds, t.lane.etaSeconds(t))
    if (depth < 8) for (const w of this.joined) seconds = Math.max(seconds, w.etaSeconds(depth + 1))
    return seconds
  }

  /** Lifts every waiting ticket to interactive. */
  raise (depth = 0): void {
    for (const t of this.tickets) t.lane.raise(t)
    if (depth < 8) for (const w of this.joined) w.raise(depth + 1)
  }
}

/** The context of background work (a registration job, the change feed), waiting on nothing tracked. */
export const BACKGROUND: WriteContext = Object.freeze({ priority: 'background' as const })

/**
 * Work several callers share (one principal's materialization): its writes are owned by `owner`, with the
 * priority of the most urgent caller. Each caller that joins waits on it (its Retry-After counts it), and an
 * interactive caller lifts a background run to interactive, tickets already waiting included.
 */
export class SharedWork {
  readonly ctx: WriteContext & { waiting: Waits }

  constructor (owner: string, caller?: WriteContext) {
    this.ctx = { priority: caller?.priority ?? 'interactive', owner, waiting: new Waits() }
    this.join(caller)
  }

  join (caller?: WriteContext): void {
    caller?.waiting?.joined.add(this.ctx.waiting)
    if ((caller?.priority ?? 'interactive') === 'interactive' && this.ctx.priority !== 'interactive') {
      this.ctx.priority = 'interactive'
      this.ctx.waiting.raise()
    }
  }
}

export function familyOf (method: string): WriteFamily | undefined {
  if (method === 'PATCH') return 'patch'
  if (method === 'POST' || method === 'PUT' || method === 'DELETE') return 'write'
  return undefined
}

export interface Ticket {
  readonly lane: WriteLane
  priority: WritePriority
  readonly owner: string
  readonly seq: number
  settled: boolean
  grant: () => void
  refuse: (err: Error) => void
}

export interface LaneObserver {
  /** A ticket was granted after waiting `waitedMs` (0: at once). */
  onGranted?: (family: WriteFamily, priority: WritePriority, waitedMs: number) => void
}

export interface WriteLaneOptions {
  family: WriteFamily
  ratePerSecond: number
  /** The fleet's permits; the lane's own bucket then paces only what the fleet cannot, at `fallbackRatePerSecond`. */
  permits?: PermitSource
  fallbackRatePerSecond?: number
  /** Waiting tickets at most (default 10,000). */
  maxQueued?: number
  now?: () => number
  observer?: LaneObserver
}

const RANK: Record<WritePriority, number> = { interactive: 0, background: 1 }

export class WriteLane {
  readonly family: WriteFamily
  readonly rate: number
  private readonly burst: number
  private readonly maxQueued: number
  private readonly now: () => number
  private readonly observer: LaneObserver | undefined
  private tokens: number
  private refilledAt: number
  /** Nothing is granted before this time (a Retry-After from Databricks). */
  private pausedUntil = 0
  private readonly queue: Ticket[] = []
  private readonly enqueuedAt = new WeakMap<Ticket, number>()
  /** owner → the grant number it was last served at (fairness: least recently served first). */
  private readonly served = new Map<string, number>()
  private grants = 0
  private seq = 0
  private timer: NodeJS.Timeout | undefined
  private readonly permits: PermitSource | undefined
  /** The lane's own bucket's rate: the budget, or with permits the replica's share when the fleet can't be asked. */
  private readonly localRate: number
  /** Permits the fleet gave that no ticket has taken yet. */
  private permitted = 0
  /** Tickets to be paced by the lane's own bucket (their permit could not be asked for). */
  private ownPaced = 0

  constructor (options: WriteLaneOptions) {
    if (!(options.ratePerSecond > 0 && Number.isFinite(options.ratePerSecond))) throw new TypeError(`${options.family}: ratePerSecond must be a positive number.`)
    this.family = options.family
    this.rate = options.ratePerSecond
    this.permits = options.permits
    this.localRate = options.permits !== undefined ? Math.min(options.fallbackRatePerSecond ?? options.ratePerSecond, options.ratePerSecond) : options.ratePerSecond
    if (!(this.localRate > 0)) throw new TypeError(`${options.family}: fallbackRatePerSecond must be a positive number.`)
    // Half a second's burst, not Databricks' whole second: a lane that spent a full burst would pace at
    // exactly the limit with Databricks' bucket empty, and every bit of network jitter would be a 429.
    this.burst = Math.max(1, Math.floor(this.localRate / 2))
    this.maxQueued = options.maxQueued ?? 10_000
    this.now = options.now ?? Date.now
    this.observer = options.observer
    this.tokens = this.burst
    this.refilledAt = this.now()
  }

  /** Waits for a write token of this family, in the lane's order (no context: interactive, untracked). */
  async take (ctx?: WriteContext): Promise<void> {
    const priority = ctx?.priority ?? 'interactive'
    this.refill()
    if (this.permits === undefined && this.queue.length === 0 && this.tokens >= 1 && this.now() >= this.pausedUntil) {
      this.tokens -= 1
      this.observer?.onGranted?.(this.family, priority, 0)
      return
    }
    if (this.queue.length >= this.maxQueued) {
      const wait = Math.ceil((this.queue.length + 1) / this.rate)
      throw new TargetUnavailableError(`Databricks' ${this.family === 'patch' ? 'PATCH' : 'write'} budget is booked ${wait} s ahead (${this.queue.length} writes waiting): retry later.`, wait, { throttled: true })
    }
    await new Promise<void>((resolve, reject) => {
      const ticket: Ticket = {
        lane: this,
        priority,
        owner: ctx?.owner ?? `anonymous:${this.seq}`,
        seq: this.seq++,
        settled: false,
        grant: () => { ticket.settled = true; ctx?.waiting?.tickets.delete(ticket); resolve() },
        refuse: err => { ticket.settled = true; ctx?.waiting?.tickets.delete(ticket); reject(err) }
      }
      this.enqueuedAt.set(ticket, this.now())
      this.queue.push(ticket)
      ctx?.waiting?.tickets.add(ticket)
      if (this.permits !== undefined) this.askFleet(priority)
      else this.schedule()
    })
  }

  /** One permit from the fleet for one waiting ticket (the lane's best when it comes); paced here if the fleet can't be asked. */
  private askFleet (priority: WritePriority): void {
    const permits = this.permits as PermitSource
    const ownPace = (): void => { this.ownPaced += 1; this.schedule() }
    if (!permits.available) { ownPace(); return }
    permits.request(priority).then(() => { this.permitted += 1; this.drain() }, ownPace)
  }

  /** Moves a waiting ticket up to interactive (an interactive request joined the work it is for). */
  raise (ticket: Ticket): void {
    if (!ticket.settled) ticket.priority = 'interactive'
  }

  /** Databricks said to wait: no token of this family before `seconds` from now. */
  pause (seconds: number): void {
    if (!(seconds > 0)) return
    this.pausedUntil = Math.max(this.pausedUntil, this.now() + seconds * 1000)
    this.tokens = 0
    this.refilledAt = this.now()
    this.permits?.pause(seconds)
    this.schedule()
  }

  /** Waiting tickets, by priority. */
  depth (): Record<WritePriority, number> {
    const out = { interactive: 0, background: 0 }
    for (const t of this.queue) out[t.priority]++
    return out
  }

  /**
   * When this waiting ticket should be granted, in seconds from now: the tickets picked before it (all of
   * higher priority, those of its priority enqueued earlier) at the lane's rate, after any pause.
   */
  etaSeconds (ticket: Ticket): number {
    let ahead = 0
    for (const t of this.queue) {
      if (t === ticket) continue
      if (RANK[t.priority] < RANK[ticket.priority] || (t.priority === ticket.priority && t.seq < ticket.seq)) ahead++
    }
    const paused = Math.max(0, this.pausedUntil - this.now()) / 1000
    return paused + (ahead + 1) / this.rate
  }

  close (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    for (const t of this.queue.splice(0)) t.refuse(new TargetUnavailableError('The service is shutting down.', 1))
  }

  private refill (): void {
    const now = this.now()
    if (now < this.pausedUntil) return
    const from = Math.max(this.refilledAt, this.pausedUntil)
    this.tokens = Math.min(this.burst, this.tokens + ((now - from) / 1000) * this.localRate)
    this.refilledAt = now
  }

  /** Tickets the lane's own bucket may grant: all of them, or with permits those the fleet could not pace. */
  private get ownPacedWaiting (): number {
    return this.permits === undefined ? this.queue.length : Math.min(this.ownPaced, this.queue.length)
  }

  private schedule (): void {
    if (this.timer !== undefined || this.ownPacedWaiting === 0) return
    this.refill()
    const now = this.now()
    const delay = now < this.pausedUntil ? this.pausedUntil - now : this.tokens >= 1 ? 0 : ((1 - this.tokens) / this.localRate) * 1000
    this.timer = setTimeout(() => { this.timer = undefined; this.drain() }, Math.ceil(delay))
  }

  private drain (): void {
    // The fleet's permits first (already paced for every replica), then the lane's own bucket.
    while (this.queue.length > 0 && this.permitted > 0) {
      this.permitted -= 1
      this.grantNext()
    }
    this.refill()
    while (this.ownPacedWaiting > 0 && this.tokens >= 1 && this.now() >= this.pausedUntil) {
      this.tokens -= 1
      if (this.permits !== undefined) this.ownPaced -= 1
      this.grantNext()
    }
    // A permit or a pacing credit nobody waits for any more (its ticket was refused) is not kept for later.
    if (this.queue.length === 0) { this.permitted = 0; this.ownPaced = 0 }
    this.schedule()
  }

  private grantNext (): void {
    const [ticket] = this.queue.splice(this.pick(), 1) as [Ticket]
    this.served.set(ticket.owner, ++this.grants)
    if (this.served.size > 4 * this.maxQueued) this.served.clear()
    this.observer?.onGranted?.(this.family, ticket.priority, this.now() - (this.enqueuedAt.get(ticket) ?? this.now()))
    ticket.grant()
  }

  /** The next ticket: highest priority, then the owner served least recently, then FIFO. */
  private pick (): number {
    let best = 0
    for (let i = 1; i < this.queue.length; i++) {
      const a = this.queue[i] as Ticket
      const b = this.queue[best] as Ticket
      const rank = RANK[a.priority] - RANK[b.priority]
      if (rank !== 0) { if (rank < 0) best = i; continue }
      const served = (this.served.get(a.owner) ?? 0) - (this.served.get(b.owner) ?? 0)
      if (served !== 0) { if (served < 0) best = i; continue }
      if (a.seq < b.seq) best = i
    }
    return best
  }
}

/** Both families' lanes (a family without a budget has no lane: its writes are not paced). */
export class WriteScheduler {
  readonly lanes: Partial<Record<WriteFamily, WriteLane>>

  constructor (options: { budgets: Partial<Record<WriteFamily, number>>, maxQueued?: number, now?: () => number, observer?: LaneObserver, fleet?: { permits: Partial<Record<WriteFamily, PermitSource>>, replicas: number } }) {
    const lanes: Partial<Record<WriteFamily, WriteLane>> = {}
    for (const family of ['patch', 'write'] as const) {
      const rate = options.budgets[family]
      if (rate === undefined) continue
      const permits = options.fleet?.permits[family]
      lanes[family] = new WriteLane({
        family,
        ratePerSecond: rate,
        ...permits !== undefined ? { permits, fallbackRatePerSecond: rate / Math.max(1, options.fleet?.replicas ?? 1) } : {},
        ...options.maxQueued !== undefined ? { maxQueued: options.maxQueued } : {},
        ...options.now !== undefined ? { now: options.now } : {},
        ...options.observer !== undefined ? { observer: options.observer } : {}
      })
    }
    this.lanes = lanes
  }

  async take (method: string, ctx?: WriteContext): Promise<void> {
    const family = familyOf(method)
    if (family !== undefined) await this.lanes[family]?.take(ctx)
  }

  pause (method: string, seconds: number): void {
    const family = familyOf(method)
    if (family !== undefined) this.lanes[family]?.pause(seconds)
  }

  close (): void {
    for (const lane of Object.values(this.lanes)) lane.close()
  }
}
