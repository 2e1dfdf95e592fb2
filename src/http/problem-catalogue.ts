// The catalogue of every problem the service answers with, and the one place routes declare theirs. Each
// entry is built from the error the code really throws: its `code`, status and headers are read from an
// instance of it, and its example is what `problemOf` makes of that instance, so nothing here restates
// them. What an entry adds is what the code cannot say: what the problem means and what to fix.
//
// A route lists the entries it may answer with (`problemResponses`), which builds its OpenAPI responses:
// one per status, its `code` an enum of exactly those codes, a description of each, an example of each and
// the headers they carry (Retry-After, WWW-Authenticate). docs/errors.md is written from this catalogue and
// the routes' lists (`npm run openapi`).
import { STATUS_CODES } from 'node:http'
import { errorCodes, type FastifyError } from 'fastify'
import { Type, type TUnsafe } from '@sinclair/typebox'
import {
  TokenAlgorithmNotAllowed, TokenAudienceInvalid, TokenExpired, TokenIssuerInvalid, TokenMalformed,
  TokenMissing, TokenNotYetValid, TokenSignatureInvalid, TokenTenantInvalid, TokenTenantMismatch, TokenTenantNotAllowed,
  TokenTooLarge, TokenUnknownKey, signingKeysUnavailable, withChallenge
} from '../auth/errors.ts'
import {
  DatabricksNotConfigured, DirectoryMisconfigured, DirectoryRejected, InvalidOwner, ObjectNotFound, PermissionQueryForbidden,
  PrincipalAmbiguous, PrincipalDisabled, PrincipalNotFound, PrincipalNotFoundAtLogin, ShareForbidden, ShareLevelForbidden,
  ShareTargetDisabled, ShareTargetExcluded, ShareTargetNameTaken, ShareTargetNotFound, TargetMisconfigured, TargetRejected,
  UnsupportedSubject, WorkspaceNotFound, principalLookupsThrottled, subjectNotAPrincipal, upstreamUnavailable
} from '../resolver/errors.ts'
import {
  AmbiguousSource, GroupNotFound, NoPrincipals, NotAGroup, RegistrationNotFound, RegistrationsNotConfigured, ShuttingDown,
  TooManyPrincipals, storeUnavailable
} from '../registrations/errors.ts'
import { MAX_PRINCIPALS } from '../registrations/job.ts'
import { NotificationRefused, NotificationsNotConfigured, ValidationTokenInvalid } from '../sync/errors.ts'
import { ObjectAccess } from '../resolver/object-access.ts'
import { mayAskAboutOthers, mayGrant, mayManage } from '../policy/object-policy.ts'
import { WorkspaceNotFoundError } from '../target/assignments.ts'
import { ObjectNotFoundError } from '../target/errors.ts'
import {
  BodyTooLarge, HeadersTooLarge, InvalidUrl, MAX_HEADER_BYTES, MAX_URL_LENGTH, MalformedRequest, MethodNotAllowed, NotFound,
  NotReady, RequestTimeout, UnsupportedMediaType, UriTooLong, bytes, problemOf, serviceClosing, type Problem as ProblemBody
} from './problems.ts'
import { deadlineExceeded } from './deadline.ts'
import { MissingRole } from './authenticate.ts'
import { JsonTooDeep, MAX_JSON_DEPTH } from './json-body.ts'
import { checkObjectId } from './object-ids.ts'
import { metricsUnauthorized } from './metrics-routes.ts'
import { principalQuery } from './resolution.ts'
import { EXAMPLE, Problem, ShareRequest, WorkspaceId } from './schemas.ts'

/** One kind of problem: a code at a status, as one error of the code raises it. */
export interface ProblemType {
  /** The catalogue's name for it (the error's constructor, mostly). */
  readonly key: string
  readonly code: string
  readonly status: number
  /** Several errors answer with the same code and status: what tells this one apart, e.g. "the body is not JSON". */
  readonly variant?: string
  /** What it means and what to fix (Markdown). */
  readonly meaning: string
  /** The response headers it carries, lower case (retry-after, www-authenticate, allow). */
  readonly headers: readonly string[]
  /** The body a caller gets, for the request `example.instance` names. */
  readonly example: ProblemBody
}

interface Definition {
  /** The request the example answers, "METHOD /path?query". */
  request: string
  /** The error as the code throws it; called once, on first use (route modules and this one import each other's errors). */
  error: () => unknown
  meaning: string
  variant?: string
}

/** Built on first use: metrics-routes.ts both declares an error listed here and lists its problems. */
class CatalogueEntry implements ProblemType {
  private built?: { code: string, status: number, headers: string[], example: ProblemBody }

  constructor (readonly key: string, private readonly definition: Definition) {}

  get meaning (): string { return this.definition.meaning }
  get variant (): string | undefined { return this.definition.variant }
  get code (): string { return this.build().code }
  get status (): number { return this.build().status }
  get headers (): readonly string[] { return this.build().headers }
  get example (): ProblemBody { return this.build().example }

