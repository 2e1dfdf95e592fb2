// A TCP proxy in front of the real Redis, so a test can take "Redis" away from the processes it started
// (stop: every connection cut, nothing listening) and bring it back on the same port, without touching the
// Redis other test files share.
import { createServer, connect, type Server, type Socket } from 'node:net'
import { once } from 'node:events'

export class TcpProxy {
  port = 0
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()

  constructor (private readonly target = { host: '127.0.0.1', port: 6379 }) {}

  get url (): string { return `redis://127.0.0.1:${this.port}` }

  async start (): Promise<void> {
    const server = createServer(client => {
      const upstream = connect(this.target.port, this.target.host)
      for (const s of [client, upstream]) {
        this.sockets.add(s)
        s.on('close', () => { this.sockets.delete(s) })
        s.on('error', () => { client.destroy(); upstream.destroy() })
      }
      client.pipe(upstream).pipe(client)
    })
    server.listen(this.port, '127.0.0.1')
    await once(server, 'listening')
    const address = server.address()
    this.port = typeof address === 'object' && address !== null ? address.port : 0
    this.server = server
  }

  async stop (): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server === undefined) return
    const closed = new Promise(resolve => server.close(resolve))
    for (const s of this.sockets) s.destroy()
    await closed
  }
}
