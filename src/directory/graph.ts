// GraphDirectory: the Directory port over Microsoft Graph v1.0 with an app-only token (msal-node).
//
// - findPrincipal by id: one `$batch` of three typed reads (`/users/{id}`, `/servicePrincipals/{id}`,
//   `/groups/{id}`, each with `$select`). Not `/directoryObjects/{id}`: Graph documents Directory.Read.All
//   for it (the typed reads need only the three roles the resolver already has), and a `$select` naming
//   properties of several derived types (`accountEnabled` of users, `appId` of service principals) is
//   refused on it. One round trip either way; 3 resource units instead of 1, and profiles are cached.
// - by UPN `/users/{upn}` (`#` → `%23`), by mail `/users?$filter=mail eq '…'` (quotes doubled), by appId
//   `/servicePrincipals(appId='…')`. A 404 is null. So is a malformed id or appId (not a GUID), UPN or mail
//   (no `@`): nothing can be named by it, and no call is made. The HTTP layer validates formats itself.
// - transitiveGroups: `transitiveMemberOf/microsoft.graph.group?$select=id,displayName,securityEnabled&$top=999`,
//   every `@odata.nextLink` followed verbatim (same origin only: the token is never sent elsewhere), each
//   group once. A principal that no longer exists has no groups ([]).
// - transitiveMembers (bulk registration): `groups/{id}/transitiveMembers/microsoft.graph.user` and
//   `…/microsoft.graph.servicePrincipal`, each with its own `$select` and `$top=999`, all pages; 404 → null.
// - directParents: `memberOf/microsoft.graph.group?$select=id&$top=999` per group, in `$batch`es of ≤ 20; a
//   throttled item is retried after its own Retry-After; items' nextLinks are followed in later batches.
// - Errors: 404 → null; 401 → one retry with a new token, then DirectoryConfigurationError; 403 →
//   DirectoryConfigurationError naming the missing permission; 429/503/504, timeouts and dropped
//   connections after the bounded retries, other 5xx → DirectoryUnavailableError with retryAfterSeconds.
import { randomUUID } from 'node:crypto'
import type { ChangeBatch, ChangeSubscription, Directory, DirectoryChange, DirectoryChanges, DirectoryObjectKind, DirectoryPrincipal, DirectorySubscriptions, GroupRef, NewChangeSubscription, PrincipalQuery } from './port.ts'
import { DirectoryCursorExpiredError, DirectoryUnavailableError } from './port.ts'
import { DELTA_SELECT, mergeDeltaPage } from './graph-delta.ts'
import { DirectoryAmbiguousError, DirectoryConfigurationError, DirectoryRequestError } from './errors.ts'
import { AppTokens, appCredential } from './app-token.ts'
import { UpstreamClient, type UpstreamObserver, type UpstreamResponse } from '../upstream/client.ts'
import { UpstreamError, UpstreamUnavailableError } from '../upstream/errors.ts'
import { msalNetworkModule } from '../upstream/msal-network.ts'
import { decideRetry, parseRetryAfter } from '../upstream/retry-policy.ts'
import { GUID } from '../auth/claims.ts'

export interface GraphDirectoryOptions {
  /** The application (client) id of the resolver's app registration. */
  clientId: string
  clientSecret?: string
  /** PEM private key and certificate; the assertion is signed PS256 with the SHA-256 thumbprint. */
  clientCertificate?: { privateKeyPem: string, certificatePem: string }
  /** Default `https://graph.microsoft.com/v1.0`. */
  graphBaseUrl?: string
  /** Default `https://login.microsoftonline.com`. */
  authorityHost?: string
  /** Default `https://graph.microsoft.com/.default` (the token's audience, whatever host serves Graph). */
  graphScope?: string
  /** The upstream client for Graph. Default: one built here (`graph`, with `ca` and `observer`). */
  graph?: UpstreamClient
  /** The upstream client for the STS (msal's network module). Default: one built here (`entra`). */
  sts?: UpstreamClient
  /** Extra CA (PEM) trusted by the clients built here. */
  ca?: string
  /** Observer of the clients built here. */
  observer?: UpstreamObserver
  /** `x-ms-throttle-priority` on every Graph call; leave unset for background work (see withThrottlePriority). */
  throttlePriority?: 'low' | 'normal' | 'high'
}

