// Warm POST /v1/login against a bare fastify route returning a constant, in the same run and process
// layout: both servers in one child process, autocannon in this one. Goal: ≥ 0.6× the bare throughput.
//   npx tsx bench/login-throughput.ts [seconds]
import { compareThroughput } from './lib/throughput.ts'

await compareThroughput({ name: 'login-throughput', label: 'POST /v1/login', server: new URL('./login-server.ts', import.meta.url), seconds: Number(process.argv[2] ?? 10), goal: 0.6 })