  private build (): NonNullable<CatalogueEntry['built']> {
    if (this.built !== undefined) return this.built
    const { request, error } = this.definition
    const [method, url] = request.split(' ') as [string, string]
    const err = error() as FastifyError & { headers?: Record<string, string> }
    const example = problemOf(err, { requestId: EXAMPLE.requestId, instance: url, route: `${method} ${url.split('?')[0] ?? url}` })
    this.built = { code: example.code, status: example.status, headers: Object.keys(err.headers ?? {}).map(h => h.toLowerCase()).sort(), example }
    return this.built
  }
}

/** The error a function throws (the examples call the code's own checks, so their details are the real ones). */
function thrown (fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('the example was expected to throw')
}

/** A schema error as fastify hands it to the error handler (what ajv reports, with `verbose`). */
function validationError (context: string, errors: unknown[]): Error {
  return Object.assign(new Error(`${context} is not valid`), { statusCode: 400, code: 'FST_ERR_VALIDATION', validation: errors, validationContext: context })
}

const SHARE = 'POST /v1/shares'
const LOGIN = 'POST /v1/login'
const PERMISSIONS = `GET /v1/permissions/dashboards/${EXAMPLE.dashboardId}?workspaceId=${EXAMPLE.workspaceId}`
const PERMISSIONS_OF_OTHER = `${PERMISSIONS}&principal=${EXAMPLE.otherUpn}`
const PRINCIPAL = `GET /v1/principals/${EXAMPLE.otherUpn}`
const REGISTER = 'POST /v1/registrations'
const DASHBOARD = `dashboards/${EXAMPLE.dashboardId}`
const reader = { objectType: 'dashboards', level: 'CAN_READ', isWorkspaceAdmin: false } as const
const manager = { objectType: 'jobs', level: 'CAN_MANAGE', isWorkspaceAdmin: false } as const
const admin = { objectType: 'jobs', level: null, isWorkspaceAdmin: true } as const
const refusal = (decision: { allowed: boolean, reason?: string }): string => decision.reason ?? ''

