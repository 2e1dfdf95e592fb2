// Object access: what a principal may do on a workspace object and why (effective permissions), and
// sharing an object with anyone in the directory. Orchestration only: the ACL, the workspace's
// assignments and the account's group names come from target/, the principal and its nesting from the
// Resolver, and the decision from the pure permissions/ functions.
//
// ACLs name principals the way the account knows them: users by userName (the UPN), service principals
// by application id, groups by their display name, which Databricks resolves to the workspace-local group
// of that name first. A group name counts for an Entra group only when it is the name of the account group
// linked to it (externalId) and no local or system group of the workspace holds it: so a renamed group
// (`Finance (d0000000)`) still counts, and neither a Databricks-only group nor a workspace-local `Ops` ever
// lends its grants to an Entra group that happens to share its name.
//
// The two use cases, `ask` and `share`, take the caller and decide with the pure policy (policy/) before
// anything about the other principal is looked up.
//
// Answers are remembered (answer-cache.ts): a question reads what it depends on from the same caches as
// before — the ACL, the workspace's assignments, the account's group names, the principal and its groups,
// the nesting edges, the dashboard's publication — once per request, and when every one of them is what
// a remembered answer was computed from, that answer is served instead of being computed again. No cache
// is bypassed or outlived: an ACL past its TTL, a share, an Entra change the sync applies, a group renamed
// in the account all change an input, and the answer is computed again from the new one.
import type { Caller } from '../auth/caller.ts'
import type { DirectoryPrincipal, GroupRef, PrincipalQuery } from '../directory/port.ts'
import { mayAskAboutOthers, mayGrant, mayManage, type CallerStanding, type Decision } from '../policy/object-policy.ts'
import {
  effectivePermission,
  levelsFor,
  normalizeObjectType,
  OBJECT_TYPE_LEVELS,
  parseLevel,
  tryParseLevel,
  UnknownObjectTypeError,
  InvalidPermissionLevelError,
  type AclEntry,
  type EffectivePermission,
  type ObjectType,
  type PermissionLevel,
  type PrincipalGroup
} from '../permissions/index.ts'
import type { DashboardPublication as PublicationState, ObjectAcl, WorkspaceObjects } from '../target/workspace-objects.ts'
import type { AccountGroupNames, GroupNameFacts } from '../target/account-groups.ts'
import type { PermissionAssignment, WorkspacePermission } from '../target/assignments.ts'
import type { Materializer } from './materializer.ts'
import type { Resolution, Resolver } from './resolver.ts'
import type { LookupBudget } from './lookup-budget.ts'
import { admitsGroup } from './group-filter.ts'
import type { CacheObserver } from './fresh-cache.ts'
import { AnswerCache, aclGroupNames, assignedGroupNames, type RememberedAnswer } from './answer-cache.ts'
import {
  InvalidOwner,
  InvalidPermissionLevel,
  PermissionQueryForbidden,
  PrincipalNotFound,
  ShareForbidden,
  ShareLevelForbidden,
  ShareTargetDisabled,
  ShareTargetExcluded,
  ShareTargetNameTaken,
  ShareTargetNotFound,
  UnknownObjectType,
  UnsupportedSubject
} from './errors.ts'

export interface ObjectRef {
  workspaceId: string
  objectType: string
  objectId: string
}

export interface WorkspaceRole {
  access: 'DIRECT' | 'INDIRECT' | 'NONE'
  permission?: WorkspacePermission
}

export interface DashboardPublication {
  published: boolean
  embedCredentials: boolean
  /** The principal can open the published copy without workspace access (embedded credentials). */
  canViewPublished: boolean
  note: string
}

export interface ObjectAccessAnswer {
  objectType: ObjectType
  /** `level` is null for a principal disabled in Entra, whatever the grants (which are still listed). */
  effective: EffectivePermission
  /** Why the grants do not apply, when they do not. */
  blocked?: string
  workspace: WorkspaceRole
  /** Dashboards only: what a principal without workspace access can still see. */
  dashboard?: DashboardPublication
}

export interface ShareResult {
  objectType: ObjectType
  level: PermissionLevel
  /** The name the object's ACL now holds: userName, application id or account group name. */
  principalName: string
  principal: DirectoryPrincipal
  databricksId: string
  /** false when the ACL already granted this level or more directly (nothing was written). */
  changed: boolean
  workspace: WorkspaceRole & { reason: string }
  dashboard?: DashboardPublication
}

