// The application/json body parser: fastify's own (secure-json-parse, prototype poisoning refused) behind a
// nesting-depth check that reads the raw text once before JSON.parse does any work. A deeply nested
// document then costs one linear scan and a 400, never a parse, a schema validation and a walk per level.
// It runs only after the route's onRequest hooks (authentication, role), within the route's body limit.
import { errorCodes, type FastifyInstance } from 'fastify'
import createError from '@fastify/error'
import secureJson from 'secure-json-parse'

/** The deepest nesting of arrays and objects accepted. The API's deepest request needs 3: { principals: [ { id } ] }. */
export const MAX_JSON_DEPTH = 32

export const JsonTooDeep = createError('JSON_TOO_DEEP', 'The JSON body nests arrays and objects more than %s levels deep; no request of this API needs more than 3: send the documented shape (see /docs).', 400)

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACKET = 0x5b
const OPEN_BRACE = 0x7b
const CLOSE_BRACKET = 0x5d
const CLOSE_BRACE = 0x7d

/**
 * Whether `text` opens more than `max` arrays or objects inside one another: `[` and `{` outside string
 * literals (a backslash escapes the next character), stopping at the first level too many. Invalid JSON
 * is not judged here (JSON.parse refuses it at its first error).
 */
export function nestsDeeperThan (text: string, max: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) {
      inString = true
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > max) return true
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--
    }
  }
  return false
}

/**
 * Replaces fastify's application/json parser (empty and invalid bodies keep fastify's own 400 errors) and
 * removes its text/plain one: JSON is the only body this API reads, so any other is 415 UNSUPPORTED_MEDIA_TYPE
 * (a text/plain body would otherwise reach the schema as a string, "body must be object").
 */
export function registerJsonBodyParser (app: FastifyInstance, maxDepth = MAX_JSON_DEPTH): void {
  if (app.hasContentTypeParser('text/plain')) app.removeContentTypeParser('text/plain')
  const { onProtoPoisoning = 'error', onConstructorPoisoning = 'error' } = app.initialConfig
  const options = { protoAction: onProtoPoisoning, constructorAction: onConstructorPoisoning }
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = body as string
    if (text.length === 0) return done(new errorCodes.FST_ERR_CTP_EMPTY_JSON_BODY(), undefined)
    if (nestsDeeperThan(text, maxDepth)) return done(new JsonTooDeep(maxDepth), undefined)
    let parsed: unknown
    try {
      parsed = secureJson.parse(text, options)
    } catch {
      return done(new errorCodes.FST_ERR_CTP_INVALID_JSON_BODY(), undefined)
    }
    done(null, parsed)
  })
}
