// POST /v1/registrations (bulk registration, a job) and GET /v1/registrations/{id} (its progress).
import type { FastifyInstance } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Resolver } from '../resolver/resolver.ts'
import type { PrincipalQuery } from '../directory/port.ts'
import type { Registrations } from '../registrations/runner.ts'
import { MAX_PRINCIPALS, countsOf, labelOf, type RegistrationJob } from '../registrations/job.ts'
import { AmbiguousSource, GroupNotFound, NoPrincipals, NotAGroup, RegistrationNotFound, RegistrationsNotConfigured, TooManyPrincipals } from '../registrations/errors.ts'
import { EXAMPLE, Guid, Name, Strict, success } from './schemas.ts'
import { EXPECTED } from './validation.ts'
import { requireRole } from './authenticate.ts'
import { GUID } from '../auth/claims.ts'
import { ADMIN, BEARER, DIRECTORY, JSON_BODY, PARAMETERS, Problems as P, V1, problemResponses } from './problem-catalogue.ts'

/** Every problem POST /v1/registrations may answer with. */
const REGISTER_PROBLEMS = [
  ...V1, ...BEARER, ...ADMIN, ...JSON_BODY, P.RegistrationsNotConfigured, P.AmbiguousSource, P.NoPrincipals, P.TooManyPrincipals,
  // `group`: looked up now, so a mistyped id is a 404 rather than a failed job.
  P.GroupNotFound, P.NotAGroup, ...DIRECTORY,
  P.RegistrationsClosing, P.RegistrationsUnavailable
]
/** Every problem GET /v1/registrations/{id} may answer with. */
const PROGRESS_PROBLEMS = [...V1, ...BEARER, ...ADMIN, ...PARAMETERS, P.RegistrationsNotConfigured, P.RegistrationNotFound, P.RegistrationsUnavailable]

/**
 * The largest registration body accepted, from what the largest real request needs. Entra caps a UPN at
 * 113 characters (64 before the @, 48 after), so 10,000 principals as {"userPrincipalName":"<113 chars>"},
 * take 10,000 × (22 + 113 + 2 + 1) = 1,380,000 bytes compact, 10,000 × 156 = 1,560,000 bytes pretty-printed
 * with two-space indentation; 10,000 object ids as strings ("<36 chars>",) take 390,000 bytes. 2 MiB
 * (2,097,152 bytes) leaves a third more than the worst of these. The schema's 320-character bound on a name
 * (3.2 MB for 10,000 of them, far more with \u escapes) is a sanity bound, not what names need.
 */
export const REGISTRATION_BODY_LIMIT = 2 * 1024 * 1024

/** Failures listed in a progress report; `failed` counts them all. */
export const MAX_FAILURES_LISTED = 1000

const Key = Name(320)
/**
 * A name (a string), or an object with exactly one key. One schema whose keywords apply by type rather than
 * a union: a union's errors would list every branch, and an item naming two keys must be refused, not cut
 * down to one of them.
 */
const PrincipalRef = Type.Unsafe<string | { id: string } | { userPrincipalName: string } | { mail: string } | { appId: string }>({
  type: ['string', 'object'],
  minLength: 1,
  maxLength: 320,
  pattern: Key.pattern,
  properties: {
    id: Guid(),
    userPrincipalName: Key,
    mail: Key,
    appId: Guid({ [EXPECTED]: 'an application id (GUID), e.g. 8f3b9a0f-1206-4f5e-b418-b6e000a771b5' })
  },
  additionalProperties: false,
  minProperties: 1,
  maxProperties: 1,
  [EXPECTED]: 'a name without control characters, that is an object id, UPN, mail or application id; or an object with exactly one of id, userPrincipalName, mail and appId',
  description: 'A name: a GUID is an object id (else tried as an application id), anything else a user principal name (else tried as a mail address). Or an object with exactly one of `id`, `userPrincipalName`, `mail`, `appId`.'
})

const RegistrationRequest = Strict({
  principals: Type.Optional(Type.Array(PrincipalRef, { description: `Users and service principals to register, at most ${MAX_PRINCIPALS}.` })),
  group: Type.Optional(Guid({ description: 'Object id of a group (any case): every user and service principal in it, directly or through nested groups, is registered.' }))
}, {
  description: 'Exactly one of `principals` and `group`; every other property is refused (400 UNKNOWN_PROPERTY).',
  examples: [
    { group: EXAMPLE.groupId },
    { principals: [EXAMPLE.upn, { userPrincipalName: EXAMPLE.otherUpn }, { appId: EXAMPLE.appId }] }
  ]
})