export const DEFAULT_GRAPH_BASE_URL = 'https://graph.microsoft.com/v1.0'
export const DEFAULT_AUTHORITY_HOST = 'https://login.microsoftonline.com'
export const DEFAULT_GRAPH_SCOPE = 'https://graph.microsoft.com/.default'

/** Graph's limit of requests in one `$batch`. */
export const MAX_BATCH = 20
/** Pages of one collection followed at most (999 per page: about 1,000,000 groups). */
const MAX_PAGES = 1000

const USER_SELECT = 'id,displayName,userPrincipalName,mail,userType,accountEnabled'
const SP_SELECT = 'id,displayName,appId,accountEnabled'
const GROUP_SELECT = 'id,displayName,securityEnabled'
const GROUPS_CAST = 'microsoft.graph.group'

/** The application permission each kind of read needs (least privileged, after Graph's reference pages). */
const PERMISSION: Record<DirectoryObjectKind | 'membership', string> = {
  user: 'User.Read.All',
  servicePrincipal: 'Application.Read.All',
  group: 'GroupMember.Read.All',
  membership: 'GroupMember.Read.All'
}

const SET: Record<DirectoryObjectKind, string> = { user: 'users', servicePrincipal: 'servicePrincipals', group: 'groups' }

type GraphObject = Record<string, unknown>

interface BatchItemResult {
  status: number
  headers: Record<string, string>
  body: unknown
}

interface BatchJob {
  /** Relative to the Graph base, starting with `/`. */
  url: string
  /** Gets the item's answer; returns the next URL to fetch for the same job (a nextLink), if any. */
  done: (result: BatchItemResult) => string | undefined
  attempt: number
}

/** OData string literal: single quotes doubled, so a value can never close the literal. */
export function odataString (value: string): string {
  return `'${value.replace(/'/g, "''")}'`
}

export class GraphDirectory implements Directory, DirectoryChanges, DirectorySubscriptions {
  private readonly base: string
  private readonly baseOrigin: string
  private readonly graph: UpstreamClient
  private readonly sts: UpstreamClient
  private readonly owned: UpstreamClient[] = []
  private readonly tokens: AppTokens
  private readonly priority: GraphDirectoryOptions['throttlePriority']

  constructor (options: GraphDirectoryOptions) {
    this.base = (options.graphBaseUrl ?? DEFAULT_GRAPH_BASE_URL).replace(/\/+$/, '')
    this.baseOrigin = new URL(this.base).origin
    const own = (name: string): UpstreamClient => {
      const client = new UpstreamClient({ name, ...(options.ca !== undefined ? { ca: options.ca } : {}), ...(options.observer !== undefined ? { observer: options.observer } : {}) })
      this.owned.push(client)
      return client
    }
    this.graph = options.graph ?? own('graph')
    this.sts = options.sts ?? own('entra')
    this.tokens = new AppTokens({
      clientId: options.clientId,
      credential: appCredential(options, 'GraphDirectory'),
      authorityHost: options.authorityHost ?? DEFAULT_AUTHORITY_HOST,
      scope: options.graphScope ?? DEFAULT_GRAPH_SCOPE,
      networkClient: msalNetworkModule(this.sts)
    })
    this.priority = options.throttlePriority
  }

  /**
   * The same directory (clients, tokens, rate budget) sending `x-ms-throttle-priority`: `high` for calls a
   * user is waiting on (a login), nothing or `low` for background refreshes. Closing a view closes nothing.
   */
  withThrottlePriority (priority: 'low' | 'normal' | 'high' | undefined): GraphDirectory {
    const view = Object.create(GraphDirectory.prototype) as GraphDirectory
    return Object.assign(view, this, { priority, owned: [] })
  }

  /** Closes the upstream clients this directory built (not those it was given). */
  async close (): Promise<void> {
    await Promise.all(this.owned.map(async c => { await c.close() }))
  }

  // ---- Directory ----------------------------------------------------------------------------------------

