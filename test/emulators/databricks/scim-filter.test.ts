// SCIM filter string literals are JSON strings (RFC 7644 §3.4.2.2, RFC 8259 §7): every escape is decoded,
// a raw control character is a 400 invalidFilter like any other bad filter. A group whose name holds a
// newline, a tab, U+0001 or a trailing backslash is found with `displayName eq <JSON.stringify(name)>`
// through the account and the workspace SCIM APIs. `eq` filters (and `or`s of them) on id, userName,
// displayName, externalId and applicationId are looked up by index: they answer what a scan answers
// (checked against the same filter `and`-ed with an always-true term, which is scanned) after renames,
// externalId changes, PUT, DELETE and a reset.
import t, { type Test } from 'tap'
import { DatabricksError } from '../../../emulators/databricks/errors.ts'
import { extractLiterals, parseFilter } from '../../../emulators/databricks/scim-filter.ts'
import { DEFAULT_WORKSPACE_ID, SCIM, WS_SCIM, assertScimError, createGroup, createUser, patchBody, startDatabricks, type Api } from '../../helpers/databricks.ts'

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

/**
 * Lists `resource` with `filter` and checks the ids found, in order, and that the whole answer (paging,
 * totalResults, every attribute) is the one a scan gives: `(filter) and id ne "0"` is not an `eq` nor an
 * `or` of them, so it is scanned, and it keeps the same principals (no id is "0").
 */
async function expectFound (t: Test, api: Api, base: string, resource: string, filter: string, expected: string[], extra = ''): Promise<void> {
  const get = async (f: string): Promise<any> => await api('GET', `${base}/${resource}?filter=${encodeURIComponent(f)}${extra}`)
  const [indexed, scanned] = [await get(filter), await get(`(${filter}) and id ne "0"`)]
  const label = `${base === SCIM ? 'account' : 'workspace'} ${resource} ${filter}${extra}`
  t.equal(indexed.status, 200, label)
  t.same((indexed.body.Resources ?? []).map((r: any) => r.id), expected, label)
  t.same(indexed.body, scanned.body, `${label}: the answer a scan gives`)
}

