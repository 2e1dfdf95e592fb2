// `npm run demo`: the local-mode walk-through end to end, in a process of its own as a person runs it,
// and its bounded wait for the registration job (--max-wait).
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { childEnv } from '../helpers/child-env.ts'

const demoPath = new URL('../../scripts/demo.ts', import.meta.url).pathname

async function demo (args: string[] = []): Promise<{ code: number | null, out: string }> {
  // A real tenant in the environment must not matter: the demo always runs against the emulators.
  const child = spawn(process.execPath, ['--import', 'tsx', demoPath, ...args], {
    env: childEnv({ ENTRA_TENANT_ID: '00000000-0000-4000-8000-000000000000' }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  return { code, out }
}

t.test('npm run demo passes end to end and prints each step\'s result', async t => {
  const { code, out } = await demo()
  t.equal(code, 0, out)
  t.match(out, /LOCAL MODE/)
  t.match(out, /Demo workspace 3141592653589793: dashboard 'Revenue Pipeline' \(01ef7d3a5b9c4e2f8a1b6c0d9e8f7a6b\)/, 'the demo workspace\'s fixed dashboard id')
  for (let step = 1; step <= 8; step++) t.match(out, new RegExp(`# ${step}\\. `), `step ${step} shown`)
  t.equal(out.match(/→ 200/g)?.length, 6, 'every step answered 200')
  t.match(out, /→ 202\n {2}registration job [0-9a-f-]{36}: queued\n\n# 8\. Follow the job until it is done[^\n]*\n\$ for i in \$\(seq 60\); do [^\n]*\n→ job completed: 6 of 6 registered, 0 failed/,
    'the registration job is followed to its end, under the line that follows it')
  t.match(out, /effective level: CAN_EDIT/)
  t.match(out, /through group 'Engineering' \(Data Platform ⊂ Engineering\), inherited from \/directories\//)
  t.match(out, /granted CAN_READ to grace\.kim@contoso\.onmicrosoft\.com \(written\)/)
  t.match(out, /effective level: CAN_READ/)
  t.match(out, /The demo passed/)
  t.notMatch(out, /etl8Q~Vb6nM2qW9eR4tY7uI1oP5aS8dF3gH6jK0l[^']/, 'the app secret appears only in the printed curl line')
})

t.test('--max-wait bounds the wait for the registration job: past it the demo fails, naming the job', async t => {
  // 0 stops at the job's first state, which a job just started can never have finished in.
  const { code, out } = await demo(['--max-wait', '0'])
  t.equal(code, 1, out)
  const id = /registration job ([0-9a-f-]{36}): queued/.exec(out)?.[1] ?? 'no id'
  t.match(out, new RegExp(`job ${id} is not done after 0 s \\(--max-wait\\): queued`))
  t.match(out, /run the demo with a longer --max-wait/)
  t.match(out, /The demo FAILED/)
  t.notMatch(out, /job completed/)
})

t.test('a --max-wait that is not a number of seconds: usage, exit 2', async t => {
  const { code, out } = await demo(['--max-wait', 'soon'])
  t.equal(code, 2)
  t.match(out, /--max-wait is a number of seconds\.[\s\S]*Usage: npm run demo/)
  t.notMatch(out, /LOCAL MODE/, 'nothing was started')
})
