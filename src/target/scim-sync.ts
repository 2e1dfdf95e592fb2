// ScimSync: the TargetSync capability of DatabricksScimTarget (account SCIM). The Entra change feed hands it
// one change at a time; it makes the account follow the change for what the account holds linked to Entra
// (externalId = Entra object id), with the adapter's own SCIM calls, naming rules and caches (the host).
//
// - Ends are found by externalId, never by name: an object without one (a Databricks-internal group, a
//   hand-made user) cannot even be named here, so it is never changed. An end the account does not hold is
//   `absent` and left alone: it arrives at its first use (the login, the share), never created here.
// - Reads first, then at most the writes still missing: each operation reads the ends (one list; two in
//   parallel for a principal ∈ group), compares with the change and answers `unchanged` when the account
//   already agrees. Writes are SCIM PATCHes that add, remove by `members[value eq "id"]` filter or replace,
//   and a DELETE whose 404 means done, so a repeat after a crash, a 5xx or a 429 converges. Throttling and
//   outages are the client's TargetUnavailableError (with retryAfterSeconds), passed through.
// - A membership Databricks refuses (a nesting cycle, more than 10 layers, a principal in too many groups)
//   is answered `refused` and reported through the adapter's `onMembershipSkipped`, as materialize does.
// - An id read a moment ago and gone by the write (deleted meanwhile) is read again once: the change then
//   finds the account as it is (usually `absent`).
// - Caches: each operation invalidates (host.invalidate) what the change makes stale: a principal whose
//   memberships or state changed (its last materialization), a group whose parents changed (its known
//   parents, and every remembered materialization that includes it). Done after the write and also when it
//   fails, so a run that read the account before the write is never trusted after it. A membership change
//   invalidates only the member's side: the group's own parents did not change.
// - Retiring a group: `soft-deleted` keeps the account group (grants to it survive a restore in Entra) and
//   removes every Entra-linked membership through it, both directions: its members with an externalId, and
//   itself from its Entra-linked parents. Members without an externalId (added by hand in Databricks) and its
//   place in Databricks-internal groups stay, as everywhere in this adapter: the service only takes away
//   what Entra gave. A restore brings the memberships back through the feed's additions or at each member's
//   next login. `deleted` (permanently) deletes the account group; Databricks drops its memberships with it.
// - listMaterialized(): every account user, service principal and group with an externalId, read page by
//   page with startIndex/count (no filter: SCIM has no portable "has an externalId"; it is checked here).
import type { GroupNameCollision, MembershipSkipped, ScimObject, ListResponse, ScimRef } from './scim.ts'
import type {
  GroupRenameResult, GroupRetirement, ListMaterializedOptions, MaterializedIdentity, MembershipEdge, SyncMemberKind, SyncPrincipalRef, SyncResult, TargetSync
} from './port.ts'
import type { DatabricksClient } from './databricks-client.ts'
import { DatabricksBadRequestError, DatabricksNotFoundError } from './errors.ts'
import { groupNameCandidates, scimString } from './names.ts'
import { BACKGROUND } from './write-scheduler.ts'

const RESOURCE: Record<SyncMemberKind, string> = { user: 'Users', servicePrincipal: 'ServicePrincipals', group: 'Groups' }
const KINDS: readonly SyncMemberKind[] = ['user', 'servicePrincipal', 'group']
/** Ids per `id eq … or …` lookup (199 filter nodes, under Databricks' 200). */
const IDS_PER_LOOKUP = 100

type Blocked = (name: string) => GroupNameCollision['reason'] | undefined