t.test('eq lookups answer what a scan answers, through renames, externalId changes, PUT, DELETE and reset', async t => {
  const { api, control } = await startDatabricks(t)
  const users = (filter: string, expected: string[], extra = ''): Promise<void> => expectFound(t, api, SCIM, 'Users', filter, expected, extra)
  const sps = (filter: string, expected: string[]): Promise<void> => expectFound(t, api, SCIM, 'ServicePrincipals', filter, expected)
  const groups = (filter: string, expected: string[], base = SCIM): Promise<void> => expectFound(t, api, base, 'Groups', filter, expected)
  const patch = async (resource: string, id: string, ...ops: unknown[]): Promise<void> => {
    t.equal((await api('PATCH', `${SCIM}/${resource}/${id}`, patchBody(...ops))).status, 200, `PATCH ${resource}/${id}`)
  }

  const ann = await createUser(api, 'Ann@Contoso.com', { displayName: 'Sam Lee', externalId: 'ext-ann' })
  const bob = await createUser(api, 'bob@contoso.com', { displayName: 'SAM LEE', externalId: 'EXT-BOB' })
  const cat = await createUser(api, 'cat@contoso.com', { displayName: 'Cat' })
  const dan = await createUser(api, 'dan@contoso.com', { displayName: 'sam lee', externalId: 'ext-dan' })
  const appId = 'a1b2c3d4-0000-4000-8000-00000000000a'
  const spRes = await api('POST', `${SCIM}/ServicePrincipals`, { applicationId: appId, displayName: 'Sam Lee', externalId: 'ext-sp' })
  t.equal(spRes.status, 201)
  const sp = spRes.body.id as string
  const samGroup = await createGroup(api, 'Sam Lee', { externalId: 'ext-g' })
  const other = await createGroup(api, 'Other', { externalId: 'ext-other' })

  await users('displayName eq "sam lee"', [ann, bob, dan])
  await users('displayName eq "sam lee"', [bob], '&startIndex=2&count=1')
  await users('displayName eq "sam lee"', [], '&startIndex=4&count=1')
  await users('displayName eq "Sam Lee"', [dan, bob, ann], '&sortBy=userName&sortOrder=descending')
  await users('externalId eq "ext-ann"', [ann])
  await users('externalId eq "EXT-ANN"', []) // externalId is compared exactly
  await users('externalId eq "EXT-BOB"', [bob])
  await users('externalId eq "ext-bob"', [])
  await users('externalId eq "ext-sp"', []) // a service principal's
  await users('userName eq "ANN@contoso.com"', [ann])
  await users('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bob@contoso.com"', [bob])
  await users(`id eq "${ann}"`, [ann])
  await users(`id eq "${sp}"`, [])
  await users(`externalId eq "ext-dan" or userName eq "ann@contoso.com" or displayName eq "cat" or id eq "${ann}"`, [ann, cat, dan])
  await users('displayName eq "Sam Lee" or (displayName eq "Cat" or externalId eq "nobody")', [ann, bob, cat, dan])
  await sps(`applicationId eq "${appId.toUpperCase()}"`, [sp])
  await sps('displayName eq "SAM LEE" or externalId eq "ext-sp"', [sp])
  await groups('displayName eq "sam lee"', [samGroup])
  await groups('externalId eq "ext-other" or externalId eq "ext-g"', [samGroup, other])

  await patch('Users', ann, { op: 'replace', path: 'displayName', value: 'Ann Archer' }, { op: 'replace', path: 'externalId', value: 'ext-ann-2' })
  await patch('Users', bob, { op: 'replace', path: 'externalId', value: 'ext-bob' })
  t.equal((await api('PUT', `${SCIM}/Users/${dan}`, { userName: 'dan@contoso.com' })).status, 200, 'PUT without displayName or externalId')
  t.equal((await api('DELETE', `${SCIM}/Users/${cat}`)).status, 204)
  await patch('Groups', samGroup, { op: 'replace', path: 'displayName', value: 'Renamed' }, { op: 'remove', path: 'externalId' })
  t.equal((await api('PUT', `${SCIM}/ServicePrincipals/${sp}`, { applicationId: appId, displayName: 'Robot', externalId: 'ext-sp-2' })).status, 200)
  const eve = await createUser(api, 'eve@contoso.com', { displayName: 'Sam Lee', externalId: 'ext-ann' })

  await users('displayName eq "sam lee"', [bob, eve])
  await users('displayName eq "ann archer"', [ann])
  await users('externalId eq "ext-ann"', [eve]) // given up by ann, taken by eve
  await users('externalId eq "ext-ann-2"', [ann])
  await users('externalId eq "EXT-BOB"', [])
  await users('externalId eq "ext-bob"', [bob]) // a change of case only
  await users('externalId eq "ext-dan"', [])
  await users('displayName eq "dan@contoso.com"', [dan]) // PUT without displayName: named after userName
  await users(`displayName eq "Cat" or userName eq "cat@contoso.com" or id eq "${cat}"`, [])
  await users(`id eq "${eve}" or externalId eq "ext-ann-2" or displayName eq "sam lee"`, [ann, bob, eve])
  await sps('displayName eq "sam lee" or externalId eq "ext-sp"', [])
  await sps('displayName eq "robot" or externalId eq "ext-sp-2"', [sp])
  await groups('displayName eq "Sam Lee" or externalId eq "ext-g"', [])
  await groups('displayName eq "renamed"', [samGroup])

  // Workspace scope: assigned principals only; account groups come before workspace-local ones even when
  // the local one is older, and a local group's externalId need not be unique.
  const earlyRes = await api('POST', `${WS_SCIM}/Groups`, { displayName: 'Early', externalId: 'ext-late' })
  t.equal(earlyRes.status, 201)
  const early = earlyRes.body.id as string
  const late = await createGroup(api, 'Late', { externalId: 'ext-late' })
  for (const id of [bob, late]) await control('PUT', `/workspaces/${DEFAULT_WORKSPACE_ID}/assignments`, { principalId: id, permissions: ['USER'] })
  await expectFound(t, api, WS_SCIM, 'Users', 'displayName eq "sam lee"', [bob])
  await groups('externalId eq "ext-late"', [late, early], WS_SCIM)
  await groups('displayName eq "early" or displayName eq "LATE" or displayName eq "renamed"', [late, early], WS_SCIM)
  await groups('externalId eq "ext-late"', [late])
  const admins = await api('GET', `${WS_SCIM}/Groups?filter=${encodeURIComponent('displayName eq "admins"')}`)
  await groups('displayName eq "admins"', [admins.body.Resources[0].id], WS_SCIM)
  await groups('displayName eq "admins"', [])
  t.equal((await api('PATCH', `${WS_SCIM}/Groups/${early}`, patchBody({ op: 'replace', path: 'externalId', value: 'ext-early' }))).status, 200)
  await groups('externalId eq "ext-late"', [late], WS_SCIM)
  await groups('externalId eq "ext-early"', [early], WS_SCIM)
  t.equal((await api('DELETE', `${WS_SCIM}/Groups/${early}`)).status, 204)
  await groups('externalId eq "ext-early" or displayName eq "early"', [], WS_SCIM)

  await control('POST', '/reset')
  await users(`displayName eq "sam lee" or externalId eq "ext-bob" or id eq "${bob}" or userName eq "bob@contoso.com"`, [])
  await groups('displayName eq "Renamed" or externalId eq "ext-other"', [])
  const again = await createUser(api, 'bob@contoso.com', { displayName: 'Sam Lee', externalId: 'ext-bob' })
  await users('displayName eq "sam lee" or externalId eq "ext-bob"', [again])
})