  async findPrincipal (tenantId: string, query: PrincipalQuery): Promise<DirectoryPrincipal | null> {
    if ('id' in query) return await this.findById(tenantId, query.id)
    if ('userPrincipalName' in query) {
      const upn = query.userPrincipalName
      if (!upn.includes('@') || upn.length > 1024) return null
      // encodeURIComponent turns `#EXT#` into `%23EXT%23` (a bare `#` would end the URL's path); `@` may stay.
      const res = await this.get(tenantId, `${this.base}/users/${encodeURIComponent(upn).replace(/%40/g, '@')}?$select=${USER_SELECT}`)
      if (res.status === 404) return null
      return this.principal(tenantId, 'user', this.ok(tenantId, res, PERMISSION.user))
    }
    if ('mail' in query) {
      const mail = query.mail
      if (!mail.includes('@') || mail.length > 1024) return null
      const filter = encodeURIComponent(`mail eq ${odataString(mail)}`)
      const res = await this.get(tenantId, `${this.base}/users?$filter=${filter}&$select=${USER_SELECT}&$top=2`)
      const body = this.ok(tenantId, res, PERMISSION.user)
      const value = Array.isArray(body.value) ? body.value as GraphObject[] : []
      if (value.length === 0) return null
      if (value.length > 1) throw new DirectoryAmbiguousError(`Several users of tenant ${tenantId} have this mail address.`, { tenantId, matches: value.length })
      return this.principal(tenantId, 'user', value[0] as GraphObject)
    }
    const appId = query.appId
    if (!GUID.test(appId)) return null
    const res = await this.get(tenantId, `${this.base}/servicePrincipals(appId=${odataString(appId)})?$select=${SP_SELECT}`)
    if (res.status === 404) return null
    return this.principal(tenantId, 'servicePrincipal', this.ok(tenantId, res, PERMISSION.servicePrincipal))
  }

  async transitiveGroups (tenantId: string, principal: Pick<DirectoryPrincipal, 'id' | 'kind'>): Promise<GroupRef[]> {
    return await this.groupsOf(tenantId, principal, 'transitiveMemberOf')
  }

  async directGroups (tenantId: string, principal: Pick<DirectoryPrincipal, 'id' | 'kind'>): Promise<GroupRef[]> {
    return await this.groupsOf(tenantId, principal, 'memberOf')
  }

  /**
   * Users and service principals in the group or any group nested in it: one OData cast per kind (each
   * with the `$select` of its own type: a polymorphic list's `$select` may not mix derived types' fields),
   * every page. A group that does not exist is null; a deleted member between pages is simply absent.
   */
  async transitiveMembers (tenantId: string, groupId: string): Promise<DirectoryPrincipal[] | null> {
    if (!GUID.test(groupId)) return null
    const members = new Map<string, DirectoryPrincipal>()
    const kinds: Array<['user' | 'servicePrincipal', string]> = [['user', USER_SELECT], ['servicePrincipal', SP_SELECT]]
    const found = await Promise.all(kinds.map(async ([kind, select]) => {
      let url: string | undefined = `${this.base}/groups/${groupId}/transitiveMembers/microsoft.graph.${kind}?$select=${select}&$top=999`
      for (let page = 0; url !== undefined; page++) {
        if (page >= MAX_PAGES) throw new DirectoryRequestError(`More than ${MAX_PAGES} pages of members of group ${groupId}.`, { tenantId })
        const res = await this.get(tenantId, url)
        if (res.status === 404 && page === 0) return false
        const body = this.ok(tenantId, res, PERMISSION.membership)
        for (const o of Array.isArray(body.value) ? body.value as GraphObject[] : []) {
          const p = this.principal(tenantId, kind, o)
          if (p.id !== '' && !members.has(p.id.toLowerCase())) members.set(p.id.toLowerCase(), p)
        }
        url = this.nextLink(tenantId, body)
      }
      return true
    }))
    return found.every(Boolean) ? [...members.values()] : null
  }

  // ---- DirectoryChanges (delta queries) -------------------------------------------------------------------