export interface ObjectAccessOptions {
  resolver: Resolver
  materializer: Materializer
  objects: WorkspaceObjects
  groupNames: AccountGroupNames
  /** Each caller's budget of lookups of other principals. */
  lookups: LookupBudget
  /** Told whether each answer was served remembered (`answers`: hit) or computed (miss). */
  observer?: CacheObserver
}

/** What a question reads about the object: once per request, shared by the caller's standing and the answer. */
interface ObjectFacts {
  ref: ObjectRef
  objectType: ObjectType
  acl: ObjectAcl
  /** Frozen: the same list while the assignments client caches it. */
  assignments: readonly PermissionAssignment[]
  /** The group names the ACL holds, and those of the groups assigned to the workspace. */
  aclNames: ReadonlySet<string>
  assignedNames: ReadonlySet<string>
  /** Read when an answer needs them, at most once per request (the promise, then what it gave). */
  names?: Promise<GroupNameFacts>
  namesRead?: GroupNameFacts
  publication?: Promise<PublicationState>
  publicationRead?: PublicationState
}

/** What `ask` answers: about whom, and what it may do. */
export interface AskResult {
  subject: Resolution
  answer: ObjectAccessAnswer
}

export class ObjectAccess {
  private readonly answers = new AnswerCache<ObjectAccessAnswer>()

  constructor (private readonly deps: ObjectAccessOptions) {}

  /** The object type as the Permissions API names it; a 400 problem for an unknown one. */
  static objectType (input: string): ObjectType {
    try {
      return normalizeObjectType(input)
    } catch (err) {
      if (err instanceof UnknownObjectTypeError) throw new UnknownObjectType(input, Object.keys(OBJECT_TYPE_LEVELS).join(', '))
      throw err
    }
  }

  /** The level as the type knows it; a 400 problem naming the allowed ones otherwise. */
  static level (objectType: ObjectType, level: string): PermissionLevel {
    try {
      return parseLevel(objectType, level)
    } catch (err) {
      if (err instanceof InvalidPermissionLevelError) throw new InvalidPermissionLevel(err.message)
      throw err
    }
  }

  /**
   * What the caller, or the principal `about` names, may do on the object. Asking about another principal
   * takes the right to (policy/), decided before that principal is looked up: a caller without it learns
   * nothing about whether the principal exists, and costs no directory call.
   */
  async ask (caller: Caller, ref: ObjectRef, about?: PrincipalQuery): Promise<AskResult> {
    const objectType = ObjectAccess.objectType(ref.objectType)
    const self = await this.deps.resolver.resolveCaller(caller)
    const facts = await this.facts(ref, objectType)
    if (about === undefined || names(about, self.principal)) return { subject: self, answer: await this.answer(self, facts, true) }
    const own = await this.answer(self, facts, false)
    refuse(mayAskAboutOthers(standingOf(own), caller.roles), reason => new PermissionQueryForbidden(`${own.objectType}/${ref.objectId}`, reason))
    // Cached throughout: no directory call, so none of the caller's budget is spent.
    const subject = this.deps.resolver.warm(caller.tenantId, about) ?? await this.lookUp(caller, about)
    if (subject.principal.kind === 'group') throw new UnsupportedSubject(Object.values(about)[0] as string)
    return { subject, answer: await this.answer(subject, facts, true) }
  }

