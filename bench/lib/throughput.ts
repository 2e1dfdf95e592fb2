// A warm route against a bare fastify route answering the same body as a constant through the same
// response schema, in three layouts:
// - shared: both servers in one child process (`server`, with the emulators), autocannon in this one;
// - separate processes (deployed.ts): emulators, service (src/server.ts, production defaults) and baseline
//   each in a process of its own, autocannon in this one — as a user deploys the service;
// - redis: the same with REDIS_URL set (the local Redis, a key prefix of its own), as one of several
//   replicas runs: the coordination between replicas must cost the warm path nothing measurable.
// Each target gets two interleaved rounds (the better counts), so drift on a shared machine affects both
// alike. Besides requests a second, the CPU time each server's process spent per request (Linux
// /proc/<pid>/stat, all its threads): less sensitive to what else runs on the machine than throughput,
// which the machine's load (recorded with the results) moves a lot.
//   npx tsx bench/<name>-throughput.ts [seconds] [--layout=shared|separate|redis|all] [--log-level=info]
import { execFileSync, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { createInterface } from 'node:readline'
import { isDeepStrictEqual } from 'node:util'
import autocannon from 'autocannon'
import { writeResult } from './results.ts'
import { startDeployed, type DeployedSetup } from './deployed.ts'

/** What a bench server prints as its first line. */
export interface ThroughputTargets {
  serviceUrl: string
  bareUrl: string
  token: string
  method: 'GET' | 'POST'
  /** The path (with its query) both servers answer. */
  path: string
}

type Layout = 'shared' | 'separate' | 'redis'
const LAYOUTS: Layout[] = ['shared', 'separate', 'redis']
/** The Redis the `redis` layout's service uses (BENCH_REDIS_URL, else the local one). */
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
interface Load { requestsPerSecond: number, p50Ms: number, p99Ms: number, errors: number, non2xx: number, cpuMicrosPerRequest?: number }
interface Compared { bare: Load, service: Load, ratio: number, cpuRatio?: number }

const CONNECTIONS = 50

/**
 * `[seconds] [--layout=shared|separate|redis|all] [--log-level=info]` (default: 10 s, every layout, the
 * separate services logging at their default level, info: one line per request).
 */
export function throughputArgs (argv = process.argv.slice(2)): { seconds: number, layouts: Layout[], logLevel: string } {
  let seconds = 10
  let layouts: Layout[] = LAYOUTS
  let logLevel = 'info'
  for (const arg of argv) {
    const layout = /^--layout=(shared|separate|redis|all)$/.exec(arg)?.[1]
    const level = /^--log-level=(fatal|error|warn|info|debug|trace|silent)$/.exec(arg)?.[1]
    if (layout !== undefined) layouts = layout === 'all' ? LAYOUTS : [layout as Layout]
    else if (level !== undefined) logLevel = level
    else if (/^\d+$/.test(arg)) seconds = Number(arg)
    else throw new Error(`unknown argument ${arg}: [seconds] [--layout=shared|separate|redis|all] [--log-level=info]`)
  }
  return { seconds, layouts, logLevel }
}

export async function compareThroughput (options: { name: string, label: string, server: URL, deployed: DeployedSetup, seconds: number, layouts: Layout[], logLevel: string, goal?: number }): Promise<void> {
  const load1 = loadavg()[0] as number
  const results: Partial<Record<Layout, Compared>> = {}
  let sharedBody: unknown
  if (options.layouts.includes('shared')) {
    const child = spawn(process.execPath, ['--import', 'tsx', options.server.pathname], { stdio: ['ignore', 'pipe', 'inherit'] })
    const firstLine = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', resolve)
      child.once('exit', code => reject(new Error(`bench server exited with ${String(code)}`)))
    })
    const targets = JSON.parse(firstLine) as ThroughputTargets
    sharedBody = await fetch(`${targets.bareUrl}${targets.path}`, { method: targets.method }).then(async r => await r.json())
    try {
      results.shared = await compare(targets, { bare: child.pid, service: child.pid }, options.seconds)
    } finally {
      child.kill('SIGTERM')
    }
  }
  for (const layout of (['separate', 'redis'] as const).filter(l => options.layouts.includes(l))) {
    const prefix = `jir-bench:${randomUUID()}:`
    const redis: Record<string, string> = layout === 'redis' ? { REDIS_URL, REDIS_KEY_PREFIX: prefix } : {}
    const deployed = await startDeployed({ ...options.deployed, serviceEnv: origin => ({ LOG_LEVEL: options.logLevel, ...redis, ...options.deployed.serviceEnv?.(origin) }) })
    try {
      if (sharedBody !== undefined && !isDeepStrictEqual(sharedBody, deployed.body)) throw new Error('the layouts answer different bodies: they would not measure the same question')
      results[layout] = await compare({ ...deployed, method: options.deployed.method, path: options.deployed.path }, deployed.pids, options.seconds)
    } finally {
      await deployed.close()
      if (layout === 'redis') await dropKeys(prefix)
    }
  }
  const load2 = loadavg()[0] as number

  const met = (c: Compared | undefined): boolean => c === undefined || (c.ratio >= (options.goal ?? 0) && c.service.non2xx === 0 && c.service.errors === 0)
  const rows: Array<[string, string]> = []
  const describe = (prefix: string, c: Compared): void => {
    rows.push(
      [`${prefix}bare fastify route (constant body)`, `${c.bare.requestsPerSecond} req/s, p50 ${c.bare.p50Ms} ms, p99 ${c.bare.p99Ms} ms${cpu(c.bare)}`],
      [`${prefix}warm ${options.label}`, `${c.service.requestsPerSecond} req/s, p50 ${c.service.p50Ms} ms, p99 ${c.service.p99Ms} ms${cpu(c.service)} (non-2xx ${c.service.non2xx})`],
      [`${prefix}${options.goal !== undefined ? `ratio (goal ≥ ${options.goal})` : 'ratio'}`, `${c.ratio}${c.cpuRatio !== undefined ? ` (CPU per request: ${c.cpuRatio})` : ''}`]
    )
  }
  if (results.shared !== undefined) describe('', results.shared)
  const level = options.logLevel === 'info' ? '' : `, LOG_LEVEL ${options.logLevel}`
  if (results.separate !== undefined) describe(`separate processes${level === '' ? '' : ` (${level.slice(2)})`}: `, results.separate)
  if (results.redis !== undefined) {
    describe(`separate processes, REDIS_URL set${level}: `, results.redis)
    if (results.separate !== undefined) rows.push(['REDIS_URL set vs unset (warm requests a second; CPU per request)', `${round2(results.redis.service.requestsPerSecond / results.separate.service.requestsPerSecond)}×; ${results.redis.service.cpuMicrosPerRequest ?? '?'} µs vs ${results.separate.service.cpuMicrosPerRequest ?? '?'} µs`])
  }
  rows.push(['machine load (1-minute average, start → end)', `${load1.toFixed(2)} → ${load2.toFixed(2)}`])

  writeResult(options.name, {
    setup: {
      seconds: options.seconds,
      connections: CONNECTIONS,
      pipelining: 1,
      layouts: {
        shared: 'both servers (and the emulators) in one child process, autocannon in the parent',
        separate: `emulators, service (src/server.ts, production defaults${options.logLevel === 'info' ? ' — LOG_LEVEL info' : ` but LOG_LEVEL ${options.logLevel}`} — its log lines to /dev/null) and bare route each in its own process, autocannon in the parent`,
        redis: 'as separate, the service with REDIS_URL set (a replica of a fleet: its channel, write permits and job store in Redis)'
      },
      baseline: `bare fastify route returning the warm ${options.label}'s body as a constant, same response schema`,
      cpu: 'CPU time (user + system, all threads) of the server\'s process per request, from /proc/<pid>/stat; the ratio is bare ÷ service',
      loadAverage1m: { start: load1, end: load2 }
    },
    ...results,
    ...(options.goal !== undefined ? { goal: { ratio: options.goal, met: met(results.shared) && met(results.separate) && met(results.redis) } } : {})
  }, rows)
}

