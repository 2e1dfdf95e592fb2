// Start-up as an operator meets it (issue 11): a port that is taken is one line naming the variable to
// change and exit 1, not a stack; a Redis that cannot be reached is one structured log line (not one per
// reconnection attempt, nothing printed by ioredis) and a 503 readiness naming redis.
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type Server } from 'node:net'
import { childEnv } from '../helpers/child-env.ts'
import { SERVER_BUNDLE } from '../helpers/server-bundle.ts'

function start (env: Record<string, string>): { child: ReturnType<typeof spawn>, output: () => string, stdout: () => string } {
  const child = spawn(process.execPath, [SERVER_BUNDLE], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let stdout = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); stdout += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  return { child, output: () => out, stdout: () => stdout }
}

/** Resolves as soon as the output matches; bounded generously (it costs nothing when things are fast). */
async function waitFor (pattern: RegExp, output: () => string, ms = 120_000): Promise<RegExpMatchArray> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    const m = pattern.exec(output())
    if (m !== null) return m
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${String(pattern)}; output so far:\n${output()}`)
}

/** A port some other process holds for the length of the test. */
async function takenPort (t: Test): Promise<number> {
  const server: Server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const address = server.address()
  return typeof address === 'object' && address !== null ? address.port : 0
}

t.test('PORT taken: one line naming PORT, exit 1', async t => {
  const port = await takenPort(t)
  const { child, output } = start({ PORT: String(port), EMULATORS_PORT: '0', LOG_LEVEL: 'warn', REGISTRATIONS_DIR: t.testdir() })
  t.teardown(() => { child.kill('SIGKILL') })
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 1)
  t.match(output(), new RegExp(`Cannot start the service: port ${port} on 127\\.0\\.0\\.1 is already in use: set PORT to a free port`))
  t.notMatch(output(), /^\s+at /m, 'no stack')
  t.notMatch(output(), /EADDRINUSE/)
})

t.test('EMULATORS_PORT taken (local mode): the line names EMULATORS_PORT', async t => {
  const port = await takenPort(t)
  const { child, output } = start({ PORT: '0', EMULATORS_PORT: String(port), LOG_LEVEL: 'warn' })
  t.teardown(() => { child.kill('SIGKILL') })
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 1)
  t.match(output(), new RegExp(`Cannot start the emulators: port ${port} on 127\\.0\\.0\\.1 is already in use: set EMULATORS_PORT to a free port`))
  t.notMatch(output(), /^\s+at /m, 'no stack')
})

t.test('Redis unreachable: one structured line, /readyz degraded naming redis (the replica stays in service), no ioredis noise, no stack', async t => {
  // A port nobody listens on: taken, then released.
  const closed = createServer().listen(0, '127.0.0.1')
  await once(closed, 'listening')
  const address = closed.address()
  const redisPort = typeof address === 'object' && address !== null ? address.port : 0
  await new Promise(resolve => closed.close(resolve))

  const { child, output, stdout } = start({ PORT: '0', EMULATORS_PORT: '0', LOG_LEVEL: 'info', REDIS_URL: `redis://127.0.0.1:${redisPort}` })
  t.teardown(() => { child.kill('SIGKILL') })
  const [, url] = await waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/, output)

  // Until Redis has been away long enough for ioredis to have tried again and again (many times a second at first).
  let ready: { status?: string, checks?: Record<string, string> } = {}
  for (;;) {
    const res = await fetch(`${url ?? ''}/readyz`)
    t.equal(res.status, 200, 'still ready: every replica shares Redis, so its absence must not take them all out')
    ready = await res.json() as typeof ready
    if (Number(/unreachable for (\d+) s/.exec(ready.checks?.redis ?? '')?.[1] ?? 0) >= 3) break
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  t.match(ready, { status: 'degraded', checks: { 'entra-signing-keys': 'ok', redis: /unreachable for \d+ s \(ECONNREFUSED\)/, fleet: /not hearing the other replicas/ } })

  child.kill('SIGTERM')
  await once(child, 'exit')
  t.notMatch(output(), /\[ioredis\]|Unhandled error event/, 'ioredis prints nothing')
  const lines = stdout().split('\n').filter(l => l.trim() !== '')
  const notJson = lines.filter(l => { try { JSON.parse(l); return false } catch { return true } })
  t.same(notJson, [], 'every stdout line is a JSON log line')
  const logs = lines.map(l => JSON.parse(l) as { level: number, msg: string, component?: string, redis?: string, reason?: string, code?: string, err?: unknown })
  const redis = logs.filter(l => l.component === 'redis')
  t.equal(redis.length, 1, 'one line for the one change')
  t.match(redis[0], { level: 40, redis: 'unreachable', reason: 'ECONNREFUSED', msg: /Redis unreachable/ })
  t.same(logs.filter(l => l.code === 'NOT_READY'), [], 'a degraded probe is an answer, not a failure to log')
  t.same(logs.filter(l => l.level >= 50), [], 'nothing at error')
  t.notMatch(stdout(), /"stack"/, 'no stack anywhere')
})
