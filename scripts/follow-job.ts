// Following a registration job, bounded: `npm run register` and `npm run demo` poll
// GET /v1/registrations/{id} until the job completes or fails, but never longer than a maximum wait (a
// poll still unanswered at that point is abandoned). Past it they stop with the job's id and how to go on
// following it; the job itself goes on in the service. Time and sleeping are injectable for the tests.
import { setTimeout as sleep } from 'node:timers/promises'

export interface FollowOptions<J> {
  /** The longest wait, in milliseconds, counted from the call. */
  maxWaitMs: number
  /** How long to wait between two polls, in milliseconds. */
  intervalMs: number
  /** Every state seen, the first one included. */
  onProgress?: (job: J) => void
  /** A monotonic clock in milliseconds (default `performance.now`). */
  now?: () => number
  sleep?: (ms: number) => Promise<void>
}

export type FollowResult<J> = { done: true, job: J } | { done: false, job: J, waitedMs: number }

/** A job is done when it completed or failed as a whole (failed principals do not end it early). */
export const isDone = (job: { status: string }): boolean => job.status === 'completed' || job.status === 'failed'

/**
 * Polls until the job is done or `maxWaitMs` has passed; with `maxWaitMs` 0 it only reports `first`.
 * `poll` gets a signal that aborts at the deadline (at least a second after the poll starts); a poll
 * aborted by it ends the wait, any other error is the caller's.
 */
export async function followJob<J extends { status: string }> (first: J, poll: (signal: AbortSignal) => Promise<J>, options: FollowOptions<J>): Promise<FollowResult<J>> {
  const now = options.now ?? (() => performance.now())
  const wait = options.sleep ?? (async (ms: number) => { await sleep(ms) })
  const start = now()
  const left = (): number => options.maxWaitMs - (now() - start)
  let job = first
  for (;;) {
    options.onProgress?.(job)
    if (isDone(job)) return { done: true, job }
    if (left() <= 0) return { done: false, job, waitedMs: now() - start }
    await wait(Math.max(0, Math.min(options.intervalMs, left())))
    const deadline = new AbortController()
    const timer = setTimeout(() => { deadline.abort(new Error('no answer within --max-wait')) }, Math.ceil(Math.max(left(), 1000)))
    try {
      job = await poll(deadline.signal)
    } catch (err) {
      if (deadline.signal.aborted) return { done: false, job, waitedMs: now() - start }
      throw err
    } finally {
      clearTimeout(timer)
    }
  }
}

/** A duration in seconds for a person: `90 s`, `10 min`, `1.5 h`. */
export function seconds (ms: number): string {
  const s = ms / 1000
  if (s < 120) return `${Number(s.toFixed(s < 10 ? 1 : 0))} s`
  if (s < 7200) return `${Number((s / 60).toFixed(1))} min`
  return `${Number((s / 3600).toFixed(1))} h`
}

/** A `--max-wait` value in seconds (fractions allowed, 0 = do not wait), or undefined when it is not one. */
export function parseMaxWait (value: string): number | undefined {
  if (!/^\d+(\.\d+)?$/.test(value.trim())) return undefined
  const s = Number(value)
  return Number.isFinite(s) ? s * 1000 : undefined
}
