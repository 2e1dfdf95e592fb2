// Databricks' two error shapes (reference §2.5) and the errors the emulator raises.
// - SCIM routes answer RFC 7644 bodies with `status` as a string:
//   `{ schemas: [Error], detail, status: "409", scimType? }`.
// - Every other `/api/` route answers `{ error_code, message }`.
// One error class carries both renderings; the route it is thrown from decides which one is sent.
import type { EmulatorContext, ErrorShape } from '../context.ts'

export const SCIM_ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error'

export type ScimType = 'invalidFilter' | 'invalidSyntax' | 'invalidPath' | 'invalidValue' | 'uniqueness' | 'mutability' | 'noTarget' | 'tooMany'

export class DatabricksError extends Error {
  constructor (
    readonly status: number,
    /** `error_code` of the non-SCIM body. */
    readonly code: string,
    message: string,
    readonly options: {
      /** `scimType` of the SCIM body. */
      scimType?: ScimType
      /** SCIM `detail` starts with `CODE: ` (as Databricks' own REQUEST_LIMIT_EXCEEDED and INVALID_FILTER details do). */
      codeInDetail?: boolean
      headers?: Record<string, string>
    } = {}
  ) {
    super(message)
  }
}

export interface ScimErrorBody {
  schemas: string[]
  detail: string
  status: string
  scimType?: string
}

export function scimBody (e: DatabricksError): ScimErrorBody {
  return {
    schemas: [SCIM_ERROR_SCHEMA],
    detail: e.options.codeInDetail === true ? `${e.code}: ${e.message}` : e.message,
    status: String(e.status),
    ...(e.options.scimType !== undefined ? { scimType: e.options.scimType } : {})
  }
}

export function apiBody (e: DatabricksError): { error_code: string, message: string } {
  return { error_code: e.code, message: e.message }
}

/** Paths whose errors are SCIM-shaped: the account and workspace SCIM APIs. */
export const SCIM_PATH = /^\/api\/2\.0\/(?:accounts\/[^/]+\/scim\/v2|preview\/scim\/v2|account\/scim\/v2)(?:\/|$)/
export const API_PATH = /^\/api\//

const CODE_BY_STATUS: Record<number, string> = {
  400: 'INVALID_PARAMETER_VALUE',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'RESOURCE_DOES_NOT_EXIST',
  409: 'RESOURCE_CONFLICT',
  429: 'REQUEST_LIMIT_EXCEEDED',
  500: 'INTERNAL_ERROR',
  501: 'NOT_IMPLEMENTED',
  503: 'TEMPORARILY_UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED'
}

export function codeForStatus (status: number): string {
  return CODE_BY_STATUS[status] ?? (status >= 500 ? 'INTERNAL_ERROR' : 'BAD_REQUEST')
}

/**
 * How injected faults on Databricks paths look (`ctx.errorShapes`): SCIM bodies under the SCIM paths, the
 * `{ error_code, message }` body elsewhere under `/api/`. The SCIM shape must come first: both match.
 */
export function databricksErrorShapes (_ctx: EmulatorContext): ErrorShape[] {
  return [
    {
      prefix: SCIM_PATH,
      shape: (status, _code, message) => {
        const e = new DatabricksError(status, codeForStatus(status), message, { codeInDetail: status === 429 })
        return { headers: { 'content-type': 'application/scim+json; charset=utf-8' }, body: scimBody(e) }
      }
    },
    {
      prefix: API_PATH,
      shape: (status, _code, message) => ({ body: apiBody(new DatabricksError(status, codeForStatus(status), message)) })
    }
  ]
}

// ---- the errors, with Databricks' wording where it is known -------------------------------------------

/** sdk-java #279: what a bare string where an object was expected gets. */
export const UNPARSABLE = 'Request is unparsable, syntactically incorrect, or violates schema.'

export const invalidSyntax = (detail: string = UNPARSABLE): DatabricksError =>
  new DatabricksError(400, 'MALFORMED_REQUEST', detail, { scimType: 'invalidSyntax' })

export const invalidValue = (detail: string): DatabricksError =>
  new DatabricksError(400, 'INVALID_PARAMETER_VALUE', detail, { scimType: 'invalidValue' })

export const invalidPath = (detail: string): DatabricksError =>
  new DatabricksError(400, 'INVALID_PARAMETER_VALUE', detail, { scimType: 'invalidPath' })

/** docs "SCIM 2.1 limits": filters above 200 nodes → 400 INVALID_FILTER. */
export const invalidFilter = (detail: string): DatabricksError =>
  new DatabricksError(400, 'INVALID_FILTER', detail, { scimType: 'invalidFilter', codeInDetail: true })

export const notFound = (message: string): DatabricksError =>
  new DatabricksError(404, 'RESOURCE_DOES_NOT_EXIST', message)

export const conflict = (message: string, code = 'RESOURCE_ALREADY_EXISTS'): DatabricksError =>
  new DatabricksError(409, code, message, { scimType: 'uniqueness' })

export const badParameter = (message: string): DatabricksError =>
  new DatabricksError(400, 'INVALID_PARAMETER_VALUE', message, { scimType: 'invalidValue' })

export const malformedJson = (): DatabricksError =>
  new DatabricksError(400, 'MALFORMED_REQUEST', 'Invalid JSON given in the body of the request - expected a map', { scimType: 'invalidSyntax' })

export const unauthenticated = (message = 'Invalid access token.'): DatabricksError =>
  new DatabricksError(401, 'UNAUTHENTICATED', message)

export const permissionDenied = (message: string): DatabricksError =>
  new DatabricksError(403, 'PERMISSION_DENIED', message)

export const endpointNotFound = (method: string, path: string): DatabricksError =>
  new DatabricksError(404, 'ENDPOINT_NOT_FOUND', `No API found for '${method} ${path}'`)
