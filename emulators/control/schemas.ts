// TypeBox schemas of the control API's bodies besides the fixture itself: generator knobs, faults, edits.
import { Type } from '@sinclair/typebox'
import { Guid, GroupFixtureSchema, UserFixtureSchema } from '../tenant/fixture.ts'

export const UserPatchSchema = Type.Partial(Type.Omit(UserFixtureSchema, ['id']), { additionalProperties: false })
export const GroupPatchSchema = Type.Partial(Type.Omit(GroupFixtureSchema, ['id', 'members']), { additionalProperties: false })
export const GroupCreateSchema = Type.Composite([Type.Omit(GroupFixtureSchema, ['members']), Type.Object({ members: Type.Optional(Type.Array(Guid)) })])

const Count = (max: number) => Type.Optional(Type.Integer({ minimum: 0, maximum: max }))
export const GeneratorKnobsSchema = Type.Object({
  seed: Type.Optional(Type.Integer()),
  tenantId: Type.Optional(Guid),
  domain: Type.Optional(Type.String()),
  users: Count(1_000_000),
  groups: Count(500_000),
  depth: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 })),
  fanOut: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  membershipsPerUser: Count(1000),
  servicePrincipals: Count(100_000),
  heavyUsers: Count(1000),
  heavyUserGroups: Count(20_000),
  guests: Count(100_000),
  disabledUsers: Count(100_000)
}, { additionalProperties: false })

export const FaultSpecSchema = Type.Object({
  route: Type.String({ minLength: 1 }),
  method: Type.Optional(Type.String()),
  status: Type.Optional(Type.Integer({ minimum: 100, maximum: 599 })),
  retryAfter: Type.Optional(Type.Union([Type.Number({ minimum: 0 }), Type.String()])),
  latencyMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
  reset: Type.Optional(Type.Boolean()),
  timeout: Type.Optional(Type.Boolean()),
  hangMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
  times: Type.Optional(Type.Integer({ minimum: 1 })),
  skip: Type.Optional(Type.Integer({ minimum: 0 }))
}, { additionalProperties: false })
