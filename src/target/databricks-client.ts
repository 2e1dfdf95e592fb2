// A small client for the Databricks account APIs (account SCIM under `/api/2.0/accounts/{id}`, the
// identity API under `/api/2.0/identity/accounts/{id}`) and for workspace APIs (Permissions, Lakeview) over
// the one outbound UpstreamClient (`databricks`).
//
// - Workspace calls go to the workspace's own origin when `workspaceUrls` names it, else to the accounts
//   host itself (a unified host); either way they carry `X-Databricks-Org-Id: <workspace id>`, which picks
//   the workspace on a unified host and is ignored by a workspace's own host. Same token as account calls.
//
// - Credentials: a static token (`DATABRICKS_TOKEN`: a PAT or any bearer token) or an Entra app token for
//   the Azure Databricks resource (`2ff814a6-…/.default`), client credentials through msal-node, acquired
//   single-flight (AppTokens, shared with the Graph adapter); a 401 with an Entra token is retried once
//   with a token fresh from the STS.
// - Throttling: one shared budget per client (the UpstreamClient's token bucket and concurrency limit,
//   plus the write scheduler's per-family lanes, write-scheduler.ts: PATCH and POST/PUT/DELETE have far
//   lower limits than reads; interactive writes go first, owners take turns). A 429 with Retry-After on a
//   write pauses that family's lane for every caller, and the write is retried here, in its lane; other
//   calls' 429 + Retry-After is honoured by the UpstreamClient. Databricks' SCIM quirk "500 REQUEST_LIMIT_EXCEEDED
//   … exceeded the concurrent limit" (and a 429 on a call the UpstreamClient would not repeat) is treated as
//   throttling here: the request was refused before it was processed, so it is repeated after a jittered
//   backoff, at most `maxRetries` times, then TargetUnavailableError (throttled, with retryAfterSeconds).
// - Errors: both Databricks error bodies are parsed; 400/404/409 become typed DatabricksErrors, 401/403
//   TargetConfigurationError, unavailable upstreams (after retries) and other 5xx TargetUnavailableError.
import { TargetUnavailableError } from './port.ts'
import { WriteScheduler, familyOf, type LaneObserver, type WriteContext, type WriteFamily } from './write-scheduler.ts'
import type { PermitSource } from '../upstream/permits.ts'
import { DatabricksBadRequestError, DatabricksConflictError, DatabricksError, DatabricksNotFoundError, TargetConfigurationError, type DatabricksErrorDetails } from './errors.ts'
import { AppTokens, appCredential } from '../directory/app-token.ts'
import { DirectoryUnavailableError } from '../directory/port.ts'
import { DirectoryConfigurationError } from '../directory/errors.ts'
import { UpstreamClient, type HttpMethod, type UpstreamObserver, type UpstreamResponse } from '../upstream/client.ts'
import { UpstreamError, UpstreamUnavailableError } from '../upstream/errors.ts'
import { msalNetworkModule } from '../upstream/msal-network.ts'
import { decideRetry, parseRetryAfter } from '../upstream/retry-policy.ts'

/** The Azure Databricks first-party application: the audience of Entra tokens for Databricks. */
export const AZURE_DATABRICKS_RESOURCE = '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d'
export const AZURE_DATABRICKS_SCOPE = `${AZURE_DATABRICKS_RESOURCE}/.default`
export const DEFAULT_AUTHORITY_HOST = 'https://login.microsoftonline.com'

export interface EntraAppCredentialOptions {
  /** The tenant the app signs in to (the Databricks account's Entra tenant). */
  tenantId: string
  clientId: string
  clientSecret?: string
  clientCertificate?: { privateKeyPem: string, certificatePem: string }
  /** Default `https://login.microsoftonline.com`. */
  authorityHost?: string
  /** Default `2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default`. */
  scope?: string
  /** The upstream client for the STS. Default: one built here (`entra`). */
  sts?: UpstreamClient
}

/** Requests per second that may start, per family of calls (token buckets with a burst of one second). */
export interface WriteBudgets {
  /** PATCH (Databricks documents 2/s for account SCIM). */
  patch?: number
  /** POST, PUT, DELETE (5/s for account SCIM). */
  write?: number
}

