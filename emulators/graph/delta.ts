// Delta queries (spec §2.6): GET /users/delta, /groups/delta, /servicePrincipals/delta.
//
// The initial round lists every object (ordered by id, paged with `$skiptoken`) and its last page carries
// an `@odata.deltaLink` whose `$deltatoken` encodes the kind, the change-log position the round started
// from (`tenant.currentSeq`), $select/members and when it was issued. A later round replays the
// Directory's change log after that position: updated objects with their (selected) properties, deleted
// ones as `{ id, @removed: { reason } }` (`changed` for a soft delete, which a restore can undo;
// `deleted` for a permanent one), and group membership changes as `members@delta`.
// `$deltatoken=latest` answers only a deltaLink. A token older than 7 days (by the emulator clock) or
// one the log no longer reaches answers 410 Gone with a `Location` to restart from.
import type { Change, ObjectKind } from '../tenant/model.ts'
import type { Family } from './auth.ts'
import { GraphError, badRequest } from './errors.ts'
import { idScope, parseFilter } from './filter.ts'
import type { Call, RouteDef } from './http.ts'
import { ENTITY_SET, ODATA_TYPE, project, record, resolveSelect } from './objects.ts'
import { contextUrl, linkWith, withSelect } from './odata.ts'

export const DELTA_TOKEN_LIFETIME_MS = 7 * 24 * 3600 * 1000
const DEFAULT_DELTA_PAGE = 100

interface DeltaQuery {
  kind: ObjectKind
  /** Selected properties (canonical), or null for the default set. */
  sel: string[] | null
  /** `members@delta` wanted (groups: `$select=…,members` or `$expand=members`). */
  mem: boolean
  /** Scoping filter `id eq '…' or …`. */
  ids: string[] | null
  /** Page size. */
  n: number
}

interface DeltaToken extends DeltaQuery {
  t: 'delta'
  s: number
  iat: number
}

interface PageToken extends DeltaQuery {
  t: 'dpage'
  phase: 'initial' | 'changes'
  /** Changes after `from` up to `upto` make this round (initial: the snapshot position). */
  from: number
  upto: number
  /** initial: last id served; changes: index of the next entry. */
  after: string | null
  off: number
  iat: number
}

const KINDS: Record<string, ObjectKind> = { users: 'user', groups: 'group', servicePrincipals: 'servicePrincipal' }

function queryOf (call: Call, kind: ObjectKind): DeltaQuery {
  const q = call.q
  let mem = false
  let select = q.select
  if (kind === 'group' && select !== undefined && select.some(s => s.toLowerCase() === 'members')) {
    mem = true
    select = select.filter(s => s.toLowerCase() !== 'members')
  }
  for (const e of q.expand ?? []) {
    if (kind === 'group' && e.toLowerCase() === 'members') mem = true
    else throw new GraphError(400, 'Request_UnsupportedQuery', `The '$expand=${e}' query option is not supported by delta queries.`)
  }
  if (q.orderby !== undefined) throw new GraphError(400, 'Request_UnsupportedQuery', 'The \'$orderby\' query option is not supported by delta queries.')
  if (q.search !== undefined) throw new GraphError(400, 'Request_UnsupportedQuery', 'The \'$search\' query option is not supported by delta queries.')
  const resolved = resolveSelect(select, [kind], kind)
  let ids: string[] | null = null
  if (q.filter !== undefined) {
    const scope = idScope(parseFilter(q.filter))
    if (scope === undefined) throw new GraphError(400, 'Request_UnsupportedQuery', 'Delta queries only support filtering by object id (\'id eq …\' joined by \'or\').')
    ids = scope
  }
  // [UNCONF] The delta overview says $top is not supported; the per-resource pages list it. It is
  // taken as the page size here, like Prefer: odata.maxpagesize.
  return { kind, sel: resolved === undefined || resolved.length === 0 ? null : resolved, mem, ids, n: q.top ?? q.maxPageSize ?? DEFAULT_DELTA_PAGE }
}

function item (call: Call, kind: ObjectKind, id: string, q: DeltaQuery): Record<string, unknown> | undefined {
  const o = call.tenant.get(id)
  if (o === undefined || o.kind !== kind) return undefined
  const out = project(record(call.tenant, o), kind, q.sel ?? undefined, false)
  // Delta always returns the id, whatever $select says: clients merge by it.
  if (!('id' in out)) out.id = o.object.id
  return out
}

