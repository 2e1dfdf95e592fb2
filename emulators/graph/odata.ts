// OData query options as Graph's directory implements them ($select, $filter, $top, $count, $orderby,
// $search, $expand, Prefer: odata.maxpagesize), `@odata.context` URLs, and server-driven paging with
// opaque `$skiptoken`s. Collections are ordered stably ($orderby keys, then id) and a page token holds
// the sort key of the last item served, so concurrent changes never make a page repeat or skip an item.
import type { FastifyRequest } from 'fastify'
import type { ObjectKind } from '../tenant/model.ts'
import { GraphError, badRequest, invalidPageSize, invalidSkipToken } from './errors.ts'
import { type FilterNode, type FilterOperator, type FilterSchema, type FilterableProperty, matches, parseFilter, validateFilter } from './filter.ts'
import { type Rec, canonicalProperty, project } from './objects.ts'
import type { TokenCodec } from './tokens.ts'

export const DEFAULT_PAGE_SIZE = 100
export const MAX_PAGE_SIZE = 999

export interface OrderBy {
  property: string
  desc: boolean
}

export interface QueryOptions {
  select?: string[]
  expand?: string[]
  filter?: string
  top?: number
  /** `$count=true`. */
  count: boolean
  orderby?: OrderBy[]
  search?: string
  skiptoken?: string
  deltatoken?: string
  /** `ConsistencyLevel: eventual` was sent. */
  eventual: boolean
  /** From `Prefer: odata.maxpagesize=N`. */
  maxPageSize?: number
}

/** Advanced query mode: `ConsistencyLevel: eventual` and `$count=true` together. */
export const isAdvanced = (q: QueryOptions): boolean => q.eventual && q.count

const SINGLE_VALUED = ['$select', '$expand', '$filter', '$top', '$count', '$orderby', '$search', '$skiptoken', '$deltatoken', '$skip']

function list (raw: string): string[] {
  // Split on commas outside parentheses (`members($select=id),memberOf`), dropping nested options.
  const out: string[] = []
  let depth = 0
  let current = ''
  for (const ch of raw) {
    if (ch === '(') depth++
    if (ch === ')') depth = Math.max(0, depth - 1)
    if (ch === ',' && depth === 0) { out.push(current); current = ''; continue }
    current += ch
  }
  out.push(current)
  return out.map(s => s.replace(/\(.*\)$/s, '').trim()).filter(s => s !== '')
}

export function parseQuery (request: FastifyRequest): QueryOptions {
  const raw = (request.query ?? {}) as Record<string, string | string[] | undefined>
  const opts = new Map<string, string>()
  for (const [key, value] of Object.entries(raw)) {
    const k = key.toLowerCase()
    if (!k.startsWith('$')) continue
    const values = Array.isArray(value) ? value : [value ?? '']
    if ((values.length > 1 || opts.has(k)) && SINGLE_VALUED.includes(k)) {
      throw badRequest(`Query option '${key}' was specified more than once, but it must be specified at most once.`)
    }
    opts.set(k, values[0] ?? '')
  }
  const q: QueryOptions = { count: false, eventual: String(request.headers.consistencylevel ?? '').toLowerCase() === 'eventual' }

  if (opts.has('$skip')) throw badRequest('\'$skip\' is not supported by the service.', 'Request_BadRequest')
  const select = opts.get('$select')
  if (select !== undefined) q.select = list(select)
  const expand = opts.get('$expand')
  if (expand !== undefined) q.expand = list(expand)
  const filter = opts.get('$filter')
  if (filter !== undefined && filter.trim() !== '') q.filter = filter
  const top = opts.get('$top')
  if (top !== undefined) {
    if (!/^\d+$/.test(top.trim())) throw invalidPageSize(top)
    const n = Number(top)
    if (n < 1 || n > MAX_PAGE_SIZE) throw invalidPageSize(top)
    q.top = n
  }
  const count = opts.get('$count')
  if (count !== undefined) {
    const c = count.toLowerCase()
    if (c !== 'true' && c !== 'false') throw badRequest(`The value '${count}' is not valid for the query option '$count'. Valid values are 'true' and 'false'.`)
    q.count = c === 'true'
  }
  const orderby = opts.get('$orderby')
  if (orderby !== undefined && orderby.trim() !== '') {
    q.orderby = list(orderby).map(term => {
      const [property = '', dir = 'asc', ...rest] = term.split(/\s+/)
      if (rest.length > 0 || !['asc', 'desc'].includes(dir.toLowerCase())) throw badRequest(`Invalid $orderby clause '${term}'.`)
      return { property, desc: dir.toLowerCase() === 'desc' }
    })
  }
  const search = opts.get('$search')
  if (search !== undefined) q.search = search
  const skiptoken = opts.get('$skiptoken')
  if (skiptoken !== undefined) q.skiptoken = skiptoken
  const deltatoken = opts.get('$deltatoken')
  if (deltatoken !== undefined) q.deltatoken = deltatoken

  const prefer = request.headers.prefer
  const preferText = Array.isArray(prefer) ? prefer.join(',') : prefer ?? ''
  const m = /odata\.maxpagesize\s*=\s*(\d+)/i.exec(preferText)
  if (m !== null) q.maxPageSize = Math.min(MAX_PAGE_SIZE, Math.max(1, Number(m[1])))
  return q
}

