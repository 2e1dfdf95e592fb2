// GET /healthz latency (p50/p99 of back-to-back requests on one keep-alive connection) alone, and while
// four connections keep posting 4 MB deeply nested bodies to POST /v1/registrations: as a signed-in user
// without Identity.Admin (refused by the onRequest hooks before the body is read), and as an admin (refused
// by the body limit, or with a body just under it by the depth check, before JSON.parse). The service runs
// in a child process (bench/healthz-server.ts), the clients here; the child also reports its own event-loop
// delay per phase (the clients share the machine's cores, so the latency seen here includes their work).
// No goal: recorded to watch; the question is whether a caller can stall the event loop, so compare each
// row with the `alone` one.
//   npx tsx bench/healthz-under-load.ts [seconds per phase]
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { Client } from 'undici'
import { writeResult } from './lib/results.ts'
import { REGISTRATION_BODY_LIMIT } from '../src/http/registration-routes.ts'

const seconds = Number(process.argv[2] ?? 10)
const ATTACKERS = 4

const child = spawn(process.execPath, ['--import', 'tsx', new URL('./healthz-server.ts', import.meta.url).pathname], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
const stdout = child.stdout
if (stdout === null) throw new Error('no stdout from the bench server')
const firstLine = await new Promise<string>((resolve, reject) => {
  createInterface({ input: stdout }).once('line', resolve)
  child.once('exit', code => reject(new Error(`bench server exited with ${String(code)}`)))
})
const { serviceUrl, userToken, adminToken } = JSON.parse(firstLine) as { serviceUrl: string, userToken: string, adminToken: string }

/** `{"principals":[[[…]]]}` of `bytes` bytes: nothing but nesting. */
const nested = (bytes: number): Buffer => {
  const depth = Math.floor((bytes - '{"principals":}'.length) / 2)
  return Buffer.from(`{"principals":${'['.repeat(depth)}${']'.repeat(depth)}}`)
}
const MB4 = nested(4 * 1024 * 1024)
const UNDER_LIMIT = nested(REGISTRATION_BODY_LIMIT - 16)

interface LoopDelay { p50Ms: number, p99Ms: number, maxMs: number }
interface Latency { requests: number, p50Ms: number, p99Ms: number, maxMs: number, serverLoopDelay: LoopDelay }

/** The child's event-loop delay since the last call (`reset`), or now. */
async function loopDelay (message: 'reset' | 'read'): Promise<LoopDelay> {
  const answer = new Promise<LoopDelay>(resolve => child.once('message', m => { resolve(m as LoopDelay) }))
  child.send(message)
  return await answer
}
interface Attack { posted: number, statuses: Record<string, number>, errors: number }

const quantile = (sorted: number[], q: number): number => Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) * 100) / 100

/** Back-to-back GET /healthz for `seconds`, one connection. */
async function probe (): Promise<Latency> {
  const client = new Client(serviceUrl, { pipelining: 1 })
  const samples: number[] = []
  await loopDelay('reset')
  const end = performance.now() + seconds * 1000
  while (performance.now() < end) {
    const started = performance.now()
    const res = await client.request({ method: 'GET', path: '/healthz' })
    await res.body.text()
    if (res.statusCode !== 200) throw new Error(`/healthz answered ${res.statusCode}`)
    samples.push(performance.now() - started)
  }
  const serverLoopDelay = await loopDelay('read')
  await client.close()
  samples.sort((a, b) => a - b)
  return { requests: samples.length, p50Ms: quantile(samples, 0.5), p99Ms: quantile(samples, 0.99), maxMs: quantile(samples, 1), serverLoopDelay }
}

/** `ATTACKERS` connections posting `body` to /v1/registrations until `until.stopped`. */
async function attack (body: Buffer, token: string, until: { stopped: boolean }): Promise<Attack> {
  const result: Attack = { posted: 0, statuses: {}, errors: 0 }
  const one = async (): Promise<void> => {
    let client = new Client(serviceUrl, { pipelining: 1 })
    while (!until.stopped) {
      try {
        const res = await client.request({ method: 'POST', path: '/v1/registrations', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body })
        await res.body.text()
        result.posted += 1
        result.statuses[res.statusCode] = (result.statuses[res.statusCode] ?? 0) + 1
      } catch {
        // The service may close a connection whose body it refused unread; open another.
        result.errors += 1
        await client.destroy()
        client = new Client(serviceUrl, { pipelining: 1 })
      }
    }
    await client.close()
  }
  await Promise.all(Array.from({ length: ATTACKERS }, one))
  return result
}

async function underAttack (body: Buffer, token: string): Promise<Latency & { attack: Attack }> {
  const until = { stopped: false }
  const attacking = attack(body, token, until)
  await new Promise(resolve => setTimeout(resolve, 200)) // the bodies are in flight
  const latency = await probe()
  until.stopped = true
  return { ...latency, attack: await attacking }
}

await probe() // warm-up: connections, JIT
const alone = await probe()
const nonAdmin = await underAttack(MB4, userToken)
const adminOverLimit = await underAttack(MB4, adminToken)
const adminUnderLimit = await underAttack(UNDER_LIMIT, adminToken)
child.kill('SIGTERM')

const describe = (l: Latency): string => `p50 ${l.p50Ms} ms, p99 ${l.p99Ms} ms, max ${l.maxMs} ms (${l.requests} requests); server event-loop delay p99 ${l.serverLoopDelay.p99Ms} ms, max ${l.serverLoopDelay.maxMs} ms`
const attacked = (l: Latency & { attack: Attack }): string =>
  `${describe(l)}; ${l.attack.posted} bodies answered ${Object.entries(l.attack.statuses).map(([s, n]) => `${n}× ${s}`).join(', ')}${l.attack.errors > 0 ? `, ${l.attack.errors} connection errors` : ''}`
writeResult('healthz-under-load', {
  setup: { secondsPerPhase: seconds, attackers: ATTACKERS, bodyBytes: { fourMB: MB4.length, underLimit: UNDER_LIMIT.length }, layout: 'service and emulators in one child process, clients in the parent' },
  alone,
  nonAdmin4MB: nonAdmin,
  admin4MB: adminOverLimit,
  adminUnderLimit
}, [
  ['GET /healthz alone', describe(alone)],
  [`… while ${ATTACKERS} non-admins post 4 MB nested bodies`, attacked(nonAdmin)],
  [`… while ${ATTACKERS} admins post 4 MB nested bodies`, attacked(adminOverLimit)],
  [`… while ${ATTACKERS} admins post ${(UNDER_LIMIT.length / 1024 / 1024).toFixed(2)} MiB nested bodies`, attacked(adminUnderLimit)]
])
process.exit(0)
