// Who is calling: a personal access token (`dapi…`), or an Entra access token for the Azure Databricks
// resource (2ff814a6-…) from the account's tenant. Anything else is a 401 in Databricks' shape.
//
// Account admins: the built-in admin PAT, Entra applications in the admin set (by default every
// application of the tenant, matched by the app-only token's `appid`/`azp`), and principals the control
// API made admins. An Entra user or service principal that is not yet in the account is provisioned on
// first use while AIM is on ("JIT is always on under AIM"); a principal resolved earlier becomes ACTIVE.
import type { EmulatorContext } from '../context.ts'
import { BearerError, verifyBearer, type AccessToken } from '../sts/verify.ts'
import { DATABRICKS_APP_ID } from '../sts/issuers.ts'
import { ADMIN_USER_NAME, type DatabricksAccount, type Principal } from './account.ts'
import type { Workspace } from './workspace.ts'
import { DatabricksError, permissionDenied, unauthenticated } from './errors.ts'

export interface Caller {
  kind: 'admin-pat' | 'pat' | 'admin-app' | 'entra'
  /** The account principal behind the call, when there is one. */
  principal: Principal | null
  accountAdmin: boolean
  /** For `Me` and home folders: the user name, or the application id of a service principal. */
  userName: string
  displayName: string
}

const PAT = /^dapi[0-9a-f]{32}(?:-\d+)?$/

/** A new personal access token for `principalId` (control API). */
export function issueToken (account: DatabricksAccount, principalId: string | null, random: () => string): string {
  const token = `dapi${random()}`
  account.tokens.set(token, principalId)
  return token
}

export async function authenticate (ctx: EmulatorContext, account: DatabricksAccount, authorization: string | undefined): Promise<Caller> {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')
  if (match === null) throw unauthenticated('Credential was not sent or was of an unsupported type for this API.')
  const credential = match[1] as string

  if (credential.startsWith('dapi')) {
    if (!PAT.test(credential) || !account.tokens.has(credential)) throw unauthenticated('Invalid access token.')
    const owner = account.tokens.get(credential) ?? null
    if (owner === null) return { kind: 'admin-pat', principal: null, accountAdmin: true, userName: ADMIN_USER_NAME, displayName: 'Emulator admin' }
    const principal = account.get(owner)
    if (principal === undefined) throw unauthenticated('Invalid access token.')
    return use(account, principal, 'pat')
  }

  let token: AccessToken
  try {
    ({ token } = await verifyBearer(ctx, `Bearer ${credential}`, [DATABRICKS_APP_ID]))
  } catch (err) {
    if (err instanceof BearerError) throw unauthenticated(`Invalid access token. ${err.message}`)
    throw err
  }
  const tenant = account.env.tenant()
  if (tenant === undefined || token.tid.toLowerCase() !== tenant.tenantId) {
    throw unauthenticated(`Invalid access token. The token was issued by tenant ${token.tid}, which is not the tenant of account ${account.id}.`)
  }
  const oid = String(token.oid ?? '')
  const delegated = typeof token.scp === 'string' && token.scp.trim() !== ''
  if (!delegated) {
    const appId = String(token.appid ?? token.azp ?? '')
    if (account.isAdminApplication(appId)) {
      const principal = account.servicePrincipalByAppId(appId) ?? null
      if (principal !== null) account.markLoggedIn(principal)
      const sp = tenant.servicePrincipalByAppId(appId)
      return { kind: 'admin-app', principal, accountAdmin: true, userName: appId, displayName: principal?.displayName ?? sp?.displayName ?? appId }
    }
    return use(account, findOrProvision(account, 'servicePrincipal', oid, () => account.servicePrincipalByAppId(appId)), 'entra')
  }
  const upn = tenant.user(oid)?.userPrincipalName
  return use(account, findOrProvision(account, 'user', oid, () => upn === undefined ? undefined : account.userByName(upn)), 'entra')
}

function findOrProvision (account: DatabricksAccount, kind: 'user' | 'servicePrincipal', oid: string, byName: () => Principal | undefined): Principal {
  const found = account.byExternal(oid) ?? byName()
  if (found !== undefined) return found
  if (!account.settings.aimEnabled) {
    throw permissionDenied(`${kind === 'user' ? 'User' : 'Service principal'} ${oid} is not a member of account ${account.id}.`)
  }
  try {
    return account.resolveExternal(kind, oid)
  } catch {
    throw permissionDenied(`${kind === 'user' ? 'User' : 'Service principal'} ${oid} cannot be provisioned in account ${account.id}.`)
  }
}

function use (account: DatabricksAccount, principal: Principal, kind: 'pat' | 'entra'): Caller {
  if (principal.kind === 'group') throw unauthenticated('Invalid access token.')
  if (!principal.active) throw permissionDenied(`${principal.kind === 'user' ? 'User' : 'Service principal'} ${principal.id} is deactivated.`)
  account.markLoggedIn(principal)
  return {
    kind,
    principal,
    // Account admins: made so through the control API, or holding the `account_admin` SCIM role.
    accountAdmin: account.adminPrincipals.has(principal.id) || principal.roles.includes('account_admin'),
    userName: principal.kind === 'user' ? principal.userName : principal.applicationId,
    displayName: principal.displayName
  }
}

export function requireAccountAdmin (caller: Caller): void {
  if (!caller.accountAdmin) throw permissionDenied(`${caller.userName} is not an account admin.`)
}

/** Workspace APIs: account admins, and principals with access to the workspace (ADMIN when `admin`). */
export function requireWorkspaceAccess (workspace: Workspace, caller: Caller, admin: boolean): void {
  if (caller.accountAdmin) return
  const level = caller.principal === null ? null : workspace.access(caller.principal.id).level
  if (level === 'ADMIN' || (level === 'USER' && !admin)) return
  throw new DatabricksError(403, 'PERMISSION_DENIED', level === null
    ? `${caller.userName} does not have access to workspace ${workspace.id}.`
    : `${caller.userName} is not an admin of workspace ${workspace.id}.`)
}
