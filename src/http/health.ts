// Liveness and readiness. /healthz answers while the process can serve at all; /readyz answers 200 only
// when every required readiness check passes, so a load balancer stops sending traffic to a replica that
// can't work. The checks run together, each bounded in time (a probe that hangs is a failing probe, not a
// hung one), and the 503 names every check that failed. A check that is not required (Redis, which every
// replica shares: were its failure to take each replica out, the whole fleet would stop serving) is
// reported as `degraded` with its reason, and the replica stays ready.
import type { FastifyInstance } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { NotReady } from './problems.ts'
import { Problems as P, problemResponses } from './problem-catalogue.ts'
import { success } from './schemas.ts'

export interface ReadinessCheck {
  name: string
  check: () => Promise<void> | void
  /** false: a failure is reported (status `degraded`) but the replica stays ready. Default true. */
  required?: boolean
}

/** How long one readiness check may take before it counts as failed. */
export const CHECK_TIMEOUT_MS = 2000

const status = (example: { status: string, checks?: Record<string, string> }) => Type.Object({
  status: Type.String(),
  checks: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Each readiness check by name, `ok` when it passed.' }))
}, { examples: [example] })
const Alive = status({ status: 'ok' })
const Ready = status({ status: 'ready', checks: { 'entra-signing-keys': 'ok', redis: 'ok', fleet: 'ok' } })
type StatusBody = Static<typeof Ready>

export async function healthRoutes (app: FastifyInstance, opts: { checks: ReadinessCheck[], checkTimeoutMs?: number }): Promise<void> {
  const timeoutMs = opts.checkTimeoutMs ?? CHECK_TIMEOUT_MS
  app.get('/healthz', {
    schema: {
      tags: ['health'],
      summary: 'Liveness: the process serves requests.',
      description: 'Asks nothing of any upstream: a failing upstream never makes a replica look dead.',
      response: { 200: success('The process is up.', Alive), ...problemResponses([]) }
    }
  }, async () => ({ status: 'ok' }))

  app.get('/readyz', {
    schema: {
      tags: ['health'],
      summary: 'Readiness: every readiness check passes.',
      description: `Runs every readiness check together (Entra's signing keys; with Redis, the registration store and the replicas' channel), each within ${timeoutMs} ms. 503 \`NOT_READY\` names each required check that failed: a load balancer sends the replica no traffic until it answers 200. Redis is shared by every replica, so its checks do not take a replica out: while it is away the answer is 200 with \`status\` \`degraded\` and the reason in \`checks\`, and the replica serves on its own.`,
      response: { 200: success('Ready: every required check passed (`status` `ready`, or `degraded` when a check that is not required failed).', Ready), ...problemResponses([P.NotReady]) }
    }
  }, async (): Promise<StatusBody> => {
    const results = await Promise.all(opts.checks.map(async ({ name, check, required }) => ({ name, required: required !== false, failure: await failureOf(check, timeoutMs) })))
    const failed = results.filter(r => r.failure !== undefined && r.required)
    if (failed.length > 0) throw new NotReady(failed.map(r => `${r.name}: ${r.failure ?? ''}`).join('; '))
    return {
      status: results.some(r => r.failure !== undefined) ? 'degraded' : 'ready',
      checks: Object.fromEntries(results.map(r => [r.name, r.failure ?? 'ok']))
    }
  })
}

/** Why the check failed, or undefined when it passed in time. */
async function failureOf (check: ReadinessCheck['check'], timeoutMs: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<string>(resolve => { timer = setTimeout(() => { resolve(`no answer within ${timeoutMs} ms`) }, timeoutMs) })
  try {
    return await Promise.race([Promise.resolve().then(check).then(() => undefined), late])
  } catch (err) {
    return (err as Error).message
  } finally {
    clearTimeout(timer)
  }
}
