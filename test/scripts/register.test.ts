// `npm run register` as an operator runs it: a child process against a listening service, its progress
// as plain lines (stderr is not a terminal here), the summary, the failures and the exit codes.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID } from '../../emulators/databricks/account.ts'
import { childEnv } from '../helpers/child-env.ts'
import { startTestEmulator } from '../helpers/emulator.ts'
import { startService } from '../helpers/service.ts'
import { smallTenant, T } from '../helpers/tenant.ts'
import { adminToken } from '../helpers/registrations.ts'

const cliPath = new URL('../../scripts/register.ts', import.meta.url).pathname
const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
const { app } = await startService(t, emulator, { DATABRICKS_HOST: emulator.origin, DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID, DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT, DATABRICKS_MODE: 'aim' })
const url = await app.listen({ port: 0, host: '127.0.0.1' })
const token = await adminToken(emulator)

async function register (args: string[], env: Record<string, string> = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', cliPath, ...args], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  return { code, stdout, stderr }
}

t.test('--group: progress lines, a summary, exit 0', async t => {
  const res = await register(['--group', T.allStaff, '--url', url, '--interval', '20'], { RESOLVER_TOKEN: token })
  t.equal(res.code, 0, res.stderr)
  t.match(res.stderr, /^Registration [0-9a-f-]{36} started \(\/v1\/registrations\/[0-9a-f-]{36}\)\./)
  t.match(res.stderr, /completed: 4\/4 done, 4 registered, 0 failed/, 'plain progress lines, no bar, when stderr is not a terminal')
  t.notOk(res.stderr.includes('\u001b['), 'no terminal control sequences')
  t.match(res.stdout, /Registration [0-9a-f-]{36} completed: 4 of 4 registered, 0 failed\./)
})

t.test('--file: comments and blank lines skipped; failures listed; exit 1', async t => {
  const file = join(t.testdir(), 'principals.txt')
  await writeFile(file, ['# people to register', '', 'alice@contoso-test.onmicrosoft.com', T.bob, `  ${T.etlAppId}  `, 'nobody@contoso-test.onmicrosoft.com', T.disabled, ''].join('\n'))
  const res = await register(['--file', file, '--url', `${url}/`, '--token', token, '--interval', '20'])
  t.equal(res.code, 1, 'some principals failed')
  t.match(res.stdout, /completed: 3 of 5 registered, 2 failed\./)
  t.match(res.stdout, /nobody@contoso-test\.onmicrosoft\.com {2}PRINCIPAL_NOT_FOUND/)
  t.match(res.stdout, new RegExp(`${T.disabled} {2}PRINCIPAL_DISABLED`))
})

t.test('usage and HTTP errors: a message that says what to do, exit 2', async t => {
  const dir = t.testdir()
  const emptyFile = join(dir, 'empty.txt')
  await writeFile(emptyFile, '# nothing\n\n')
  // Independent processes: run them side by side.
  const [neither, noToken, empty, missing, badToken, noGroup, unreachable, bogus, help] = await Promise.all([
    register(['--url', url, '--token', token]),
    register(['--group', T.allStaff, '--url', url]),
    register(['--file', emptyFile, '--token', token, '--url', url]),
    register(['--file', join(dir, 'missing.txt'), '--token', token, '--url', url]),
    register(['--group', T.allStaff, '--url', url, '--token', 'not-a-token']),
    register(['--group', '99999999-9999-4999-8999-999999999999', '--url', url, '--token', token]),
    register(['--group', T.allStaff, '--url', 'http://127.0.0.1:1', '--token', token]),
    register(['--bogus']),
    register(['--help'])
  ])
  t.equal(neither.code, 2)
  t.match(neither.stderr, /Give exactly one of --group and --file\.[\s\S]*Usage: npm run register/)
  t.equal(noToken.code, 2)
  t.match(noToken.stderr, /RESOLVER_TOKEN/)
  t.match(empty, { code: 2, stderr: /lists no principal/ })
  t.match(missing, { code: 2, stderr: /Cannot read/ })
  t.match(badToken, { code: 2, stderr: /HTTP 401/ })
  t.match(noGroup, { code: 2, stderr: /HTTP 404 GROUP_NOT_FOUND/ })
  t.match(unreachable, { code: 2, stderr: /Cannot reach http:\/\/127\.0\.0\.1:1/ })
  t.match(bogus, { code: 2, stderr: /Unknown option/ })
  t.match(help, { code: 0, stdout: /Usage: npm run register/ })
})
