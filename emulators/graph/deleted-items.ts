// Deletion as Entra does it, seen through Graph: DELETE /users/{id}, /groups/{id} and
// /servicePrincipals/{id} soft-delete into deleted items; GET /directory/deletedItems/{cast} lists them
// (the cast is required), GET /directory/deletedItems/{id} reads one, POST …/{id}/restore brings it back
// with its memberships and DELETE …/{id} purges it. A soft-deleted object is not found by any other
// route. Items stay 30 days by the emulator clock, then they are purged (delta: `@removed: deleted`).
import { type Directory, DirectoryError, type DeletedItem, type DirectoryObject, type ObjectKind, isDistributionGroup } from '../tenant/model.ts'
import { FAMILY_ROLES, WRITE_ROLES, holdsRole } from './auth.ts'
import { GraphError, badRequest, insufficientPrivileges, invalidObjectId, resourceNotFound, segmentNotFound } from './errors.ts'
import type { Call, RouteDef } from './http.ts'
import { type EntitySet, KIND_OF_SET, lookup } from './lookup.ts'
import { DEFAULT_PROPS, ENTITY_SET, type Rec, project, record, resolveSelect } from './objects.ts'
import { type Item, compileFilter, compileSearch, contextUrl, listResponse, resolveOrderBy, withSelect } from './odata.ts'
import { isGuid } from '../tenant/model.ts'

/** The casts `GET /directory/deletedItems/{cast}` accepts: the kinds modelled, and two it has none of. */
const DELETED_CASTS: Record<string, ObjectKind | 'none'> = {
  'microsoft.graph.user': 'user',
  'microsoft.graph.group': 'group',
  'microsoft.graph.serviceprincipal': 'servicePrincipal',
  'microsoft.graph.application': 'none',
  'microsoft.graph.administrativeunit': 'none'
}

/** Properties `$orderby` accepts on deleted items (the list page's table), plus id. */
const SORTABLE: Record<ObjectKind, readonly string[]> = {
  user: ['deletedDateTime', 'displayName', 'userPrincipalName', 'id'],
  group: ['deletedDateTime', 'displayName', 'id'],
  servicePrincipal: ['deletedDateTime', 'displayName', 'id']
}

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')

/**
 * A deleted item as Graph shows it: `deletedDateTime` set and, for a user, the userPrincipalName
 * prefixed with its object id without hyphens, which frees the name for another user. [UNCONF] The
 * prefix is how Entra's deleted users are seen in practice, not in the pages read.
 */
function deletedRecord (tenant: Directory, item: DeletedItem): Rec {
  const rec = record(tenant, { kind: item.kind, object: item.object } as DirectoryObject)
  rec.deletedDateTime = iso(item.deletedAt)
  if (item.kind === 'user') rec.userPrincipalName = `${item.object.id.replace(/-/g, '')}${item.object.userPrincipalName}`
  return rec
}

/** Default properties plus `deletedDateTime` (users' default set lacks it). [UNCONF] */
function withDeletedDateTime (value: Array<Record<string, unknown>>, tenant: Directory, selected: boolean): void {
  if (selected) return
  for (const v of value) {
    const item = typeof v.id === 'string' ? tenant.deletedItem(v.id) : undefined
    if (item !== undefined && !('deletedDateTime' in v)) v.deletedDateTime = iso(item.deletedAt)
  }
}

const param = (call: Call, name = 'id'): string => (call.request.params as Record<string, string>)[name] ?? ''

function requireWrite (call: Call, kind: ObjectKind): void {
  if (!holdsRole(call.caller, WRITE_ROLES[kind])) throw insufficientPrivileges()
}

/** DirectoryError → Graph's answer. */
function graphError (err: unknown, id: string, item?: DeletedItem): unknown {
  if (!(err instanceof DirectoryError)) return err
  if (err.code === 'not-found') return resourceNotFound(id)
  if (err.code === 'conflict') {
    // [UNCONF] wording: the one Entra gives for a taken userPrincipalName when creating a user.
    const property = item?.kind === 'servicePrincipal' ? 'appId' : 'userPrincipalName'
    return badRequest(`Another object with the same value for property ${property} already exists.`, 'Request_BadRequest')
  }
  return badRequest(err.message, 'Request_BadRequest')
}

function listDeleted (call: Call): Record<string, unknown> {
  const cast = param(call, 'key')
  const kind = DELETED_CASTS[cast.toLowerCase()]
  if (kind === undefined) throw segmentNotFound(cast)
  if (kind === 'none') {
    const set = cast.toLowerCase().endsWith('application') ? 'applications' : 'administrativeUnits'
    return { '@odata.context': contextUrl(call.ctx.origin, set), value: [] }
  }
  if (!holdsRole(call.caller, FAMILY_ROLES[ENTITY_SET[kind] as 'users' | 'groups' | 'servicePrincipals'])) throw insufficientPrivileges()
  const kinds: ObjectKind[] = [kind]
  const select = resolveSelect(call.q.select, kinds, kind)
  const items: Item[] = [...call.tenant.deleted.values()].filter(i => i.kind === kind).map(i => ({ kind, rec: deletedRecord(call.tenant, i) }))
  const body = listResponse(items, {
    request: call.request,
    origin: call.ctx.origin,
    codec: call.services.codec,
    q: call.q,
    routeKey: `deletedItems/${kind}`,
    // The page's example names the entity set, not the deleted-items path.
    contextSet: ENTITY_SET[kind],
    select,
    withType: false,
    filter: compileFilter(call.q, kinds),
    search: compileSearch(call.q),
    orderby: resolveOrderBy(call.q, kinds, SORTABLE[kind])
  })
  withDeletedDateTime(body.value as Array<Record<string, unknown>>, call.tenant, select !== undefined)
  return body
}

