// TokenVerifier: from an `Authorization: Bearer …` header (or a bare token) to a `Caller`, for Microsoft
// Entra access tokens, v1 and v2, users and service principals.
//
// Cold path: size → compact shape → @fastify/jwt (fast-jwt) decodes the token and asks our `secret`
// callback for the key; that callback first checks everything that needs no key (RS256 only, tenant
// allow-list, audience, lifetime against the injected clock, claim shape), then the issuer against the
// configured authority's discovery document (§1.6), then finds the key for `kid` (an unknown one refetches
// the keys at once, at most once per short interval; see keys.ts for the refresh schedule) and checks the
// key's own issuer; @fastify/jwt then checks the RS256 signature and the audience. Warm path: the token is
// looked up in a bounded LRU of verified tokens, valid until the token expires (plus the skew) and while
// its signing key is still published: microseconds, no crypto.
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyJwt from '@fastify/jwt'
import { LRUCache } from 'lru-cache'
import { systemClock, type Clock } from '../clock.ts'
import type { Caller } from './caller.ts'
import { ALGORITHM, GUID, checkIssuer, checkKeyIssuer, inspect, normalizeAudience, type TokenPolicy, type TokenVersion } from './claims.ts'
import {
  TokenMalformed, TokenMissing, TokenSignatureInvalid, TokenTooLarge, isTokenError, withChallenge
} from './errors.ts'
import { SigningKeys, type FetchJson, type KeyLogger, type KeySourceStats } from './keys.ts'

export interface TokenVerifierOptions {
  /** The Entra authority host: `https://login.microsoftonline.com` (or a sovereign cloud's, or the emulators' origin). */
  authorityHost: string
  /** The home tenant (GUID): its discovery documents are where signing keys come from. */
  tenantId: string
  /** Tenants whose tokens are accepted (GUIDs). Default: only the home tenant. Several are an explicit opt-in. */
  allowedTenants?: string[]
  /** The API's identifiers: its client id (the v2 `aud`) and App ID URIs (a v1 `aud`), each matched with or without a trailing slash. */
  audiences: string[]
  /** Allowed clock difference for `exp` and `nbf`, in seconds. Default 300, like Microsoft's validators. */
  clockSkewSeconds?: number
  /** Time for `exp`/`nbf`, the verified-token cache and the key refresh schedule. Default: the system clock. */
  clock?: Clock
  /**
   * Keys this old (less up to 10 % of jitter) are refreshed in the background by the next verification, so
   * a key Entra stopped publishing stops verifying within this interval. Default 5 minutes.
   */
  keyRefreshIntervalMs?: number
  /**
   * A token with an unknown `kid` refetches the keys at once unless a fetch started less than this long
   * ago: a new key is accepted within this interval, and unknown kids cost at most one fetch per interval.
   * Default 10 s; at least 1 ms.
   */
  keyMinRefreshIntervalMs?: number
  /** The discovery document this old is reread with the next key refresh. Default 12 hours. */
  keyMaxAgeMs?: number
  /** With no keys at all, a failed fetch is retried no sooner than this (it is also the 503's Retry-After). Default 10 s. */
  keyRetryAfterFailureMs?: number
  /** GETs a URL and returns its parsed JSON; throws on a non-2xx answer. The service's upstream client in production. */
  fetchJson: FetchJson
  /** Longer tokens are refused before they are parsed. Default 16 KiB (a token with 200 groups is about 12 KiB). */
  maxTokenBytes?: number
  /** Verified tokens kept (LRU). Default 10,000. */
  cacheMaxEntries?: number
  /** And at most this many bytes of them (token length plus about 1 KiB per entry). Default 32 MiB. */
  cacheMaxBytes?: number
  /** Reports verified-token cache lookups (`hit`, `coalesced` with a verification in progress, `miss`). */
  cacheObserver?: { onLookup: (cache: string, result: 'hit' | 'coalesced' | 'miss') => void }
  /** Where a failed key refresh is reported (a pino logger fits). The last good keys stay in use. */
  logger?: KeyLogger
}

export interface TokenVerifierStats {
  cache: { hits: number, coalesced: number, misses: number, entries: number }
  /** Tokens whose RS256 signature was checked (cold verifications that got as far as a key). */
  signatureChecks: number
  keys: { v1: KeySourceStats, v2: KeySourceStats }
}

interface CacheEntry {
  caller: Caller
  /** The instant verification would start failing: `exp` plus the skew. */
  validUntil: number
  version: TokenVersion
  kid: string
}

interface Decoded {
  header: Record<string, unknown>
  payload: Record<string, unknown>
}

/** @fastify/jwt's verifier, as we use it: `secret` is an async key fetcher, so `verify` returns a promise. */
interface JwtEngine {
  verify: (token: string) => Promise<Decoded>
}

