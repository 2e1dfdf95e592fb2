// Waiting for a BullMQ job to finish, whichever replica runs it: its own events (`completed:<id>`,
// `failed:<id>`, `progress:<id>`, which QueueEvents emits beside the queue-wide ones but does not type),
// and a look at the job every second, since an event can be missed (a QueueEvents that has not read its
// first batch yet, a reconnection) and a missed one must not leave a request waiting forever.
//
// Not BullMQ's waitUntilFinished(): with Redis gone, the check it makes inside an async promise executor
// fails as an unhandled rejection, which ends the process. Here a wait whose connection is lost ends at
// once (`lost`), and the caller decides what to do without Redis.
import type { EventEmitter } from 'node:events'
import { Job, type Queue, type QueueEvents } from 'bullmq'

export interface JobWatch {
  queue: Queue
  events: QueueEvents
  /** Waits to end when the connection to Redis is lost or the fleet closes: each adds its ender here while it waits. */
  lost: Set<() => void>
  /** What the job reports while it runs (its updateProgress data). */
  onProgress?: (data: unknown) => void
}

/** Thrown when a wait ends because the connection to Redis was lost (or the fleet closed): the job may still finish elsewhere. */
export class FleetConnectionLost extends Error {
  constructor () { super('the connection to Redis was lost') }
}

const POLL_MS = 1000

/** The job's return value once it has completed; rejects if it failed or the connection is lost. */
export async function completionOf (job: Job, watch: JobWatch): Promise<unknown> {
  const id = job.id ?? ''
  const events = watch.events as unknown as EventEmitter
  return await new Promise((resolve, reject) => {
    let settled = false
    const settle = (outcome: { value: unknown } | { error: Error }): void => {
      if (settled) return
      settled = true
      clearInterval(poll)
      events.off(`completed:${id}`, onCompleted)
      events.off(`failed:${id}`, onFailed)
      events.off(`progress:${id}`, onProgress)
      watch.lost.delete(lost)
      if ('error' in outcome) reject(outcome.error)
      else resolve(outcome.value)
    }
    const onCompleted = (args: { returnvalue?: unknown }): void => { settle({ value: args.returnvalue }) }
    const onFailed = (args: { failedReason?: string }): void => { settle({ error: new Error(args.failedReason ?? 'the job failed') }) }
    const onProgress = (args: { data?: unknown }): void => { watch.onProgress?.(args.data) }
    const lost = (): void => { settle({ error: new FleetConnectionLost() }) }
    const look = (): void => {
      Job.fromId(watch.queue, id).then(current => {
        if (current?.finishedOn === undefined) return
        if (current.failedReason !== undefined && current.failedReason !== '') settle({ error: new Error(current.failedReason) })
        else settle({ value: current.returnvalue })
      }, () => { /* Redis trouble: `lost` ends the wait */ })
    }
    const poll = setInterval(look, POLL_MS).unref()
    events.on(`completed:${id}`, onCompleted)
    events.on(`failed:${id}`, onFailed)
    events.on(`progress:${id}`, onProgress)
    watch.lost.add(lost)
    // It may have finished before anyone listened.
    look()
  })
}
