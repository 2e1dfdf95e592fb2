// Workspace permission assignments, v1 (reference §2.6):
// `/api/2.0/accounts/{account_id}/workspaces/{workspace_id}/permissionassignments`
// - PUT/DELETE `…/principals/{principal_id}` with `{"permissions":["USER"|"ADMIN"]}`: ADMIN takes
//   precedence; an empty or invalid list deletes the assignment;
// - GET the list (max_results, page_token), GET `…/permissions` (the levels);
// - an id the account does not know: "Principal not found in account" ([UNCONF] as 404).
import type { DatabricksAccount, Principal } from './account.ts'
import { badParameter, notFound } from './errors.ts'
import { pageToken, queryInt, queryString, route, type Call, type RouteConfig, type RouteDef } from './http.ts'
import type { AssignmentLevel, Workspace } from './workspace.ts'

export function principalSummary (p: Principal): Record<string, unknown> {
  const name = p.kind === 'user' ? { user_name: p.userName } : p.kind === 'group' ? { group_name: p.displayName } : { service_principal_name: p.applicationId }
  return { principal_id: Number(p.id), display_name: p.displayName, ...name }
}

function assignment (p: Principal, level: AssignmentLevel | null): Record<string, unknown> {
  return { principal: principalSummary(p), permissions: level === null ? [] : [level], error: null }
}

function target (call: Call): { account: DatabricksAccount, ws: Workspace, principal: Principal } {
  const id = call.params.principalId as string
  const principal = /^\d+$/.test(id) ? call.account.accountPrincipal(id) : undefined
  if (principal === undefined) throw notFound('Principal not found in account')
  return { account: call.account, ws: call.workspace as Workspace, principal }
}

export function assignmentRoutes (): RouteDef[] {
  const cfg: RouteConfig = { family: 'assignments', scope: 'account', scim: false, access: 'account-admin' }
  const base = '/api/2.0/accounts/:accountId/workspaces/:workspaceId/permissionassignments'
  return [
    route('PUT', `${base}/principals/:principalId`, cfg, call => {
      const { ws, principal } = target(call)
      const permissions = call.body().permissions
      const list = Array.isArray(permissions) ? permissions : []
      const level: AssignmentLevel | null = list.includes('ADMIN') ? 'ADMIN' : list.includes('USER') ? 'USER' : null
      ws.setAssignment(principal.id, level)
      return assignment(principal, level)
    }),
    route('DELETE', `${base}/principals/:principalId`, cfg, call => {
      const { ws, principal } = target(call)
      if (!ws.assignments.has(principal.id)) throw notFound(`Principal ${principal.id} has no permission assignment in workspace ${ws.id}.`)
      ws.setAssignment(principal.id, null)
      return {}
    }),
    route('GET', `${base}/principals/:principalId`, cfg, call => {
      const { ws, principal } = target(call)
      return assignment(principal, ws.assignments.get(principal.id) ?? null)
    }),
    route('GET', `${base}/permissions`, cfg, () => ({
      permissions: [
        { permission_level: 'USER', description: 'Can access the workspace.' },
        { permission_level: 'ADMIN', description: 'Can access the workspace and administer it.' }
      ]
    })),
    route('GET', base, cfg, call => {
      const ws = call.workspace as Workspace
      const size = queryInt(call, 'max_results', { min: 1, max: 10_000 }) ?? 10_000
      const offset = pageToken.decode(queryString(call, 'page_token'))
      const filter = queryString(call, 'filter')
      if (filter !== undefined && filter !== '' && !/^(USER|ADMIN)$/.test(filter)) throw badParameter(`Unsupported filter '${filter}'.`)
      const all = [...ws.assignments]
        .filter(([, level]) => filter === undefined || filter === '' || level === filter)
        .map(([id, level]) => assignment(call.account.get(id) as Principal, level))
      const items = all.slice(offset, offset + size)
      return {
        permission_assignments: items,
        ...(offset + size < all.length ? { next_page_token: pageToken.encode(offset + size) } : {}),
        ...(offset > 0 ? { prev_page_token: pageToken.encode(Math.max(0, offset - size)) } : {})
      }
    })
  ]
}
