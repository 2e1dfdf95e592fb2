// SCIM filters as Databricks accepts them (reference §2.3): `eq ne co sw` joined by `and`/`or`, with
// parentheses, string values in double or single quotes, at most 200 nodes. The grammar is parsed by the
// `scim2-parse-filter` library; this module only
// - rewrites single-quoted strings as double-quoted ones (the library, like RFC 7644, knows only `"`),
// - counts nodes and rejects what Databricks does not support, with 400 INVALID_FILTER / invalidFilter,
// - evaluates the tree against a resource through per-attribute accessors (case rules per attribute).
import { parse, type Compare, type Filter, type Suffix } from 'scim2-parse-filter'
import { DatabricksError, invalidFilter } from './errors.ts'

export const MAX_FILTER_NODES = 200
/** Longer filters are refused before parsing (the library's tokenizer is quadratic in the length). */
export const MAX_FILTER_LENGTH = 64 * 1024

const SUPPORTED = new Set(['eq', 'ne', 'co', 'sw'])

export interface FilterAttribute<R> {
  /** The attribute's value(s) on a resource; multi-valued attributes match when any value matches. */
  get: (r: R) => string | boolean | null | undefined | Array<string | null | undefined>
  /** Case-sensitive comparison (RFC 7643 caseExact); default false. */
  caseExact?: boolean
}

export type FilterAttributes<R> = Record<string, FilterAttribute<R>>

/** Rewrites `'…'` string literals as JSON strings, leaving double-quoted ones untouched. */
export function normalizeQuotes (text: string): string {
  let out = ''
  let i = 0
  while (i < text.length) {
    const c = text[i] as string
    if (c === '"') {
      let j = i + 1
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1
      if (j >= text.length) throw invalidFilter(`Unterminated string in filter: ${text}`)
      out += text.slice(i, j + 1)
      i = j + 1
    } else if (c === '\'') {
      let j = i + 1
      let value = ''
      while (j < text.length && text[j] !== '\'') {
        if (text[j] === '\\' && j + 1 < text.length) {
          value += text[j + 1]
          j += 2
        } else {
          value += text[j]
          j += 1
        }
      }
      if (j >= text.length) throw invalidFilter(`Unterminated string in filter: ${text}`)
      out += JSON.stringify(value)
      i = j + 1
    } else {
      out += c
      i += 1
    }
  }
  return out
}

/** Filter nodes as a binary tree: one per comparison, one per `and`/`or` between two operands. */
export function countNodes (f: Filter): number {
  switch (f.op) {
    case 'and':
    case 'or':
      return f.filters.reduce((n, child) => n + countNodes(child), 0) + Math.max(0, f.filters.length - 1)
    case 'not':
      return 1 + countNodes(f.filter)
    case '[]':
      return 1 + countNodes(f.valFilter)
    default:
      return 1
  }
}

/** Parses a filter, or throws Databricks' 400 INVALID_FILTER. */
export function parseFilter (text: string): Filter {
  if (text.length > MAX_FILTER_LENGTH) throw invalidFilter(`Filter is longer than ${MAX_FILTER_LENGTH} characters.`)
  let tree: Filter
  try {
    tree = parse(normalizeQuotes(text))
  } catch (err) {
    if (err instanceof DatabricksError) throw err
    throw invalidFilter(`Invalid filter '${text}': ${err instanceof RangeError ? 'too deeply nested' : (err as Error).message}`)
  }
  const nodes = countNodes(tree)
  if (nodes > MAX_FILTER_NODES) {
    throw invalidFilter(`Filter has ${nodes} nodes, more than the maximum of ${MAX_FILTER_NODES}. Break large filters into multiple smaller requests.`)
  }
  return tree
}

/** Compiles a parsed filter against known attributes (names case-insensitive); unknown ones are a 400. */
export function compileFilter<R> (tree: Filter, attributes: FilterAttributes<R>, resource: string): (r: R) => boolean {
  const lookup = new Map(Object.entries(attributes).map(([k, v]) => [k.toLowerCase(), v]))
  const compile = (f: Filter): ((r: R) => boolean) => {
    if (f.op === 'and' || f.op === 'or') {
      const parts = f.filters.map(compile)
      return f.op === 'and' ? r => parts.every(p => p(r)) : r => parts.some(p => p(r))
    }
    if (f.op === 'not' || f.op === '[]') throw invalidFilter(`Unsupported filter: only simple expressions joined by 'and'/'or' are supported (got '${f.op === 'not' ? 'not' : '[...]'}').`)
    const compare = f as Compare | Suffix
    if (!SUPPORTED.has(compare.op)) throw invalidFilter(`Unsupported operator '${compare.op}': supported operators are eq, ne, co and sw.`)
    const name = compare.attrPath.replace(/^urn:ietf:params:scim:schemas:core:2\.0:[A-Za-z]+:/, '').toLowerCase()
    const attr = lookup.get(name)
    if (attr === undefined) throw invalidFilter(`Unsupported attribute '${compare.attrPath}' in filter for ${resource}.`)
    const expected = (compare as Compare).compValue
    const fold = (s: string): string => attr.caseExact === true ? s : s.toLowerCase()
    const test = (actual: string | boolean | null | undefined): boolean => {
      if (typeof actual === 'boolean' || typeof expected === 'boolean') {
        const a = typeof actual === 'boolean' ? actual : String(actual).toLowerCase() === 'true'
        const e = typeof expected === 'boolean' ? expected : String(expected).toLowerCase() === 'true'
        return compare.op === 'ne' ? a !== e : compare.op === 'eq' && a === e
      }
      if (actual === null || actual === undefined) return compare.op === 'ne' && expected !== null
      if (expected === null) return compare.op === 'ne'
      const a = fold(actual)
      const e = fold(String(expected))
      switch (compare.op) {
        case 'eq': return a === e
        case 'ne': return a !== e
        case 'co': return a.includes(e)
        default: return a.startsWith(e)
      }
    }
    return r => {
      const v = attr.get(r)
      if (!Array.isArray(v)) return test(v)
      // ne over a multi-valued attribute: no value equals the operand.
      return compare.op === 'ne' ? v.every(x => test(x)) : v.some(x => test(x))
    }
  }
  return compile(tree)
}
