// Entity and collection reads: /users, /groups, /servicePrincipals (list, $count, by key), the
// `(appId='…')` alternate key, /directoryObjects/{id} and POST /directoryObjects/getByIds.
import type { Directory, DirectoryObject, ObjectKind } from '../tenant/model.ts'
import type { Family } from './auth.ts'
import { badRequest, countSegmentUnsupported, invalidObjectId, unknownSelectProperty } from './errors.ts'
import { type Call, type RouteDef, jsonBody } from './http.ts'
import { type EntitySet, KIND_OF_SET, lookup } from './lookup.ts'
import { ENTITY_SET, NAVIGATION, ODATA_TYPE, project, record, resolveSelect } from './objects.ts'
import { type Item, compileFilter, compileSearch, contextUrl, countOf, listResponse, resolveOrderBy, withSelect } from './odata.ts'
import { isGuid } from '../tenant/model.ts'

export const MAX_GET_BY_IDS = 1000
/** Graph expands at most 20 related objects inline. */
export const EXPAND_LIMIT = 20

const SORTABLE: Record<ObjectKind, readonly string[]> = {
  user: ['displayName', 'userPrincipalName', 'mail', 'givenName', 'surname', 'id'],
  group: ['displayName', 'mail', 'id'],
  servicePrincipal: ['displayName', 'appId', 'id']
}

export function allOfKind (tenant: Directory, kind: ObjectKind): Item[] {
  const objects: DirectoryObject[] = kind === 'user'
    ? [...tenant.users.values()].map(o => ({ kind, object: o }))
    : kind === 'group'
      ? [...tenant.groups.values()].map(o => ({ kind, object: o }))
      : [...tenant.servicePrincipals.values()].map(o => ({ kind, object: o }))
  return objects.map(o => ({ kind: o.kind, rec: record(tenant, o) }))
}

/** Related objects for `$expand=<navigation>` (members, memberOf…), first 20, as Graph inlines them. */
function related (tenant: Directory, id: string, navigation: string): Array<Record<string, unknown>> {
  const ids = navigation === 'members'
    ? tenant.directMembers(id)
    : navigation === 'transitiveMembers'
      ? tenant.transitiveMembers(id)
      : navigation === 'memberOf' ? tenant.directParents(id) : tenant.transitiveParents(id)
  const out: Array<Record<string, unknown>> = []
  for (const rid of [...ids].sort()) {
    const o = tenant.get(rid)
    if (o === undefined) continue
    out.push(project(record(tenant, o), o.kind, undefined, true))
    if (out.length >= EXPAND_LIMIT) break
  }
  return out
}

export function resolveExpand (expand: readonly string[] | undefined, kind: ObjectKind): string[] {
  if (expand === undefined) return []
  return expand.map(e => {
    const nav = NAVIGATION[kind].find(n => n.toLowerCase() === e.toLowerCase())
    if (nav === undefined) throw unknownSelectProperty(e, kind)
    return nav
  })
}

function entity (call: Call, o: DirectoryObject, contextSet: string, withType: boolean): Record<string, unknown> {
  const kinds: ObjectKind[] = [o.kind]
  const select = resolveSelect(call.q.select, kinds, o.kind)
  const expand = resolveExpand(call.q.expand, o.kind)
  const body: Record<string, unknown> = { '@odata.context': contextUrl(call.ctx.origin, `${withSelect(contextSet, select)}/$entity`) }
  Object.assign(body, project(record(call.tenant, o), o.kind, select, withType))
  for (const nav of expand) body[nav] = related(call.tenant, o.object.id, nav)
  return body
}

