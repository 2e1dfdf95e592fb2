// Entra's token-signing keys: RSA 2048 with a self-signed x5c, `kid == x5t`, no `alg` in the JWK, several
// published at once, and rotation in three scripted steps: publish a next key, switch signing to it,
// retire the keys that are no longer used. Every tenant is signed by the same keys, as in Entra.
import { SignJWT, exportJWK, jwtVerify, decodeProtectedHeader, type JWK, type JWTPayload } from 'jose'
import { selfSigned, thumbprints } from '../x509.ts'

export type KeyState = 'next' | 'current' | 'previous'

export interface SigningKey {
  kid: string
  privateKey: CryptoKey
  publicKey: CryptoKey
  /** The public JWK exactly as the keys endpoint publishes it (without `issuer`, added per endpoint). */
  jwk: JWK & { kid: string, x5t: string, x5c: string[] }
  /** PEM of the public key, for the HS256 key-confusion break. */
  publicPem: string
  state: KeyState
}

async function newKey (state: KeyState): Promise<SigningKey> {
  const cert = await selfSigned('accounts.accesscontrol.windows.net', 2)
  const { x5t } = thumbprints(cert.der)
  const pub = await exportJWK(cert.keys.publicKey)
  const spki = Buffer.from(await crypto.subtle.exportKey('spki', cert.keys.publicKey)).toString('base64')
  return {
    kid: x5t,
    privateKey: cert.keys.privateKey,
    publicKey: cert.keys.publicKey,
    jwk: { kty: 'RSA', use: 'sig', kid: x5t, x5t, n: pub.n, e: pub.e, x5c: [cert.der.toString('base64')] },
    publicPem: `-----BEGIN PUBLIC KEY-----\n${spki.replace(/(.{64})/g, '$1\n').trimEnd()}\n-----END PUBLIC KEY-----\n`,
    state
  }
}

export class KeyStore {
  private keys: SigningKey[]
  /** Never published: what an attacker (or the `unknown-kid` break) signs with. */
  readonly foreign: SigningKey

  private constructor (keys: SigningKey[], foreign: SigningKey) {
    this.keys = keys
    this.foreign = foreign
  }

  /** Entra publishes several keys at once; start with one signing key and two more published. */
  static async create (published = 3): Promise<KeyStore> {
    const keys = await Promise.all(Array.from({ length: published }, async (_, i) => await newKey(i === 0 ? 'current' : 'previous')))
    return new KeyStore(keys, await newKey('next'))
  }

  get current (): SigningKey {
    return this.keys.find(k => k.state === 'current') as SigningKey
  }

  get published (): SigningKey[] {
    return [...this.keys]
  }

  byKid (kid: string): SigningKey | undefined {
    return this.keys.find(k => k.kid === kid)
  }

  /** Step 1 of a rotation: publish a key that does not sign yet (clients that refresh now will know it). */
  async publishNext (): Promise<SigningKey> {
    const existing = this.keys.find(k => k.state === 'next')
    if (existing !== undefined) return existing
    const key = await newKey('next')
    this.keys.push(key)
    return key
  }

  /** Step 2: sign with the next key; the old signing key stays published so its tokens still verify. */
  switchToNext (): SigningKey {
    const next = this.keys.find(k => k.state === 'next')
    if (next === undefined) throw new Error('no next key is published: publish one first')
    this.current.state = 'previous'
    next.state = 'current'
    return next
  }

  /** Step 3: stop publishing every key that no longer signs; tokens signed by them stop verifying. */
  retirePrevious (): SigningKey[] {
    const retired = this.keys.filter(k => k.state === 'previous')
    this.keys = this.keys.filter(k => k.state !== 'previous')
    return retired
  }

  async sign (payload: JWTPayload, opts: { key?: SigningKey, header?: Record<string, unknown> } = {}): Promise<string> {
    const key = opts.key ?? this.current
    return await new SignJWT(payload)
      .setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: key.kid, ...opts.header })
      .sign(key.privateKey)
  }

  /**
   * Verifies a token signed by a published key: RS256 only, signature, `exp`/`nbf` against `nowSeconds`
   * with Entra's 5 minutes of skew. Issuer and audience are the caller's to check.
   */
  async verify (token: string, nowSeconds: number): Promise<JWTPayload> {
    const { kid, alg } = decodeProtectedHeader(token)
    if (alg !== 'RS256') throw new Error(`signing algorithm '${String(alg)}' is not accepted`)
    const key = typeof kid === 'string' ? this.byKid(kid) : undefined
    if (key === undefined) throw new Error('signing key is not published')
    const { payload } = await jwtVerify(token, key.publicKey, { algorithms: ['RS256'], currentDate: new Date(nowSeconds * 1000), clockTolerance: 300 })
    return payload
  }
}
