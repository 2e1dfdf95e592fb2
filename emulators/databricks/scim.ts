// SCIM 2.0 (reference §2): the account API `/api/2.0/accounts/{account_id}/scim/v2/{Users,Groups,
// ServicePrincipals}` and the workspace API `/api/2.0/preview/scim/v2/{Users,Groups,ServicePrincipals,Me}`.
// Create (201), get, list (filter, startIndex/count, attributes), PUT, PATCH (200 + resource), DELETE (204).
//
// Workspace scope (an identity-federated workspace): Users and ServicePrincipals are the account's
// principals with access to the workspace; creating one that the account already has assigns it, and
// DELETE removes it from the workspace only. Groups are the workspace-local groups (`admins`, `users`,
// legacy ones; meta.resourceType "WorkspaceGroup") plus the account groups assigned to the workspace
// ("Group"); account groups cannot be changed here except for their workspace entitlements.
// The account API refuses the system group names `users`, `admins` and `account users` for an account
// group (RESERVED_GROUP_NAMES).
import { randomUUID } from 'node:crypto'
import type { Filter } from 'scim2-parse-filter'
import type { AccountGroup, AccountServicePrincipal, AccountUser, DatabricksAccount, Principal } from './account.ts'
import { DatabricksError, conflict, invalidPath, invalidValue, notFound } from './errors.ts'
import { queryInt, queryString, route, type Call, type RouteConfig, type RouteDef } from './http.ts'
import { compileFilter, equalityTerms, parseFilter, type FilterAttributes } from './scim-filter.ts'
import { applyToSet, booleanValue, complexValues, parsePatch, selectValues, stringValue, type PatchOperation, type PatchPath } from './scim-patch.ts'
import type { Workspace } from './workspace.ts'

export const SCHEMA = {
  user: 'urn:ietf:params:scim:schemas:core:2.0:User',
  workspaceUser: 'urn:ietf:params:scim:schemas:extension:workspace:2.0:User',
  group: 'urn:ietf:params:scim:schemas:core:2.0:Group',
  servicePrincipal: 'urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal',
  list: 'urn:ietf:params:scim:api:messages:2.0:ListResponse'
} as const

/** SCIM entitlement values (Terraform scim/scim.go). */
export const ENTITLEMENTS = new Set(['allow-cluster-create', 'allow-instance-pool-create', 'databricks-sql-access', 'workspace-access', 'workspace-consume'])

type Kind = Principal['kind']
type Resource = 'Users' | 'Groups' | 'ServicePrincipals'
const KIND: Record<Resource, Kind> = { Users: 'user', Groups: 'group', ServicePrincipals: 'servicePrincipal' }
const RESOURCE: Record<Kind, Resource> = { user: 'Users', group: 'Groups', servicePrincipal: 'ServicePrincipals' }
const LABEL: Record<Kind, string> = { user: 'User', group: 'Group', servicePrincipal: 'Service principal' }

/** Where a SCIM call acts: the account, or one workspace. */
type Scope = { workspace: null } | { workspace: Workspace }

interface ComplexValue {
  value: string
  display?: string
  $ref?: string
  type?: string
}

const ACCOUNT_ENTITLEMENTS_ERROR = 'entitlements can only be managed at the workspace level'

/**
 * Names of Databricks' system groups: the workspace groups `users` and `admins` and the account group
 * `account users`. The account SCIM API refuses them for an account group, on create and on rename, any
 * case. [UNCONF] status and wording: Databricks' answer is not published; 400 invalidValue here.
 */
export const RESERVED_GROUP_NAMES: ReadonlySet<string> = new Set(['users', 'admins', 'account users'])

function assertAccountGroupName (displayName: string): void {
  if (RESERVED_GROUP_NAMES.has(displayName.trim().toLowerCase())) {
    throw invalidValue(`Group name ${displayName} is reserved for a system group (users, admins, account users).`)
  }
}

// ---- rendering --------------------------------------------------------------------------------------

function ref (p: Principal): ComplexValue {
  return { display: p.displayName, value: p.id, $ref: `${RESOURCE[p.kind]}/${p.id}` }
}

