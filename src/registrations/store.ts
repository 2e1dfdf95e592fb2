// Where registration jobs live between checkpoints, so a restarted service resumes them. The port, and the
// file store: one JSON document per job in a directory, replaced atomically (write a temporary file, then
// rename over the old one: a crash leaves the previous checkpoint or the new one, never half of either).
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isFinished, type RegistrationJob } from './job.ts'

export interface JobStore {
  /** Writes the job as it is now (a new one or a checkpoint). */
  save: (job: RegistrationJob) => Promise<void>
  get: (id: string) => Promise<RegistrationJob | undefined>
  /** Ids of the jobs that are neither completed nor failed: what a starting service resumes. */
  unfinished: () => Promise<string[]>
  close: () => Promise<void>
  /**
   * Resolves true once the store can be written again (a store that can be away, Redis), false if `signal`
   * aborts first. Absent: always available. The runner pauses its items on it during an outage.
   */
  available?: (signal?: AbortSignal) => Promise<boolean>
}

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export class FileJobStore implements JobStore {
  private ready: Promise<void> | undefined
  private sequence = 0

  constructor (private readonly dir: string) {}

  async save (job: RegistrationJob): Promise<void> {
    await this.ensureDir()
    // Unique per write: two saves of one job in flight never share a temporary file.
    const tmp = join(this.dir, `.${job.id}.${process.pid}.${++this.sequence}.tmp`)
    try {
      await writeFile(tmp, JSON.stringify(job))
      await rename(tmp, this.path(job.id))
    } catch (err) {
      await rm(tmp, { force: true })
      throw err
    }
  }

  async get (id: string): Promise<RegistrationJob | undefined> {
    if (!ID.test(id)) return undefined
    try {
      return JSON.parse(await readFile(this.path(id), 'utf8')) as RegistrationJob
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  async unfinished (): Promise<string[]> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    const ids: string[] = []
    for (const name of names) {
      const id = name.endsWith('.json') ? name.slice(0, -'.json'.length) : ''
      const job = ID.test(id) ? await this.get(id) : undefined
      if (job !== undefined && !isFinished(job.status)) ids.push(job.id)
    }
    return ids
  }

  async close (): Promise<void> {}

  private path (id: string): string {
    return join(this.dir, `${id.toLowerCase()}.json`)
  }

  private async ensureDir (): Promise<void> {
    this.ready ??= mkdir(this.dir, { recursive: true }).then(() => {})
    await this.ready
  }
}