function deletedItemOf (call: Call, id: string): DeletedItem {
  if (!isGuid(id)) throw invalidObjectId(id)
  const item = call.tenant.deletedItem(id)
  if (item === undefined) throw resourceNotFound(id)
  return item
}

function entityOf (call: Call, kind: ObjectKind, rec: Rec): Record<string, unknown> {
  const select = resolveSelect(call.q.select, [kind], kind)
  const body: Record<string, unknown> = { '@odata.context': contextUrl(call.ctx.origin, `${withSelect('directoryObjects', select)}/$entity`) }
  Object.assign(body, project(rec, kind, select ?? [...DEFAULT_PROPS[kind], ...(DEFAULT_PROPS[kind].includes('deletedDateTime') ? [] : ['deletedDateTime'])], true))
  return body
}

function getDeleted (call: Call): Record<string, unknown> {
  const key = param(call, 'key')
  // GET /directory/deletedItems/{cast} and /{id} share the path.
  if (!isGuid(key)) return listDeleted(call)
  const item = deletedItemOf(call, key)
  return entityOf(call, item.kind, deletedRecord(call.tenant, item))
}

function restoreDeleted (call: Call): Record<string, unknown> {
  const id = param(call)
  const item = deletedItemOf(call, id)
  requireWrite(call, item.kind)
  let restored: DirectoryObject
  try {
    restored = call.tenant.restore(id)
  } catch (err) {
    throw graphError(err, id, item)
  }
  // The object as restored (with a replication lag, readers see it only when the lag has passed).
  const body: Record<string, unknown> = { '@odata.context': contextUrl(call.ctx.origin, 'directoryObjects/$entity') }
  Object.assign(body, project(record(call.tenant, restored), restored.kind, undefined, true))
  return body
}

async function purgeDeleted (call: Call): Promise<undefined> {
  const id = param(call)
  const item = deletedItemOf(call, id)
  requireWrite(call, item.kind)
  try {
    call.tenant.delete(id, { permanent: true })
  } catch (err) {
    throw graphError(err, id, item)
  }
  await call.reply.code(204).send()
  return undefined
}

async function deleteObject (call: Call, set: Exclude<EntitySet, 'directoryObjects'>): Promise<undefined> {
  const found = lookup(call.tenant, set, param(call))
  requireWrite(call, KIND_OF_SET[set])
  if (found.kind === 'group' && isDistributionGroup(found.object)) {
    // [UNCONF] Graph does not manage distribution lists (Exchange does); wording as for their updates.
    throw new GraphError(400, 'Request_BadRequest', 'Cannot Update a mail-enabled security groups and or distribution list.')
  }
  try {
    call.tenant.delete(found.object.id)
  } catch (err) {
    throw graphError(err, found.object.id)
  }
  await call.reply.code(204).send()
  return undefined
}

export function deletedItemRoutes (): RouteDef[] {
  return [
    { method: 'DELETE', url: '/users/:id', family: 'directoryWrite', cost: 1, handler: async call => await deleteObject(call, 'users') },
    { method: 'DELETE', url: '/groups/:id', family: 'directoryWrite', cost: 1, handler: async call => await deleteObject(call, 'groups') },
    { method: 'DELETE', url: '/servicePrincipals/:id', family: 'directoryWrite', cost: 1, handler: async call => await deleteObject(call, 'servicePrincipals') },
    {
      method: 'GET',
      url: '/directory/deletedItems',
      family: 'directoryObjects',
      cost: 1,
      // [UNCONF] The list page says a request without the cast "is not supported"; the answer is chosen.
      handler: () => { throw badRequest('The OData cast type (for example microsoft.graph.user) is a required part of the URI.', 'Request_BadRequest') }
    },
    { method: 'GET', url: '/directory/deletedItems/:key', family: 'directoryObjects', cost: 1, handler: getDeleted },
    { method: 'POST', url: '/directory/deletedItems/:id/restore', family: 'directoryWrite', cost: 1, handler: restoreDeleted },
    { method: 'DELETE', url: '/directory/deletedItems/:id', family: 'directoryWrite', cost: 1, handler: purgeDeleted }
  ]
}

/** `/v1.0/directory/deleteditems…` (any case, as the list page spells it) → `/v1.0/directory/deletedItems…`. */
export function rewriteDeletedItems (url: string): string {
  return url.replace(/^\/v1\.0\/directory\/deleteditems(?=\/|\?|$)/i, '/v1.0/directory/deletedItems')
}
