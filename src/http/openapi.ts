// The OpenAPI 3.1 contract, generated from the routes' TypeBox schemas by @fastify/swagger, and Swagger UI
// at /docs (its assets ship in the npm package: the page works offline). Each route's error responses come
// from the problems it declares (problem-catalogue.ts). `npm run openapi` (scripts/openapi.ts) builds the
// whole service offline and writes the document to openapi/openapi.json, and the error catalogue to docs/errors.md.
import { readFile } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { Problem } from './schemas.ts'
import { exampleComponents } from './problem-catalogue.ts'

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
        { name: 'sync', description: 'The Entra change feed: how it is doing.' },
        { name: 'health', description: 'Liveness and readiness probes.' },
        { name: 'sync', description: 'The Entra change feed: Databricks and the caches kept in step with Entra (delta rounds, change notifications).' },
        { name: 'metrics', description: 'Prometheus metrics, for scrapers.' }
      ],
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A Microsoft Entra ID access token issued for the service\'s app registration.' },
          metricsToken: { type: 'http', scheme: 'bearer', description: 'The METRICS_TOKEN the operator set (when set, /metrics needs it).' }
        }
      }
    },
    // Swagger UI's own routes (untagged) are not part of the contract.
    hideUntagged: true,
    transformObject: (documentObject) => 'openapiObject' in documentObject ? optionalBodies(problemExamples(problemsAsReferences(documentObject.openapiObject))) : documentObject.swaggerObject
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
}

type Document = Record<string, unknown> & { components?: { schemas?: Record<string, unknown>, examples?: Record<string, unknown> }, paths?: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema?: unknown }> }> }>> }

/**
 * Errors are sent as application/problem+json (problems.ts). Each operation's `default` response is the plain
 * `Problem` schema, which fastify inlines, and so is the error response of a route that still names `Problem`
 * for a status (under application/json): both become a reference to one shared schema, under the media type
 * that is sent. The per-status schemas of problemResponses stay inline, each with its own `code` enum.
 */
function problemsAsReferences<T> (openapi: T): T {
  const document = openapi as Document
  const { $id, ...problem } = Problem as Record<string, unknown>
  const wanted = canonical(problem)
  const ref = { $ref: `#/components/schemas/${String($id)}` }
  let used = false
  for (const operations of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(operations)) {
      for (const response of Object.values(operation.responses ?? {})) {
        const media = response.content?.['application/problem+json']
        const plain = response.content?.['application/json']?.schema
        if (media?.schema !== undefined && canonical(media.schema) === wanted) {
          media.schema = ref
          used = true
        } else if (plain !== undefined && canonical(plain) === wanted) {
          response.content = { 'application/problem+json': { schema: ref } }
          used = true
        }
      }
    }
  }
  if (used) document.components = { ...document.components, schemas: { ...document.components?.schemas, [String($id)]: JSON.parse(JSON.stringify(problem)) } }
  return openapi
}

/** The problem examples the responses reference (problem-catalogue.ts), once each. */
function problemExamples<T> (openapi: T): T {
  const document = openapi as Document
  document.components = { ...document.components, examples: exampleComponents() }
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