const BEARER = 'Bearer '
/** The compact JWS serialization: three base64url segments, the last (signature) possibly empty. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
const CACHE_NAME = 'verified-tokens'

export const TOKEN_VERIFIER_DEFAULTS = {
  clockSkewSeconds: 300,
  keyRefreshIntervalMs: 5 * 60_000,
  keyMinRefreshIntervalMs: 10_000,
  keyMaxAgeMs: 12 * 3600_000,
  keyRetryAfterFailureMs: 10_000,
  maxTokenBytes: 16 * 1024,
  cacheMaxEntries: 10_000,
  cacheMaxBytes: 32 * 1024 * 1024
} as const

/** An entry's weight for `cacheMaxBytes`: the token (the key) plus the Caller and bookkeeping. */
const ENTRY_OVERHEAD_BYTES = 1024

export class TokenVerifier {
  private readonly clock: Clock
  private readonly policy: TokenPolicy
  private readonly keys: SigningKeys
  private readonly maxTokenBytes: number
  private readonly cache: LRUCache<string, CacheEntry>
  private readonly inflight = new Map<string, Promise<Caller>>()
  private readonly observer: TokenVerifierOptions['cacheObserver']
  private readonly counts = { hits: 0, coalesced: 0, misses: 0, signatureChecks: 0 }
  private engine?: JwtEngine
  private closeHost?: () => Promise<void>

  /** Use `createTokenVerifier`, which also sets up the @fastify/jwt engine. */
  constructor (options: TokenVerifierOptions) {
    const o = validate(options)
    this.clock = o.clock
    this.maxTokenBytes = o.maxTokenBytes
    this.observer = o.cacheObserver
    this.policy = {
      audiences: new Set(o.audiences.map(normalizeAudience)),
      allowedTenants: new Set(o.allowedTenants.map(t => t.toLowerCase())),
      skewMs: o.clockSkewSeconds * 1000
    }
    this.keys = new SigningKeys({
      authorityHost: o.authorityHost,
      tenantId: o.tenantId,
      fetchJson: o.fetchJson,
      clock: o.clock,
      refreshIntervalMs: o.keyRefreshIntervalMs,
      minRefreshIntervalMs: o.keyMinRefreshIntervalMs,
      maxAgeMs: o.keyMaxAgeMs,
      retryAfterFailureMs: o.keyRetryAfterFailureMs,
      logger: o.logger
    })
    this.cache = new LRUCache({ max: o.cacheMaxEntries, maxSize: o.cacheMaxBytes, sizeCalculation: (_entry, token) => token.length + ENTRY_OVERHEAD_BYTES })
  }

  /**
   * Registers @fastify/jwt, in verify-only mode, in an encapsulated context of `host` (nothing leaks into
   * the host's routes) with our key callback as its `secret`. Called once, by `createTokenVerifier`.
   */
  async attach (host: FastifyInstance, closeHost?: () => Promise<void>): Promise<void> {
    if (this.engine !== undefined) throw new Error('the token verifier is already attached')
    // The same audiences the key callback accepts: client ids in any case, URIs with or without a slash.
    const audiences = [...this.policy.audiences].flatMap((a): Array<string | RegExp> => GUID.test(a)
      ? [new RegExp(`^${a}/?$`, 'i')]
      : [a, `${a}/`])
    await host.register(async (scope) => {
      await scope.register(fastifyJwt, {
        secret: { public: async (decoded: Decoded) => await this.keyFor(decoded) },
        decode: { complete: true },
        verify: {
          algorithms: [ALGORITHM],
          allowedAud: audiences,
          // Lifetime is checked (against the injected clock) before any key is fetched; verified tokens
          // are cached by this class, against the same clock.
          ignoreExpiration: true,
          ignoreNotBefore: true,
          cache: false,
          complete: true
        }
      })
      // With an async `secret`, fast-jwt's verifier returns a promise (the decorator's type says otherwise).
      const jwt = scope.jwt
      this.engine = { verify: async (token) => await (jwt.verify(token) as unknown as Promise<Decoded>) }
    })
    this.closeHost = closeHost
  }

