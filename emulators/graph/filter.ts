// The $filter subset Graph's directory supports (spec §2.3, aad-advanced-queries): comparisons, `in`,
// `startswith`/`endswith`, `and`/`or`/`not`, and `any` lambdas over string collections, with OData string
// literals ('' escapes a quote). Advanced operators (ne, not, endswith) need `ConsistencyLevel: eventual`
// and `$count=true`. @odata/parser (the maintained npm OData parser) was tried first: it rejects the
// `in` operator and `not(...)` without a space, both of which Graph clients send, so this is a small
// tokenizer and recursive-descent parser for exactly this subset.
import { advancedQueryRequired, badRequest, unsupportedFilterProperty } from './errors.ts'

export type Literal = string | number | boolean | null
export type CompareOp = 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le'
export type FunctionName = 'startswith' | 'endswith' | 'contains'

export type FilterNode =
  | { type: 'compare', op: CompareOp, path: string[], value: Literal }
  | { type: 'in', path: string[], values: Literal[] }
  | { type: 'call', fn: FunctionName, path: string[], value: Literal }
  | { type: 'and' | 'or', left: FilterNode, right: FilterNode }
  | { type: 'not', operand: FilterNode }
  | { type: 'lambda', fn: 'any' | 'all', path: string[], variable: string, body: FilterNode | undefined }

type Token =
  | { kind: 'ident', value: string, pos: number }
  | { kind: 'string', value: string, pos: number }
  | { kind: 'number', value: number, pos: number }
  | { kind: 'punct', value: '(' | ')' | ',' | ':' | '/', pos: number }
  | { kind: 'end', pos: number }

const COMPARE_OPS = new Set(['eq', 'ne', 'gt', 'ge', 'lt', 'le'])
const FUNCTIONS = new Set(['startswith', 'endswith', 'contains'])

export class FilterSyntaxError extends Error {
  constructor (readonly pos: number, message: string) {
    super(message)
  }
}

export function tokenize (text: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < text.length) {
    const c = text[i] as string
    if (/\s/.test(c)) { i++; continue }
    if (c === '(' || c === ')' || c === ',' || c === ':' || c === '/') {
      tokens.push({ kind: 'punct', value: c, pos: i })
      i++
      continue
    }
    if (c === '\'') {
      const start = i
      let value = ''
      i++
      for (;;) {
        if (i >= text.length) throw new FilterSyntaxError(start, 'unterminated string literal')
        const ch = text[i] as string
        if (ch === '\'') {
          if (text[i + 1] === '\'') { value += '\''; i += 2; continue }
          i++
          break
        }
        value += ch
        i++
      }
      tokens.push({ kind: 'string', value, pos: start })
      continue
    }
    const num = /^-?\d+(\.\d+)?/.exec(text.slice(i))
    if (num !== null) {
      tokens.push({ kind: 'number', value: Number(num[0]), pos: i })
      i += num[0].length
      continue
    }
    const ident = /^[A-Za-z_@][A-Za-z0-9_.@]*/.exec(text.slice(i))
    if (ident !== null) {
      tokens.push({ kind: 'ident', value: ident[0], pos: i })
      i += ident[0].length
      continue
    }
    throw new FilterSyntaxError(i, `unexpected character '${c}'`)
  }
  tokens.push({ kind: 'end', pos: text.length })
  return tokens
}

const MAX_DEPTH = 64

class Parser {
  private i = 0
  private depth = 0
  constructor (private readonly tokens: Token[]) {}

  parse (): FilterNode {
    const node = this.or()
    const t = this.peek()
    if (t.kind !== 'end') throw new FilterSyntaxError(t.pos, 'unexpected token')
    return node
  }

  private peek (): Token {
    return this.tokens[this.i] as Token
  }

  private next (): Token {
    const t = this.peek()
    if (t.kind !== 'end') this.i++
    return t
  }

  private isKeyword (t: Token, word: string): boolean {
    return t.kind === 'ident' && t.value.toLowerCase() === word
  }

