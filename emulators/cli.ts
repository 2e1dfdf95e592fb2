// `npm run emulators`: the emulated Entra STS and Microsoft Graph alone, with what a person needs to use
// them from a shell: the origin, the CA to trust, the tenant, a client id/secret and a curl line.
import { readFile } from 'node:fs/promises'
import { startEmulators } from './server.ts'
import { primaryTenant } from './context.ts'
import type { TenantFixture } from './tenant/model.ts'
import { DATABRICKS_ADMIN_PAT, DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID } from './databricks/account.ts'
import { DEMO_DASHBOARD } from './databricks/demo-workspace.ts'

const env = process.env
const flag = (name: string): boolean => {
  const value = (env[name] ?? '').trim().toLowerCase()
  if (['', '0', 'false', 'no'].includes(value)) return false
  if (['1', 'true', 'yes'].includes(value)) return true
  console.error(`${name} must be true or false (got '${env[name] ?? ''}')`)
  process.exit(1)
}
const demoWorkspace = flag('EMULATORS_DEMO_WORKSPACE')
const tenants = env.EMULATORS_TENANT_FILE !== undefined
  ? [JSON.parse(await readFile(env.EMULATORS_TENANT_FILE, 'utf8')) as TenantFixture]
  : undefined
const emulators = await startEmulators({
  port: Number(env.EMULATORS_PORT ?? 8443),
  host: env.EMULATORS_HOST ?? '127.0.0.1',
  dataDir: env.EMULATORS_DATA_DIR,
  logLevel: env.EMULATORS_LOG_LEVEL,
  // Behind a published port or a compose network the emulators are called by another name than they
  // listen on: issuers and links name it, and so does the server certificate.
  origin: env.EMULATORS_ORIGIN !== undefined && env.EMULATORS_ORIGIN !== '' ? env.EMULATORS_ORIGIN : undefined,
  demoWorkspace,
  tenants
})

const tenant = primaryTenant(emulators.ctx)
const app = [...tenant.applications.values()].find(a => a.secret !== undefined && a.roles.includes('User.Read.All'))
const user = [...tenant.users.values()].find(u => u.password !== undefined && u.accountEnabled)
const o = emulators.origin
const lines = [
  `Emulated Entra ID, Microsoft Graph and Databricks listening on ${o}`,
  `  CA certificate : ${emulators.caPath}   (export NODE_EXTRA_CA_CERTS=${emulators.caPath}, or curl --cacert)`,
  `  Tenant         : ${tenant.tenantId} (${tenant.domain}), ${tenant.users.size} users, ${tenant.groups.size} groups`,
  `  Discovery      : ${o}/${tenant.tenantId}/v2.0/.well-known/openid-configuration`,
  `  Graph          : ${o}/v1.0`,
  `  Databricks     : account ${DEFAULT_ACCOUNT_ID}, workspace ${DEFAULT_WORKSPACE_ID}, account-admin token ${DATABRICKS_ADMIN_PAT}`,
  `                   ${o}/api/2.0/accounts/${DEFAULT_ACCOUNT_ID}/scim/v2/Users (see docs/databricks-emulator.md)`,
  `  Control API    : ${o}/_emulator (loopback only; see docs/emulators.md)`
]
if (demoWorkspace) {
  lines.push(`  Demo workspace : ${DEMO_DASHBOARD.workspaceId}: dashboard '${DEMO_DASHBOARD.displayName}' ${DEMO_DASHBOARD.id} in ${DEMO_DASHBOARD.folder}, managed by ${DEMO_DASHBOARD.manager}`)
}
if (app !== undefined) {
  lines.push(
    `  Client id      : ${app.appId}`,
    `  Client secret  : ${app.secret ?? ''}`,
    '',
    'App token for Microsoft Graph:',
    `  curl --cacert ${emulators.caPath} -d grant_type=client_credentials -d client_id=${app.appId} \\`,
    `    --data-urlencode client_secret='${app.secret ?? ''}' -d scope=https://graph.microsoft.com/.default \\`,
    `    ${o}/${tenant.tenantId}/oauth2/v2.0/token`
  )
}
if (app !== undefined && user !== undefined) {
  lines.push(
    '',
    `User token (password grant) for ${user.userPrincipalName}:`,
    `  curl --cacert ${emulators.caPath} -d grant_type=password -d client_id=${app.appId} --data-urlencode client_secret='${app.secret ?? ''}' \\`,
    `    --data-urlencode username='${user.userPrincipalName}' --data-urlencode password='${user.password ?? ''}' -d scope=api://${app.appId}/.default \\`,
    `    ${o}/${tenant.tenantId}/oauth2/v2.0/token`
  )
}
console.log(lines.join('\n'))

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    emulators.close().then(() => process.exit(0), () => process.exit(1))
  })
}