export interface DatabricksClientOptions {
  /** The accounts host, e.g. `https://accounts.azuredatabricks.net` (no path). */
  host: string
  accountId: string
  /** A static bearer token (`DATABRICKS_TOKEN`). Either this or `entra`. */
  token?: string
  /** An Entra app that gets tokens for the Azure Databricks resource. */
  entra?: EntraAppCredentialOptions
  /** The upstream client (its rate budget and concurrency are shared by every user of it). Default: one built here. */
  http?: UpstreamClient
  /** For the clients built here: extra CA, observer, concurrency (default 4: Databricks' SCIM concurrent limit), rate budget. */
  ca?: string
  observer?: UpstreamObserver
  concurrency?: number
  ratePerSecond?: number
  /** Per-family write budgets (default: Databricks' documented account SCIM limits, PATCH 2/s and writes 5/s). `false`: none. */
  writeBudgets?: WriteBudgets | false
  /** Writes waiting per family at most, beyond which a write is refused at once with the wait (default 10,000). */
  maxQueuedWrites?: number
  /** Hears each write granted by the scheduler (metrics). */
  writeObserver?: LaneObserver
  /** Replicas sharing the write budgets (REDIS_URL): the fleet's permits per family, and how many replicas share them. */
  writeFleet?: { permits: Partial<Record<WriteFamily, PermitSource>>, replicas: number }
  /** Retries of a throttled request (429 on a non-repeatable call, 500 REQUEST_LIMIT_EXCEEDED). Default: the client's maxRetries, at least 6. */
  maxThrottleRetries?: number
  /** Workspace id → its origin (`https://adb-123.4.azuredatabricks.net`). A workspace not listed is reached on `host`. */
  workspaceUrls?: ReadonlyMap<string, string>
}

export interface DatabricksRequest {
  /** Query parameters, encoded here. */
  query?: Record<string, string | number | undefined>
  body?: unknown
  /**
   * May the call be repeated after a dropped connection or a 503/504? Default true: every call this client
   * is used for is safe to repeat (reads; SCIM PATCHes that add, remove by filter or replace; creates,
   * whose repeat is a 409 the caller resolves by reading).
   */
  idempotent?: boolean
  /** The caller already took the write budget for the first attempt (a coalesced membership batch). */
  prepaid?: boolean
  /** Whose write this is and how urgent (the write lanes' order; default interactive). */
  writes?: WriteContext
}

export interface DatabricksResponse<T> {
  status: number
  /** The parsed body; undefined for an empty body (a 204). */
  json: T | undefined
}

const WORKSPACE_ID = /^\d{1,20}$/

const DEFAULT_WRITE_BUDGETS: Required<WriteBudgets> = { patch: 2, write: 5 }

/** Databricks' throttling words in a 500 (SCIM concurrency quirk) or other bodies (reference §2.7). */
const REQUEST_LIMIT = /REQUEST_LIMIT_EXCEEDED|token bucket limit has been exceeded/

export class DatabricksClient {
  readonly accountId: string
  /** `${host}/api/2.0/accounts/${accountId}` */
  readonly accountBase: string
  /** `${host}/api/2.0/identity/accounts/${accountId}` */
  readonly identityBase: string
  readonly http: UpstreamClient
  private readonly owned: UpstreamClient[] = []
  private readonly staticToken: string | undefined
  private readonly tokens: AppTokens | undefined
  private readonly tokenTenant: string | undefined
  /** The write budgets, per family, in priority and fairness order. */
  readonly writes: WriteScheduler
  private readonly maxThrottleRetries: number
  private readonly host: string
  private readonly workspaceUrls: ReadonlyMap<string, string>