// No unions in the response (see schemas.ts): optional fields instead.
const Failure = Type.Object({
  principal: Type.String({ description: 'The principal as the request named it (a group job: its object id).' }),
  code: Type.String({ description: 'PRINCIPAL_NOT_FOUND, PRINCIPAL_DISABLED, NOT_A_PRINCIPAL, UPSTREAM_UNAVAILABLE, TARGET_BAD_REQUEST, …' }),
  message: Type.String()
})

const Registration = Type.Object({
  id: Type.String(),
  status: Type.Unsafe<RegistrationJob['status']>({ type: 'string', enum: ['queued', 'listing', 'running', 'completed', 'failed'], description: '`listing`: reading the group\'s members; `failed`: the job itself failed (see `error`); per-principal failures do not fail the job.' }),
  group: Type.Optional(Type.String({ description: 'The group whose members are registered.' })),
  requestedBy: Type.String({ description: 'Object id of the caller that created the job.' }),
  total: Type.Integer(),
  registered: Type.Integer(),
  failed: Type.Integer(),
  pending: Type.Integer(),
  failures: Type.Array(Failure, { description: `The first ${MAX_FAILURES_LISTED} principals that could not be registered.` }),
  failuresTruncated: Type.Boolean({ description: 'More principals failed than `failures` lists (`failed` counts them all).' }),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() }, { description: 'Why the whole job failed.' })),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  finishedAt: Type.Optional(Type.String({ format: 'date-time' }))
}, {
  description: 'A bulk registration and its progress.',
  examples: [{
    id: EXAMPLE.registrationId,
    status: 'running',
    group: EXAMPLE.groupId,
    requestedBy: EXAMPLE.userId,
    total: 1250,
    registered: 830,
    failed: 1,
    pending: 419,
    failures: [{ principal: EXAMPLE.otherUserId, code: 'PRINCIPAL_DISABLED', message: `${EXAMPLE.otherUserId} ('Grace Hopper') is disabled in Entra (accountEnabled=false); it was not registered. Enable it, then register it again.` }],
    failuresTruncated: false,
    createdAt: '2026-12-02T09:00:00.000Z',
    updatedAt: '2026-12-02T09:02:41.000Z'
  }]
})
/** The job as GET /v1/registrations/{id} answers it (also what the CLI and the tests read). */
export type RegistrationBody = Static<typeof Registration>

export function registrationBody (job: RegistrationJob): RegistrationBody {
  const failures: RegistrationBody['failures'] = []
  const counts = countsOf(job)
  for (const item of job.items) {
    if (failures.length >= MAX_FAILURES_LISTED) break
    if (item.state === 'failed' && item.failure !== undefined) failures.push({ principal: labelOf(item.query), ...item.failure })
  }
  return {
    id: job.id,
    status: job.status,
    ...(job.source.kind === 'group' ? { group: job.source.groupId } : {}),
    requestedBy: job.requestedBy,
    ...counts,
    failures,
    failuresTruncated: counts.failed > failures.length,
    ...(job.error !== undefined ? { error: job.error } : {}),
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    ...(job.finishedAt !== undefined ? { finishedAt: job.finishedAt } : {})
  }
}

/** A string as the request gave it: a GUID is an object id or else an appId; otherwise a UPN or else a mail. */
function queryOf (ref: Static<typeof PrincipalRef>): { query: PrincipalQuery, alternate?: PrincipalQuery } {
  if (typeof ref !== 'string') {
    // Object and application ids in any case; passed on in lowercase, as Entra writes them.
    const [key, value] = Object.entries(ref)[0] as [string, string]
    return { query: { [key]: key === 'id' || key === 'appId' ? value.toLowerCase() : value } as unknown as PrincipalQuery }
  }
  const value = ref.trim()
  if (GUID.test(value)) {
    const id = value.toLowerCase()
    return { query: { id }, alternate: { appId: id } }
  }
  return { query: { userPrincipalName: value }, alternate: { mail: value } }
}

