// Memory per cached principal with N principals (default 100,000) cached: each resolved once through the
// service's resolver (principal and transitive groups cached), heap measured after a full GC.
//   node --expose-gc --import tsx bench/cache-memory.ts [N]
import { generateTenant } from '../emulators/tenant/generator.ts'
import { startStack } from './lib/service.ts'
import { writeResult } from './lib/results.ts'

const N = Number(process.argv[2] ?? 100_000)
const APP = '6b2e1d4f-8c3a-4e7b-af9d-2a1c3b4d5e6f'
const SECRET = 'bench-secret'
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with node --expose-gc (npm run bench does)')

const tenant = generateTenant({ seed: 7, users: N, groups: 2000, depth: 4, fanOut: 4, membershipsPerUser: 3, servicePrincipals: 0, heavyUsers: 0, guests: 0, disabledUsers: 0 })
tenant.applications.push({ appId: APP, secret: SECRET, roles: ['User.Read.All', 'GroupMember.Read.All'] })
const stack = await startStack(tenant, APP, SECRET, {
  GRAPH_MAX_REQUESTS_PER_SECOND: '1000000',
  GRAPH_MAX_CONCURRENCY: '64',
  CACHE_PRINCIPAL_TTL_SECONDS: '86400',
  CACHE_GROUPS_TTL_SECONDS: '86400'
})
const { resolver } = stack.service
const ids = tenant.users.map(u => u.id)
await resolver.resolve(tenant.tenantId, { id: ids[0] as string }) // app token, connections

const heapNow = (): number => { gc(); gc(); return process.memoryUsage().heapUsed }
const before = heapNow()
const started = performance.now()
let next = 1
let groupRefs = 0
await Promise.all(Array.from({ length: 64 }, async () => {
  while (next < ids.length) {
    const id = ids[next++] as string
    const { groups } = await resolver.resolve(tenant.tenantId, { id })
    groupRefs += groups.length
  }
}))
const seconds = Math.round(performance.now() - started) / 1000
const after = heapNow()
await stack.close()

// The emulator lives in the same process, but its memory is allocated before `before`; the delta is the caches.
const perPrincipal = Math.round((after - before) / (ids.length - 1))
writeResult('cache-memory', {
  principals: ids.length,
  averageGroupsPerPrincipal: Math.round(groupRefs / (ids.length - 1) * 10) / 10,
  heapDeltaMB: Math.round((after - before) / 1024 / 1024),
  bytesPerPrincipal: perPrincipal,
  fillSeconds: seconds
}, [
  [`${ids.length} principals cached`, `${perPrincipal} bytes each (principal + ${Math.round(groupRefs / (ids.length - 1) * 10) / 10} transitive groups on average), ${Math.round((after - before) / 1024 / 1024)} MB in all`],
  ['time to fill through Graph (emulated)', `${seconds} s`]
])
