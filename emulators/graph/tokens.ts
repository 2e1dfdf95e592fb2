// Opaque continuation tokens ($skiptoken, $deltatoken): base64url(JSON) + "." + HMAC-SHA256, keyed per
// emulator instance, so a client can only replay what it was given: a tampered or made-up token fails.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

export class TokenCodec {
  private readonly key: Buffer

  constructor (key: Buffer = randomBytes(32)) {
    this.key = key
  }

  encode (state: object): string {
    const body = Buffer.from(JSON.stringify(state)).toString('base64url')
    return `${body}.${this.mac(body)}`
  }

  /** The state, or undefined when the token is malformed or was not issued by this codec. */
  decode (token: string): Record<string, unknown> | undefined {
    const dot = token.indexOf('.')
    if (dot <= 0) return undefined
    const body = token.slice(0, dot)
    const mac = Buffer.from(token.slice(dot + 1))
    const expected = Buffer.from(this.mac(body))
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return undefined
    try {
      const state: unknown = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'))
      return typeof state === 'object' && state !== null && !Array.isArray(state) ? state as Record<string, unknown> : undefined
    } catch {
      return undefined
    }
  }

  private mac (body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url')
  }
}
