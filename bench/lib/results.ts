// Every benchmark writes bench/results/<name>.json and prints its rows as a small table.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const RESULTS_DIR = join(import.meta.dirname, '..', 'results')

export function writeResult (name: string, result: Record<string, unknown>, rows: Array<[string, string]>): void {
  mkdirSync(RESULTS_DIR, { recursive: true })
  const file = join(RESULTS_DIR, `${name}.json`)
  writeFileSync(file, JSON.stringify({ name, date: new Date().toISOString(), node: process.version, ...result, rows }, null, 2) + '\n')
  const width = Math.max(...rows.map(([k]) => k.length))
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`)
  console.log(`\nwritten to ${file}`)
}