  /**
   * ask() from memory alone, without a promise (the warm path of every repeated question): the answer
   * when the caller, the object's facts and the remembered answers are all cached and unchanged; the same
   * refusals as ask(); undefined when anything must be read or computed (then ask() does it).
   */
  askWarm (caller: Caller, ref: ObjectRef, about?: PrincipalQuery): AskResult | undefined {
    const objectType = ObjectAccess.objectType(ref.objectType)
    const self = this.deps.resolver.warmCaller(caller)
    if (self === undefined) return undefined
    const acl = this.deps.objects.cachedAcl(ref.workspaceId, objectType, ref.objectId)
    const assignments = this.deps.materializer.assignments.cached(ref.workspaceId)
    if (acl === undefined || assignments === undefined) return undefined
    const facts: ObjectFacts = { ref, objectType, acl, assignments, aclNames: aclGroupNames(acl), assignedNames: assignedGroupNames(assignments) }
    if (about === undefined || names(about, self.principal)) {
      const answer = this.rememberedAnswer(self, facts, true)
      return answer === undefined ? undefined : { subject: self, answer }
    }
    const own = this.rememberedAnswer(self, facts, false)
    if (own === undefined) return undefined
    refuse(mayAskAboutOthers(standingOf(own), caller.roles), reason => new PermissionQueryForbidden(`${own.objectType}/${ref.objectId}`, reason))
    const subject = this.deps.resolver.warm(caller.tenantId, about)
    if (subject === undefined) return undefined
    if (subject.principal.kind === 'group') throw new UnsupportedSubject(Object.values(about)[0] as string)
    const answer = this.rememberedAnswer(subject, facts, true)
    return answer === undefined ? undefined : { subject, answer }
  }

  /** Another principal, from the directory when it is not cached (which costs the caller one lookup). */
  private async lookUp (caller: Caller, about: PrincipalQuery): Promise<Resolution> {
    this.spendLookup(caller, about)
    return await this.deps.resolver.resolve(caller.tenantId, about)
  }

  /**
   * The caller shares the object with `target` at `requested` (default: the type's lowest level): allowed
   * when the caller may manage the object, never above the caller's own level, IS_OWNER only from a
   * workspace admin to a user or service principal (policy/). Checked before the target is looked up.
   */
  async share (caller: Caller, ref: ObjectRef, target: PrincipalQuery, requested: string | undefined): Promise<ShareResult> {
    const objectType = ObjectAccess.objectType(ref.objectType)
    // The type's lowest level (view) unless asked otherwise: sharing is usually "let them see it".
    const level = requested === undefined ? levelsFor(objectType)[0]! : ObjectAccess.level(objectType, requested)
    const self = await this.deps.resolver.resolveCaller(caller)
    // The caller's standing from the ACL as it is now: a right revoked a moment ago must not write a grant.
    const standing = standingOf(await this.effective(self, ref, { explain: false, fresh: true }))
    const what = `${objectType}/${ref.objectId}`
    refuse(mayManage(standing), reason => new ShareForbidden(what, reason))
    // The level alone (a user as the stand-in target): refused before anyone is looked up.
    const byLevel = mayGrant(standing, level, 'user')
    refuse(byLevel, reason => new ShareLevelForbidden(level, what, reason))
    if (!names(target, self.principal)) this.spendLookup(caller, target)
    let resolution: Resolution
    try {
      resolution = await this.deps.resolver.resolve(caller.tenantId, target)
    } catch (err) {
      if (err instanceof PrincipalNotFound) throw new ShareTargetNotFound(Object.values(target)[0] as string, caller.tenantId)
      throw err
    }
    refuse(mayGrant(standing, level, resolution.principal.kind), reason => new InvalidOwner(reason))
    return await this.grantTo(resolution, ref, objectType, level)
  }

  /** A lookup that needs the directory costs one of the caller's budget; one answered from the caches is free. */
  private spendLookup (caller: Caller, query: PrincipalQuery): void {
    if (!this.deps.resolver.isWarm(caller.tenantId, query)) this.deps.lookups.take(caller)
  }

  /**
   * What `subject` may do on the object, every contributing grant with its reason. `explain: false` leaves
   * the nesting paths out (each group's path is the group alone): enough to decide, cheaper to compute;
   * `fresh: true` reads the ACL again instead of from the cache.
   */
  async effective (subject: Resolution, ref: ObjectRef, { explain = true, fresh = false }: { explain?: boolean, fresh?: boolean } = {}): Promise<ObjectAccessAnswer> {
    return await this.answer(subject, await this.facts(ref, ObjectAccess.objectType(ref.objectType), fresh), explain)
  }

