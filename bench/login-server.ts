// Child process of bench/login-throughput.ts: serves the warm login (the service against the emulators,
// demo tenant) and the bare-fastify baseline on two ports, and prints where, with a user token.
import { demoTenant, DEMO_ALICE_ID, DEMO_RESOLVER_APP_ID, DEMO_RESOLVER_SECRET } from '../emulators/tenant/demo.ts'
import { bareApp, startStack, userToken } from './lib/service.ts'

const stack = await startStack(demoTenant(), DEMO_RESOLVER_APP_ID, DEMO_RESOLVER_SECRET)
const serviceUrl = await stack.service.app.listen({ port: 0, host: '127.0.0.1' })
const token = await userToken(stack, DEMO_ALICE_ID)
// Warm the caches: the benchmark measures the warm path.
const warm = await fetch(`${serviceUrl}/v1/login`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
if (warm.status !== 200) throw new Error(`warm-up login failed: ${warm.status} ${await warm.text()}`)
const bare = bareApp(await warm.json())
const bareUrl = await bare.listen({ port: 0, host: '127.0.0.1' })
console.log(JSON.stringify({ serviceUrl, bareUrl, token, method: 'POST', path: '/v1/login' }))
process.on('SIGTERM', () => {
  Promise.all([stack.close(), bare.close()]).then(() => process.exit(0), () => process.exit(1))
})