  /** `GET /{kind}/delta?$select=…&$deltatoken=latest`: a deltaLink at "now", no replay of the tenant. */
  async startCursor (tenantId: string, kind: DirectoryObjectKind): Promise<string> {
    const body = await this.deltaPage(tenantId, kind, `${this.base}/${SET[kind]}/delta?$select=${DELTA_SELECT[kind]}&$deltatoken=latest`)
    const link = this.deltaLink(tenantId, body)
    if (link === undefined) throw new DirectoryRequestError(`Graph answered the ${kind} delta query with no @odata.deltaLink.`, { tenantId })
    return link
  }

  /** Follows nextLinks from the cursor (a deltaLink) to the next deltaLink, merging the pages' changes. */
  async changesSince (tenantId: string, kind: DirectoryObjectKind, cursor: string): Promise<ChangeBatch> {
    const changes = new Map<string, DirectoryChange>()
    let url = this.sameOrigin(tenantId, cursor, 'delta cursor')
    for (let page = 0; page < MAX_PAGES; page++) {
      const body = await this.deltaPage(tenantId, kind, url)
      mergeDeltaPage(changes, kind, Array.isArray(body.value) ? body.value : [])
      const done = this.deltaLink(tenantId, body)
      if (done !== undefined) return { changes: [...changes.values()], cursor: done }
      const next = this.nextLink(tenantId, body)
      if (next === undefined) throw new DirectoryRequestError(`A ${kind} delta page had neither @odata.nextLink nor @odata.deltaLink.`, { tenantId })
      url = next
    }
    throw new DirectoryRequestError(`More than ${MAX_PAGES} pages of ${kind} changes in one round.`, { tenantId })
  }

  private async deltaPage (tenantId: string, kind: DirectoryObjectKind, url: string): Promise<GraphObject> {
    const res = await this.get(tenantId, url)
    // 410 + Location: Graph reset the state. A 400 on a stored cursor (`syncStateNotFound` for a token older
    // than 7 days, or a token Graph cannot read at all, e.g. one kept from another directory): the cursor is
    // of no use, so the feed starts again from a reconcile rather than failing every round. A 404 naming the
    // sync state means the same.
    if (res.status === 410 || (res.status === 400 && url.includes('$deltatoken=') && !url.includes('$deltatoken=latest'))) throw new DirectoryCursorExpiredError(tenantId, kind)
    if (res.status === 400 || res.status === 404) {
      let code: unknown
      try { code = (JSON.parse(res.text) as { error?: { code?: unknown } }).error?.code } catch { code = undefined }
      if (typeof code === 'string' && /syncstatenotfound|resyncrequired|expired/i.test(code)) throw new DirectoryCursorExpiredError(tenantId, kind)
    }
    return this.ok(tenantId, res, PERMISSION[kind === 'group' ? 'membership' : kind])
  }

  private deltaLink (tenantId: string, body: GraphObject): string | undefined {
    const link = body['@odata.deltaLink']
    return typeof link === 'string' && link !== '' ? this.sameOrigin(tenantId, link, '@odata.deltaLink') : undefined
  }

  // ---- DirectorySubscriptions (change notifications) -----------------------------------------------------

  async listSubscriptions (tenantId: string): Promise<ChangeSubscription[]> {
    const out: ChangeSubscription[] = []
    let url: string | undefined = `${this.base}/subscriptions`
    for (let page = 0; url !== undefined && page < MAX_PAGES; page++) {
      const body = this.ok(tenantId, await this.get(tenantId, url), PERMISSION.membership)
      for (const o of Array.isArray(body.value) ? body.value as GraphObject[] : []) {
        const s = subscriptionOf(o)
        if (s !== undefined) out.push(s)
      }
      url = this.nextLink(tenantId, body)
    }
    return out
  }

