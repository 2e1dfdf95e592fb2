// Warm GET /v1/permissions/{type}/{id} (another principal, through nested groups and a folder grant;
// ACL, assignments, group names and the principal's groups all cached) against a bare fastify route
// returning the same body, in two layouts (bench/lib/throughput.ts): both servers in one child process,
// and each process on its own as deployed (the service by src/server.ts). The question is decided twice
// (may the caller ask? then the answer); warm, both answers are remembered (src/resolver/answer-cache.ts).
// Goal (issue 13): ≥ 0.6× the bare throughput, in both layouts.
//   npx tsx bench/permissions-throughput.ts [seconds] [--layout=shared|separate|both] [--log-level=info]
import { DEFAULT_ACCOUNT_ID } from '../emulators/databricks/account.ts'
import { DEMO_DASHBOARD } from '../emulators/databricks/demo-workspace.ts'
import { DEMO_ALICE_ID, DEMO_DOMAIN } from '../emulators/tenant/demo.ts'
import { compareThroughput, throughputArgs } from './lib/throughput.ts'

await compareThroughput({
  name: 'permissions-throughput',
  label: 'GET /v1/permissions',
  server: new URL('./permissions-server.ts', import.meta.url),
  // As permissions-server.ts: the walk-through's question (alice asks what bob can do on the demo
  // dashboard), against the emulators' demo workspace, the ACL cached for an hour.
  deployed: {
    emulatorsEnv: { EMULATORS_DEMO_WORKSPACE: 'true' },
    serviceEnv: origin => ({ DATABRICKS_HOST: origin, DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID, CACHE_ACL_TTL_SECONDS: '3600' }),
    principalId: DEMO_ALICE_ID,
    method: 'GET',
    path: `/v1/permissions/dashboards/${DEMO_DASHBOARD.id}?workspaceId=${DEMO_DASHBOARD.workspaceId}&principal=${encodeURIComponent(`bob.nguyen@${DEMO_DOMAIN}`)}`,
    bare: { url: '/v1/permissions/:objectType/:objectId', schema: 'EffectivePermissionResult' }
  },
  ...throughputArgs(),
  goal: 0.6
})
