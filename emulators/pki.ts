// The emulators' local PKI: a CA and a server certificate, generated on first start and kept in a data
// directory so clients can trust the CA once (NODE_EXTRA_CA_CERTS or an explicit `ca` option). The server
// certificate names the loopback names, plus any host the emulators are reached by (a compose service
// name such as `emulators`); a directory whose certificate lacks a name asked for is generated afresh.
import { X509Certificate } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join } from 'node:path'
import { selfSigned, serverCertificate } from './x509.ts'

export interface Pki {
  caPath: string
  ca: string
  cert: string
  key: string
}

export const defaultDataDir = join(import.meta.dirname, '..', '.data', 'emulators')

/** The names every server certificate holds: the emulators are always reachable over loopback. */
export const LOOPBACK_NAMES: readonly string[] = ['localhost', '127.0.0.1', '::1']

/** True when the certificate is valid for every name (a DNS name or an IP address). */
export function certificateNames (certPem: string, names: readonly string[]): boolean {
  const cert = new X509Certificate(certPem)
  return names.every(name => isIP(name) !== 0 ? cert.checkIP(name) !== undefined : cert.checkHost(name, { wildcards: false }) !== undefined)
}

/** The DNS names and IP addresses a certificate's subjectAltName holds. */
function subjectAltNames (certPem: string): string[] {
  const san = new X509Certificate(certPem).subjectAltName ?? ''
  return san.split(', ').flatMap(entry => {
    const [kind, value] = [entry.slice(0, entry.indexOf(':')), entry.slice(entry.indexOf(':') + 1)]
    return (kind === 'DNS' || kind === 'IP Address') && value !== '' ? [value] : []
  })
}

/** A host name in lower case, an IPv6 address compressed (`0:0:0:0:0:0:0:1` → `::1`), brackets dropped. */
function normalName (name: string): string {
  const bare = name.replace(/^\[(.*)\]$/, '$1').toLowerCase()
  return isIP(bare) === 6 ? new URL(`http://[${bare}]`).hostname.slice(1, -1) : bare
}

/**
 * The CA and server certificate in `dataDir`, generated when missing or when the server certificate does
 * not name each of `extraNames` (besides localhost, 127.0.0.1 and ::1). Regenerating replaces the CA too:
 * its private key is never kept, so clients that trusted the old CA must read ca.pem again.
 */
export async function ensurePki (dataDir = defaultDataDir, extraNames: readonly string[] = []): Promise<Pki> {
  const caPath = join(dataDir, 'ca.pem')
  const certPath = join(dataDir, 'server.pem')
  const keyPath = join(dataDir, 'server-key.pem')
  let names = [...new Set([...LOOPBACK_NAMES, ...extraNames].map(normalName))]
  try {
    const [ca, cert, key] = await Promise.all([caPath, certPath, keyPath].map(async p => await readFile(p, 'utf8')))
    if (certificateNames(cert, names)) return { caPath, ca, cert, key }
    // A name is missing: the new certificate keeps the names of the old one too, so two users of the
    // directory asking for different names do not replace each other's certificate on every start.
    names = [...new Set([...names, ...subjectAltNames(cert).map(normalName)])]
  } catch {
    // first start (or a partial directory): generate everything afresh
  }
  await mkdir(dataDir, { recursive: true })
  const ca = await selfSigned('jit-identity-resolver emulators local CA', 10, true)
  const server = await serverCertificate(ca, {
    dns: names.filter(n => isIP(n) === 0),
    ip: names.filter(n => isIP(n) !== 0)
  })
  // Write the key and certificate before the CA: a reader that finds ca.pem finds the rest too.
  // Each file is written under a temporary name and renamed, so concurrent starts never read half a file.
  for (const [path, text, mode] of [[keyPath, server.keyPem, 0o600], [certPath, server.certPem, 0o644], [caPath, ca.certPem, 0o644]] as const) {
    const tmp = `${path}.${process.pid}.tmp`
    await writeFile(tmp, text, { mode })
    await rename(tmp, path)
  }
  return { caPath, ca: ca.certPem, cert: server.certPem, key: server.keyPem }
}