  async createSubscription (tenantId: string, subscription: NewChangeSubscription): Promise<ChangeSubscription> {
    const body = JSON.stringify({
      changeType: subscription.changeType,
      notificationUrl: subscription.notificationUrl,
      lifecycleNotificationUrl: subscription.lifecycleNotificationUrl,
      resource: subscription.resource,
      expirationDateTime: new Date(subscription.expiresAt).toISOString(),
      clientState: subscription.clientState
    })
    // Not repeated on a failure: a second POST would hold a second subscription.
    const { res } = await this.send(tenantId, 'POST', `${this.base}/subscriptions`, body, false)
    const created = subscriptionOf(this.ok(tenantId, res, PERMISSION.membership))
    if (created === undefined) throw new DirectoryRequestError('Graph created a subscription but its answer has no id or expiration.', { tenantId })
    return created
  }

  async renewSubscription (tenantId: string, id: string, expiresAt: number): Promise<ChangeSubscription | null> {
    if (!GUID.test(id)) return null
    const { res } = await this.send(tenantId, 'PATCH', `${this.base}/subscriptions/${id}`, JSON.stringify({ expirationDateTime: new Date(expiresAt).toISOString() }))
    if (res.status === 404) return null
    return subscriptionOf(this.ok(tenantId, res, PERMISSION.membership)) ?? null
  }

  async reauthorizeSubscription (tenantId: string, id: string): Promise<boolean> {
    if (!GUID.test(id)) return false
    const { res } = await this.send(tenantId, 'POST', `${this.base}/subscriptions/${id}/reauthorize`)
    if (res.status === 404) return false
    if (res.status >= 200 && res.status < 300) return true
    this.ok(tenantId, res, PERMISSION.membership)
    return true
  }

  /** Every page of the principal's (transitive or direct) groups, each group once. */
  private async groupsOf (tenantId: string, principal: Pick<DirectoryPrincipal, 'id' | 'kind'>, relation: 'memberOf' | 'transitiveMemberOf'): Promise<GroupRef[]> {
    if (!GUID.test(principal.id)) return []
    const groups = new Map<string, GroupRef>()
    let url: string | undefined = `${this.base}/${SET[principal.kind]}/${principal.id}/${relation}/${GROUPS_CAST}?$select=id,displayName,securityEnabled&$top=999`
    for (let page = 0; url !== undefined; page++) {
      if (page >= MAX_PAGES) throw new DirectoryRequestError(`More than ${MAX_PAGES} pages of groups for ${principal.id}.`, { tenantId })
      const res = await this.get(tenantId, url)
      if (res.status === 404 && page === 0) return []
      const body = this.ok(tenantId, res, PERMISSION.membership)
      for (const g of Array.isArray(body.value) ? body.value as GraphObject[] : []) {
        const id = typeof g.id === 'string' ? g.id : undefined
        if (id === undefined || groups.has(id)) continue
        groups.set(id, { id, displayName: typeof g.displayName === 'string' ? g.displayName : '', securityEnabled: g.securityEnabled === true })
      }
      url = this.nextLink(tenantId, body)
    }
    return [...groups.values()]
  }

  async directParents (tenantId: string, groupIds: string[]): Promise<Map<string, string[]>> {
    const result = new Map<string, string[]>()
    const jobs: BatchJob[] = []
    for (const groupId of new Set(groupIds)) {
      const parents: string[] = []
      result.set(groupId, parents)
      if (!GUID.test(groupId)) continue
      jobs.push({
        url: `/groups/${groupId}/memberOf/${GROUPS_CAST}?$select=id&$top=999`,
        attempt: 1,
        done: item => {
          // A group deleted meanwhile has no parents.
          if (item.status === 404) return undefined
          const body = this.itemOk(tenantId, item, PERMISSION.membership)
          for (const p of Array.isArray(body.value) ? body.value as GraphObject[] : []) {
            if (typeof p.id === 'string' && !parents.includes(p.id)) parents.push(p.id)
          }
          const next = this.nextLink(tenantId, body)
          return next === undefined ? undefined : next.slice(this.base.length)
        }
      })
    }
    await this.runBatches(tenantId, jobs)
    return result
  }

  // ---- lookups ------------------------------------------------------------------------------------------

