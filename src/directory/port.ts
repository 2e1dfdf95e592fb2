// The Directory port: what the resolver needs to know from the identity provider. GraphDirectory
// implements it over Microsoft Graph; the resolver never sees HTTP.
export type DirectoryObjectKind = 'user' | 'servicePrincipal' | 'group'

export interface DirectoryPrincipal {
  kind: DirectoryObjectKind
  id: string
  tenantId: string
  displayName: string
  /** Users. */
  userPrincipalName?: string
  mail?: string | null
  userType?: 'Member' | 'Guest'
  /** Service principals. */
  appId?: string
  /** Groups. */
  securityEnabled?: boolean
  /** false for disabled users and service principals (groups are always enabled). */
  accountEnabled: boolean
}

export interface GroupRef {
  id: string
  displayName: string
  securityEnabled: boolean
}

/** How a caller names a principal to look up. */
export type PrincipalQuery =
  | { id: string }
  | { userPrincipalName: string }
  | { mail: string }
  | { appId: string }

export interface Directory {
  /** A user, service principal or group; null when the directory has no such object. */
  findPrincipal: (tenantId: string, query: PrincipalQuery) => Promise<DirectoryPrincipal | null>
  /** Every group the principal belongs to, directly or through nesting (all pages). */
  transitiveGroups: (tenantId: string, principal: Pick<DirectoryPrincipal, 'id' | 'kind'>) => Promise<GroupRef[]>
  /** The groups the principal is a direct member of (to mirror membership elsewhere). */
  directGroups: (tenantId: string, principal: Pick<DirectoryPrincipal, 'id' | 'kind'>) => Promise<GroupRef[]>
  /** The direct parent groups of each group id (to mirror nesting elsewhere). */
  directParents: (tenantId: string, groupIds: string[]) => Promise<Map<string, string[]>>
  /**
   * Every user and service principal in the group, directly or through nested groups (all pages, each
   * once); null when the directory has no such group.
   */
  transitiveMembers: (tenantId: string, groupId: string) => Promise<DirectoryPrincipal[] | null>
}

/** Thrown by Directory adapters when the upstream cannot answer now (throttled, down, timing out). */
export class DirectoryUnavailableError extends Error {
  /** True when the upstream said "too many requests" rather than failing. */
  readonly throttled: boolean

  constructor (message: string, readonly retryAfterSeconds?: number, options?: ErrorOptions & { throttled?: boolean }) {
    super(message, options)
    this.throttled = options?.throttled ?? false
  }
}