const definitions = {
  // Every request, before any route runs.
  MalformedRequest: { request: 'GET /v1/login', error: () => new MalformedRequest(), meaning: 'The request is not well-formed HTTP/1.1: its request line or a header cannot be parsed. The connection is closed after the answer.' },
  RequestTimeout: { request: LOGIN, error: () => new RequestTimeout(), meaning: 'The whole request (line, headers and body) did not arrive within 30 seconds. Send it at once, then wait for the answer.' },
  HeadersTooLarge: { request: LOGIN, error: () => new HeadersTooLarge(bytes(MAX_HEADER_BYTES)), meaning: 'The request line and headers are over 64 KiB together. Send only the headers the API needs: `Authorization` with the access token alone, `Content-Type`.' },
  InvalidUrl: { request: 'GET /v1/principals/100%25', error: () => new InvalidUrl(), meaning: 'The URL is not valid percent-encoding. Encode `%` as `%25` and each reserved character of an id (`/`, `?`, `#`) as `%XX`.' },
  NotFound: { request: 'GET /v1/principal/ada', error: () => new NotFound('GET', '/v1/principal/ada'), meaning: 'No route has this path. See `/docs` for the API.' },
  MethodNotAllowed: { request: 'GET /v1/shares', error: () => Object.assign(new MethodNotAllowed('GET', '/v1/shares', 'POST'), { headers: { allow: 'POST' } }), meaning: 'The path exists, but not with this method. The `Allow` header lists the methods it takes.' },

  // Every route.
  UriTooLong: { request: 'GET /v1/principals/…', error: () => new UriTooLong(bytes(MAX_URL_LENGTH)), meaning: 'The URL is longer than 8 KiB. No request of this API needs that: ids go in the path, data in the JSON body. The answer does not repeat the URL (`instance` is a URN of the request id).' },
  ServiceClosing: { request: LOGIN, error: () => serviceClosing(), variant: 'any request while the instance closes', meaning: 'This instance is shutting down and takes no new request (the connection is closed after the answer). Retry: another instance, or this one restarted, answers.' },
  Internal: { request: LOGIN, error: () => new Error('an unexpected failure'), meaning: 'An unexpected error. Its cause is logged under the request id, never shown: retry later, or give the operator the request id.' },

  // Every /v1 route.
  DeadlineExceeded: { request: LOGIN, error: () => deadlineExceeded(10_000, 1), meaning: 'No answer within `REQUEST_TIMEOUT_MS`: an upstream is slow. The work is not cancelled, and what it reads lands in the caches: retry after `Retry-After` seconds, usually answered at once.' },

  // The bearer token (every authenticated route).
  TokenMissing: { request: LOGIN, error: () => withChallenge(new TokenMissing()), meaning: 'No `Authorization: Bearer <token>` header, another scheme, or an empty token. Send the Entra access token the caller got for the service.' },
  TokenMalformed: { request: LOGIN, error: () => withChallenge(new TokenMalformed('it is not three base64url segments separated by dots')), meaning: 'The token is not a well-formed Entra access token: not a signed JWT, or a claim missing or of the wrong type (the detail says which). Send the `access_token` of Entra\'s token response unchanged, not the ID token.' },
  TokenTooLarge: { request: LOGIN, error: () => withChallenge(new TokenTooLarge(20_480, 16_384)), meaning: 'The token is longer than the 16 KiB this API reads. Send only the `access_token` of Entra\'s token response.' },
  TokenAlgorithmNotAllowed: { request: LOGIN, error: () => withChallenge(new TokenAlgorithmNotAllowed('HS256')), meaning: 'The token is not signed with RS256: only tokens Microsoft Entra ID issues are accepted. Request a token from Entra.' },
  TokenSignatureInvalid: { request: LOGIN, error: () => withChallenge(new TokenSignatureInvalid()), meaning: 'The signature does not verify: the token was altered, or not issued by Entra. Request a new token and send it unchanged.' },
  TokenUnknownKey: { request: LOGIN, error: () => withChallenge(new TokenUnknownKey('kWbkaa6qs8wsTnBwiiNYOhHbnAw')), meaning: 'The token names a signing key (`kid`) that the configured Entra authority does not publish, even after the keys were fetched again. Request the token from the tenant the service is configured for.' },
  TokenExpired: { request: LOGIN, error: () => withChallenge(new TokenExpired('2026-12-02T09:15:00.000Z')), meaning: 'The token\'s `exp` has passed (beyond the allowed clock skew). Request a new token.' },
  TokenNotYetValid: { request: LOGIN, error: () => withChallenge(new TokenNotYetValid('2026-12-02T09:15:00.000Z')), meaning: 'The token\'s `nbf` is still in the future: the clock of the machine that requested it (or of the service) is wrong, or wait.' },
  TokenAudienceInvalid: { request: LOGIN, error: () => withChallenge(new TokenAudienceInvalid('https://graph.microsoft.com', `${EXAMPLE.appId}, api://${EXAMPLE.appId}`)), meaning: 'The token was issued for another API (its `aud`), e.g. Microsoft Graph. Request it for the service: scope `<the service\'s App ID URI>/.default`.' },
  TokenIssuerInvalid: { request: LOGIN, error: () => withChallenge(new TokenIssuerInvalid('https://sts.example.com/', `https://login.microsoftonline.com/${EXAMPLE.tenantId}/v2.0`)), meaning: 'The token\'s issuer (`iss`) is not the configured Entra authority for its tenant. Request the token from the authority the service is configured for.' },
  TokenTenantInvalid: { request: LOGIN, error: () => withChallenge(new TokenTenantInvalid('contoso')), meaning: 'The token\'s `tid` claim is not a tenant id (a GUID): it was not issued by Entra, or was rewritten.' },
  TokenTenantNotAllowed: { request: LOGIN, error: () => withChallenge(new TokenTenantNotAllowed(EXAMPLE.parentGroupId)), meaning: 'The token\'s tenant is not one the service accepts (`ENTRA_ALLOWED_TENANTS`, by default `ENTRA_TENANT_ID` alone). Sign in with an account of an allowed tenant, or ask the operator to allow the tenant.' },
  TokenTenantMismatch: { request: LOGIN, error: () => withChallenge(new TokenTenantMismatch(EXAMPLE.parentGroupId, EXAMPLE.tenantId)), meaning: 'The issuer names one tenant and the `tid` claim another: the token was rewritten. Request a new token and send it unchanged.' },
  SigningKeysUnavailable: { request: LOGIN, error: () => signingKeysUnavailable(30_000), meaning: 'Entra\'s signing keys cannot be fetched, so no token can be verified. Retry after `Retry-After` seconds; the operator checks that the service reaches `ENTRA_AUTHORITY_HOST`.' },
  MissingRole: { request: PRINCIPAL, error: () => new MissingRole('Identity.Admin'), meaning: 'The route needs the app role `Identity.Admin`, and the token does not carry it. An administrator assigns the role to the user or application in Entra; then request a new token.' },

  // The signed-in caller.
  TokenSubjectNotAPrincipal: { request: LOGIN, error: () => subjectNotAPrincipal(EXAMPLE.groupId, 'group', EXAMPLE.tenantId), meaning: 'The token\'s `oid` names a group (or anything else that cannot sign in): only users and applications sign in. Entra never issues such a token.' },
  PrincipalNotFoundAtLogin: { request: LOGIN, error: () => new PrincipalNotFoundAtLogin(EXAMPLE.userId, EXAMPLE.tenantId), variant: 'the signed-in caller', meaning: 'The signed-in caller (the token\'s `oid`) no longer exists in its tenant: it was deleted after the token was issued.' },
  PrincipalDisabled: { request: LOGIN, error: () => new PrincipalDisabled(EXAMPLE.userId), meaning: 'The caller is disabled in Entra (`accountEnabled=false`). A login still materializes it first, so Databricks deactivates it too. An administrator must enable it.' },

  // Looking up a principal by id, UPN, mail or appId.
  PrincipalNotFound: { request: PRINCIPAL, error: () => new PrincipalNotFound(EXAMPLE.otherUpn, EXAMPLE.tenantId), meaning: 'No user, service principal or group of the caller\'s tenant has this id, UPN, mail or appId. Check the value and `by`; it may have been deleted in Entra.' },
  PrincipalAmbiguous: { request: `${PRINCIPAL}?by=mail`, error: () => new PrincipalAmbiguous(`Several users of tenant ${EXAMPLE.tenantId} have this mail address.`), meaning: 'Several principals have this mail address. Name the principal by object id or user principal name.' },
  InvalidPrincipalId: { request: 'GET /v1/principals/ada?by=id', error: () => thrown(() => principalQuery('ada', 'id', 'id')), variant: 'an id that is not a GUID', meaning: '`by=id` or `by=appId` with a value that is not a GUID. A name is given with `by=userPrincipalName` or `by=mail`.' },

  // Microsoft Graph and Databricks.
  UpstreamUnavailable: { request: LOGIN, error: () => upstreamUnavailable('Microsoft Graph', 5, false), meaning: 'Microsoft Graph or Databricks is down, timing out or refusing connections after the bounded retries, and nothing usable is cached. Retry after `Retry-After` seconds.' },
  UpstreamThrottled: { request: LOGIN, error: () => upstreamUnavailable('Microsoft Graph', 12, true), meaning: 'Microsoft Graph or Databricks is throttling the service beyond what it waits out, and nothing usable is cached. Retry after `Retry-After` seconds.' },
  DirectoryMisconfigured: { request: LOGIN, error: () => new DirectoryMisconfigured('Authorization_RequestDenied'), meaning: 'The service\'s own Entra app cannot read the directory: its secret or certificate is refused, or it lacks the application permissions `User.Read.All`, `GroupMember.Read.All`, `Application.Read.All` with admin consent. For the operator: Entra\'s answer is logged under the request id.' },
  DirectoryRejected: { request: LOGIN, error: () => new DirectoryRejected('Invalid filter clause'), meaning: 'Microsoft Graph refused a request the service made to answer this one. For the operator: Graph\'s answer is logged under the request id.' },
  TargetMisconfigured: { request: LOGIN, error: () => new TargetMisconfigured('403 Forbidden'), meaning: 'The service\'s Databricks credentials cannot do what is needed: not an account admin, a wrong `DATABRICKS_ACCOUNT_ID`, no access to the workspace, or `DATABRICKS_MODE=aim` in an account without automatic identity management. For the operator: Databricks\' answer is logged under the request id.' },
  TargetRejected: { request: LOGIN, error: () => new TargetRejected('400 Bad Request'), meaning: 'Databricks refused a request the service made to answer this one. For the operator: its answer is logged under the request id.' },
  WorkspaceNotFound: { request: LOGIN, error: () => new WorkspaceNotFound(new WorkspaceNotFoundError('2718281828459045').message), meaning: 'The Databricks account has no workspace with this id. Check `workspaceId`: the number in the workspace\'s URL (`?o=…`).' },
  DatabricksNotConfigured: { request: LOGIN, error: () => new DatabricksNotConfigured(), variant: 'workspace decisions, permissions and sharing', meaning: 'The request needs a Databricks account (a login with `workspaceId`, permissions, sharing), and the service has none configured: the operator sets `DATABRICKS_HOST` and `DATABRICKS_ACCOUNT_ID`.' },

  // Workspace objects.
  UnknownObjectType: { request: 'POST /v1/shares', error: () => thrown(() => ObjectAccess.objectType('reports')), meaning: '`objectType` is not an object type of the Databricks Permissions API; the detail lists them.' },
  InvalidObjectId: { request: 'GET /v1/permissions/dashboards/1234?workspaceId=3141592653589793', error: () => thrown(() => checkObjectId('dashboards', '1234')), meaning: '`objectId` does not have the shape of its type\'s ids (a dashboard\'s 32 hexadecimal characters, a notebook\'s or job\'s digits, a cluster\'s `0123-456789-abcdefgh`, …); the detail says which.' },
  InvalidPermissionLevel: { request: SHARE, error: () => thrown(() => ObjectAccess.level('dashboards', 'CAN_VIEW_ALL')), meaning: '`level` is not a permission level of the object\'s type; the detail lists the type\'s levels.' },
  ObjectNotFound: { request: SHARE, error: () => new ObjectNotFound(new ObjectNotFoundError(EXAMPLE.workspaceId, 'dashboards', EXAMPLE.dashboardId).message), meaning: 'The workspace holds no object of this type and id. Check the object type, its id and the workspace id.' },
  PermissionQueryForbidden: { request: PERMISSIONS_OF_OTHER, error: () => new PermissionQueryForbidden(DASHBOARD, refusal(mayAskAboutOthers(reader, []))), meaning: 'Asking what another principal may do needs the app role `Identity.Admin`, or the right to manage the object (CAN_MANAGE or IS_OWNER, or workspace admin). Decided before that principal is looked up: the answer says nothing about whether it exists.' },
  PrincipalLookupsThrottled: { request: PERMISSIONS_OF_OTHER, error: () => principalLookupsThrottled(60, 12), meaning: 'The caller looked up more other principals in a minute than `PRINCIPAL_LOOKUPS_PER_MINUTE` allows (callers without `Identity.Admin`; principals already cached cost nothing). Retry after `Retry-After` seconds.' },
  UnsupportedSubject: { request: `${PERMISSIONS}&principal=${EXAMPLE.groupId}`, error: () => new UnsupportedSubject(EXAMPLE.groupId), meaning: '`principal` names a group: effective permissions are asked for a user or service principal. Ask about one of the group\'s members.' },
  ShareForbidden: { request: SHARE, error: () => new ShareForbidden(DASHBOARD, refusal(mayManage(reader))), meaning: 'The caller may not change who may use the object: that needs CAN_MANAGE or IS_OWNER on it, or workspace admin (cluster policies: workspace admins only). Ask someone who manages the object.' },
  ShareLevelForbidden: { request: SHARE, error: () => new ShareLevelForbidden('IS_OWNER', 'jobs/123456789012345', refusal(mayGrant(manager, 'IS_OWNER', 'user'))), meaning: 'The caller may share the object, but not at this level: above its own level, or `IS_OWNER`, an ownership transfer only a workspace admin makes.' },
  InvalidOwner: { request: SHARE, error: () => new InvalidOwner(refusal(mayGrant(admin, 'IS_OWNER', 'group'))), meaning: '`IS_OWNER` was asked for a group: only a user or service principal can own an object.' },
  ShareTargetNotFound: { request: SHARE, error: () => new ShareTargetNotFound(EXAMPLE.otherUpn, EXAMPLE.tenantId), meaning: 'The principal to share with does not exist in the caller\'s tenant. Check the id, UPN, mail or appId, and `by`.' },
  ShareTargetDisabled: { request: SHARE, error: () => new ShareTargetDisabled('user', 'Grace Hopper'), meaning: 'The principal to share with is disabled in Entra (`accountEnabled=false`). Enable it first.' },
  ShareTargetExcluded: { request: SHARE, error: () => new ShareTargetExcluded('Contractors', 'not a security group'), meaning: 'The group to share with is one the service does not materialize in Databricks (`DATABRICKS_GROUP_FILTER`, `DATABRICKS_GROUP_PARENTS`). Share with a group the operator admits, or ask the operator.' },
  ShareTargetNameTaken: { request: SHARE, error: () => new ShareTargetNameTaken('Ops', 'Ops', EXAMPLE.workspaceId), meaning: 'The group\'s name in the Databricks account is held by a local or system group of the workspace, so a grant by that name would reach that group instead (in accounts with automatic identity management, which names groups from Entra). Rename the group in Entra.' },

  // Bulk registrations.
  RegistrationsNotConfigured: { request: REGISTER, error: () => new RegistrationsNotConfigured(), variant: 'registrations', meaning: 'Registering principals needs a Databricks account, and the service has none configured: the operator sets `DATABRICKS_HOST` and `DATABRICKS_ACCOUNT_ID`.' },
  NoPrincipals: { request: REGISTER, error: () => new NoPrincipals(), meaning: 'The body names nothing to register: give a non-empty `principals` list or a `group`.' },
  AmbiguousSource: { request: REGISTER, error: () => new AmbiguousSource(), meaning: 'The body has both `principals` and `group`: a registration registers one list or one group\'s members.' },
  TooManyPrincipals: { request: REGISTER, error: () => new TooManyPrincipals(MAX_PRINCIPALS, 12_500), meaning: `\`principals\` lists more than ${MAX_PRINCIPALS.toLocaleString('en-US')} principals. Split the list over several registrations.` },
  NotAGroup: { request: REGISTER, error: () => new NotAGroup(EXAMPLE.userId, 'user'), meaning: '`group` names a user or service principal: register it through `principals`.' },
  GroupNotFound: { request: REGISTER, error: () => new GroupNotFound(EXAMPLE.groupId, EXAMPLE.tenantId), meaning: '`group` names no group of the caller\'s tenant. Check the group\'s object id in Entra.' },
  RegistrationNotFound: { request: `GET /v1/registrations/${EXAMPLE.registrationId}`, error: () => new RegistrationNotFound(EXAMPLE.registrationId), meaning: 'No registration of the caller\'s tenant has this id. Use the id the `Location` header of the POST named; finished registrations are kept 30 days with Redis.' },
  RegistrationsClosing: { request: REGISTER, error: () => new ShuttingDown(), variant: 'a registration while the instance closes', meaning: 'The instance is shutting down and takes no new registration. Retry against another instance, or in a moment.' },
  RegistrationsUnavailable: { request: REGISTER, error: () => storeUnavailable(), meaning: 'Redis, where registration jobs are kept (`REDIS_URL`), cannot be reached. Jobs already accepted are kept and resume when it is back. Retry after `Retry-After` seconds.' },

  // Bodies, queries and paths.
  UnknownProperty: {
    request: SHARE,
    error: () => validationError('body', [{ keyword: 'additionalProperties', instancePath: '', params: { additionalProperty: 'permission' }, parentSchema: ShareRequest }]),
    meaning: 'The body, query or path has a property or parameter the route does not define; the detail names each, and what the route takes. Nothing unknown is ignored: remove it, or correct its spelling (names are case-sensitive).'
  },
  InvalidRequest: {
    request: `GET /v1/permissions/dashboards/${EXAMPLE.dashboardId}?workspaceId=3141592653589793.0`,
    error: () => validationError('querystring', [{ keyword: 'pattern', instancePath: '/workspaceId', params: { pattern: WorkspaceId.pattern }, parentSchema: WorkspaceId, data: '3141592653589793.0' }]),
    variant: 'a value does not match the schema',
    meaning: 'A value does not match the route\'s schema; the detail lists each value to fix and what it must be, in words. Ids are JSON strings, never numbers.'
  },
  InvalidJson: { request: SHARE, error: () => new errorCodes.FST_ERR_CTP_INVALID_JSON_BODY(), variant: 'the body is not JSON', meaning: 'The body is not valid JSON, or is empty while `Content-Type` says it is JSON.' },
  JsonTooDeep: { request: REGISTER, error: () => new JsonTooDeep(MAX_JSON_DEPTH), meaning: `The JSON body nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep; no request of this API needs more than 3. Checked before the body is parsed.` },
  BodyTooLarge: { request: SHARE, error: () => new BodyTooLarge(bytes(64 * 1024), 'POST', '/v1/shares'), meaning: 'The body is larger than the route accepts (64 KiB; 2 MiB for `POST /v1/registrations`). Send a smaller body, or split it over several requests.' },
  UnsupportedMediaType: { request: SHARE, error: () => new UnsupportedMediaType('"text/plain"'), meaning: 'The body is not sent as JSON. Send it with `Content-Type: application/json`.' },

  // The Entra change feed.
  NotificationRefused: { request: 'POST /v1/sync/notifications', error: () => new NotificationRefused(), meaning: 'A change-notification delivery without this service\'s `clientState`, or for a tenant it does not sync: refused, nothing done. Only Microsoft Graph, through the subscriptions the service made, posts here.' },
  NotificationsNotConfigured: { request: 'POST /v1/sync/notifications', error: () => new NotificationsNotConfigured(), meaning: 'The service takes no change notifications: the operator sets `PUBLIC_URL` (with `SYNC_ENABLED` on) to have it subscribe to Graph\'s.' },
  ValidationTokenInvalid: { request: 'POST /v1/sync/notifications?validationToken=', error: () => new ValidationTokenInvalid(1024), meaning: 'A subscription handshake whose `validationToken` is empty, longer than 1,024 characters, or holds control characters: not one Graph sends.' },

  // Operations.
  NotReady: { request: 'GET /readyz', error: () => new NotReady('redis: connect ECONNREFUSED 127.0.0.1:6379'), meaning: 'A readiness check failed or did not answer within 2 seconds; the detail names each one. A load balancer sends no traffic to the replica until `/readyz` answers 200.' },
  MetricsUnauthorized: { request: 'GET /metrics', error: () => metricsUnauthorized(), meaning: '`METRICS_TOKEN` is set, and the scraper did not send `Authorization: Bearer <METRICS_TOKEN>`. Configure the scraper with the token.' }
} satisfies Record<string, Definition>