  private async findById (tenantId: string, id: string): Promise<DirectoryPrincipal | null> {
    if (!GUID.test(id)) return null
    const kinds: DirectoryObjectKind[] = ['user', 'servicePrincipal', 'group']
    const select: Record<DirectoryObjectKind, string> = { user: USER_SELECT, servicePrincipal: SP_SELECT, group: GROUP_SELECT }
    const answers = new Map<DirectoryObjectKind, BatchItemResult>()
    await this.runBatches(tenantId, kinds.map(kind => ({
      url: `/${SET[kind]}/${id}?$select=${select[kind]}`,
      attempt: 1,
      done: item => { answers.set(kind, item); return undefined }
    })))
    for (const kind of kinds) {
      const item = answers.get(kind)
      if (item?.status === 200) return this.principal(tenantId, kind, this.itemOk(tenantId, item, PERMISSION[kind]))
    }
    // Not found as any kind, unless a read was refused: then the object may exist where we cannot look.
    for (const kind of kinds) {
      const item = answers.get(kind)
      if (item !== undefined && item.status !== 404) this.itemOk(tenantId, item, PERMISSION[kind])
    }
    return null
  }

  private principal (tenantId: string, kind: DirectoryObjectKind, o: GraphObject): DirectoryPrincipal {
    const str = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined
    const base = { kind, id: str(o.id) ?? '', tenantId, displayName: str(o.displayName) ?? '' }
    switch (kind) {
      case 'user': {
        const userType = o.userType === 'Member' || o.userType === 'Guest' ? o.userType : undefined
        const upn = str(o.userPrincipalName)
        // Fail closed: an account counts as enabled only when Graph says so.
        return { ...base, ...(upn !== undefined ? { userPrincipalName: upn } : {}), mail: str(o.mail) ?? null, ...(userType !== undefined ? { userType } : {}), accountEnabled: o.accountEnabled === true }
      }
      case 'servicePrincipal': {
        const appId = str(o.appId)
        return { ...base, ...(appId !== undefined ? { appId } : {}), accountEnabled: o.accountEnabled === true }
      }
      case 'group':
        return { ...base, securityEnabled: o.securityEnabled === true, accountEnabled: true }
    }
  }

  // ---- HTTP ---------------------------------------------------------------------------------------------

  private headers (token: string, json: boolean): Record<string, string> {
    const h: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json', 'client-request-id': randomUUID() }
    if (json) h['content-type'] = 'application/json'
    if (this.priority !== undefined) h['x-ms-throttle-priority'] = this.priority
    return h
  }

  /**
   * One Graph call with the tenant's token; a 401 is retried once with a token fresh from the STS.
   * Graph's POSTs used here ($batch of reads) are safe to repeat. Returns the token that was used.
   */
  /** One Graph call; `cost`: the requests Graph counts it as (a $batch: its items), for the rate budget. */
  private async send (tenantId: string, method: 'GET' | 'POST' | 'PATCH', url: string, body?: string, idempotent = true, cost = 1): Promise<{ res: UpstreamResponse, token: string }> {
    let token = await this.tokens.get(tenantId)
    for (let attempt = 1; ; attempt++) {
      let res: UpstreamResponse
      try {
        res = await this.graph.request({ method, url, headers: this.headers(token, body !== undefined), background: this.priority === 'low', cost, ...(body !== undefined ? { body, idempotent } : {}) })
      } catch (err) {
        throw toUnavailable(err, tenantId)
      }
      if (res.status !== 401 || attempt > 1) return { res, token }
      this.graph.reportRetry({ method, route: this.graph.routeOf(url), reason: 'unauthorized', status: 401, attempt, waitMs: 0 })
      token = await this.tokens.get(tenantId, token)
    }
  }

  private async get (tenantId: string, url: string): Promise<UpstreamResponse> {
    return (await this.send(tenantId, 'GET', url)).res
  }

  /** The JSON body of a 2xx (200, or 201 for a creation), or the error the status means. */
  private ok (tenantId: string, res: UpstreamResponse, permission: string): GraphObject {
    if (res.status === 200 || res.status === 201) {
      const body = this.graph.parseJson<unknown>(res, { method: 'GET', url: this.base })
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new DirectoryRequestError('Graph answered 200 with a body that is not an object.', { tenantId, status: 200 })
      return body as GraphObject
    }
    let parsed: unknown
    try { parsed = JSON.parse(res.text) } catch { parsed = undefined }
    throw failure(tenantId, res.status, res.headers, parsed, permission, this.graph.now())
  }

