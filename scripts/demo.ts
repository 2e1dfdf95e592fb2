// `npm run demo`: local mode end to end. Starts the emulators and the service on free ports, runs the
// walk-through `npm start` prints (token, login, permissions, share, permissions again, then a bulk
// registration of a group, followed to its end for at most --max-wait seconds), prints each step's
// result, and exits non-zero when a step fails or the job is not done in time (2: bad arguments).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Agent, fetch } from 'undici'
import { loadConfig } from '../src/config.ts'
import { buildService } from '../src/service.ts'
import { startLocalMode } from '../src/local/local-mode.ts'
import type { WalkthroughStep } from '../src/local/walkthrough.ts'
import { followJob, parseMaxWait, seconds } from './follow-job.ts'

const DEFAULT_MAX_WAIT_SECONDS = 120
const USAGE = `Usage: npm run demo [-- --max-wait <seconds>]

  --max-wait  how long to follow the registration job of the last step, in seconds (default ${DEFAULT_MAX_WAIT_SECONDS});
              past it the demo fails, naming the job`

interface Job { id: string, status: string, total: number, registered: number, failed: number, failures?: Array<{ principal: string, code: string, message: string }> }

class AnswerError extends Error {
  constructor (readonly status: number, readonly body: Record<string, any>) { super(`HTTP ${status}`) }
}

const maxWaitMs = options(process.argv.slice(2))

// Always the emulators, whatever the shell's environment says about a real tenant; the registration job
// lives in a directory of its own, so `npm start` never resumes a job of the demo's throw-away emulators.
const jobs = await mkdtemp(join(tmpdir(), 'jit-demo-registrations-'))
const local = await startLocalMode(loadConfig({ LOG_LEVEL: 'warn', PORT: '0', EMULATORS_PORT: '0', REGISTRATIONS_DIR: jobs }))
const service = await buildService(local.config, { ca: local.ca })
let failed = false
try {
  const url = await service.app.listen({ port: 0, host: '127.0.0.1' })
  console.log(local.banner)
  const tokens: Record<string, string> = {}
  let n = 0
  for (const step of local.walkthrough(url).steps) {
    console.log(`\n# ${++n}. ${step.title}\n$ ${step.curl}`)
    const { status, body } = await run(step, step.bearer !== undefined ? tokens[step.bearer] ?? '' : '')
    console.log(`→ ${status}\n${summary(body)}`)
    if (status !== 200 && status !== 202) {
      failed = true
      break
    }
    if (step.sets !== undefined) tokens[step.sets] = String(body.access_token)
    if (step.follow !== undefined && typeof body.id === 'string') {
      console.log(`\n# ${++n}. ${step.follow.title}\n$ ${step.follow.curl}`)
      failed = !await follow(body as Job, `${url}/v1/registrations/${body.id}`, tokens.ADMIN_TOKEN ?? '', maxWaitMs)
    }
  }
} finally {
  await service.close()
  await local.close()
  await rm(jobs, { recursive: true, force: true })
}
console.log(failed ? '\nThe demo FAILED: see the step above.' : '\nThe demo passed: every step succeeded.')
process.exitCode = failed ? 1 : 0

async function run (step: Pick<WalkthroughStep, 'method' | 'url' | 'form' | 'json'>, token: string, signal?: AbortSignal): Promise<{ status: number, body: Record<string, any> }> {
  const headers: Record<string, string> = token !== '' ? { authorization: `Bearer ${token}` } : {}
  let body: string | URLSearchParams | undefined
  if (step.form !== undefined) body = new URLSearchParams(step.form)
  if (step.json !== undefined) {
    headers['content-type'] = 'application/json'
    body = JSON.stringify(step.json)
  }
  // The token endpoint is the emulators' HTTPS origin: trusted through NODE_EXTRA_CA_CERTS or the CA.
  const dispatcher = new Agent({ connect: { ca: local.ca } })
  try {
    const res = await fetch(step.url, { method: step.method, headers, body, dispatcher, ...(signal !== undefined ? { signal } : {}) })
    return { status: res.status, body: await res.json() as Record<string, any> }
  } finally {
    await dispatcher.close()
  }
}

