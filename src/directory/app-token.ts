// App-only Graph tokens with msal-node: one ConfidentialClientApplication per tenant (so msal's own token
// cache is reused), client secret or certificate (SHA-256 thumbprint, so msal signs its assertion with
// PS256 and `x5t#S256`), msal's STS calls going through the upstream client. msal does not coalesce
// concurrent `acquireTokenByClientCredential` calls on an empty cache, so acquisitions are single-flight
// per tenant here.
import { createHash, X509Certificate } from 'node:crypto'
import { AuthError, ConfidentialClientApplication, ServerError, type Configuration, type INetworkModule } from '@azure/msal-node'
import { DirectoryUnavailableError } from './port.ts'
import { DirectoryConfigurationError } from './errors.ts'
import { UpstreamAuthError } from '../upstream/msal-network.ts'
import { UpstreamUnavailableError } from '../upstream/errors.ts'

export type AppCredential =
  | { clientSecret: string }
  | { clientCertificate: { privateKeyPem: string, certificatePem: string } }

/** The credential among the options given: a certificate wins over a secret; neither is an error naming `who`. */
export function appCredential (options: { clientSecret?: string, clientCertificate?: { privateKeyPem: string, certificatePem: string } }, who: string): AppCredential {
  if (options.clientCertificate !== undefined) return { clientCertificate: options.clientCertificate }
  if (options.clientSecret !== undefined && options.clientSecret !== '') return { clientSecret: options.clientSecret }
  throw new TypeError(`${who} needs clientSecret or clientCertificate.`)
}

export interface AppTokenOptions {
  clientId: string
  credential: AppCredential
  /** `https://login.microsoftonline.com` or the emulators' origin. */
  authorityHost: string
  /** The resource's `.default` scope, e.g. `https://graph.microsoft.com/.default`. */
  scope: string
  networkClient: INetworkModule
}

/** STS error codes (OAuth `error`) that mean the app's setup is wrong, not that the STS is unwell. */
const CONFIGURATION_CODES = new Set(['invalid_client', 'unauthorized_client', 'invalid_request', 'invalid_scope', 'invalid_grant', 'invalid_resource'])

/** `tid` values: a GUID or a verified domain name; nothing that could change the authority's path. */
const TENANT = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+)$/i

export function isTenantId (tenantId: string): boolean {
  return TENANT.test(tenantId)
}

export class AppTokens {
  private readonly apps = new Map<string, ConfidentialClientApplication>()
  private readonly inflight = new Map<string, Promise<string>>()
  private readonly memo = new Map<string, { token: string, expiresAt: number }>()
  private readonly auth: Pick<NonNullable<Configuration['auth']>, 'clientSecret' | 'clientCertificate'>
  private readonly knownAuthority: string

  constructor (private readonly options: AppTokenOptions) {
    const { credential } = options
    if ('clientSecret' in credential) {
      this.auth = { clientSecret: credential.clientSecret }
    } else {
      const { privateKeyPem, certificatePem } = credential.clientCertificate
      const thumbprintSha256 = createHash('sha256').update(new X509Certificate(certificatePem).raw).digest('hex')
      this.auth = { clientCertificate: { thumbprintSha256, privateKey: privateKeyPem, x5c: certificatePem } }
    }
    this.knownAuthority = new URL(options.authorityHost).host
  }

  /**
   * A valid access token for the tenant. `rejected`: a token the resource just refused (401); when msal's
   * cache still holds it, a new one is fetched from the STS instead.
   */
  async get (tenantId: string, rejected?: string): Promise<string> {
    // msal's own cache lookup costs about a millisecond of CPU per call (it rebuilds and parses cache
    // keys), which dominates a bulk job's thousands of calls: the last token is kept here while it is
    // valid for five more minutes, the margin msal itself refreshes at.
    const memo = this.memo.get(tenantId.toLowerCase())
    if (memo !== undefined && memo.token !== rejected && memo.expiresAt - Date.now() > 300_000) return memo.token
    const token = await this.acquire(tenantId, false)
    if (rejected === undefined || token !== rejected) return token
    return await this.acquire(tenantId, true)
  }

