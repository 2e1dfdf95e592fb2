// Per-route call counts (`GET /_emulator/calls`): how tests prove that a cache saved an upstream call.
export class CallCounter {
  private readonly counts = new Map<string, number>()

  /** `route` is the route pattern, e.g. `GET /v1.0/users/:id/transitiveMemberOf`. */
  count (route: string): void {
    this.counts.set(route, (this.counts.get(route) ?? 0) + 1)
  }

  snapshot (): { total: number, routes: Record<string, number> } {
    const routes = Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)))
    return { total: [...this.counts.values()].reduce((a, b) => a + b, 0), routes }
  }

  reset (): void {
    this.counts.clear()
  }
}
