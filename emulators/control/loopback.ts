// The control API can rewrite the whole directory and mint any token: it answers loopback callers only.
import type { FastifyReply, FastifyRequest } from 'fastify'

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/

export async function loopbackOnly (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (!LOOPBACK.test(request.socket.remoteAddress ?? '')) {
    await reply.code(403).send({ error: { code: 'forbidden', message: 'The emulator control API answers loopback callers only.' } })
  }
}
