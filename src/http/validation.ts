// How requests are validated, and what a caller is told when one is not valid. Strict by design: ajv never
// drops a property it does not know (`removeAdditional: false`: an unknown property is a 400 naming it,
// so `permission` is never silently ignored for `level`), never coerces a type (`coerceTypes: false`: a
// number where an id is due is refused, not rounded into another id), and reports every error at once
// (`allErrors`) so one answer lists everything to fix. Schemas say what a value must look like with the
// annotation `x-expected` ("an Entra object id (GUID)"), which the detail shows instead of a raw pattern.
import type { FastifyServerOptions } from 'fastify'

/** The annotation keyword naming, in words, what a value must be. */
export const EXPECTED = 'x-expected'

/** fastify's `ajv` option: the strict validator described above. */
export const AJV_OPTIONS: FastifyServerOptions['ajv'] = {
  customOptions: {
    coerceTypes: false,
    removeAdditional: false,
    useDefaults: true,
    allErrors: true,
    // The failing schema and value travel with each error: the detail reads `x-expected` and the value's type.
    verbose: true,
    // `['string', 'object']`: a registration item is a name or an object (no anyOf: its errors would be noise).
    allowUnionTypes: true
  },
  plugins: [(ajv) => ajv.addKeyword({ keyword: EXPECTED, schemaType: 'string' })]
}

/** An ajv error as fastify passes it on (with `verbose`: the failing schema and value). */
export interface SchemaError {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
  message?: string
  parentSchema?: Record<string, unknown>
  data?: unknown
}

export interface ValidationProblem {
  code: 'UNKNOWN_PROPERTY' | 'INVALID_REQUEST'
  detail: string
}

/** At most this many problems are listed in one detail. */
const MAX_LISTED = 10

/**
 * The problem for a request that failed validation: UNKNOWN_PROPERTY when it has properties the route does
 * not define (each named, with what the route does take), else INVALID_REQUEST; the detail lists every
 * problem (up to ten), each as "where: what it must be", never a raw pattern.
 * `context` is fastify's validationContext (`body`, `querystring`, `params`, `headers`); `route` names the
 * route ("POST /v1/shares").
 */
export function validationProblem (errors: readonly SchemaError[], context: string | undefined, route: string): ValidationProblem {
  const where = placeOf(context)
  const unknown = new Map<string, { names: string[], known: string[] }>()
  const others = new Map<string, string>()
  for (const error of errors) {
    if (error.keyword === 'additionalProperty' || error.keyword === 'additionalProperties') {
      const name = String(error.params.additionalProperty)
      const entry = unknown.get(error.instancePath) ?? { names: [], known: Object.keys((error.parentSchema?.properties ?? {}) as object) }
      if (!entry.names.includes(name)) entry.names.push(name)
      unknown.set(error.instancePath, entry)
      continue
    }
    // One message per value (the first ajv reports: its type before its format).
    const at = error.keyword === 'required' ? `${error.instancePath}/${String(error.params.missingProperty)}` : error.instancePath
    if (!others.has(at)) others.set(at, messageOf(error, where))
  }

  const parts: string[] = []
  for (const [path, { names, known }] of unknown) {
    const scope = path === '' ? where.atRoot : ` in ${where.inside} ${pathOf(path)}`
    const listed = names.slice(0, MAX_LISTED).map(n => `${quoted(n)}${suggestion(n, known)}`)
    const more = names.length > MAX_LISTED ? ` and ${names.length - MAX_LISTED} more` : ''
    const takes = known.length === 0
      ? 'it takes none'
      : `${path === '' ? route : 'it'} takes ${joinAnd(known)}`
    parts.push(`${names.length === 1 ? where.unknownOne : where.unknownMany}${scope}: ${listed.join(', ')}${more} (${takes}). ` +
      `Remove ${names.length === 1 ? 'it' : 'them'} or correct the spelling (names are case-sensitive): nothing unknown is ignored.`)
  }
  const messages = [...others.values()]
  if (messages.length > 0) {
    const more = messages.length > MAX_LISTED ? `; and ${messages.length - MAX_LISTED} more` : ''
    // A number where a string is due: said once why it is not simply converted.
    const numbers = errors.some(e => e.keyword === 'type' && typeof e.data === 'number' && ([] as unknown[]).concat(e.params.type).includes('string'))
      ? ' Ids and names are JSON strings: a JSON number cannot hold every id exactly, so none is converted.'
      : ''
    parts.push(`Invalid request: ${messages.slice(0, MAX_LISTED).join('; ')}${more}.${numbers} See /docs for the request's shape.`)
  }
  if (parts.length === 0) parts.push('Invalid request: see /docs for the request\'s shape.')
  return { code: unknown.size > 0 ? 'UNKNOWN_PROPERTY' : 'INVALID_REQUEST', detail: parts.join(' ') }
}