/** Groups a principal is in: `direct` ones, then the inherited ones as `indirect` ([UNCONF] value). */
function groupsOf (account: DatabricksAccount, p: Principal, scope: Scope): ComplexValue[] {
  const visible = (g: Principal | undefined): g is AccountGroup =>
    g?.kind === 'group' && (g.workspaceId === null || (scope.workspace !== null && g.workspaceId === scope.workspace.id && g.system === null))
  const direct = account.directParents(p.id).map(x => account.get(x.id)).filter(visible)
  const directIds = new Set(direct.map(g => g.id))
  const indirect = account.transitiveParents(p.id).filter(id => !directIds.has(id)).map(id => account.get(id)).filter(visible)
  const out = [...direct.map(g => ({ ...ref(g), type: 'direct' })), ...indirect.map(g => ({ ...ref(g), type: 'indirect' }))]
  if (scope.workspace !== null && p.kind !== 'group') {
    const level = scope.workspace.access(p.id).level
    const ws = scope.workspace
    const system = [level === 'ADMIN' ? ws.adminsGroupId : null, level !== null ? ws.usersGroupId : null]
    for (const id of system) {
      const g = id === null ? undefined : account.get(id)
      if (g !== undefined) out.push({ ...ref(g), type: 'direct' })
    }
  }
  return out
}

function values (list: Iterable<string>): Array<{ value: string }> {
  return [...list].map(value => ({ value }))
}

/** Adds `key: value` unless the value is null/undefined or an empty array (Databricks omits those). */
function put (target: Record<string, unknown>, key: string, value: unknown): void {
  if (value === null || value === undefined || (Array.isArray(value) && value.length === 0)) return
  target[key] = value
}

function entitlementsOf (p: Principal, scope: Scope): Array<{ value: string }> | undefined {
  return scope.workspace === null ? undefined : values(scope.workspace.entitlements.get(p.id) ?? [])
}

export function renderUser (account: DatabricksAccount, u: AccountUser, scope: Scope): Record<string, unknown> {
  const out: Record<string, unknown> = {
    schemas: scope.workspace === null ? [SCHEMA.user] : [SCHEMA.user, SCHEMA.workspaceUser],
    id: u.id,
    userName: u.userName,
    displayName: u.displayName,
    active: u.active,
    emails: u.emails
  }
  if (u.givenName !== null || u.familyName !== null) out.name = { ...(u.givenName !== null ? { givenName: u.givenName } : {}), ...(u.familyName !== null ? { familyName: u.familyName } : {}) }
  put(out, 'externalId', u.externalId)
  put(out, 'groups', groupsOf(account, u, scope))
  put(out, 'roles', values(u.roles))
  put(out, 'entitlements', entitlementsOf(u, scope))
  out.meta = { resourceType: 'User' }
  return out
}

export function renderServicePrincipal (account: DatabricksAccount, sp: AccountServicePrincipal, scope: Scope): Record<string, unknown> {
  const out: Record<string, unknown> = {
    schemas: [SCHEMA.servicePrincipal],
    id: sp.id,
    applicationId: sp.applicationId,
    displayName: sp.displayName,
    active: sp.active
  }
  put(out, 'externalId', sp.externalId)
  put(out, 'groups', groupsOf(account, sp, scope))
  put(out, 'roles', values(sp.roles))
  put(out, 'entitlements', entitlementsOf(sp, scope))
  out.meta = { resourceType: 'ServicePrincipal' }
  return out
}

function memberIds (account: DatabricksAccount, g: AccountGroup, scope: Scope): string[] {
  if (g.system !== null && scope.workspace !== null) return scope.workspace.systemGroupMembers(g.system)
  return account.directMembers(g.id).map(m => m.id)
}

export function renderGroup (account: DatabricksAccount, g: AccountGroup, scope: Scope, withMembers: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { schemas: [SCHEMA.group], id: g.id, displayName: g.displayName }
  put(out, 'externalId', g.externalId)
  if (withMembers) put(out, 'members', memberIds(account, g, scope).map(id => account.get(id)).filter(p => p !== undefined).map(ref))
  put(out, 'groups', groupsOf(account, g, scope))
  put(out, 'roles', values(g.roles))
  put(out, 'entitlements', entitlementsOf(g, scope))
  out.meta = { resourceType: g.workspaceId === null ? 'Group' : 'WorkspaceGroup' }
  return out
}

function render (account: DatabricksAccount, p: Principal, scope: Scope, withMembers = true): Record<string, unknown> {
  if (p.kind === 'user') return renderUser(account, p, scope)
  if (p.kind === 'servicePrincipal') return renderServicePrincipal(account, p, scope)
  return renderGroup(account, p, scope, withMembers)
}

/** `attributes` keeps only the named top-level attributes (plus id and schemas); `excludedAttributes` drops them. */
function project (resource: Record<string, unknown>, call: Call): Record<string, unknown> {
  const names = (name: string): Set<string> | null => {
    const raw = queryString(call, name)
    if (raw === undefined || raw.trim() === '') return null
    return new Set(raw.split(',').map(a => a.trim().replace(/^urn:[^[]*:/i, '').split('.')[0]?.toLowerCase() ?? '').filter(a => a !== ''))
  }
  const only = names('attributes')
  const excluded = names('excludedAttributes')
  if (only === null && excluded === null) return resource
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(resource)) {
    const key = k.toLowerCase()
    const always = key === 'id' || key === 'schemas'
    if (!always && only !== null && !only.has(key)) continue
    if (!always && excluded?.has(key) === true) continue
    out[k] = v
  }
  return out
}

