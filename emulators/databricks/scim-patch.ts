// SCIM PATCH requests as Databricks reads them (reference §2.4): `{ schemas: [PatchOp], Operations: [
// { op: add|remove|replace, path?, value? } ] }`. This module validates the envelope and parses paths
// (`members`, `name.givenName`, `members[value eq "123"]`, with an optional schema URN prefix; the
// bracket filter goes through the SCIM filter library); applying operations is per resource (scim.ts).
import type { Filter } from 'scim2-parse-filter'
import { DatabricksError, invalidPath, invalidSyntax, invalidValue, UNPARSABLE } from './errors.ts'
import { compileFilter, parseFilter } from './scim-filter.ts'

export const PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp'

export interface PatchPath {
  raw: string
  /** Top-level attribute, lower case, without schema URN. */
  attr: string
  /** Sub-attribute after a dot, lower case. */
  sub: string | null
  /** Value filter in brackets, e.g. `members[value eq "1"]`. */
  filter: Filter | null
}

export interface PatchOperation {
  op: 'add' | 'remove' | 'replace'
  path: PatchPath | null
  value: unknown
}

const PATH = /^([A-Za-z$][\w$-]*)(?:\[(.*)\])?(?:\.([A-Za-z$][\w$-]*))?$/s

export function parsePath (raw: string): PatchPath {
  let text = raw.trim()
  if (/^urn:/i.test(text)) {
    const bracket = text.indexOf('[')
    const head = bracket < 0 ? text : text.slice(0, bracket)
    text = text.slice(head.lastIndexOf(':') + 1)
  }
  const m = PATH.exec(text)
  if (m === null) throw invalidPath(`Invalid path '${raw}'.`)
  let filter: Filter | null = null
  if (m[2] !== undefined) {
    try {
      filter = parseFilter(m[2])
    } catch (err) {
      throw invalidPath(`Invalid path '${raw}': ${(err as Error).message}`)
    }
  }
  return { raw, attr: (m[1] as string).toLowerCase(), sub: m[3]?.toLowerCase() ?? null, filter }
}

/** The operations of a PATCH body, or Databricks' 400 for a malformed one. */
export function parsePatch (body: Record<string, unknown>): PatchOperation[] {
  const key = Object.keys(body).find(k => k.toLowerCase() === 'operations')
  const ops = key === undefined ? undefined : body[key]
  if (!Array.isArray(ops) || ops.length === 0) throw invalidSyntax(`${UNPARSABLE} A PATCH request needs a non-empty 'Operations' array.`)
  const schemas = body.schemas
  if (schemas !== undefined && (!Array.isArray(schemas) || !schemas.every(s => typeof s === 'string'))) throw invalidSyntax()
  return ops.map((raw, i): PatchOperation => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalidSyntax()
    const o = raw as Record<string, unknown>
    const op = typeof o.op === 'string' ? o.op.toLowerCase() : undefined
    if (op !== 'add' && op !== 'remove' && op !== 'replace') throw invalidSyntax(`${UNPARSABLE} Operation ${i}: unsupported op '${String(o.op)}'.`)
    if (o.path !== undefined && typeof o.path !== 'string') throw invalidSyntax()
    const path = typeof o.path === 'string' && o.path.trim() !== '' ? parsePath(o.path) : null
    if (op === 'remove' && path === null) {
      throw new DatabricksError(400, 'INVALID_PARAMETER_VALUE', `Operation ${i}: a remove operation needs a path.`, { scimType: 'noTarget' })
    }
    if (op !== 'remove' && o.value === undefined) throw invalidSyntax(`${UNPARSABLE} Operation ${i}: '${op}' needs a value.`)
    if (op !== 'remove' && path === null && (typeof o.value !== 'object' || o.value === null || Array.isArray(o.value))) throw invalidSyntax()
    return { op, path, value: o.value }
  })
}

/** Multi-valued attribute values (`members`, `roles`, `entitlements`): `[{ value }]`, or one `{ value }`. A bare string is a 400 invalidSyntax. */
export function complexValues (value: unknown): string[] {
  const items = Array.isArray(value) ? value : [value]
  return items.map(item => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw invalidSyntax()
    const v = (item as Record<string, unknown>).value
    if (typeof v === 'string' && v !== '') return v
    if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v)
    throw invalidSyntax()
  })
}

export function stringValue (value: unknown, what: string): string {
  if (typeof value !== 'string') throw invalidValue(`${what} must be a string.`)
  return value
}

export function booleanValue (value: unknown, what: string): boolean {
  if (typeof value === 'boolean') return value
  if (typeof value === 'string' && /^(true|false)$/i.test(value)) return value.toLowerCase() === 'true'
  throw invalidValue(`${what} must be a boolean.`)
}

/** Which of `values` a value filter (`[value eq "x"]`) selects. */
interface ValueItem { value: string, display?: string, type?: string, $ref?: string }

export function selectValues (values: ValueItem[], filter: Filter): Set<string> {
  const test = compileFilter<ValueItem>(filter, {
    value: { get: v => v.value, caseExact: true },
    display: { get: v => v.display },
    type: { get: v => v.type },
    $ref: { get: v => v.$ref, caseExact: true }
  }, 'a multi-valued attribute')
  return new Set(values.filter(test).map(v => v.value))
}

/** Applies add/replace/remove to a set of simple values (roles, entitlements, member ids). */
export function applyToSet (current: Set<string>, op: PatchOperation, values: () => string[], selected: () => Set<string> | null): Set<string> {
  if (op.op === 'add') return new Set([...current, ...values()])
  if (op.op === 'replace') return new Set(values())
  const chosen = selected()
  if (chosen === null) return new Set()
  return new Set([...current].filter(v => !chosen.has(v)))
}
