// The service's configuration: environment variables, validated once at start against a TypeBox schema.
// Every problem is reported at once, each naming its variable, so a bad deployment fails with one message.
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

const GUID = { pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' }
const LogLevel = Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l)))

export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000, description: 'TCP port the service listens on.' }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Interface to listen on; `0.0.0.0` in a container.' }),
  LOG_LEVEL: Type.Unsafe<'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'>({ ...LogLevel, default: 'info', description: 'Pino log level.' }),
  NODE_ENV: Type.Optional(Type.String({ description: '`production` refuses to start without the Entra configuration instead of running local mode.' })),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, default: 10_000, description: 'How long in-flight requests may finish after SIGTERM.' }),
  REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000, description: 'Deadline of every /v1 request: past it the caller gets 503 DEADLINE_EXCEEDED with Retry-After while the work goes on, its result cached for the retry.' }),
  UPSTREAM_TIMEOUT_MS: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000, description: 'How long one attempt of an outbound call (Graph, Entra, Databricks) may take before it is abandoned and retried. Default: half of REQUEST_TIMEOUT_MS, so a retry fits in a request\'s deadline; at most REQUEST_TIMEOUT_MS.' })),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 1, description: 'When set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`. Unset: /metrics is open, so do not expose the port beyond the scrapers.' })),
  ENTRA_TENANT_ID: Type.Optional(Type.String({ ...GUID, description: 'The Entra tenant (GUID). Unset: local mode, against the emulators and their demo tenant.' })),
  ENTRA_CLIENT_ID: Type.Optional(Type.String({ ...GUID, description: 'The service\'s app registration (client id): it calls Graph with this identity, and tokens for it are accepted.' })),
  ENTRA_CLIENT_SECRET: Type.Optional(Type.String({ minLength: 1, description: 'Client secret of that app; or use ENTRA_CLIENT_CERTIFICATE_PATH.' })),
  ENTRA_CLIENT_CERTIFICATE_PATH: Type.Optional(Type.String({ minLength: 1, description: 'PEM file holding the app\'s certificate and its private key (preferred over a secret).' })),
  ENTRA_AUDIENCES: Type.Optional(Type.String({ description: 'Comma-separated audiences accepted in tokens. Default: the client id and api://<client id>.' })),
  ENTRA_ALLOWED_TENANTS: Type.Optional(Type.String({ description: 'Comma-separated tenant ids whose tokens are accepted. Default: ENTRA_TENANT_ID only.' })),
  ENTRA_AUTHORITY_HOST: Type.String({ pattern: '^https://[^/\\s]+', default: 'https://login.microsoftonline.com', description: 'Entra authority (discovery, keys, token endpoint).' }),
  ENTRA_KEYS_REFRESH_SECONDS: Type.Integer({ minimum: 1, maximum: 86_400, default: 300, description: 'Entra\'s signing keys are refetched this often (less up to 10 % of jitter), so a key Entra stopped publishing stops verifying within it.' }),
  ENTRA_KEYS_MIN_REFRESH_SECONDS: Type.Integer({ minimum: 1, maximum: 3600, default: 10, description: 'A token signed with a key not yet seen refetches the keys at once, but at most once per this many seconds (many unknown keys cost one fetch).' }),
  GRAPH_BASE_URL: Type.String({ pattern: '^https://[^/\\s]+', default: 'https://graph.microsoft.com/v1.0', description: 'Microsoft Graph base URL.' }),
  UPSTREAM_CA_FILE: Type.Optional(Type.String({ minLength: 1, description: 'Extra CA certificate (PEM) trusted for outbound HTTPS, e.g. a TLS-inspecting proxy. Local mode sets it to the emulators\' CA.' })),
  GRAPH_MAX_REQUESTS_PER_SECOND: Type.Number({ exclusiveMinimum: 0, default: 100, description: 'Rate budget for Microsoft Graph (Graph itself allows about 800 light reads a second per app in a large tenant). Each request of a $batch counts, as Graph throttles. With REDIS_URL it holds for all replicas together.' }),
  GRAPH_MAX_CONCURRENCY: Type.Integer({ minimum: 1, default: 16, description: 'Microsoft Graph requests in flight at once.' }),
  DATABRICKS_HOST: Type.Optional(Type.String({ pattern: '^https://[^/\\s]+/?$', description: 'Databricks accounts host (https://accounts.azuredatabricks.net, or the AWS/GCP one). Unset: nothing is materialized.' })),
  DATABRICKS_ACCOUNT_ID: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9-]{1,64}$', description: 'The Databricks account id.' })),
  DATABRICKS_MODE: Type.Union([Type.Literal('scim'), Type.Literal('aim')], { default: 'scim', description: '`scim`: account SCIM, on any account (AWS, GCP, Azure); `aim`: the identity API of accounts with automatic identity management.' }),
  DATABRICKS_TOKEN: Type.Optional(Type.String({ minLength: 1, description: 'A Databricks token of an account admin; unset: an Entra app token of ENTRA_CLIENT_ID for Azure Databricks.' })),
  DATABRICKS_SCIM_PATCHES_PER_SECOND: Type.Number({ exclusiveMinimum: 0, default: 2, description: 'Budget for account SCIM PATCHes (Databricks documents 2/s; raise it if your account allows more).' }),
  DATABRICKS_SCIM_WRITES_PER_SECOND: Type.Number({ exclusiveMinimum: 0, default: 5, description: 'Budget for account SCIM creates, replaces and deletes (documented 5/s).' }),
  DATABRICKS_WORKSPACE_URLS: Type.Optional(Type.String({ description: 'Comma-separated `workspaceId=https://host` pairs: where each workspace\'s APIs (permissions, dashboards) are served. A workspace not listed is reached on DATABRICKS_HOST (a unified host).' })),
  DATABRICKS_GROUP_NAMES: Type.Union([Type.Literal('display-with-id'), Type.Literal('display')], { default: 'display-with-id', description: 'How Entra groups are named in the account: `display-with-id` (`Finance (d0000000)`: the name says which Entra group it is, so a look-alike group created first cannot take it) or `display` (Entra\'s name, disambiguated only when taken).' }),
  DATABRICKS_GROUP_FILTER: Type.Union([Type.Literal('all'), Type.Literal('security')], { default: 'all', description: 'Which Entra groups are materialized: `all`, or `security` (security-enabled groups only, no Microsoft 365 groups).' }),
  DATABRICKS_GROUP_PARENTS: Type.Optional(Type.String({ description: 'Comma-separated Entra group object ids: only these groups and groups nested in them are materialized.' })),
  PRINCIPAL_LOOKUPS_PER_MINUTE: Type.Integer({ minimum: 1, default: 60, description: 'How many other principals one caller (without Identity.Admin) may look up in Entra per minute (principals not in the caches) by asking about them or sharing with them.' }),
  TOKEN_CLOCK_SKEW_SECONDS: Type.Integer({ minimum: 0, maximum: 3600, default: 300, description: 'Tolerance for token exp/nbf, as Microsoft\'s validators.' }),
  USE_TOKEN_GROUPS_CLAIM: Type.Boolean({ default: false, description: 'Take groups from the token\'s `groups` claim when it is present and not overaged, instead of Graph.' }),
  CACHE_PRINCIPAL_TTL_SECONDS: Type.Integer({ minimum: 1, default: 300, description: 'How long a principal (enabled, deleted) is served from cache.' }),
  CACHE_GROUPS_TTL_SECONDS: Type.Integer({ minimum: 1, default: 300, description: 'How long a principal\'s transitive groups are served from cache.' }),
  CACHE_NOT_FOUND_TTL_SECONDS: Type.Integer({ minimum: 1, default: 30, description: 'How long "no such principal" is remembered.' }),
  CACHE_MAX_STALE_SECONDS: Type.Integer({ minimum: 0, default: 900, description: 'How long past their TTL cached entries may be served while Entra is throttling or down.' }),
  CACHE_ACL_TTL_SECONDS: Type.Integer({ minimum: 1, default: 10, description: 'How long an object\'s ACL (Permissions API) is served from cache for permission queries; sharing always reads it fresh.' }),
  CACHE_MAX_PRINCIPALS: Type.Integer({ minimum: 1, default: 100_000, description: 'Bound on cached principals.' }),
  CACHE_MAX_GROUP_REFS: Type.Integer({ minimum: 1, default: 5_000_000, description: 'Bound on cached group references (summed over all principals).' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'Redis (redis:// or rediss://): registration jobs are kept there, so any replica reports them and a restarted one resumes them. Unset: in files under REGISTRATIONS_DIR.' })),
  REPLICAS: Type.Integer({ minimum: 1, maximum: 1000, default: 1, description: 'With REDIS_URL: how many replicas the deployment runs. The Databricks write budgets hold for the whole fleet through Redis; while Redis is unreachable each replica paces itself at its share (the budget divided by this), so the fleet stays within it.' }),
  REDIS_KEY_PREFIX: Type.String({ pattern: '^\\S{1,100}$', default: 'jir:', description: 'Prefix of every Redis key the service makes (registration jobs, sync cursors, the sync queue), so deployments can share one Redis: replicas of one deployment must use the same prefix.' }),
  REGISTRATIONS_DIR: Type.String({ minLength: 1, default: '.data/registrations', description: 'Without REDIS_URL: the directory of registration jobs (one JSON file each), read again at start to resume unfinished ones.' }),
  REGISTRATIONS_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 256, default: 8, description: 'Principals a registration job registers at once, over all jobs (each within the Graph and Databricks rate budgets).' }),
  SYNC_ENABLED: Type.Boolean({ default: true, description: 'Keep Databricks in step with Entra: a delta round (users, service principals, groups) deactivates, reactivates, renames and removes memberships of what the service materialized, and refreshes the caches. Needs DATABRICKS_HOST for the writes; without it only the caches follow.' }),
  SYNC_INTERVAL_SECONDS: Type.Integer({ minimum: 1, maximum: 3600, default: 15, description: 'Seconds between two delta rounds (a change notification starts one at once). With REDIS_URL one replica runs each round.' }),
  SYNC_LOCK_SECONDS: Type.Integer({ minimum: 1, maximum: 600, default: 30, description: 'With REDIS_URL: how long a replica\'s lock on a running round lasts unless renewed (it is renewed every half of it), and how often replicas look for expired locks. A replica that dies mid-round has its round taken over by another within about three times this.' }),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://[^/\\s]+(/[^\\s]*)?$', description: 'The service\'s URL as Microsoft Graph reaches it (https). Set: the sync subscribes to change notifications of users and groups at <PUBLIC_URL>/v1/sync/notifications, so a change starts a round at once. Unset: the sync polls every SYNC_INTERVAL_SECONDS only.' })),
  SYNC_NOTIFICATION_SECRET: Type.Optional(Type.String({ minLength: 16, maxLength: 128, description: 'The clientState of the subscriptions, which every notification must echo. Default: derived from the app\'s credential (the same on every replica).' })),
  SYNC_DIR: Type.String({ minLength: 1, default: '.data/sync', description: 'Without REDIS_URL: where the delta cursors are kept, so a restart resumes where it stopped.' }),
  EMULATORS_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8443, description: 'Local mode: port of the emulators\' HTTPS origin.' })
})

