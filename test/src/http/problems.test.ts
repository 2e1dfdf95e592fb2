// Every answer that is not a success is application/problem+json with a stable code and the request's id,
// fastify's own and Node's HTTP parser's included (404, 405 with Allow, 413, 414, 415, 431, a bad URL), and
// every response carries x-request-id; 5xx never show an upstream's words. Issue 11.
import { connect } from 'node:net'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../../src/app.ts'
import { loadConfig } from '../../../src/config.ts'
import { MAX_URL_LENGTH, overflowIsUrl } from '../../../src/http/problems.ts'
import { TargetMisconfigured, TargetRejected } from '../../../src/resolver/errors.ts'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from '../../../emulators/databricks/account.ts'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { smallTenant, T } from '../../helpers/tenant.ts'
import { startService, tokenFor } from '../../helpers/service.ts'

const PROBLEM = 'application/problem+json; charset=utf-8'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** The app with health routes only, its log lines collected. */
async function appWithLogs (t: Test): Promise<{ app: FastifyInstance, lines: Array<Record<string, unknown>> }> {
  const lines: Array<Record<string, unknown>> = []
  const logStream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  const app = await buildApp({ config: loadConfig({ LOG_LEVEL: 'info' }), logStream })
  t.teardown(async () => await app.close())
  return { app, lines }
}