  private itemOk (tenantId: string, item: BatchItemResult, permission: string): GraphObject {
    if (item.status === 200 && typeof item.body === 'object' && item.body !== null && !Array.isArray(item.body)) return item.body as GraphObject
    if (item.status === 200) throw new DirectoryRequestError('A Graph $batch item answered 200 with a body that is not an object.', { tenantId, status: 200 })
    throw failure(tenantId, item.status, item.headers, item.body, permission, this.graph.now())
  }

  private nextLink (tenantId: string, body: GraphObject): string | undefined {
    const next = body['@odata.nextLink']
    if (typeof next !== 'string' || next === '') return undefined
    return this.sameOrigin(tenantId, next, '@odata.nextLink')
  }

  /** A link Graph handed out (or a stored cursor), checked to point under the Graph base before a token goes with it. */
  private sameOrigin (tenantId: string, link: string, what: string): string {
    let origin: string
    try {
      origin = new URL(link).origin
    } catch {
      throw new DirectoryRequestError(`Graph sent an ${what} that is not a URL.`, { tenantId })
    }
    // The token goes with the request: never to another origin than Graph's.
    if (origin !== this.baseOrigin || !link.startsWith(this.base + '/')) throw new DirectoryRequestError(`The ${what} points outside ${this.base}; not followed.`, { tenantId })
    return link
  }

  /**
   * Runs GET jobs through `$batch` (≤ 20 per request, the batches of one round in parallel). Items answered
   * 429/503/504 go into the next round after the longest Retry-After among them (within the retry policy);
   * a job's next page goes into the next round too.
   */
  private async runBatches (tenantId: string, jobs: BatchJob[]): Promise<void> {
    let pending = jobs
    let refreshed = false
    const retryable = new Set([429, 503, 504])
    while (pending.length > 0) {
      const chunks: BatchJob[][] = []
      for (let i = 0; i < pending.length; i += MAX_BATCH) chunks.push(pending.slice(i, i + MAX_BATCH))
      const answered = await Promise.all(chunks.map(async chunk => ({ chunk, ...await this.postBatch(tenantId, chunk) })))
      const next: BatchJob[] = []
      let waitMs = 0
      let rejected: string | undefined
      for (const { chunk, results, token } of answered) {
        for (const [i, job] of chunk.entries()) {
          const item = results.get(String(i)) ?? { status: 502, headers: {}, body: undefined }
          const route = this.graph.routeOf(this.base + job.url)
          if (retryable.has(item.status)) {
            const retryAfterSeconds = parseRetryAfter(item.headers['retry-after'], this.graph.now())
            if (item.status === 429 || (item.status === 503 && retryAfterSeconds !== undefined)) this.graph.reportThrottled({ method: 'GET', route, status: item.status, ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) })
            const decision = decideRetry(job.attempt, retryAfterSeconds, this.graph.policy, this.graph.random)
            if (!decision.retry) {
              throw new DirectoryUnavailableError(`Graph answered a $batch item with HTTP ${item.status} (${decision.why === 'exhausted' ? `after ${job.attempt} attempts` : `Retry-After ${String(retryAfterSeconds)} s`}).`, retryAfterSeconds, { throttled: item.status === 429 })
            }
            this.graph.reportRetry({ method: 'GET', route, reason: item.status === 429 ? 'throttled' : 'unavailable', status: item.status, attempt: job.attempt, waitMs: decision.waitMs, ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) })
            waitMs = Math.max(waitMs, decision.waitMs)
            next.push({ ...job, attempt: job.attempt + 1 })
          } else if (item.status === 401 && !refreshed) {
            // The token expired under the batch: fetch a new one once, ask again.
            rejected = token
            next.push({ ...job, attempt: job.attempt + 1 })
          } else {
            const url = job.done(item)
            if (url !== undefined) next.push({ ...job, url, attempt: 1 })
          }
        }
      }
      if (rejected !== undefined) {
        refreshed = true
        await this.tokens.get(tenantId, rejected)
      }
      if (waitMs > 0) await this.graph.sleep(waitMs)
      pending = next
    }
  }

  private async postBatch (tenantId: string, chunk: BatchJob[]): Promise<{ results: Map<string, BatchItemResult>, token: string }> {
    const requests = chunk.map((job, i) => ({
      id: String(i),
      method: 'GET',
      url: job.url,
      ...(this.priority !== undefined ? { headers: { 'x-ms-throttle-priority': this.priority } } : {})
    }))
    const { res, token } = await this.send(tenantId, 'POST', `${this.base}/$batch`, JSON.stringify({ requests }), true, requests.length)
    const body = this.ok(tenantId, res, PERMISSION.membership)
    const out = new Map<string, BatchItemResult>()
    for (const r of Array.isArray(body.responses) ? body.responses as GraphObject[] : []) {
      const headers: Record<string, string> = {}
      if (typeof r.headers === 'object' && r.headers !== null) {
        for (const [k, v] of Object.entries(r.headers as Record<string, unknown>)) headers[k.toLowerCase()] = String(v)
      }
      out.set(String(r.id), { status: typeof r.status === 'number' ? r.status : 502, headers, body: r.body })
    }
    return { results: out, token }
  }
}