// ---- visibility per scope -----------------------------------------------------------------------------

function inScope (p: Principal, scope: Scope): boolean {
  const ws = scope.workspace
  if (p.kind === 'group' && p.workspaceId !== null) return ws !== null && p.workspaceId === ws.id
  if (ws === null) return true
  return ws.access(p.id).level !== null
}

function candidates (account: DatabricksAccount, kind: Kind, scope: Scope): Principal[] {
  const all = kind === 'user' ? account.users() : kind === 'servicePrincipal' ? account.servicePrincipals() : [...account.groups(null), ...(scope.workspace === null ? [] : account.groups(scope.workspace.id))]
  return all.filter(p => inScope(p, scope))
}

function find (account: DatabricksAccount, kind: Kind, id: string, scope: Scope): Principal {
  const p = account.get(id)
  if (p === undefined || p.kind !== kind || !inScope(p, scope)) throw notFound(`${LABEL[kind]} with id ${id} not found.`)
  return p
}

// ---- filters ------------------------------------------------------------------------------------------

const FILTERS: { [K in Kind]: FilterAttributes<Extract<Principal, { kind: K }>> } = {
  user: {
    id: { get: u => u.id, caseExact: true },
    userName: { get: u => u.userName },
    displayName: { get: u => u.displayName },
    externalId: { get: u => u.externalId, caseExact: true },
    active: { get: u => u.active },
    emails: { get: u => u.emails.map(e => e.value) },
    'emails.value': { get: u => u.emails.map(e => e.value) },
    'name.givenName': { get: u => u.givenName },
    'name.familyName': { get: u => u.familyName }
  },
  group: {
    id: { get: g => g.id, caseExact: true },
    displayName: { get: g => g.displayName },
    externalId: { get: g => g.externalId, caseExact: true }
  },
  servicePrincipal: {
    id: { get: sp => sp.id, caseExact: true },
    applicationId: { get: sp => sp.applicationId },
    displayName: { get: sp => sp.displayName },
    externalId: { get: sp => sp.externalId, caseExact: true },
    active: { get: sp => sp.active }
  }
}

const SORTABLE: Record<string, (p: Principal) => string> = {
  id: p => p.id,
  username: p => p.kind === 'user' ? p.userName.toLowerCase() : '',
  displayname: p => p.displayName.toLowerCase(),
  applicationid: p => p.kind === 'servicePrincipal' ? p.applicationId.toLowerCase() : '',
  externalid: p => p.externalId ?? ''
}

/**
 * What an `eq` filter, or an `or` of them, on id, userName, displayName, externalId or applicationId can
 * match, looked up in the account's indexes rather than scanned (real Databricks answers these quickly; a
 * scan of 50,000 users took ~20 ms a lookup), in the scan's order: creation order, account groups before
 * workspace-local ones. A superset: the caller still applies the filter and the scope. Null for any other
 * filter, which is scanned.
 */
function indexedCandidates (account: DatabricksAccount, kind: Kind, tree: Filter): Principal[] | null {
  const terms = equalityTerms(tree)
  if (terms === null) return null
  const found = new Map<string, Principal>()
  for (const { attr, value } of terms) {
    let hits: Array<Principal | undefined>
    switch (attr) {
      case 'id': hits = [account.get(value)]; break
      case 'username': hits = [account.userByName(value)]; break
      case 'applicationid': hits = [account.servicePrincipalByAppId(value)]; break
      case 'displayname': hits = account.withDisplayName(value); break
      case 'externalid': hits = account.withExternalId(value); break
      default: return null
    }
    for (const p of hits) if (p?.kind === kind) found.set(p.id, p)
  }
  const local = (p: Principal): number => p.kind === 'group' && p.workspaceId !== null ? 1 : 0
  return [...found.values()].sort((a, b) => local(a) - local(b) || account.ordinal(a.id) - account.ordinal(b.id))
}

