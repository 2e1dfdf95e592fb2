// `npm run demo`: local mode end to end. Starts the emulators and the service on free ports, runs the
// walk-through `npm start` prints (token, login, permissions, share, permissions again), prints each
// step's result, and exits non-zero when a step fails.
import { Agent, fetch } from 'undici'
import { loadConfig } from '../src/config.ts'
import { buildService } from '../src/service.ts'
import { startLocalMode } from '../src/local/local-mode.ts'
import type { WalkthroughStep } from '../src/local/walkthrough.ts'

// Always the emulators, whatever the shell's environment says about a real tenant.
const local = await startLocalMode(loadConfig({ LOG_LEVEL: 'warn', PORT: '0', EMULATORS_PORT: '0' }))
const service = await buildService(local.config, { ca: local.ca })
let failed = false
try {
  const url = await service.app.listen({ port: 0, host: '127.0.0.1' })
  console.log(local.banner)
  let token = ''
  for (const [i, step] of local.walkthrough(url).steps.entries()) {
    console.log(`\n# ${i + 1}. ${step.title}\n$ ${step.curl}`)
    const { status, body } = await run(step, token)
    console.log(`→ ${status}\n${summary(i, body)}`)
    if (status !== 200) {
      failed = true
      break
    }
    if (i === 0) token = String(body.access_token)
  }
} finally {
  await service.close()
  await local.close()
}
console.log(failed ? '\nThe demo FAILED: see the step above.' : '\nThe demo passed: every step answered 200.')
process.exitCode = failed ? 1 : 0

async function run (step: WalkthroughStep, token: string): Promise<{ status: number, body: Record<string, any> }> {
  const headers: Record<string, string> = step.authorized ? { authorization: `Bearer ${token}` } : {}
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

/** The part of each answer worth reading (the whole body is a curl away). */
function summary (i: number, body: Record<string, any>): string {
  const lines: string[] = []
  if (typeof body.code === 'string') return `  ${body.code}: ${body.detail}`
  if (i === 0) lines.push(`  access token: ${String(body.access_token).slice(0, 16)}… (${body.expires_in} s)`)
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
