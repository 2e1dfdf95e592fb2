// `npm run bench`: every benchmark, each in its own process so peak-memory figures do not mix.
// Each writes bench/results/<name>.json and prints its table.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

const benches = ['generator.ts']

let failed = 0
for (const bench of benches) {
  console.log(`\n== ${bench}`)
  const run = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, bench)], { stdio: 'inherit' })
  if (run.status !== 0) failed += 1
}
process.exit(failed === 0 ? 0 : 1)