function deltaLinkOf (call: Call, q: DeltaQuery, seq: number): string {
  const token: DeltaToken = { t: 'delta', kind: q.kind, sel: q.sel, mem: q.mem, ids: q.ids, n: q.n, s: seq, iat: call.ctx.clock.now() }
  return linkWith(call.ctx.origin, call.request, { $deltatoken: call.services.codec.encode(token) }, [], false)
}

function nextLinkOf (call: Call, page: PageToken): string {
  return linkWith(call.ctx.origin, call.request, { $skiptoken: call.services.codec.encode(page) }, [], false)
}

/**
 * 410 Gone with a Location to restart from. [UNCONF] The status and Location (an empty `$deltatoken`)
 * are documented for directory resets; the body's code `syncStateNotFound` is the one the docs give
 * as an example for expired tokens.
 */
function resync (call: Call, q: DeltaQuery): GraphError {
  const params: Record<string, string> = {}
  if (q.sel !== null) params.$select = [...q.sel, ...(q.mem ? ['members'] : [])].join(',')
  else if (q.mem) params.$expand = 'members'
  params.$deltatoken = ''
  const location = linkWith(call.ctx.origin, call.request, params, [], false)
  return new GraphError(410, 'syncStateNotFound', 'The delta token has expired or is no longer valid. Restart the synchronization from the Location URL with a full sync.', { location })
}

function body (call: Call, q: DeltaQuery, value: unknown[], link: { next?: string, delta?: string }): Record<string, unknown> {
  const out: Record<string, unknown> = {
    '@odata.context': contextUrl(call.ctx.origin, withSelect(ENTITY_SET[q.kind], q.sel ?? undefined))
  }
  if (link.next !== undefined) out['@odata.nextLink'] = link.next
  if (link.delta !== undefined) out['@odata.deltaLink'] = link.delta
  out.value = value
  return out
}

function initialPage (call: Call, page: PageToken): Record<string, unknown> {
  const q: DeltaQuery = page
  const all = allIds(call, q.kind).filter(id => q.ids === null || q.ids.includes(id)).sort()
  const rest = page.after === null ? all : all.filter(id => id > (page.after as string))
  const value: Array<Record<string, unknown>> = []
  let last: string | null = page.after
  for (const id of rest) {
    if (value.length >= q.n) break
    const it = item(call, q.kind, id, q)
    last = id
    if (it === undefined) continue
    if (q.mem && q.kind === 'group') {
      it['members@delta'] = call.tenant.directMembers(id).sort().map(m => ({ '@odata.type': ODATA_TYPE[call.tenant.kindOf(m) ?? 'user'], id: m }))
    }
    value.push(it)
  }
  const more = last !== null && rest.some(id => id > (last as string))
  if (more) return body(call, q, value, { next: nextLinkOf(call, { ...page, after: last }) })
  return body(call, q, value, { delta: deltaLinkOf(call, q, page.upto) })
}

interface Net {
  /** Soft-deleted (`changed`: restorable) or deleted for good, as the latest change left it. */
  removed: 'changed' | 'deleted' | null
  updated: boolean
  members: Map<string, { added: boolean, kind: ObjectKind }>
}