export type ProblemKey = keyof typeof definitions

/** Every problem the service answers with, by name. */
export const Problems = Object.fromEntries(Object.entries(definitions).map(([key, d]) => [key, new CatalogueEntry(key, d)])) as unknown as Record<ProblemKey, ProblemType>

export const P = Problems

/** Answered to any request, before a route is known: documented once (docs/errors.md, each operation's `default`). */
export const ANY_REQUEST: readonly ProblemType[] = [P.MalformedRequest, P.InvalidUrl, P.NotFound, P.MethodNotAllowed, P.RequestTimeout, P.HeadersTooLarge]

/** Answered by every route: listed in each one's responses by `problemResponses`. */
export const EVERY_ROUTE: readonly ProblemType[] = [P.UriTooLong, P.ServiceClosing, P.Internal]

/** Every /v1 route (http/deadline.ts). */
export const V1: readonly ProblemType[] = [P.DeadlineExceeded]

/** `onRequest: app.authenticate` (auth/): every way a bearer token is refused. */
export const BEARER: readonly ProblemType[] = [
  P.TokenMissing, P.TokenMalformed, P.TokenTooLarge, P.TokenAlgorithmNotAllowed, P.TokenSignatureInvalid, P.TokenUnknownKey,
  P.TokenExpired, P.TokenNotYetValid, P.TokenAudienceInvalid, P.TokenIssuerInvalid, P.TokenTenantInvalid,
  P.TokenTenantNotAllowed, P.TokenTenantMismatch, P.SigningKeysUnavailable
]