  constructor (options: DatabricksClientOptions) {
    const host = options.host.replace(/\/+$/, '')
    if (!/^https?:\/\/[^/]+$/.test(host)) throw new TypeError('DatabricksClient: host must be an origin such as https://accounts.azuredatabricks.net.')
    if (!/^[A-Za-z0-9-]{1,64}$/.test(options.accountId)) throw new TypeError('DatabricksClient: accountId must be the account id (letters, digits, dashes).')
    this.accountId = options.accountId
    this.host = host
    const urls = new Map<string, string>()
    for (const [id, url] of options.workspaceUrls ?? []) {
      const origin = url.replace(/\/+$/, '')
      if (!WORKSPACE_ID.test(id)) throw new TypeError(`DatabricksClient: workspace id ${JSON.stringify(id)} is not a Databricks workspace id (digits).`)
      if (!/^https?:\/\/[^/]+$/.test(origin)) throw new TypeError(`DatabricksClient: the URL of workspace ${id} must be an origin such as https://adb-${id}.4.azuredatabricks.net.`)
      urls.set(id, origin)
    }
    this.workspaceUrls = urls
    this.accountBase = `${host}/api/2.0/accounts/${options.accountId}`
    this.identityBase = `${host}/api/2.0/identity/accounts/${options.accountId}`
    const own = (name: string, extra: { concurrency?: number, ratePerSecond?: number } = {}): UpstreamClient => {
      const client = new UpstreamClient({
        name,
        ...(options.ca !== undefined ? { ca: options.ca } : {}),
        ...(options.observer !== undefined ? { observer: options.observer } : {}),
        ...extra
      })
      this.owned.push(client)
      return client
    }
    this.http = options.http ?? own('databricks', { concurrency: options.concurrency ?? 4, ...(options.ratePerSecond !== undefined ? { ratePerSecond: options.ratePerSecond } : {}) })
    if (options.token !== undefined && options.token !== '') {
      this.staticToken = options.token
    } else if (options.entra !== undefined) {
      const e = options.entra
      this.tokens = new AppTokens({
        clientId: e.clientId,
        credential: appCredential(e, 'DatabricksClient: entra'),
        authorityHost: e.authorityHost ?? DEFAULT_AUTHORITY_HOST,
        scope: e.scope ?? AZURE_DATABRICKS_SCOPE,
        networkClient: msalNetworkModule(e.sts ?? own('entra'))
      })
      this.tokenTenant = e.tenantId
    } else {
      throw new TypeError('DatabricksClient needs a token or an entra app credential.')
    }
    const budgets: WriteBudgets = options.writeBudgets === false ? {} : { ...DEFAULT_WRITE_BUDGETS, ...options.writeBudgets }
    this.writes = new WriteScheduler({
      budgets,
      ...options.maxQueuedWrites !== undefined ? { maxQueued: options.maxQueuedWrites } : {},
      ...options.writeObserver !== undefined ? { observer: options.writeObserver } : {},
      ...options.writeFleet !== undefined ? { fleet: options.writeFleet } : {}
    })
    this.maxThrottleRetries = options.maxThrottleRetries ?? Math.max(this.http.policy.maxRetries, 6)
  }

  /** A call under `/api/2.0/accounts/{account_id}` (`path` starts with `/`, e.g. `/scim/v2/Users`). */
  async account<T = unknown> (method: HttpMethod, path: string, request: DatabricksRequest = {}): Promise<DatabricksResponse<T>> {
    return await this.send<T>(method, this.accountBase + path, request)
  }

  /**
   * A call under `/api/2.0/identity/accounts/{account_id}`. The account SCIM write budgets do not apply:
   * a resolve is a POST but not a SCIM write, and pacing it at SCIM's 5/s would make a bulk registration
   * in AIM mode crawl. The shared concurrency, rate budget and throttle retries do.
   */
  async identity<T = unknown> (method: HttpMethod, path: string, request: DatabricksRequest = {}): Promise<DatabricksResponse<T>> {
    return await this.send<T>(method, this.identityBase + path, request, { writeBudgets: false })
  }

  /**
   * A call to a workspace API (`path` starts with `/api/`, e.g. `/api/2.0/permissions/dashboards/abc`), on
   * the workspace's origin from `workspaceUrls` or else the accounts host, with `X-Databricks-Org-Id`. The
   * account SCIM write budgets do not apply (they are account SCIM's limits); the shared concurrency and
   * rate budget, throttle retries and error mapping do.
   */
  async workspace<T = unknown> (workspaceId: string, method: HttpMethod, path: string, request: DatabricksRequest = {}): Promise<DatabricksResponse<T>> {
    const id = String(workspaceId).trim()
    if (!WORKSPACE_ID.test(id)) throw new TypeError(`DatabricksClient: workspace id ${JSON.stringify(workspaceId)} is not a Databricks workspace id (digits).`)
    if (!path.startsWith('/api/')) throw new TypeError(`DatabricksClient: a workspace API path starts with /api/ (got ${JSON.stringify(path)}).`)
    return await this.send<T>(method, this.workspaceOrigin(id) + path, request, { headers: { 'x-databricks-org-id': id }, writeBudgets: false })
  }

