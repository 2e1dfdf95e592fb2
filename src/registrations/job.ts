// A bulk registration job: what was asked (a list of principals, or a group's transitive members), the
// state of every item, and the job's status. Plain JSON, so a store can keep it as one document and a
// restarted service can pick it up where the last checkpoint left it.
import { randomUUID } from 'node:crypto'
import type { DirectoryPrincipal, PrincipalQuery } from '../directory/port.ts'

export type JobStatus = 'queued' | 'listing' | 'running' | 'completed' | 'failed'
export type ItemState = 'pending' | 'registered' | 'failed'

/** At most this many principals per job: in a request's list, or in a group's transitive members. */
export const MAX_PRINCIPALS = 10_000

export interface ItemFailure {
  /** Stable code: PRINCIPAL_NOT_FOUND, PRINCIPAL_DISABLED, UPSTREAM_UNAVAILABLE, … */
  code: string
  message: string
}

export interface JobItem {
  /** How the principal was named: an object id, a UPN, a mail address or an application id. */
  query: PrincipalQuery
  /** Tried when `query` finds nobody: a GUID that is no object id may be an appId, a non-UPN a mail address. */
  alternate?: PrincipalQuery
  /** Already read from the directory (the members of a group job), so it is not read again. */
  principal?: DirectoryPrincipal
  state: ItemState
  /** Attempts that hit an upstream outage or throttling (bounded; then the item fails). */
  attempts: number
  /** The principal's id in the Databricks account, once registered. */
  databricksId?: string
  failure?: ItemFailure
}

export type JobSource = { kind: 'principals' } | { kind: 'group', groupId: string }

export interface RegistrationJob {
  id: string
  tenantId: string
  /** The caller's object id (a user, or the service principal of an automation). */
  requestedBy: string
  createdAt: string
  updatedAt: string
  finishedAt?: string
  status: JobStatus
  source: JobSource
  /** For a group job: empty until its members are listed (status `listing` → `running`). */
  items: JobItem[]
  /** Why the whole job failed (the group does not exist, Databricks refuses the service's credentials…). */
  error?: ItemFailure
}

/** What a caller asks for (POST /v1/registrations). */
export interface SubmitInput {
  tenantId: string
  requestedBy: string
  source: JobSource
  /** The principals of a `principals` job. */
  items?: Array<{ query: PrincipalQuery, alternate?: PrincipalQuery }>
}

/** The job a submission makes: `queued`, with its principals pending (a group job lists them later). */
export function submittedJob (input: SubmitInput, now: number): RegistrationJob {
  const job = newJob({ tenantId: input.tenantId, requestedBy: input.requestedBy, now, source: input.source })
  job.items = (input.items ?? []).map(({ query, alternate }) => ({ query, ...(alternate !== undefined ? { alternate } : {}), state: 'pending', attempts: 0 }))
  return job
}

/** Marks the job changed now. */
export function touch (job: RegistrationJob, now: number): void {
  job.updatedAt = new Date(now).toISOString()
}

/** Ends the job: completed, or failed with why. */
export function finish (job: RegistrationJob, status: 'completed' | 'failed', now: number, error?: ItemFailure): void {
  job.status = status
  if (error !== undefined) job.error = error
  touch(job, now)
  job.finishedAt = job.updatedAt
}

export const isFinished = (status: JobStatus): boolean => status === 'completed' || status === 'failed'

export function newJob (input: { tenantId: string, requestedBy: string, now: number, source: JobSource }): RegistrationJob {
  const at = new Date(input.now).toISOString()
  return {
    id: randomUUID(),
    tenantId: input.tenantId,
    requestedBy: input.requestedBy,
    createdAt: at,
    updatedAt: at,
    status: 'queued',
    source: input.source,
    items: []
  }
}

export interface JobCounts {
  total: number
  registered: number
  failed: number
  pending: number
}

export function countsOf (job: RegistrationJob): JobCounts {
  let registered = 0
  let failed = 0
  for (const item of job.items) {
    if (item.state === 'registered') registered++
    else if (item.state === 'failed') failed++
  }
  return { total: job.items.length, registered, failed, pending: job.items.length - registered - failed }
}

/** How an item names its principal, for reports: the value the caller gave. */
export const labelOf = (query: PrincipalQuery): string => Object.values(query)[0] as string