/** The --max-wait in milliseconds; usage errors exit 2, --help exits 0. */
function options (args: string[]): number {
  try {
    const { values } = parseArgs({ args, options: { 'max-wait': { type: 'string', default: String(DEFAULT_MAX_WAIT_SECONDS) }, help: { type: 'boolean', short: 'h' } }, strict: true })
    if (values.help === true) {
      console.log(USAGE)
      process.exit(0)
    }
    const ms = parseMaxWait(values['max-wait'])
    if (ms === undefined) throw new Error('--max-wait is a number of seconds.')
    return ms
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`)
    process.exit(2)
  }
}

/** Polls a registration job until it finishes, at most `maxWaitMs`; true when every principal was registered. */
async function follow (first: Job, jobUrl: string, token: string, maxWaitMs: number): Promise<boolean> {
  let followed
  try {
    followed = await followJob(first, async signal => {
      const { status, body } = await run({ method: 'GET', url: jobUrl }, token, signal)
      if (status !== 200) throw new AnswerError(status, body)
      return body as Job
    }, { maxWaitMs, intervalMs: 200 })
  } catch (err) {
    if (!(err instanceof AnswerError)) throw err
    console.log(`→ ${err.status}\n${summary(err.body)}`)
    return false
  }
  const job = followed.job
  if (!followed.done) {
    console.log(`  job ${job.id} is not done after ${seconds(followed.waitedMs)} (--max-wait): ${job.status}, ${job.registered + job.failed} of ${job.total} done.`)
    console.log('  The demo\'s service stops when the demo ends, and the job with it: run the demo with a longer --max-wait')
    console.log('  (npm run demo -- --max-wait 600), or run npm start and follow the job with the walk-through it prints.')
    return false
  }
  console.log(`→ job ${job.status}: ${job.registered} of ${job.total} registered, ${job.failed} failed`)
  for (const f of job.failures ?? []) console.log(`    - ${JSON.stringify(f.principal)}: ${f.code} ${f.message}`)
  return job.status === 'completed' && job.failed === 0
}

/** The part of each answer worth reading (the whole body is a curl away). */
function summary (body: Record<string, any>): string {
  const lines: string[] = []
  if (typeof body.code === 'string') return `  ${body.code}: ${body.detail}`
  if (typeof body.access_token === 'string') lines.push(`  access token: ${body.access_token.slice(0, 16)}… (${body.expires_in} s)`)
  if (typeof body.id === 'string' && typeof body.status === 'string') lines.push(`  registration job ${body.id}: ${body.status}`)
  if (body.principal !== undefined) lines.push(`  principal: ${body.principal.displayName} <${body.principal.userPrincipalName ?? body.principal.appId}>`)
  if (body.groups !== undefined) lines.push(`  groups (${body.groupCount}): ${body.groups.map((g: { displayName: string }) => g.displayName).join(', ')}`)
  if (body.databricks !== undefined) lines.push(`  Databricks id: ${body.databricks.principalId}`)
  if (body.workspace !== undefined) lines.push(`  workspace: ${body.workspace.access}${body.workspace.reason !== undefined ? ` — ${body.workspace.reason}` : ''}`)
  if (body.grant !== undefined) lines.push(`  granted ${body.grant.level} to ${body.grant.principalName} (${body.grant.changed ? 'written' : 'already held'})`)
  if ('level' in body) lines.push(`  effective level: ${body.level ?? 'none'}`)
  for (const g of body.grants ?? []) lines.push(`    - ${g.reason}`)
  if (body.dashboard !== undefined) lines.push(`  dashboard: ${body.dashboard.note}`)
  return lines.join('\n')
}
