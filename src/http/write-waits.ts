// What a request waits for in Databricks' write lanes (target/write-scheduler.ts), so that a request past
// its deadline is told its place in the queue as its Retry-After (http/deadline.ts). Created only by a
// request that materializes (a login), never by a permission question.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Waits, type WriteContext } from '../target/write-scheduler.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** The write tickets this request waits on (set by writesOf). */
    writeWaits: Waits | undefined
  }
}

export function registerWriteWaits (app: FastifyInstance): void {
  app.decorateRequest('writeWaits', undefined)
}

/** The write context of an interactive request: its writes go first, and it learns how long they wait. */
export function writesOf (request: FastifyRequest): WriteContext {
  request.writeWaits ??= new Waits()
  return { priority: 'interactive', waiting: request.writeWaits }
}
