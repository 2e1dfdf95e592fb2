// SCIM filter string literals are JSON strings (RFC 7644 §3.4.2.2, RFC 8259 §7): every escape is decoded,
// a raw control character is a 400 invalidFilter like any other bad filter. A group whose name holds a
// newline, a tab, U+0001 or a trailing backslash is found with `displayName eq <JSON.stringify(name)>`
// through the account and the workspace SCIM APIs.
import t, { type Test } from 'tap'
import { DatabricksError } from '../../../emulators/databricks/errors.ts'
import { extractLiterals, parseFilter } from '../../../emulators/databricks/scim-filter.ts'
import { DEFAULT_WORKSPACE_ID, SCIM, WS_SCIM, assertScimError, createGroup, startDatabricks } from '../../helpers/databricks.ts'

const NAMES = ['line\nbreak', 'tab\there', 'ctl\u0001x', 'ends with\\', 'CORP\\Domain Users', 'R&D "Core" / ops', 'form\ffeed\bback\rreturn', 'Équipe Zoë – Montréal']

function compValues (text: string): unknown[] {
  const tree = parseFilter(text) as any
  const out: unknown[] = []
  const walk = (f: any): void => {
    if (f.filters !== undefined) f.filters.forEach(walk)
    else if (f.valFilter !== undefined) walk(f.valFilter)
    else out.push(f.compValue)
  }
  walk(tree)
  return out
}

function filterError (t: Test, text: string, detail: RegExp): void {
  try {
    parseFilter(text)
    t.fail(`${JSON.stringify(text)} parsed`)
  } catch (err) {
    t.type(err, DatabricksError)
    const e = err as DatabricksError
    t.match({ status: e.status, code: e.code, scimType: e.options.scimType }, { status: 400, code: 'INVALID_FILTER', scimType: 'invalidFilter' }, JSON.stringify(text))
    t.match(e.message, detail)
  }
}