  /** The object's ACL and its workspace's assignments (from their caches; `fresh`: the ACL read again). */
  private async facts (ref: ObjectRef, objectType: ObjectType, fresh = false): Promise<ObjectFacts> {
    let acl: ObjectAcl
    let assignments: readonly PermissionAssignment[]
    try {
      [acl, assignments] = await Promise.all([
        this.deps.objects.acl(ref.workspaceId, objectType, ref.objectId, { fresh }),
        this.deps.materializer.assignments.forWorkspace(ref.workspaceId)
      ])
    } catch (err) {
      throw this.deps.materializer.problem(err)
    }
    return { ref, objectType, acl, assignments, aclNames: aclGroupNames(acl), assignedNames: assignedGroupNames(assignments) }
  }

  /**
   * The answer for `subject` from these facts: the remembered one when everything it was computed from is
   * unchanged (the same cached ACL, principal and group list; equal assignments and group names; the same
   * nesting edges; the same publication), otherwise computed and remembered.
   */
  private async answer (subject: Resolution, facts: ObjectFacts, explain: boolean): Promise<ObjectAccessAnswer> {
    const remembered = this.answers.get(facts.acl, subject.principal, explain)
    // Its inputs read in the order compute() reads them; what a request has read already is not awaited again.
    if (remembered !== undefined &&
      this.answers.sameInputs(remembered, { acl: facts.acl, assignments: facts.assignments, principal: subject.principal, groups: subject.groups }) &&
      (remembered.names === undefined || this.answers.sameNames(remembered.names, await this.groupNames(facts))) &&
      (remembered.paths === undefined || this.deps.resolver.warmGroupPaths(subject) === remembered.paths) &&
      (remembered.publication === undefined || remembered.publication === (facts.publicationRead ?? await this.publicationOf(facts)))) {
      this.deps.observer?.onLookup('answers', 'hit')
      return remembered.answer
    }
    this.deps.observer?.onLookup('answers', 'miss')
    const computed = await this.compute(subject, facts, explain)
    this.answers.set(computed, explain)
    return computed.answer
  }

  /** answer()'s remembered answer, checked against the caches alone; undefined when anything is not cached or changed. */
  private rememberedAnswer (subject: Resolution, facts: ObjectFacts, explain: boolean): ObjectAccessAnswer | undefined {
    const remembered = this.answers.get(facts.acl, subject.principal, explain)
    if (remembered === undefined ||
      !this.answers.sameInputs(remembered, { acl: facts.acl, assignments: facts.assignments, principal: subject.principal, groups: subject.groups })) return undefined
    if (remembered.names !== undefined) {
      const names = facts.namesRead ?? this.deps.groupNames.cachedFacts(facts.ref.workspaceId, facts.aclNames, facts.assignedNames)
      if (names === undefined || !this.answers.sameNames(remembered.names, names)) return undefined
      facts.namesRead = names
    }
    if (remembered.paths !== undefined && this.deps.resolver.warmGroupPaths(subject) !== remembered.paths) return undefined
    if (remembered.publication !== undefined && remembered.publication !== this.deps.objects.cachedPublication(facts.ref.workspaceId, facts.ref.objectId)) return undefined
    this.deps.observer?.onLookup('answers', 'hit')
    return remembered.answer
  }

  private async compute (subject: Resolution, facts: ObjectFacts, explain: boolean): Promise<RememberedAnswer<ObjectAccessAnswer>> {
    const { objectType } = facts
    const { principal } = subject
    // The account's group names, needed only when the ACL or the assignments name groups and the subject has any.
    const groupNames = (facts.aclNames.size > 0 || facts.assignedNames.size > 0) && subject.groups.length > 0 ? await this.groupNames(facts) : undefined
    const { acl: groups, assigned, paths } = await this.memberships(subject, facts, groupNames, explain)
    const workspace = workspaceRole(principal, facts.assignments, assigned)
    const effective = effectivePermission({
      objectType,
      acl: facts.acl.accessControlList,
      principal: {
        kind: principal.kind === 'servicePrincipal' ? 'servicePrincipal' : 'user',
        ...(principal.userPrincipalName !== undefined ? { userName: principal.userPrincipalName } : {}),
        ...(principal.appId !== undefined ? { applicationId: principal.appId } : {})
      },
      // Every workspace user is in `users`: grants to it reach whoever may use the workspace.
      groups: workspace.access === 'NONE' ? groups : [...groups, { name: 'users', path: ['users'] }],
      isWorkspaceAdmin: workspace.permission === 'ADMIN'
    })
    // Databricks deactivates a principal disabled in Entra: no grant lets it in.
    const blocked = principal.accountEnabled ? undefined : `${principal.displayName} is disabled in Entra (accountEnabled=false), so Databricks refuses it whatever its grants.`
    const publication = objectType === 'dashboards' ? await this.publicationOf(facts) : undefined
    const answer: ObjectAccessAnswer = deepFreeze({
      objectType,
      effective: blocked === undefined ? effective : { ...effective, level: null },
      ...(blocked !== undefined ? { blocked } : {}),
      workspace,
      ...(publication !== undefined ? { dashboard: dashboardAccess(publication, workspace, effective.level) } : {})
    })
    return { acl: facts.acl, assignments: facts.assignments, principal, groups: subject.groups, names: groupNames, paths, publication, answer }
  }

