// Shared by the auth tests (not a test itself): the emulator's token factory, a fetch-based `fetchJson`
// (NODE_EXTRA_CA_CERTS makes global fetch trust the emulators' CA), a movable clock, a verifier built
// against the emulators, and the counts of discovery and key-set fetches the emulators saw.
import type { Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { T } from './sts.ts'
import type { EmulatorContext } from '../../emulators/context.ts'
import { createTokenVerifier, type TokenVerifier, type TokenVerifierOptions } from '../../src/auth/verifier.ts'
import type { Caller } from '../../src/auth/caller.ts'

export const API_URI = `api://${T.resolverAppId}`
/** The resolver API as its operator would configure it: client id and App ID URI. */
export const AUDIENCES = [T.resolverAppId, API_URI]

export type Claims = Record<string, unknown>

export interface Minted {
  token: string
  claims: Claims
}

/** `POST /_emulator/tokens`: a token for any principal, optionally broken. */
export async function mint (origin: string, body: Record<string, unknown>): Promise<Minted> {
  const res = await fetch(`${origin}/_emulator/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const json = await res.json() as { access_token: string, claims: Claims }
  if (res.status !== 200) throw new Error(`token factory: ${res.status} ${JSON.stringify(json)}`)
  return { token: json.access_token, claims: json.claims }
}

/** What the composition root will plug the upstream client into: GET, JSON, throw unless 2xx. */
export async function fetchJson (url: string): Promise<unknown> {
  const res = await fetch(url)
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`)
  return await res.json()
}

/** The injected clock: real time plus an offset the test moves. */
export class TestClock {
  private offset = 0
  now (): number {
    return Date.now() + this.offset
  }

  advance (ms: number): void {
    this.offset += ms
  }
}

export const MINUTE = 60_000

export async function verifierFor (t: Test, origin: string, options: Partial<TokenVerifierOptions> = {}): Promise<TokenVerifier> {
  const verifier = await createTokenVerifier({ authorityHost: origin, tenantId: T.tenantId, audiences: AUDIENCES, fetchJson, ...options })
  t.teardown(async () => await verifier.close())
  return verifier
}

/** Fetches of discovery documents and key sets, per version, as the emulators counted them. */
export function keyFetches (ctx: EmulatorContext): { discoveryV2: number, jwksV2: number, discoveryV1: number, jwksV1: number, total: number } {
  const { routes, total } = ctx.calls.snapshot()
  return {
    discoveryV2: routes['GET /:tenant/v2.0/.well-known/openid-configuration'] ?? 0,
    jwksV2: routes['GET /:tenant/discovery/v2.0/keys'] ?? 0,
    discoveryV1: routes['GET /:tenant/.well-known/openid-configuration'] ?? 0,
    jwksV1: routes['GET /:tenant/discovery/keys'] ?? 0,
    total
  }
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

export function decodePart (token: string, index: 0 | 1): Claims {
  return JSON.parse(Buffer.from(token.split('.')[index] as string, 'base64url').toString()) as Claims
}

/** A real token with its header or payload changed and the original signature kept (so it no longer verifies). */
export function tamper (token: string, change: { header?: Claims, payload?: Claims }): string {
  const [h, p, s] = token.split('.') as [string, string, string]
  const header = change.header === undefined ? h : b64({ ...decodePart(token, 0), ...change.header })
  const payload = change.payload === undefined ? p : b64({ ...decodePart(token, 1), ...change.payload })
  return `${header}.${payload}.${s}`
}

/** A token from nobody: the given header and payload, and random bytes as the signature. */
export function forge (header: Claims, payload: Claims): string {
  return `${b64(header)}.${b64(payload)}.${randomBytes(256).toString('base64url')}`
}

export const randomKid = (): string => randomBytes(20).toString('base64url')

export type Refusal = Error & { code: string, statusCode: number, headers?: Record<string, string> }

/** Asserts that `promise` is refused with `code` (and, unless given otherwise, HTTP 401); returns the error. */
export async function refused (t: Test, promise: Promise<Caller>, code: string, status = 401): Promise<Refusal> {
  let caller: Caller
  try {
    caller = await promise
  } catch (err) {
    const e = err as Refusal
    t.equal(e.code, code, `${code}: ${e.message}`)
    t.equal(e.statusCode, status, `HTTP ${status}`)
    return e
  }
  t.fail(`expected ${code}, got a caller`, { caller })
  return Object.assign(new Error('not refused'), { code: 'NONE', statusCode: 0 })
}