  /** The origin workspace calls for this id go to. */
  workspaceOrigin (workspaceId: string): string {
    return this.workspaceUrls.get(workspaceId) ?? this.host
  }

  /** Closes the upstream clients this client built (not one it was given), and refuses writes still waiting. */
  async close (): Promise<void> {
    this.writes.close()
    await Promise.all(this.owned.map(async c => { await c.close() }))
  }

  private async token (rejected?: string): Promise<string> {
    if (this.staticToken !== undefined) return this.staticToken
    const tokens = this.tokens as AppTokens
    try {
      return await tokens.get(this.tokenTenant as string, rejected)
    } catch (err) {
      if (err instanceof DirectoryUnavailableError) {
        throw new TargetUnavailableError(`Could not get a token for Azure Databricks: ${err.message}`, err.retryAfterSeconds, { cause: err, throttled: err.throttled })
      }
      if (err instanceof DirectoryConfigurationError) {
        throw new TargetConfigurationError(`The STS refused a token for Azure Databricks: ${err.message}`, {}, { cause: err })
      }
      throw err
    }
  }

  private async send<T> (method: HttpMethod, base: string, request: DatabricksRequest, how: { headers?: Record<string, string>, writeBudgets?: boolean } = {}): Promise<DatabricksResponse<T>> {
    const url = new URL(base)
    for (const [k, v] of Object.entries(request.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v))
    const route = this.http.routeOf(url)
    const body = request.body === undefined ? undefined : JSON.stringify(request.body)
    const idempotent = request.idempotent ?? true
    let token = await this.token()
    let refreshed = false
    for (let attempt = 1; ; attempt++) {
      if (how.writeBudgets !== false && !(attempt === 1 && request.prepaid === true)) await this.writes.take(method, request.writes)
      const headers: Record<string, string> = { ...how.headers, authorization: `Bearer ${token}`, accept: 'application/json' }
      if (body !== undefined) headers['content-type'] = 'application/json'
      let res: UpstreamResponse
      try {
        // A throttled write comes back here, so that its retry waits in the write lane like any other write.
        res = await this.http.request({ method, url, headers, ...(body !== undefined ? { body } : {}), idempotent, ...how.writeBudgets !== false && familyOf(method) !== undefined ? { passThrough: [429] } : {} })
      } catch (err) {
        // A 429 on a call the UpstreamClient would not repeat: Databricks refused it unprocessed.
        if (err instanceof UpstreamUnavailableError && err.status === 429 && how.writeBudgets !== false && err.retryAfterSeconds !== undefined) this.writes.pause(method, err.retryAfterSeconds)
        if (err instanceof UpstreamUnavailableError && err.status === 429 && err.details.reason === 'not-retryable') {
          await this.backoff(method, route, attempt, 429, err.retryAfterSeconds, err)
          continue
        }
        throw toUnavailable(err)
      }
      if (res.status === 401 && this.tokens !== undefined && !refreshed) {
        refreshed = true
        this.http.reportRetry({ method, route, reason: 'unauthorized', status: 401, attempt, waitMs: 0 })
        token = await this.token(token)
        continue
      }
      if (res.status >= 200 && res.status < 300) {
        return { status: res.status, json: res.text === '' ? undefined : this.http.parseJson<T>(res, { method, url }) }
      }
      const parsed = parseError(res)
      if (res.status === 429 || (res.status >= 500 && REQUEST_LIMIT.test(parsed.message))) {
        // The SCIM concurrency quirk (500) or a 429 the UpstreamClient handed back: throttled, repeat.
        const retryAfterSeconds = parseRetryAfter(res.headers['retry-after'], this.http.now())
        if (how.writeBudgets !== false && retryAfterSeconds !== undefined) this.writes.pause(method, retryAfterSeconds)
        this.http.reportThrottled({ method, route, status: res.status, ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) })
        await this.backoff(method, route, attempt, res.status, retryAfterSeconds, undefined, parsed.message)
        continue
      }
      throw toError(method, route, res.status, parsed)
    }
  }

  /** Waits before repeating a throttled request, or throws TargetUnavailableError when out of retries. */
  private async backoff (method: HttpMethod, route: string, attempt: number, status: number, retryAfterSeconds: number | undefined, cause?: unknown, message?: string): Promise<void> {
    // A refused-unprocessed request is retried at least 100 ms later (growing to 2 s): the SCIM concurrency
    // quirk names no wait, and a retry within the same few milliseconds meets the same requests in flight.
    const base = this.http.policy
    const policy = { ...base, maxRetries: this.maxThrottleRetries, baseDelayMs: Math.max(base.baseDelayMs, 100), maxDelayMs: Math.max(base.maxDelayMs, 2_000) }
    const decision = decideRetry(attempt, retryAfterSeconds, policy, this.http.random)
    if (!decision.retry) {
      const why = decision.why === 'exhausted' ? `after ${attempt} attempts` : `Retry-After ${String(retryAfterSeconds)} s is too long to wait`
      throw new TargetUnavailableError(
        `Databricks is throttling ${method} ${route} (HTTP ${status}${message !== undefined ? `, ${message.slice(0, 200)}` : ''}) ${why}.`,
        retryAfterSeconds ?? 1,
        { throttled: true, ...(cause !== undefined ? { cause } : {}) }
      )
    }
    this.http.reportRetry({ method, route, reason: 'throttled', status, attempt, waitMs: decision.waitMs, ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) })
    await this.http.sleep(decision.waitMs)
  }
}