/** `requireRole('Identity.Admin')`. */
export const ADMIN: readonly ProblemType[] = [P.MissingRole]

/** A route with a JSON body (json-body.ts, fastify's parser and limits, the schema). */
export const JSON_BODY: readonly ProblemType[] = [P.UnsupportedMediaType, P.BodyTooLarge, P.JsonTooDeep, P.InvalidJson, P.UnknownProperty, P.InvalidRequest]

/** A route with path or query parameters (the schema). */
export const PARAMETERS: readonly ProblemType[] = [P.UnknownProperty, P.InvalidRequest]

/** Anything that reads Microsoft Graph through the resolver. */
export const DIRECTORY: readonly ProblemType[] = [P.UpstreamUnavailable, P.UpstreamThrottled, P.DirectoryMisconfigured, P.DirectoryRejected]

/** Anything that reads or writes Databricks through the materializer. */
export const DATABRICKS: readonly ProblemType[] = [P.UpstreamUnavailable, P.UpstreamThrottled, P.TargetMisconfigured, P.TargetRejected]

/** `resolver.resolveCaller`: the signed-in caller must exist, be a user or service principal, and be enabled. */
export const CALLER: readonly ProblemType[] = [P.TokenSubjectNotAPrincipal, P.PrincipalNotFoundAtLogin, P.PrincipalDisabled, ...DIRECTORY]

