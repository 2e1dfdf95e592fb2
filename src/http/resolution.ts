// The JSON body shared by /v1/login and /v1/principals: a principal and its transitive groups.
import type { Resolution } from '../resolver/resolver.ts'
import type { ResolutionBody } from './schemas.ts'

export function resolutionBody ({ principal, groups, groupsSource }: Resolution): ResolutionBody {
  return {
    principal: {
      id: principal.id,
      tenantId: principal.tenantId,
      kind: principal.kind,
      displayName: principal.displayName,
      ...(principal.userPrincipalName !== undefined ? { userPrincipalName: principal.userPrincipalName } : {}),
      ...(principal.mail !== undefined ? { mail: principal.mail } : {}),
      ...(principal.userType !== undefined ? { userType: principal.userType } : {}),
      ...(principal.appId !== undefined ? { appId: principal.appId } : {}),
      accountEnabled: principal.accountEnabled
    },
    groups: groups.map(g => ({ id: g.id, displayName: g.displayName })),
    groupCount: groups.length,
    groupsSource
  }
}