function list (call: Call, kind: Kind, scope: Scope): unknown {
  const { account } = call
  let items: Principal[]
  const filter = queryString(call, 'filter')
  if (filter !== undefined && filter.trim() !== '') {
    const tree = parseFilter(filter)
    const test = compileFilter(tree, FILTERS[kind] as FilterAttributes<Principal>, RESOURCE[kind])
    const indexed = indexedCandidates(account, kind, tree)
    items = indexed === null ? candidates(account, kind, scope).filter(test) : indexed.filter(p => inScope(p, scope) && test(p))
  } else {
    items = candidates(account, kind, scope)
  }
  const sortBy = queryString(call, 'sortBy')
  const key = sortBy === undefined ? undefined : SORTABLE[sortBy.toLowerCase()]
  if (key !== undefined) items.sort((a, b) => key(a).localeCompare(key(b)))
  if (queryString(call, 'sortOrder')?.toLowerCase() === 'descending') items.reverse()
  const startIndex = Math.max(1, queryInt(call, 'startIndex') ?? 1)
  const count = Math.min(10_000, Math.max(0, queryInt(call, 'count') ?? 10_000))
  const page = items.slice(startIndex - 1, startIndex - 1 + count)
  // "As of 08/22/2025, [account Groups list] will no longer return members" (reference §2.2).
  const withMembers = scope.workspace !== null
  const out: Record<string, unknown> = { schemas: [SCHEMA.list], totalResults: items.length, startIndex, itemsPerPage: page.length }
  // Past the end the page is empty and `Resources` is left out ([UNCONF]: the reference allows either).
  if (page.length > 0) out.Resources = page.map(p => project(render(account, p, scope, withMembers), call))
  return out
}

// ---- bodies -------------------------------------------------------------------------------------------

function optionalString (body: Record<string, unknown>, key: string): string | null | undefined {
  const v = body[key]
  if (v === undefined) return undefined
  if (v === null) return null
  if (typeof v !== 'string') throw invalidValue(`${key} must be a string.`)
  return v
}

function emailsOf (body: Record<string, unknown>): AccountUser['emails'] | undefined {
  const v = body.emails
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v)) throw invalidValue('emails must be an array.')
  return v.map(e => {
    if (typeof e !== 'object' || e === null || typeof (e as { value?: unknown }).value !== 'string') throw invalidValue('Each email needs a string value.')
    const { value, type, primary } = e as { value: string, type?: unknown, primary?: unknown }
    // Terraform types `type`/`primary` as any: a bool or a string is accepted.
    return { value, ...(typeof type === 'string' ? { type } : {}), ...(primary !== undefined ? { primary: primary === true || primary === 'true' } : {}) }
  })
}

function nameOf (body: Record<string, unknown>): { givenName?: string | null, familyName?: string | null } | undefined {
  const v = body.name
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidValue('name must be an object.')
  const n = v as Record<string, unknown>
  return { givenName: optionalString(n, 'givenName'), familyName: optionalString(n, 'familyName') }
}

function listValues (body: Record<string, unknown>, key: string): string[] | undefined {
  const v = body[key]
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v)) throw invalidValue(`${key} must be an array.`)
  return complexValues(v)
}

function entitlementsFromBody (body: Record<string, unknown>, scope: Scope): string[] | undefined {
  const list = listValues(body, 'entitlements')
  if (list === undefined) return undefined
  if (scope.workspace === null) {
    if (list.length > 0) throw invalidValue(ACCOUNT_ENTITLEMENTS_ERROR)
    return undefined
  }
  for (const e of list) if (!ENTITLEMENTS.has(e)) throw invalidValue(`Unsupported entitlement '${e}'.`)
  return list
}

function activeOf (body: Record<string, unknown>): boolean | undefined {
  return body.active === undefined || body.active === null ? undefined : booleanValue(body.active, 'active')
}

/** Checks `ids` may become members of `group` (each exists, fits the scope, passes the nesting rules). */
function checkMembers (account: DatabricksAccount, group: AccountGroup, ids: Iterable<string>, scope: Scope): void {
  for (const id of ids) {
    if (group.members.has(id)) continue
    const member = account.get(id)
    if (member === undefined || !(member.kind !== 'group' || member.workspaceId === null || member.workspaceId === group.workspaceId)) {
      throw invalidValue(`Member ${id} does not exist.`)
    }
    if (scope.workspace === null && member.kind === 'group' && member.workspaceId !== null) throw invalidValue(`Member ${id} does not exist.`)
    account.checkMembership(group, member)
  }
}

function setMembers (account: DatabricksAccount, group: AccountGroup, next: Set<string>): void {
  for (const id of [...group.members]) if (!next.has(id)) account.removeMember(group.id, id)
  for (const id of next) account.addMember(group.id, id)
}

// ---- create -------------------------------------------------------------------------------------------

function userConflict (userName: string, scope: Scope): DatabricksError {
  return scope.workspace === null
    ? conflict(`User with email ${userName} already exists in this account. Note: emails are case insensitive (i.e abc@domain.com and ABC@DOMAIN.COM are considered equivalent)`)
    : conflict(`User with username ${userName} already exists.`)
}

