// Route labels for metrics: one label per API shape, whatever object, tenant or query a call names.
import t from 'tap'
import { routeLabel } from '../../../src/upstream/route-label.ts'

const TID = '11111111-1111-4111-8111-111111111111'

t.test('ids, UPNs, alternate keys and queries are stripped', async t => {
  const cases: Array<[string, string]> = [
    [`https://login.example/${TID}/oauth2/v2.0/token`, '/{id}/oauth2/v2.0/token'],
    [`https://login.example/${TID}/v2.0/.well-known/openid-configuration`, '/{id}/v2.0/.well-known/openid-configuration'],
    ['https://graph.example/v1.0/users/a0000000-0000-4000-8000-000000000001/transitiveMemberOf/microsoft.graph.group?$select=id&$top=999', '/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.group'],
    ['https://graph.example/v1.0/users/gina_fabrikam.com%23EXT%23@contoso.onmicrosoft.com?$select=id', '/v1.0/users/{id}'],
    ['https://graph.example/v1.0/users/alice@contoso.com', '/v1.0/users/{id}'],
    ["https://graph.example/v1.0/servicePrincipals(appId='c0000000-0000-4000-8000-000000000001')", '/v1.0/servicePrincipals({key})'],
    ["https://graph.example/v1.0/users?$filter=mail eq 'secret@contoso.com'", '/v1.0/users'],
    ['https://graph.example/v1.0/$batch', '/v1.0/$batch'],
    ['https://graph.example/v1.0/users/abc123def456/memberOf/$count', '/v1.0/users/{id}/memberOf/$count'],
    ['https://acct.example/api/2.0/accounts/0d1e2f3a-1111-4111-8111-111111111111/scim/v2/Users/123456789', '/api/2.0/accounts/{id}/scim/v2/Users/{id}'],
    ['/v1.0/groups/d0000000-0000-4000-8000-000000000001/memberOf?x=1#frag', '/v1.0/groups/{id}/memberOf']
  ]
  for (const [url, label] of cases) t.equal(routeLabel(url), label, url)
})

t.test('labels stay bounded for very long paths', async t => {
  const label = routeLabel('https://x.example/' + Array.from({ length: 30 }, (_, i) => `seg${i % 2 === 0 ? 'a' : 'b'}`).join('/'))
  t.equal(label.split('/').length, 14, 'twelve segments and an ellipsis')
  t.match(label, /\/…$/)
})
