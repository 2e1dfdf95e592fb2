// docs/errors.md, the error catalogue, is what the code generates (the problem catalogue and the codes the
// routes declare), and names every code the code defines: adding an error without cataloguing it fails here.
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { ERRORS_PATH, openApiDocument, renderErrorCatalogue } from '../../../scripts/openapi.ts'
import { ANY_REQUEST, JOB_FAILURES, Problems } from '../../../src/http/problem-catalogue.ts'

const root = new URL('../../../', import.meta.url).pathname
const committed = await readFile(join(root, ERRORS_PATH), 'utf8')
const document = await openApiDocument() as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema?: { properties?: { code?: { enum?: string[] } } } }> }> }>> }

async function sources (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true })
  const files = await Promise.all(entries.map(async e => e.isDirectory() ? await sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []))
  return files.flat()
}

/** Every code src/ defines: `createError('CODE', …)` constructors, and `code: 'CODE'` literals (a registration's failures). */
async function definedCodes (): Promise<Map<string, string>> {
  const codes = new Map<string, string>()
  for (const file of await sources(join(root, 'src'))) {
    const text = await readFile(file, 'utf8')
    for (const match of text.matchAll(/createError\(\s*'([A-Z][A-Z0-9_]+)'|\bcode: '([A-Z][A-Z0-9_]+)'/g)) {
      const code = match[1] ?? match[2] ?? ''
      // fastify's own codes (FST_…) are never answered as such: problems.ts maps each to one of ours.
      if (!code.startsWith('FST_')) codes.set(code, file.slice(root.length))
    }
  }
  return codes
}

t.test('docs/errors.md is what the code generates', async t => {
  t.ok(renderErrorCatalogue(document) === committed, `${ERRORS_PATH} is out of date: run \`npm run openapi\` and commit the result`)
})

t.test('every code the code defines is in docs/errors.md', async t => {
  const defined = await definedCodes()
  t.ok(defined.size > 50, 'the scan finds the definitions')
  for (const [code, file] of defined) {
    t.ok(committed.includes(`## \`${code}\``) || committed.includes(`| \`${code}\` |`), `${code} (${file}) is in ${ERRORS_PATH}: add it to src/http/problem-catalogue.ts`)
  }
  for (const failure of JOB_FAILURES) t.ok(committed.includes(`| \`${failure.code}\` | \`${failure.field}\` |`), `${failure.code} as a registration reports it`)
})

t.test('every catalogued problem is answered somewhere, and says what it means', async t => {
  const listed = new Set(ANY_REQUEST.map(p => p.code))
  for (const methods of Object.values(document.paths)) {
    for (const op of Object.values(methods)) {
      for (const response of Object.values(op.responses)) {
        for (const code of response.content?.['application/problem+json']?.schema?.properties?.code?.enum ?? []) listed.add(code)
      }
    }
  }
  for (const problem of Object.values(Problems)) {
    t.ok(listed.has(problem.code), `${problem.key} (${problem.code}): some route declares it`)
    t.ok(problem.meaning.length > 20, `${problem.key}: its meaning`)
    t.equal(problem.example.code, problem.code, `${problem.key}: the example is its own`)
    t.equal(problem.example.status, problem.status)
    t.match(committed, problem.meaning, `${problem.key}: in ${ERRORS_PATH}`)
  }
  t.match(committed, /## `SHARE_FORBIDDEN`\n\n\*\*403 Forbidden\*\*\n\n.*CAN_MANAGE/, 'a section: status, meaning')
  t.match(committed, /\| \[`PRINCIPAL_LOOKUPS_THROTTLED`\]\(#principal_lookups_throttled\) \| 429 \| `GET \/v1\/permissions\/\{objectType\}\/\{objectId\}`, `POST \/v1\/shares` \|/, 'the summary names the routes')
  t.match(committed, /\*\*503 Service Unavailable\*\* · with `Retry-After`/, 'the headers a problem carries')
})

t.test('a 5xx example shows no internals, only the request id to quote', async t => {
  for (const problem of Object.values(Problems).filter(p => p.status >= 500)) {
    t.notMatch(problem.example.detail, /Authorization_RequestDenied|403 Forbidden|400 Bad Request|Invalid filter clause|an unexpected failure/, `${problem.key}: the upstream's words stay in the log`)
  }
  t.match(Problems.TargetMisconfigured.example.detail, /logged under request id [0-9a-f-]{36}/)
})
