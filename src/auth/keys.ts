// Entra's token-signing keys, from the configured authority only: the home tenant's v2 and v1 discovery
// documents (a token's `ver` picks one), then the `jwks_uri` each names. A token never decides where keys
// come from, so a forged `iss` cannot make the service fetch anything (no SSRF).
//
// Refresh policy. On a schedule: once the keys are `refreshIntervalMs` old (5 min, less up to 10 % of
// jitter so replicas spread out) the next verification starts a refresh in the background and goes on with
// the keys it has, so a key Entra stopped publishing stops verifying within the interval (plus one fetch).
// On demand: a token that names an unknown `kid` refetches the key set at once, and waits for it, unless a
// fetch started less than `minRefreshIntervalMs` ago (10 s), so a newly published key is accepted within
// seconds while any number of unknown kids cost at most one fetch per short interval; concurrent ones
// share one fetch. The discovery document is reread with the keys once it is `maxAgeMs` old (12 h). A
// failed refresh keeps the last good keys (and is retried no sooner than the short interval); only when
// there are none yet does verification fail, with a 503 and Retry-After, and the next attempt waits
// `retryAfterFailureMs`.
//
// Not jose's createRemoteJWKSet: it reads Date.now() (not the injected clock), blocks verification on a
// stale key set and fails it when that refresh fails, and knows nothing of the discovery document, the
// keys' own issuer or our key-size floor.
import { createPublicKey, type KeyObject } from 'node:crypto'
import type { Clock } from '../clock.ts'
import { issuerTemplate, type TokenVersion } from './claims.ts'
import { TokenUnknownKey, shown, signingKeysUnavailable } from './errors.ts'

export type FetchJson = (url: string) => Promise<unknown>

/** The part of a (pino) logger that key refresh failures are reported to. */
export interface KeyLogger {
  warn: (obj: Record<string, unknown>, msg: string) => void
}

export interface SigningKey {
  kid: string
  /** SPKI PEM of the RSA public key, as @fastify/jwt's verifier takes it. */
  pem: string
  /** The issuer (or `{tenantid}` template) the key is published for, when the key set says. */
  issuer?: string
}

export interface KeySourceOptions {
  discoveryUrl: string
  homeTenantId: string
  fetchJson: FetchJson
  clock: Clock
  /** The scheduled refresh: keys this old (less up to 10 % of jitter) are refetched in the background. */
  refreshIntervalMs: number
  /** Fetches (on an unknown kid, or a scheduled or failed refresh) start no sooner than this after the last. */
  minRefreshIntervalMs: number
  /** The discovery document this old is reread with the next key refresh. */
  maxAgeMs: number
  retryAfterFailureMs: number
  logger?: KeyLogger
  /** [0, 1): where in the jitter range each scheduled refresh falls. Default Math.random. */
  random?: () => number
}

export interface KeySourceStats {
  discoveryFetches: number
  jwksFetches: number
  failedRefreshes: number
  keys: number
  /** When the keys in use were fetched (the fetch's start), ms since the epoch by the injected clock; 0: never. */
  loadedAt: number
  /** From when the next verification refreshes them in the background; 0: not loaded yet. */
  refreshDueAt: number
}

interface Discovery {
  template: string
  jwksUri: string
}

const noop = (): void => {}

/** The scheduled refresh falls between 90 % and 100 % of the interval: replicas spread out, none is late. */
const JITTER = 0.1

/** One discovery document and the key set it names. */
export class KeySource {
  private doc?: Discovery
  private docLoadedAt = 0
  private keys?: Map<string, SigningKey>
  private loadedAt = 0
  private refreshDueAt = 0
  private lastAttemptAt?: number
  private lastError?: unknown
  private inflight?: Promise<void>
  private readonly counts = { discoveryFetches: 0, jwksFetches: 0, failedRefreshes: 0 }

  constructor (private readonly options: KeySourceOptions) {}

  /** The discovery document's issuer, as a `{tenantid}` template. */
  async issuerTemplate (): Promise<string> {
    await this.ensureLoaded()
    return (this.doc as Discovery).template
  }

  /**
   * The key for `kid`. An unknown one waits for the refresh in progress, or refetches the key set now
   * unless a fetch started within the short interval.
   */
  async key (kid: string): Promise<SigningKey> {
    await this.ensureLoaded()
    this.refreshWhenDue()
    const known = this.keys?.get(kid)
    if (known !== undefined) return known
    if (this.inflight !== undefined) await this.inflight.catch(noop)
    else if (this.mayFetch()) await this.refresh(false).catch(noop)
    const fetched = this.keys?.get(kid)
    if (fetched === undefined) throw new TokenUnknownKey(shown(kid))
    return fetched
  }

  /**
   * Whether `kid` is in the current key set (a cached verification stays good only while it is). Starts
   * the scheduled refresh when it is due, so cached verifications, too, end soon after their key is retired.
   */
  has (kid: string): boolean {
    this.refreshWhenDue()
    return this.keys?.has(kid) === true
  }

  /** Resolves once no fetch is in progress (a background refresh included). */
  async settled (): Promise<void> {
    while (this.inflight !== undefined) await this.inflight.catch(noop)
  }

  /** Loads the document and keys if they are not loaded yet. */
  async ensureLoaded (): Promise<void> {
    if (this.keys !== undefined) return
    if (this.inflight !== undefined) return await this.inflight
    const since = this.lastAttemptAt === undefined ? Infinity : this.options.clock.now() - this.lastAttemptAt
    if (since < this.options.retryAfterFailureMs) throw signingKeysUnavailable(this.options.retryAfterFailureMs - since, this.lastError)
    return await this.refresh(true)
  }