/** `resolver.resolve`: any principal, by id, UPN, mail or appId. */
export const LOOKUP: readonly ProblemType[] = [P.InvalidPrincipalId, P.PrincipalNotFound, P.PrincipalAmbiguous, ...DIRECTORY]

/** A code a registration's progress reports (`failures[].code`, `error.code`): these are not problems but say why. */
export interface JobFailure {
  code: string
  field: 'failures[].code' | 'error.code'
  meaning: string
}

export const JOB_FAILURES: readonly JobFailure[] = [
  { code: 'PRINCIPAL_NOT_FOUND', field: 'failures[].code', meaning: 'No principal of the tenant has this name (tried as an object id, then an application id; or as a UPN, then a mail).' },
  { code: 'PRINCIPAL_DISABLED', field: 'failures[].code', meaning: 'The principal is disabled in Entra; it was not registered. Enable it, then register it again.' },
  { code: 'PRINCIPAL_AMBIGUOUS', field: 'failures[].code', meaning: 'Several principals have this mail address: name it by object id or UPN.' },
  { code: 'NOT_A_PRINCIPAL', field: 'failures[].code', meaning: 'The name is a group\'s: register its members with `group` instead.' },
  { code: 'UPSTREAM_UNAVAILABLE', field: 'failures[].code', meaning: 'Microsoft Graph or Databricks stayed unavailable or throttling through every attempt: register the principal again later.' },
  { code: 'TARGET_BAD_REQUEST', field: 'failures[].code', meaning: 'Databricks refused to create or update the principal; the message says why.' },
  { code: 'INTERNAL', field: 'failures[].code', meaning: 'An unexpected error, logged: register the principal again later, or give the operator the registration id.' },
  { code: 'DIRECTORY_MISCONFIGURED', field: 'error.code', meaning: 'The service\'s Entra app cannot read the directory: the whole job failed (see the problem of the same code).' },
  { code: 'TARGET_MISCONFIGURED', field: 'error.code', meaning: 'The service\'s Databricks credentials cannot write to the account: the whole job failed (see the problem of the same code).' },
  { code: 'GROUP_NOT_FOUND', field: 'error.code', meaning: 'The group was deleted in Entra after the registration was accepted.' },
  { code: 'GROUP_TOO_LARGE', field: 'error.code', meaning: `The group has more than ${MAX_PRINCIPALS.toLocaleString('en-US')} users and service principals: register its subgroups separately.` }
]