/** Page size: `$top`, else `Prefer: odata.maxpagesize`, else 100. */
export const pageSizeOf = (q: QueryOptions, fallback = DEFAULT_PAGE_SIZE): number => q.top ?? q.maxPageSize ?? fallback

// ---- $filter schemas ----------------------------------------------------------------------------------

const ops = (...o: FilterOperator[]): ReadonlySet<FilterOperator> => new Set(o)
const EQ = ops('eq', 'ne', 'not', 'in')
const STR = ops('eq', 'ne', 'not', 'in', 'startswith')
const STR_END = ops('eq', 'ne', 'not', 'in', 'startswith', 'endswith')
const BOOL = ops('eq', 'ne', 'not')
const COLL = ops('any', 'eq', 'ne', 'not', 'startswith')
const COLL_END = ops('any', 'eq', 'ne', 'not', 'startswith', 'endswith')
const p = (name: string, type: FilterableProperty['type'], o: ReadonlySet<FilterOperator>): FilterableProperty => ({ name, type, ops: o })

// endsWith is supported on mail, otherMails, userPrincipalName and proxyAddresses only (aad-advanced-queries).
export const FILTER_SCHEMAS: Record<ObjectKind, FilterSchema> = {
  user: {
    resource: 'User',
    properties: [
      p('id', 'string', EQ), p('userPrincipalName', 'string', STR_END), p('mail', 'string', STR_END), p('displayName', 'string', STR),
      p('givenName', 'string', STR), p('surname', 'string', STR), p('jobTitle', 'string', STR), p('department', 'string', STR),
      p('mailNickname', 'string', STR), p('employeeId', 'string', STR), p('userType', 'string', EQ), p('accountEnabled', 'boolean', BOOL),
      p('otherMails', 'collection', COLL_END), p('proxyAddresses', 'collection', COLL_END), p('imAddresses', 'collection', COLL)
    ]
  },
  group: {
    resource: 'Group',
    properties: [
      p('id', 'string', EQ), p('displayName', 'string', STR), p('mail', 'string', STR_END), p('mailNickname', 'string', STR),
      p('securityEnabled', 'boolean', BOOL), p('mailEnabled', 'boolean', BOOL), p('groupTypes', 'collection', COLL),
      p('proxyAddresses', 'collection', COLL_END)
    ]
  },
  servicePrincipal: {
    resource: 'ServicePrincipal',
    properties: [
      p('id', 'string', EQ), p('appId', 'string', EQ), p('displayName', 'string', STR), p('servicePrincipalType', 'string', EQ),
      p('accountEnabled', 'boolean', BOOL), p('appOwnerOrganizationId', 'string', EQ), p('servicePrincipalNames', 'collection', COLL), p('tags', 'collection', COLL)
    ]
  }
}

/** The filter schema of a collection whose items may be of several kinds (`DirectoryObject`). */
export function filterSchemaFor (kinds: readonly ObjectKind[]): FilterSchema {
  if (kinds.length === 1) return FILTER_SCHEMAS[kinds[0] as ObjectKind]
  const properties: FilterableProperty[] = []
  for (const k of kinds) for (const prop of FILTER_SCHEMAS[k].properties) if (!properties.some(x => x.name === prop.name)) properties.push(prop)
  return { resource: 'DirectoryObject', properties }
}

