// The JSON bodies of /v1/login and /v1/principals: a principal, its transitive groups, and where it is in Databricks.
import type { Resolution } from '../resolver/resolver.ts'
import type { Materialized } from '../target/port.ts'
import type { PrincipalQuery } from '../directory/port.ts'
import type { DatabricksIdentityBody, ResolutionBody } from './schemas.ts'
import { GUID } from '../auth/claims.ts'

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

export function databricksBody ({ groups }: Resolution, materialized: Materialized): DatabricksIdentityBody {
  return {
    principalId: materialized.principalId,
    active: materialized.active,
    groups: groups.flatMap(g => {
      const databricksId = materialized.groupIds.get(g.id)
      return databricksId === undefined ? [] : [{ id: g.id, databricksId }]
    })
  }
}

/** A principal named by id, UPN, mail or appId; without `by`, a GUID is an object id, anything else a UPN. */
export function principalQuery (value: string, by?: 'id' | 'userPrincipalName' | 'mail' | 'appId'): PrincipalQuery {
  const key = by ?? (GUID.test(value) ? 'id' : 'userPrincipalName')
  return { [key]: value } as unknown as PrincipalQuery
}
