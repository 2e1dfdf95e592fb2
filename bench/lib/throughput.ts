// A warm route against a bare fastify route answering the same body as a constant through the same
// response schema: both servers in one child process (`server`), autocannon in this one, two interleaved
// rounds per target (the better counts), so drift on a shared machine affects both alike.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import autocannon from 'autocannon'
import { writeResult } from './results.ts'

/** What a bench server prints as its first line. */
export interface ThroughputTargets {
  serviceUrl: string
  bareUrl: string
  token: string
  method: 'GET' | 'POST'
  /** The path (with its query) both servers answer. */
  path: string
}

interface Load { requestsPerSecond: number, p50Ms: number, p99Ms: number, errors: number, non2xx: number }

export async function compareThroughput (options: { name: string, label: string, server: URL, seconds: number, goal?: number }): Promise<void> {
  const connections = 50
  const child = spawn(process.execPath, ['--import', 'tsx', options.server.pathname], { stdio: ['ignore', 'pipe', 'inherit'] })
  const firstLine = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve)
    child.once('exit', code => reject(new Error(`bench server exited with ${String(code)}`)))
  })
  const targets = JSON.parse(firstLine) as ThroughputTargets

  const load = async (url: string): Promise<Load> => {
    const result = await autocannon({
      url: `${url}${targets.path}`,
      method: targets.method,
      headers: { authorization: `Bearer ${targets.token}` },
      connections,
      duration: options.seconds
    })
    return { requestsPerSecond: Math.round(result.requests.average), p50Ms: result.latency.p50, p99Ms: result.latency.p99, errors: result.errors, non2xx: result.non2xx }
  }
  const runs = { bare: [] as Load[], service: [] as Load[] }
  for (let i = 0; i < 2; i++) {
    runs.bare.push(await load(targets.bareUrl))
    runs.service.push(await load(targets.serviceUrl))
  }
  child.kill('SIGTERM')
  const best = (r: Load[]): Load => r.reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a))
  const bare = best(runs.bare)
  const service = best(runs.service)
  const ratio = Math.round(service.requestsPerSecond / bare.requestsPerSecond * 100) / 100

  writeResult(options.name, {
    setup: { seconds: options.seconds, connections, pipelining: 1, layout: 'servers in one child process, autocannon in the parent', baseline: `bare fastify route returning the warm ${options.label}'s body as a constant, same response schema` },
    bare,
    service,
    ratio,
    ...(options.goal !== undefined ? { goal: { ratio: options.goal, met: ratio >= options.goal && service.non2xx === 0 && service.errors === 0 } } : {})
  }, [
    ['bare fastify route (constant body)', `${bare.requestsPerSecond} req/s, p50 ${bare.p50Ms} ms, p99 ${bare.p99Ms} ms`],
    [`warm ${options.label}`, `${service.requestsPerSecond} req/s, p50 ${service.p50Ms} ms, p99 ${service.p99Ms} ms (non-2xx ${service.non2xx})`],
    [options.goal !== undefined ? `ratio (goal ≥ ${options.goal})` : 'ratio', String(ratio)]
  ])
}