function list (call: Call, kind: ObjectKind): Record<string, unknown> {
  const kinds: ObjectKind[] = [kind]
  const select = resolveSelect(call.q.select, kinds, kind)
  const expand = resolveExpand(call.q.expand, kind)
  const body = listResponse(allOfKind(call.tenant, kind), {
    request: call.request,
    origin: call.ctx.origin,
    codec: call.services.codec,
    q: call.q,
    routeKey: ENTITY_SET[kind],
    contextSet: ENTITY_SET[kind],
    select,
    withType: false,
    filter: compileFilter(call.q, kinds),
    search: compileSearch(call.q),
    orderby: resolveOrderBy(call.q, kinds, SORTABLE[kind])
  })
  if (expand.length > 0) {
    for (const item of body.value as Array<Record<string, unknown>>) {
      const id = item.id
      if (typeof id !== 'string') continue
      for (const nav of expand) item[nav] = related(call.tenant, id, nav)
    }
  }
  return body
}

function count (call: Call, kind: ObjectKind): string {
  if (!call.q.eventual) throw countSegmentUnsupported()
  return String(countOf(allOfKind(call.tenant, kind), compileFilter({ ...call.q, count: true }, [kind]), compileSearch(call.q)))
}

const param = (call: Call, name = 'id'): string => (call.request.params as Record<string, string>)[name] ?? ''

function getByIds (call: Call): Record<string, unknown> {
  const body = jsonBody(call.request)
  const ids = body.ids
  if (!Array.isArray(ids) || ids.some(i => typeof i !== 'string')) throw badRequest('The request must include \'ids\', an array of object ids.', 'Request_BadRequest')
  if (ids.length > MAX_GET_BY_IDS) throw badRequest(`The number of ids exceeds the limit of ${MAX_GET_BY_IDS}.`, 'Request_BadRequest')
  let types: ObjectKind[] | undefined
  if (body.types !== undefined && body.types !== null) {
    if (!Array.isArray(body.types)) throw badRequest('\'types\' must be an array of directory object type names.', 'Request_BadRequest')
    types = (body.types as unknown[]).map(t => {
      const name = String(t).toLowerCase().replace(/^#?microsoft\.graph\./, '')
      const kind = (Object.keys(ODATA_TYPE) as ObjectKind[]).find(k => k.toLowerCase() === name)
      if (kind === undefined) throw badRequest(`Invalid type '${String(t)}' specified in 'types'.`, 'Request_BadRequest')
      return kind
    })
  }
  const kinds: ObjectKind[] = types ?? ['user', 'group', 'servicePrincipal']
  const select = resolveSelect(call.q.select, kinds, 'directoryObject')
  const value: Array<Record<string, unknown>> = []
  const seen = new Set<string>()
  for (const raw of ids as string[]) {
    if (!isGuid(raw)) throw invalidObjectId(raw)
    const id = raw.toLowerCase()
    if (seen.has(id)) continue
    seen.add(id)
    const o = call.tenant.get(id)
    if (o === undefined || (types !== undefined && !types.includes(o.kind))) continue
    value.push(project(record(call.tenant, o), o.kind, select, true))
  }
  return { '@odata.context': contextUrl(call.ctx.origin, withSelect('directoryObjects', select)), value }
}

export function directoryRoutes (): RouteDef[] {
  const defs: RouteDef[] = []
  const sets: Array<[Exclude<EntitySet, 'directoryObjects'>, Family, number]> = [
    ['users', 'users', 2],
    ['groups', 'groups', 1],
    ['servicePrincipals', 'servicePrincipals', 1]
  ]
  for (const [set, family, listCost] of sets) {
    const kind = KIND_OF_SET[set]
    defs.push(
      { method: 'GET', url: `/${set}`, family, cost: listCost, handler: call => list(call, kind) },
      { method: 'GET', url: `/${set}/$count`, family, cost: listCost, handler: call => count(call, kind) },
      { method: 'GET', url: `/${set}/:id`, family, cost: 1, handler: call => entity(call, lookup(call.tenant, set, param(call)), set, false) }
    )
  }
  defs.push(
    { method: 'GET', url: '/directoryObjects/:id', family: 'directoryObjects', cost: 1, handler: call => entity(call, lookup(call.tenant, 'directoryObjects', param(call)), 'directoryObjects', true) },
    { method: 'POST', url: '/directoryObjects/getByIds', family: 'directoryObjects', cost: 3, handler: getByIds }
  )
  return defs
}
