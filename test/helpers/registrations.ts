// Shared by the registration tests: an admin token, POST/GET helpers over app.inject, polling a job until
// it ends (or, for restart tests, until it has made some progress), and the Databricks emulator's state.
import type { FastifyInstance } from 'fastify'
import type { Emulator } from '../../emulators/server.ts'
import type { TenantFixture } from '../../emulators/tenant/model.ts'
import { T, smallTenant } from './tenant.ts'
import { tokenFor } from './service.ts'
import type { RegistrationBody } from '../../src/http/registration-routes.ts'

export type Progress = RegistrationBody

/** An app-only token of the ETL service principal with the Identity.Admin app role. */
export async function adminToken (emulator: Emulator): Promise<string> {
  return await tokenFor(emulator, T.etlSp, { claims: { roles: ['Identity.Admin'] } })
}

export async function postRegistration (app: FastifyInstance, token: string, body: unknown): Promise<{ status: number, location?: string, json: Progress & { code?: string, detail?: string } }> {
  const res = await app.inject({ method: 'POST', url: '/v1/registrations', headers: { authorization: `Bearer ${token}` }, payload: body as Record<string, unknown> })
  return { status: res.statusCode, ...(typeof res.headers.location === 'string' ? { location: res.headers.location } : {}), json: res.json() }
}

export async function getRegistration (app: FastifyInstance, token: string, id: string): Promise<Progress> {
  const res = await app.inject({ method: 'GET', url: `/v1/registrations/${id}`, headers: { authorization: `Bearer ${token}` } })
  if (res.statusCode !== 200) throw new Error(`GET /v1/registrations/${id}: ${res.statusCode} ${res.body}`)
  return res.json()
}

/** Polls the job until `until` holds (default: it has ended). Bounded by tap's own test timeout. */
export async function waitFor (app: FastifyInstance, token: string, id: string, until: (p: Progress) => boolean = p => p.status === 'completed' || p.status === 'failed'): Promise<Progress> {
  for (;;) {
    const progress = await getRegistration(app, token, id)
    if (until(progress)) return progress
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

export interface AccountPrincipal { id: string, externalId: string | null, userName?: string, applicationId?: string }
export interface AccountState {
  users: AccountPrincipal[]
  servicePrincipals: AccountPrincipal[]
  groups: AccountPrincipal[]
  rateLimits: { refused: { throttled: number, concurrency: number } }
}

export async function accountState (emulator: Emulator): Promise<AccountState> {
  return await (await fetch(`${emulator.origin}/_emulator/databricks/state`)).json() as AccountState
}

export async function control (emulator: Emulator, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${emulator.origin}/_emulator${path}`, {
    method,
    ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {})
  })
  if (!res.ok) throw new Error(`${method} /_emulator${path}: ${res.status} ${await res.text()}`)
  return res.status === 204 ? undefined : await res.json()
}

/** How many times each external id occurs among the account's users and service principals. */
export function occurrences (state: AccountState): Map<string, number> {
  const counts = new Map<string, number>()
  for (const p of [...state.users, ...state.servicePrincipals]) {
    if (p.externalId !== null) counts.set(p.externalId, (counts.get(p.externalId) ?? 0) + 1)
  }
  return counts
}

const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')

/**
 * The small tenant plus a nested group of `members` principals: `Big Org` → `departments` department
 * groups → `teams` team groups each → users (and every 500th member a service principal), spread evenly
 * over the teams. Every 50th user is also in the next team, so a member reached twice must be listed once.
 */
export function bigGroupTenant (members: number, departments = 10, teams = 5): { fixture: TenantFixture, root: string, memberIds: string[] } {
  const base = smallTenant()
  const root = 'e0000000-0000-4000-8000-000000000000'
  const teamIds: string[] = []
  const groups: TenantFixture['groups'] = [{ id: root, displayName: 'Big Org', members: [] }]
  for (let d = 0; d < departments; d++) {
    const dept = `e1${hex(d, 6)}-0000-4000-8000-000000000000`
    groups[0]?.members.push(dept)
    const dg = { id: dept, displayName: `Department ${d}`, members: [] as string[] }
    groups.push(dg)
    for (let k = 0; k < teams; k++) {
      const team = `e2${hex(d, 3)}${hex(k, 3)}-0000-4000-8000-000000000000`
      dg.members.push(team)
      teamIds.push(team)
      groups.push({ id: team, displayName: `Team ${d}.${k}`, members: [] })
    }
  }
  const users: TenantFixture['users'] = []
  const servicePrincipals: TenantFixture['servicePrincipals'] = []
  const memberIds: string[] = []
  const teamGroups = groups.slice(1).filter(g => teamIds.includes(g.id))
  for (let i = 0; i < members; i++) {
    const team = teamGroups[i % teamGroups.length] as { members: string[] }
    if (i % 500 === 499) {
      const id = `e4000000-0000-4000-8000-${hex(i, 12)}`
      servicePrincipals.push({ id, appId: `e5000000-0000-4000-8000-${hex(i, 12)}`, displayName: `Workload ${i}` })
      team.members.push(id)
      memberIds.push(id)
      continue
    }
    const id = `e3000000-0000-4000-8000-${hex(i, 12)}`
    users.push({ id, userPrincipalName: `member${i}@contoso-test.onmicrosoft.com`, displayName: `Member ${i}` })
    team.members.push(id)
    if (i % 50 === 0) (teamGroups[(i + 1) % teamGroups.length] as { members: string[] }).members.push(id)
    memberIds.push(id)
  }
  return {
    fixture: { ...base, users: [...base.users, ...users], servicePrincipals: [...base.servicePrincipals, ...servicePrincipals], groups: [...base.groups, ...groups] },
    root,
    memberIds
  }
}

/** Emulator calls whose route matches, summed (`ctx.calls` counts by route pattern). */
export function callsMatching (emulator: Emulator, pattern: RegExp): number {
  return Object.entries(emulator.ctx.calls.snapshot().routes).filter(([route]) => pattern.test(route)).reduce((n, [, c]) => n + c, 0)
}
