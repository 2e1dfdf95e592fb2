// The OpenAPI 3.1 contract, generated from the routes' TypeBox schemas by @fastify/swagger, and Swagger UI
// at /docs (its assets ship in the npm package: the page works offline). `openApiDocument()` builds the
// whole service offline to produce the document that `npm run openapi` writes to openapi/openapi.json.
import { readFile } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { Problem } from './schemas.ts'

interface PackageJson { name: string, version: string, description: string }

export const OPENAPI_PATH = 'openapi/openapi.json'

/** Registers the document and the UI; must run before the routes so their schemas are collected. */
export async function registerOpenApi (app: FastifyInstance): Promise<void> {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as PackageJson
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: pkg.name, version: pkg.version, description: pkg.description },
      tags: [
        { name: 'registrations', description: 'Bulk registration: many principals, or a group\'s transitive members, as a resumable job.' },
        { name: 'identity', description: 'Principals and their transitive groups, resolved from Entra ID and materialized in Databricks.' },
        { name: 'permissions', description: 'Effective permissions on workspace objects, with reasons, and sharing with anyone in the directory.' },
        { name: 'health', description: 'Liveness and readiness probes.' }
      ],
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A Microsoft Entra ID access token issued for the service\'s app registration.' }
        }
      }
    },
    // /metrics (Prometheus text, untagged) is for scrapers, not API callers.
    hideUntagged: true,
    transformObject: (documentObject) => 'openapiObject' in documentObject ? optionalBodies(problemsAsReferences(documentObject.openapiObject)) : documentObject.swaggerObject
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
}

/** The OpenAPI document of the whole service, built as production builds it but never connecting anywhere. */
export async function openApiDocument (): Promise<unknown> {
  // Imported lazily: service.ts imports app.ts, which imports this module.
  const { loadConfig } = await import('../config.ts')
  const { buildService } = await import('../service.ts')
  // Placeholder configuration: building the service performs no I/O (signing keys, Graph and Databricks
  // tokens are fetched on first use), and no request is made here, so these hosts are never contacted.
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    ENTRA_TENANT_ID: '00000000-0000-0000-0000-000000000000',
    ENTRA_CLIENT_ID: '00000000-0000-0000-0000-000000000001',
    ENTRA_CLIENT_SECRET: 'openapi-generation-placeholder',
    ENTRA_AUTHORITY_HOST: 'https://login.invalid',
    GRAPH_BASE_URL: 'https://graph.invalid/v1.0',
    DATABRICKS_HOST: 'https://accounts.invalid',
    DATABRICKS_ACCOUNT_ID: 'openapi'
  })
  const service = await buildService(config, { processMetrics: false, resumeRegistrations: false })
  try {
    await service.app.ready()
    return service.app.swagger()
  } finally {
    await service.close()
  }
}

type Document = Record<string, unknown> & { components?: { schemas?: Record<string, unknown> }, paths?: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema?: unknown }> }> }>> }

/**
 * Error answers are sent as application/problem+json (problems.ts), but fastify inlines the `Problem`
 * schema under application/json in every response; say what is sent and reference one shared schema.
 */
function problemsAsReferences<T> (openapi: T): T {
  const document = openapi as Document
  const { $id, ...problem } = Problem as Record<string, unknown>
  const wanted = canonical(problem)
  let used = false
  for (const operations of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(operations)) {
      for (const response of Object.values(operation.responses ?? {})) {
        const schema = response.content?.['application/json']?.schema
        if (schema === undefined || canonical(schema) !== wanted) continue
        response.content = { 'application/problem+json': { schema: { $ref: `#/components/schemas/${String($id)}` } } }
        used = true
      }
    }
  }
  if (used) document.components = { ...document.components, schemas: { ...document.components?.schemas, [String($id)]: JSON.parse(JSON.stringify(problem)) } }
  return openapi
}

/** Routes that accept no body at all as an empty one (a login hook may POST nothing). */
const OPTIONAL_BODIES = [['/v1/login', 'post']] as const

function optionalBodies<T> (openapi: T): T {
  const paths = (openapi as { paths?: Record<string, Record<string, { requestBody?: { required?: boolean } }>> }).paths
  for (const [path, method] of OPTIONAL_BODIES) {
    const body = paths?.[path]?.[method]?.requestBody
    if (body !== undefined) body.required = false
  }
  return openapi
}

const canonical = (value: unknown): string => JSON.stringify(sortKeys(value))

/** Deterministic JSON: object keys sorted at every level, 2-space indentation, trailing newline. */
export function renderOpenApi (document: unknown): string {
  return `${JSON.stringify(sortKeys(document), null, 2)}\n`
}

function sortKeys (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map(k => [k, sortKeys((value as Record<string, unknown>)[k])]))
  }
  return value
}
