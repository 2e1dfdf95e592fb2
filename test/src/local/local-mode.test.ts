// Local mode's banner and walk-through: the same after a restart (every value a printed line holds is
// fixed), and the printed lines work as a person pastes them into a shell (POSIX sh, curl, node, and jq
// when it is on PATH), after a restart too: step 1 fetches a new token, step 7 keeps the new job's id in
// $JOB, and step 8 follows that job to its end.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { delimiter, dirname, join } from 'node:path'
import { loadConfig } from '../../../src/config.ts'
import { buildService } from '../../../src/service.ts'
import { onPath, startLocalMode } from '../../../src/local/local-mode.ts'
import { walkthroughSteps, type WalkthroughContext } from '../../../src/local/walkthrough.ts'
import { DEMO_DASHBOARD } from '../../../emulators/databricks/demo-workspace.ts'
import * as demo from '../../../emulators/tenant/demo.ts'

async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  return typeof address === 'object' && address !== null ? address.port : 0
}

interface Started { banner: string, text: string, plain: string, url: string, close: () => Promise<void> }

/** Local mode as `npm start` runs it, on the given ports, with its registration jobs in `dir`. */
async function start (ports: { emulators: number, service: number }, dir: string, jq: boolean): Promise<Started> {
  const local = await startLocalMode(loadConfig({ LOG_LEVEL: 'silent', EMULATORS_PORT: String(ports.emulators), REGISTRATIONS_DIR: dir }), { jq })
  try {
    const service = await buildService(local.config, { ca: local.ca, processMetrics: false })
    const url = await service.app.listen({ port: ports.service, host: '127.0.0.1' })
    return {
      banner: local.banner,
      text: local.walkthrough(url).text,
      plain: local.walkthrough(url, { jq: false }).text,
      url,
      close: async () => { await service.close(); await local.close() }
    }
  } catch (err) {
    await local.close()
    throw err
  }
}