  /**
   * Each ACL group name → the account group's externalId, and the names local groups of the workspace
   * hold (only when the ACL names groups): read once per request, whoever asks.
   */
  private async groupNames (facts: ObjectFacts): Promise<GroupNameFacts> {
    if (facts.namesRead !== undefined) return facts.namesRead
    facts.names ??= this.deps.materializer.guard(this.deps.groupNames.factsFor(facts.ref.workspaceId, facts.aclNames, facts.assignedNames))
    return (facts.namesRead = await facts.names)
  }

  /** Whether the dashboard is published, with embedded credentials (cached like ACLs): read once per request. */
  private async publicationOf (facts: ObjectFacts): Promise<PublicationState> {
    facts.publication ??= this.deps.materializer.guard(this.deps.objects.publication(facts.ref.workspaceId, facts.ref.objectId))
    return facts.publicationRead ?? (facts.publicationRead = await facts.publication)
  }

  /**
   * Grants `level` on the object to a principal found in Entra (it must be enabled): made to exist in the
   * account (never assigned to the workspace), then added to the ACL with a PATCH unless it already holds
   * that level or more directly. A group is granted under a name that only it holds in the workspace.
   */
  private async grantTo (resolution: Resolution, ref: ObjectRef, objectType: ObjectType, level: PermissionLevel): Promise<ShareResult> {
    const { principal } = resolution
    const tenantId = principal.tenantId
    if (!principal.accountEnabled) throw new ShareTargetDisabled(principal.kind === 'servicePrincipal' ? 'service principal' : principal.kind, principal.displayName)

    let principalName: string
    let databricksId: string
    let workspace: ShareResult['workspace']
    const entryKey = principal.kind === 'group' ? 'group_name' : principal.kind === 'servicePrincipal' ? 'service_principal_name' : 'user_name'
    if (principal.kind === 'group') {
      const group: GroupRef = { id: principal.id, displayName: principal.displayName, securityEnabled: principal.securityEnabled ?? true }
      // The group's own ancestors only when the filter asks for them: one Graph read otherwise spared.
      const ancestors = this.deps.materializer.groupFilter.parents.size > 0 ? await this.deps.resolver.ancestorsOf(principal) : []
      const made = await this.materializeGroupFor(tenantId, ref.workspaceId, group, ancestors)
      principalName = made.name
      databricksId = made.groupId
      const decided = await this.deps.materializer.guard(this.deps.materializer.assignments.decide(ref.workspaceId, made.groupId, []))
      workspace = {
        access: decided.access,
        ...(decided.permission !== undefined ? { permission: decided.permission } : {}),
        reason: decided.access === 'NONE'
          ? `The group is not assigned to workspace ${ref.workspaceId}; members with their own access can use the grant.`
          : `The group is assigned ${decided.permission ?? 'USER'} in workspace ${ref.workspaceId}.`
      }
    } else {
      const materialized = await this.deps.materializer.materialize(resolution)
      principalName = materialized.principalName
      databricksId = materialized.principalId
      const access = await this.deps.materializer.workspaceAccess(ref.workspaceId, resolution, materialized)
      workspace = { access: access.access, ...(access.permission !== undefined ? { permission: access.permission } : {}), reason: access.reason }
    }

    // Idempotent: read the ACL as it is now, and write only when the grant is missing or lower.
    const acl = await this.deps.materializer.guard(this.deps.objects.acl(ref.workspaceId, objectType, ref.objectId, { fresh: true }))
    const held = directLevel(objectType, acl.accessControlList, entryKey, principalName)
    const changed = held === undefined || levelsFor(objectType).indexOf(held) < levelsFor(objectType).indexOf(level)
    if (changed) {
      await this.deps.materializer.guard(this.deps.objects.grant(ref.workspaceId, objectType, ref.objectId, { [entryKey]: principalName, permission_level: level }))
    }
    const granted = changed ? level : held
    return {
      objectType,
      level: granted,
      principalName,
      principal,
      databricksId,
      changed,
      workspace,
      ...(objectType === 'dashboards' ? { dashboard: dashboardAccess(await this.deps.materializer.guard(this.deps.objects.publication(ref.workspaceId, ref.objectId)), workspace, granted) } : {})
    }
  }