/** What each header a problem may carry says. */
const HEADERS: Record<string, { name: string, schema: object, description: string }> = {
  'retry-after': { name: 'Retry-After', schema: { type: 'integer', minimum: 1 }, description: 'Whole seconds to wait before retrying' },
  'www-authenticate': { name: 'WWW-Authenticate', schema: { type: 'string' }, description: 'The RFC 6750 challenge: `Bearer`, or `Bearer error="invalid_token", error_description="<code>"`' },
  allow: { name: 'Allow', schema: { type: 'string' }, description: 'The methods the path takes' }
}

/** Entries once each, in the order given. */
export function distinct (problems: readonly ProblemType[]): ProblemType[] {
  return [...new Map(problems.map(p => [p.key, p])).values()]
}

/** The problem schema of one status: `code` is exactly one of `codes`. */
function problemSchema (status: number, codes: readonly string[]): TUnsafe<ProblemBody> {
  const { $id, ...schema } = Problem
  return Type.Unsafe<ProblemBody>({
    ...schema,
    title: `Problem ${status}`,
    properties: {
      ...Problem.properties,
      status: { ...Problem.properties.status, enum: [status] },
      code: { ...Problem.properties.code, enum: codes }
    }
  })
}

/** A Markdown line per code: its meaning (several, when several errors share it). */
function describeCodes (problems: readonly ProblemType[]): string {
  const byCode = new Map<string, ProblemType[]>()
  for (const p of problems) byCode.set(p.code, [...byCode.get(p.code) ?? [], p])
  return [...byCode].map(([code, ps]) => `- \`${code}\`: ${ps.map(p => p.variant === undefined || ps.length === 1 ? p.meaning : `(${p.variant}) ${p.meaning}`).join(' ')}`).join('\n')
}

