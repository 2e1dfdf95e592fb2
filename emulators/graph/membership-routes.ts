// Group membership: memberOf / transitiveMemberOf of users, groups and service principals, members /
// transitiveMembers of groups (each with OData casts and a /$count segment), and the POST actions
// getMemberGroups, getMemberObjects (transitive ids, at most 11,000), checkMemberGroups and
// checkMemberObjects (at most 20 ids). Transitive closures come from the Directory, which is cycle-safe.
import type { ObjectKind } from '../tenant/model.ts'
import { isGuid } from '../tenant/model.ts'
import type { Family } from './auth.ts'
import { GraphError, badRequest, countSegmentUnsupported, invalidObjectId, segmentNotFound } from './errors.ts'
import { type Call, type RouteDef, jsonBody } from './http.ts'
import { type EntitySet, lookup } from './lookup.ts'
import { ENTITY_SET, record, resolveSelect } from './objects.ts'
import { type Item, compileFilter, compileSearch, contextUrl, countOf, isAdvanced, listResponse, resolveOrderBy } from './odata.ts'

export const MAX_MEMBER_GROUPS = 11_000
export const MAX_CHECK_IDS = 20

type Navigation = 'memberOf' | 'transitiveMemberOf' | 'members' | 'transitiveMembers'

/** OData casts on membership collections: directory kinds the emulator models, and ones it has none of. */
const CASTS: Record<string, ObjectKind | { set: string }> = {
  'microsoft.graph.user': 'user',
  'microsoft.graph.group': 'group',
  'microsoft.graph.serviceprincipal': 'servicePrincipal',
  'microsoft.graph.directoryrole': { set: 'directoryRoles' },
  'microsoft.graph.administrativeunit': { set: 'administrativeUnits' },
  'microsoft.graph.device': { set: 'devices' },
  'microsoft.graph.orgcontact': { set: 'contacts' }
}

const ALL_KINDS: ObjectKind[] = ['user', 'group', 'servicePrincipal']

function relatedIds (call: Call, subjectId: string, nav: Navigation): string[] {
  const t = call.tenant
  switch (nav) {
    case 'memberOf': return t.directParents(subjectId)
    case 'transitiveMemberOf': return t.transitiveParents(subjectId)
    case 'members': return t.directMembers(subjectId)
    case 'transitiveMembers': return t.transitiveMembers(subjectId)
  }
}

interface Collection {
  items: Item[]
  kinds: ObjectKind[]
  typeName: string
  contextSet: string
}

function collection (call: Call, set: EntitySet, nav: Navigation, cast: string | undefined): Collection {
  const params = call.request.params as Record<string, string>
  const subject = lookup(call.tenant, set, params.id ?? '')
  let castKind: ObjectKind | undefined
  let contextSet = 'directoryObjects'
  let none = false
  if (cast !== undefined) {
    const c = CASTS[cast.toLowerCase()]
    if (c === undefined) throw segmentNotFound(cast)
    if (typeof c === 'string') {
      castKind = c
      contextSet = ENTITY_SET[c]
    } else {
      none = true
      contextSet = c.set
    }
  }
  const items: Item[] = []
  if (!none) {
    for (const id of relatedIds(call, subject.object.id, nav)) {
      const o = call.tenant.get(id)
      if (o === undefined || (castKind !== undefined && o.kind !== castKind)) continue
      items.push({ kind: o.kind, rec: record(call.tenant, o) })
    }
  }
  const kinds = castKind !== undefined ? [castKind] : ALL_KINDS
  return { items, kinds, typeName: castKind ?? 'directoryObject', contextSet }
}

const referenceFilterUnsupported = (): GraphError =>
  new GraphError(400, 'Request_UnsupportedQuery', 'The specified filter to the reference property query is currently not supported.')

/**
 * A membership collection. [UNCONF] The OData cast is served without `ConsistencyLevel` (lenient, as
 * real clients rely on it, spec §2.3); $filter, $search and $orderby on these relationships are
 * advanced queries.
 */
function listNavigation (call: Call, set: EntitySet, nav: Navigation, cast: string | undefined): Record<string, unknown> {
  const c = collection(call, set, nav, cast)
  if (call.q.filter !== undefined && !isAdvanced(call.q)) throw referenceFilterUnsupported()
  if (call.q.orderby !== undefined && !isAdvanced(call.q)) throw new GraphError(400, 'Request_UnsupportedQuery', 'Sorting not supported for current query.')
  const select = resolveSelect(call.q.select, c.kinds, c.typeName)
  const params = call.request.params as Record<string, string>
  return listResponse(c.items, {
    request: call.request,
    origin: call.ctx.origin,
    codec: call.services.codec,
    q: call.q,
    routeKey: `${set}/${(params.id ?? '').toLowerCase()}/${nav}/${cast?.toLowerCase() ?? ''}`,
    contextSet: c.contextSet,
    select,
    withType: true,
    filter: compileFilter(call.q, c.kinds),
    search: compileSearch(call.q),
    orderby: resolveOrderBy(call.q, c.kinds, ['displayName', 'id'])
  })
}

