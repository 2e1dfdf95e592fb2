// `npm run register -- --group <id>` or `--file <path>`: starts a bulk registration on a running service
// and follows it to the end with a progress bar (plain progress lines when stderr is not a terminal), then
// prints a summary and the failures; `--follow <job id>` follows a job already started. The wait is
// bounded (`--max-wait`, 10 minutes by default): past it the CLI stops, naming the job and how to go on
// following it, while the job goes on in the service. Exit code 0: all registered; 1: some principals
// failed or the job failed; 2: the registration could not be started or followed (usage, token, network,
// HTTP errors); 3: the job was not done within --max-wait.
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import cliProgress from 'cli-progress'
import type { RegistrationBody } from '../src/http/registration-routes.ts'
import { followJob, parseMaxWait, seconds } from './follow-job.ts'

const DEFAULT_MAX_WAIT_SECONDS = 600

const USAGE = `Usage: npm run register -- (--group <group object id> | --file <path> | --follow <job id>) [--url <service URL>] [--token <token>] [--interval <ms>] [--max-wait <seconds>]

  --group     register every user and service principal in the group, directly or through nested groups
  --file      register the principals listed in a file, one per line: an object id, a user principal
              name, a mail address or an application id; blank lines and lines starting with # are ignored
  --follow    follow a registration job already started (the id a POST /v1/registrations answered)
  --url       the service (default http://127.0.0.1:3000)
  --token     an Entra access token for the service with the Identity.Admin app role (default: $RESOLVER_TOKEN)
  --interval  how often to poll the job's progress, in milliseconds (default 1000)
  --max-wait  how long to follow the job, in seconds (default ${DEFAULT_MAX_WAIT_SECONDS}; 0: start it and do not wait); past it
              the CLI exits with code 3 and says how to go on following it: the job goes on in the service

Exit code 0: all registered; 1: some principals failed, or the job did; 2: the job could not be started or
followed; 3: the job was not done within --max-wait.`

type Progress = RegistrationBody

class UsageError extends Error {}

/** The principals of a file: one per line, `#` comments and blank lines skipped. */
function parsePrincipalFile (text: string): string[] {
  return text.split(/\r?\n/).map(line => line.trim()).filter(line => line !== '' && !line.startsWith('#'))
}

async function call (method: 'GET' | 'POST', url: string, token: string, body?: unknown, signal?: AbortSignal): Promise<{ status: number, json: Record<string, unknown>, location: string | null }> {
  let res: Response
  try {
    res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(signal !== undefined ? { signal } : {})
    })
  } catch (err) {
    if (signal?.aborted === true) throw err
    throw new Error(`Cannot reach ${new URL(url).origin}: ${(err as Error).cause !== undefined ? String((err as Error).cause) : (err as Error).message}`)
  }
  const text = await res.text()
  let json: Record<string, unknown> = {}
  try { json = JSON.parse(text) as Record<string, unknown> } catch { json = { detail: text.slice(0, 300) } }
  if (res.status >= 400) throw new Error(`${method} ${new URL(url).pathname}: HTTP ${res.status} ${String(json.code ?? '')}: ${String(json.detail ?? '')}`)
  return { status: res.status, json, location: res.headers.get('location') }
}

/** Progress on stderr: a bar on a terminal, else a line whenever the counts change (logs stay readable). */
function progressView (tty: boolean): { update: (p: Progress) => void, stop: () => void } {
  if (tty) {
    const bar = new cliProgress.SingleBar({
      format: ' {bar} {percentage}% | {value}/{total} done | {registered} registered, {failed} failed | {status}',
      hideCursor: true,
      stream: process.stderr
    }, cliProgress.Presets.shades_classic)
    let started = false
    return {
      update: p => {
        const payload = { registered: p.registered, failed: p.failed, status: p.status }
        if (!started) {
          bar.start(Math.max(p.total, 1), p.registered + p.failed, payload)
          started = true
        }
        bar.setTotal(Math.max(p.total, 1))
        bar.update(p.registered + p.failed, payload)
      },
      stop: () => { if (started) bar.stop() }
    }
  }
  let last = ''
  return {
    update: p => {
      const line = `${p.status}: ${p.registered + p.failed}/${p.total} done, ${p.registered} registered, ${p.failed} failed`
      if (line !== last) process.stderr.write(`${line}\n`)
      last = line
    },
    stop: () => {}
  }
}