  stats (): KeySourceStats {
    return { ...this.counts, keys: this.keys?.size ?? 0, loadedAt: this.loadedAt, refreshDueAt: this.refreshDueAt }
  }

  /** The flood protection: no fetch within the short interval after the last one started. */
  private mayFetch (): boolean {
    return this.lastAttemptAt === undefined || this.options.clock.now() - this.lastAttemptAt >= this.options.minRefreshIntervalMs
  }

  /** The scheduled refresh, in the background: the verification that notices it is due does not wait for it. */
  private refreshWhenDue (): void {
    if (this.keys === undefined || this.inflight !== undefined || this.options.clock.now() < this.refreshDueAt || !this.mayFetch()) return
    this.refresh(false).catch(noop)
  }

  /**
   * One fetch of the key set (and of the discovery document when `full`, not loaded, or `maxAgeMs` old),
   * shared by concurrent callers.
   */
  private async refresh (full: boolean): Promise<void> {
    const startedAt = this.options.clock.now()
    this.lastAttemptAt = startedAt
    const run = async (): Promise<void> => {
      try {
        if (full || this.doc === undefined || startedAt - this.docLoadedAt >= this.options.maxAgeMs) {
          this.counts.discoveryFetches++
          this.doc = parseDiscovery(await this.options.fetchJson(this.options.discoveryUrl), this.options.homeTenantId)
          this.docLoadedAt = startedAt
        }
        this.counts.jwksFetches++
        this.keys = parseKeySet(await this.options.fetchJson(this.doc.jwksUri))
        // Due from when the fetch started: the keys are never older than the interval when it comes round.
        this.loadedAt = startedAt
        this.refreshDueAt = startedAt + Math.round(this.options.refreshIntervalMs * (1 - JITTER * (this.options.random ?? Math.random)()))
        this.lastError = undefined
      } catch (err) {
        this.counts.failedRefreshes++
        this.lastError = err
        this.options.logger?.warn({ err, discoveryUrl: this.options.discoveryUrl, keptKeys: this.keys?.size ?? 0 },
          'Entra signing keys could not be refreshed; the last good keys stay in use')
        throw signingKeysUnavailable(this.options.retryAfterFailureMs, err)
      }
    }
    const inflight = run().finally(() => { this.inflight = undefined })
    this.inflight = inflight
    return await inflight
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

function parseDiscovery (body: unknown, homeTenantId: string): Discovery {
  if (!isObject(body) || typeof body.issuer !== 'string' || typeof body.jwks_uri !== 'string') {
    throw new Error('the discovery document has no issuer and jwks_uri')
  }
  let jwksUri: URL
  try {
    jwksUri = new URL(body.jwks_uri)
  } catch {
    throw new Error(`the discovery document's jwks_uri ${shown(body.jwks_uri)} is not a URL`)
  }
  if (jwksUri.protocol !== 'https:') throw new Error(`the discovery document's jwks_uri ${shown(body.jwks_uri)} is not https`)
  return { template: issuerTemplate(body.issuer, homeTenantId), jwksUri: jwksUri.href }
}

const MIN_MODULUS_BITS = 2048

/** RSA signature keys of at least 2048 bits (Entra's carry no `alg`; one that names another algorithm is skipped). */
function parseKeySet (body: unknown): Map<string, SigningKey> {
  if (!isObject(body) || !Array.isArray(body.keys)) throw new Error('the key set has no keys array')
  const keys = new Map<string, SigningKey>()
  for (const jwk of body.keys) {
    if (!isObject(jwk) || jwk.kty !== 'RSA' || typeof jwk.kid !== 'string' || typeof jwk.n !== 'string' || typeof jwk.e !== 'string') continue
    if ((jwk.use !== undefined && jwk.use !== 'sig') || (jwk.alg !== undefined && jwk.alg !== 'RS256')) continue
    let publicKey: KeyObject
    try {
      publicKey = createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' })
    } catch {
      continue
    }
    // Node takes any modulus and exponent, even a 17-bit modulus or an exponent of 0; Entra's keys are 2048-bit, e = 65537.
    const details = publicKey.asymmetricKeyDetails
    if ((details?.modulusLength ?? 0) < MIN_MODULUS_BITS || (details?.publicExponent ?? 0n) < 3n) continue
    const key: SigningKey = { kid: jwk.kid, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() }
    if (typeof jwk.issuer === 'string' && jwk.issuer !== '') key.issuer = jwk.issuer
    keys.set(jwk.kid, key)
  }
  if (keys.size === 0) throw new Error('the key set has no usable RSA signing key')
  return keys
}

export interface SigningKeysOptions extends Omit<KeySourceOptions, 'discoveryUrl' | 'homeTenantId'> {
  authorityHost: string
  tenantId: string
}

/** The v2 and v1 key sources of the home tenant at the configured authority. */
export class SigningKeys {
  readonly v2: KeySource
  readonly v1: KeySource

  constructor (options: SigningKeysOptions) {
    const base = `${options.authorityHost}/${options.tenantId}`
    const { authorityHost: _host, tenantId: _tenant, ...shared } = options
    const common = { ...shared, homeTenantId: options.tenantId }
    this.v2 = new KeySource({ ...common, discoveryUrl: `${base}/v2.0/.well-known/openid-configuration` })
    this.v1 = new KeySource({ ...common, discoveryUrl: `${base}/.well-known/openid-configuration` })
  }

  source (version: TokenVersion): KeySource {
    return version === 2 ? this.v2 : this.v1
  }

  /** Resolves once neither key set is being fetched. */
  async settled (): Promise<void> {
    await Promise.all([this.v2.settled(), this.v1.settled()])
  }
}
