// Entra's token-signing keys, from the configured authority only: the home tenant's v2 and v1 discovery
// documents (a token's `ver` picks one), then the `jwks_uri` each names. A token never decides where keys
// come from, so a forged `iss` cannot make the service fetch anything (no SSRF).
//
// Refresh policy (after Microsoft.IdentityModel's ConfigurationManager): keys are refetched when a token
// names an unknown `kid`, at most once per `refreshIntervalMs` (5 min), and in the background once they
// are `maxAgeMs` old (12 h). A failed refresh keeps the last good keys; only when there are none yet does
// verification fail, with a 503 and Retry-After, and the next attempt waits `retryAfterFailureMs`.
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
  refreshIntervalMs: number
  maxAgeMs: number
  retryAfterFailureMs: number
  logger?: KeyLogger
}

export interface KeySourceStats {
  discoveryFetches: number
  jwksFetches: number
  failedRefreshes: number
  keys: number
  /** When the keys were last loaded, ms since the epoch (by the injected clock); 0: never. */
  loadedAt: number
}

interface Discovery {
  template: string
  jwksUri: string
}

const noop = (): void => {}

/** One discovery document and the key set it names. */
export class KeySource {
  private doc?: Discovery
  private keys?: Map<string, SigningKey>
  private loadedAt = 0
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

  /** The key for `kid`; an unknown one refetches the key set unless that happened within the interval. */
  async key (kid: string): Promise<SigningKey> {
    await this.ensureLoaded()
    this.refreshWhenOld()
    const known = this.keys?.get(kid)
    if (known !== undefined) return known
    if (this.inflight !== undefined) await this.inflight.catch(noop)
    else if (this.mayRefetch()) await this.refresh(false).catch(noop)
    const fetched = this.keys?.get(kid)
    if (fetched === undefined) throw new TokenUnknownKey(shown(kid))
    return fetched
  }

  /** Whether `kid` is in the current key set (a cached verification stays good only while it is). */
  has (kid: string): boolean {
    return this.keys?.has(kid) === true
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
    return { ...this.counts, keys: this.keys?.size ?? 0, loadedAt: this.loadedAt }
  }

  private mayRefetch (): boolean {
    return this.lastAttemptAt === undefined || this.options.clock.now() - this.lastAttemptAt >= this.options.refreshIntervalMs
  }

  private refreshWhenOld (): void {
    if (this.inflight === undefined && this.options.clock.now() - this.loadedAt >= this.options.maxAgeMs && this.mayRefetch()) {
      this.refresh(true).catch(noop)
    }
  }

  /** One fetch of the key set (and of the discovery document when `full` or not loaded), shared by concurrent callers. */
  private async refresh (full: boolean): Promise<void> {
    this.lastAttemptAt = this.options.clock.now()
    const run = async (): Promise<void> => {
      try {
        if (full || this.doc === undefined) {
          this.counts.discoveryFetches++
          this.doc = parseDiscovery(await this.options.fetchJson(this.options.discoveryUrl), this.options.homeTenantId)
        }
        this.counts.jwksFetches++
        this.keys = parseKeySet(await this.options.fetchJson(this.doc.jwksUri))
        this.loadedAt = this.options.clock.now()
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
    const common = { homeTenantId: options.tenantId, fetchJson: options.fetchJson, clock: options.clock, refreshIntervalMs: options.refreshIntervalMs, maxAgeMs: options.maxAgeMs, retryAfterFailureMs: options.retryAfterFailureMs, logger: options.logger }
    this.v2 = new KeySource({ ...common, discoveryUrl: `${base}/v2.0/.well-known/openid-configuration` })
    this.v1 = new KeySource({ ...common, discoveryUrl: `${base}/.well-known/openid-configuration` })
  }

  source (version: TokenVersion): KeySource {
    return version === 2 ? this.v2 : this.v1
  }
}
