// Bearer validation and authorization for Graph routes. Tokens come from the emulated STS (or, in tests,
// are signed with its keys); the tenant is the token's `tid`. App-only tokens must carry an application
// permission (`roles`) that grants the route family; delegated tokens (`scp`) are accepted for reads
// (lenient: the emulator does not model delegated consent or the signed-in user's own rights).
import type { EmulatorContext } from '../context.ts'
import { BearerError, verifyBearer, type AccessToken } from '../sts/verify.ts'
import { GRAPH_APP_ID, GRAPH_RESOURCE } from '../sts/issuers.ts'
import type { Directory, ObjectKind } from '../tenant/model.ts'
import { GraphError, insufficientPrivileges } from './errors.ts'

export type Family = 'users' | 'groups' | 'servicePrincipals' | 'userMemberships' | 'groupMembers' | 'servicePrincipalMemberships' | 'directoryObjects' |
  'subscriptions' | 'directoryWrite'

const DIRECTORY = ['Directory.Read.All', 'Directory.ReadWrite.All']
const USERS = ['User.Read.All', 'User.ReadWrite.All', 'User.ReadBasic.All', ...DIRECTORY]
const GROUPS = ['Group.Read.All', 'Group.ReadWrite.All', 'GroupMember.Read.All', 'GroupMember.ReadWrite.All', ...DIRECTORY]
const APPS = ['Application.Read.All', 'Application.ReadWrite.All', 'Application.ReadWrite.OwnedBy', ...DIRECTORY]
// The permissions tables of user-delete, group-delete, serviceprincipal-delete and the deleted-items
// restore and delete pages (User.DeleteRestore.All covers users only).
const WRITE: Record<ObjectKind, readonly string[]> = {
  user: ['User.DeleteRestore.All', 'User.ReadWrite.All', 'Directory.ReadWrite.All'],
  group: ['Group.ReadWrite.All', 'Directory.ReadWrite.All'],
  servicePrincipal: ['Application.ReadWrite.All', 'Application.ReadWrite.OwnedBy', 'Directory.ReadWrite.All']
}

/**
 * Application permissions that grant each route family, after the "Permissions" tables of the Graph
 * reference pages (user-get/list, group-get/list-members, serviceprincipal-get, *-list-memberof,
 * directoryobject-get/getbyids/getmembergroups). Membership reads are granted by the subject's own read
 * permission or by the group-membership ones.
 */
export const FAMILY_ROLES: Record<Family, readonly string[]> = {
  users: USERS,
  groups: GROUPS,
  servicePrincipals: APPS,
  userMemberships: [...new Set([...USERS, ...GROUPS])],
  groupMembers: GROUPS,
  servicePrincipalMemberships: [...new Set([...APPS, ...GROUPS])],
  // [UNCONF] The reference pages list Directory.Read.All for directoryObjects/{id} and getByIds; real
  // tenants answer them for objects the app may read through a narrower permission too, so be lenient.
  directoryObjects: [...new Set([...USERS, ...GROUPS, ...APPS])],
  // Creating a subscription needs read access to its resource (checked per resource when it is
  // created); managing one needs any of those. Subscriptions are per application.
  subscriptions: [...new Set([...USERS, ...GROUPS])],
  // Graph's deletes and deleted-item restores; the object's kind narrows it (WRITE_ROLES).
  directoryWrite: [...new Set(Object.values(WRITE).flat())]
}

/** Application permissions that let an app delete, restore or purge an object of each kind. */
export const WRITE_ROLES: Record<ObjectKind, readonly string[]> = WRITE

/** Whether the caller holds one of `roles` (delegated callers always do: no consent model). */
export function holdsRole (caller: Caller, roles: readonly string[]): boolean {
  if (typeof caller.token.scp === 'string' && caller.token.scp.trim() !== '') return true
  const held = Array.isArray(caller.token.roles) ? caller.token.roles : []
  return held.some(r => roles.includes(r))
}

export const GRAPH_AUDIENCES = [GRAPH_RESOURCE, GRAPH_APP_ID]

export interface Caller {
  token: AccessToken
  tenant: Directory
  /** The calling application (v1 `appid`, v2 `azp`): the throttling scope. */
  appId: string
}

const TENANT_PREFIX = /^\/v1\.0\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?=\/|$|\?)/i

export function unauthorized (message: string): GraphError {
  return new GraphError(401, 'InvalidAuthenticationToken', message, {
    'www-authenticate': `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="${GRAPH_APP_ID}"`
  })
}

/** Validates the bearer token of a request to `originalUrl` and checks it grants `family`. */
export async function authenticate (ctx: EmulatorContext, authorization: string | undefined, originalUrl: string, family: Family): Promise<Caller> {
  let verified: { token: AccessToken, tenant: Directory }
  try {
    verified = await verifyBearer(ctx, authorization, GRAPH_AUDIENCES)
  } catch (err) {
    if (err instanceof BearerError) throw unauthorized(err.message)
    throw err
  }
  const { token, tenant } = verified
  // [UNCONF] `/v1.0/{tenantId}/…` names a tenant; a token for another tenant is refused rather than
  // silently answered from the token's tenant.
  const prefix = TENANT_PREFIX.exec(originalUrl)
  if (prefix !== null && (prefix[1] as string).toLowerCase() !== tenant.tenantId) {
    throw unauthorized('Access token validation failure. The token was issued for another tenant.')
  }
  const appId = String(token.appid ?? token.azp ?? 'unknown').toLowerCase()
  const delegated = typeof token.scp === 'string' && token.scp.trim() !== ''
  if (!delegated) {
    const roles = Array.isArray(token.roles) ? token.roles : []
    const granting = FAMILY_ROLES[family]
    if (!roles.some(r => granting.includes(r))) throw insufficientPrivileges()
  }
  return { token, tenant, appId }
}
