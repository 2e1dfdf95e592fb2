// The emulators' notion of time. Real time plus an offset that tests move forward through the control
// API, so token expiry, throttle windows, delta-token age, deleted-item retention, subscription expiry
// and notification retries are tested without sleeping. Whoever schedules work by this clock listens
// for moves (`onMove`): a jump forward makes due at once what real time would have made due later.
export class EmulatorClock {
  private offsetMs = 0
  private readonly listeners = new Set<() => void>()

  now (): number {
    return Date.now() + this.offsetMs
  }

  nowSeconds (): number {
    return Math.floor(this.now() / 1000)
  }

  advance (ms: number): void {
    this.offsetMs += ms
    this.moved()
  }

  reset (): void {
    this.offsetMs = 0
    this.moved()
  }

  get offset (): number {
    return this.offsetMs
  }

  /** Calls `listener` after each advance or reset; returns the function that stops it. */
  onMove (listener: () => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  private moved (): void {
    for (const listener of [...this.listeners]) listener()
  }
}
