// A shared rate budget, as a client sees it (src/fleet/permits.ts serves it from Redis for a fleet of
// replicas): one permit per request, asked for before it is sent.
export type PermitPriority = 'interactive' | 'background'

export interface PermitSource {
  /** Whether permits can be asked for now (false: the client paces itself). */
  readonly available: boolean
  /** Resolves when this replica may send one request; rejects when the fleet cannot be asked. */
  request: (priority: PermitPriority) => Promise<void>
  /** No permit for `seconds`, on every replica (the upstream's Retry-After). */
  pause: (seconds: number) => void
}
