import t from 'tap'
import { ConfigError, isLocalMode, listOf, loadConfig, parseWorkspaceUrls, upstreamTimeoutMs } from '../../src/config.ts'

t.test('defaults give a runnable local-mode configuration', async t => {
  const config = loadConfig({})
  t.equal(config.PORT, 3000)
  t.equal(config.HOST, '127.0.0.1')
  t.equal(config.LOG_LEVEL, 'info')
  t.ok(isLocalMode(config))
})

t.test('numbers are read from strings and unrelated variables are ignored', async t => {
  const config = loadConfig({
    PORT: '8080',
    PATH: '/usr/bin',
    ENTRA_TENANT_ID: '8f2c5a1e-4b7d-4e3a-9c61-2d5e8f0a7b13',
    ENTRA_CLIENT_ID: 'bf029f52-4104-455f-8f04-7bbe45984b5b',
    ENTRA_CLIENT_SECRET: 's3cret',
    USE_TOKEN_GROUPS_CLAIM: 'true'
  })
  t.equal(config.PORT, 8080)
  t.equal(config.USE_TOKEN_GROUPS_CLAIM, true)
  t.notOk(isLocalMode(config))
  t.notOk('PATH' in config)
})

t.test('every bad variable is named in one error', async t => {
  const err = t.throws(() => loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud', ENTRA_TENANT_ID: 'contoso' })) as ConfigError
  t.type(err, ConfigError)
  const named = err.problems.map(p => p.split(':')[0])
  t.same(new Set(named), new Set(['PORT', 'LOG_LEVEL', 'ENTRA_TENANT_ID', 'ENTRA_CLIENT_ID']))
  t.match(err.message, /PORT: .*got 'eighty'/)
})

t.test('production refuses to start without the Entra configuration', async t => {
  const err = t.throws(() => loadConfig({ NODE_ENV: 'production' })) as ConfigError
  t.match(err.problems, [/ENTRA_TENANT_ID: required when NODE_ENV=production/, /ENTRA_CLIENT_ID: required when NODE_ENV=production/])
})

t.test('a tenant needs a client id, and the client id a credential', async t => {
  const tenant = '8f2c5a1e-4b7d-4e3a-9c61-2d5e8f0a7b13'
  t.same((t.throws(() => loadConfig({ ENTRA_TENANT_ID: tenant })) as ConfigError).problems, ['ENTRA_CLIENT_ID: required with ENTRA_TENANT_ID'])
  t.match((t.throws(() => loadConfig({ ENTRA_TENANT_ID: tenant, ENTRA_CLIENT_ID: tenant })) as ConfigError).problems, [/ENTRA_CLIENT_SECRET: set it or ENTRA_CLIENT_CERTIFICATE_PATH/])
  t.ok(loadConfig({ ENTRA_TENANT_ID: tenant, ENTRA_CLIENT_ID: tenant, ENTRA_CLIENT_CERTIFICATE_PATH: '/etc/app.pem' }))
})

t.test('upstream URLs must be https', async t => {
  const err = t.throws(() => loadConfig({ GRAPH_BASE_URL: 'http://graph.example', ENTRA_AUTHORITY_HOST: 'login' })) as ConfigError
  t.same(err.problems.map(p => p.split(':')[0]).sort(), ['ENTRA_AUTHORITY_HOST', 'GRAPH_BASE_URL'])
})

t.test('lists are comma-separated and trimmed', async t => {
  t.same(listOf(' a, b ,,c '), ['a', 'b', 'c'])
  t.same(listOf(undefined), [])
})

t.test('a Databricks host needs its account id, and must be https', async t => {
  t.match((t.throws(() => loadConfig({ DATABRICKS_HOST: 'https://accounts.azuredatabricks.net' })) as ConfigError).problems, [/DATABRICKS_ACCOUNT_ID: required with DATABRICKS_HOST/])
  t.match((t.throws(() => loadConfig({ DATABRICKS_HOST: 'http://accounts.example', DATABRICKS_ACCOUNT_ID: 'abc' })) as ConfigError).problems, [/DATABRICKS_HOST/])
  t.equal(loadConfig({ DATABRICKS_HOST: 'https://accounts.azuredatabricks.net', DATABRICKS_ACCOUNT_ID: 'abc-123' }).DATABRICKS_MODE, 'scim')
})

t.test('DATABRICKS_WORKSPACE_URLS: id=https://host pairs, each bad entry named', async t => {
  const value = ' 1234567890123456=https://adb-1234567890123456.7.azuredatabricks.net/ , 42=https://adb-42.1.azuredatabricks.net,'
  const config = loadConfig({ DATABRICKS_WORKSPACE_URLS: value })
  t.equal(config.DATABRICKS_WORKSPACE_URLS, value, 'kept as given')
  t.same([...parseWorkspaceUrls(config.DATABRICKS_WORKSPACE_URLS).urls], [
    ['1234567890123456', 'https://adb-1234567890123456.7.azuredatabricks.net'],
    ['42', 'https://adb-42.1.azuredatabricks.net']
  ], 'trimmed, trailing slash dropped')
  t.same(parseWorkspaceUrls(undefined), { urls: new Map(), problems: [] }, 'unset: every workspace on DATABRICKS_HOST')

  const err = t.throws(() => loadConfig({
    DATABRICKS_WORKSPACE_URLS: 'adb-1=https://adb-1.azuredatabricks.net,2=http://adb-2.net,3=https://adb-3.net/path,4,5=https://a.net,5=https://b.net',
    PORT: 'x'
  })) as ConfigError
  t.same(err.problems.filter(p => p.startsWith('DATABRICKS_WORKSPACE_URLS')).length, 5, 'every bad entry, next to the other problems')
  t.match(err.problems, [/PORT/, /'adb-1=https:\/\/adb-1\.azuredatabricks\.net' is not workspaceId=https:\/\/host/, /workspace 2 must be an https origin/, /workspace 3 must be an https origin.*got 'https:\/\/adb-3\.net\/path'/, /'4' is not workspaceId/, /workspace 5 is listed twice/])
})

t.test('a value outside a set of choices is told the choices', async t => {
  const err = t.throws(() => loadConfig({ LOG_LEVEL: 'verbose', DATABRICKS_MODE: 'auto', DATABRICKS_GROUP_NAMES: 'id', DATABRICKS_GROUP_FILTER: 'm365', USE_TOKEN_GROUPS_CLAIM: 'yes' })) as ConfigError
  t.same(err.problems, [
    "LOG_LEVEL: must be one of 'fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent' (got 'verbose')",
    "DATABRICKS_MODE: must be one of 'scim', 'aim' (got 'auto')",
    "DATABRICKS_GROUP_NAMES: must be one of 'display-with-id', 'display' (got 'id')",
    "DATABRICKS_GROUP_FILTER: must be one of 'all', 'security' (got 'm365')",
    "USE_TOKEN_GROUPS_CLAIM: must be 'true' or 'false' (got 'yes')"
  ])
  t.notMatch(err.message, /Expected union value/)
})

t.test('numbers, ids and URLs say what they must be', async t => {
  const err = t.throws(() => loadConfig({ PORT: '70000', GRAPH_MAX_REQUESTS_PER_SECOND: '0', ENTRA_TENANT_ID: 'contoso', DATABRICKS_HOST: 'https://accounts.example/api', DATABRICKS_ACCOUNT_ID: 'a', REDIS_URL: 'localhost:6379', REDIS_KEY_PREFIX: 'my app:' })) as ConfigError
  t.match(err.problems, [
    "PORT: must be an integer from 0 to 65535 (got '70000')",
    /^ENTRA_TENANT_ID: must be a GUID such as [0-9a-f-]{36} \(got 'contoso'\)$/,
    "GRAPH_MAX_REQUESTS_PER_SECOND: must be a number more than 0 (got '0')",
    "DATABRICKS_HOST: must be an https:// origin, without a path (got 'https://accounts.example/api')",
    "REDIS_URL: must be a redis:// or rediss:// URL (got 'localhost:6379')",
    "REDIS_KEY_PREFIX: must be 1 to 100 characters without spaces (got 'my app:')"
  ])
})

t.test('request deadline and upstream timeouts: defaults, and one attempt fits in a deadline', async t => {
  const config = loadConfig({})
  t.equal(config.REQUEST_TIMEOUT_MS, 10_000)
  t.equal(config.UPSTREAM_TIMEOUT_MS, undefined)
  t.equal(upstreamTimeoutMs(config), 5_000, 'half the deadline: room for a retry')
  t.equal(upstreamTimeoutMs(loadConfig({ REQUEST_TIMEOUT_MS: '3000', UPSTREAM_TIMEOUT_MS: '3000' })), 3000)
  t.same((t.throws(() => loadConfig({ REQUEST_TIMEOUT_MS: '2000', UPSTREAM_TIMEOUT_MS: '2500' })) as ConfigError).problems,
    ["UPSTREAM_TIMEOUT_MS: must be at most REQUEST_TIMEOUT_MS (2000), so that one attempt of an outbound call fits in a request's deadline (got '2500')"])
  t.match((t.throws(() => loadConfig({ REQUEST_TIMEOUT_MS: '50' })) as ConfigError).problems, [/REQUEST_TIMEOUT_MS: must be an integer from 100 to 600000/])
})
