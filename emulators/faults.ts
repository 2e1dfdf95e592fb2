// Fault injection (`POST /_emulator/faults`): latency, error statuses (429 storms with Retry-After, 503s),
// connection resets and hangs, per route pattern, optionally for a bounded number of requests.
import { randomUUID } from 'node:crypto'

export interface FaultSpec {
  /** Path pattern: `*` matches any run of characters; a pattern starting with `^` is a regular expression. */
  route: string
  /** Only this HTTP method (any when absent). */
  method?: string
  /** Answer with this status, in the error shape of the area the route belongs to. */
  status?: number
  /** `Retry-After` value to send with `status`: seconds (integer or fractional) or an HTTP date. */
  retryAfter?: number | string
  /** Delay before answering (or before the other effects). */
  latencyMs?: number
  /** Drop the connection without an answer. */
  reset?: boolean
  /** Never answer; the connection is closed after `hangMs` (default 60 s). */
  timeout?: boolean
  hangMs?: number
  /** Apply to this many matching requests, then stop matching (default: all of them). */
  times?: number
  /** Let this many matching requests through first. */
  skip?: number
}

export interface Fault extends FaultSpec {
  id: string
  matched: number
}

export class FaultInjector {
  private faults: Array<Fault & { test: RegExp }> = []

  add (spec: FaultSpec): Fault {
    const test = spec.route.startsWith('^')
      ? new RegExp(spec.route)
      : new RegExp('^' + spec.route.split('*').map(s => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$')
    const fault = { ...spec, id: randomUUID(), matched: 0, test }
    this.faults.push(fault)
    return this.public(fault)
  }

  list (): Fault[] {
    return this.faults.map(f => this.public(f))
  }

  remove (id?: string): number {
    const before = this.faults.length
    this.faults = id === undefined ? [] : this.faults.filter(f => f.id !== id)
    return before - this.faults.length
  }

  /** The fault that applies to this request, if any (counting it as used). */
  match (method: string, path: string): Fault | undefined {
    for (const f of this.faults) {
      if (f.method !== undefined && f.method.toUpperCase() !== method) continue
      if (!f.test.test(path)) continue
      f.matched += 1
      if (f.skip !== undefined && f.matched <= f.skip) return undefined
      if (f.times !== undefined && f.matched > (f.skip ?? 0) + f.times) continue
      return this.public(f)
    }
    return undefined
  }

  private public (f: Fault & { test?: RegExp }): Fault {
    const { test: _test, ...rest } = f
    return rest
  }
}
