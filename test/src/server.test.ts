// The process entry as an operator runs it: local mode start-up, health, graceful shutdown, bad config.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { childEnv } from '../helpers/child-env.ts'
import { DEMO_ALICE_UPN, DEMO_CLI_APP_ID, DEMO_PASSWORD, DEMO_RESOLVER_APP_ID, DEMO_TENANT_ID } from '../../emulators/tenant/demo.ts'

// The TypeScript entry itself, as `npm start` runs it (not the tests' bundle): local mode finds the
// emulators' PKI beside their sources.
const serverPath = new URL('../../src/server.ts', import.meta.url).pathname

function start (env: Record<string, string>): { child: ReturnType<typeof spawn>, output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', serverPath], {
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  return { child, output: () => out }
}

/**
 * Resolves as soon as the output matches; the bound is generous (a loaded machine may take long to start a
 * TypeScript process and the emulators), since it costs nothing when things are fast.
 */
async function waitFor (pattern: RegExp, output: () => string, ms = 120_000): Promise<RegExpMatchArray> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    const m = pattern.exec(output())
    if (m !== null) return m
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${String(pattern)}; output so far:\n${output()}`)
}

t.test('local mode: starts the emulators, says so loudly, serves health, shuts down gracefully', async t => {
  const { child, output } = start({ PORT: '0', EMULATORS_PORT: '0', LOG_LEVEL: 'info' })
  t.teardown(() => { child.kill('SIGKILL') })
  const [, url] = await waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/, output)
  t.match(output(), /LOCAL MODE/)
  t.match(output(), /Demo tenant: 8f2c5a1e-4b7d-4e3a-9c61-2d5e8f0a7b13/)
  const emulatorOrigin = /Emulated Entra ID, Microsoft Graph and Databricks: (https:\/\/\S+)/.exec(output())?.[1] ?? ''
  t.equal((await fetch(`${emulatorOrigin}/common/discovery/keys`)).status, 200, 'the emulators answer over HTTPS')

  const health = await fetch(`${url ?? ''}/healthz`)
  t.equal(health.status, 200)
  t.equal((await fetch(`${url ?? ''}/readyz`)).status, 200, 'ready: the signing keys load from the emulators')

  // The walk-through a person would do: a user token from the password grant, then a login.
  const form = new URLSearchParams({
    grant_type: 'password',
    client_id: DEMO_CLI_APP_ID,
    username: DEMO_ALICE_UPN,
    password: DEMO_PASSWORD,
    scope: `api://${DEMO_RESOLVER_APP_ID}/.default`
  })
  const token = await (await fetch(`${emulatorOrigin}/${DEMO_TENANT_ID}/oauth2/v2.0/token`, { method: 'POST', body: form })).json() as { access_token: string }
  const login = await fetch(`${url ?? ''}/v1/login`, { method: 'POST', headers: { authorization: `Bearer ${token.access_token}` } })
  t.equal(login.status, 200)
  t.match(await login.json(), { principal: { userPrincipalName: DEMO_ALICE_UPN }, groupsSource: 'graph', databricks: { principalId: String, active: true } })
  await waitFor(/"oid":"[0-9a-f-]{36}"/, output)
  t.notMatch(output(), new RegExp(token.access_token.slice(-20)), 'the token never reaches the log')
  const logLines = output().split('\n').filter(l => l.startsWith('{')).join('\n')
  t.notMatch(logLines, /Bearer|client_secret/, 'nothing secret is logged (the walk-through shows "Bearer $TOKEN", not a token)')

  child.kill('SIGTERM')
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 0, 'exits cleanly on SIGTERM')
})

t.test('a bad configuration stops start-up and names every variable', async t => {
  const { child, output } = start({ PORT: 'eighty', LOG_LEVEL: 'loud' })
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 1)
  t.match(output(), /PORT: .*'eighty'/)
  t.match(output(), /LOG_LEVEL: /)
})

t.test('production without the Entra configuration refuses to run local mode', async t => {
  const { child, output } = start({ NODE_ENV: 'production' })
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 1)
  t.match(output(), /ENTRA_TENANT_ID: required when NODE_ENV=production/)
  t.notMatch(output(), /LOCAL MODE/)
})

t.test('local mode prints a walk-through whose curl lines work as printed', async t => {
  const { child, output } = start({ PORT: '0', EMULATORS_PORT: '0', LOG_LEVEL: 'warn', REGISTRATIONS_DIR: t.testdir() })
  t.teardown(() => { child.kill('SIGKILL') })
  await waitFor(/# 8\. .*\n.*\n/, output)
  const lines = output().split('\n')
  const commands = lines.flatMap((l, i) => /^# \d+\. /.test(l) ? [lines[i + 1] ?? ''] : [])
  t.equal(commands.length, 8, 'eight steps, each a shell line')
  // Run them in one strict shell, in order, as a person would paste them; each step's output apart.
  const script = ['exec 2>&1', ...commands.flatMap((c, i) => [`printf '\\n@@@ ${i + 1}\\n'`, c])].join('\n')
  const shell = spawn('bash', ['-euo', 'pipefail', '-c', script], { env: childEnv({}), stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 })
  let out = ''
  shell.stdout.on('data', (d: Buffer) => { out += d.toString() })
  shell.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const [code] = await once(shell, 'exit') as [number | null]
  t.equal(code, 0, out)
  const sections = out.split(/\n@@@ \d+\n/).slice(1).map(s => s.trim())
  t.same([sections[0], sections[5]], ['', ''], 'the token steps set $TOKEN and $ADMIN_TOKEN and print nothing')
  // Pretty-printed by jq when it is on PATH, as they come otherwise: JSON either way.
  const answers = [1, 2, 3, 4, 6, 7].map(i => JSON.parse(sections[i] ?? '') as Record<string, any>)
  t.match(answers[0], { principal: { userPrincipalName: 'alice.martin@contoso.onmicrosoft.com' }, workspace: { workspaceId: '3141592653589793' } })
  t.match(answers[1], { level: 'CAN_EDIT', grants: [{ group: 'Engineering', groupPath: ['Data Platform', 'Engineering'], inherited: true }] })
  t.match(answers[2], { grant: { level: 'CAN_READ', principalName: 'grace.kim@contoso.onmicrosoft.com' } })
  t.match(answers[3], { level: 'CAN_READ', grants: [{ via: 'user', inherited: false }], dashboard: { canViewPublished: true } })
  t.match(answers[4], { id: String, status: 'queued' })
  t.match(answers[5], { id: answers[4]?.id, status: 'completed', total: 6, registered: 6, failed: 0 }, 'step 8 followed the job of step 7 to its end')
})
