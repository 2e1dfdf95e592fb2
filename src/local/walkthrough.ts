// The local-mode walk-through: the same five steps printed as curl commands by `npm start` and run by
// `npm run demo`, so what a newcomer copies is what the demo proves works.
export interface WalkthroughContext {
  /** The resolver, e.g. http://127.0.0.1:3000 */
  serviceUrl: string
  /** The emulators' HTTPS origin and the CA file to trust for it. */
  emulatorOrigin: string
  caPath: string
  tenantId: string
  /** A public client that may use the password grant, and the resolver's app id (the token audience). */
  cliAppId: string
  resolverAppId: string
  user: { userPrincipalName: string, password: string }
  workspaceId: string
  dashboardId: string
  /** Someone whose access comes through nested groups and an inherited folder grant. */
  colleague: string
  /** Someone who has never signed in, to share the dashboard with. */
  newcomer: string
}

export interface WalkthroughStep {
  title: string
  method: 'GET' | 'POST'
  url: string
  /** A form body (the token request) or a JSON body. */
  form?: Record<string, string>
  json?: Record<string, unknown>
  /** Sends the user token from step 1. */
  authorized: boolean
  /** The shell line a person runs; `$TOKEN` is set by step 1. */
  curl: string
}

const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`

export function walkthroughSteps (c: WalkthroughContext): WalkthroughStep[] {
  const dashboard = `${c.serviceUrl}/v1/permissions/dashboards/${c.dashboardId}?workspaceId=${c.workspaceId}`
  const bearer = '-H "authorization: Bearer $TOKEN"'
  const form = {
    grant_type: 'password',
    client_id: c.cliAppId,
    username: c.user.userPrincipalName,
    password: c.user.password,
    scope: `api://${c.resolverAppId}/.default`
  }
  const share = { workspaceId: c.workspaceId, objectType: 'dashboards', objectId: c.dashboardId, principal: c.newcomer, level: 'CAN_READ' }
  const tokenUrl = `${c.emulatorOrigin}/${c.tenantId}/oauth2/v2.0/token`
  return [
    {
      title: `Get a user token for ${c.user.userPrincipalName} (password grant against the emulated Entra ID)`,
      method: 'POST',
      url: tokenUrl,
      form,
      authorized: false,
      curl: `TOKEN=$(curl -s --cacert ${q(c.caPath)} ${Object.entries(form).map(([k, v]) => `--data-urlencode ${q(`${k}=${v}`)}`).join(' ')} ${q(tokenUrl)} | node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).access_token')`
    },
    {
      title: 'Log in: resolve the user and its nested groups, materialize them in Databricks, decide workspace access',
      method: 'POST',
      url: `${c.serviceUrl}/v1/login`,
      json: { workspaceId: c.workspaceId },
      authorized: true,
      curl: `curl -s -X POST ${bearer} -H 'content-type: application/json' -d ${q(JSON.stringify({ workspaceId: c.workspaceId }))} ${q(`${c.serviceUrl}/v1/login`)}`
    },
    {
      title: `What can ${c.colleague} do on the dashboard, and why? (a folder grant reached through nested groups)`,
      method: 'GET',
      url: `${dashboard}&principal=${encodeURIComponent(c.colleague)}`,
      authorized: true,
      curl: `curl -s ${bearer} ${q(`${dashboard}&principal=${encodeURIComponent(c.colleague)}`)}`
    },
    {
      title: `Share the dashboard with ${c.newcomer}, who has never signed in`,
      method: 'POST',
      url: `${c.serviceUrl}/v1/shares`,
      json: share,
      authorized: true,
      curl: `curl -s -X POST ${bearer} -H 'content-type: application/json' -d ${q(JSON.stringify(share))} ${q(`${c.serviceUrl}/v1/shares`)}`
    },
    {
      title: `${c.newcomer}'s effective permission now, with the grant as the reason`,
      method: 'GET',
      url: `${dashboard}&principal=${encodeURIComponent(c.newcomer)}`,
      authorized: true,
      curl: `curl -s ${bearer} ${q(`${dashboard}&principal=${encodeURIComponent(c.newcomer)}`)}`
    }
  ]
}

export function formatWalkthrough (steps: WalkthroughStep[]): string {
  return [
    'Walk-through (copy each line into a shell; step 1 sets $TOKEN for the others; `npm run demo` runs them all):',
    ...steps.flatMap((s, i) => ['', `# ${i + 1}. ${s.title}`, s.curl])
  ].join('\n')
}