export function compileFilter (q: QueryOptions, kinds: readonly ObjectKind[]): FilterNode | undefined {
  if (q.filter === undefined) return undefined
  return validateFilter(parseFilter(q.filter), filterSchemaFor(kinds), isAdvanced(q))
}

// ---- $search ------------------------------------------------------------------------------------------

const SEARCHABLE = ['displayName', 'description', 'mail', 'mailNickname', 'userPrincipalName', 'givenName', 'surname', 'appId']

/**
 * `$search="property:text"` clauses joined by AND/OR (needs `ConsistencyLevel: eventual`). Entra tokenizes
 * values; here a clause matches when a word of the property starts with the text (case-insensitive).
 */
export function compileSearch (q: QueryOptions): ((rec: Rec) => boolean) | undefined {
  if (q.search === undefined) return undefined
  if (!q.eventual) {
    throw new GraphError(400, 'Request_UnsupportedQuery', 'Request with $search query parameter only works through MSGraph with a special request header: \'ConsistencyLevel: eventual\'')
  }
  const clauses = [...q.search.matchAll(/"([^"]*)"|\b(AND|OR)\b/g)]
  if (clauses.length === 0) throw badRequest(`Invalid $search clause '${q.search}'.`, 'Request_UnsupportedQuery')
  let expr: ((rec: Rec) => boolean) | undefined
  let join: 'AND' | 'OR' = 'AND'
  for (const m of clauses) {
    if (m[2] !== undefined) { join = m[2] as 'AND' | 'OR'; continue }
    const [prop = '', ...rest] = (m[1] ?? '').split(':')
    const text = rest.join(':').toLowerCase()
    const name = SEARCHABLE.find(s => s.toLowerCase() === prop.toLowerCase())
    if (name === undefined || text === '') throw new GraphError(400, 'Request_UnsupportedQuery', `Unsupported or invalid search clause for property '${prop}'.`)
    const clause = (rec: Rec): boolean => {
      const v = rec[name]
      return typeof v === 'string' && v.toLowerCase().split(/[^\p{L}\p{N}]+/u).some(w => w.startsWith(text))
    }
    const prev = expr
    expr = prev === undefined ? clause : join === 'AND' ? (r: Rec) => prev(r) && clause(r) : (r: Rec) => prev(r) || clause(r)
    join = 'AND'
  }
  return expr
}

// ---- @odata.context and public URLs -------------------------------------------------------------------

export const contextUrl = (origin: string, fragment: string): string => `${origin}/v1.0/$metadata#${fragment}`

/** `users` → `users(displayName,id)` when $select is used (spec §2.1). */
export const withSelect = (set: string, select: readonly string[] | undefined): string =>
  select === undefined ? set : `${set}(${select.join(',')})`

/** The URL the client called (before the emulator's rewrites): path and raw query parameters. */
export function publicUrl (request: FastifyRequest): { path: string, params: string[] } {
  const original = request.originalUrl
  const q = original.indexOf('?')
  const path = q === -1 ? original : original.slice(0, q)
  const params = q === -1 ? [] : original.slice(q + 1).split('&').filter(s => s !== '')
  return { path, params }
}

function paramName (raw: string): string {
  const eq = raw.indexOf('=')
  const name = eq === -1 ? raw : raw.slice(0, eq)
  try {
    return decodeURIComponent(name).toLowerCase()
  } catch {
    return name.toLowerCase()
  }
}

/**
 * `${origin}${path}?…` keeping the caller's other query options verbatim and replacing every
 * `drop` option (e.g. `$skiptoken`) by `add`.
 */
export function linkWith (origin: string, request: FastifyRequest, add: Record<string, string>, drop: readonly string[], keep = true): string {
  const { path, params } = publicUrl(request)
  const dropped = new Set([...drop, ...Object.keys(add)].map(s => s.toLowerCase()))
  const kept = keep ? params.filter(s => !dropped.has(paramName(s))) : []
  const added = Object.entries(add).map(([k, v]) => `${k}=${encodeURIComponent(v).replace(/%2C/g, ',')}`)
  const all = [...kept, ...added]
  return `${origin}${path}${all.length > 0 ? `?${all.join('&')}` : ''}`
}