t.test('string literals decode as JSON strings', async t => {
  for (const name of NAMES) t.same(compValues(`displayName eq ${JSON.stringify(name)}`), [name], JSON.stringify(name))
  t.same(compValues('displayName eq "a\\u000ab\\u0009c\\u005c\\u0022\\/"'), ['a\nb\tc\\"/'], 'every \\u escape, and \\/')
  t.same(compValues('displayName eq "\\ud83d\\ude00"'), ['😀'], 'a surrogate pair')
  t.same(compValues('displayName eq "x" or (displayName sw "y\\n" and externalId eq "1")'), ['x', 'y\n', '1'], 'every literal of a tree')
  t.same(compValues('members[value eq "a\\\\b"]'), ['a\\b'], 'inside a value path (PATCH paths use it)')
  t.same(compValues("displayName eq 'O\\'Brien\\n' or displayName eq '\"\\\"'"), ['O\'Brien\n', '""'], 'single quotes: the same escapes plus \\\'')
  t.same(compValues('displayName eq "0" or displayName eq "1"'), ['0', '1'], 'literals that look like the placeholders')
  t.same(compValues('active eq true or displayName eq null'), [true, null], 'JSON values other than strings')
  t.same(extractLiterals('a eq "x\\"y" and b eq \'z\''), { text: 'a eq "0" and b eq "1"', literals: ['x"y', 'z'] })

  filterError(t, 'displayName eq "line\nbreak"', /^Invalid filter: unescaped control character U\+000A in a string value at position 20/)
  filterError(t, 'displayName eq "tab\there"', /U\+0009/)
  filterError(t, 'displayName eq "x\u0001"', /U\+0001/)
  filterError(t, 'displayName eq \'x\u001f\'', /U\+001F/)
  filterError(t, 'displayName eq "a\\qb"', /bad escape \\q/)
  filterError(t, 'displayName eq "a\\\'b"', /bad escape \\'/)
  filterError(t, 'displayName eq "a\\u12"', /bad \\u escape/)
  filterError(t, 'displayName eq "a\\u12g4"', /bad \\u escape/)
  filterError(t, 'displayName eq "ends with\\"', /^Unterminated string/)
  filterError(t, 'displayName eq "open', /^Unterminated string/)
  filterError(t, 'displayName eq "x\\', /^Unterminated string/)
  t.same(compValues('displayName eq "del\u007f and é"'), ['del\u007f and é'], 'DEL and non-ASCII are not control characters in JSON')
})

t.test('groups with control characters and backslashes in their names, through both SCIM APIs', async t => {
  const { api, control } = await startDatabricks(t)
  const accountIds = new Map<string, string>()
  const localIds = new Map<string, string>()
  for (const name of NAMES) {
    const id = await createGroup(api, name)
    accountIds.set(name, id)
    await control('PUT', `/workspaces/${DEFAULT_WORKSPACE_ID}/assignments`, { principalId: id, permissions: ['USER'] })
    const local = await api('POST', `${WS_SCIM}/Groups`, { displayName: `local ${name}` })
    t.equal(local.status, 201)
    localIds.set(name, local.body.id)
  }
  const list = async (base: string, filter: string): Promise<any> => await api('GET', `${base}/Groups?filter=${encodeURIComponent(filter)}&attributes=id,displayName,meta`)
  for (const name of NAMES) {
    const label = JSON.stringify(name)
    const account = await list(SCIM, `displayName eq ${JSON.stringify(name)}`)
    t.equal(account.status, 200, label)
    t.same(account.body.Resources?.map((g: any) => [g.id, g.displayName]), [[accountIds.get(name), name]], `account SCIM finds ${label}`)
    const workspace = await list(WS_SCIM, `displayName eq ${JSON.stringify(name)} or displayName eq ${JSON.stringify(`local ${name}`)}`)
    t.equal(workspace.status, 200, label)
    t.same(workspace.body.Resources?.map((g: any) => [g.id, g.displayName, g.meta.resourceType]).sort(), [
      [accountIds.get(name), name, 'Group'], [localIds.get(name), `local ${name}`, 'WorkspaceGroup']
    ].sort(), `workspace SCIM finds ${label} and its local namesake`)
  }
  // \u escapes and sw/co work on the decoded value too.
  t.same((await list(SCIM, 'displayName eq "line\\u000Abreak"')).body.Resources.map((g: any) => g.id), [accountIds.get('line\nbreak')])
  t.same((await list(SCIM, 'displayName sw "ends with\\u005c"')).body.Resources.map((g: any) => g.id), [accountIds.get('ends with\\')])
  t.same((await list(WS_SCIM, 'displayName co "\\u0001"')).body.Resources.map((g: any) => g.displayName).sort(), ['ctl\u0001x', 'local ctl\u0001x'])
  // Double-escaped (the old, wrong encoding) is another name: nothing found.
  t.equal((await list(SCIM, 'displayName eq "CORP\\\\\\\\Domain Users"')).body.totalResults, 0)

  // A raw control character is refused the way every bad filter is: 400, scimType invalidFilter, INVALID_FILTER detail.
  for (const base of [SCIM, WS_SCIM]) {
    const malformed = await list(base, 'displayName eq')
    assertScimError(t, malformed, 400, 'invalidFilter', /^INVALID_FILTER: /)
    for (const raw of ['displayName eq "line\nbreak"', 'displayName eq "tab\there"', 'displayName eq "ctl\u0001x"']) {
      const res = await list(base, raw)
      assertScimError(t, res, 400, 'invalidFilter', /^INVALID_FILTER: Invalid filter: unescaped control character U\+00(0A|09|01)/)
      t.equal(res.headers.get('content-type'), malformed.headers.get('content-type'), 'the same error shape as other bad filters')
    }
    assertScimError(t, await list(base, 'displayName eq "a\\qb"'), 400, 'invalidFilter', /bad escape/)
    assertScimError(t, await list(base, 'displayName eq "ends with\\"'), 400, 'invalidFilter', /Unterminated string/)
  }

  // PATCH remove by a value filter decodes the same way.
  const holder = await createGroup(api, 'holder', { members: [{ value: accountIds.get('tab\there') }] })
  const removed = await api('PATCH', `${SCIM}/Groups/${holder}`, {
    schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
    Operations: [{ op: 'remove', path: `members[display eq ${JSON.stringify('tab\there')}]` }]
  })
  t.equal(removed.status, 200)
  t.notOk('members' in removed.body, 'the member named with a tab was removed')
})
