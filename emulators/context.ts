// What every part of the emulators shares: the clock, the signing keys, the loaded tenants, the call
// counters, the fault injector, and who hears directory writes. Built once per emulator instance; routes
// read it at request time, so loading a new tenant through the control API takes effect on the next
// request.
import type { IncomingHttpHeaders } from 'node:http'
import type { EmulatorClock } from './clock.ts'
import type { KeyStore } from './sts/keys.ts'
import { Directory, type Change, type TenantFixture } from './tenant/model.ts'
import type { CallCounter } from './calls.ts'
import type { FaultInjector } from './faults.ts'
import type { NotificationHub } from './graph/notifications.ts'

/** How one area (Graph, STS, Databricks) shapes an error it did not produce itself (faults, 404s). */
export interface ErrorShape {
  prefix: RegExp
  shape: (status: number, code: string, message: string, requestId: string, requestHeaders: IncomingHttpHeaders) => { headers?: Record<string, string>, body: unknown }
}

export interface EmulatorSettings {
  /** Fixed access-token lifetime in seconds; unset means Entra's random 60–90 minutes. */
  tokenLifetimeSeconds?: number
}

export interface EmulatorContext {
  /** `https://host:port`, known once the server listens. */
  origin: string
  readonly clock: EmulatorClock
  readonly keys: KeyStore
  /** Loaded tenants by (lowercase) tenant id. */
  readonly tenants: Map<string, Directory>
  /** The tenant the control API acts on when a request names none: the first one loaded. */
  primaryTenantId: string
  readonly calls: CallCounter
  readonly faults: FaultInjector
  readonly settings: EmulatorSettings
  /** Request-URL rewrites applied before routing (Graph's tenant prefix and `(appId='…')` keys). */
  readonly rewriters: Array<(url: string) => string>
  readonly errorShapes: ErrorShape[]
  /** Hear every directory write of every tenant as it is made (Graph change notifications). */
  readonly directoryListeners: Set<(tenant: Directory, changes: Change[]) => void>
  /** The replication lag every tenant, loaded now or later, applies (`PUT /_emulator/graph/replication`). */
  replicationLagMs: number
  /** Graph's subscriptions and notification deliveries (set when the Graph routes are registered). */
  graphNotifications?: NotificationHub
}

/** A tenant built from a fixture, on the emulator clock, heard by the directory listeners, with the lag set. */
export function newDirectory (ctx: Pick<EmulatorContext, 'clock' | 'directoryListeners' | 'replicationLagMs'>, fixture: TenantFixture): Directory {
  const d: Directory = new Directory(fixture, () => ctx.clock.now(), changes => {
    // A listener's failure must not fail the write that was already made.
    for (const listener of ctx.directoryListeners) {
      try {
        listener(d, changes)
      } catch {}
    }
  })
  if (ctx.replicationLagMs > 0) d.setReplicationLag(ctx.replicationLagMs)
  return d
}

/** A tenant by id or verified domain, as the STS accepts either in its paths. */
export function findTenant (ctx: EmulatorContext, idOrDomain: string): Directory | undefined {
  const key = idOrDomain.toLowerCase()
  const byId = ctx.tenants.get(key)
  if (byId !== undefined) return byId
  for (const d of ctx.tenants.values()) if (d.domain.toLowerCase() === key) return d
  return undefined
}

export function primaryTenant (ctx: EmulatorContext): Directory {
  const d = ctx.tenants.get(ctx.primaryTenantId)
  if (d === undefined) throw new Error('no tenant is loaded')
  return d
}