  private expectPunct (value: string): void {
    const t = this.next()
    if (t.kind !== 'punct' || t.value !== value) throw new FilterSyntaxError(t.pos, `expected '${value}'`)
  }

  private or (): FilterNode {
    let left = this.and()
    while (this.isKeyword(this.peek(), 'or')) {
      this.next()
      left = { type: 'or', left, right: this.and() }
    }
    return left
  }

  private and (): FilterNode {
    let left = this.unary()
    while (this.isKeyword(this.peek(), 'and')) {
      this.next()
      left = { type: 'and', left, right: this.unary() }
    }
    return left
  }

  private unary (): FilterNode {
    // Bound the nesting so a hostile filter cannot exhaust the stack.
    if (++this.depth > MAX_DEPTH) throw new FilterSyntaxError(this.peek().pos, 'the expression is nested too deeply')
    try {
      if (this.isKeyword(this.peek(), 'not')) {
        this.next()
        return { type: 'not', operand: this.unary() }
      }
      return this.primary()
    } finally {
      this.depth--
    }
  }

  private primary (): FilterNode {
    const t = this.peek()
    if (t.kind === 'punct' && t.value === '(') {
      this.next()
      const inner = this.or()
      this.expectPunct(')')
      return inner
    }
    if (t.kind !== 'ident') throw new FilterSyntaxError(t.pos, 'expected a property or a function')
    const after = this.tokens[this.i + 1]
    if (FUNCTIONS.has(t.value.toLowerCase()) && after?.kind === 'punct' && after.value === '(') {
      this.next()
      this.next()
      const path = this.path()
      this.expectPunct(',')
      const value = this.literal()
      this.expectPunct(')')
      return { type: 'call', fn: t.value.toLowerCase() as FunctionName, path, value }
    }
    const path = this.path()
    const last = path[path.length - 1] as string
    const nextTok = this.peek()
    if ((last.toLowerCase() === 'any' || last.toLowerCase() === 'all') && path.length > 1 && nextTok.kind === 'punct' && nextTok.value === '(') {
      return this.lambda(path.slice(0, -1), last.toLowerCase() as 'any' | 'all')
    }
    const op = this.next()
    if (op.kind === 'ident' && COMPARE_OPS.has(op.value.toLowerCase())) {
      return { type: 'compare', op: op.value.toLowerCase() as CompareOp, path, value: this.literal() }
    }
    if (op.kind === 'ident' && op.value.toLowerCase() === 'in') {
      this.expectPunct('(')
      const values = [this.literal()]
      while (this.peek().kind === 'punct' && (this.peek() as { value: string }).value === ',') {
        this.next()
        values.push(this.literal())
      }
      this.expectPunct(')')
      return { type: 'in', path, values }
    }
    throw new FilterSyntaxError(op.pos, 'expected an operator')
  }

  private lambda (path: string[], fn: 'any' | 'all'): FilterNode {
    this.expectPunct('(')
    if (this.peek().kind === 'punct' && (this.peek() as { value: string }).value === ')') {
      this.next()
      return { type: 'lambda', fn, path, variable: '', body: undefined }
    }
    const v = this.next()
    if (v.kind !== 'ident') throw new FilterSyntaxError(v.pos, 'expected a lambda variable')
    this.expectPunct(':')
    const body = this.or()
    this.expectPunct(')')
    return { type: 'lambda', fn, path, variable: v.value, body }
  }

  private path (): string[] {
    const first = this.next()
    if (first.kind !== 'ident') throw new FilterSyntaxError(first.pos, 'expected a property')
    const segments = [first.value]
    while (this.peek().kind === 'punct' && (this.peek() as { value: string }).value === '/') {
      this.next()
      const seg = this.next()
      if (seg.kind !== 'ident') throw new FilterSyntaxError(seg.pos, 'expected a property after /')
      segments.push(seg.value)
    }
    return segments
  }

  private literal (): Literal {
    const t = this.next()
    if (t.kind === 'string' || t.kind === 'number') return t.value
    if (t.kind === 'ident') {
      const w = t.value.toLowerCase()
      if (w === 'true') return true
      if (w === 'false') return false
      if (w === 'null') return null
    }
    throw new FilterSyntaxError(t.pos, 'expected a literal')
  }
}

