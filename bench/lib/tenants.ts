// Tenants the benchmarks share.
import type { GroupFixture, TenantFixture } from '../../emulators/tenant/model.ts'

export const BENCH_APP = '6b2e1d4f-8c3a-4e7b-af9d-2a1c3b4d5e6f'
export const BENCH_SECRET = 'bench-secret'
export const benchId = (prefix: string, n: number): string => `${prefix}-0000-4000-8000-${n.toString(16).padStart(12, '0')}`
export const userInGroups = (index: number): string => benchId('a0000000', index + 1)

/**
 * One user per entry of `counts`, in that many groups: half direct members, half reached through nesting
 * (each odd group contains the even group before it). Plus `extraUsers` users in two of `sharedGroups`.
 */
export function groupCountTenant (counts: number[], extra: { users: number, sharedGroups: number } = { users: 0, sharedGroups: 0 }): TenantFixture {
  const groups: GroupFixture[] = []
  counts.forEach((g, u) => {
    for (let i = 0; i < g; i++) {
      const members = i % 2 === 1 ? [benchId(`c${u}000000`, i)] : [userInGroups(u)]
      groups.push({ id: benchId(`c${u}000000`, i + 1), displayName: `Group ${u}-${i + 1}`, members })
    }
  })
  const extraUsers = Array.from({ length: extra.users }, (_, i) => ({ id: benchId('a1000000', i + 1), userPrincipalName: `member${i + 1}@bench.onmicrosoft.com`, displayName: `Member ${i + 1}` }))
  for (let s = 0; s < extra.sharedGroups; s++) {
    groups.push({ id: benchId('d0000000', s + 1), displayName: `Team ${s + 1}`, members: extraUsers.filter((_, i) => i % extra.sharedGroups === s || (i + 1) % extra.sharedGroups === s).map(u => u.id) })
  }
  return {
    tenantId: '5a1d0c3e-7b2f-4d6a-9e8c-1f0b2a3c4d5e',
    domain: 'bench.onmicrosoft.com',
    users: [...counts.map((g, u) => ({ id: userInGroups(u), userPrincipalName: `user${g}@bench.onmicrosoft.com`, displayName: `In ${g} groups` })), ...extraUsers],
    servicePrincipals: [],
    groups,
    applications: [{ appId: BENCH_APP, secret: BENCH_SECRET, roles: ['User.Read.All', 'GroupMember.Read.All'], accessTokenAcceptedVersion: 2, identifierUris: [`api://${BENCH_APP}`] }]
  }
}
