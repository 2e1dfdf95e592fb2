// Graph's subscription routes for users and groups: POST /subscriptions (with the validation
// handshake), GET /subscriptions, GET/PATCH/DELETE /subscriptions/{id} and POST
// /subscriptions/{id}/reauthorize. A subscription belongs to the application that created it, in the
// token's tenant; other applications find no such subscription. Delivery lives in notifications.ts.
import { randomUUID } from 'node:crypto'
import { isGuid } from '../tenant/model.ts'
import { FAMILY_ROLES, holdsRole } from './auth.ts'
import { GraphError, insufficientPrivileges, resourceNotFound } from './errors.ts'
import { type Call, type RouteDef, jsonBody } from './http.ts'
import { contextUrl } from './odata.ts'
import {
  type ChangeType, MAX_CLIENT_STATE, MAX_EXPIRATION_MS, MIN_EXPIRATION_MS, type NotificationHub, QUOTA_PER_APP_AND_TENANT, QUOTA_PER_TENANT,
  type Subscription, ValidationFailed, publicSubscription
} from './notifications.ts'

// [UNCONF] The error codes of the subscription service are not in the pages read: body problems are
// 400 `InvalidRequest`, a failed handshake 400 `ValidationError`, a quota 403 `ExtensionError`.
const invalid = (message: string): GraphError => new GraphError(400, 'InvalidRequest', message)

const LOOPBACK_HOST = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\]|::1)$/i

/**
 * Graph requires HTTPS. The emulator also takes `http://` for a loopback host (localhost, 127.x, ::1)
 * so a test's webhook need not serve TLS; anything else must be https.
 */
function webhookUrl (raw: unknown, name: string): string {
  if (typeof raw !== 'string' || raw === '') throw invalid(`'${name}' is required.`)
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw invalid(`'${name}' is not an absolute URL.`)
  }
  const loopback = LOOPBACK_HOST.test(url.hostname)
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) throw invalid(`The ${name} must be HTTPS.`)
  return raw
}

/** `/users`, `users/{id}`, `/groups`, `/groups/{id}`, `/groups/{id}/members` (case-insensitive set names). */
function parseResource (call: Call, raw: unknown): Subscription['target'] {
  if (typeof raw !== 'string' || raw.trim() === '') throw invalid('\'resource\' is required.')
  const m = /^\/?(users|groups)(?:\/([^/?]+)(\/members)?)?\/?$/i.exec(raw.trim())
  if (m === null) throw invalid(`Resource '${raw}' is not supported for change notifications of users and groups.`)
  const set = (m[1] as string).toLowerCase() as 'users' | 'groups'
  const members = m[3] !== undefined
  if (members && set !== 'groups') throw invalid(`Resource '${raw}' is not supported for change notifications of users and groups.`)
  let id: string | null = null
  if (m[2] !== undefined) {
    const key = decodeURIComponent(m[2])
    // [UNCONF] An unknown object is refused at creation.
    if (set === 'users') {
      const user = call.tenant.user(key)
      if (user === undefined) throw resourceNotFound(key)
      id = user.id
    } else {
      if (!isGuid(key) || !call.tenant.groups.has(key.toLowerCase())) throw resourceNotFound(key)
      id = key.toLowerCase()
    }
  }
  // Creating a subscription needs read access to the resource (User.Read.All, Group.Read.All…).
  if (!holdsRole(call.caller, FAMILY_ROLES[set])) throw insufficientPrivileges()
  return { set, id, members }
}

/** `updated`, `deleted` or both, comma-separated; users and groups support no other change type. */
function parseChangeType (raw: unknown): { text: string, types: Set<ChangeType> } {
  if (typeof raw !== 'string' || raw.trim() === '') throw invalid('\'changeType\' is required.')
  const types = new Set<ChangeType>()
  for (const part of raw.split(',').map(p => p.trim())) {
    if (part !== 'updated' && part !== 'deleted') throw invalid(`ChangeType '${part}' is not supported for users and groups: use 'updated', 'deleted' or both.`)
    types.add(part)
  }
  return { text: [...types].join(','), types }
}

/** A future time within 41,760 minutes; under 45 minutes is raised to 45. */
function parseExpiration (call: Call, raw: unknown): number {
  if (typeof raw !== 'string' || raw === '') throw invalid('\'expirationDateTime\' is required.')
  const at = Date.parse(raw)
  if (Number.isNaN(at)) throw invalid(`'expirationDateTime' '${raw}' is not a date and time.`)
  const now = call.ctx.clock.now()
  if (at <= now) throw invalid('Subscription expiration must be in the future.')
  if (at - now > MAX_EXPIRATION_MS) throw invalid(`Subscription expiration can only be ${MAX_EXPIRATION_MS / 60_000} minutes in the future.`)
  return Math.max(at, now + MIN_EXPIRATION_MS)
}

function parseClientState (raw: unknown): string | null {
  if (raw === undefined || raw === null) return null
  if (typeof raw !== 'string') throw invalid('\'clientState\' must be a string.')
  if (raw.length > MAX_CLIENT_STATE) throw invalid(`'clientState' is longer than ${MAX_CLIENT_STATE} characters.`)
  return raw
}

async function handshake (hub: NotificationHub, url: string): Promise<void> {
  try {
    await hub.validate(url)
  } catch (err) {
    if (err instanceof ValidationFailed) throw new GraphError(400, 'ValidationError', `Subscription validation request failed. ${err.message}`)
    throw err
  }
}

