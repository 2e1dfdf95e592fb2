// The port of runs shared by the fleet (fleet/flights.ts implements it): what the use cases and adapters
// that share work across replicas (a sign-in, a group's create) see of it.

/** Runs shared by the fleet, one per key at a time. */
export interface SharedRuns<D, R> {
  /** false while Redis cannot be asked: the caller runs the work itself. */
  readonly available: boolean
  /**
   * The outcome of the run for `key`, joined or started with `data`. Rejects with the run's problem (an
   * error with `code` and `statusCode`, as the caller would have thrown it), or with anything else when
   * the fleet could not be asked or lost the run (the caller may run the work itself).
   */
  run: (key: string, data: D, onProgress?: (data: unknown) => void) => Promise<R>
}

/** Whether a shared run's rejection is its answer (a problem a caller sees), not the fleet failing. */
export function isProblem (err: unknown): boolean {
  const e = err as { code?: unknown, statusCode?: unknown } | undefined
  return typeof e?.code === 'string' && typeof e.statusCode === 'number'
}