export async function registrationRoutes (parent: FastifyInstance, { runner, resolver }: { runner?: Registrations, resolver: Resolver }): Promise<void> {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>()

  app.post('/v1/registrations', {
    schema: {
      tags: ['registrations'],
      summary: 'Register up to 10,000 principals, or a group\'s transitive members, in the Databricks account.',
      description: 'Needs the `Identity.Admin` app role. The body may be at most 2 MiB (`413 BODY_TOO_LARGE`), ample for 10,000 names. Answers 202 at once with the job; `Location` names it, and `GET` on it reports the progress. The job honours Graph\'s and Databricks\' rate limits, retries through throttling and outages, and resumes after a restart.',
      security: [{ bearer: [] }],
      body: RegistrationRequest,
      response: {
        202: success('Accepted: the job, queued (or already listing the group); `GET` its `Location` for the progress.', Registration, {
          Location: { type: 'string', description: 'The job: `/v1/registrations/{id}`.', examples: [`/v1/registrations/${EXAMPLE.registrationId}`] }
        }),
        ...problemResponses(REGISTER_PROBLEMS)
      }
    },
    bodyLimit: REGISTRATION_BODY_LIMIT,
    // Token and role before the body is read: a caller without Identity.Admin never gets it parsed.
    onRequest: [app.authenticate, requireRole('Identity.Admin')]
  }, async (request, reply) => {
    if (runner === undefined) throw new RegistrationsNotConfigured()
    const caller = request.caller
    if (caller === undefined) throw new Error('authenticate did not set the caller')
    const { principals, group } = request.body
    if (principals !== undefined && group !== undefined) throw new AmbiguousSource()
    let job: RegistrationJob
    if (group !== undefined) {
      // Checked now, so a mistyped id is a 404 to the caller rather than a failed job to poll for.
      let kind: string
      try {
        kind = (await resolver.resolve(caller.tenantId, { id: group })).principal.kind
      } catch (err) {
        if ((err as { code?: unknown }).code === 'PRINCIPAL_NOT_FOUND') throw new GroupNotFound(group, caller.tenantId)
        throw err
      }
      if (kind !== 'group') throw new NotAGroup(group, kind === 'user' ? 'user' : 'service principal')
      job = await runner.submit({ tenantId: caller.tenantId, requestedBy: caller.oid, source: { kind: 'group', groupId: group.toLowerCase() } })
    } else {
      if (principals === undefined || principals.length === 0) throw new NoPrincipals()
      if (principals.length > MAX_PRINCIPALS) throw new TooManyPrincipals(MAX_PRINCIPALS, principals.length)
      // The same name twice is one item (names of one principal by different keys are only known apart later;
      // registering it twice is harmless: materialization is idempotent).
      const items = new Map(principals.map(queryOf).map(item => [JSON.stringify(Object.entries(item.query)[0]).toLowerCase(), item]))
      job = await runner.submit({ tenantId: caller.tenantId, requestedBy: caller.oid, source: { kind: 'principals' }, items: [...items.values()] })
    }
    return await reply.code(202).header('location', `/v1/registrations/${job.id}`).send(registrationBody(job))
  })

  app.get('/v1/registrations/:id', {
    schema: {
      tags: ['registrations'],
      summary: 'The progress of a registration: counts, status and the principals that failed.',
      description: 'Needs the `Identity.Admin` app role; only registrations of the caller\'s tenant are found.',
      security: [{ bearer: [] }],
      params: Strict({ id: Name(64, { description: 'The id the Location header of the POST named.', examples: [EXAMPLE.registrationId] }) }),
      response: {
        200: success('The job\'s progress: counts, status, and the principals that could not be registered with why.', Registration),
        ...problemResponses(PROGRESS_PROBLEMS)
      }
    },
    onRequest: [app.authenticate, requireRole('Identity.Admin')]
  }, async (request) => {
    if (runner === undefined) throw new RegistrationsNotConfigured()
    const { id } = request.params
    const job = GUID.test(id) ? await runner.get(id.toLowerCase()) : undefined
    if (job === undefined || job.tenantId.toLowerCase() !== request.caller?.tenantId.toLowerCase()) throw new RegistrationNotFound(id)
    return registrationBody(job)
  })
}