/** Starts the job the options name: a group, or the principals of a file. */
async function start (base: string, token: string, values: { group?: string, file?: string }): Promise<{ json: Record<string, unknown>, location: string | null }> {
  let body: { group: string } | { principals: string[] }
  if (values.file !== undefined) {
    let text: string
    try {
      text = await readFile(values.file, 'utf8')
    } catch (err) {
      throw new UsageError(`Cannot read ${values.file}: ${(err as Error).message}`)
    }
    const principals = parsePrincipalFile(text)
    if (principals.length === 0) throw new UsageError(`${values.file} lists no principal.`)
    body = { principals }
  } else {
    body = { group: values.group as string }
  }
  return await call('POST', `${base}/v1/registrations`, token, body)
}

async function main (argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      group: { type: 'string' },
      file: { type: 'string' },
      follow: { type: 'string' },
      url: { type: 'string', default: 'http://127.0.0.1:3000' },
      token: { type: 'string' },
      interval: { type: 'string', default: '1000' },
      'max-wait': { type: 'string', default: String(DEFAULT_MAX_WAIT_SECONDS) },
      help: { type: 'boolean', short: 'h' }
    },
    strict: true
  })
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  if ([values.group, values.file, values.follow].filter(v => v !== undefined).length !== 1) throw new UsageError('Give exactly one of --group, --file and --follow.')
  const token = values.token ?? process.env.RESOLVER_TOKEN
  if (token === undefined || token === '') throw new UsageError('Give a token with --token or RESOLVER_TOKEN: an Entra access token for the service with the Identity.Admin app role.')
  const interval = Number(values.interval)
  if (!Number.isFinite(interval) || interval < 10) throw new UsageError('--interval is a number of milliseconds, at least 10.')
  const maxWaitMs = parseMaxWait(values['max-wait'])
  if (maxWaitMs === undefined) throw new UsageError('--max-wait is a number of seconds (0: do not wait).')
  const base = values.url.replace(/\/+$/, '')

  let first: Progress
  let location: string
  if (values.follow !== undefined) {
    location = `/v1/registrations/${encodeURIComponent(values.follow)}`
    first = (await call('GET', `${base}${location}`, token)).json as unknown as Progress
    process.stderr.write(`Following registration ${first.id} (${location}).\n`)
  } else {
    const created = await start(base, token, values)
    first = created.json as unknown as Progress
    location = created.location ?? `/v1/registrations/${first.id}`
    process.stderr.write(`Registration ${first.id} started (${location}).\n`)
  }
  const view = progressView(process.stderr.isTTY)
  let followed
  try {
    followed = await followJob(first, async signal => (await call('GET', new URL(location, `${base}/`).toString(), token, undefined, signal)).json as unknown as Progress, {
      maxWaitMs,
      intervalMs: interval,
      onProgress: view.update
    })
  } finally {
    view.stop()
  }
  const progress = followed.job
  if (!followed.done) {
    process.stderr.write([
      `Registration ${progress.id} is not done after ${seconds(followed.waitedMs)} (--max-wait): ${progress.status}, ${progress.registered + progress.failed} of ${progress.total} done, ${progress.registered} registered, ${progress.failed} failed.`,
      'The job goes on in the service. Follow it with:',
      `  npm run register -- --follow ${progress.id} --url ${base}${values.token !== undefined ? ' --token <token>' : ''}`,
      `or ask for it: GET ${base}${location}`
    ].join('\n') + '\n')
    return 3
  }

  const out: string[] = [`Registration ${progress.id} ${progress.status}: ${progress.registered} of ${progress.total} registered, ${progress.failed} failed${progress.pending > 0 ? `, ${progress.pending} not done` : ''}.`]
  if (progress.error !== undefined) out.push(`The job failed: ${progress.error.code}: ${progress.error.message}`)
  if (progress.failures.length > 0) {
    out.push('Failures:')
    for (const f of progress.failures) out.push(`  ${f.principal}  ${f.code}  ${f.message}`)
    if (progress.failuresTruncated) out.push(`  … and ${progress.failed - progress.failures.length} more (GET ${location}).`)
  }
  process.stdout.write(`${out.join('\n')}\n`)
  return progress.status === 'completed' && progress.failed === 0 ? 0 : 1
}

main(process.argv.slice(2)).then(code => { process.exitCode = code }, (err: Error) => {
  process.stderr.write(`${err.message}\n${err instanceof UsageError || err.name === 'TypeError' ? `\n${USAGE}\n` : ''}`)
  process.exitCode = 2
})