/** The net effect of the changes in (from, upto] on objects of one kind, ordered by id. */
function netChanges (changes: Change[], q: DeltaQuery, upto: number): Array<[string, Net]> {
  const net = new Map<string, Net>()
  for (const c of changes) {
    if (c.seq > upto || c.kind !== q.kind) continue
    if (q.ids !== null && !q.ids.includes(c.id)) continue
    let n = net.get(c.id)
    if (n === undefined) net.set(c.id, (n = { removed: null, updated: false, members: new Map() }))
    if (c.op === 'member-added' || c.op === 'member-removed') {
      n.members.set(c.memberId, { added: c.op === 'member-added', kind: c.memberKind })
    } else if (c.op === 'updated') {
      n.removed = null
      n.updated = true
    } else {
      n.removed = c.op === 'deleted' ? 'deleted' : 'changed'
    }
  }
  return [...net.entries()]
    .filter(([, n]) => n.removed !== null || n.updated || (q.mem && n.members.size > 0))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

function changesPage (call: Call, page: PageToken): Record<string, unknown> {
  const q: DeltaQuery = page
  const changes = call.tenant.changesSince(page.from)
  if (changes === undefined) throw resync(call, q)
  const entries = netChanges(changes, q, page.upto)
  const slice = entries.slice(page.off, page.off + q.n)
  const value = slice.map(([id, n]) => {
    if (n.removed !== null) return { id, '@removed': { reason: n.removed } }
    const it = item(call, q.kind, id, q)
    // Deleted after this round's snapshot: restorable (`changed`) while it is in deleted items.
    if (it === undefined) return { id, '@removed': { reason: call.tenant.deletedItem(id) !== undefined ? 'changed' : 'deleted' } }
    if (q.mem && n.members.size > 0) {
      it['members@delta'] = [...n.members.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([m, change]) => ({
        '@odata.type': ODATA_TYPE[change.kind],
        id: m,
        ...(change.added ? {} : { '@removed': { reason: 'deleted' } })
      }))
    }
    return it
  })
  if (page.off + q.n < entries.length) return body(call, q, value, { next: nextLinkOf(call, { ...page, off: page.off + q.n }) })
  return body(call, q, value, { delta: deltaLinkOf(call, q, page.upto) })
}

function allIds (call: Call, kind: ObjectKind): string[] {
  const t = call.tenant
  return [...(kind === 'user' ? t.users.keys() : kind === 'group' ? t.groups.keys() : t.servicePrincipals.keys())]
}

const invalidToken = (which: string): GraphError => badRequest(`The ${which} is malformed or was not issued for this delta query.`, 'Request_BadRequest')

function isDeltaQuery (s: Record<string, unknown>, kind: ObjectKind): boolean {
  return s.kind === kind && (s.sel === null || Array.isArray(s.sel)) && typeof s.mem === 'boolean' &&
    (s.ids === null || Array.isArray(s.ids)) && typeof s.n === 'number' && typeof s.iat === 'number'
}

function expired (call: Call, iat: number): boolean {
  return call.ctx.clock.now() - iat > DELTA_TOKEN_LIFETIME_MS
}

function delta (call: Call, kind: ObjectKind): Record<string, unknown> {
  const { q } = call
  const now = call.ctx.clock.now()
  const { codec } = call.services
  if (q.skiptoken !== undefined) {
    const s = codec.decode(q.skiptoken)
    if (s === undefined || s.t !== 'dpage' || !isDeltaQuery(s, kind)) throw invalidToken('$skiptoken')
    const page = s as unknown as PageToken
    if (q.maxPageSize !== undefined) page.n = q.maxPageSize
    if (expired(call, page.iat)) throw resync(call, page)
    return page.phase === 'initial' ? initialPage(call, page) : changesPage(call, page)
  }
  if (q.deltatoken !== undefined && q.deltatoken !== '') {
    if (q.deltatoken.toLowerCase() === 'latest') {
      const dq = queryOf(call, kind)
      return body(call, dq, [], { delta: deltaLinkOf(call, dq, call.tenant.currentSeq) })
    }
    const s = codec.decode(q.deltatoken)
    if (s === undefined || s.t !== 'delta' || !isDeltaQuery(s, kind) || typeof s.s !== 'number') throw invalidToken('$deltatoken')
    const token = s as unknown as DeltaToken
    const dq: DeltaQuery = { kind, sel: token.sel, mem: token.mem, ids: token.ids, n: q.maxPageSize ?? token.n }
    if (expired(call, token.iat)) throw resync(call, dq)
    if (call.tenant.changesSince(token.s) === undefined) throw resync(call, dq)
    return changesPage(call, { ...dq, t: 'dpage', phase: 'changes', from: token.s, upto: call.tenant.currentSeq, after: null, off: 0, iat: now })
  }
  // Initial round (also `$deltatoken=` empty, the restart URL a 410 hands out).
  const dq = queryOf(call, kind)
  return initialPage(call, { ...dq, t: 'dpage', phase: 'initial', from: call.tenant.currentSeq, upto: call.tenant.currentSeq, after: null, off: 0, iat: now })
}

export function deltaRoutes (): RouteDef[] {
  return Object.entries(KINDS).map(([set, kind]) => ({
    method: 'GET' as const,
    url: `/${set}/delta`,
    family: set as Family,
    cost: 1,
    handler: (call: Call) => delta(call, kind)
  }))
}
