// `npm run register` as an operator runs it: a child process against a listening service, its progress
// as plain lines (stderr is not a terminal here), the summary, the failures, the bounded wait (--max-wait,
// --follow) and the exit codes.
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

t.test('--max-wait: past it, exit 3 naming the job and how to follow it; --follow follows it to its end', async t => {
  // 0 stops after the job's first state, which a job just started can never have finished in.
  const waited = await register(['--group', T.allStaff, '--url', url, '--token', token, '--max-wait', '0'])
  t.equal(waited.code, 3, waited.stderr)
  const id = /^Registration ([0-9a-f-]{36}) started/.exec(waited.stderr)?.[1] ?? 'no id'
  t.match(waited.stderr, new RegExp(`Registration ${id} is not done after 0 s \\(--max-wait\\): (queued|listing|running), \\d+ of \\d+ done`))
  t.match(waited.stderr, /The job goes on in the service\. Follow it with:/)
  t.ok(waited.stderr.includes(`npm run register -- --follow ${id} --url ${url} --token <token>\n`), 'the command to go on following it, with no token in it')
  t.notOk(waited.stderr.includes(token), 'the token is never printed')
  t.ok(waited.stderr.includes(`GET ${url}/v1/registrations/${id}`))
  t.equal(waited.stdout, '', 'no summary: the job is not done')

  const followed = await register(['--follow', id, '--url', url, '--interval', '20'], { RESOLVER_TOKEN: token })
  t.equal(followed.code, 0, followed.stderr)
  t.match(followed.stderr, new RegExp(`^Following registration ${id} \\(/v1/registrations/${id}\\)\\.`))
  t.match(followed.stdout, new RegExp(`Registration ${id} completed: 4 of 4 registered, 0 failed\\.`))
})

t.test('usage and HTTP errors: a message that says what to do, exit 2', async t => {
  const dir = t.testdir()
  const emptyFile = join(dir, 'empty.txt')
  await writeFile(emptyFile, '# nothing\n\n')
  // Independent processes: run them side by side.
  const [neither, both, badWait, unknownJob, noToken, empty, missing, badToken, noGroup, unreachable, bogus, help] = await Promise.all([
    register(['--url', url, '--token', token]),
    register(['--group', T.allStaff, '--follow', '0f2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b', '--url', url, '--token', token]),
    register(['--group', T.allStaff, '--url', url, '--token', token, '--max-wait', '10m']),
    register(['--follow', '0f2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b', '--url', url, '--token', token]),
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
  t.match(neither.stderr, /Give exactly one of --group, --file and --follow\.[\s\S]*Usage: npm run register/)
  t.match(both, { code: 2, stderr: /Give exactly one of --group, --file and --follow\./ })
  t.match(badWait, { code: 2, stderr: /--max-wait is a number of seconds/ })
  t.match(unknownJob, { code: 2, stderr: /HTTP 404 REGISTRATION_NOT_FOUND/ })
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