/** Parses a $filter expression; a syntax error is Graph's 400 "Invalid filter clause". */
export function parseFilter (text: string): FilterNode {
  try {
    return new Parser(tokenize(text)).parse()
  } catch (err) {
    if (err instanceof FilterSyntaxError) {
      throw badRequest(`Invalid filter clause: Syntax error at position ${err.pos} in '${text}'.`)
    }
    throw err
  }
}

// ---- validation against what a resource supports ----------------------------------------------------

export type FilterOperator = CompareOp | 'in' | FunctionName | 'any' | 'all' | 'not'

export interface FilterableProperty {
  name: string
  type: 'string' | 'boolean' | 'collection'
  /** Operators this property supports; `ne`, `not` and `endswith` only in advanced queries. */
  ops: ReadonlySet<FilterOperator>
}

export interface FilterSchema {
  /** "User", "Group", "ServicePrincipal": as named in Graph's error messages. */
  resource: string
  properties: readonly FilterableProperty[]
}

const ADVANCED_ONLY: ReadonlySet<FilterOperator> = new Set(['ne', 'not', 'endswith'])
const OPERATOR_NAME: Partial<Record<FilterOperator, string>> = { endswith: 'endsWith', not: 'not', ne: 'ne' }

const EDM: Record<string, string> = { string: 'Edm.String', boolean: 'Edm.Boolean', number: 'Edm.Int32' }
const OP_KIND: Record<string, string> = { eq: 'Equal', ne: 'NotEqual', gt: 'GreaterThan', ge: 'GreaterThanOrEqual', lt: 'LessThan', le: 'LessThanOrEqual', in: 'In' }

/**
 * Checks a parsed filter against the properties and operators a resource supports, and returns it with
 * canonical property names. `advanced` is `ConsistencyLevel: eventual` plus `$count=true`.
 */
export function validateFilter (node: FilterNode, schema: FilterSchema, advanced: boolean): FilterNode {
  const find = (path: string[]): FilterableProperty => {
    const name = path.join('/')
    const prop = path.length === 1 ? schema.properties.find(p => p.name.toLowerCase() === name.toLowerCase()) : undefined
    if (prop === undefined) throw unsupportedFilterProperty(name, schema.resource)
    return prop
  }
  const allow = (prop: FilterableProperty, op: FilterOperator): void => {
    if (!prop.ops.has(op)) throw unsupportedFilterProperty(prop.name, schema.resource)
    if (ADVANCED_ONLY.has(op) && !advanced) throw advancedQueryRequired(OPERATOR_NAME[op] ?? op)
  }
  const typed = (prop: FilterableProperty, value: Literal, op: string): void => {
    if (value === null) return
    const expected = prop.type === 'boolean' ? 'boolean' : 'string'
    const actual = typeof value
    if (actual !== expected) {
      throw badRequest(`A binary operator with incompatible types was detected. Found operand types '${EDM[expected] ?? ''}' and '${EDM[actual] ?? 'Edm.Unknown'}' for operator kind '${OP_KIND[op] ?? op}'.`)
    }
  }
  // Inside a lambda body, the variable stands for one string of the collection.
  const element = (prop: FilterableProperty): FilterableProperty => ({ name: prop.name, type: 'string', ops: prop.ops })

  const walk = (n: FilterNode, scope: { variable: string, prop: FilterableProperty } | undefined): FilterNode => {
    const resolve = (path: string[]): { prop: FilterableProperty, path: string[] } => {
      if (scope !== undefined && path.length === 1 && path[0] === scope.variable) return { prop: element(scope.prop), path }
      const prop = find(path)
      if (prop.type === 'collection') throw unsupportedFilterProperty(prop.name, schema.resource)
      return { prop, path: [prop.name] }
    }
    switch (n.type) {
      case 'and':
      case 'or':
        return { type: n.type, left: walk(n.left, scope), right: walk(n.right, scope) }
      case 'not': {
        if (!advanced) throw advancedQueryRequired('not')
        return { type: 'not', operand: walk(n.operand, scope) }
      }
      case 'compare': {
        const r = resolve(n.path)
        allow(r.prop, n.op)
        typed(r.prop, n.value, n.op)
        return { ...n, path: r.path }
      }
      case 'in': {
        const r = resolve(n.path)
        allow(r.prop, 'in')
        for (const v of n.values) typed(r.prop, v, 'in')
        return { ...n, path: r.path }
      }
      case 'call': {
        const r = resolve(n.path)
        allow(r.prop, n.fn)
        typed(r.prop, n.value, n.fn)
        return { ...n, path: r.path }
      }
      case 'lambda': {
        if (scope !== undefined) throw badRequest('Invalid filter clause: nested lambda expressions are not supported.')
        const prop = find(n.path)
        if (prop.type !== 'collection') throw unsupportedFilterProperty(prop.name, schema.resource)
        allow(prop, n.fn)
        const body = n.body === undefined ? undefined : walk(n.body, { variable: n.variable, prop })
        return { ...n, path: [prop.name], body }
      }
    }
  }
  return walk(node, undefined)
}