function entity (call: Call, s: Subscription): Record<string, unknown> {
  return { '@odata.context': contextUrl(call.ctx.origin, 'subscriptions/$entity'), ...publicSubscription(s) }
}

/** The caller's own subscription (another application's is not found). */
function own (call: Call, hub: NotificationHub): Subscription {
  const id = (call.request.params as Record<string, string>).id ?? ''
  const s = hub.get(id)
  if (s === undefined || s.tenantId !== call.tenant.tenantId || s.applicationId !== call.caller.appId) throw resourceNotFound(id)
  return s
}

async function create (call: Call, hub: NotificationHub): Promise<undefined> {
  const body = jsonBody(call.request)
  const { text, types } = parseChangeType(body.changeType)
  const notificationUrl = webhookUrl(body.notificationUrl, 'notificationUrl')
  const lifecycleNotificationUrl = body.lifecycleNotificationUrl === undefined || body.lifecycleNotificationUrl === null
    ? null
    : webhookUrl(body.lifecycleNotificationUrl, 'lifecycleNotificationUrl')
  const target = parseResource(call, body.resource)
  const expiresAt = parseExpiration(call, body.expirationDateTime)
  const clientState = parseClientState(body.clientState)
  const tls = body.latestSupportedTlsVersion ?? 'v1_2'
  if (typeof tls !== 'string' || !['v1_0', 'v1_1', 'v1_2', 'v1_3'].includes(tls)) throw invalid('\'latestSupportedTlsVersion\' must be v1_0, v1_1, v1_2 or v1_3.')
  if (body.includeResourceData === true) throw invalid('Users and groups do not support notifications with resource data.')

  const inTenant = hub.active().filter(s => s.tenantId === call.tenant.tenantId)
  if (inTenant.filter(s => s.applicationId === call.caller.appId).length >= QUOTA_PER_APP_AND_TENANT || inTenant.length >= QUOTA_PER_TENANT) {
    throw new GraphError(403, 'ExtensionError', `The subscription quota is exhausted: at most ${QUOTA_PER_APP_AND_TENANT} subscriptions per application and tenant, ${QUOTA_PER_TENANT} per tenant, for users and groups.`)
  }

  await handshake(hub, notificationUrl)
  if (lifecycleNotificationUrl !== null) await handshake(hub, lifecycleNotificationUrl)

  const s: Subscription = {
    id: randomUUID(),
    tenantId: call.tenant.tenantId,
    applicationId: call.caller.appId,
    creatorId: String(call.caller.token.oid ?? ''),
    resource: String(body.resource),
    target,
    changeType: text,
    changeTypes: types,
    notificationUrl,
    lifecycleNotificationUrl,
    clientState,
    latestSupportedTlsVersion: tls,
    expiresAt,
    reauthorizedFor: null
  }
  hub.add(s)
  await call.reply.code(201).type('application/json').header('location', `${call.ctx.origin}/v1.0/subscriptions/${s.id}`).send(entity(call, s))
  return undefined
}

async function update (call: Call, hub: NotificationHub): Promise<Record<string, unknown>> {
  const s = own(call, hub)
  const body = jsonBody(call.request)
  for (const key of Object.keys(body)) {
    if (key === 'lifecycleNotificationUrl') throw invalid('lifecycleNotificationUrl cannot be changed: create a new subscription.')
    if (key !== 'expirationDateTime' && key !== 'notificationUrl' && key !== '@odata.type') throw invalid(`Property '${key}' cannot be updated: only expirationDateTime and notificationUrl can.`)
  }
  const expiresAt = body.expirationDateTime !== undefined ? parseExpiration(call, body.expirationDateTime) : undefined
  if (body.notificationUrl !== undefined && body.notificationUrl !== s.notificationUrl) {
    const url = webhookUrl(body.notificationUrl, 'notificationUrl')
    await handshake(hub, url)
    s.notificationUrl = url
  }
  if (expiresAt !== undefined) hub.renew(s, expiresAt)
  return entity(call, s)
}

export function subscriptionRoutes (hub: NotificationHub): RouteDef[] {
  return [
    { method: 'POST', url: '/subscriptions', family: 'subscriptions', cost: 1, handler: async call => await create(call, hub) },
    {
      method: 'GET',
      url: '/subscriptions',
      family: 'subscriptions',
      cost: 1,
      handler: call => ({
        '@odata.context': contextUrl(call.ctx.origin, 'subscriptions'),
        value: hub.active().filter(s => s.tenantId === call.tenant.tenantId && s.applicationId === call.caller.appId).map(publicSubscription)
      })
    },
    { method: 'GET', url: '/subscriptions/:id', family: 'subscriptions', cost: 1, handler: call => entity(call, own(call, hub)) },
    { method: 'PATCH', url: '/subscriptions/:id', family: 'subscriptions', cost: 1, handler: async call => await update(call, hub) },
    {
      method: 'DELETE',
      url: '/subscriptions/:id',
      family: 'subscriptions',
      cost: 1,
      handler: async call => {
        hub.remove(own(call, hub).id)
        await call.reply.code(204).send()
        return undefined
      }
    },
    {
      method: 'POST',
      url: '/subscriptions/:id/reauthorize',
      family: 'subscriptions',
      cost: 1,
      handler: async call => {
        hub.reauthorize(own(call, hub))
        await call.reply.code(204).send()
        return undefined
      }
    }
  ]
}
