// npm run openapi: writes the OpenAPI 3.1 document generated from the route schemas to openapi/openapi.json.
// No network: the service is built with placeholder upstreams that are never contacted.
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { OPENAPI_PATH, openApiDocument, renderOpenApi } from '../src/http/openapi.ts'

const target = new URL(`../${OPENAPI_PATH}`, import.meta.url)
await mkdir(dirname(target.pathname), { recursive: true })
await writeFile(target, renderOpenApi(await openApiDocument()))
console.log(`wrote ${OPENAPI_PATH}`)