  /**
   * Makes the account hold the group under a name the workspace resolves to it: not a reserved name, not one
   * a local group of the workspace holds (the SCIM adapter renames it; where the account names groups
   * itself, the share is refused). Groups the operator's filter leaves out are never materialized.
   */
  private async materializeGroupFor (tenantId: string, workspaceId: string, group: GroupRef, ancestors: readonly GroupRef[]): Promise<{ groupId: string, name: string }> {
    const { materializer, groupNames } = this.deps
    if (!admitsGroup(materializer.groupFilter, group, ancestors)) {
      throw new ShareTargetExcluded(group.displayName, materializer.groupFilter.securityOnly && !group.securityEnabled ? 'not a security group' : 'not nested in a group DATABRICKS_GROUP_PARENTS names')
    }
    // The reserved names are always among those localNames answers.
    const heldLocally = async (name: string): Promise<boolean> => (await materializer.guard(groupNames.localNames(workspaceId, [name]))).has(name.trim().toLowerCase())
    const avoid = new Set<string>()
    // Each round avoids one more name (a renamed group's next candidate may be held too); three names at most.
    for (let round = 0; round < 3; round++) {
      const made = await materializer.materializeGroup(tenantId, group, avoid)
      if (!await heldLocally(made.name)) return made
      if (avoid.has(made.name.trim().toLowerCase())) throw new ShareTargetNameTaken(group.displayName, made.name, workspaceId)
      avoid.add(made.name.trim().toLowerCase())
    }
    throw new ShareTargetNameTaken(group.displayName, group.displayName, workspaceId)
  }

  /**
   * The principal's groups as the ACL and the assignments name them, each with its nesting path in Entra
   * display names (and the paths it came from, to check later that they still hold). An ACL name counts
   * only when it traces back (by externalId) to an account group the principal is in and no local or system
   * group of the workspace holds it; an assignment names an account group by id, so its name needs no such
   * check. `names` undefined: nothing to match (no group names, or no groups).
   */
  private async memberships (subject: Resolution, facts: ObjectFacts, names: GroupNameFacts | undefined, explain: boolean): Promise<{ acl: PrincipalGroup[], assigned: Set<string>, paths?: ReadonlyMap<string, readonly string[]> }> {
    if (names === undefined) return { acl: [], assigned: new Set() }
    const { external, local } = names
    const inClosure = new Map(subject.groups.map(g => [g.id.toLowerCase(), g]))
    const mine = (name: string): GroupRef | undefined => {
      const id = external.get(name)?.toLowerCase()
      return id === undefined ? undefined : inClosure.get(id)
    }
    const assigned = new Set([...facts.assignedNames].filter(name => mine(name) !== undefined))
    const matched = [...facts.aclNames].flatMap(name => {
      const group = local.has(name.trim().toLowerCase()) ? undefined : mine(name)
      return group === undefined ? [] : [{ name, group }]
    })
    if (matched.length === 0) return { acl: [], assigned }
    if (!explain) return { acl: matched.map(({ name }) => ({ name, path: [name] })), assigned }
    // The nesting path of each of the principal's groups (from the resolver's cached edges).
    const paths = await this.deps.resolver.groupPaths(subject)
    return {
      acl: matched.map(({ name, group }) => {
        const ids = paths.get(group.id) ?? [group.id]
        // Entra names along the way, the ACL's own name for the group at the end.
        return { name, path: [...ids.slice(0, -1).map(id => inClosure.get(id.toLowerCase())?.displayName ?? id), name] }
      }),
      assigned,
      paths
    }
  }
}

