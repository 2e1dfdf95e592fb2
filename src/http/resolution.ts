// The JSON bodies of /v1/login and /v1/principals: a principal, its transitive groups, and where it is in Databricks.
import type { Resolution } from '../resolver/resolver.ts'
import type { Materialized } from '../target/port.ts'
import type { DirectoryPrincipal, GroupRef, PrincipalQuery } from '../directory/port.ts'
import type { DatabricksIdentityBody, ResolutionBody } from './schemas.ts'
import createError from '@fastify/error'
import { GUID } from '../auth/claims.ts'

export function resolutionBody ({ principal, groups, groupsSource }: Resolution): ResolutionBody {
  return {
    principal: principalBody(principal),
    groups: groupBodies(groups),
    groupCount: groups.length,
    groupsSource
  }
}

// The groups as the API shows them, made once per cached group list (a warm login answers the same list).
const groupBodiesOf = new WeakMap<readonly GroupRef[], ResolutionBody['groups']>()
function groupBodies (groups: readonly GroupRef[]): ResolutionBody['groups'] {
  let bodies = groupBodiesOf.get(groups)
  if (bodies === undefined) groupBodiesOf.set(groups, bodies = groups.map(g => ({ id: g.id, displayName: g.displayName })))
  return bodies
}

/**
 * The principal as the API shows it (without its groups: a permission answer needs only this). One object
 * shape whatever the principal has (an absent field undefined, which the serializer leaves out): objects
 * built from conditional spreads serialize several times slower.
 */
export function principalBody (principal: DirectoryPrincipal): ResolutionBody['principal'] {
  return {
    id: principal.id,
    tenantId: principal.tenantId,
    kind: principal.kind,
    displayName: principal.displayName,
    userPrincipalName: principal.userPrincipalName,
    mail: principal.mail,
    userType: principal.userType,
    appId: principal.appId,
    accountEnabled: principal.accountEnabled
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

export const InvalidPrincipalId = createError('INVALID_REQUEST', 'Invalid request: %s must be an Entra %s (GUID), e.g. 8f3b9a0f-1206-4f5e-b418-b6e000a771b5, when by=%s; a name is given with by=userPrincipalName or by=mail.', 400)

/**
 * A principal named by id, UPN, mail or appId; without `by`, a GUID is an object id, anything else a UPN.
 * Object and application ids are GUIDs (400 otherwise, naming `field`), in any case: passed on in lowercase.
 */
export function principalQuery (value: string, by?: 'id' | 'userPrincipalName' | 'mail' | 'appId', field = 'id'): PrincipalQuery {
  const key = by ?? (GUID.test(value) ? 'id' : 'userPrincipalName')
  if (key === 'id' || key === 'appId') {
    if (!GUID.test(value)) throw new InvalidPrincipalId(field, key === 'id' ? 'object id' : 'application id', key)
    return { [key]: value.toLowerCase() } as unknown as PrincipalQuery
  }
  return { [key]: value } as unknown as PrincipalQuery
}
