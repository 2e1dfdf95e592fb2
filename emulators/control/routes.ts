// The control API under /_emulator: load or generate tenants, mutate the directory (mutations feed Graph
// delta and change notifications; deletes are soft unless `?permanent=true`, and deleted items can be
// restored), inject faults, read call counts and move the clock. Loopback only.
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type, type Static } from '@sinclair/typebox'
import { type EmulatorContext, newDirectory } from '../context.ts'
import { Directory, DirectoryError, type ObjectKind, type TenantFixture } from '../tenant/model.ts'
import { generateTenant, type GeneratorKnobs } from '../tenant/generator.ts'
import { loopbackOnly } from './loopback.ts'
import { GeneratorKnobsSchema, FaultSpecSchema, UserPatchSchema, GroupCreateSchema, GroupPatchSchema } from './schemas.ts'
import { TenantFixtureSchema, UserFixtureSchema, ServicePrincipalFixtureSchema } from '../tenant/fixture.ts'

const TenantQuery = Type.Object({ tenantId: Type.Optional(Type.String()) })
const DeleteQuery = Type.Object({ tenantId: Type.Optional(Type.String()), permanent: Type.Optional(Type.Boolean()) })
const IdParams = Type.Object({ id: Type.String() })
const MembersBody = Type.Object({
  groupId: Type.String(),
  memberId: Type.Optional(Type.String()),
  memberIds: Type.Optional(Type.Array(Type.String(), { maxItems: 100_000 }))
})

