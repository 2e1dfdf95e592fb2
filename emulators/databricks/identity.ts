// The identity API of automatic identity management (iamv2, reference §1.2), account and workspace
// ("proxy") forms:
// - resolve-by-external-id for users, groups and service principals, in the current kebab-case paths and
//   the camelCase ones of the first SDKs; responses carry both field generations (`internal_id` and
//   `user_id`/`group_id`/`service_principal_id`, `name` and `full_name`);
// - principals/{id}/transitive-parent-groups (page_size ≤ 1000, page_token);
// - groups/{id}/direct-members with membership_source (GET, POST, GET/DELETE one);
// - workspace-access-details (DIRECT, or INDIRECT through a group's assignment).
import { AccountError, type DatabricksAccount, type Principal, type PrincipalKind } from './account.ts'
import { DatabricksError, badParameter, notFound } from './errors.ts'
import { pageToken, queryInt, queryString, route, workspaceById, type Call, type RouteConfig, type RouteDef } from './http.ts'
import type { Workspace } from './workspace.ts'

const PRINCIPAL_TYPE: Record<PrincipalKind, 'USER' | 'GROUP' | 'SERVICE_PRINCIPAL'> = { user: 'USER', group: 'GROUP', servicePrincipal: 'SERVICE_PRINCIPAL' }

/** [UNCONF] The "not onboarded onto AIM" error: 400 FEATURE_DISABLED (the reference suggests 400/403). */
export function aimDisabled (account: DatabricksAccount): DatabricksError {
  return new DatabricksError(400, 'FEATURE_DISABLED', `Automatic identity management is not enabled for account ${account.id}. Resolve principals after an account admin enables it.`)
}

function withExternalId (p: Principal): { external_id?: string } {
  return p.externalId === null ? {} : { external_id: p.externalId }
}

export function identityUser (account: DatabricksAccount, p: Principal & { kind: 'user' }): Record<string, unknown> {
  const name = { ...(p.givenName !== null ? { given_name: p.givenName } : {}), ...(p.familyName !== null ? { family_name: p.familyName } : {}) }
  return {
    account_id: account.id,
    user_id: p.id,
    internal_id: Number(p.id),
    ...withExternalId(p),
    username: p.userName,
    full_name: name,
    name,
    account_user_status: account.status(p)
  }
}

export function identityGroup (account: DatabricksAccount, p: Principal & { kind: 'group' }): Record<string, unknown> {
  return { account_id: account.id, group_id: p.id, internal_id: Number(p.id), ...withExternalId(p), group_name: p.displayName }
}

export function identityServicePrincipal (account: DatabricksAccount, p: Principal & { kind: 'servicePrincipal' }): Record<string, unknown> {
  return {
    account_id: account.id,
    service_principal_id: p.id,
    internal_id: Number(p.id),
    ...withExternalId(p),
    application_id: p.applicationId,
    display_name: p.displayName,
    account_sp_status: account.status(p)
  }
}

function principalOf (account: DatabricksAccount, id: string): Principal {
  const p = /^\d+$/.test(id) ? account.accountPrincipal(id) : undefined
  if (p === undefined) throw notFound(`Principal ${id} does not exist.`)
  return p
}

function resolve (call: Call, kind: PrincipalKind): unknown {
  const { account } = call
  const externalId = call.body().external_id
  if (typeof externalId !== 'string' || externalId.trim() === '') throw badParameter('external_id is required.')
  if (!account.settings.aimEnabled) throw aimDisabled(account)
  const p = account.resolveExternal(kind, externalId.trim())
  if (p.kind === 'user') return { user: identityUser(account, p) }
  if (p.kind === 'group') return { group: identityGroup(account, p) }
  return { service_principal: identityServicePrincipal(account, p) }
}

function page<T> (call: Call, items: T[]): { items: T[], next?: string } {
  const size = queryInt(call, 'page_size', { min: 1, max: 1000 }) ?? 1000
  const offset = pageToken.decode(queryString(call, 'page_token'))
  const slice = items.slice(offset, offset + size)
  return offset + size < items.length ? { items: slice, next: pageToken.encode(offset + size) } : { items: slice }
}

function transitiveParentGroups (call: Call): unknown {
  const { account } = call
  const p = principalOf(account, call.params.principalId as string)
  // Like the external-* reads, this refreshes the principal's Entra parent groups first (AIM only).
  if (account.settings.aimEnabled && p.externalId !== null) {
    try {
      account.resolveExternal(p.kind, p.externalId)
    } catch (err) {
      if (!(err instanceof AccountError)) throw err
    }
  }
  const groups = account.transitiveParents(p.id).map(id => account.get(id)).filter((g): g is Principal & { kind: 'group' } => g?.kind === 'group' && g.workspaceId === null)
  const { items, next } = page(call, groups)
  return {
    transitive_parent_groups: items.map(g => ({ account_id: account.id, group_id: g.id, internal_id: Number(g.id), ...withExternalId(g), group_name: g.displayName })),
    ...(next !== undefined ? { next_page_token: next } : {})
  }
}

function groupOf (account: DatabricksAccount, id: string): Principal & { kind: 'group' } {
  const g = /^\d+$/.test(id) ? account.accountPrincipal(id) : undefined
  if (g?.kind !== 'group') throw notFound(`Group ${id} does not exist.`)
  return g
}

function directMember (account: DatabricksAccount, group: Principal, m: { id: string, source: string }): Record<string, unknown> {
  const p = account.get(m.id) as Principal
  return {
    principal_id: Number(p.id),
    display_name: p.displayName,
    ...withExternalId(p),
    group_id: Number(group.id),
    membership_source: m.source,
    principal_type: PRINCIPAL_TYPE[p.kind]
  }
}

