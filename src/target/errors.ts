// Errors of the Databricks adapters besides the port's TargetUnavailableError (throttled, down, timing
// out). Databricks answers in two shapes (reference §2.5): SCIM bodies `{ schemas, detail, status: "409",
// scimType }` on SCIM paths, `{ error_code, message }` elsewhere; both are read into one DatabricksError.
// Messages carry the method, the route label and Databricks' own words, never a token or a query string.

export interface DatabricksErrorDetails {
  status: number
  /** `error_code` of a Databricks body, or `SCIM_<status>` for a SCIM body (as the SDKs name it). */
  errorCode: string
  /** SCIM `scimType` (`uniqueness`, `invalidFilter`, …), when the body had one. */
  scimType?: string
  method: string
  route: string
}

/** Databricks refused a request. The subclasses name the statuses callers act on. */
export class DatabricksError extends Error {
  constructor (message: string, readonly details: DatabricksErrorDetails, options?: ErrorOptions) {
    super(message, options)
    this.name = 'DatabricksError'
  }

  get status (): number { return this.details.status }
  get errorCode (): string { return this.details.errorCode }
}

/** 409: the object exists already (a duplicate userName, group name or application id). */
export class DatabricksConflictError extends DatabricksError {
  override readonly name = 'DatabricksConflictError'
}

/** 404: no such object (or endpoint). */
export class DatabricksNotFoundError extends DatabricksError {
  override readonly name = 'DatabricksNotFoundError'
}

/** 400: the request is malformed or violates a rule (a bad filter, a nesting cycle, an unknown member). */
export class DatabricksBadRequestError extends DatabricksError {
  override readonly name = 'DatabricksBadRequestError'
}

/**
 * The adapter cannot work as configured: Databricks refused the credential (401) or it lacks account admin
 * (403), or the STS refused the app's credential for the Azure Databricks resource. Retrying does not help
 * until someone changes the setup (the token, the app's admin role in the account, the account id).
 */
export class TargetConfigurationError extends Error {
  readonly code = 'TARGET_MISCONFIGURED'
  override readonly name = 'TargetConfigurationError'

  constructor (message: string, readonly details: Partial<DatabricksErrorDetails> = {}, options?: ErrorOptions) {
    super(message, options)
  }
}

/** The Permissions API has no such object (dashboard, folder, warehouse…) in the workspace. */
export class ObjectNotFoundError extends Error {
  readonly code = 'OBJECT_NOT_FOUND'
  override readonly name = 'ObjectNotFoundError'

  constructor (readonly workspaceId: string, readonly objectType: string, readonly objectId: string, options?: ErrorOptions) {
    super(`There is no ${objectType} ${objectId} in Databricks workspace ${workspaceId}: check the object type, its id and the workspace id.`, options)
  }
}

export type DatabricksPrincipalKind = 'user' | 'group' | 'servicePrincipal'

/**
 * A grant named a principal the Databricks account does not hold ("Principal: UserName(x) does not exist"):
 * it has to be materialized in the account first (or the name is not the account's name for it).
 */
export class PrincipalUnknownToDatabricksError extends Error {
  readonly code = 'PRINCIPAL_UNKNOWN_TO_DATABRICKS'
  override readonly name = 'PrincipalUnknownToDatabricksError'

  constructor (readonly kind: DatabricksPrincipalKind, readonly principalName: string, readonly workspaceId: string, options?: ErrorOptions) {
    const what = { user: 'user', group: 'group', servicePrincipal: 'service principal (application id)' }[kind]
    super(`Databricks does not know the ${what} ${principalName} (workspace ${workspaceId}): materialize it in the account before granting it anything.`, options)
  }
}

/**
 * 403 on an object's permissions: the service's own Databricks identity may not read or change them (it
 * needs access to the workspace, and CAN_MANAGE on the object or workspace admin to change grants).
 */
export class ObjectAccessDeniedError extends TargetConfigurationError {
  readonly reason = 'OBJECT_ACCESS_DENIED'

  constructor (readonly workspaceId: string, readonly objectType: string, readonly objectId: string, change: boolean, cause: TargetConfigurationError) {
    super(
      `The service's Databricks identity may not ${change ? 'change' : 'read'} the permissions of ${objectType} ${objectId} in workspace ${workspaceId} ` +
      `(${cause.message}). Give it access to the workspace${change ? ' and CAN_MANAGE on the object, or make it a workspace admin' : ''}.`,
      cause.details,
      { cause }
    )
  }
}