function countNavigation (call: Call, set: EntitySet, nav: Navigation, cast: string | undefined): string {
  if (!call.q.eventual) throw countSegmentUnsupported()
  const c = collection(call, set, nav, cast)
  return String(countOf(c.items, compileFilter({ ...call.q, count: true }, c.kinds), compileSearch(call.q)))
}

// ---- POST actions -------------------------------------------------------------------------------------

// getMemberObjects would add directory roles and administrative units; the emulator models neither,
// so both actions answer the transitive groups.
function memberGroups (call: Call, set: EntitySet): Record<string, unknown> {
  const body = jsonBody(call.request)
  const flag = body.securityEnabledOnly
  if (typeof flag !== 'boolean') {
    throw badRequest('The \'securityEnabledOnly\' parameter is required and must be a Boolean.', 'Request_BadRequest')
  }
  const subject = lookup(call.tenant, set, (call.request.params as Record<string, string>).id ?? '')
  const ids = call.tenant.transitiveParents(subject.object.id).filter(id => !flag || call.tenant.groups.get(id)?.securityEnabled === true)
  if (ids.length > MAX_MEMBER_GROUPS) {
    // [UNCONF] wording; the code and the 11,000 cap are documented.
    throw new GraphError(400, 'Directory_ResultSizeLimitExceeded', `Request was unable to complete because the result size exceeds the limit of ${MAX_MEMBER_GROUPS}.`)
  }
  return { '@odata.context': contextUrl(call.ctx.origin, 'Collection(Edm.String)'), value: ids }
}

function checkMembers (call: Call, set: EntitySet, param: 'groupIds' | 'ids'): Record<string, unknown> {
  const body = jsonBody(call.request)
  const ids = body[param]
  if (!Array.isArray(ids) || ids.some(i => typeof i !== 'string')) {
    throw badRequest(`The '${param}' parameter is required and must be an array of object ids.`, 'Request_BadRequest')
  }
  if (ids.length > MAX_CHECK_IDS) {
    // [UNCONF] wording; the limit of 20 is documented.
    throw badRequest(`The number of ids in '${param}' exceeds the limit of ${MAX_CHECK_IDS}.`, 'Request_BadRequest')
  }
  for (const id of ids as string[]) if (!isGuid(id)) throw invalidObjectId(id)
  const subject = lookup(call.tenant, set, (call.request.params as Record<string, string>).id ?? '')
  const parents = new Set(call.tenant.transitiveParents(subject.object.id))
  return { '@odata.context': contextUrl(call.ctx.origin, 'Collection(Edm.String)'), value: (ids as string[]).filter(id => parents.has(id.toLowerCase())) }
}

// ---- routes -------------------------------------------------------------------------------------------

const COSTS: Record<Navigation, number> = { memberOf: 2, transitiveMemberOf: 2, members: 3, transitiveMembers: 5 }

export function membershipRoutes (): RouteDef[] {
  const defs: RouteDef[] = []
  const navigable: Array<[EntitySet, Family, Navigation[]]> = [
    ['users', 'userMemberships', ['memberOf', 'transitiveMemberOf']],
    ['servicePrincipals', 'servicePrincipalMemberships', ['memberOf', 'transitiveMemberOf']],
    ['groups', 'groupMembers', ['memberOf', 'transitiveMemberOf', 'members', 'transitiveMembers']]
  ]
  for (const [set, family, navs] of navigable) {
    for (const nav of navs) {
      const base = `/${set}/:id/${nav}`
      const cost = COSTS[nav]
      const castOf = (call: Call): string | undefined => (call.request.params as Record<string, string>).cast
      defs.push(
        { method: 'GET', url: base, family, cost, handler: call => listNavigation(call, set, nav, undefined) },
        { method: 'GET', url: `${base}/$count`, family, cost, handler: call => countNavigation(call, set, nav, undefined) },
        { method: 'GET', url: `${base}/:cast`, family, cost, handler: call => listNavigation(call, set, nav, castOf(call)) },
        { method: 'GET', url: `${base}/:cast/$count`, family, cost, handler: call => countNavigation(call, set, nav, castOf(call)) }
      )
    }
  }
  const actionFamilies: Array<[EntitySet, Family]> = [
    ['users', 'userMemberships'],
    ['groups', 'groupMembers'],
    ['servicePrincipals', 'servicePrincipalMemberships'],
    ['directoryObjects', 'directoryObjects']
  ]
  for (const [set, family] of actionFamilies) {
    defs.push(
      { method: 'POST', url: `/${set}/:id/getMemberGroups`, family, cost: 2, handler: call => memberGroups(call, set) },
      { method: 'POST', url: `/${set}/:id/getMemberObjects`, family, cost: 2, handler: call => memberGroups(call, set) },
      { method: 'POST', url: `/${set}/:id/checkMemberGroups`, family, cost: 4, handler: call => checkMembers(call, set, 'groupIds') },
      { method: 'POST', url: `/${set}/:id/checkMemberObjects`, family, cost: 4, handler: call => checkMembers(call, set, 'ids') }
    )
  }
  return defs
}
