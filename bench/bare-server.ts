// The bare-fastify baseline in a process of its own (the separate-process layout of bench/lib/deployed.ts):
// reads the route ({ method, url, schema: the name of a schema in src/http/schemas.ts }) from BARE_ROUTE
// and the constant body from stdin, listens on a free loopback port and prints { "url": … }.
import type { TSchema } from '@sinclair/typebox'
import * as schemas from '../src/http/schemas.ts'
import { bareApp } from './lib/bare.ts'

const route = JSON.parse(process.env.BARE_ROUTE ?? '{}') as { method: 'GET' | 'POST', url: string, schema: string }
const schema = (schemas as Record<string, unknown>)[route.schema] as TSchema | undefined
if (schema === undefined) throw new Error(`no schema ${JSON.stringify(route.schema)} in src/http/schemas.ts`)
let input = ''
for await (const chunk of process.stdin) input += String(chunk)
const app = bareApp(JSON.parse(input), { method: route.method, url: route.url, schema })
console.log(JSON.stringify({ url: await app.listen({ port: 0, host: '127.0.0.1' }) }))
process.on('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