function createUser (call: Call, scope: Scope): Principal {
  const { account } = call
  const body = call.body()
  const userName = optionalString(body, 'userName')
  if (userName === undefined || userName === null || userName.trim() === '') throw invalidValue('userName is required.')
  const entitlements = entitlementsFromBody(body, scope)
  const existing = account.userByName(userName)
  if (existing !== undefined) {
    if (scope.workspace === null || inScope(existing, scope)) throw userConflict(userName, scope)
    // An account user added to a workspace through its SCIM API: assigned, not duplicated.
    scope.workspace.setAssignment(existing.id, 'USER')
    if (entitlements !== undefined) scope.workspace.entitlements.set(existing.id, new Set(entitlements))
    return existing
  }
  const name = nameOf(body)
  const user = account.createUser({
    userName,
    displayName: optionalString(body, 'displayName'),
    givenName: name?.givenName,
    familyName: name?.familyName,
    emails: emailsOf(body),
    active: activeOf(body),
    externalId: optionalString(body, 'externalId'),
    roles: listValues(body, 'roles'),
    origin: 'scim'
  })
  if (scope.workspace !== null) {
    scope.workspace.setAssignment(user.id, 'USER')
    if (entitlements !== undefined) scope.workspace.entitlements.set(user.id, new Set(entitlements))
  }
  return user
}

function createServicePrincipal (call: Call, scope: Scope): Principal {
  const { account } = call
  const body = call.body()
  const applicationId = optionalString(body, 'applicationId') ?? randomUUID()
  const entitlements = entitlementsFromBody(body, scope)
  const existing = account.servicePrincipalByAppId(applicationId)
  if (existing !== undefined) {
    if (scope.workspace === null || inScope(existing, scope)) throw conflict(`Service principal with application ID ${applicationId} already exists.`)
    scope.workspace.setAssignment(existing.id, 'USER')
    if (entitlements !== undefined) scope.workspace.entitlements.set(existing.id, new Set(entitlements))
    return existing
  }
  const sp = account.createServicePrincipal({
    applicationId,
    displayName: optionalString(body, 'displayName'),
    active: activeOf(body),
    externalId: optionalString(body, 'externalId'),
    roles: listValues(body, 'roles'),
    origin: 'scim'
  })
  if (scope.workspace !== null) {
    scope.workspace.setAssignment(sp.id, 'USER')
    if (entitlements !== undefined) scope.workspace.entitlements.set(sp.id, new Set(entitlements))
  }
  return sp
}

function createGroup (call: Call, scope: Scope): Principal {
  const { account } = call
  const body = call.body()
  const displayName = optionalString(body, 'displayName')
  if (displayName === undefined || displayName === null || displayName.trim() === '') throw invalidValue('displayName is required.')
  const entitlements = entitlementsFromBody(body, scope)
  const workspaceId = scope.workspace?.id ?? null
  if (workspaceId === null) assertAccountGroupName(displayName)
  if (account.groupByName(displayName, workspaceId) !== undefined) throw conflict(`Group with name ${displayName} already exists.`)
  const members = listValues(body, 'members') ?? []
  const externalId = optionalString(body, 'externalId')
  // Validate everything before creating anything: a failed create leaves no half-made group.
  for (const id of members) {
    const m = account.get(id)
    if (m === undefined || (m.kind === 'group' && m.workspaceId !== null && m.workspaceId !== workspaceId)) throw invalidValue(`Member ${id} does not exist.`)
  }
  if (externalId !== undefined && externalId !== null && workspaceId === null && account.byExternal(externalId) !== undefined) {
    throw conflict(`A principal with external ID ${externalId} already exists in this account.`)
  }
  const group = account.createGroup({ displayName, externalId, roles: listValues(body, 'roles'), workspaceId, origin: 'scim' })
  for (const id of members) account.addMember(group.id, id)
  if (scope.workspace !== null && entitlements !== undefined) scope.workspace.entitlements.set(group.id, new Set(entitlements))
  return group
}

// ---- replace (PUT) --------------------------------------------------------------------------------------

function guardAccountGroup (p: Principal, scope: Scope): void {
  if (scope.workspace !== null && p.kind === 'group' && p.workspaceId === null) {
    throw invalidValue(`Group ${p.displayName} is an account group: it cannot be changed through the workspace SCIM API; use the account SCIM API.`)
  }
  if (p.kind === 'group' && p.system !== null) throw invalidValue(`Group ${p.displayName} is a system group and cannot be changed.`)
}

