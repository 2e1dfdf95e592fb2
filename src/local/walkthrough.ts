// The local-mode walk-through: the same steps printed as curl commands by `npm start` and run by
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
  /** An application holding the resolver's `Identity.Admin` app role, for bulk registration. */
  automation: { appId: string, secret: string }
  /** A group to register with all its nested members. */
  group: { id: string, displayName: string }
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
  /** A form body (a token request) or a JSON body. */
  form?: Record<string, string>
  json?: Record<string, unknown>
  /** A token request sets this shell variable; other steps send the token held in `bearer`. */
  sets?: 'TOKEN' | 'ADMIN_TOKEN'
  bearer?: 'TOKEN' | 'ADMIN_TOKEN'
  /** The shell line a person runs. */
  curl: string
}

const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`

export function walkthroughSteps (c: WalkthroughContext): WalkthroughStep[] {
  const dashboard = `${c.serviceUrl}/v1/permissions/dashboards/${c.dashboardId}?workspaceId=${c.workspaceId}`
  const bearer = '-H "authorization: Bearer $TOKEN"'
  const scope = `api://${c.resolverAppId}/.default`
  const share = { workspaceId: c.workspaceId, objectType: 'dashboards', objectId: c.dashboardId, principal: c.newcomer, level: 'CAN_READ' }
  const tokenUrl = `${c.emulatorOrigin}/${c.tenantId}/oauth2/v2.0/token`
  const tokenStep = (title: string, sets: 'TOKEN' | 'ADMIN_TOKEN', form: Record<string, string>): WalkthroughStep => ({
    title,
    method: 'POST',
    url: tokenUrl,
    form,
    sets,
    curl: `${sets}=$(curl -s --cacert ${q(c.caPath)} ${Object.entries(form).map(([k, v]) => `--data-urlencode ${q(`${k}=${v}`)}`).join(' ')} ${q(tokenUrl)} | node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).access_token')`
  })
  const registration = { group: c.group.id }
  return [
    tokenStep(`Get a user token for ${c.user.userPrincipalName} (password grant against the emulated Entra ID)`, 'TOKEN', {
      grant_type: 'password', client_id: c.cliAppId, username: c.user.userPrincipalName, password: c.user.password, scope
    }),
    {
      title: 'Log in: resolve the user and its nested groups, materialize them in Databricks, decide workspace access',
      method: 'POST',
      url: `${c.serviceUrl}/v1/login`,
      json: { workspaceId: c.workspaceId },
      bearer: 'TOKEN',
      curl: `curl -s -X POST ${bearer} -H 'content-type: application/json' -d ${q(JSON.stringify({ workspaceId: c.workspaceId }))} ${q(`${c.serviceUrl}/v1/login`)}`
    },
    {
      title: `What can ${c.colleague} do on the dashboard, and why? (a folder grant reached through nested groups)`,
      method: 'GET',
      url: `${dashboard}&principal=${encodeURIComponent(c.colleague)}`,
      bearer: 'TOKEN',
      curl: `curl -s ${bearer} ${q(`${dashboard}&principal=${encodeURIComponent(c.colleague)}`)}`
    },
    {
      title: `Share the dashboard with ${c.newcomer}, who has never signed in`,
      method: 'POST',
      url: `${c.serviceUrl}/v1/shares`,
      json: share,
      bearer: 'TOKEN',
      curl: `curl -s -X POST ${bearer} -H 'content-type: application/json' -d ${q(JSON.stringify(share))} ${q(`${c.serviceUrl}/v1/shares`)}`
    },
    {
      title: `${c.newcomer}'s effective permission now, with the grant as the reason`,
      method: 'GET',
      url: `${dashboard}&principal=${encodeURIComponent(c.newcomer)}`,
      bearer: 'TOKEN',
      curl: `curl -s ${bearer} ${q(`${dashboard}&principal=${encodeURIComponent(c.newcomer)}`)}`
    },
    tokenStep('Get an app-only token for the automation app, which holds the Identity.Admin app role (client credentials)', 'ADMIN_TOKEN', {
      grant_type: 'client_credentials', client_id: c.automation.appId, client_secret: c.automation.secret, scope
    }),
    {
      title: `Register the group '${c.group.displayName}' and all its nested members as a background job (or: RESOLVER_TOKEN=$ADMIN_TOKEN npm run register -- --group ${c.group.id} --url ${c.serviceUrl})`,
      method: 'POST',
      url: `${c.serviceUrl}/v1/registrations`,
      json: registration,
      bearer: 'ADMIN_TOKEN',
      curl: `curl -s -X POST -H "authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' -d ${q(JSON.stringify(registration))} ${q(`${c.serviceUrl}/v1/registrations`)}`
    }
  ]
}

export function formatWalkthrough (steps: WalkthroughStep[]): string {
  return [
    'Walk-through (copy each line into a shell, in order: the token steps set $TOKEN and $ADMIN_TOKEN for the others; `npm run demo` runs them all):',
    ...steps.flatMap((s, i) => ['', `# ${i + 1}. ${s.title}`, s.curl])
  ].join('\n')
}