/** What ScimSync uses of DatabricksScimTarget: its SCIM calls, naming and caches. */
export interface ScimSyncHost {
  client: DatabricksClient
  /** Every resource the filter matches (all pages). */
  list: (resource: string, filter: string, attributes: string) => Promise<ScimObject[]>
  patch: (resource: string, id: string, operations: unknown[]) => Promise<void>
  /** Adds and removes a group's members; the answer maps each member Databricks refused to add to its refusal. */
  patchMembers: (groupId: string, add: string[], remove: string[]) => Promise<Map<string, DatabricksBadRequestError>>
  /** Databricks group id → its externalId (null: a Databricks-internal group). */
  externalIdsOf: (ids: string[]) => Promise<Map<string, string | null>>
  /** The names a group may get, in order of preference (the adapter's policy). */
  nameCandidates: (group: { id: string, displayName: string }) => string[]
  /** Which of these names may not be used (reserved, held by a workspace-local group, or in `avoid`) and why. */
  blockedNames: (names: string[], avoid: ReadonlySet<string>) => Promise<Blocked>
  /** Renames `existing` to the first candidate that is free (reports a collision); 409s try the next. */
  nameGroup: (group: { id: string, displayName: string }, taken: Set<string>, blocked: Blocked, existing: ScimObject) => Promise<ScimObject>
  /** Reports a membership Databricks refused. */
  skipped: (skip: Omit<MembershipSkipped, 'reason' | 'detail'>, err: DatabricksBadRequestError) => void
  /** An account group is gone (deleted here). */
  deleted: (id: string) => void
  invalidate: (tenantId: string, ids: { principals?: string[], groups?: string[] }) => void
}

/** What soft-retiring a group takes away, and whom it concerns (pure; see retirementPlan). */
export interface RetirementPlan {
  /** Account ids of the members to remove from the group (those with an externalId). */
  members: string[]
  /** Account ids of the Entra-linked parent groups to remove the group from. */
  parents: string[]
  /** Entra ids of the principals and groups whose memberships change (for invalidation). */
  principals: string[]
  groups: string[]
}

/** A member of a group as read: its account id, kind (when known) and externalId (null: none). */
export interface ReadMember { id: string, kind: SyncMemberKind, externalId: string | null }

/**
 * What soft-retiring a group removes: every member with an externalId (never one without), and the group's
 * place in every parent with an externalId (never in a Databricks-internal group).
 */
export function retirementPlan (members: readonly ReadMember[], parents: ReadonlyMap<string, string | null>): RetirementPlan {
  const linked = members.filter(m => m.externalId !== null && m.externalId !== '')
  return {
    members: linked.map(m => m.id),
    parents: [...parents].filter(([, externalId]) => externalId !== null && externalId !== '').map(([id]) => id).sort(),
    principals: linked.filter(m => m.kind !== 'group').map(m => m.externalId as string),
    groups: linked.filter(m => m.kind === 'group').map(m => m.externalId as string)
  }
}

function sameId (a: string | undefined, b: string): boolean {
  return a !== undefined && a.toLowerCase() === b.toLowerCase()
}

function directParents (o: ScimObject): Set<string> {
  return new Set((o.groups ?? []).filter(g => g.type === undefined || g.type === 'direct').map(g => g.value))
}

function chunk<T> (items: T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** A 404 on an id, or "Member X does not exist": an id read a moment ago is gone. */
function isGone (err: unknown): boolean {
  return err instanceof DatabricksNotFoundError || (err instanceof DatabricksBadRequestError && /does not exist/i.test(err.message))
}

/** The kind a member reference names (`$ref` `Users/1`, `Groups/2`, `ServicePrincipals/3`), if it says. */
export function kindOfRef (ref: ScimRef): SyncMemberKind | undefined {
  const resource = /(?:^|\/)(Users|Groups|ServicePrincipals)\/[^/]+$/.exec(ref.$ref ?? '')?.[1]
  return resource === 'Users' ? 'user' : resource === 'Groups' ? 'group' : resource === 'ServicePrincipals' ? 'servicePrincipal' : undefined
}

function assertId (what: string, id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.trim() === '') throw new TypeError(`${what} must be an Entra object id.`)
}

function assertKind (kind: unknown, allowed: readonly string[]): void {
  if (typeof kind !== 'string' || !allowed.includes(kind)) throw new TypeError(`Unknown kind ${JSON.stringify(kind)}: ${allowed.join(', ')}.`)
}

