// The local-mode walk-through: the same steps printed as curl commands by `npm start` and run by
// `npm run demo`, so what a newcomer copies is what the demo proves works. Every value a printed line
// holds is fixed (the demo tenant's literal ids and secrets, the demo workspace and its dashboard, the
// emulators' CA under .data/, the configured ports), so the lines keep working after a restart; the one
// per-run value, the registration job's id, is kept by its own line in $JOB for the line that follows it.
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
  /** Pipe the JSON answers through `jq .` (set when jq is on the PATH of whoever reads the lines). */
  jq?: boolean
}

/** A printed line that follows what the step before it started (its own numbered step in the text). */
export interface WalkthroughFollow {
  title: string
  curl: string
  /** The shell loop polls at most this many times, this many seconds apart. */
  maxPolls: number
  intervalSeconds: number
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
  /**
   * A step that starts a registration job keeps the job's id in the shell variable $JOB, and the line
   * printed after it polls `GET /v1/registrations/$JOB` until the job is done.
   */
  follow?: WalkthroughFollow
}

const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`

/** Reads stdin as JSON: the token steps keep `access_token`; the registration step shows the job and keeps its id. */
const ACCESS_TOKEN = 'node -pe \'JSON.parse(require("fs").readFileSync(0, "utf8")).access_token\''
const JOB_ID = 'node -e \'const job = JSON.parse(require("fs").readFileSync(0, "utf8")); console.error(JSON.stringify(job, null, 2)); console.log(job.id ?? "")\''
/**
 * A job is done when it completed or failed; a problem (4xx/5xx: its status is a JSON number) also ends
 * the loop. A `case`, not a pipe into grep: no subprocess, and nothing for `set -o pipefail` to trip on.
 */
const DONE = 'case "$ANSWER" in *\'"status":"completed"\'*|*\'"status":"failed"\'*|*\'"status":\'[45][0-9][0-9]*) break;; esac'
const FOLLOW = { maxPolls: 60, intervalSeconds: 1 }

export function walkthroughSteps (c: WalkthroughContext): WalkthroughStep[] {
  const dashboard = `${c.serviceUrl}/v1/permissions/dashboards/${c.dashboardId}?workspaceId=${c.workspaceId}`
  const bearer = '-H "authorization: Bearer $TOKEN"'
  const adminBearer = '-H "authorization: Bearer $ADMIN_TOKEN"'
  const pretty = c.jq === true ? ' | jq .' : ''
  const scope = `api://${c.resolverAppId}/.default`
  const share = { workspaceId: c.workspaceId, objectType: 'dashboards', objectId: c.dashboardId, principal: c.newcomer, level: 'CAN_READ' }
  const tokenUrl = `${c.emulatorOrigin}/${c.tenantId}/oauth2/v2.0/token`
  const tokenStep = (title: string, sets: 'TOKEN' | 'ADMIN_TOKEN', form: Record<string, string>): WalkthroughStep => ({
    title,
    method: 'POST',
    url: tokenUrl,
    form,
    sets,
    curl: `${sets}=$(curl -s --cacert ${q(c.caPath)} ${Object.entries(form).map(([k, v]) => `--data-urlencode ${q(`${k}=${v}`)}`).join(' ')} ${q(tokenUrl)} | ${ACCESS_TOKEN})`
  })
  const registration = { group: c.group.id }
  const jobUrl = `${q(`${c.serviceUrl}/v1/registrations/`)}"$JOB"`
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
      curl: `curl -s -X POST ${bearer} -H 'content-type: application/json' -d ${q(JSON.stringify({ workspaceId: c.workspaceId }))} ${q(`${c.serviceUrl}/v1/login`)}${pretty}`
    },
    {
      title: `What can ${c.colleague} do on the dashboard, and why? (a folder grant reached through nested groups)`,
      method: 'GET',
      url: `${dashboard}&principal=${encodeURIComponent(c.colleague)}`,
      bearer: 'TOKEN',
      curl: `curl -s ${bearer} ${q(`${dashboard}&principal=${encodeURIComponent(c.colleague)}`)}${pretty}`
    },
    {
      title: `Share the dashboard with ${c.newcomer}, who has never signed in`,
      method: 'POST',
      url: `${c.serviceUrl}/v1/shares`,
      json: share,
      bearer: 'TOKEN',
      curl: `curl -s -X POST ${bearer} -H 'content-type: application/json' -d ${q(JSON.stringify(share))} ${q(`${c.serviceUrl}/v1/shares`)}${pretty}`
    },
    {
      title: `${c.newcomer}'s effective permission now, with the grant as the reason`,
      method: 'GET',
      url: `${dashboard}&principal=${encodeURIComponent(c.newcomer)}`,
      bearer: 'TOKEN',
      curl: `curl -s ${bearer} ${q(`${dashboard}&principal=${encodeURIComponent(c.newcomer)}`)}${pretty}`
    },
    tokenStep('Get an app-only token for the automation app, which holds the Identity.Admin app role (client credentials)', 'ADMIN_TOKEN', {
      grant_type: 'client_credentials', client_id: c.automation.appId, client_secret: c.automation.secret, scope
    }),
    {
      title: `Register the group '${c.group.displayName}' and all its nested members as a background job, keeping its id in $JOB (or: RESOLVER_TOKEN=$ADMIN_TOKEN npm run register -- --group ${c.group.id} --url ${c.serviceUrl})`,
      method: 'POST',
      url: `${c.serviceUrl}/v1/registrations`,
      json: registration,
      bearer: 'ADMIN_TOKEN',
      curl: `JOB=$(curl -s -X POST ${adminBearer} -H 'content-type: application/json' -d ${q(JSON.stringify(registration))} ${q(`${c.serviceUrl}/v1/registrations`)} | ${JOB_ID})`,
      follow: {
        title: `Follow the job until it is done (polls GET /v1/registrations/$JOB once a second, at most ${FOLLOW.maxPolls} times, then shows it; or: RESOLVER_TOKEN=$ADMIN_TOKEN npm run register -- --follow $JOB --url ${c.serviceUrl})`,
        curl: `for i in $(seq ${FOLLOW.maxPolls}); do ANSWER=$(curl -s ${adminBearer} ${jobUrl}); ${DONE}; sleep ${FOLLOW.intervalSeconds}; done; echo "$ANSWER"${pretty}`,
        ...FOLLOW
      }
    }
  ]
}

/** The printed steps in order, each follow-up line numbered as a step of its own. */
export function printedSteps (steps: WalkthroughStep[]): Array<{ title: string, curl: string }> {
  return steps.flatMap(s => [{ title: s.title, curl: s.curl }, ...(s.follow !== undefined ? [{ title: s.follow.title, curl: s.follow.curl }] : [])])
}

export function formatWalkthrough (steps: WalkthroughStep[], options: { jq?: boolean } = {}): string {
  return [
    'Walk-through (copy each line into a shell, in order: the token steps set $TOKEN and $ADMIN_TOKEN for the others; `npm run demo` runs them all).',
    options.jq === true
      ? 'Answers are pretty-printed with jq (found on PATH). The lines hold no per-run value: they work again after a restart, from step 1.'
      : 'Answers are printed as they come (with jq on PATH at start, the lines pipe them through `jq .`). The lines hold no per-run value: they work again after a restart, from step 1.',
    ...printedSteps(steps).flatMap((s, i) => ['', `# ${i + 1}. ${s.title}`, s.curl])
  ].join('\n')
}
