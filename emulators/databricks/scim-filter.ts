// SCIM filters as Databricks accepts them (reference §2.3): `eq ne co sw` joined by `and`/`or`, with
// parentheses, string values in double or single quotes, at most 200 nodes. The grammar is parsed by the
// `scim2-parse-filter` library; this module only
// - reads the string literals itself, as the JSON strings RFC 7644 says they are (every escape decoded,
//   raw control characters refused), and hands the library placeholders for them,
// - counts nodes and rejects what Databricks does not support, with 400 INVALID_FILTER / invalidFilter,
// - evaluates the tree against a resource through per-attribute accessors (case rules per attribute),
// - names the `eq` comparisons of a filter that is only those joined by `or`, for a caller's index.
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

const ESCAPES: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }

/**
 * Reads the string literal opening at `text[start]` (a `"` or a `'`) and returns its value and the index
 * after its closing quote. RFC 7644 §3.4.2.2: a filter's attribute value is a JSON value, so a `"…"`
 * literal is a JSON string (RFC 8259 §7): every escape is decoded (`\" \\ \/ \b \f \n \r \t \uXXXX`), any
 * other escape and any raw control character (U+0000–U+001F) is a 400 invalidFilter. A `'…'` literal (a
 * Databricks leniency, reference §2.3) takes the same escapes plus `\'`.
 */
export function readStringLiteral (text: string, start: number): { value: string, end: number } {
  const quote = text[start] as '"' | '\''
  let value = ''
  let i = start + 1
  while (i < text.length) {
    const c = text[i] as string
    if (c === quote) return { value, end: i + 1 }
    const code = c.charCodeAt(0)
    if (code < 0x20) {
      throw invalidFilter(`Invalid filter: unescaped control character U+${code.toString(16).toUpperCase().padStart(4, '0')} in a string value at position ${i}; escape it as in JSON.`)
    }
    if (c !== '\\') {
      value += c
      i += 1
      continue
    }
    const e = text[i + 1]
    if (e === undefined) break
    if (e === 'u') {
      const hex = text.slice(i + 2, i + 6)
      if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw invalidFilter(`Invalid filter: bad \\u escape in a string value at position ${i}.`)
      value += String.fromCharCode(parseInt(hex, 16))
      i += 6
      continue
    }
    const decoded = e === quote ? quote : ESCAPES[e]
    if (decoded === undefined) throw invalidFilter(`Invalid filter: bad escape \\${e} in a string value at position ${i}.`)
    value += decoded
    i += 2
  }
  throw invalidFilter(`Unterminated string in filter: ${text}`)
}

/**
 * Replaces every string literal with a placeholder the parsing library reads back unchanged (`"0"`, `"1"`…,
 * indexes into the returned list). The library decodes escapes itself, wrongly (it doubles every
 * backslash not before a quote, so `\n` stays two characters and `"a\\"` fails), hence the values are decoded
 * here and put back into the parsed tree by `restoreLiterals`. Every string the tree holds comes from a
 * placeholder: the grammar has no unquoted strings.
 */
export function extractLiterals (text: string): { text: string, literals: string[] } {
  let out = ''
  const literals: string[] = []
  let i = 0
  while (i < text.length) {
    const c = text[i] as string
    if (c === '"' || c === '\'') {
      const { value, end } = readStringLiteral(text, i)
      out += `"${literals.length}"`
      literals.push(value)
      i = end
    } else {
      out += c
      i += 1
    }
  }
  return { text: out, literals }
}

function restoreLiterals (f: Filter, literals: readonly string[]): void {
  switch (f.op) {
    case 'and':
    case 'or':
      for (const child of f.filters) restoreLiterals(child, literals)
      return
    case 'not':
      restoreLiterals(f.filter, literals)
      return
    case '[]':
      restoreLiterals(f.valFilter, literals)
      return
    default: {
      const compare = f as Compare
      if (typeof compare.compValue === 'string') compare.compValue = literals[Number(compare.compValue)] as string
    }
  }
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
  const { text: placeheld, literals } = extractLiterals(text)
  let tree: Filter
  try {
    tree = parse(placeheld)
  } catch (err) {
    if (err instanceof DatabricksError) throw err
    throw invalidFilter(`Invalid filter '${text}': ${err instanceof RangeError ? 'too deeply nested' : (err as Error).message}`)
  }
  const nodes = countNodes(tree)
  if (nodes > MAX_FILTER_NODES) {
    throw invalidFilter(`Filter has ${nodes} nodes, more than the maximum of ${MAX_FILTER_NODES}. Break large filters into multiple smaller requests.`)
  }
  restoreLiterals(tree, literals)
  return tree
}

/** An attribute path as filters name attributes: lower case, without a core schema URN. */
function attributeName (attrPath: string): string {
  return attrPath.replace(/^urn:ietf:params:scim:schemas:core:2\.0:[A-Za-z]+:/, '').toLowerCase()
}

/**
 * The comparisons of a filter that is `attr eq "string"` or an `or` of such (attribute names as
 * `attributeName` gives them), else null. A caller can then look candidates up in an index instead of
 * testing every resource; it still applies the compiled filter to them, which keeps the case rules.
 */
export function equalityTerms (tree: Filter): Array<{ attr: string, value: string }> | null {
  if (tree.op === 'or') {
    const out: Array<{ attr: string, value: string }> = []
    for (const child of tree.filters) {
      const terms = equalityTerms(child)
      if (terms === null) return null
      out.push(...terms)
    }
    return out
  }
  if (tree.op !== 'eq') return null
  const compare = tree as Compare
  // `eq true`, `eq null` and numbers compare by other rules than strings do: left to the scan.
  if (typeof compare.compValue !== 'string') return null
  return [{ attr: attributeName(compare.attrPath), value: compare.compValue }]
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
    const attr = lookup.get(attributeName(compare.attrPath))
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