export class ScimSync implements TargetSync {
  constructor (private readonly host: ScimSyncHost) {}

  async setPrincipalActive (tenantId: string, principal: SyncPrincipalRef, active: boolean): Promise<SyncResult> {
    assertKind(principal.kind, ['user', 'servicePrincipal'])
    assertId('The principal', principal.id)
    if (typeof active !== 'boolean') throw new TypeError('active must be a boolean.')
    const resource = RESOURCE[principal.kind]
    try {
      for (let attempt = 1; ; attempt++) {
        const found = await this.byExternalId(resource, principal.id, 'id,externalId,active')
        if (found === undefined) return { outcome: 'absent' }
        if (found.active === active) return { outcome: 'unchanged', accountId: found.id }
        try {
          await this.host.patch(resource, found.id, [{ op: 'replace', path: 'active', value: active }])
          return { outcome: 'written', accountId: found.id }
        } catch (err) {
          if (attempt > 1 || !isGone(err)) throw err
        }
      }
    } finally {
      this.host.invalidate(tenantId, { principals: [principal.id] })
    }
  }

  async addMembership (tenantId: string, edge: MembershipEdge): Promise<SyncResult> {
    return await this.membership(tenantId, edge, 'add')
  }

  async removeMembership (tenantId: string, edge: MembershipEdge): Promise<SyncResult> {
    return await this.membership(tenantId, edge, 'remove')
  }

  async renameGroup (tenantId: string, group: { id: string, displayName: string }, options: { avoidNames?: ReadonlySet<string> } = {}): Promise<GroupRenameResult> {
    assertId('The group', group.id)
    if (typeof group.displayName !== 'string') throw new TypeError('The group\'s displayName must be a string.')
    const avoid = options.avoidNames ?? new Set<string>()
    const candidates = this.host.nameCandidates(group)
    try {
      // One list: the group (by externalId) and whoever holds one of its candidate names.
      const filter = [`externalId eq ${scimString(group.id)}`, ...candidates.map(name => `displayName eq ${scimString(name)}`)].join(' or ')
      const found = await this.host.list('Groups', filter, 'id,displayName,externalId')
      const mine = found.find(o => sameId(o.externalId, group.id))
      if (mine === undefined) return { outcome: 'absent' }
      const taken = new Set(found.filter(o => o.id !== mine.id && o.displayName !== undefined).map(o => (o.displayName as string).toLowerCase()))
      const current = mine.displayName
      const blocked = await this.host.blockedNames([...new Set([...candidates, ...current === undefined ? [] : [current]])], avoid)
      // Already named after Entra's name (plainly or with its id, whichever policy named it, e.g. a group an
      // earlier configuration or the Entra SCIM connector made) and free to keep it: no churn. Only a name
      // Entra changed, or one a reserved or workspace-local group now holds, is renamed.
      if (current !== undefined && groupNameCandidates(group, 'display').includes(current) && blocked(current) === undefined) {
        return { outcome: 'unchanged', accountId: mine.id, name: current }
      }
      const renamed = await this.host.nameGroup(group, taken, blocked, mine)
      const name = renamed.displayName ?? candidates[0] as string
      return { outcome: name === current ? 'unchanged' : 'written', accountId: mine.id, name }
    } finally {
      // Its known name is stale (materializeGroup reads it again); memberships did not change.
      this.host.invalidate(tenantId, { groups: [group.id] })
    }
  }