function replace (call: Call, p: Principal, scope: Scope): void {
  const { account } = call
  guardAccountGroup(p, scope)
  const body = call.body()
  const entitlements = entitlementsFromBody(body, scope)
  const externalId = optionalString(body, 'externalId') ?? null
  const roles = listValues(body, 'roles') ?? []
  if (p.kind === 'group') {
    const displayName = optionalString(body, 'displayName')
    if (displayName === undefined || displayName === null || displayName.trim() === '') throw invalidValue('displayName is required.')
    if (p.workspaceId === null && displayName !== p.displayName) assertAccountGroupName(displayName)
    const members = new Set(listValues(body, 'members') ?? [])
    checkMembers(account, p, members, scope)
    const other = account.groupByName(displayName, p.workspaceId)
    if (other !== undefined && other.id !== p.id) throw conflict(`Group with name ${displayName} already exists.`)
    account.renameGroup(p, displayName)
    setMembers(account, p, members)
  } else {
    // userName, emails and applicationId cannot change through PUT: supplied values are ignored.
    const displayName = optionalString(body, 'displayName')
    const active = activeOf(body)
    if (p.kind === 'user') {
      const name = nameOf(body)
      p.givenName = name?.givenName ?? null
      p.familyName = name?.familyName ?? null
      account.setDisplayName(p, displayName ?? p.userName)
    } else {
      account.setDisplayName(p, displayName ?? p.applicationId)
    }
    p.active = active ?? true
  }
  account.setExternalId(p, externalId)
  p.roles = roles
  if (scope.workspace !== null) scope.workspace.entitlements.set(p.id, new Set(entitlements ?? []))
  account.touch(p)
}

// ---- PATCH --------------------------------------------------------------------------------------------

interface Draft {
  displayName: string
  givenName: string | null
  familyName: string | null
  active: boolean
  externalId: string | null
  roles: Set<string>
  entitlements: Set<string> | null
  members: Set<string> | null
}

const ATTRIBUTES: Record<Kind, Set<string>> = {
  user: new Set(['active', 'displayname', 'name', 'externalid', 'username', 'emails', 'roles', 'entitlements', 'groups', 'schemas', 'id', 'meta']),
  group: new Set(['displayname', 'externalid', 'members', 'roles', 'entitlements', 'groups', 'schemas', 'id', 'meta']),
  servicePrincipal: new Set(['active', 'displayname', 'externalid', 'applicationid', 'roles', 'entitlements', 'groups', 'schemas', 'id', 'meta'])
}

function patchAttribute (call: Call, p: Principal, scope: Scope, draft: Draft, op: PatchOperation, path: PatchPath, value: unknown): void {
  const { account } = call
  if (!ATTRIBUTES[p.kind].has(path.attr)) throw invalidPath(`Attribute '${path.raw}' is not supported for ${LABEL[p.kind]}.`)
  if (path.filter !== null && op.op !== 'remove') throw invalidPath(`A value filter in path '${path.raw}' is only supported with remove.`)
  // Through the workspace API, account groups only take entitlements; system groups only members and entitlements.
  const accountGroupInWorkspace = scope.workspace !== null && p.kind === 'group' && p.workspaceId === null
  if (accountGroupInWorkspace && path.attr !== 'entitlements') guardAccountGroup(p, scope)
  if (p.kind === 'group' && p.system !== null && path.attr !== 'members' && path.attr !== 'entitlements') guardAccountGroup(p, scope)
  const selected = (current: Iterable<string>, label: (v: string) => string | undefined = () => undefined) => () =>
    path.filter === null ? null : selectValues([...current].map(v => ({ value: v, display: label(v), $ref: refOf(account, v) })), path.filter)
  switch (path.attr) {
    case 'schemas':
    case 'id':
    case 'meta':
    case 'username':
    case 'emails':
    case 'applicationid':
      // Immutable here; "any supplied change is ignored" (reference §2.2).
      return
    case 'groups':
      throw new DatabricksError(400, 'INVALID_PARAMETER_VALUE', `Attribute '${path.raw}' is read-only: change the group's members instead.`, { scimType: 'mutability' })
    case 'active':
      if (op.op === 'remove') throw invalidValue('active cannot be removed.')
      draft.active = booleanValue(value, 'active')
      return
    case 'displayname':
      if (op.op === 'remove') throw invalidValue('displayName cannot be removed.')
      draft.displayName = stringValue(value, 'displayName')
      if (draft.displayName.trim() === '') throw invalidValue('displayName cannot be empty.')
      return
    case 'externalid':
      draft.externalId = op.op === 'remove' || value === null ? null : stringValue(value, 'externalId')
      return
    case 'name': {
      if (path.sub !== null && path.sub !== 'givenname' && path.sub !== 'familyname') throw invalidPath(`Attribute '${path.raw}' is not supported for User.`)
      if (op.op === 'remove') {
        if (path.sub !== 'familyname') draft.givenName = null
        if (path.sub !== 'givenname') draft.familyName = null
      } else if (path.sub === 'givenname') {
        draft.givenName = stringValue(value, path.raw)
      } else if (path.sub === 'familyname') {
        draft.familyName = stringValue(value, path.raw)
      } else {
        const name = nameOf({ name: value }) ?? {}
        if (name.givenName !== undefined || op.op === 'replace') draft.givenName = name.givenName ?? null
        if (name.familyName !== undefined || op.op === 'replace') draft.familyName = name.familyName ?? null
      }
      return
    }
    case 'roles':
      draft.roles = applyToSet(draft.roles, op, () => complexValues(value), selected(draft.roles))
      return
    case 'entitlements': {
      if (scope.workspace === null) throw invalidValue(ACCOUNT_ENTITLEMENTS_ERROR)
      const current = draft.entitlements ?? new Set<string>()
      draft.entitlements = applyToSet(current, op, () => {
        const list = complexValues(value)
        for (const e of list) if (!ENTITLEMENTS.has(e)) throw invalidValue(`Unsupported entitlement '${e}'.`)
        return list
      }, selected(current))
      return
    }
    case 'members': {
      if (p.kind !== 'group') throw invalidPath(`Attribute '${path.raw}' is not supported for ${LABEL[p.kind]}.`)
      const current = draft.members ?? new Set(memberIds(account, p, scope))
      draft.members = applyToSet(current, op, () => complexValues(value), selected(current, id => account.get(id)?.displayName))
    }
  }
}