  /**
   * The caller behind an `Authorization` header value: `Bearer <Entra access token>`. Throws a 401 with a
   * precise `code` (see errors.ts), or a 503 when Entra's signing keys cannot be fetched and none are cached.
   */
  async authenticate (authorization: string | undefined): Promise<Caller> {
    if (authorization === undefined) throw withChallenge(new TokenMissing())
    // Before any parsing: a huge header costs nothing but this comparison.
    if (authorization.length > this.maxTokenBytes + BEARER.length) throw withChallenge(new TokenTooLarge(authorization.length - BEARER.length, this.maxTokenBytes))
    // indexOf/slice rather than a regex split: this runs on every request, over a header of kilobytes.
    const header = authorization.trim()
    const space = header.indexOf(' ')
    if (space === -1 || header.slice(0, space).toLowerCase() !== 'bearer') throw withChallenge(new TokenMissing())
    const token = header.slice(space + 1).trimStart()
    if (token === '') throw withChallenge(new TokenMissing())
    if (token.includes(' ')) throw withChallenge(new TokenMalformed('the Authorization header has more than one value after Bearer'))
    return await this.verify(token)
  }

  /**
   * authenticate() without a promise, for the warm path: the caller when the header is a well-formed
   * bearer token already verified and still valid; undefined otherwise (authenticate() then verifies it, or
   * says precisely what is wrong with it).
   */
  cachedCaller (authorization: string | undefined): Caller | undefined {
    if (authorization === undefined || authorization.length > this.maxTokenBytes + BEARER.length) return undefined
    if (!authorization.startsWith('Bearer ') && !authorization.startsWith('bearer ')) return undefined
    const entry = this.cache.get(authorization.slice(7))
    if (entry === undefined || this.clock.now() > entry.validUntil || !this.keys.source(entry.version).has(entry.kid)) return undefined
    this.counts.hits++
    this.observer?.onLookup(CACHE_NAME, 'hit')
    return entry.caller
  }

  /** The caller a bare access token stands for (same checks as `authenticate`). */
  async verify (token: string): Promise<Caller> {
    if (token.length > this.maxTokenBytes) throw withChallenge(new TokenTooLarge(token.length, this.maxTokenBytes))
    const entry = this.cache.get(token)
    if (entry !== undefined) {
      if (this.clock.now() <= entry.validUntil && this.keys.source(entry.version).has(entry.kid)) {
        this.counts.hits++
        this.observer?.onLookup(CACHE_NAME, 'hit')
        return entry.caller
      }
      this.cache.delete(token)
    }
    const running = this.inflight.get(token)
    if (running !== undefined) {
      this.counts.coalesced++
      this.observer?.onLookup(CACHE_NAME, 'coalesced')
      return await running
    }
    this.counts.misses++
    this.observer?.onLookup(CACHE_NAME, 'miss')
    const verification = this.verifyCold(token).finally(() => this.inflight.delete(token))
    this.inflight.set(token, verification)
    return await verification
  }

  /** Loads both discovery documents and key sets now (e.g. at start-up), instead of on the first token. */
  async warm (): Promise<void> {
    await Promise.all([this.keys.v2.ensureLoaded(), this.keys.v1.ensureLoaded()])
  }

  stats (): TokenVerifierStats {
    return {
      cache: { hits: this.counts.hits, coalesced: this.counts.coalesced, misses: this.counts.misses, entries: this.cache.size },
      signatureChecks: this.counts.signatureChecks,
      keys: { v1: this.keys.v1.stats(), v2: this.keys.v2.stats() }
    }
  }

  /** Resolves once no signing-key fetch is in progress (a background refresh included). */
  async keysSettled (): Promise<void> {
    await this.keys.settled()
  }

  /**
   * Forgets verified tokens, waits for a key refresh in progress (nothing runs after close) and, for a
   * verifier built without a host, closes its private fastify instance.
   */
  async close (): Promise<void> {
    this.cache.clear()
    await this.keys.settled()
    await this.closeHost?.()
  }

  private async verifyCold (token: string): Promise<Caller> {
    if (!COMPACT_JWS.test(token)) throw withChallenge(new TokenMalformed('it is not three base64url segments separated by dots'))
    if (this.engine === undefined) throw new Error('the token verifier is not attached: build it with createTokenVerifier')
    let verified: ReturnType<typeof inspect>
    try {
      const decoded = await this.engine.verify(token)
      // Pure and cheap: the checks the key callback made, now on the verified claims, for the Caller.
      verified = inspect(decoded.header, decoded.payload, this.policy, this.clock.now())
    } catch (err) {
      throw refusal(err)
    }
    const { caller, version, kid } = verified
    deepFreeze(caller)
    this.cache.set(token, { caller, validUntil: caller.expiresAt + this.policy.skewMs, version, kid })
    return caller
  }

  /** @fastify/jwt's `secret`: every check that can refuse the token before its signature, then its key. */
  private async keyFor (decoded: Decoded): Promise<string> {
    const token = inspect(decoded.header, decoded.payload, this.policy, this.clock.now())
    const source = this.keys.source(token.version)
    checkIssuer(token.iss, token.tid, await source.issuerTemplate())
    const key = await source.key(token.kid)
    checkKeyIssuer(key.issuer, token.iss, token.tid)
    this.counts.signatureChecks++
    return key.pem
  }
}

