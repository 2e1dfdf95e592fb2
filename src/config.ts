// The service's configuration: environment variables, validated once at start against a TypeBox schema.
// Every problem is reported at once, each naming its variable, so a bad deployment fails with one message.
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

const LogLevel = Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l)))

export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000, description: 'TCP port the service listens on.' }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Interface to listen on; `0.0.0.0` in a container.' }),
  LOG_LEVEL: Type.Unsafe<'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'>({ ...LogLevel, default: 'info', description: 'Pino log level.' }),
  NODE_ENV: Type.Optional(Type.String({ description: '`production` refuses to start without the Entra configuration instead of running local mode.' })),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, default: 10_000, description: 'How long in-flight requests may finish after SIGTERM.' }),
  ENTRA_TENANT_ID: Type.Optional(Type.String({
    pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
    description: 'The Entra tenant (GUID). Unset: local mode, against the emulators and their demo tenant.'
  })),
  EMULATORS_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8443, description: 'Local mode: port of the emulators\' HTTPS origin.' })
})

export type Config = Static<typeof ConfigSchema>

/** Variables that production deployments must set (local mode fills them with the emulators). */
const REQUIRED_IN_PRODUCTION = ['ENTRA_TENANT_ID'] as const

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
    return `${name}: ${e.message}${raw[name] !== undefined ? ` (got '${String(raw[name])}')` : ''}`
  })
  if (env.NODE_ENV === 'production') {
    for (const k of REQUIRED_IN_PRODUCTION) if (raw[k] === undefined) problems.push(`${k}: required when NODE_ENV=production`)
  }
  if (problems.length > 0) throw new ConfigError([...new Set(problems)])
  return value as Config
}

/** Local mode: no Entra tenant configured, so the service runs against the emulators. */
export const isLocalMode = (config: Config): boolean => config.ENTRA_TENANT_ID === undefined