export interface ProblemResponse {
  description: string
  headers?: Record<string, object>
  content: { 'application/problem+json': { schema: TUnsafe<ProblemBody> | typeof Problem, examples: Record<string, { $ref: string }> } }
}

/** Each problem's example, as the document's `components.examples` (the responses reference them by key). */
export function exampleComponents (): Record<string, { summary: string, description: string, value: ProblemBody }> {
  return Object.fromEntries(Object.values(Problems).map(p => [p.key, { summary: summaryOf(p), description: p.meaning, value: p.example }]))
}

const summaryOf = (p: ProblemType): string => p.variant === undefined ? p.code : `${p.code}: ${p.variant}`

/** Examples of the problems, by code (a second variant of a code by code and variant), as references. */
function examplesOf (problems: readonly ProblemType[]): Record<string, { $ref: string }> {
  const examples: Record<string, { $ref: string }> = {}
  for (const p of problems) examples[examples[p.code] === undefined ? p.code : summaryOf(p)] = { $ref: `#/components/examples/${p.key}` }
  return examples
}

/** The codes each status of a route's problems answers with, as in the route's OpenAPI responses. */
export function codesByStatus (problems: readonly ProblemType[]): Map<number, string[]> {
  const statuses = new Map<number, string[]>()
  for (const p of distinct([...problems, ...EVERY_ROUTE])) {
    const codes = statuses.get(p.status) ?? []
    if (!codes.includes(p.code)) codes.push(p.code)
    statuses.set(p.status, codes)
  }
  return new Map([...statuses].sort(([a], [b]) => a - b))
}

/**
 * A route's error responses, from the problems it declares (plus EVERY_ROUTE's): one response per status
 * whose `code` is an enum of exactly its codes, described, with an example of each and the headers they
 * carry; `default` for what any request may get before a route runs. Spread into the route's `response`.
 */
export function problemResponses (declared: readonly ProblemType[]): Record<number | 'default', ProblemResponse> {
  const problems = distinct([...declared, ...EVERY_ROUTE])
  const responses: Partial<Record<number | 'default', ProblemResponse>> = {}
  for (const [status, codes] of codesByStatus(declared)) {
    const here = problems.filter(p => p.status === status)
    const headers: Record<string, object> = {}
    for (const header of [...new Set(here.flatMap(p => p.headers))].sort()) {
      const known = HEADERS[header]
      if (known === undefined) continue
      // Said of the codes that carry it when not all do; of a code's variant when not all of its variants do.
      const carriers = here.filter(p => p.headers.includes(header))
      const whole = (p: ProblemType): boolean => here.every(q => q.code !== p.code || q.headers.includes(header))
      const names = [...new Set(carriers.map(p => whole(p) ? `\`${p.code}\`` : `\`${p.code}\` (${p.variant ?? p.key})`))]
      const which = carriers.length === here.length ? '' : `, with ${names.join(', ')}`
      headers[known.name] = { ...known.schema, description: `${known.description}${which}.` }
    }
    responses[status] = {
      description: `${STATUS_CODES[status] ?? 'Error'}. \`code\` is one of:\n\n${describeCodes(here)}`,
      ...(Object.keys(headers).length > 0 ? { headers } : {}),
      content: { 'application/problem+json': { schema: problemSchema(status, codes), examples: examplesOf(here) } }
    }
  }
  responses.default = {
    description: `Any other answer is a problem too, refused before the route runs: ${ANY_REQUEST.map(p => `${p.status} \`${p.code}\``).join(', ')}. Every code is listed in docs/errors.md.`,
    content: { 'application/problem+json': { schema: Problem, examples: examplesOf(ANY_REQUEST) } }
  }
  return responses as Record<number | 'default', ProblemResponse>
}