interface Place {
  /** The whole of it: "the body". */
  whole: string
  /** Before a path inside it: "the body's". */
  inside: string
  /** "Unknown property", "Unknown query parameter". */
  unknownOne: string
  unknownMany: string
  /** After those, for the top level: " in the body". */
  atRoot: string
  /** How one value is named: "objectId" → "path parameter objectId". */
  name: (path: string) => string
}

function placeOf (context: string | undefined): Place {
  switch (context) {
    case 'querystring':
      return { whole: 'the query', inside: 'the query\'s', unknownOne: 'Unknown query parameter', unknownMany: 'Unknown query parameters', atRoot: '', name: p => `query parameter ${p}` }
    case 'params':
      return { whole: 'the path', inside: 'the path\'s', unknownOne: 'Unknown path parameter', unknownMany: 'Unknown path parameters', atRoot: '', name: p => `path parameter ${p}` }
    case 'headers':
      return { whole: 'the headers', inside: 'the headers\'', unknownOne: 'Unknown header', unknownMany: 'Unknown headers', atRoot: '', name: p => `header ${p}` }
    default:
      return { whole: 'the body', inside: 'the body\'s', unknownOne: 'Unknown property', unknownMany: 'Unknown properties', atRoot: ' in the body', name: p => p }
  }
}

function messageOf (error: SchemaError, where: Place): string {
  const schema = error.parentSchema ?? {}
  const expected = typeof schema[EXPECTED] === 'string' ? schema[EXPECTED] : undefined
  const subject = error.instancePath === '' ? where.whole : where.name(pathOf(error.instancePath))
  const limit = Number(error.params.limit)
  switch (error.keyword) {
    case 'required': {
      const missing = String(error.params.missingProperty)
      const property = (schema.properties as Record<string, Record<string, unknown>> | undefined)?.[missing]
      const wanted = typeof property?.[EXPECTED] === 'string' ? `: ${String(property[EXPECTED])}` : ''
      const name = error.instancePath === '' ? where.name(quotedPath(missing)) : `${pathOf(error.instancePath)}.${quotedPath(missing)}`
      return `${name} is required${wanted}`
    }
    case 'type': {
      const types = ([] as unknown[]).concat(error.params.type).map(String)
      return `${subject} must be ${types.map(article).join(' or ')}${expected !== undefined ? ` (${expected})` : ''}, not ${kindOf(error.data)}`
    }
    case 'pattern':
    case 'format':
      return `${subject} must be ${expected ?? 'in the documented format'}`
    case 'minLength':
      return limit <= 1 ? `${subject} must not be empty${expected !== undefined ? `: give ${expected}` : ''}` : `${subject} must be at least ${limit} characters long`
    case 'maxLength':
      return `${subject} must be at most ${limit} characters long`
    case 'enum':
      return `${subject} must be one of ${joinOr(((error.params.allowedValues ?? schema.enum ?? []) as unknown[]).map(String))}`
    case 'minItems':
      return `${subject} must have at least ${limit} item${limit === 1 ? '' : 's'}`
    case 'maxItems':
      return `${subject} must have at most ${limit} items`
    case 'minProperties':
    case 'maxProperties': {
      const keys = error.data !== null && typeof error.data === 'object' ? Object.keys(error.data).slice(0, MAX_LISTED).map(quoted) : []
      return `${subject} must be ${expected ?? `an object with ${error.keyword === 'minProperties' ? 'at least' : 'at most'} ${limit} properties`}${keys.length > 0 ? ` (it has ${joinAnd(keys)})` : ' (it is empty)'}`
    }
    default:
      return `${subject} ${error.message ?? 'is not valid'}`
  }
}

/** `/principals/0/mail` → `principals[0].mail`; odd names quoted and escaped. */
function pathOf (pointer: string): string {
  let out = ''
  for (const raw of pointer.split('/').slice(1)) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (/^(0|[1-9][0-9]*)$/.test(segment)) out += `[${segment}]`
    else out += out === '' ? quotedPath(segment) : `.${quotedPath(segment)}`
  }
  return out
}

/** A property name as it can be printed: plain when it is an identifier, else quoted and escaped. */
function quotedPath (name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/.test(name) ? name : quoted(name)
}

/**
 * A name the caller sent, safe to print: at most 64 characters, in quotes, everything outside printable
 * ASCII escaped (control characters, bidirectional overrides), so a detail or a log line shows what was
 * sent and cannot be forged by it.
 */
export function quoted (value: string): string {
  const cut = value.length > 64 ? `${value.slice(0, 64)}…` : value
  return `"${cut.replace(/[^\x20-\x7e]|["\\]/g, c => c === '…' ? c : c === '"' || c === '\\' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`
}

/** " (did you mean "workspaceId"?)" when a known property differs only in case. */
function suggestion (name: string, known: readonly string[]): string {
  const match = known.find(k => k.toLowerCase() === name.toLowerCase())
  return match === undefined ? '' : ` (did you mean ${quoted(match)}?)`
}

function kindOf (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return article(typeof value)
}

function article (type: string): string {
  return `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`
}

function joinAnd (items: readonly string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1] ?? ''}`
}

function joinOr (items: readonly string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1] ?? ''}`
}
