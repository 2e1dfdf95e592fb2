// Several replicas of the service, each a child process running src/server.ts as an operator runs it,
// sharing one Redis under a key prefix of the test's own (not a test itself). Each replica listens on a
// free port and is stopped by its own handle; the prefix's keys are deleted when the test ends.
import type { Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Emulator } from '../../emulators/server.ts'
import { childEnv } from './child-env.ts'
import { T } from './tenant.ts'
import { SERVER_BUNDLE } from './server-bundle.ts'

export const REDIS_URL = 'redis://127.0.0.1:6379'

export interface Replica {
  name: string
  url: string
  child: ChildProcess
  /** Everything the replica printed (its log lines). */
  output: () => string
  /** SIGKILL, and its exit. */
  kill: () => Promise<void>
}

export interface Fleet {
  prefix: string
  redis: Redis
  replicas: Replica[]
}

/** `count` replicas of one deployment (one Redis, one prefix), with `env` on top of the Entra settings. */
export async function startFleet (t: Test, emulator: Emulator, count: number, env: Record<string, string> = {}): Promise<Fleet> {
  // Teardowns run last-registered first: the replicas stop before their keys go.
  const { prefix, redis } = redisPrefix(t)
  const replicas = await Promise.all(Array.from({ length: count }, async (_, i) => await startReplica(t, emulator, String.fromCharCode(65 + i), { REDIS_URL, REDIS_KEY_PREFIX: prefix, ...env })))
  return { prefix, redis, replicas }
}

/** A key prefix of the test's own on the real Redis, and a connection to it; its keys are deleted when the test ends. */
export function redisPrefix (t: Test): { prefix: string, redis: Redis } {
  const prefix = `jir-test:${randomUUID()}:`
  const redis = new Redis(REDIS_URL)
  t.teardown(async () => {
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })
  return { prefix, redis }
}

async function startReplica (t: Test, emulator: Emulator, name: string, env: Record<string, string>): Promise<Replica> {
  const child = spawn(process.execPath, [SERVER_BUNDLE], {
    env: childEnv({
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ENTRA_TENANT_ID: T.tenantId,
      ENTRA_CLIENT_ID: T.resolverAppId,
      ENTRA_CLIENT_SECRET: T.resolverSecret,
      ENTRA_AUTHORITY_HOST: emulator.origin,
      GRAPH_BASE_URL: `${emulator.origin}/v1.0`,
      UPSTREAM_CA_FILE: emulator.caPath,
      SYNC_ENABLED: 'false',
      // A loaded machine must not turn a slow correct answer into a 503 (deadline tests set their own).
      REQUEST_TIMEOUT_MS: '60000',
      UPSTREAM_TIMEOUT_MS: '10000',
      ...env
    }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  const exited = once(child, 'exit')
  let killed = false
  const kill = async (): Promise<void> => {
    killed = true
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  }
  // A replica that ended by itself crashed: the test fails with what it printed.
  t.teardown(async () => {
    const crashed = !killed && (child.exitCode !== null || child.signalCode !== null)
    await kill()
    if (crashed) throw new Error(`replica ${name} ended by itself (${String(child.exitCode ?? child.signalCode)}):\n${output.slice(-4000)}`)
  })
  const url = await until(`replica ${name} to listen`, () => {
    if (child.exitCode !== null) throw new Error(`replica ${name} exited with ${child.exitCode}:\n${output.slice(-4000)}`)
    return /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1]
  }, () => output)
  return { name, url, child, output: () => output, kill }
}

/** Polls until `check` answers something other than undefined (a generous bound: a loaded machine). */
export async function until<V> (what: string, check: () => V | undefined | Promise<V | undefined>, context?: () => string, ms = 120_000): Promise<V> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const value = await check()
    if (value !== undefined) return value
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${what}${context !== undefined ? `:\n${context().slice(-4000)}` : ''}`)
}

/**
 * When each request the emulator answers whose "METHOD route" `matches` arrived (the test's own emulator,
 * read in process), as it counts calls. Clear the array to start again.
 */
export function recordCalls (emulator: Emulator, matches: (route: string) => boolean): number[] {
  const times: number[] = []
  const calls = emulator.ctx.calls
  const count = calls.count.bind(calls)
  calls.count = (route: string) => {
    if (matches(route)) times.push(performance.now())
    count(route)
  }
  return times
}

/** The most of these times within any one second. */
export function busiestSecond (times: readonly number[]): number {
  const sorted = [...times].sort((a, b) => a - b)
  let most = 0
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while ((sorted[i] as number) - (sorted[j] as number) >= 1000) j++
    most = Math.max(most, i - j + 1)
  }
  return most
}
