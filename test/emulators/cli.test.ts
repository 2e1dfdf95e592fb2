// `npm run emulators` as a person uses it: the printed curl lines must work as printed.
import t from 'tap'
import { spawn, execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { decodeJwt } from 'jose'
import { childEnv } from '../helpers/child-env.ts'

const cliPath = new URL('../../emulators/cli.ts', import.meta.url).pathname

t.test('prints the origin, CA, tenant and curl lines that get real tokens', async t => {
  const child = spawn(process.execPath, ['--import', 'tsx', cliPath], {
    env: childEnv({ EMULATORS_PORT: '0' }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill('SIGTERM') })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  // Done as soon as the lines are printed; bounded generously, for a loaded machine.
  const until = Date.now() + 120_000
  while (!/User token[\s\S]*token\n/.test(out) && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 50))

  t.match(out, /listening on https:\/\/127\.0\.0\.1:\d+/)
  t.match(out, /CA certificate : \S+ca\.pem/)
  t.match(out, /Tenant {9}: 8f2c5a1e-4b7d-4e3a-9c61-2d5e8f0a7b13/)
  const pat = /account-admin token (dapi\w+)/.exec(out)?.[1] ?? ''
  const scimUrl = /(https:\S+\/scim\/v2\/Users)/.exec(out)?.[1] ?? ''
  const users = await fetch(scimUrl, { headers: { authorization: `Bearer ${pat}` } })
  t.equal(users.status, 200, 'the printed Databricks token and URL work')

  // Each curl command is the indented block after a heading line ending in ':'.
  const commands = [...out.matchAll(/:\n((?: {2}curl[^\n]*\n(?: {4}[^\n]*\n)*))/g)].map(m => (m[1] ?? '').replace(/\\\n/g, ' '))
  t.equal(commands.length, 2, 'an app-token and a user-token curl line')
  const claims = []
  for (const command of commands) {
    const { stdout } = await promisify(execFile)('bash', ['-c', command])
    const body = JSON.parse(stdout) as { access_token?: string }
    t.type(body.access_token, 'string', 'the printed command gets a token')
    claims.push(decodeJwt(body.access_token ?? ''))
  }
  t.match(claims[0], { aud: 'https://graph.microsoft.com', roles: Array }, 'an app token for Graph')
  t.match(claims[1], { upn: /@contoso\.onmicrosoft\.com$/, scp: 'user_impersonation' }, 'a user token for the resolver API')
})