export type Config = Static<typeof ConfigSchema>

/** Variables that production deployments must set (local mode fills them with the emulators). */
const REQUIRED_IN_PRODUCTION = ['ENTRA_TENANT_ID', 'ENTRA_CLIENT_ID'] as const

export class ConfigError extends Error {
  constructor (readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map(p => `  - ${p}`).join('\n')}`)
  }
}

export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  const keys = Object.keys(ConfigSchema.properties)
  const raw = Object.fromEntries(keys.filter(k => env[k] !== undefined && env[k] !== '').map(k => [k, env[k]]))
  const value = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, raw))
  const problems = [...Value.Errors(ConfigSchema, value)].map(e => {
    const name = e.path.replace(/^\//, '')
    return `${name}: ${expected(e.schema as Record<string, unknown>, e.message)}${raw[name] !== undefined ? ` (got '${String(raw[name])}')` : ''}`
  })
  if (env.NODE_ENV === 'production') {
    for (const k of REQUIRED_IN_PRODUCTION) if (raw[k] === undefined) problems.push(`${k}: required when NODE_ENV=production`)
  }
  if (raw.ENTRA_TENANT_ID !== undefined && raw.ENTRA_CLIENT_ID === undefined) problems.push('ENTRA_CLIENT_ID: required with ENTRA_TENANT_ID')
  if (raw.DATABRICKS_HOST !== undefined && raw.DATABRICKS_ACCOUNT_ID === undefined) problems.push('DATABRICKS_ACCOUNT_ID: required with DATABRICKS_HOST')
  if (raw.DATABRICKS_WORKSPACE_URLS !== undefined) problems.push(...parseWorkspaceUrls(String(raw.DATABRICKS_WORKSPACE_URLS)).problems)
  for (const id of listOf(raw.DATABRICKS_GROUP_PARENTS === undefined ? undefined : String(raw.DATABRICKS_GROUP_PARENTS))) {
    if (!new RegExp(GUID.pattern).test(id)) problems.push(`DATABRICKS_GROUP_PARENTS: '${id}' is not an Entra group object id (a GUID)`)
  }
  const { REQUEST_TIMEOUT_MS: requestTimeout, UPSTREAM_TIMEOUT_MS: upstreamTimeout } = value as Partial<Config>
  if (upstreamTimeout !== undefined && requestTimeout !== undefined && upstreamTimeout > requestTimeout) {
    problems.push(`UPSTREAM_TIMEOUT_MS: must be at most REQUEST_TIMEOUT_MS (${requestTimeout}), so that one attempt of an outbound call fits in a request's deadline (got '${String(raw.UPSTREAM_TIMEOUT_MS)}')`)
  }
  if (raw.ENTRA_CLIENT_ID !== undefined && raw.ENTRA_CLIENT_SECRET === undefined && raw.ENTRA_CLIENT_CERTIFICATE_PATH === undefined) {
    problems.push('ENTRA_CLIENT_SECRET: set it or ENTRA_CLIENT_CERTIFICATE_PATH, the credential the service uses to call Microsoft Graph')
  }
  if (problems.length > 0) throw new ConfigError([...new Set(problems)])
  return value as Config
}