function accessDetail (account: DatabricksAccount, ws: Workspace, p: Principal): Record<string, unknown> | null {
  const access = ws.access(p.id)
  if (access.level === null) return null
  return {
    access_type: access.direct !== null ? 'DIRECT' : 'INDIRECT',
    account_id: account.id,
    permissions: [access.level === 'ADMIN' ? 'ADMIN_PERMISSION' : 'USER_PERMISSION'],
    principal_id: Number(p.id),
    principal_type: PRINCIPAL_TYPE[p.kind],
    ...(p.kind !== 'group' ? { status: account.status(p) } : {}),
    workspace_id: Number(ws.id)
  }
}

function checkView (call: Call): void {
  const view = queryString(call, 'view')
  if (view !== undefined && view !== 'BASIC' && view !== 'FULL') throw badParameter(`Invalid view '${view}': expected BASIC or FULL.`)
}

export function identityRoutes (): RouteDef[] {
  const defs: RouteDef[] = []
  const account: RouteConfig = { family: 'identity', scope: 'account', scim: false, access: 'account-admin' }
  const workspace: RouteConfig = { family: 'identity', scope: 'workspace', scim: false, access: 'workspace-admin' }
  const forms = [
    { base: '/api/2.0/identity/accounts/:accountId', cfg: account },
    { base: '/api/2.0/identity', cfg: workspace }
  ]
  const kinds: Array<{ kind: PrincipalKind, segments: string[] }> = [
    { kind: 'user', segments: ['users'] },
    { kind: 'group', segments: ['groups'] },
    { kind: 'servicePrincipal', segments: ['service-principals', 'servicePrincipals'] }
  ]
  for (const { base, cfg } of forms) {
    for (const { kind, segments } of kinds) {
      for (const segment of segments) {
        for (const action of ['resolve-by-external-id', 'resolveByExternalId']) {
          defs.push(route('POST', `${base}/${segment}/${action}`, cfg, call => resolve(call, kind)))
        }
      }
    }
    for (const segment of ['transitive-parent-groups', 'transitiveParentGroups']) {
      defs.push(route('GET', `${base}/principals/:principalId/${segment}`, cfg, transitiveParentGroups))
    }
    for (const segment of ['direct-members', 'directMembers']) {
      const members = `${base}/groups/:groupId/${segment}`
      defs.push(
        route('GET', members, cfg, call => {
          const group = groupOf(call.account, call.params.groupId as string)
          const { items, next } = page(call, call.account.directMembers(group.id))
          return { direct_group_members: items.map(m => directMember(call.account, group, m)), ...(next !== undefined ? { next_page_token: next } : {}) }
        }),
        route('POST', members, cfg, call => {
          const group = groupOf(call.account, call.params.groupId as string)
          const body = call.body()
          const nested = body.direct_group_member
          const raw = body.principal_id ?? (typeof nested === 'object' && nested !== null ? (nested as Record<string, unknown>).principal_id : undefined)
          if ((typeof raw !== 'string' && typeof raw !== 'number') || !/^\d+$/.test(String(raw))) throw badParameter('principal_id is required.')
          const member = principalOf(call.account, String(raw))
          if (!call.account.directMembers(group.id).some(m => m.id === member.id)) call.account.addMember(group.id, member.id)
          const m = call.account.directMembers(group.id).find(x => x.id === member.id) as { id: string, source: string }
          return directMember(call.account, group, m)
        }),
        route('GET', `${members}/:principalId`, cfg, call => {
          const group = groupOf(call.account, call.params.groupId as string)
          const m = call.account.directMembers(group.id).find(x => x.id === call.params.principalId)
          if (m === undefined) throw notFound(`Principal ${call.params.principalId ?? ''} is not a direct member of group ${group.id}.`)
          return directMember(call.account, group, m)
        }),
        route('DELETE', `${members}/:principalId`, cfg, call => {
          const group = groupOf(call.account, call.params.groupId as string)
          const m = call.account.directMembers(group.id).find(x => x.id === call.params.principalId)
          if (m === undefined) throw notFound(`Principal ${call.params.principalId ?? ''} is not a direct member of group ${group.id}.`)
          if (m.source === 'IDENTITY_PROVIDER') throw badParameter('Memberships inherited through the identity provider are read-only.')
          call.account.removeMember(group.id, m.id)
          return {}
        })
      )
    }
  }
  for (const segment of ['workspace-access-details', 'workspaceAccessDetails']) {
    const one = (call: Call, ws: Workspace): unknown => {
      checkView(call)
      const p = principalOf(call.account, call.params.principalId as string)
      const detail = accessDetail(call.account, ws, p)
      if (detail === null) throw notFound(`Principal ${p.id} does not have access to workspace ${ws.id}.`)
      return detail
    }
    const all = (call: Call, ws: Workspace): unknown => {
      checkView(call)
      const details = [...call.account.principals.values()]
        .filter(p => !(p.kind === 'group' && p.workspaceId !== null))
        .map(p => accessDetail(call.account, ws, p))
        .filter(d => d !== null)
      const { items, next } = page(call, details)
      return { workspace_access_details: items, ...(next !== undefined ? { next_page_token: next } : {}) }
    }
    const accountBase = `/api/2.0/identity/accounts/:accountId/workspaces/:workspaceId/${segment}`
    defs.push(
      route('GET', `${accountBase}/:principalId`, account, call => one(call, workspaceById(call.account, call.params.workspaceId as string))),
      route('GET', accountBase, account, call => all(call, workspaceById(call.account, call.params.workspaceId as string))),
      route('GET', `/api/2.0/identity/${segment}/:principalId`, workspace, call => one(call, call.workspace as Workspace)),
      route('GET', `/api/2.0/identity/${segment}`, workspace, call => all(call, call.workspace as Workspace))
    )
  }
  return defs
}