function refOf (account: DatabricksAccount, id: string): string | undefined {
  const p = account.get(id)
  return p === undefined ? undefined : `${RESOURCE[p.kind]}/${p.id}`
}

function patch (call: Call, p: Principal, scope: Scope): void {
  const { account } = call
  const ops = parsePatch(call.body())
  const draft: Draft = {
    displayName: p.displayName,
    givenName: p.kind === 'user' ? p.givenName : null,
    familyName: p.kind === 'user' ? p.familyName : null,
    active: p.kind === 'group' ? true : p.active,
    externalId: p.externalId,
    roles: new Set(p.roles),
    entitlements: null,
    members: null
  }
  if (scope.workspace !== null) draft.entitlements = new Set(scope.workspace.entitlements.get(p.id) ?? [])
  for (const op of ops) {
    if (op.path !== null) {
      patchAttribute(call, p, scope, draft, op, op.path, op.value)
      continue
    }
    // Path-less add/replace: `value` is an object of attributes, e.g. { members: [{ value }] }.
    for (const [key, value] of Object.entries(op.value as Record<string, unknown>)) {
      patchAttribute(call, p, scope, draft, op, parsePathLess(key), value)
    }
  }
  // Validate, then commit: a PATCH that fails changes nothing.
  if (p.kind === 'group' && draft.members !== null && !(p.system !== null && scope.workspace !== null)) checkMembers(account, p, draft.members, scope)
  if (p.kind === 'group' && draft.displayName !== p.displayName) {
    if (p.workspaceId === null) assertAccountGroupName(draft.displayName)
    const other = account.groupByName(draft.displayName, p.workspaceId)
    if (other !== undefined && other.id !== p.id) throw conflict(`Group with name ${draft.displayName} already exists.`)
  }
  if (draft.externalId !== null && (p.externalId ?? '').toLowerCase() !== draft.externalId.toLowerCase() && account.byExternal(draft.externalId) !== undefined) {
    throw conflict(`A principal with external ID ${draft.externalId} already exists in this account.`)
  }
  if (p.kind === 'group') {
    account.renameGroup(p, draft.displayName)
    if (draft.members !== null) {
      if (p.system !== null && scope.workspace !== null) setSystemMembers(call, scope.workspace, p.system, draft.members)
      else setMembers(account, p, draft.members)
    }
  } else {
    account.setDisplayName(p, draft.displayName)
    p.active = draft.active
    if (p.kind === 'user') {
      p.givenName = draft.givenName
      p.familyName = draft.familyName
    }
  }
  account.setExternalId(p, draft.externalId)
  p.roles = [...draft.roles]
  if (scope.workspace !== null && draft.entitlements !== null) scope.workspace.entitlements.set(p.id, draft.entitlements)
  account.touch(p)
}