// ---- evaluation -------------------------------------------------------------------------------------

const norm = (v: unknown): unknown => typeof v === 'string' ? v.toLowerCase() : v

function compare (a: unknown, op: CompareOp, b: Literal): boolean {
  const x = norm(a)
  const y = norm(b)
  switch (op) {
    case 'eq': return x === y
    case 'ne': return x !== y
    default: {
      if (x === null || y === null || x === undefined) return false
      const xs = x as string | number | boolean
      const ys = y as string | number | boolean
      if (op === 'gt') return xs > ys
      if (op === 'ge') return xs >= ys
      if (op === 'lt') return xs < ys
      return xs <= ys
    }
  }
}

/** Does `rec` satisfy the (validated) filter? String comparisons are case-insensitive, as in Entra. */
export function matches (node: FilterNode, rec: Record<string, unknown>, scope: Record<string, unknown> = {}): boolean {
  const value = (path: string[]): unknown => {
    const [head, ...rest] = path as [string, ...string[]]
    let v: unknown = head in scope ? scope[head] : rec[head]
    for (const seg of rest) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[seg] : undefined
    return v
  }
  switch (node.type) {
    case 'and': return matches(node.left, rec, scope) && matches(node.right, rec, scope)
    case 'or': return matches(node.left, rec, scope) || matches(node.right, rec, scope)
    case 'not': return !matches(node.operand, rec, scope)
    case 'compare': return compare(value(node.path), node.op, node.value)
    case 'in': {
      const v = value(node.path)
      return node.values.some(x => compare(v, 'eq', x))
    }
    case 'call': {
      const v = value(node.path)
      if (typeof v !== 'string' || typeof node.value !== 'string') return false
      const s = v.toLowerCase()
      const p = node.value.toLowerCase()
      return node.fn === 'startswith' ? s.startsWith(p) : node.fn === 'endswith' ? s.endsWith(p) : s.includes(p)
    }
    case 'lambda': {
      const list = value(node.path)
      if (!Array.isArray(list)) return false
      const body = node.body
      if (body === undefined) return node.fn === 'any' ? list.length > 0 : true
      const test = (el: unknown): boolean => matches(body, rec, { ...scope, [node.variable]: el })
      return node.fn === 'any' ? list.some(test) : list.every(test)
    }
  }
}

/** Object ids named by a delta scoping filter (`id eq '…' or id eq '…'`), or undefined for any other shape. */
export function idScope (node: FilterNode): string[] | undefined {
  if (node.type === 'compare' && node.op === 'eq' && node.path.length === 1 && node.path[0] === 'id' && typeof node.value === 'string') return [node.value.toLowerCase()]
  if (node.type === 'in' && node.path[0] === 'id' && node.values.every(v => typeof v === 'string')) return node.values.map(v => (v as string).toLowerCase())
  if (node.type === 'or') {
    const l = idScope(node.left)
    const r = idScope(node.right)
    return l !== undefined && r !== undefined ? [...l, ...r] : undefined
  }
  return undefined
}