/** Two interleaved rounds per target; the better of each. */
async function compare (targets: ThroughputTargets, pids: { bare?: number, service?: number }, seconds: number): Promise<Compared> {
  const runs = { bare: [] as Load[], service: [] as Load[] }
  for (let i = 0; i < 2; i++) {
    runs.bare.push(await load(targets, targets.bareUrl, pids.bare, seconds))
    runs.service.push(await load(targets, targets.serviceUrl, pids.service, seconds))
  }
  const best = (r: Load[]): Load => r.reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a))
  const leanest = (r: Load[]): number | undefined => r.every(l => l.cpuMicrosPerRequest !== undefined) ? Math.min(...r.map(l => l.cpuMicrosPerRequest as number)) : undefined
  const bare = best(runs.bare)
  const service = best(runs.service)
  const [bareCpu, serviceCpu] = [leanest(runs.bare), leanest(runs.service)]
  return {
    bare: { ...bare, ...(bareCpu !== undefined ? { cpuMicrosPerRequest: bareCpu } : {}) },
    service: { ...service, ...(serviceCpu !== undefined ? { cpuMicrosPerRequest: serviceCpu } : {}) },
    ratio: round2(service.requestsPerSecond / bare.requestsPerSecond),
    ...(bareCpu !== undefined && serviceCpu !== undefined ? { cpuRatio: round2(bareCpu / serviceCpu) } : {})
  }
}

async function load (targets: ThroughputTargets, url: string, pid: number | undefined, seconds: number): Promise<Load> {
  const before = cpuMicros(pid)
  const result = await autocannon({
    url: `${url}${targets.path}`,
    method: targets.method,
    headers: { authorization: `Bearer ${targets.token}` },
    connections: CONNECTIONS,
    duration: seconds
  })
  const after = cpuMicros(pid)
  const requests = result.requests.total
  return {
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
    ...(before !== undefined && after !== undefined && requests > 0 ? { cpuMicrosPerRequest: Math.round((after - before) / requests * 10) / 10 } : {})
  }
}

/** The keys the `redis` layout's service made. */
async function dropKeys (prefix: string): Promise<void> {
  const { Redis } = await import('ioredis')
  const redis = new Redis(REDIS_URL)
  try {
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
  } finally {
    redis.disconnect()
  }
}

let ticksPerSecond: number | undefined
/** CPU time (user + system, µs) the process has used so far; undefined where /proc is not there. */
function cpuMicros (pid: number | undefined): number | undefined {
  if (pid === undefined || !existsSync(`/proc/${pid}/stat`)) return undefined
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  // Fields after the command name (which may hold spaces): state is the 3rd field, utime the 14th, stime the 15th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond * 1e6
}

function cpu (l: Load): string {
  return l.cpuMicrosPerRequest !== undefined ? `, ${l.cpuMicrosPerRequest} µs CPU per request` : ''
}

function round2 (n: number): number {
  return Math.round(n * 100) / 100
}