export async function controlRoutes (parent: FastifyInstance, { ctx }: { ctx: EmulatorContext }): Promise<void> {
  await parent.register(async (app) => {
    app.addHook('onRequest', loopbackOnly)
    app.setErrorHandler(async (err, _request, reply) => {
      if (err instanceof DirectoryError) {
        const status = { 'not-found': 404, conflict: 409, invalid: 400 }[err.code]
        return await reply.code(status).send({ error: { code: err.code, message: err.message } })
      }
      const status = (err as { statusCode?: number }).statusCode ?? 500
      return await reply.code(status).send({ error: { code: status === 400 ? 'invalid-request' : 'internal', message: (err as Error).message } })
    })
    const r = app.withTypeProvider<TypeBoxTypeProvider>()

    const tenantOf = (q: Static<typeof TenantQuery>): Directory => {
      const d = ctx.tenants.get((q.tenantId ?? ctx.primaryTenantId).toLowerCase())
      if (d === undefined) throw new DirectoryError('not-found', `tenant '${q.tenantId ?? ''}' is not loaded`)
      return d
    }
    const load = (fixture: TenantFixture, primary: boolean | undefined): Directory => {
      const d = newDirectory(ctx, fixture)
      ctx.tenants.set(d.tenantId, d)
      if (primary === true || ctx.tenants.size === 1) ctx.primaryTenantId = d.tenantId
      return d
    }

    // ---- tenants ----
    r.get('/_emulator/tenant', async () => ({
      primaryTenantId: ctx.primaryTenantId,
      tenants: [...ctx.tenants.values()].map(summary)
    }))
    r.put('/_emulator/tenant', {
      bodyLimit: 1024 * 1024 * 1024,
      schema: { body: TenantFixtureSchema, querystring: Type.Object({ primary: Type.Optional(Type.Boolean()) }) }
    }, async (request) => summary(load(request.body, request.query.primary)))
    r.post('/_emulator/tenant/generate', {
      schema: { body: GeneratorKnobsSchema, querystring: Type.Object({ primary: Type.Optional(Type.Boolean()) }) }
    }, async (request) => {
      let fixture: TenantFixture
      try {
        fixture = generateTenant(request.body as GeneratorKnobs)
      } catch (err) {
        throw new DirectoryError('invalid', (err as Error).message)
      }
      return summary(load(fixture, request.query.primary))
    })
    r.delete('/_emulator/tenant/:id', { schema: { params: IdParams } }, async (request, reply) => {
      const id = request.params.id.toLowerCase()
      if (!ctx.tenants.delete(id)) throw new DirectoryError('not-found', `tenant '${id}' is not loaded`)
      if (ctx.primaryTenantId === id) ctx.primaryTenantId = [...ctx.tenants.keys()][0] ?? ''
      return await reply.code(204).send()
    })

    // ---- directory mutations ----
    r.post('/_emulator/tenant/members', { schema: { body: MembersBody, querystring: TenantQuery } }, async (request) => {
      const d = tenantOf(request.query)
      const ids = memberIdsOf(request.body)
      return { groupId: request.body.groupId, added: d.addMembers(request.body.groupId, ids) }
    })
    r.delete('/_emulator/tenant/members', { schema: { body: MembersBody, querystring: TenantQuery } }, async (request) => {
      const d = tenantOf(request.query)
      const ids = memberIdsOf(request.body)
      return { groupId: request.body.groupId, removed: d.removeMembers(request.body.groupId, ids) }
    })
    r.post('/_emulator/tenant/users', { schema: { body: UserFixtureSchema, querystring: TenantQuery } },
      async (request, reply) => await created(reply, tenantOf(request.query).addUser(request.body)))
    r.post('/_emulator/tenant/groups', { schema: { body: GroupCreateSchema, querystring: TenantQuery } },
      async (request, reply) => await created(reply, tenantOf(request.query).addGroup(request.body)))
    r.post('/_emulator/tenant/servicePrincipals', { schema: { body: ServicePrincipalFixtureSchema, querystring: TenantQuery } },
      async (request, reply) => await created(reply, tenantOf(request.query).addServicePrincipal(request.body)))
    r.patch('/_emulator/tenant/users/:id', { schema: { params: IdParams, body: UserPatchSchema, querystring: TenantQuery } },
      async (request) => withoutPassword(tenantOf(request.query).updateUser(request.params.id, request.body)))
    r.patch('/_emulator/tenant/servicePrincipals/:id', {
      schema: { params: IdParams, body: Type.Object({ accountEnabled: Type.Optional(Type.Boolean()), displayName: Type.Optional(Type.String()) }, { additionalProperties: false }), querystring: TenantQuery }
    }, async (request) => tenantOf(request.query).updateServicePrincipal(request.params.id, request.body))
    r.patch('/_emulator/tenant/groups/:id', { schema: { params: IdParams, body: GroupPatchSchema, querystring: TenantQuery } },
      async (request) => tenantOf(request.query).updateGroup(request.params.id, request.body))
    for (const kind of ['users', 'groups', 'servicePrincipals'] as const) {
      const expected: ObjectKind = ({ users: 'user', groups: 'group', servicePrincipals: 'servicePrincipal' } as const)[kind]
      // Checked against the written state (with a replication lag, readers may not see it yet). A
      // soft-deleted object is found only for a permanent delete (a purge).
      r.delete(`/_emulator/tenant/${kind}/:id`, { schema: { params: IdParams, querystring: DeleteQuery } }, async (request, reply) => {
        tenantOf(request.query).delete(request.params.id, { permanent: request.query.permanent === true, kind: expected })
        return await reply.code(204).send()
      })
      r.post(`/_emulator/tenant/${kind}/:id/restore`, { schema: { params: IdParams, querystring: TenantQuery } },
        async (request) => withoutPassword(tenantOf(request.query).restore(request.params.id, expected).object))
    }
    r.get('/_emulator/tenant/deletedItems', { schema: { querystring: TenantQuery } }, async (request) => ({
      value: [...tenantOf(request.query).deleted.values()].sort((a, b) => a.deletedAt - b.deletedAt).map(item => ({
        id: item.object.id,
        kind: item.kind,
        displayName: item.object.displayName,
        deletedDateTime: new Date(item.deletedAt).toISOString(),
        purgeDateTime: new Date(Directory.purgeTime(item)).toISOString(),
        memberOf: [...item.parents].sort(),
        ...(item.kind === 'group' ? { members: [...item.members].sort() } : {})
      }))
    }))

    // ---- faults, calls, clock ----
    r.get('/_emulator/faults', async () => ({ faults: ctx.faults.list() }))
    r.post('/_emulator/faults', { schema: { body: Type.Union([FaultSpecSchema, Type.Array(FaultSpecSchema, { maxItems: 100 })]) } }, async (request, reply) => {
      const specs = Array.isArray(request.body) ? request.body : [request.body]
      return await reply.code(201).send({ faults: specs.map(s => ctx.faults.add(s)) })
    })
    r.delete('/_emulator/faults', async () => ({ removed: ctx.faults.remove() }))
    r.delete('/_emulator/faults/:id', { schema: { params: IdParams } }, async (request) => {
      const removed = ctx.faults.remove(request.params.id)
      if (removed === 0) throw new DirectoryError('not-found', `fault '${request.params.id}' does not exist`)
      return { removed }
    })
    r.get('/_emulator/calls', async () => ctx.calls.snapshot())
    r.delete('/_emulator/calls', async (_request, reply) => {
      ctx.calls.reset()
      return await reply.code(204).send()
    })
    r.get('/_emulator/clock', async () => clockState(ctx))
    r.post('/_emulator/clock', { schema: { body: Type.Object({ advanceSeconds: Type.Number({ minimum: 0, maximum: 10 * 365 * 86400 }) }) } }, async (request) => {
      ctx.clock.advance(request.body.advanceSeconds * 1000)
      return clockState(ctx)
    })
    r.delete('/_emulator/clock', async () => {
      ctx.clock.reset()
      return clockState(ctx)
    })
  })
}

function memberIdsOf (body: Static<typeof MembersBody>): string[] {
  const ids = [...(body.memberId !== undefined ? [body.memberId] : []), ...(body.memberIds ?? [])]
  if (ids.length === 0) throw new DirectoryError('invalid', 'give memberId or memberIds')
  return ids
}

function summary (d: Directory): Record<string, unknown> {
  return {
    tenantId: d.tenantId,
    domain: d.domain,
    users: d.users.size,
    groups: d.groups.size,
    servicePrincipals: d.servicePrincipals.size,
    applications: d.applications.size
  }
}

function withoutPassword<T extends object> (object: T): Omit<T, 'password'> {
  const { password: _password, ...rest } = object as T & { password?: string }
  return rest
}

async function created (reply: FastifyReply, object: object): Promise<unknown> {
  return await reply.code(201).send(withoutPassword(object))
}

function clockState (ctx: EmulatorContext): { now: string, offsetSeconds: number } {
  return { now: new Date(ctx.clock.now()).toISOString(), offsetSeconds: ctx.clock.offset / 1000 }
}
