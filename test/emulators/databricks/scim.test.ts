// Account and workspace SCIM as clients see it: create/get/list/PUT/PATCH/DELETE, filters, paging, the
// exact 409 messages, both PATCH add forms, nested groups (10 levels), group lists without members, the
// workspace API with Me, entitlements only at the workspace level; and the JIT race: 50 clients create
// the same user at once, exactly one 201, every other one the documented 409, one user in the account.
import t from 'tap'
import {
  DEFAULT_WORKSPACE_ID, IDENTITY, SCIM, T, WS_SCIM, assertScimError, createGroup, createUser, patchBody, startDatabricks
} from '../../helpers/databricks.ts'

t.test('users: create, get, filter, page, 409, PUT, DELETE', async t => {
  const { api } = await startDatabricks(t)
  const created = await api('POST', `${SCIM}/Users`, {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName: 'Alice@Contoso.com',
    displayName: 'Alice Adams',
    name: { givenName: 'Alice', familyName: 'Adams' },
    emails: [{ value: 'alice@contoso.com', type: 'work', primary: 'true' }],
    externalId: 'a0000000-0000-4000-8000-000000000001'
  })
  t.equal(created.status, 201)
  t.match(created.body, { userName: 'Alice@Contoso.com', displayName: 'Alice Adams', active: true, name: { givenName: 'Alice', familyName: 'Adams' }, meta: { resourceType: 'User' } })
  t.match(created.body.id, /^\d{16}$/, 'numeric 16-digit id')
  t.same(created.body.emails, [{ value: 'alice@contoso.com', type: 'work', primary: true }], 'a string primary is accepted')
  const id = created.body.id as string

  const got = await api('GET', `${SCIM}/Users/${id}`)
  t.same(got.body, created.body, 'GET returns what POST did')

  const dup = await api('POST', `${SCIM}/Users`, { userName: 'alice@contoso.COM' })
  assertScimError(t, dup, 409, 'uniqueness', 'User with email alice@contoso.COM already exists in this account. Note: emails are case insensitive (i.e abc@domain.com and ABC@DOMAIN.COM are considered equivalent)')

  for (const user of ['bob@contoso.com', 'carol@contoso.com', 'dave@fabrikam.com', 'gina_fabrikam.com#EXT#@contoso.onmicrosoft.com']) await createUser(api, user)
  const q = async (filter: string, extra = ''): Promise<any> => (await api('GET', `${SCIM}/Users?filter=${encodeURIComponent(filter)}${extra}`)).body
  t.same((await q('userName eq "ALICE@contoso.com"')).Resources.map((u: any) => u.id), [id], 'userName is case-insensitive')
  t.same((await q("userName eq 'alice@contoso.com'")).Resources.map((u: any) => u.id), [id], 'single quotes')
  t.equal((await q('userName co "contoso"')).totalResults, 4)
  t.equal((await q('userName sw "dave"')).totalResults, 1)
  t.equal((await q('userName ne "dave@fabrikam.com"')).totalResults, 4)
  t.equal((await q('userName sw "bob" or userName sw "carol"')).totalResults, 2)
  t.equal((await q('userName co "contoso" and (displayName eq "Alice Adams" or userName sw "bob")')).totalResults, 2)
  t.equal((await q('externalId eq "a0000000-0000-4000-8000-000000000001"')).totalResults, 1)
  t.equal((await q('userName eq "gina_fabrikam.com#EXT#@contoso.onmicrosoft.com"')).totalResults, 1, '#EXT# user names')
  const none = await q('userName eq "nobody@contoso.com"')
  t.same(none, { schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'], totalResults: 0, startIndex: 1, itemsPerPage: 0 })

  const page1 = (await api('GET', `${SCIM}/Users?startIndex=1&count=2`)).body
  t.match(page1, { totalResults: 5, startIndex: 1, itemsPerPage: 2 })
  const page3 = (await api('GET', `${SCIM}/Users?startIndex=5&count=2`)).body
  t.match(page3, { totalResults: 5, startIndex: 5, itemsPerPage: 1 })
  const past = (await api('GET', `${SCIM}/Users?startIndex=6&count=2`)).body
  t.match(past, { totalResults: 5, startIndex: 6, itemsPerPage: 0 })
  t.notOk('Resources' in past, 'an empty page past the end')
  // The Python SDK's loop: startIndex += len(Resources) until the page is empty; it sees every user once.
  const seen: string[] = []
  for (let start = 1; ;) {
    const page = (await api('GET', `${SCIM}/Users?startIndex=${start}&count=2`)).body
    if (page.Resources === undefined) break
    seen.push(...page.Resources.map((u: any) => u.id))
    start += page.Resources.length
  }
  t.equal(new Set(seen).size, 5)

  const projected = (await api('GET', `${SCIM}/Users/${id}?attributes=userName`)).body
  t.same(Object.keys(projected).sort(), ['id', 'schemas', 'userName'])
  const excluded = (await api('GET', `${SCIM}/Users?filter=${encodeURIComponent('userName eq "alice@contoso.com"')}&excludedAttributes=emails,name`)).body
  t.notOk('emails' in excluded.Resources[0])
  t.ok('userName' in excluded.Resources[0])

  const put = await api('PUT', `${SCIM}/Users/${id}`, { userName: 'renamed@contoso.com', displayName: 'Alice A.', active: false })
  t.equal(put.status, 200)
  t.equal(put.body.userName, 'Alice@Contoso.com', 'userName cannot change through PUT: ignored')
  t.equal(put.body.displayName, 'Alice A.')
  t.equal(put.body.active, false)
  t.notOk('name' in put.body, 'PUT replaces: name is gone')
  t.notOk('externalId' in put.body, 'PUT replaces: externalId is gone')

  t.equal((await api('DELETE', `${SCIM}/Users/${id}`)).status, 204)
  assertScimError(t, await api('GET', `${SCIM}/Users/${id}`), 404)
  assertScimError(t, await api('DELETE', `${SCIM}/Users/${id}`), 404)
})

t.test('service principals: applicationId, 409, filter, PATCH active', async t => {
  const { api } = await startDatabricks(t)
  const sp = await api('POST', `${SCIM}/ServicePrincipals`, { applicationId: 'c0000000-0000-4000-8000-000000000001', displayName: 'Nightly ETL' })
  t.equal(sp.status, 201)
  t.match(sp.body, { schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal'], applicationId: 'c0000000-0000-4000-8000-000000000001', active: true, meta: { resourceType: 'ServicePrincipal' } })
  assertScimError(t, await api('POST', `${SCIM}/ServicePrincipals`, { applicationId: 'c0000000-0000-4000-8000-000000000001' }), 409, 'uniqueness', 'Service principal with application ID c0000000-0000-4000-8000-000000000001 already exists.')
  const generated = await api('POST', `${SCIM}/ServicePrincipals`, { displayName: 'Databricks-managed' })
  t.match(generated.body.applicationId, /^[0-9a-f-]{36}$/, 'an application id is generated when none is given')
  const found = await api('GET', `${SCIM}/ServicePrincipals?filter=${encodeURIComponent('applicationId eq "C0000000-0000-4000-8000-000000000001"')}`)
  t.same(found.body.Resources.map((x: any) => x.id), [sp.body.id])
  const off = await api('PATCH', `${SCIM}/ServicePrincipals/${sp.body.id as string}`, patchBody({ op: 'replace', path: 'active', value: false }))
  t.equal(off.status, 200)
  t.equal(off.body.active, false)
  const onAgain = await api('PATCH', `${SCIM}/ServicePrincipals/${sp.body.id as string}`, patchBody({ op: 'replace', value: { active: 'True', displayName: 'ETL' } }))
  t.match(onAgain.body, { active: true, displayName: 'ETL' }, 'path-less replace, "True" as a string')
})

t.test('groups: members by PATCH in both add forms, remove by filter, lists without members', async t => {
  const { api } = await startDatabricks(t)
  const a = await createUser(api, 'a@contoso.com')
  const b = await createUser(api, 'b@contoso.com')
  const c = await createUser(api, 'c@contoso.com')
  const g = await createGroup(api, 'Data Platform', { externalId: 'd0000000-0000-4000-8000-000000000003', members: [{ value: a }] })
  assertScimError(t, await api('POST', `${SCIM}/Groups`, { displayName: 'Data Platform' }), 409, 'uniqueness', 'Group with name Data Platform already exists.')

  const withPath = await api('PATCH', `${SCIM}/Groups/${g}`, patchBody({ op: 'add', path: 'members', value: [{ value: b }] }))
  t.equal(withPath.status, 200)
  t.same(withPath.body.members.map((m: any) => m.value).sort(), [a, b].sort())
  t.match(withPath.body.members.find((m: any) => m.value === b), { display: 'b@contoso.com', $ref: `Users/${b}` })

  const pathLess = await api('PATCH', `${SCIM}/Groups/${g}`, patchBody({ op: 'add', value: { members: [{ value: c }, { value: a }] } }))
  t.same(pathLess.body.members.map((m: any) => m.value).sort(), [a, b, c].sort(), 'path-less add; adding an existing member is a no-op')

  const removed = await api('PATCH', `${SCIM}/Groups/${g}`, patchBody({ op: 'remove', path: `members[value eq "${a}"]` }))
  t.same(removed.body.members.map((m: any) => m.value).sort(), [b, c].sort())
  const removedSingle = await api('PATCH', `${SCIM}/Groups/${g}`, patchBody({ op: 'remove', path: `members[value eq '${b}' or value eq "${c}"]` }))
  t.notOk('members' in removedSingle.body, 'no members left')

  const bare = await api('PATCH', `${SCIM}/Groups/${g}`, patchBody({ op: 'add', path: 'members', value: a }))
  assertScimError(t, bare, 400, 'invalidSyntax', 'Request is unparsable, syntactically incorrect, or violates schema.')

  await api('PATCH', `${SCIM}/Groups/${g}`, patchBody({ op: 'add', path: 'members', value: [{ value: a }] }))
  const listed = await api('GET', `${SCIM}/Groups`)
  t.equal(listed.body.totalResults, 1)
  t.notOk('members' in listed.body.Resources[0], 'account group lists carry no members')
  t.match(listed.body.Resources[0], { displayName: 'Data Platform', externalId: 'd0000000-0000-4000-8000-000000000003', meta: { resourceType: 'Group' } })
  t.same((await api('GET', `${SCIM}/Groups/${g}`)).body.members.map((m: any) => m.value), [a], 'GET one group has them')

  const renamed = await api('PATCH', `${SCIM}/Groups/${g}`, patchBody({ op: 'replace', path: 'displayName', value: 'Platform' }))
  t.equal(renamed.body.displayName, 'Platform')
  const replaced = await api('PUT', `${SCIM}/Groups/${g}`, { displayName: 'Platform', members: [{ value: b }, { value: c }] })
  t.same(replaced.body.members.map((m: any) => m.value).sort(), [b, c].sort(), 'PUT replaces the members')

  const found = await api('GET', `${SCIM}/Groups?filter=${encodeURIComponent('displayName eq "platform"')}`)
  t.equal(found.body.totalResults, 1)
  t.equal((await api('DELETE', `${SCIM}/Groups/${g}`)).status, 204)
  t.notOk('groups' in (await api('GET', `${SCIM}/Users/${b}`)).body, 'the deleted group left its members')
})

t.test('nested groups: direct and indirect on the member, at most 10 levels, no cycles', async t => {
  const { api } = await startDatabricks(t)
  const user = await createUser(api, 'deep@contoso.com')
  const chain: string[] = []
  for (let i = 1; i <= 10; i++) {
    const id = await createGroup(api, `level-${i}`)
    if (i > 1) {
      const res = await api('PATCH', `${SCIM}/Groups/${chain[i - 2] as string}`, patchBody({ op: 'add', path: 'members', value: [{ value: id }] }))
      t.equal(res.status, 200, `level ${i} nests`)
    }
    chain.push(id)
  }
  const last = chain[9] as string
  await api('PATCH', `${SCIM}/Groups/${last}`, patchBody({ op: 'add', path: 'members', value: [{ value: user }] }))
  const groups = (await api('GET', `${SCIM}/Users/${user}`)).body.groups as Array<{ value: string, type: string, $ref: string }>
  t.same(groups.filter(g => g.type === 'direct').map(g => g.value), [last])
  t.equal(groups.filter(g => g.type === 'indirect').length, 9, 'the nine ancestors are indirect')
  t.equal(groups[0]?.$ref, `Groups/${last}`)

  const eleventh = await createGroup(api, 'level-11')
  const tooDeep = await api('PATCH', `${SCIM}/Groups/${last}`, patchBody({ op: 'add', path: 'members', value: [{ value: eleventh }] }))
  assertScimError(t, tooDeep, 400, 'invalidValue', /maximum is 10/)
  const cycle = await api('PATCH', `${SCIM}/Groups/${chain[4] as string}`, patchBody({ op: 'add', path: 'members', value: [{ value: chain[1] }] }))
  assertScimError(t, cycle, 400, 'invalidValue', /cycle/)
  const self = await api('PATCH', `${SCIM}/Groups/${eleventh}`, patchBody({ op: 'add', path: 'members', value: [{ value: eleventh }] }))
  assertScimError(t, self, 400, 'invalidValue')
  const unknown = await api('PATCH', `${SCIM}/Groups/${eleventh}`, patchBody({ op: 'add', path: 'members', value: [{ value: '1234567890123456' }] }))
  assertScimError(t, unknown, 400, 'invalidValue', /1234567890123456 does not exist/)
  t.notOk('members' in (await api('GET', `${SCIM}/Groups/${eleventh}`)).body, 'failed PATCHes change nothing')
})

t.test('PATCH on users: names, roles, externalId; entitlements only at the workspace level', async t => {
  const { api } = await startDatabricks(t)
  const u = await createUser(api, 'pat@contoso.com')
  const res = await api('PATCH', `${SCIM}/Users/${u}`, patchBody(
    { op: 'replace', path: 'name.givenName', value: 'Pat' },
    { op: 'add', path: 'urn:ietf:params:scim:schemas:core:2.0:User:name.familyName', value: 'Doe' },
    { op: 'add', path: 'roles', value: [{ value: 'account_admin' }] },
    { op: 'replace', path: 'externalId', value: 'ext-1' },
    { op: 'replace', path: 'userName', value: 'ignored@contoso.com' }
  ))
  t.equal(res.status, 200)
  t.match(res.body, { userName: 'pat@contoso.com', name: { givenName: 'Pat', familyName: 'Doe' }, roles: [{ value: 'account_admin' }], externalId: 'ext-1' })
  const removed = await api('PATCH', `${SCIM}/Users/${u}`, patchBody({ op: 'remove', path: 'roles[value eq "account_admin"]' }, { op: 'remove', path: 'externalId' }))
  t.notOk('roles' in removed.body)
  t.notOk('externalId' in removed.body)

  const accountEntitlements = await api('PATCH', `${SCIM}/Users/${u}`, patchBody({ op: 'add', path: 'entitlements', value: [{ value: 'workspace-access' }] }))
  assertScimError(t, accountEntitlements, 400, 'invalidValue', 'entitlements can only be managed at the workspace level')
  assertScimError(t, await api('POST', `${SCIM}/Users`, { userName: 'e@contoso.com', entitlements: [{ value: 'workspace-access' }] }), 400, 'invalidValue', 'entitlements can only be managed at the workspace level')
  assertScimError(t, await api('PATCH', `${SCIM}/Users/${u}`, patchBody({ op: 'add', path: 'groups', value: [{ value: '1' }] })), 400, 'mutability')
})

t.test('workspace SCIM: Me, assignment on create, workspace groups, entitlements', async t => {
  const { api } = await startDatabricks(t)
  const me = await api('GET', `${WS_SCIM}/Me`, undefined, { headers: { 'X-Databricks-Workspace-Id': DEFAULT_WORKSPACE_ID } })
  t.equal(me.status, 200)
  t.match(me.body, { userName: 'admin@databricks-emulator.local', schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', 'urn:ietf:params:scim:schemas:extension:workspace:2.0:User'] })

  const accountUser = await createUser(api, 'acct@contoso.com')
  t.equal((await api('GET', `${WS_SCIM}/Users`)).body.totalResults, 0, 'an account user without access is not in the workspace')
  const added = await api('POST', `${WS_SCIM}/Users`, { userName: 'ACCT@contoso.com', entitlements: [{ value: 'databricks-sql-access' }] }, { headers: { 'content-type': 'application/scim+json; charset=utf-8' } })
  t.equal(added.status, 201, 'an account user joins the workspace')
  t.equal(added.body.id, accountUser, 'the same principal, not a duplicate')
  t.same(added.body.entitlements, [{ value: 'databricks-sql-access' }])
  t.match(added.body.groups, [{ display: 'users', type: 'direct' }], 'member of the workspace users group')
  assertScimError(t, await api('POST', `${WS_SCIM}/Users`, { userName: 'acct@contoso.com' }), 409, 'uniqueness', 'User with username acct@contoso.com already exists.')

  const newUser = await api('POST', `${WS_SCIM}/Users`, { userName: 'new@contoso.com' })
  t.equal(newUser.status, 201)
  t.equal((await api('GET', `${SCIM}/Users?filter=${encodeURIComponent('userName eq "new@contoso.com"')}`)).body.totalResults, 1, 'created in the account too')

  const groups = await api('GET', `${WS_SCIM}/Groups`)
  t.same(groups.body.Resources.map((g: any) => [g.displayName, g.meta.resourceType]).sort(), [['admins', 'WorkspaceGroup'], ['users', 'WorkspaceGroup']])
  const users = groups.body.Resources.find((g: any) => g.displayName === 'users')
  t.same(users.members.map((m: any) => m.value).sort(), [accountUser, newUser.body.id].sort(), 'workspace lists carry members')

  const admins = groups.body.Resources.find((g: any) => g.displayName === 'admins')
  const promoted = await api('PATCH', `${WS_SCIM}/Groups/${admins.id as string}`, patchBody({ op: 'add', path: 'members', value: [{ value: accountUser }] }))
  t.equal(promoted.status, 200)
  t.same(promoted.body.members.map((m: any) => m.value), [accountUser], 'adding to admins makes a workspace admin')
  assertScimError(t, await api('PATCH', `${WS_SCIM}/Groups/${admins.id as string}`, patchBody({ op: 'replace', path: 'displayName', value: 'x' })), 400, 'invalidValue')

  const accountGroup = await createGroup(api, 'Analysts')
  await api('PUT', `/api/2.0/accounts/${'7d3c9a5e-1f2b-4c6d-8e9f-0a1b2c3d4e5f'}/workspaces/${DEFAULT_WORKSPACE_ID}/permissionassignments/principals/${accountGroup}`, { permissions: ['USER'] })
  const inWs = await api('GET', `${WS_SCIM}/Groups/${accountGroup}`)
  t.match(inWs.body, { displayName: 'Analysts', meta: { resourceType: 'Group' } }, 'an assigned account group shows in the workspace')
  const rename = await api('PATCH', `${WS_SCIM}/Groups/${accountGroup}`, patchBody({ op: 'replace', path: 'displayName', value: 'Renamed' }))
  assertScimError(t, rename, 400, 'invalidValue', /account group/)
  const entitle = await api('PATCH', `${WS_SCIM}/Groups/${accountGroup}`, patchBody({ op: 'add', path: 'entitlements', value: [{ value: 'workspace-access' }] }))
  t.same(entitle.body.entitlements, [{ value: 'workspace-access' }], 'workspace entitlements of an account group')

  const local = await api('POST', `${WS_SCIM}/Groups`, { displayName: 'legacy-local' })
  t.equal(local.status, 201)
  t.equal(local.body.meta.resourceType, 'WorkspaceGroup')
  t.equal((await api('GET', `${SCIM}/Groups?filter=${encodeURIComponent('displayName eq "legacy-local"')}`)).body.totalResults, 0, 'not an account group')

  t.equal((await api('DELETE', `${WS_SCIM}/Users/${accountUser}`)).status, 204)
  assertScimError(t, await api('GET', `${WS_SCIM}/Users/${accountUser}`), 404)
  t.equal((await api('GET', `${SCIM}/Users/${accountUser}`)).status, 200, 'still in the account')
  assertScimError(t, await api('GET', `${WS_SCIM}/Users`, undefined, { headers: { 'X-Databricks-Workspace-Id': '999' } }), 400, 'invalidValue', /Workspace 999/)
})

t.test('50 concurrent creates of one userName: one 201, 49 × 409', async t => {
  const { api, control } = await startDatabricks(t)
  const results = await Promise.all(Array.from({ length: 50 }, async (_, i) =>
    await api('POST', `${SCIM}/Users`, { userName: i % 2 === 0 ? 'race@contoso.com' : 'RACE@contoso.com', displayName: `try ${i}` })))
  const created = results.filter(r => r.status === 201)
  const conflicts = results.filter(r => r.status === 409)
  t.equal(created.length, 1, 'exactly one 201')
  t.equal(conflicts.length, 49, 'the rest are 409')
  for (const r of conflicts) {
    assertScimError(t, r, 409, 'uniqueness')
    t.match(r.body.detail, /^User with email (race|RACE)@contoso\.com already exists in this account\. Note: emails are case insensitive/)
  }
  const state = (await control('GET', '/state')).body
  t.equal(state.users.length, 1, 'one user in the account')
  t.equal(state.users[0].id, created[0]?.body.id)
})

t.test('concurrent group and service principal creates, and concurrent resolves', async t => {
  const { api, control } = await startDatabricks(t)
  const groups = await Promise.all(Array.from({ length: 20 }, async () => await api('POST', `${SCIM}/Groups`, { displayName: 'Race group' })))
  t.same(groups.map(r => r.status).sort(), [201, ...Array(19).fill(409)].sort())
  t.ok(groups.filter(r => r.status === 409).every(r => r.body.detail === 'Group with name Race group already exists.'))
  const sps = await Promise.all(Array.from({ length: 20 }, async () => await api('POST', `${SCIM}/ServicePrincipals`, { applicationId: T.etlAppId })))
  t.same(sps.map(r => r.status).sort(), [201, ...Array(19).fill(409)].sort())

  const resolves = await Promise.all(Array.from({ length: 20 }, async () => await api('POST', `${IDENTITY}/users/resolve-by-external-id`, { external_id: T.bob })))
  t.ok(resolves.every(r => r.status === 200))
  t.equal(new Set(resolves.map(r => r.body.user.user_id)).size, 1, 'every resolve returns the same user')
  const state = (await control('GET', '/state')).body
  t.equal(state.users.length, 1)
  t.equal(state.servicePrincipals.length, 1)
})

t.test('account groups cannot take the system group names users, admins and account users', async t => {
  const { api } = await startDatabricks(t)
  for (const name of ['users', 'Admins', 'ACCOUNT USERS', ' account users ']) {
    assertScimError(t, await api('POST', `${SCIM}/Groups`, { displayName: name }), 400, 'invalidValue', `Group name ${name} is reserved for a system group (users, admins, account users).`)
  }
  t.equal((await api('GET', `${SCIM}/Groups`)).body.totalResults, 0, 'nothing was made')
  for (const name of ['users-eu', 'All admins', 'account users (EU)']) t.equal((await api('POST', `${SCIM}/Groups`, { displayName: name })).status, 201, `${name} is free`)

  const ops = await createGroup(api, 'Ops')
  assertScimError(t, await api('PUT', `${SCIM}/Groups/${ops}`, { displayName: 'USERS' }), 400, 'invalidValue', /reserved/)
  assertScimError(t, await api('PATCH', `${SCIM}/Groups/${ops}`, patchBody({ op: 'replace', path: 'displayName', value: 'admins' })), 400, 'invalidValue', /reserved/)
  assertScimError(t, await api('PATCH', `${SCIM}/Groups/${ops}`, patchBody({ op: 'replace', value: { displayName: 'Account Users' } })), 400, 'invalidValue', /reserved/)
  t.equal((await api('GET', `${SCIM}/Groups/${ops}`)).body.displayName, 'Ops', 'a refused rename changes nothing')
  t.equal((await api('PUT', `${SCIM}/Groups/${ops}`, { displayName: 'Ops' })).status, 200, 'keeping its own name is fine')

  // The workspace API keeps its own rule: `users` and `admins` are the workspace's system groups.
  assertScimError(t, await api('POST', `${WS_SCIM}/Groups`, { displayName: 'Users' }), 409, 'uniqueness', 'Group with name Users already exists.')
})
