// The $filter subset: tokenizer, parser, validation against a resource's filterable properties and
// evaluation, without a server.
import t, { type Test } from 'tap'
import { GraphError } from '../../../emulators/graph/errors.ts'
import { idScope, matches, parseFilter, tokenize, validateFilter } from '../../../emulators/graph/filter.ts'
import { FILTER_SCHEMAS } from '../../../emulators/graph/odata.ts'

const user = FILTER_SCHEMAS.user
const rec = {
  id: 'a0000000-0000-4000-8000-000000000001',
  displayName: 'Siobhán O\'Brien',
  mail: 'siobhan.obrien@contoso.com',
  userPrincipalName: 'sob@contoso.onmicrosoft.com',
  accountEnabled: true,
  userType: 'Member',
  jobTitle: null,
  otherMails: ['s@fabrikam.com', 'sob@example.org'],
  proxyAddresses: ['SMTP:siobhan.obrien@contoso.com']
}

const run = (filter: string, advanced = false): boolean => matches(validateFilter(parseFilter(filter), user, advanced), rec)

function graphError (t: Test, fn: () => unknown, status: number, code: string, message?: RegExp | string): void {
  try {
    fn()
    t.fail('expected a GraphError')
  } catch (err) {
    t.ok(err instanceof GraphError, 'a GraphError')
    const e = err as GraphError
    t.equal(e.status, status)
    t.equal(e.code, code)
    if (message !== undefined) t.match(e.message, message)
  }
}

t.test('string literals: quotes doubled, spaces and Unicode kept', async t => {
  const tokens = tokenize('displayName eq \'Siobhán O\'\'Brien\'')
  t.same(tokens.map(x => x.kind), ['ident', 'ident', 'string', 'end'])
  t.equal((tokens[2] as { value: string }).value, 'Siobhán O\'Brien')
  t.ok(run('displayName eq \'Siobhán O\'\'Brien\''))
  t.ok(run('displayName eq \'siobhán o\'\'brien\''), 'eq on strings is case-insensitive, as in Entra')
})

t.test('default operators: eq, in, startswith, and/or, booleans, null', async t => {
  t.ok(run('mail eq \'SIOBHAN.OBRIEN@contoso.com\''))
  t.notOk(run('mail eq \'someone@contoso.com\''))
  t.ok(run('userPrincipalName in (\'x@y\', \'sob@contoso.onmicrosoft.com\')'))
  t.ok(run('id eq \'A0000000-0000-4000-8000-000000000001\''))
  t.ok(run('startswith(displayName,\'sio\')'))
  t.ok(run('startsWith(userPrincipalName, \'SOB\')'), 'function names are case-insensitive')
  t.ok(run('accountEnabled eq true and (userType eq \'Guest\' or startswith(mail,\'siob\'))'))
  t.notOk(run('accountEnabled eq false or userType eq \'Guest\''))
  t.ok(run('jobTitle eq null'))
  t.ok(run('otherMails/any(x:x eq \'S@FABRIKAM.COM\')'))
  t.ok(run('proxyAddresses/any(p:startswith(p,\'smtp:siobhan\'))'))
  t.notOk(run('otherMails/any(x:x eq \'nobody@example.org\')'))
})

t.test('advanced operators need ConsistencyLevel: eventual and $count=true', async t => {
  graphError(t, () => run('endswith(mail,\'@contoso.com\')'), 400, 'Request_UnsupportedQuery', /^Operator 'endsWith' is not supported because the required parameters might be missing\. Try adding \$count=true query parameter and ConsistencyLevel:eventual header\./)
  graphError(t, () => run('userType ne \'Guest\''), 400, 'Request_UnsupportedQuery', /^Operator 'ne' is not supported/)
  graphError(t, () => run('not(startswith(mail,\'x\'))'), 400, 'Request_UnsupportedQuery', /^Operator 'not' is not supported/)
  t.ok(run('endswith(mail,\'@CONTOSO.com\')', true))
  t.ok(run('userType ne \'Guest\'', true))
  t.ok(run('not(startswith(mail,\'x\'))', true))
  t.ok(run('not startswith(mail,\'x\')', true))
  t.ok(run('otherMails/any(x:endswith(x,\'.org\'))', true))
})

t.test('unsupported properties and operators name the property and the resource', async t => {
  graphError(t, () => run('createdDateTime ge \'2020-01-01\''), 400, 'Request_UnsupportedQuery', 'Unsupported or invalid query filter clause specified for property \'createdDateTime\' of resource \'User\'.')
  graphError(t, () => run('endswith(displayName,\'x\')', true), 400, 'Request_UnsupportedQuery', 'Unsupported or invalid query filter clause specified for property \'displayName\' of resource \'User\'.')
  graphError(t, () => run('accountEnabled in (true)'), 400, 'Request_UnsupportedQuery', /property 'accountEnabled'/)
  graphError(t, () => run('otherMails eq \'x\''), 400, 'Request_UnsupportedQuery', /property 'otherMails'/)
  graphError(t, () => run('manager/id eq \'x\''), 400, 'Request_UnsupportedQuery', /property 'manager\/id'/)
  graphError(t, () => validateFilter(parseFilter('appId eq \'x\''), FILTER_SCHEMAS.group, false), 400, 'Request_UnsupportedQuery', 'Unsupported or invalid query filter clause specified for property \'appId\' of resource \'Group\'.')
})

t.test('type mismatches and syntax errors are 400 BadRequest', async t => {
  graphError(t, () => run('accountEnabled eq \'true\''), 400, 'BadRequest', /incompatible types.*'Edm\.Boolean' and 'Edm\.String'/)
  for (const bad of ['mail eq', 'mail eq \'unterminated', '(mail eq \'a\'', 'mail eq \'a\' and', 'startswith(mail)', 'mail ~ \'a\'', 'eq \'a\'', 'mail in \'a\'', 'otherMails/any(x x eq \'a\')']) {
    graphError(t, () => parseFilter(bad), 400, 'BadRequest', /^Invalid filter clause: Syntax error at position \d+ in '/)
  }
  const deep = '('.repeat(5000) + 'mail eq \'a\'' + ')'.repeat(5000)
  graphError(t, () => parseFilter(deep), 400, 'BadRequest', /Invalid filter clause/)
})

t.test('delta scoping filters resolve to object ids', async t => {
  t.same(idScope(parseFilter('id eq \'A\' or id eq \'b\'')), ['a', 'b'])
  t.same(idScope(parseFilter('id in (\'a\',\'b\')')), ['a', 'b'])
  t.equal(idScope(parseFilter('displayName eq \'a\'')), undefined)
  t.equal(idScope(parseFilter('id eq \'a\' and id eq \'b\'')), undefined)
})
