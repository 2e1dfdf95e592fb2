// GET /v1/permissions/{objectType}/{objectId} (what can this principal do here, and why) and
// POST /v1/shares (share an object with anyone in the directory).
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Caller } from '../auth/caller.ts'
import { ObjectAccess, type ObjectRef } from '../resolver/object-access.ts'
import { DatabricksNotConfigured } from '../resolver/errors.ts'
import { By, EXAMPLE, EffectivePermissionResult, Name, ObjectIdString, ObjectTypeName, ShareRequest, ShareResult, Strict, WorkspaceId, success } from './schemas.ts'
import { principalBody, principalQuery } from './resolution.ts'
import { checkObjectId } from './object-ids.ts'
import { BEARER, CALLER, DATABRICKS, JSON_BODY, LOOKUP, PARAMETERS, Problems as P, V1, problemResponses } from './problem-catalogue.ts'

/** An object named by the request, its type and id checked, read from Databricks. */
const OBJECT = [P.DatabricksNotConfigured, P.UnknownObjectType, P.InvalidObjectId, P.WorkspaceNotFound, P.ObjectNotFound, ...DATABRICKS]
/** Every problem GET /v1/permissions/{objectType}/{objectId} may answer with. */
const PERMISSION_PROBLEMS = [
  ...V1, ...BEARER, ...PARAMETERS, ...OBJECT, ...CALLER,
  // With `principal`: the right to ask, the lookup budget, then the lookup.
  P.PermissionQueryForbidden, P.PrincipalLookupsThrottled, ...LOOKUP, P.UnsupportedSubject
]
/** Every problem POST /v1/shares may answer with. */
const SHARE_PROBLEMS = [
  ...V1, ...BEARER, ...JSON_BODY, ...OBJECT, P.InvalidPermissionLevel, ...CALLER,
  P.ShareForbidden, P.ShareLevelForbidden, P.PrincipalLookupsThrottled, P.InvalidPrincipalId, P.ShareTargetNotFound, P.PrincipalAmbiguous,
  P.InvalidOwner, P.ShareTargetDisabled, P.ShareTargetExcluded, P.ShareTargetNameTaken
]

function callerOf (request: { caller?: Caller }): Caller {
  if (request.caller === undefined) throw new Error('authenticate did not set the caller')
  return request.caller
}

/** The object as the request names it, its id checked against its type's shape (400 INVALID_OBJECT_ID). */
function refOf (workspaceId: string, objectType: string, objectId: string): ObjectRef {
  checkObjectId(ObjectAccess.objectType(objectType), objectId)
  return { workspaceId, objectType, objectId }
}

export async function accessRoutes (parent: FastifyInstance, options: { access?: ObjectAccess }): Promise<void> {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>()
  // Served without a Databricks account too, to say what is missing instead of a bare 404.
  const configured = (): ObjectAccess => {
    if (options.access === undefined) throw new DatabricksNotConfigured()
    return options.access
  }

  app.get('/v1/permissions/:objectType/:objectId', {
    schema: {
      tags: ['permissions'],
      summary: 'What a principal can do on a workspace object, and why.',
      description: 'For the caller, or with `principal` for anyone in the directory: that needs the app role `Identity.Admin` or the right to manage the object (CAN_MANAGE or IS_OWNER, or workspace admin; cluster policies: workspace admins only), checked before the principal is looked up, and a caller without the role may look up `PRINCIPAL_LOOKUPS_PER_MINUTE` others a minute. Lists every grant that applies — direct or inherited from a parent folder, to the principal or to a group it belongs to through any nesting — with the group path and a reason. The object\'s ACL is cached for a few seconds.',
      security: [{ bearer: [] }],
      params: Strict({
        objectType: ObjectTypeName,
        objectId: ObjectIdString
      }),
      querystring: Strict({
        workspaceId: WorkspaceId,
        principal: Type.Optional(Name(1024, { description: 'Ask about this user or service principal instead of the caller.', examples: [EXAMPLE.otherUpn] })),
        by: By
      }, { description: 'Every query parameter not listed here is refused (400 UNKNOWN_PROPERTY).' }),
      response: {
        200: success('The effective level and every grant that applies, each with its reason; the principal\'s access to the workspace; for dashboards, what the publication lets it see.', EffectivePermissionResult),
        ...problemResponses(PERMISSION_PROBLEMS)
      }
    },
    onRequest: app.authenticate
  }, async (request) => {
    const { workspaceId, principal, by } = request.query
    const access = configured()
    const ref = refOf(workspaceId, request.params.objectType, request.params.objectId)
    const caller = callerOf(request)
    const about = principal === undefined ? undefined : principalQuery(principal, by, 'principal')
    // A repeated question is answered from memory without a promise; anything else is read or computed.
    const { subject, answer } = access.askWarm(caller, ref, about) ?? await access.ask(caller, ref, about)
    const { effective, workspace, dashboard, blocked } = answer
    // One shape (absent fields undefined, left out by the serializer), not conditional spreads: this is
    // the warm path, and such objects serialize several times slower.
    return {
      workspaceId,
      objectType: answer.objectType,
      objectId: ref.objectId,
      principal: principalBody(subject.principal),
      level: effective.level,
      blocked,
      grants: effective.grants,
      workspace,
      dashboard
    }
  })

  app.post('/v1/shares', {
    schema: {
      tags: ['permissions'],
      summary: 'Share a workspace object with anyone in the directory.',
      description: 'The caller needs the right to manage the object (CAN_MANAGE or IS_OWNER, or workspace admin; cluster policies: workspace admins only) and can grant no level above its own; IS_OWNER transfers ownership and only a workspace admin grants it, to a user or service principal. The principal (user, service principal or group, by object id, UPN, mail or appId) must exist and be enabled in Entra; it is made to exist in the Databricks account — never assigned to the workspace, as automatic identity management does — and granted `level` with a Permissions PATCH; a group under a name no local or system group of the workspace holds. Idempotent: sharing again writes nothing. For dashboards the answer says whether a principal without workspace access can still view the published copy (embedded credentials).',
      security: [{ bearer: [] }],
      body: ShareRequest,
      response: {
        200: success('Shared: the grant as the ACL now holds it (`changed: false` when the principal already held that level or more), where the principal is in the account, and its access to the workspace.', ShareResult),
        ...problemResponses(SHARE_PROBLEMS)
      }
    },
    onRequest: app.authenticate
  }, async (request) => {
    const { workspaceId, objectType, objectId, principal, by, level } = request.body
    const access = configured()
    const shared = await access.share(callerOf(request), refOf(workspaceId, objectType, objectId), principalQuery(principal, by, 'principal'), level)
    return {
      grant: { workspaceId, objectType: shared.objectType, objectId, level: shared.level, principalName: shared.principalName, changed: shared.changed },
      principal: principalBody(shared.principal),
      databricks: { principalId: shared.databricksId },
      workspace: shared.workspace,
      ...(shared.dashboard !== undefined ? { dashboard: shared.dashboard } : {})
    }
  })
}
