// A low-cardinality label for an outbound URL, for metrics and logs: the path with the query dropped and
// every segment that names one object replaced by `{id}`. `/v1.0/users/alice@contoso.com/transitiveMemberOf`
// and `/v1.0/users/4f43…/transitiveMemberOf` both become `/v1.0/users/{id}/transitiveMemberOf`, and
// `/{tenant}/oauth2/v2.0/token` becomes `/{id}/oauth2/v2.0/token`. Labels never carry PII or secrets.

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** Graph's alternate keys: `servicePrincipals(appId='…')`, `users('…')`. */
const KEY_IN_PARENS = /^([A-Za-z$][\w.$]*)\(.*\)$/s
/**
 * Segments that are part of an API's shape: words (`users`, `oauth2`, `.well-known`, `$batch`,
 * `microsoft.graph.group`, `openid-configuration`) and versions (`v1.0`, `v2`, `2.0`).
 */
const WORD = /^[.$]?[A-Za-z][A-Za-z0-9]*(?:[._-][A-Za-z][A-Za-z0-9]*)*$/
const VERSION = /^v?\d+(?:\.\d+)?$/
/** Words with more digits than this are ids (`abc123def456`), not names. */
const MAX_DIGITS_IN_WORD = 2

const MAX_SEGMENTS = 12

function labelSegment (raw: string): string {
  let s = raw
  try {
    s = decodeURIComponent(raw)
  } catch {}
  const keyed = KEY_IN_PARENS.exec(s)
  if (keyed !== null) return `${keyed[1] as string}({key})`
  if (VERSION.test(s) && s.length <= 8) return s
  if (GUID.test(s) || s.length > 40 || !WORD.test(s)) return '{id}'
  if ((s.match(/\d/g)?.length ?? 0) > MAX_DIGITS_IN_WORD) return '{id}'
  return s
}

/** The label of `url` (absolute, or a path). */
export function routeLabel (url: string | URL): string {
  const path = typeof url === 'string' && !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)
    ? (url.split(/[?#]/)[0] ?? '')
    : new URL(url).pathname
  const segments = path.split('/').filter(s => s !== '')
  const labelled = segments.slice(0, MAX_SEGMENTS).map(labelSegment)
  if (segments.length > MAX_SEGMENTS) labelled.push('…')
  return '/' + labelled.join('/')
}