/** The printed commands by step number: the line under each `# n. title`. */
function commands (text: string): string[] {
  const lines = text.split('\n')
  return lines.flatMap((line, i) => /^# \d+\. /.test(line) ? [lines[i + 1] ?? ''] : [])
}

/** Runs the printed lines in one POSIX shell, in order, as pasted; each step's output (stdout and stderr). */
async function paste (text: string, home: string): Promise<string[]> {
  const script = ['exec 2>&1', ...commands(text).flatMap((c, i) => [`printf '\\n@@@ ${i + 1}\\n'`, c])].join('\n')
  const child = spawn('sh', ['-c', script], {
    env: { PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`, HOME: home },
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 180_000
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  await once(child, 'exit')
  return out.split(/\n@@@ \d+\n/).slice(1).map(s => s.trim())
}

const curl = onPath('curl', `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`)
const jq = onPath('jq')

t.test('two starts print the same lines, and the lines of the first work against the second', async t => {
  const dir = t.testdir()
  const ports = { emulators: await freePort(), service: await freePort() }
  const first = await start(ports, dir, jq)
  await first.close()
  const second = await start(ports, dir, jq)
  t.teardown(second.close)

  t.equal(second.banner, first.banner, 'the banner is the same')
  t.equal(second.text, first.text, 'the walk-through is the same, line for line')
  t.equal(commands(first.text).length, 8)
  t.ok(first.banner.includes(`dashboard 'Revenue Pipeline' (${DEMO_DASHBOARD.id})`), 'the demo workspace\'s fixed dashboard id')
  t.ok(first.text.includes(`/v1/permissions/dashboards/${DEMO_DASHBOARD.id}?workspaceId=${DEMO_DASHBOARD.workspaceId}&`))
  t.ok(first.text.includes('JOB=$(curl -s -X POST') && first.text.includes(`'${first.url}/v1/registrations/'"$JOB"`), 'the job is kept in $JOB and followed by it, never named by its id')

  const variants: Array<[string, string, boolean]> = [['without jq', first.plain, false], ['with jq', first.text, true]]
  for (const [name, text, pretty] of variants) {
    const skip = !curl ? 'curl is not on PATH' : pretty && !jq ? 'jq is not on PATH' : false
    t.test(`pasted into sh, ${name}`, { skip }, async t => {
      t.equal(text.includes('| jq .'), pretty)
      const out = await paste(text, t.testdir())
      if (!t.equal(out.length, 8, 'every printed line ran')) t.comment(out.join('\n---\n'))
      const [token, login, colleague, share, newcomer, adminToken, registration, follow] = out as [string, string, string, string, string, string, string, string]
      const json = (key: string, value: string): RegExp => new RegExp(`"${key}": ?${value}`)
      t.equal(token, '', '1. $TOKEN is set, nothing printed')
      t.match(login, json('userPrincipalName', `"${demo.DEMO_ALICE_UPN.replace(/\./g, '\\.')}"`), '2. logged in')
      t.match(colleague, json('level', '"CAN_EDIT"'), '3. the colleague\'s level')
      t.match(share, json('level', '"CAN_READ"'), '4. shared')
      t.match(newcomer, json('level', '"CAN_READ"'), '5. the newcomer\'s level')
      t.equal(adminToken, '', '6. $ADMIN_TOKEN is set, nothing printed')
      t.match(registration, /^\{\n {2}"id": "[0-9a-f-]{36}",\n {2}"status": "(queued|listing|running)"/, '7. the job, shown while its id goes to $JOB')
      const id = /"id": "([0-9a-f-]{36})"/.exec(registration)?.[1] ?? 'no id'
      t.match(follow, json('id', `"${id}"`), '8. follows the job step 7 started')
      t.match(follow, json('status', '"completed"'))
      t.match(follow, json('registered', '6'))
      t.equal(/\n {2}"/.test(login), pretty, pretty ? 'pretty-printed by jq' : 'printed as it came')
    })
  }
})

t.test('jq: found on PATH as an executable file; the lines pipe JSON answers through it only then', async t => {
  const dir = t.testdir()
  const bin = join(dir, 'bin')
  await mkdir(join(bin, 'jq-dir', 'jq'), { recursive: true })
  await writeFile(join(bin, 'jq'), '#!/bin/sh\n')
  await writeFile(join(bin, 'cat-not-executable'), '')
  t.notOk(onPath('jq', ''), 'an empty PATH has nothing')
  t.notOk(onPath('jq', join(bin, 'jq-dir')), 'a directory is not a command')
  t.notOk(onPath('jq', `${join(dir, 'nowhere')}${delimiter}${bin}`), 'a file that is not executable is not a command')
  await chmod(join(bin, 'jq'), 0o755)
  t.ok(onPath('jq', `${join(dir, 'nowhere')}${delimiter}${delimiter}${bin}`))

  const context: WalkthroughContext = {
    serviceUrl: 'http://127.0.0.1:3000',
    emulatorOrigin: 'https://127.0.0.1:8443',
    caPath: '/ca.pem',
    tenantId: demo.DEMO_TENANT_ID,
    cliAppId: demo.DEMO_CLI_APP_ID,
    resolverAppId: demo.DEMO_RESOLVER_APP_ID,
    user: { userPrincipalName: demo.DEMO_ALICE_UPN, password: demo.DEMO_PASSWORD },
    automation: { appId: demo.DEMO_ETL_APP_ID, secret: demo.DEMO_ETL_SECRET },
    group: { id: demo.DEMO_GROUPS.finance, displayName: 'Finance' },
    workspaceId: DEMO_DASHBOARD.workspaceId,
    dashboardId: DEMO_DASHBOARD.id,
    colleague: 'bob@x',
    newcomer: 'grace@x'
  }
  const plain = walkthroughSteps(context)
  const pretty = walkthroughSteps({ ...context, jq: true })
  t.same(pretty.map(s => s.curl), plain.map(s => s.sets === undefined && s.follow === undefined ? `${s.curl} | jq .` : s.curl),
    'the answers of steps 2 to 5 go through jq; token lines and the registration line (node shows the job) do not')
  t.equal(pretty.at(-1)?.follow?.curl, `${plain.at(-1)?.follow?.curl ?? ''} | jq .`, 'the followed job too')
  t.notOk(plain.some(s => s.curl.includes('jq') || s.follow?.curl.includes('jq') === true), 'without jq, no line names it')
})
