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

// ---- The change feed (a capability of directories that can tell what changed: Graph delta) -------------

/** A direct member added to or removed from a group. */
export interface MemberChange {
  id: string
  kind: DirectoryObjectKind
  removed: boolean
}

/**
 * What the directory says changed about one object since a cursor. An upsert carries the properties the
 * directory sent (it may send only the changed ones) and, for groups, the direct members added or removed.
 * A removal is `permanent: false` while the object can still be restored (Entra's deleted items).
 */
export type DirectoryChange =
  | { op: 'upserted', kind: DirectoryObjectKind, id: string, displayName?: string, accountEnabled?: boolean, members: MemberChange[] }
  | { op: 'removed', kind: DirectoryObjectKind, id: string, permanent: boolean }

export interface ChangeBatch {
  /** One entry per object (pages merged), in the order the directory first named them. */
  changes: DirectoryChange[]
  /** Where the next round starts. */
  cursor: string
}

export interface DirectoryChanges {
  /** A cursor at "now" for one kind of object: later rounds see only what changes after this call. */
  startCursor: (tenantId: string, kind: DirectoryObjectKind) => Promise<string>
  /** Every change after the cursor (all pages), and the cursor of the next round. */
  changesSince: (tenantId: string, kind: DirectoryObjectKind, cursor: string) => Promise<ChangeBatch>
}

/** The directory no longer knows the cursor (expired, or reset): start again from a full reconcile. */
export class DirectoryCursorExpiredError extends Error {
  constructor (readonly tenantId: string, readonly kind: DirectoryObjectKind, options?: ErrorOptions) {
    super(`The change cursor for ${kind}s of tenant ${tenantId} has expired or was reset by the directory; a full reconcile is needed.`, options)
    this.name = 'DirectoryCursorExpiredError'
  }
}

// ---- Change notifications (a capability of directories that can call back: Graph subscriptions) -------

export interface ChangeSubscription {
  id: string
  /** `/users` or `/groups`. */
  resource: string
  notificationUrl: string
  /** Milliseconds since the epoch. */
  expiresAt: number
}

export interface NewChangeSubscription {
  resource: string
  changeType: string
  notificationUrl: string
  lifecycleNotificationUrl: string
  /** Echoed in every notification: how the receiver tells Graph's from forged ones. */
  clientState: string
  expiresAt: number
}

export interface DirectorySubscriptions {
  /** The subscriptions this application holds in the tenant. */
  listSubscriptions: (tenantId: string) => Promise<ChangeSubscription[]>
  /** Creates one; the directory first validates `notificationUrl` (the receiver must answer its handshake). */
  createSubscription: (tenantId: string, subscription: NewChangeSubscription) => Promise<ChangeSubscription>
  /** Moves the expiration; null when the directory no longer has the subscription. */
  renewSubscription: (tenantId: string, id: string, expiresAt: number) => Promise<ChangeSubscription | null>
  /** Answers a `reauthorizationRequired` lifecycle event; false when the subscription is gone. */
  reauthorizeSubscription: (tenantId: string, id: string) => Promise<boolean>
}