/**
 * What a value must be, in the operator's words: a union of literals lists its allowed values, a boolean
 * says true or false, a number its bounds; anything else keeps TypeBox's message.
 */
function expected (schema: Record<string, unknown>, message: string): string {
  const options = Array.isArray(schema.anyOf) ? (schema.anyOf as Array<Record<string, unknown>>).map(s => s.const) : []
  if (options.length > 0 && options.every(o => typeof o === 'string' || typeof o === 'number')) {
    return `must be one of ${options.map(o => `'${String(o)}'`).join(', ')}`
  }
  if (schema.type === 'boolean') return "must be 'true' or 'false'"
  if (schema.pattern === GUID.pattern) return 'must be a GUID such as 8f2c5a1e-4b7d-4e3a-9c61-2d5e8f0a7b13'
  if (typeof schema.pattern === 'string' && schema.pattern.startsWith('^https://')) return schema.pattern.endsWith('/?$') ? 'must be an https:// origin, without a path' : 'must be an https:// URL'
  if (schema.pattern === '^rediss?://') return 'must be a redis:// or rediss:// URL'
  const word = typeof schema.pattern === 'string' ? /^\^\\S\{1,(\d+)\}\$$/.exec(schema.pattern) : null
  if (word !== null) return `must be 1 to ${word[1]} characters without spaces`
  if (schema.type === 'integer' || schema.type === 'number') {
    const kind = schema.type === 'integer' ? 'an integer' : 'a number'
    const min = typeof schema.minimum === 'number' ? `${schema.minimum}` : typeof schema.exclusiveMinimum === 'number' ? `more than ${schema.exclusiveMinimum}` : undefined
    const max = typeof schema.maximum === 'number' ? schema.maximum : undefined
    if (min !== undefined && max !== undefined) return `must be ${kind} from ${min} to ${max}`
    if (min !== undefined) return `must be ${kind}${min.startsWith('more') ? ` ${min}` : ` of at least ${min}`}`
    if (max !== undefined) return `must be ${kind} of at most ${max}`
    return `must be ${kind}`
  }
  return message
}

