// Child process of bench/healthz-under-load.ts: the service against the emulators (demo tenant, no
// Databricks account: the refused requests never get that far), and tokens of a user without any app role
// and of an automation app with Identity.Admin. Over IPC it reports this process's event-loop delay since
// the last reset: what a stalled loop costs every request, whatever the client measures.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { demoTenant, DEMO_ALICE_ID, DEMO_ETL_SP_ID, DEMO_RESOLVER_APP_ID, DEMO_RESOLVER_SECRET } from '../emulators/tenant/demo.ts'
import { startStack, userToken } from './lib/service.ts'

const stack = await startStack(demoTenant(), DEMO_RESOLVER_APP_ID, DEMO_RESOLVER_SECRET)
const serviceUrl = await stack.service.app.listen({ port: 0, host: '127.0.0.1' })
const userTokenValue = await userToken(stack, DEMO_ALICE_ID)
const res = await fetch(`${stack.emulator.origin}/_emulator/tokens`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ tenantId: stack.tenantId, principalId: DEMO_ETL_SP_ID, audience: `api://${stack.resolverAppId}`, claims: { roles: ['Identity.Admin'] } })
})
const { access_token: adminToken } = await res.json() as { access_token: string }
const loop = monitorEventLoopDelay({ resolution: 10 })
loop.enable()
process.on('message', (message) => {
  if (message === 'reset') loop.reset()
  const ms = (ns: number): number => Math.round(ns / 1e4) / 100
  process.send?.({ p50Ms: ms(loop.percentile(50)), p99Ms: ms(loop.percentile(99)), maxMs: ms(loop.max) })
})
console.log(JSON.stringify({ serviceUrl, userToken: userTokenValue, adminToken }))
process.on('SIGTERM', () => {
  stack.close().then(() => process.exit(0), () => process.exit(1))
})