  private async acquire (tenantId: string, skipCache: boolean): Promise<string> {
    const key = `${tenantId.toLowerCase()}|${String(skipCache)}`
    const running = this.inflight.get(key)
    if (running !== undefined) return await running
    const started = (async () => {
      try {
        const result = await this.app(tenantId).acquireTokenByClientCredential({ scopes: [this.options.scope], skipCache })
        if (result === null || result.accessToken === '') throw new DirectoryUnavailableError(`The STS returned no token for tenant ${tenantId}.`)
        if (result.expiresOn !== null) this.memo.set(tenantId.toLowerCase(), { token: result.accessToken, expiresAt: result.expiresOn.getTime() })
        return result.accessToken
      } catch (err) {
        throw mapTokenError(err, tenantId, this.options.clientId)
      } finally {
        this.inflight.delete(key)
      }
    })()
    this.inflight.set(key, started)
    return await started
  }

  private app (tenantId: string): ConfidentialClientApplication {
    const key = tenantId.toLowerCase()
    let app = this.apps.get(key)
    if (app === undefined) {
      if (!isTenantId(tenantId)) throw new DirectoryConfigurationError(`'${tenantId.slice(0, 64)}' is not a tenant id (a GUID or a domain name).`, { tenantId })
      app = new ConfidentialClientApplication({
        auth: {
          clientId: this.options.clientId,
          authority: `${this.options.authorityHost.replace(/\/+$/, '')}/${tenantId}`,
          // A host msal does not know would otherwise be checked through instance discovery at
          // login.microsoftonline.com.
          knownAuthorities: [this.knownAuthority],
          ...this.auth
        },
        system: {
          networkClient: this.options.networkClient,
          loggerOptions: { piiLoggingEnabled: false, loggerCallback: () => {} }
        }
      })
      this.apps.set(key, app)
    }
    return app
  }
}

function mapTokenError (err: unknown, tenantId: string, clientId: string): Error {
  if (err instanceof DirectoryUnavailableError || err instanceof DirectoryConfigurationError) return err
  if (err instanceof UpstreamAuthError) {
    const upstream = err.upstreamError
    const unavailable = upstream instanceof UpstreamUnavailableError ? upstream : undefined
    return new DirectoryUnavailableError(`Could not get a Graph token for tenant ${tenantId}: ${upstream.message}`, unavailable?.retryAfterSeconds, { cause: upstream, throttled: unavailable?.status === 429 })
  }
  if (err instanceof ServerError) {
    const status = (err as ServerError & { status?: number }).status
    if (status !== undefined && (status >= 500 || status === 429)) {
      return new DirectoryUnavailableError(`The STS failed for tenant ${tenantId} (HTTP ${status}, ${err.errorCode}).`, undefined, { cause: err, throttled: status === 429 })
    }
    if (CONFIGURATION_CODES.has(err.errorCode) || (status !== undefined && status >= 400)) {
      return new DirectoryConfigurationError(
        `The STS refused a token to app ${clientId} in tenant ${tenantId} (${err.errorCode}): check the tenant id, the client id and its secret or certificate. ${firstLine(err.errorMessage)}`,
        { tenantId, ...(status !== undefined ? { status } : {}), upstreamCode: err.errorCode },
        { cause: err }
      )
    }
  }
  if (err instanceof AuthError) {
    // Client configuration errors (a bad certificate or key, an authority msal refuses) and the like.
    return new DirectoryConfigurationError(`msal could not get a token for app ${clientId} in tenant ${tenantId} (${err.errorCode}): ${firstLine(err.errorMessage)}`, { tenantId, upstreamCode: err.errorCode }, { cause: err })
  }
  return new DirectoryUnavailableError(`Could not get a Graph token for tenant ${tenantId}.`, undefined, { cause: err })
}

function firstLine (text: string): string {
  return (text.split(/\r?\n/)[0] ?? '').slice(0, 300)
}
