// The emulators' notion of time. Real time plus an offset that tests move forward through the control
// API, so token expiry, throttle windows and delta-token age are tested without sleeping.
export class EmulatorClock {
  private offsetMs = 0

  now (): number {
    return Date.now() + this.offsetMs
  }

  nowSeconds (): number {
    return Math.floor(this.now() / 1000)
  }

  advance (ms: number): void {
    this.offsetMs += ms
  }

  reset (): void {
    this.offsetMs = 0
  }

  get offset (): number {
    return this.offsetMs
  }
}
