// Finding the object a Graph URL names, with Graph's errors: users by id or userPrincipalName (a
// non-GUID is a UPN, so an unknown one is a 404), groups and directory objects by GUID only (a malformed
// one is a 400), service principals by GUID or by the `(appId='…')` alternate key, which the emulator's
// URL rewriter turns into an `appId=…` path segment.
import { type Directory, type DirectoryObject, type ObjectKind, isGuid } from '../tenant/model.ts'
import { invalidObjectId, resourceNotFound } from './errors.ts'

export type EntitySet = 'users' | 'groups' | 'servicePrincipals' | 'directoryObjects'

export const APP_ID_KEY = 'appId='

export function lookup (tenant: Directory, set: EntitySet, key: string): DirectoryObject {
  switch (set) {
    case 'users': {
      const user = tenant.user(key)
      if (user === undefined) throw resourceNotFound(key)
      return { kind: 'user', object: user }
    }
    case 'servicePrincipals': {
      if (key.startsWith(APP_ID_KEY)) {
        const appId = key.slice(APP_ID_KEY.length)
        const sp = tenant.servicePrincipalByAppId(appId)
        if (sp === undefined) throw resourceNotFound(appId)
        return { kind: 'servicePrincipal', object: sp }
      }
      return byGuid(tenant, key, 'servicePrincipal')
    }
    case 'groups':
      return byGuid(tenant, key, 'group')
    case 'directoryObjects':
      return byGuid(tenant, key, undefined)
  }
}

function byGuid (tenant: Directory, id: string, kind: ObjectKind | undefined): DirectoryObject {
  if (!isGuid(id)) throw invalidObjectId(id)
  const found = tenant.get(id)
  if (found === undefined || (kind !== undefined && found.kind !== kind)) throw resourceNotFound(id)
  return found
}

export const KIND_OF_SET: Record<Exclude<EntitySet, 'directoryObjects'>, ObjectKind> = { users: 'user', groups: 'group', servicePrincipals: 'servicePrincipal' }

/**
 * Rewrites `/v1.0/servicePrincipals(appId='…')…` (quotes and parentheses possibly percent-encoded) to
 * `/v1.0/servicePrincipals/appId=…`, so the alternate key is served by every servicePrincipals route.
 */
export function rewriteAppIdKey (url: string): string {
  const m = /^(\/v1\.0\/servicePrincipals)(?:\(|%28)appId=(?:'|%27)(.*?)(?:'|%27)(?:\)|%29)(.*)$/is.exec(url)
  if (m === null) return url
  let appId = m[2] as string
  try {
    appId = decodeURIComponent(appId)
  } catch {}
  return `${m[1] as string}/${APP_ID_KEY}${encodeURIComponent(appId)}${m[3] as string}`
}

/** Rewrites the tenant-prefixed alias `/v1.0/{tenantId}/…` to `/v1.0/…` (the tenant is checked against the token). */
export function rewriteTenantPrefix (url: string): string {
  return url.replace(/^\/v1\.0\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?=\/|\?|$)/i, '/v1.0')
}

/** `/v1.0/users/delta()` (the function-call form SDKs send, optionally namespace-qualified) → `/v1.0/users/delta`. */
export function rewriteDeltaFunction (url: string): string {
  return url.replace(/^(\/v1\.0\/(?:users|groups|servicePrincipals)\/)(?:microsoft\.graph\.)?delta(?:\(\)|%28%29)(?=\?|$)/i, '$1delta')
}