// ---- sorting and paging -------------------------------------------------------------------------------

type Key = string | number | boolean | null

function sortKeyOf (rec: Rec, orderby: readonly OrderBy[]): Key[] {
  const keys: Key[] = orderby.map(o => {
    const v = rec[o.property]
    return typeof v === 'string' ? v.toLowerCase() : typeof v === 'number' || typeof v === 'boolean' ? v : null
  })
  keys.push(rec.id.toLowerCase())
  return keys
}

function compareKeys (a: readonly Key[], b: readonly Key[], orderby: readonly OrderBy[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? null
    const y = b[i] ?? null
    if (x === y) continue
    const desc = orderby[i]?.desc === true
    // nulls sort last ascending
    let c: number
    if (x === null) c = 1
    else if (y === null) c = -1
    else c = x < y ? -1 : 1
    return desc ? -c : c
  }
  return 0
}

export function resolveOrderBy (q: QueryOptions, kinds: readonly ObjectKind[], sortable: readonly string[]): OrderBy[] {
  if (q.orderby === undefined) return []
  if (q.filter !== undefined && !isAdvanced(q)) {
    throw new GraphError(400, 'Request_UnsupportedQuery', 'Sorting not supported for current query.')
  }
  return q.orderby.map(o => {
    const name = canonicalProperty(o.property, kinds)
    if (name === undefined || !sortable.includes(name)) throw new GraphError(400, 'Request_UnsupportedQuery', 'Sorting not supported for current query.')
    return { property: name, desc: o.desc }
  })
}

export interface Item {
  kind: ObjectKind
  rec: Rec
}

export interface ListSpec {
  request: FastifyRequest
  origin: string
  codec: TokenCodec
  q: QueryOptions
  /** Binds page tokens to one collection. */
  routeKey: string
  /** e.g. `users`, `directoryObjects`, `groups`. */
  contextSet: string
  select: string[] | undefined
  /** Emit `@odata.type` on every item (polymorphic collections). */
  withType: boolean
  filter?: FilterNode
  search?: (rec: Rec) => boolean
  orderby?: OrderBy[]
}

/** Filters, counts, sorts and pages `items`; the response body of a collection GET. */
export function listResponse (items: Item[], spec: ListSpec): Record<string, unknown> {
  const { q } = spec
  const orderby = spec.orderby ?? []
  let selected = items
  const filter = spec.filter
  if (filter !== undefined) selected = selected.filter(i => matches(filter, i.rec))
  const search = spec.search
  if (search !== undefined) selected = selected.filter(i => search(i.rec))
  const keyed = selected.map(i => ({ i, key: sortKeyOf(i.rec, orderby) }))
  keyed.sort((a, b) => compareKeys(a.key, b.key, orderby))

  let start = 0
  if (q.skiptoken !== undefined) {
    const state = spec.codec.decode(q.skiptoken)
    if (state === undefined || state.t !== 'page' || state.r !== spec.routeKey || !Array.isArray(state.k)) throw invalidSkipToken()
    const after = state.k as Key[]
    start = keyed.findIndex(x => compareKeys(x.key, after, orderby) > 0)
    if (start === -1) start = keyed.length
  }
  const size = pageSizeOf(q)
  const page = keyed.slice(start, start + size)
  const body: Record<string, unknown> = { '@odata.context': contextUrl(spec.origin, withSelect(spec.contextSet, spec.select)) }
  if (isAdvanced(q)) body['@odata.count'] = selected.length
  if (start + size < keyed.length) {
    const last = page[page.length - 1]
    const token = spec.codec.encode({ t: 'page', r: spec.routeKey, k: last?.key ?? [] })
    body['@odata.nextLink'] = linkWith(spec.origin, spec.request, { $skiptoken: token }, ['$skiptoken'])
  }
  body.value = page.map(x => project(x.i.rec, x.i.kind, spec.select, spec.withType))
  return body
}

/** The number a `/$count` segment answers: the collection after $filter and $search. */
export function countOf (items: Item[], filter: FilterNode | undefined, search: ((rec: Rec) => boolean) | undefined): number {
  return items.filter(i => (filter === undefined || matches(filter, i.rec)) && (search === undefined || search(i.rec))).length
}
