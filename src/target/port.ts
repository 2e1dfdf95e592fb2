// The Target port: where identities are materialized (a Databricks account, through SCIM or the
// identity API of automatic identity management). The resolver hands it what Entra says; the adapter
// makes the account agree, idempotently.
import type { DirectoryPrincipal, GroupRef } from '../directory/port.ts'

export interface MaterializeRequest {
  tenantId: string
  /** The user or service principal, as Entra has it now (accountEnabled decides `active`). */
  principal: DirectoryPrincipal
  /** Every group it belongs to, directly or through nesting. */
  groups: GroupRef[]
  /** Ids (within `groups`) of the groups the principal is a direct member of. */
  directGroupIds: string[]
  /** For each group in `groups`: the ids of its direct parents (within `groups`), to mirror nesting. */
  parents: Map<string, string[]>
}

export interface Materialized {
  /** The principal's id in the account. */
  principalId: string
  /** Entra group id → account group id, for every group of the request. */
  groupIds: Map<string, string>
  active: boolean
  /**
   * The name the Permissions API knows the principal by (`user_name` / `service_principal_name`): a user's
   * userName in the account (normally the UPN), a service principal's application id.
   */
  principalName: string
}

/** An Entra group as the account holds it. */
export interface MaterializedGroup {
  /** The account group's id. */
  groupId: string
  /** Its display name in the account: the Entra name, or a disambiguated one such as `Finance (d0000000)`. */
  name: string
}

export interface Target {
  /**
   * false: the account learns memberships and nesting itself (automatic identity management), so the
   * request's `directGroupIds` and `parents` are not used and need not be read from the directory.
   */
  readonly mirrorsMemberships?: boolean
  /** Makes the account hold the principal, its groups and their nesting as Entra has them. */
  materialize: (request: MaterializeRequest) => Promise<Materialized>
  /**
   * Makes the account hold the Entra group (linked by externalId; no members written) and names it. A
   * target that names groups itself never gives it a name in `avoidNames` (lowercased), renaming it if it
   * has one; a target whose account names groups (AIM) answers the account's name whatever it is.
   */
  materializeGroup: (tenantId: string, group: GroupRef, options?: { avoidNames?: ReadonlySet<string> }) => Promise<MaterializedGroup>
}

/** Thrown when the target cannot answer now (throttled, down): callers answer 503 with Retry-After. */
export class TargetUnavailableError extends Error {
  readonly throttled: boolean

  constructor (message: string, readonly retryAfterSeconds?: number, options?: ErrorOptions & { throttled?: boolean }) {
    super(message, options)
    this.throttled = options?.throttled ?? false
  }
}
