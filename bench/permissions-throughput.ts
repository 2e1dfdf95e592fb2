// Warm GET /v1/permissions/{type}/{id} (another principal, through nested groups and a folder grant;
// ACL, assignments, group names and the principal's groups all cached) against a bare fastify route
// returning the same body. No goal is set: it is recorded to watch; the question is evaluated twice (may
// the caller ask? then the answer), so it costs more than a warm login.
//   npx tsx bench/permissions-throughput.ts [seconds]
import { compareThroughput } from './lib/throughput.ts'

await compareThroughput({ name: 'permissions-throughput', label: 'GET /v1/permissions', server: new URL('./permissions-server.ts', import.meta.url), seconds: Number(process.argv[2] ?? 10) })
