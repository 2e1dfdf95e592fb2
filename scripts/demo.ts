// `npm run demo`: local mode end to end. Starts the emulators and the service on free ports, runs the
// walk-through `npm start` prints (token, login, permissions, share, permissions again, then a bulk
// registration of a group, followed to its end), prints each step's result, and exits non-zero when a
// step fails.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, fetch } from 'undici'
import { loadConfig } from '../src/config.ts'
import { buildService } from '../src/service.ts'
import { startLocalMode } from '../src/local/local-mode.ts'
import type { WalkthroughStep } from '../src/local/walkthrough.ts'

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
  for (const [i, step] of local.walkthrough(url).steps.entries()) {
    console.log(`\n# ${i + 1}. ${step.title}\n$ ${step.curl}`)
    const { status, body } = await run(step, step.bearer !== undefined ? tokens[step.bearer] ?? '' : '')
    console.log(`→ ${status}\n${summary(body)}`)
    if (status !== 200 && status !== 202) {
      failed = true
      break
    }
    if (step.sets !== undefined) tokens[step.sets] = String(body.access_token)
    if (status === 202 && typeof body.id === 'string') failed = !await follow(`${url}/v1/registrations/${body.id}`, tokens.ADMIN_TOKEN ?? '')
  }
} finally {
  await service.close()
  await local.close()
  await rm(jobs, { recursive: true, force: true })
}
console.log(failed ? '\nThe demo FAILED: see the step above.' : '\nThe demo passed: every step succeeded.')
process.exitCode = failed ? 1 : 0

async function run (step: Pick<WalkthroughStep, 'method' | 'url' | 'form' | 'json'>, token: string): Promise<{ status: number, body: Record<string, any> }> {
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
    const res = await fetch(step.url, { method: step.method, headers, body, dispatcher })
    return { status: res.status, body: await res.json() as Record<string, any> }
  } finally {
    await dispatcher.close()
  }
}

/** Polls a registration job until it finishes; true when every principal was registered. */
async function follow (jobUrl: string, token: string): Promise<boolean> {
  for (;;) {
    const { status, body } = await run({ method: 'GET', url: jobUrl }, token)
    if (status !== 200) {
      console.log(`→ ${status}\n${summary(body)}`)
      return false
    }
    if (body.status === 'completed' || body.status === 'failed') {
      console.log(`  job ${body.status}: ${body.registered} of ${body.total} registered, ${body.failed} failed`)
      for (const f of body.failures ?? []) console.log(`    - ${JSON.stringify(f.principal)}: ${f.code} ${f.message}`)
      return body.status === 'completed' && body.failed === 0
    }
    await new Promise(resolve => setTimeout(resolve, 200))
  }
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