/** The error a non-success Graph status means. */
function failure (tenantId: string, status: number, headers: Record<string, string>, body: unknown, permission: string, nowMs: number): Error {
  const error = typeof body === 'object' && body !== null ? (body as { error?: { code?: unknown, message?: unknown } }).error : undefined
  const upstreamCode = typeof error?.code === 'string' ? error.code : undefined
  const requestId = headers['request-id']
  const details = { tenantId, status, ...(upstreamCode !== undefined ? { upstreamCode } : {}), ...(requestId !== undefined ? { requestId } : {}) }
  if (status === 401) {
    return new DirectoryConfigurationError(`Graph refused the app's token for tenant ${tenantId} (HTTP 401${upstreamCode !== undefined ? `, ${upstreamCode}` : ''}), even a fresh one: check the token's audience (${DEFAULT_GRAPH_SCOPE}) and that the app is consented in the tenant.`, details)
  }
  if (status === 403) {
    return new DirectoryConfigurationError(`The app may not read this from Graph in tenant ${tenantId} (HTTP 403${upstreamCode !== undefined ? `, ${upstreamCode}` : ''}): grant it the application permission ${permission} on Microsoft Graph, with admin consent.`, { ...details, missingPermission: permission })
  }
  if (status === 429 || status >= 500) {
    const retryAfterSeconds = parseRetryAfter(headers['retry-after'], nowMs)
    return new DirectoryUnavailableError(`Graph answered HTTP ${status} for tenant ${tenantId}.`, retryAfterSeconds, { throttled: status === 429 })
  }
  const message = typeof error?.message === 'string' ? `: ${error.message.slice(0, 300)}` : ''
  return new DirectoryRequestError(`Graph answered HTTP ${status}${upstreamCode !== undefined ? ` (${upstreamCode})` : ''}${message}`, details)
}

function subscriptionOf (o: GraphObject): ChangeSubscription | undefined {
  const expiresAt = typeof o.expirationDateTime === 'string' ? Date.parse(o.expirationDateTime) : NaN
  if (typeof o.id !== 'string' || Number.isNaN(expiresAt)) return undefined
  return { id: o.id, resource: typeof o.resource === 'string' ? o.resource : '', notificationUrl: typeof o.notificationUrl === 'string' ? o.notificationUrl : '', expiresAt }
}

function toUnavailable (err: unknown, tenantId: string): Error {
  if (err instanceof DirectoryUnavailableError || err instanceof DirectoryConfigurationError) return err
  if (err instanceof UpstreamUnavailableError) return new DirectoryUnavailableError(`Graph is unavailable for tenant ${tenantId}: ${err.message}`, err.retryAfterSeconds, { cause: err, throttled: err.status === 429 })
  if (err instanceof UpstreamError) return new DirectoryUnavailableError(`Graph could not be reached for tenant ${tenantId}: ${err.message}`, undefined, { cause: err })
  return err as Error
}