/** What a principal with this workspace access and level can see of the dashboard, given its publication. */
function dashboardAccess ({ published, embedCredentials }: PublicationState, workspace: WorkspaceRole, level: PermissionLevel | null): DashboardPublication {
  const granted = level !== null
  const canViewPublished = granted && published && embedCredentials
  let note: string
  if (workspace.access !== 'NONE') note = granted ? 'Has access to the workspace: opens the dashboard with its own permissions.' : 'Has access to the workspace but no grant on the dashboard.'
  else if (!granted) note = 'No access to the workspace and no grant on the dashboard.'
  else if (canViewPublished) note = 'No access to the workspace: can view the published copy, which runs with the publisher\'s embedded credentials; not the draft.'
  else if (published) note = 'No access to the workspace, and the dashboard is published without embedded credentials: it cannot be viewed until the principal gets workspace access or the dashboard is published with embedded credentials.'
  else note = 'No access to the workspace, and the dashboard is not published: it cannot be viewed until the principal gets workspace access or the dashboard is published with embedded credentials.'
  return { published, embedCredentials, canViewPublished, note }
}

/** A remembered answer is shared by every request that gets it: frozen, so none can change it for the others. */
function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}

/** The highest level the ACL grants directly (not inherited) to the named principal. */
function directLevel (objectType: ObjectType, entries: readonly AclEntry[], key: 'user_name' | 'group_name' | 'service_principal_name', name: string): PermissionLevel | undefined {
  let best: PermissionLevel | undefined
  for (const e of entries) {
    const named = e[key]
    if (typeof named !== 'string' || named.toLowerCase() !== name.toLowerCase()) continue
    for (const p of e.all_permissions ?? []) {
      if (p.inherited === true) continue
      const level = tryParseLevel(objectType, p.permission_level)
      if (level !== undefined && (best === undefined || levelsFor(objectType).indexOf(level) > levelsFor(objectType).indexOf(best))) best = level
    }
  }
  return best
}

/** The principal's access to the workspace from the assignments of itself and of its groups (by account group name). */
function workspaceRole (principal: DirectoryPrincipal, assignments: readonly PermissionAssignment[], groupNames: ReadonlySet<string>): WorkspaceRole {
  const own = (a: PermissionAssignment): boolean => {
    const name = a.name?.toLowerCase()
    if (name === undefined) return false
    if (a.kind === 'user') return principal.kind === 'user' && name === principal.userPrincipalName?.toLowerCase()
    if (a.kind === 'servicePrincipal') return principal.kind === 'servicePrincipal' && name === principal.appId?.toLowerCase()
    return false
  }
  const direct = assignments.filter(own).flatMap(a => a.permissions)
  const viaGroups = assignments.filter(a => a.kind === 'group' && a.name !== undefined && groupNames.has(a.name)).flatMap(a => a.permissions)
  const all = [...direct, ...viaGroups]
  if (all.length === 0) return { access: 'NONE' }
  return { access: direct.length > 0 ? 'DIRECT' : 'INDIRECT', permission: all.includes('ADMIN') ? 'ADMIN' : 'USER' }
}

/** What the caller holds on the object, as the policy reads it. */
function standingOf (answer: ObjectAccessAnswer): CallerStanding {
  return { objectType: answer.objectType, level: answer.effective.level, isWorkspaceAdmin: answer.workspace.permission === 'ADMIN' && answer.blocked === undefined }
}

/** Throws the problem `make` builds from the decision's reason when the policy refuses. */
function refuse (decision: Decision, make: (reason: string) => Error): void {
  if (!decision.allowed) throw make(decision.reason)
}

/** Whether the query names this principal (so asking about it is asking about oneself: no lookup). */
function names (query: PrincipalQuery, principal: DirectoryPrincipal): boolean {
  if ('id' in query) return same(principal.id, query.id)
  if ('userPrincipalName' in query) return same(principal.userPrincipalName, query.userPrincipalName)
  if ('mail' in query) return same(principal.mail, query.mail)
  return same(principal.appId, query.appId)
}

function same (a: string | null | undefined, b: string): boolean {
  return typeof a === 'string' && a.toLowerCase() === b.trim().toLowerCase()
}
