// A login hook as the storm benches model it: POST /v1/login over HTTP, and after a 503 again once its
// Retry-After has passed, until it gets in. A connection reset is counted and retried at once.
import { setTimeout as sleep } from 'node:timers/promises'

export interface Access {
  /** From the first attempt to the 200. */
  ms: number
  attempts: number
  resets: number
}

export async function signIn (api: string, token: string): Promise<Access> {
  const started = performance.now()
  let resets = 0
  for (let attempt = 1; ; attempt++) {
    let res: Response
    try {
      res = await fetch(`${api}/v1/login`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
    } catch {
      resets++
      continue
    }
    const body = await res.text()
    if (res.status === 200) return { ms: performance.now() - started, attempts: attempt, resets }
    if (res.status !== 503) throw new Error(`login: ${res.status} ${body}`)
    await sleep(Number(res.headers.get('retry-after') ?? '1') * 1000)
  }
}
