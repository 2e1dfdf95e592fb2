// Time is injected: caches, token expiry and throttling read this, so tests move time instead of sleeping.
export interface Clock {
  /** Milliseconds since the epoch. */
  now: () => number
}

export const systemClock: Clock = { now: () => Date.now() }
