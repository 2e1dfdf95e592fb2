// Warm POST /v1/login against a bare fastify route returning a constant, in the same run and process
// layout: both servers in one child process, autocannon in this one. Goal: ≥ 0.6× the bare throughput.
//   npx tsx bench/login-throughput.ts [seconds]
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import autocannon from 'autocannon'
import { writeResult } from './lib/results.ts'

const seconds = Number(process.argv[2] ?? 10)
const connections = 50

const child = spawn(process.execPath, ['--import', 'tsx', new URL('./login-server.ts', import.meta.url).pathname], { stdio: ['ignore', 'pipe', 'inherit'] })
const firstLine = await new Promise<string>((resolve, reject) => {
  createInterface({ input: child.stdout }).once('line', resolve)
  child.once('exit', code => reject(new Error(`bench server exited with ${String(code)}`)))
})
const { serviceUrl, bareUrl, token } = JSON.parse(firstLine) as { serviceUrl: string, bareUrl: string, token: string }

async function load (url: string): Promise<{ requestsPerSecond: number, p50Ms: number, p99Ms: number, errors: number, non2xx: number }> {
  const result = await autocannon({
    url: `${url}/v1/login`,
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    connections,
    duration: seconds
  })
  return { requestsPerSecond: Math.round(result.requests.average), p50Ms: result.latency.p50, p99Ms: result.latency.p99, errors: result.errors, non2xx: result.non2xx }
}

// Each target twice, interleaved, so drift on a shared machine affects both alike; the better run counts.
const runs = { bare: [] as Awaited<ReturnType<typeof load>>[], service: [] as Awaited<ReturnType<typeof load>>[] }
for (let i = 0; i < 2; i++) {
  runs.bare.push(await load(bareUrl))
  runs.service.push(await load(serviceUrl))
}
child.kill('SIGTERM')
const best = (r: typeof runs.bare): Awaited<ReturnType<typeof load>> => r.reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a))
const bare = best(runs.bare)
const service = best(runs.service)
const ratio = Math.round(service.requestsPerSecond / bare.requestsPerSecond * 100) / 100

writeResult('login-throughput', {
  setup: { seconds, connections, pipelining: 1, layout: 'servers in one child process, autocannon in the parent', baseline: 'bare fastify route returning the warm login\'s body as a constant, same response schema' },
  bare,
  service,
  ratio,
  goal: { ratio: 0.6, met: ratio >= 0.6 && service.non2xx === 0 && service.errors === 0 }
}, [
  ['bare fastify route (constant body)', `${bare.requestsPerSecond} req/s, p50 ${bare.p50Ms} ms, p99 ${bare.p99Ms} ms`],
  ['warm POST /v1/login', `${service.requestsPerSecond} req/s, p50 ${service.p50Ms} ms, p99 ${service.p99Ms} ms (non-2xx ${service.non2xx})`],
  ['ratio (goal ≥ 0.6)', String(ratio)]
])