/** Local mode: no Entra tenant configured, so the service runs against the emulators. */
export const isLocalMode = (config: Config): boolean => config.ENTRA_TENANT_ID === undefined

/** Per-attempt timeout of outbound calls: UPSTREAM_TIMEOUT_MS, else half the request deadline (a retry fits in it). */
export const upstreamTimeoutMs = (config: Pick<Config, 'REQUEST_TIMEOUT_MS' | 'UPSTREAM_TIMEOUT_MS'>): number =>
  config.UPSTREAM_TIMEOUT_MS ?? Math.max(100, Math.floor(config.REQUEST_TIMEOUT_MS / 2))

/** Comma-separated list → trimmed, non-empty entries. */
export const listOf = (value: string | undefined): string[] => (value ?? '').split(',').map(s => s.trim()).filter(s => s !== '')

/**
 * `DATABRICKS_WORKSPACE_URLS`: `id=https://host` pairs, comma-separated → workspace id → origin. Every bad
 * entry is a problem naming the variable and the entry (an id that is not digits, a URL that is not an
 * https origin, an id given twice).
 */
export function parseWorkspaceUrls (value: string | undefined): { urls: Map<string, string>, problems: string[] } {
  const urls = new Map<string, string>()
  const problems: string[] = []
  for (const entry of listOf(value)) {
    const at = entry.indexOf('=')
    const id = at < 0 ? '' : entry.slice(0, at).trim()
    const url = at < 0 ? '' : entry.slice(at + 1).trim().replace(/\/+$/, '')
    if (!/^\d{1,20}$/.test(id)) {
      problems.push(`DATABRICKS_WORKSPACE_URLS: '${entry}' is not workspaceId=https://host (the workspace id is the number in the workspace URL, ?o=…)`)
    } else if (!/^https:\/\/[^/\s?#]+$/.test(url)) {
      problems.push(`DATABRICKS_WORKSPACE_URLS: the URL of workspace ${id} must be an https origin such as https://adb-${id}.4.azuredatabricks.net (got '${url}')`)
    } else if (urls.has(id)) {
      problems.push(`DATABRICKS_WORKSPACE_URLS: workspace ${id} is listed twice`)
    } else {
      urls.set(id, url)
    }
  }
  return { urls, problems }
}
