// Microsoft Graph's error envelope and the errors the emulator raises (spec §2.2):
// `{ error: { code, message, innerError: { date, request-id, client-request-id } } }`.

export class GraphError extends Error {
  constructor (
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra response headers (Retry-After, Location, WWW-Authenticate…). */
    readonly headers: Record<string, string> = {},
    /** Extra innerError members (the 429 body carries `code`, `status` and its own `message` there). */
    readonly inner: Record<string, string> = {}
  ) {
    super(message)
  }
}

/** `innerError.date` is second-precision UTC without a zone suffix, e.g. `2021-04-20T17:22:30`. */
export function innerErrorDate (ms: number): string {
  return new Date(ms).toISOString().slice(0, 19)
}

export interface ErrorEnvelope {
  error: {
    code: string
    message: string
    innerError: Record<string, string>
  }
}

export function errorEnvelope (code: string, message: string, ids: { date: number, requestId: string, clientRequestId: string }, inner: Record<string, string> = {}): ErrorEnvelope {
  return {
    error: {
      code,
      message,
      innerError: { ...inner, date: innerErrorDate(ids.date), 'request-id': ids.requestId, 'client-request-id': ids.clientRequestId }
    }
  }
}

// ---- the errors, with Graph's wording ---------------------------------------------------------------

export const resourceNotFound = (id: string): GraphError =>
  new GraphError(404, 'Request_ResourceNotFound', `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`)

// [UNCONF] wording from memory (spec §2.2 last row).
export const invalidObjectId = (id: string): GraphError =>
  new GraphError(400, 'Request_BadRequest', `Invalid object identifier '${id}'.`)

export const badJsonPayload = (): GraphError =>
  new GraphError(400, 'BadRequest', 'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.')

export const insufficientPrivileges = (): GraphError =>
  new GraphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.')

export const unsupportedFilterProperty = (property: string, resource: string): GraphError =>
  new GraphError(400, 'Request_UnsupportedQuery', `Unsupported or invalid query filter clause specified for property '${property}' of resource '${resource}'.`)

export const advancedQueryRequired = (operator: string): GraphError =>
  new GraphError(400, 'Request_UnsupportedQuery', `Operator '${operator}' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information`)

export const countSegmentUnsupported = (): GraphError =>
  new GraphError(400, 'Request_BadRequest', '$count is not currently supported.')

export const invalidPageSize = (raw: string): GraphError =>
  new GraphError(400, 'Request_BadRequest', `Invalid page size specified: '${raw}'. Must be between 1 and 999 inclusive.`)

export const unknownSelectProperty = (property: string, type: string): GraphError =>
  new GraphError(400, 'Request_BadRequest', `Parsing OData Select and Expand failed: Could not find a property named '${property}' on type 'microsoft.graph.${type}'.`)

// [UNCONF] Real Graph answers an unknown path segment with 400 BadRequest and this wording (observed,
// not in the pages read); a known path with a method it does not serve gets 405.
export const segmentNotFound = (segment: string): GraphError =>
  new GraphError(400, 'BadRequest', `Resource not found for the segment '${segment}'.`)

export const methodNotAllowed = (): GraphError =>
  new GraphError(405, 'Request_BadRequest', 'Specified HTTP method is not allowed for the request target.')

// [UNCONF] Graph's code for a page token it cannot use; any token that fails its integrity check here.
export const invalidSkipToken = (): GraphError =>
  new GraphError(400, 'Directory_ExpiredPageToken', 'The specified page token value has expired and can no longer be included in your request.')

export const badRequest = (message: string, code = 'BadRequest'): GraphError => new GraphError(400, code, message)
