// What a replica forgets when another one tells it something changed (bus.ts), and when it cannot know
// what it missed. The same entries the replica that made or saw the change forgot (or replaced) itself:
// an ACL after a share; for Entra's changes the resolver's entries, the target's remembered
// materializations and, when groups changed, the account's group names.
import type { FleetMessage } from './bus.ts'

export interface FleetCaches {
  resolver: { forgetPrincipal: (tenantId: string, id: string) => void, forgetGroup: (tenantId: string, id: string) => void, forgetTenant: (tenantId: string) => void }
  /** Every tenant the service serves (a gap forgets them all). */
  tenants: string[]
  target?: { invalidate: (tenantId: string, ids: { principals?: Iterable<string>, groups?: Iterable<string> }) => void, clear: () => void }
  groupNames?: { invalidate: () => void }
  objects?: { forgetAcl: (workspaceId: string, objectType: string, objectId: string) => void, clear: () => void }
}

export function forgetChanged (caches: FleetCaches, message: FleetMessage): void {
  switch (message.kind) {
    case 'acl':
      caches.objects?.forgetAcl(message.workspaceId, message.objectType, message.objectId)
      return
    case 'forget':
      for (const id of message.principals) caches.resolver.forgetPrincipal(message.tenantId, id)
      for (const id of message.groups) caches.resolver.forgetGroup(message.tenantId, id)
      caches.target?.invalidate(message.tenantId, { principals: message.principals, groups: message.groups })
      if (message.groups.length > 0) caches.groupNames?.invalidate()
      return
    case 'forget-tenant':
      caches.resolver.forgetTenant(message.tenantId)
      caches.target?.clear()
  }
}

/** Messages may have been missed: everything another replica's change could have made stale goes. */
export function forgetEverything (caches: FleetCaches): void {
  for (const tenantId of caches.tenants) caches.resolver.forgetTenant(tenantId)
  caches.target?.clear()
  caches.groupNames?.invalidate()
  caches.objects?.clear()
}