interface ParsedError {
  errorCode: string
  message: string
  scimType?: string
}

/** Reads both Databricks error bodies: SCIM (`status` a string, `detail`, `scimType`) and `{ error_code, message }`. */
export function parseError (res: Pick<UpstreamResponse, 'status' | 'text'>): ParsedError {
  let body: unknown
  try { body = JSON.parse(res.text) } catch { body = undefined }
  if (typeof body === 'object' && body !== null) {
    const b = body as Record<string, unknown>
    if (typeof b.error_code === 'string') return { errorCode: b.error_code, message: typeof b.message === 'string' ? b.message : '' }
    if (typeof b.detail === 'string' || typeof b.status === 'string') {
      const detail = typeof b.detail === 'string' && b.detail !== 'null' ? b.detail : 'SCIM API Internal Error'
      return { errorCode: `SCIM_${typeof b.status === 'string' ? b.status : String(res.status)}`, message: detail, ...(typeof b.scimType === 'string' ? { scimType: b.scimType } : {}) }
    }
  }
  return { errorCode: `HTTP_${res.status}`, message: res.text.slice(0, 200) }
}

function toError (method: string, route: string, status: number, parsed: ParsedError): Error {
  const details: DatabricksErrorDetails = { status, errorCode: parsed.errorCode, method, route, ...(parsed.scimType !== undefined ? { scimType: parsed.scimType } : {}) }
  const message = `Databricks ${method} ${route}: HTTP ${status} ${parsed.errorCode}: ${parsed.message.slice(0, 300)}`
  if (status === 409) return new DatabricksConflictError(message, details)
  if (status === 404) return new DatabricksNotFoundError(message, details)
  if (status === 400) return new DatabricksBadRequestError(message, details)
  if (status === 401 || status === 403) return new TargetConfigurationError(`${message} (check the token, the account id, and that the caller is an account admin)`, details)
  if (status >= 500) return new TargetUnavailableError(message, undefined, { throttled: false })
  return new DatabricksError(message, details)
}

function toUnavailable (err: unknown): Error {
  if (err instanceof UpstreamUnavailableError) {
    return new TargetUnavailableError(`Databricks is unavailable: ${err.message}`, err.retryAfterSeconds, { cause: err, throttled: err.status === 429 })
  }
  if (err instanceof UpstreamError) return new TargetUnavailableError(`Databricks could not be reached: ${err.message}`, undefined, { cause: err })
  return err as Error
}