/** Sends raw bytes and returns the raw answer (Node's parser answers before fastify sees a request). */
async function raw (port: number, request: string): Promise<{ status: number, headers: Record<string, string>, body: string }> {
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => { socket.end(request) })
    let out = ''
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => { out += d })
    socket.on('error', (err) => { if (out === '') reject(err); else resolve(out) })
    socket.on('close', () => { resolve(out) })
  })
  const [head = '', body = ''] = text.split('\r\n\r\n')
  const [statusLine = '', ...headerLines] = head.split('\r\n')
  const headers = Object.fromEntries(headerLines.map(l => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
  return { status: Number(statusLine.split(' ')[1]), headers, body }
}

t.test('404 and 405: problems with a code and a request id; 405 lists the allowed methods', async t => {
  const { app } = await appWithLogs(t)
  const missing = await app.inject('/v2/nothing?x=1')
  t.equal(missing.statusCode, 404)
  t.equal(missing.headers['content-type'], PROBLEM)
  t.match(missing.json(), { code: 'NOT_FOUND', detail: /No route GET \/v2\/nothing/, requestId: UUID })
  t.equal(missing.headers['x-request-id'], missing.json().requestId, 'the header and the problem name the same id')

  const wrong = await app.inject({ method: 'POST', url: '/healthz', headers: { 'content-type': 'application/json' }, payload: '{}' })
  t.equal(wrong.statusCode, 405)
  t.equal(wrong.headers.allow, 'GET, HEAD')
  t.equal(wrong.headers['content-type'], PROBLEM)
  t.match(wrong.json(), { code: 'METHOD_NOT_ALLOWED', detail: /POST is not a method of \/healthz: use GET, HEAD/, requestId: UUID })
  t.equal((await app.inject({ method: 'DELETE', url: '/readyz' })).statusCode, 405)
})

t.test('a URL longer than the limit is 414 URI_TOO_LONG, never echoing it; a bad percent-encoding is 400 INVALID_URL', async t => {
  const { app } = await appWithLogs(t)
  const marker = 'secret-looking-marker'
  const long = await app.inject(`/healthz?q=${marker}${'a'.repeat(MAX_URL_LENGTH)}`)
  t.equal(long.statusCode, 414)
  t.equal(long.headers['content-type'], PROBLEM)
  t.match(long.json(), { code: 'URI_TOO_LONG', detail: /longer than the 8 KiB/, instance: /^urn:jit-identity-resolver:request:/ })
  t.notMatch(long.body, marker, 'the URL is not echoed')
  t.ok(long.headers['x-request-id'])

  const param = await app.inject(`/v1/principals/${'a'.repeat(MAX_URL_LENGTH - 100)}`)
  t.equal(param.statusCode, 404, 'a long path within the limit is routed (no identity routes in this app)')

  const bad = await app.inject('/v1/principals/%zz')
  t.equal(bad.statusCode, 400)
  t.equal(bad.headers['content-type'], PROBLEM)
  t.match(bad.json(), { code: 'INVALID_URL', detail: /percent-encoding/, requestId: UUID })
  t.notMatch(bad.body, '%zz')
  t.equal(bad.headers['x-request-id'], bad.json().requestId)
})

t.test('Node\'s parser: a URL over 64 KiB is 414, headers over it 431, garbage 400, all problem+json', async t => {
  const { app } = await appWithLogs(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }

  const url = await raw(port, `GET /healthz?q=${'u'.repeat(66 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`)
  t.equal(url.status, 414)
  t.equal(url.headers['content-type'], PROBLEM)
  t.match(url.headers['x-request-id'], UUID)
  t.match(JSON.parse(url.body), { status: 414, code: 'URI_TOO_LONG', detail: /64 KiB/, requestId: url.headers['x-request-id'] })
  t.notMatch(url.body, 'uuuuuuuu', 'the URL is not echoed')

  const headers = await raw(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: ${'h'.repeat(70 * 1024)}\r\n\r\n`)
  t.equal(headers.status, 431)
  t.equal(headers.headers['content-type'], PROBLEM)
  t.match(JSON.parse(headers.body), { status: 431, code: 'HEADERS_TOO_LARGE', detail: /64 KiB.*only the headers the API needs/ })

  const many = await raw(port, `GET /healthz HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 800 }, (_, i) => `x-h${i}: ${'v'.repeat(90)}\r\n`).join('')}\r\n`)
  t.match({ status: many.status, code: JSON.parse(many.body).code }, { status: 431, code: 'HEADERS_TOO_LARGE' }, 'many headers')

  const garbage = await raw(port, 'NOT HTTP AT ALL\r\n\r\n')
  t.equal(garbage.status, 400)
  t.match(JSON.parse(garbage.body), { code: 'MALFORMED_REQUEST' })

  const ok = await raw(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(ok.status, 200, 'the server still answers')
})

t.test('overflowIsUrl reads where Node\'s parser stopped', async t => {
  const at = (text: string, stop: number) => ({ rawPacket: Buffer.from(text, 'latin1'), bytesParsed: stop })
  t.ok(overflowIsUrl(at('aaaa HTTP/1.1\r\nHost: x\r\n\r\n', 4)), 'the token ended at a space: the URL')
  t.notOk(overflowIsUrl(at('aaaa\r\n\r\n', 4)), 'it ended at a line end: a header')
  t.ok(overflowIsUrl(at('GET /aaaa', 9)), 'a request line that has not ended')
  t.notOk(overflowIsUrl(at('GET / HTTP/1.1\r\nx-big: aaaa', 27)), 'a header that has not ended')
  t.notOk(overflowIsUrl(at('aaaa', 4)), 'nothing to tell: headers')
  t.notOk(overflowIsUrl({}), 'no packet')
})

t.test('request ids: a well-formed incoming one is kept, anything else replaced; logged with the traceparent', async t => {
  const { app, lines } = await appWithLogs(t)
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const kept = await app.inject({ url: '/healthz', headers: { 'x-request-id': 'gw-1234.abc:ZZ_9', traceparent } })
  t.equal(kept.headers['x-request-id'], 'gw-1234.abc:ZZ_9')
  const line = lines.find(l => l.msg === 'request' && l.reqId === 'gw-1234.abc:ZZ_9')
  t.match(line, { reqId: 'gw-1234.abc:ZZ_9', traceparent, status: 200, url: '/healthz' }, 'the request line carries the id and the trace')

  for (const bad of ['has space', 'x'.repeat(129), 'new\nline', '<script>', '']) {
    const res = await app.inject({ url: '/nope', headers: { 'x-request-id': bad } })
    t.match(res.headers['x-request-id'], UUID, `${JSON.stringify(bad.slice(0, 20))} is replaced`)
    t.equal(res.json().requestId, res.headers['x-request-id'])
  }
  const malformedTrace = await app.inject({ url: '/healthz', headers: { traceparent: 'not-a-trace' } })
  const plain = lines.find(l => l.msg === 'request' && l.reqId === malformedTrace.headers['x-request-id'])
  t.ok(plain !== undefined && !('traceparent' in plain), 'a malformed traceparent is not logged')
  t.match((await app.inject('/healthz')).headers['x-request-id'], UUID, 'successes carry one too')
})

t.test('a request\'s own log lines carry its id and traceparent, and the logger still redacts secrets', async t => {
  const { app, lines } = await appWithLogs(t)
  app.get('/chatty', async (request) => {
    request.log.warn({ upstream: { client_secret: 's3cret', access_token: 'eyJ.tok' } }, 'told something')
    return { ok: true }
  })
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const res = await app.inject({ url: '/chatty', headers: { 'x-request-id': 'req-chatty', traceparent } })
  t.equal(res.statusCode, 200)
  const told = lines.find(l => l.msg === 'told something')
  t.match(told, { reqId: 'req-chatty', traceparent, level: 40, upstream: { client_secret: '[redacted]', access_token: '[redacted]' } })
  t.notOk(JSON.stringify(lines).includes('s3cret'), 'the secret is in no line')
  t.match(lines.find(l => l.msg === 'request' && l.reqId === 'req-chatty'), { traceparent, status: 200 }, 'the request line has the same bindings')
  t.equal(lines.filter(l => l.reqId === 'req-chatty').length, 2, 'two lines, each once')
})

t.test('5xx: a generic detail with the request id; the cause only in the log', async t => {
  const { app, lines } = await appWithLogs(t)
  app.get('/boom', async () => { throw new Error('database password is hunter2') })
  app.get('/rejected', async () => { throw new TargetRejected('Databricks GET /api/2.0/permissions/dashboards/..: HTTP 400 INVALID_PARAMETER_VALUE: Path /Workspace/secret is invalid') })
  app.get('/misconfigured', async () => { throw new TargetMisconfigured('Databricks GET /api/2.0/accounts/abc/scim/v2/Users: HTTP 403 PERMISSION_DENIED: token of bob@corp') })

  const boom = await app.inject({ url: '/boom', headers: { 'x-request-id': 'req-500' } })
  t.equal(boom.statusCode, 500)
  t.match(boom.json(), { code: 'INTERNAL', requestId: 'req-500', detail: /It has been logged under request id req-500/ })
  t.notMatch(boom.body, 'hunter2')
  t.match(JSON.stringify(lines.find(l => l.reqId === 'req-500' && l.msg === 'request failed')), /"level":50.*hunter2/, 'the cause is in the log, under the id')

  const rejected = await app.inject({ url: '/rejected', headers: { 'x-request-id': 'req-502' } })
  t.equal(rejected.statusCode, 502)
  t.match(rejected.json(), { code: 'TARGET_BAD_REQUEST', detail: /Databricks refused.*logged under request id req-502/ })
  t.notMatch(rejected.body, /api\/2\.0|Workspace\/secret|INVALID_PARAMETER/, 'no upstream path or message')
  t.match(JSON.stringify(lines.find(l => l.reqId === 'req-502' && l.msg === 'request failed')), /Workspace\/secret/, 'Databricks\' words are in the log, under the id')

  const misconfigured = await app.inject('/misconfigured')
  t.equal(misconfigured.statusCode, 502)
  t.match(misconfigured.json(), { code: 'TARGET_MISCONFIGURED', detail: /account admin.*DATABRICKS_MODE=scim/ })
  t.notMatch(misconfigured.body, /bob@corp|scim\/v2/)
})

t.test('the service: 405 on API paths, 415 for anything but JSON, 413 naming the limit, upstream words never in a 502', async t => {
  const emulator = await startTestEmulator(t, { tenants: [smallTenant()] })
  const { app } = await startService(t, emulator, { DATABRICKS_HOST: emulator.origin, DATABRICKS_ACCOUNT_ID: DEFAULT_ACCOUNT_ID, DATABRICKS_TOKEN: DATABRICKS_ADMIN_PAT, DATABRICKS_MODE: 'aim' })
  const token = await tokenFor(emulator, T.alice)
  const auth = { authorization: `Bearer ${token}` }

  const get = await app.inject({ method: 'GET', url: '/v1/shares', headers: auth })
  t.match({ status: get.statusCode, allow: get.headers.allow, code: get.json().code }, { status: 405, allow: 'POST', code: 'METHOD_NOT_ALLOWED' })
  const del = await app.inject({ method: 'DELETE', url: `/v1/permissions/dashboards/${'0'.repeat(32)}?workspaceId=1`, headers: auth })
  t.match({ status: del.statusCode, allow: del.headers.allow }, { status: 405, allow: 'GET, HEAD' }, 'a path with parameters')
  t.equal((await app.inject({ method: 'PUT', url: '/v1/registrations/abc', headers: auth })).headers.allow, 'GET, HEAD')

  for (const url of ['/v1/login', '/v1/shares']) {
    const text = await app.inject({ method: 'POST', url, headers: { ...auth, 'content-type': 'text/plain' }, payload: '{"workspaceId":"1"}' })
    t.equal(text.statusCode, 415, `${url}: text/plain`)
    t.equal(text.headers['content-type'], PROBLEM)
    t.match(text.json(), { code: 'UNSUPPORTED_MEDIA_TYPE', detail: /Content-Type: application\/json.*sent "text\/plain"/, requestId: UUID })
    t.notMatch(text.body, /must be object/)
  }
  const none = await app.inject({ method: 'POST', url: '/v1/shares', headers: auth, payload: Buffer.from('workspaceId=1') })
  t.match({ status: none.statusCode, code: none.json().code, detail: none.json().detail }, { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', detail: /sent no Content-Type/ }, 'a body without a Content-Type')
  const form = await app.inject({ method: 'POST', url: '/v1/shares', headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'workspaceId=1' })
  t.equal(form.statusCode, 415)
  const odd = await app.inject({ method: 'POST', url: '/v1/shares', headers: { ...auth, 'content-type': `text/\u00e9vil${'x'.repeat(200)}` }, payload: 'x' })
  t.equal(odd.statusCode, 415)
  t.match(odd.json().detail, /"text\/\\u00e9vilx+…"/, 'the media type is shown escaped and cut')

  const big = await app.inject({ method: 'POST', url: '/v1/shares', headers: { ...auth, 'content-type': 'application/json' }, payload: `{"x":"${'x'.repeat(70 * 1024)}"}` })
  t.match({ status: big.statusCode, code: big.json().code, detail: big.json().detail }, { status: 413, code: 'BODY_TOO_LARGE', detail: /64 KiB \(65536 bytes\)/ })

  // Databricks refuses a permissions read: the caller gets a 502 with the request id, not Databricks' path or words.
  const fault = emulator.ctx.faults.add({ route: '/api/2.0/permissions/*', status: 400 })
  t.teardown(() => emulator.ctx.faults.remove(fault.id))
  const refused = await app.inject({ method: 'GET', url: `/v1/permissions/jobs/123?workspaceId=${DEFAULT_WORKSPACE_ID}`, headers: { ...auth, 'x-request-id': 'trace-me' } })
  t.equal(refused.statusCode, 502)
  t.match(refused.json(), { code: 'TARGET_BAD_REQUEST', requestId: 'trace-me', detail: /logged under request id trace-me/ })
  t.notMatch(refused.body, /\/api\/2\.0|Injected fault|HTTP 400/, 'no upstream path or message')
})