function parsePathLess (key: string): PatchPath {
  const attr = key.replace(/^urn:[^[]*:/i, '')
  const [head, sub] = attr.split('.')
  return { raw: key, attr: (head ?? '').toLowerCase(), sub: sub?.toLowerCase() ?? null, filter: null }
}

/** Members of `admins`/`users` are workspace assignments: adding makes ADMIN/USER, removing takes it away. */
function setSystemMembers (call: Call, ws: Workspace, which: 'admins' | 'users', next: Set<string>): void {
  const { account } = call
  for (const id of next) {
    const m = account.accountPrincipal(id)
    if (m === undefined) throw invalidValue(`Member ${id} does not exist.`)
  }
  const current = new Set(ws.systemGroupMembers(which))
  for (const id of current) {
    if (next.has(id)) continue
    const direct = ws.assignments.get(id)
    if (which === 'admins' && direct === 'ADMIN') ws.setAssignment(id, 'USER')
    if (which === 'users') ws.setAssignment(id, null)
  }
  for (const id of next) {
    if (current.has(id)) continue
    if (which === 'admins') ws.setAssignment(id, 'ADMIN')
    else if (ws.assignments.get(id) === undefined) ws.setAssignment(id, 'USER')
  }
}

// ---- delete -------------------------------------------------------------------------------------------

function remove (call: Call, p: Principal, scope: Scope): void {
  const ws = scope.workspace
  if (ws === null) {
    call.account.delete(p.id)
    return
  }
  if (p.kind === 'group') {
    guardAccountGroup(p, scope)
    call.account.delete(p.id)
    return
  }
  // Workspace SCIM on an identity-federated workspace: the principal leaves the workspace, not the account.
  ws.setAssignment(p.id, null)
  ws.entitlements.delete(p.id)
}

// ---- Me -----------------------------------------------------------------------------------------------

function me (call: Call): unknown {
  const ws = call.workspace as Workspace
  const scope: Scope = { workspace: ws }
  const p = call.caller.principal
  if (p?.kind === 'user') return renderUser(call.account, p, scope)
  const base: Record<string, unknown> = {
    schemas: [SCHEMA.user, SCHEMA.workspaceUser],
    id: p?.id ?? '0',
    userName: call.caller.userName,
    displayName: call.caller.displayName,
    active: true
  }
  if (p !== null) put(base, 'groups', groupsOf(call.account, p, scope))
  else base.groups = [{ ...ref(call.account.get(ws.adminsGroupId) as Principal), type: 'direct' }]
  base.meta = { resourceType: 'User' }
  return base
}

// ---- routes -------------------------------------------------------------------------------------------

export function scimRoutes (): RouteDef[] {
  const defs: RouteDef[] = []
  for (const scopeKind of ['account', 'workspace'] as const) {
    const base = scopeKind === 'account' ? '/api/2.0/accounts/:accountId/scim/v2' : '/api/2.0/preview/scim/v2'
    const scopeOf = (call: Call): Scope => scopeKind === 'account' ? { workspace: null } : { workspace: call.workspace as Workspace }
    const cfg = (family: 'get' | 'list' | 'patch' | 'write'): RouteConfig => scopeKind === 'account'
      ? { family: `account-scim-${family}`, scope: 'account', scim: true, access: 'account-admin' }
      : { family: family === 'get' || family === 'list' ? 'workspace-scim-read' : 'workspace-scim-write', scope: 'workspace', scim: true, access: family === 'get' || family === 'list' ? 'workspace-user' : 'workspace-admin' }
    for (const resource of ['Users', 'Groups', 'ServicePrincipals'] as const) {
      const kind = KIND[resource]
      const create = { user: createUser, group: createGroup, servicePrincipal: createServicePrincipal }[kind]
      defs.push(
        route('POST', `${base}/${resource}`, cfg('write'), call => {
          const scope = scopeOf(call)
          const p = create(call, scope)
          call.reply.code(201)
          return render(call.account, p, scope)
        }),
        route('GET', `${base}/${resource}`, cfg('list'), call => list(call, kind, scopeOf(call))),
        route('GET', `${base}/${resource}/:id`, cfg('get'), call => {
          const scope = scopeOf(call)
          return project(render(call.account, find(call.account, kind, call.params.id as string, scope), scope), call)
        }),
        route('PUT', `${base}/${resource}/:id`, cfg('write'), call => {
          const scope = scopeOf(call)
          const p = find(call.account, kind, call.params.id as string, scope)
          replace(call, p, scope)
          return render(call.account, p, scope)
        }),
        route('PATCH', `${base}/${resource}/:id`, cfg('patch'), call => {
          const scope = scopeOf(call)
          const p = find(call.account, kind, call.params.id as string, scope)
          patch(call, p, scope)
          return render(call.account, p, scope)
        }),
        route('DELETE', `${base}/${resource}/:id`, cfg('write'), call => {
          const scope = scopeOf(call)
          remove(call, find(call.account, kind, call.params.id as string, scope), scope)
          call.reply.code(204).send()
        })
      )
    }
  }
  defs.push(route('GET', '/api/2.0/preview/scim/v2/Me', { family: 'workspace-scim-read', scope: 'workspace', scim: true, access: 'workspace-user' }, me))
  return defs
}