  async retireGroup (tenantId: string, groupId: string, how: GroupRetirement): Promise<SyncResult> {
    assertId('The group', groupId)
    assertKind(how, ['soft-deleted', 'deleted'])
    const affected: { principals: string[], groups: string[] } = { principals: [], groups: [groupId] }
    try {
      const found = await this.byExternalId('Groups', groupId, 'id,externalId')
      if (found === undefined) return { outcome: 'absent' }
      let group: ScimObject
      try {
        const res = await this.host.client.account<ScimObject>('GET', `/scim/v2/Groups/${encodeURIComponent(found.id)}`, { query: { attributes: 'id,externalId,displayName,members,groups' } })
        group = res.json ?? found
      } catch (err) {
        if (isGone(err)) return { outcome: 'absent' }
        throw err
      }
      const members = await this.readMembers(group.members ?? [])
      const parents = await this.host.externalIdsOf([...directParents(group)])
      const plan = retirementPlan(members, parents)
      affected.principals = plan.principals
      affected.groups.push(...plan.groups)
      if (how === 'deleted') {
        try {
          await this.host.client.account('DELETE', `/scim/v2/Groups/${encodeURIComponent(group.id)}`, { writes: BACKGROUND })
        } catch (err) {
          if (!isGone(err)) throw err
        }
        this.host.deleted(group.id)
        return { outcome: 'written', accountId: group.id }
      }
      if (plan.members.length === 0 && plan.parents.length === 0) return { outcome: 'unchanged', accountId: group.id }
      // Its members in one PATCH (more past 50), and itself out of each Entra-linked parent, in parallel;
      // every PATCH runs even when another fails.
      const writes = [
        ...plan.members.length > 0 ? [{ parent: group.id, remove: plan.members }] : [],
        ...plan.parents.map(parent => ({ parent, remove: [group.id] }))
      ]
      const results = await Promise.allSettled(writes.map(async w => {
        try {
          await this.host.patchMembers(w.parent, [], w.remove)
        } catch (err) {
          // A group deleted meanwhile holds nothing any more.
          if (!isGone(err)) throw err
        }
      }))
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed !== undefined) throw failed.reason
      return { outcome: 'written', accountId: group.id }
    } finally {
      this.host.invalidate(tenantId, affected)
    }
  }

  async * listMaterialized (_tenantId: string, options: ListMaterializedOptions = {}): AsyncGenerator<MaterializedIdentity> {
    const kinds = options.kinds ?? KINDS
    for (const kind of kinds) assertKind(kind, KINDS)
    const count = options.pageSize ?? 500
    if (!Number.isInteger(count) || count < 1) throw new TypeError('pageSize must be a positive integer.')
    for (const kind of kinds) {
      const attributes = { user: 'id,externalId,displayName,userName,active', servicePrincipal: 'id,externalId,displayName,applicationId,active', group: 'id,externalId,displayName' }[kind]
      const seen = new Set<string>()
      for (let startIndex = 1; ;) {
        const res = await this.host.client.account<ListResponse>('GET', `/scim/v2/${RESOURCE[kind]}`, { query: { attributes, startIndex, count } })
        const page = res.json?.Resources ?? []
        for (const o of page) {
          if (seen.has(o.id)) continue
          seen.add(o.id)
          if (o.externalId === undefined || o.externalId === null || o.externalId === '') continue
          yield {
            kind,
            entraId: o.externalId,
            accountId: o.id,
            active: kind === 'group' ? true : o.active !== false,
            displayName: o.displayName ?? o.userName ?? o.applicationId ?? ''
          }
        }
        startIndex += page.length
        if (page.length === 0 || startIndex > (res.json?.totalResults ?? 0)) break
      }
    }
  }

  invalidate (tenantId: string, ids: { principals?: Iterable<string>, groups?: Iterable<string> }): void {
    this.host.invalidate(tenantId, { principals: [...ids.principals ?? []], groups: [...ids.groups ?? []] })
  }

  // ---- memberships --------------------------------------------------------------------------------------

  private async membership (tenantId: string, edge: MembershipEdge, op: 'add' | 'remove'): Promise<SyncResult> {
    assertId('The group', edge.groupId)
    assertId('The member', edge.memberId)
    assertKind(edge.memberKind, KINDS)
    try {
      for (let attempt = 1; ; attempt++) {
        const { group, member } = await this.ends(edge)
        if (group === undefined || member === undefined) return { outcome: 'absent', ...(group !== undefined ? { accountId: group.id } : {}) }
        const isMember = directParents(member).has(group.id)
        if (isMember === (op === 'add')) return { outcome: 'unchanged', accountId: group.id }
        try {
          const refused = await this.host.patchMembers(group.id, op === 'add' ? [member.id] : [], op === 'remove' ? [member.id] : [])
          const refusal = refused.get(member.id)
          if (refusal !== undefined) {
            this.host.skipped({ parentId: group.id, childId: member.id, parentEntraId: edge.groupId, childEntraId: edge.memberId }, refusal)
            return { outcome: 'refused', accountId: group.id }
          }
          return { outcome: 'written', accountId: group.id }
        } catch (err) {
          // Deleted between the read and the write: read again, once.
          if (attempt > 1 || !isGone(err)) throw err
        }
      }
    } finally {
      // The member's parents changed (or may have): its side is stale; the group's own parents are not.
      this.host.invalidate(tenantId, edge.memberKind === 'group' ? { groups: [edge.memberId] } : { principals: [edge.memberId] })
    }
  }

  /** The edge's group and member as the account holds them linked by externalId (the member with its direct parents). */
  private async ends (edge: MembershipEdge): Promise<{ group?: ScimObject, member?: ScimObject }> {
    if (edge.memberKind === 'group') {
      const found = await this.host.list('Groups', `externalId eq ${scimString(edge.groupId)} or externalId eq ${scimString(edge.memberId)}`, 'id,externalId,groups')
      return pick(found.find(o => sameId(o.externalId, edge.groupId)), found.find(o => sameId(o.externalId, edge.memberId)))
    }
    const [group, member] = await Promise.all([
      this.byExternalId('Groups', edge.groupId, 'id,externalId'),
      this.byExternalId(RESOURCE[edge.memberKind], edge.memberId, 'id,externalId,groups')
    ])
    return pick(group, member)
  }

  private async byExternalId (resource: string, entraId: string, attributes: string): Promise<ScimObject | undefined> {
    return (await this.host.list(resource, `externalId eq ${scimString(entraId)}`, attributes)).find(o => sameId(o.externalId, entraId))
  }

  /** A group's members with their kind and externalId: by `$ref` kind when it says, else looked up in each resource. */
  private async readMembers (refs: ScimRef[]): Promise<ReadMember[]> {
    const out = new Map<string, ReadMember>()
    const byKind = new Map<SyncMemberKind | undefined, string[]>()
    for (const ref of refs) {
      const kind = kindOfRef(ref)
      byKind.set(kind, [...byKind.get(kind) ?? [], ref.value])
    }
    const lookup = async (kind: SyncMemberKind, ids: string[]): Promise<void> => {
      if (ids.length === 0) return
      if (kind === 'group') {
        for (const [id, externalId] of await this.host.externalIdsOf(ids)) out.set(id, { id, kind, externalId })
        return
      }
      await Promise.all(chunk(ids, IDS_PER_LOOKUP).map(async part => {
        const found = await this.host.list(RESOURCE[kind], part.map(id => `id eq ${scimString(id)}`).join(' or '), 'id,externalId')
        for (const o of found) out.set(o.id, { id: o.id, kind, externalId: o.externalId ?? null })
      }))
    }
    await Promise.all((['user', 'servicePrincipal', 'group'] as const).map(async kind => { await lookup(kind, byKind.get(kind) ?? []) }))
    // References that do not say their kind: each resource in turn, for those still unknown.
    for (const kind of KINDS) await lookup(kind, (byKind.get(undefined) ?? []).filter(id => !out.has(id)))
    // A member found nowhere (deleted meanwhile) is left alone.
    return refs.map(r => out.get(r.value)).filter((m): m is ReadMember => m !== undefined)
  }
}

function pick (group: ScimObject | undefined, member: ScimObject | undefined): { group?: ScimObject, member?: ScimObject } {
  return { ...(group !== undefined ? { group } : {}), ...(member !== undefined ? { member } : {}) }
}
