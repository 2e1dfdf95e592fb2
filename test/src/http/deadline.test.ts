// Request deadlines (src/http/deadline.ts) on a bare fastify app with gated routes: the caller gets 503
// DEADLINE_EXCEEDED with Retry-After when the deadline passes in the handler or in a hook, the work goes
// on to its end and is logged once (never a second answer, never fastify's "reply already sent"), and
// routes outside /v1 have no deadline. No wall-clock assertion: every step waits on a response or a gate.
import t from 'tap'
import { Writable } from 'node:stream'
import type { Test } from 'tap'
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify'
import { registerDeadlines } from '../../../src/http/deadline.ts'

interface Gate { promise: Promise<void>, open: () => void, fail: (err: Error) => void }
function gate (): Gate {
  let open = (): void => {}
  let fail = (_err: Error): void => {}
  const promise = new Promise<void>((resolve, reject) => { open = resolve; fail = reject })
  return { promise, open, fail }
}

interface LogLine { level: number, msg: string, err?: { stack?: string }, code?: string, [k: string]: unknown }

async function appWith (t: Test, timeoutMs: number): Promise<{ app: FastifyInstance, logs: LogLine[] }> {
  const logs: LogLine[] = []
  const stream = new Writable({ write (chunk: Buffer, _enc, done) { logs.push(JSON.parse(chunk.toString()) as LogLine); done() } })
  const app = Fastify({ logger: { level: 'info', stream } })
  // A problem handler of the shape the service's has: status, code, the error's headers.
  app.setErrorHandler(async (err: FastifyError & { headers?: Record<string, string> }, _request, reply) => {
    return await reply.code(err.statusCode ?? 500).headers(err.headers ?? {}).send({ code: err.code })
  })
  registerDeadlines(app, { timeoutMs })
  t.teardown(async () => await app.close())
  return { app, logs }
}

/** Settles once the event loop has run the callbacks queued by now (a finished work's then-handlers). */
const settled = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

t.test('a handler slower than the deadline: 503 with Retry-After, and its work goes on to its end', async t => {
  const { app, logs } = await appWith(t, 50)
  const work = gate()
  let finished = false
  app.post('/v1/login', async () => {
    await work.promise
    finished = true
    return { ok: true }
  })
  const res = await app.inject({ method: 'POST', url: '/v1/login' })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'DEADLINE_EXCEEDED')
  t.equal(res.headers['retry-after'], '1')
  t.notOk(finished, 'answered while the work is still running')

  work.open()
  await work.promise
  await settled()
  t.ok(finished, 'the work went on after the answer')
  t.match(logs.filter(l => l.msg.includes('after its deadline')), [{ level: 30, msg: /finished after its deadline/ }], 'its end is logged once, at info')
  t.same(logs.filter(l => l.level >= 40), [], 'no warning: nothing tried to answer twice')
})

t.test('work that fails after the deadline: an expected failure is a warn without stack, an unexpected one an error with it', async t => {
  const { app, logs } = await appWith(t, 50)
  const expected = gate()
  const unexpected = gate()
  app.get('/v1/permissions/:id', async (request) => {
    await ((request.params as { id: string }).id === 'a' ? expected : unexpected).promise
    return {}
  })
  t.equal((await app.inject('/v1/permissions/a')).statusCode, 503)
  t.equal((await app.inject('/v1/permissions/b')).statusCode, 503)
  expected.fail(Object.assign(new Error('Microsoft Graph is unavailable'), { code: 'UPSTREAM_UNAVAILABLE', statusCode: 503 }))
  unexpected.fail(new TypeError('cannot read properties of undefined'))
  await expected.promise.catch(() => {})
  await unexpected.promise.catch(() => {})
  await settled()
  const late = logs.filter(l => l.msg.includes('after its deadline'))
  t.equal(late.length, 2)
  t.match(late.find(l => l.code === 'UPSTREAM_UNAVAILABLE'), { level: 40, status: 503 })
  t.notOk(late.find(l => l.code === 'UPSTREAM_UNAVAILABLE')?.err, 'no stack for an expected condition')
  t.match(late.find(l => l.level === 50), { err: { stack: /TypeError: cannot read properties/ } })
  t.same(logs.filter(l => /already sent|Promise errored/.test(l.msg)), [])
})

t.test('a deadline that passes in a hook (authentication): answered from there, the handler never runs', async t => {
  const { app, logs } = await appWith(t, 50)
  const auth = gate()
  let handled = false
  app.post('/v1/shares', { onRequest: async () => { await auth.promise } }, async () => {
    handled = true
    return {}
  })
  const res = await app.inject({ method: 'POST', url: '/v1/shares', payload: {} })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'DEADLINE_EXCEEDED')
  t.equal(res.headers['retry-after'], '1')
  auth.open()
  await auth.promise
  await settled()
  t.notOk(handled, 'the handler of an answered request does not run')
  t.same(logs.filter(l => l.level >= 40), [])
})

t.test('fast requests are untouched; routes outside /v1 have no deadline', async t => {
  const { app } = await appWith(t, 50)
  const slow = gate()
  const started = gate()
  const v1 = gate()
  app.get('/v1/fast', async () => ({ fast: true }))
  app.get('/v1/slow', async () => { await v1.promise; return {} })
  app.get('/metrics', async () => { started.open(); await slow.promise; return { metrics: true } })
  t.same((await app.inject('/v1/fast')).json(), { fast: true })
  // /metrics runs first; once a /v1 request started after it has passed its deadline, so has /metrics'.
  const metrics = app.inject('/metrics')
  await started.promise
  t.equal((await app.inject('/v1/slow')).statusCode, 503)
  slow.open()
  v1.open()
  const res = await metrics
  t.equal(res.statusCode, 200)
  t.same(res.json(), { metrics: true })
})

t.test('HEAD routes fastify adds for GET ones keep one deadline', async t => {
  const { app } = await appWith(t, 50)
  const work = gate()
  app.get('/v1/principals/:id', async () => { await work.promise; return { id: 1 } })
  const res = await app.inject({ method: 'HEAD', url: '/v1/principals/x' })
  t.equal(res.statusCode, 503)
  work.open()
  t.equal((await app.inject({ method: 'GET', url: '/v1/principals/x' })).statusCode, 200)
})
