// Small X.509 helpers over @peculiar/x509 and WebCrypto: the emulators' TLS PKI, the STS signing-key
// certificates (`x5c`) and client certificates for private_key_jwt all come from here.
import 'reflect-metadata' // @peculiar/x509 needs it at load time
import { webcrypto, createHash, X509Certificate as NodeX509 } from 'node:crypto'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as unknown as Crypto)

const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 }

export interface CertifiedKey {
  keys: CryptoKeyPair
  certPem: string
  keyPem: string
  /** DER of the certificate */
  der: Buffer
}

export async function generateRsaKeyPair (): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(RSA, true, ['sign', 'verify']) as CryptoKeyPair
}

async function privateKeyPem (key: CryptoKey): Promise<string> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key))
  return `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd()}\n-----END PRIVATE KEY-----\n`
}

async function finish (cert: x509.X509Certificate, keys: CryptoKeyPair): Promise<CertifiedKey> {
  return { keys, certPem: cert.toString('pem') + '\n', keyPem: await privateKeyPem(keys.privateKey), der: Buffer.from(cert.rawData) }
}

/** A self-signed certificate, as Entra's signing keys and client certificates are. */
export async function selfSigned (commonName: string, years = 2, ca = false): Promise<CertifiedKey> {
  const keys = await generateRsaKeyPair()
  const notBefore = new Date(Date.now() - 60_000)
  const extensions: x509.Extension[] = ca
    ? [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)]
    : []
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${commonName}`, keys, notBefore, notAfter: addYears(notBefore, years), extensions
  })
  return await finish(cert, keys)
}

/** A TLS server certificate for the given DNS names and IP addresses, signed by `ca`. */
export async function serverCertificate (ca: CertifiedKey, names: { dns: string[], ip: string[] }): Promise<CertifiedKey> {
  const keys = await generateRsaKeyPair()
  const caCert = new x509.X509Certificate(ca.certPem)
  const notBefore = new Date(Date.now() - 60_000)
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${names.dns[0] ?? names.ip[0]}`,
    issuer: caCert.subject,
    notBefore,
    notAfter: addYears(notBefore, 2),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...names.dns.map(value => ({ type: 'dns' as const, value })),
        ...names.ip.map(value => ({ type: 'ip' as const, value }))
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert)
    ]
  })
  return await finish(cert, keys)
}

/** base64url SHA-1 (`x5t`) and SHA-256 (`x5t#S256`) thumbprints of a DER or PEM certificate. */
export function thumbprints (cert: Buffer | string): { x5t: string, x5tS256: string, sha1Hex: string, sha256Hex: string } {
  const der = typeof cert === 'string' ? Buffer.from(new NodeX509(cert).raw) : cert
  const sha1 = createHash('sha1').update(der).digest()
  const sha256 = createHash('sha256').update(der).digest()
  return { x5t: sha1.toString('base64url'), x5tS256: sha256.toString('base64url'), sha1Hex: sha1.toString('hex'), sha256Hex: sha256.toString('hex') }
}

function addYears (d: Date, years: number): Date {
  const r = new Date(d)
  r.setFullYear(r.getFullYear() + years)
  return r
}
