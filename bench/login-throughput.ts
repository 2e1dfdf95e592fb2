// Warm POST /v1/login against a bare fastify route returning the same body as a constant, in the same
// run, in two layouts (bench/lib/throughput.ts): both servers in one child process, and each process on its
// own as deployed (the service by src/server.ts). Goal: ≥ 0.6× the bare throughput, in both.
//   npx tsx bench/login-throughput.ts [seconds] [--layout=shared|separate|both] [--log-level=info]
import { DEMO_ALICE_ID } from '../emulators/tenant/demo.ts'
import { compareThroughput, throughputArgs } from './lib/throughput.ts'

await compareThroughput({
  name: 'login-throughput',
  label: 'POST /v1/login',
  server: new URL('./login-server.ts', import.meta.url),
  // As login-server.ts: the demo tenant, no Databricks account.
  deployed: { principalId: DEMO_ALICE_ID, method: 'POST', path: '/v1/login', bare: { url: '/v1/login', schema: 'Resolution' } },
  ...throughputArgs(),
  goal: 0.6
})
