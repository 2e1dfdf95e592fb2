// The emulated Databricks account on the emulators' origin: account and workspace SCIM, the identity API
// (automatic identity management), workspace permission assignments, the Permissions API, Lakeview
// dashboards, rate limits, and its part of the control API. Every error under /api is Databricks-shaped:
// the routes' own, fastify's, unknown paths, and faults injected on /api paths (ctx.errorShapes).
import type { FastifyInstance } from 'fastify'
import type { EmulatorContext } from '../context.ts'
import { createAccount } from './account.ts'
import { assignmentRoutes } from './assignments.ts'
import { controlDatabricksRoutes } from './control.ts'
import { dashboardRoutes } from './dashboards.ts'
import { databricksErrorShapes } from './errors.ts'
import { defineRoutes, installConventions } from './http.ts'
import { identityRoutes } from './identity.ts'
import { permissionRoutes } from './permissions.ts'
import { RateLimiter } from './rate-limits.ts'
import { scimRoutes } from './scim.ts'

export { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID, databricksAccount } from './account.ts'

export async function databricksRoutes (app: FastifyInstance, opts: { ctx: EmulatorContext }): Promise<void> {
  const { ctx } = opts
  createAccount(ctx)
  const limiter = new RateLimiter(ctx.clock)
  // First in the list: the other areas' shapes must not catch /api paths before these do.
  ctx.errorShapes.unshift(...databricksErrorShapes(ctx))
  await app.register(controlDatabricksRoutes, { ctx, limiter })
  await app.register(async (api) => {
    installConventions(api)
    defineRoutes(api, { ctx, limiter }, [
      ...scimRoutes(),
      ...identityRoutes(),
      ...assignmentRoutes(),
      ...permissionRoutes(),
      ...dashboardRoutes()
    ])
  }, { prefix: '/api' })
}
