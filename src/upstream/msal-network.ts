// msal-node's `system.networkClient` over the upstream client, so the STS calls msal makes (authority
// metadata, the token endpoint) get the same CA, keep-alive, timeouts, retries, rate budget and metrics as
// every other outbound call.
//
// msal replaces any error its network module throws by a bare `network_error` unless the error is one of
// its own AuthErrors; UpstreamAuthError is one, and carries the upstream error (with its status and
// Retry-After) to the caller of `acquireTokenByClientCredential`.
import { AuthError, type INetworkModule, type NetworkRequestOptions, type NetworkResponse } from '@azure/msal-node'
import type { UpstreamClient, UpstreamResponse } from './client.ts'
import { UpstreamError } from './errors.ts'

export class UpstreamAuthError extends AuthError {
  constructor (readonly upstreamError: UpstreamError) {
    super('upstream_error', '', upstreamError.message)
    this.name = 'UpstreamAuthError'
    this.cause = upstreamError
    // AuthError resets the prototype in its constructor.
    Object.setPrototypeOf(this, UpstreamAuthError.prototype)
  }
}

/** Builds the network module. Token requests (POST) are retried: a client-credentials grant is safe to repeat. */
export function msalNetworkModule (client: UpstreamClient): INetworkModule {
  const send = async <T>(method: 'GET' | 'POST', url: string, options: NetworkRequestOptions | undefined, timeout?: number): Promise<NetworkResponse<T>> => {
    let response: UpstreamResponse
    try {
      response = await client.request({
        method,
        url,
        headers: { ...options?.headers },
        ...(method === 'POST' ? { body: options?.body ?? '', idempotent: true } : {}),
        ...(timeout !== undefined && timeout > 0 ? { timeoutMs: timeout } : {})
      })
    } catch (err) {
      if (err instanceof UpstreamError) throw new UpstreamAuthError(err)
      throw err
    }
    let body: T
    try {
      body = JSON.parse(response.text) as T
    } catch (err) {
      const route = client.routeOf(url)
      throw new UpstreamAuthError(new UpstreamError(`${client.name} ${method} ${route}: HTTP ${response.status} with a body that is not JSON`, client.name, method, route, { cause: err }))
    }
    return { status: response.status, headers: response.headers, body }
  }
  return {
    sendGetRequestAsync: async <T>(url: string, options?: NetworkRequestOptions, timeout?: number) => await send<T>('GET', url, options, timeout),
    sendPostRequestAsync: async <T>(url: string, options?: NetworkRequestOptions) => await send<T>('POST', url, options)
  }
}
