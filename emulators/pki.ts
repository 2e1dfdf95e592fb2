// The emulators' local PKI: a CA and a loopback server certificate, generated on first start and kept in
// a data directory so clients can trust the CA once (NODE_EXTRA_CA_CERTS or an explicit `ca` option).
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { selfSigned, serverCertificate } from './x509.ts'

export interface Pki {
  caPath: string
  ca: string
  cert: string
  key: string
}

export const defaultDataDir = join(import.meta.dirname, '..', '.data', 'emulators')

export async function ensurePki (dataDir = defaultDataDir): Promise<Pki> {
  const caPath = join(dataDir, 'ca.pem')
  const certPath = join(dataDir, 'server.pem')
  const keyPath = join(dataDir, 'server-key.pem')
  try {
    const [ca, cert, key] = await Promise.all([caPath, certPath, keyPath].map(async p => await readFile(p, 'utf8')))
    return { caPath, ca, cert, key }
  } catch {
    // first start (or a partial directory): generate everything afresh
  }
  await mkdir(dataDir, { recursive: true })
  const ca = await selfSigned('jit-identity-resolver emulators local CA', 10, true)
  const server = await serverCertificate(ca, { dns: ['localhost'], ip: ['127.0.0.1', '::1'] })
  // Write the key and certificate before the CA: a reader that finds ca.pem finds the rest too.
  // Each file is written under a temporary name and renamed, so concurrent starts never read half a file.
  for (const [path, text, mode] of [[keyPath, server.keyPem, 0o600], [certPath, server.certPem, 0o644], [caPath, ca.certPem, 0o644]] as const) {
    const tmp = `${path}.${process.pid}.tmp`
    await writeFile(tmp, text, { mode })
    await rename(tmp, path)
  }
  return { caPath, ca: ca.certPem, cert: server.certPem, key: server.keyPem }
}
