// `npm run demo`: the local-mode walk-through end to end, in a process of its own as a person runs it.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { childEnv } from '../helpers/child-env.ts'

const demoPath = new URL('../../scripts/demo.ts', import.meta.url).pathname

t.test('npm run demo passes end to end and prints each step\'s result', async t => {
  // A real tenant in the environment must not matter: the demo always runs against the emulators.
  const child = spawn(process.execPath, ['--import', 'tsx', demoPath], {
    env: childEnv({ ENTRA_TENANT_ID: '00000000-0000-4000-8000-000000000000' }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 0, out)
  t.match(out, /LOCAL MODE/)
  for (let step = 1; step <= 7; step++) t.match(out, new RegExp(`# ${step}\\. `), `step ${step} shown`)
  t.equal(out.match(/→ 200/g)?.length, 6, 'every step answered 200')
  t.match(out, /→ 202\n {2}registration job [0-9a-f-]{36}: queued\n {2}job completed: 6 of 6 registered, 0 failed/, 'the registration job ran to its end')
  t.match(out, /effective level: CAN_EDIT/)
  t.match(out, /through group 'Engineering' \(Data Platform ⊂ Engineering\), inherited from \/directories\//)
  t.match(out, /granted CAN_READ to grace\.kim@contoso\.onmicrosoft\.com \(written\)/)
  t.match(out, /effective level: CAN_READ/)
  t.match(out, /The demo passed/)
  t.notMatch(out, /etl8Q~Vb6nM2qW9eR4tY7uI1oP5aS8dF3gH6jK0l[^']/, 'the app secret appears only in the printed curl line')
})