/**
 * Builds a verifier with its @fastify/jwt engine. Given a `host` (the service's fastify app, before it is
 * ready), @fastify/jwt is registered in an encapsulated context of it; without one (tests, benches,
 * a composition root that builds services before the app) in a private fastify instance that never
 * listens and is closed by `close()`.
 */
export async function createTokenVerifier (options: TokenVerifierOptions, { host }: { host?: FastifyInstance } = {}): Promise<TokenVerifier> {
  const verifier = new TokenVerifier(options)
  if (host !== undefined) {
    await verifier.attach(host)
    return verifier
  }
  const own = Fastify({ logger: false })
  await verifier.attach(own, async () => await own.close())
  await own.ready()
  return verifier
}

/** Errors out of @fastify/jwt / fast-jwt, as our coded errors; ours (raised in the key callback) come back unwrapped. */
function refusal (err: unknown): Error {
  const code = (err as { code?: unknown }).code
  // fast-jwt wraps whatever the key callback throws (our refusals, the 503) as a key fetching error.
  const original = (err as { originalError?: unknown }).originalError
  if (code === 'FAST_JWT_KEY_FETCHING_ERROR' && original !== undefined) return refusal(original)
  if (isTokenError(err)) return withChallenge(err)
  if (code === 'FAST_JWT_INVALID_SIGNATURE' || code === 'FAST_JWT_MISSING_SIGNATURE') return withChallenge(new TokenSignatureInvalid())
  if (typeof code === 'string' && code.startsWith('FAST_JWT_')) return withChallenge(new TokenMalformed((err as Error).message.replace(/\.$/, '')))
  return err as Error
}

function deepFreeze (caller: Caller): void {
  Object.freeze(caller.roles)
  Object.freeze(caller.scopes)
  if (caller.groupsClaim !== undefined) Object.freeze(caller.groupsClaim)
  Object.freeze(caller)
}

type Resolved = Required<Omit<TokenVerifierOptions, 'cacheObserver' | 'logger'>> & Pick<TokenVerifierOptions, 'cacheObserver' | 'logger'>

function validate (options: TokenVerifierOptions): Resolved {
  const problems: string[] = []
  let authorityHost = ''
  try {
    const url = new URL(options.authorityHost)
    if (url.protocol !== 'https:') problems.push(`authorityHost must be https (got ${options.authorityHost})`)
    authorityHost = url.origin + url.pathname.replace(/\/+$/, '')
  } catch {
    problems.push(`authorityHost is not a URL (got ${String(options.authorityHost)})`)
  }
  if (typeof options.tenantId !== 'string' || !GUID.test(options.tenantId)) problems.push(`tenantId must be a tenant GUID (got ${String(options.tenantId)})`)
  const allowedTenants = options.allowedTenants ?? [options.tenantId]
  if (allowedTenants.length === 0) problems.push('allowedTenants must name at least one tenant')
  for (const t of allowedTenants) if (typeof t !== 'string' || !GUID.test(t)) problems.push(`allowedTenants must be tenant GUIDs (got ${String(t)})`)
  if (!Array.isArray(options.audiences) || options.audiences.length === 0 || options.audiences.some(a => typeof a !== 'string' || a.trim() === '')) {
    problems.push('audiences must list the API\'s client id and/or App ID URIs')
  }
  if (typeof options.fetchJson !== 'function') problems.push('fetchJson must be a function')
  const numbers = { ...TOKEN_VERIFIER_DEFAULTS }
  for (const name of Object.keys(TOKEN_VERIFIER_DEFAULTS) as Array<keyof typeof TOKEN_VERIFIER_DEFAULTS>) {
    const value = options[name]
    if (value === undefined) continue
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) problems.push(`${name} must be a non-negative number (got ${String(value)})`)
    else (numbers as Record<string, number>)[name] = value
  }
  if (numbers.cacheMaxEntries < 1) problems.push('cacheMaxEntries must be at least 1')
  if (numbers.keyMinRefreshIntervalMs < 1) problems.push('keyMinRefreshIntervalMs must be at least 1 (it bounds the key fetches unknown kids cause)')
  if (numbers.cacheMaxBytes < numbers.maxTokenBytes + ENTRY_OVERHEAD_BYTES) problems.push('cacheMaxBytes must hold at least one token of maxTokenBytes')
  if (problems.length > 0) throw new TypeError(`Invalid token verifier options: ${problems.join('; ')}`)
  return {
    ...options,
    ...numbers,
    authorityHost,
    allowedTenants,
    clock: options.clock ?? systemClock
  }
}
