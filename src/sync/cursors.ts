// Where the change feed keeps its cursors (one per tenant and kind of object), so a restarted service, or
// the next leader, resumes where the last round stopped. A cursor is saved only after its round's changes
// were applied: a crash in between replays them, and replaying is harmless (every write is idempotent).
// One process: a JSON file, replaced atomically (write a temporary file, then rename). Several replicas:
// a Redis hash, read by whichever replica runs the next round. Beside each cursor, the progress of a round
// that failed part-way: which of the changes read from that cursor were applied (dropped when the cursor
// moves on).
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Redis } from 'ioredis'
import type { DirectoryObjectKind } from '../directory/port.ts'

export interface CursorStore {
  get: (tenantId: string, kind: DirectoryObjectKind) => Promise<string | undefined>
  set: (tenantId: string, kind: DirectoryObjectKind, cursor: string) => Promise<void>
  /** Every cursor, for the status report (`tenant|kind` → cursor). */
  all: () => Promise<Map<string, string>>
  /** The last round's report (JSON), whichever replica ran it. */
  lastRound: () => Promise<string | undefined>
  setLastRound: (report: string) => Promise<void>
  /** Fingerprints of changes read from `cursor` that a failed round applied (empty when none, or for another cursor). */
  progress: (tenantId: string, kind: DirectoryObjectKind, cursor: string) => Promise<Set<string>>
  setProgress: (tenantId: string, kind: DirectoryObjectKind, cursor: string, applied: string[]) => Promise<void>
}

interface Progress { cursor: string, applied: string[] }

function parseProgress (text: string | undefined | null, cursor: string): Set<string> {
  if (text === undefined || text === null) return new Set()
  try {
    const p = JSON.parse(text) as Partial<Progress>
    return p.cursor === cursor && Array.isArray(p.applied) ? new Set(p.applied.filter(a => typeof a === 'string')) : new Set()
  } catch {
    return new Set()
  }
}

const field = (tenantId: string, kind: DirectoryObjectKind): string => `${tenantId.toLowerCase()}|${kind}`

export class FileCursorStore implements CursorStore {
  private readonly path: string
  private cache: Map<string, string> | undefined
  // Progress is worth keeping only while this process retries: a restart replays, harmlessly.
  private readonly partial = new Map<string, string>()
  // One process: the last round is only ever read by the process that ran it.
  private report: string | undefined

  constructor (directory: string) {
    this.path = join(directory, 'cursors.json')
  }

  async get (tenantId: string, kind: DirectoryObjectKind): Promise<string | undefined> {
    return (await this.load()).get(field(tenantId, kind))
  }

  async set (tenantId: string, kind: DirectoryObjectKind, cursor: string): Promise<void> {
    const cursors = await this.load()
    cursors.set(field(tenantId, kind), cursor)
    this.partial.delete(field(tenantId, kind))
    await mkdir(dirname(this.path), { recursive: true })
    const temporary = `${this.path}.${process.pid}.tmp`
    await writeFile(temporary, JSON.stringify(Object.fromEntries(cursors), null, 2) + '\n', { mode: 0o600 })
    await rename(temporary, this.path)
  }

  async all (): Promise<Map<string, string>> {
    return new Map(await this.load())
  }

  async lastRound (): Promise<string | undefined> {
    return this.report
  }

  async setLastRound (report: string): Promise<void> {
    this.report = report
  }

  async progress (tenantId: string, kind: DirectoryObjectKind, cursor: string): Promise<Set<string>> {
    return parseProgress(this.partial.get(field(tenantId, kind)), cursor)
  }

  async setProgress (tenantId: string, kind: DirectoryObjectKind, cursor: string, applied: string[]): Promise<void> {
    this.partial.set(field(tenantId, kind), JSON.stringify({ cursor, applied } satisfies Progress))
  }

  private async load (): Promise<Map<string, string>> {
    if (this.cache !== undefined) return this.cache
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      return (this.cache = new Map())
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      // An edited or damaged file counts as no cursor: the feed then reconciles everything it materialized
      // before it starts again from "now", so nothing that changed in the gap is missed.
      parsed = {}
    }
    const entries = typeof parsed === 'object' && parsed !== null ? Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === 'string') : []
    return (this.cache = new Map(entries))
  }
}

export class RedisCursorStore implements CursorStore {
  constructor (private readonly redis: Redis, private readonly key = 'jir:sync:cursors') {}

  async get (tenantId: string, kind: DirectoryObjectKind): Promise<string | undefined> {
    return await this.redis.hget(this.key, field(tenantId, kind)) ?? undefined
  }

  async set (tenantId: string, kind: DirectoryObjectKind, cursor: string): Promise<void> {
    await this.redis.multi().hset(this.key, field(tenantId, kind), cursor).hdel(`${this.key}:progress`, field(tenantId, kind)).exec()
  }

  async all (): Promise<Map<string, string>> {
    return new Map(Object.entries(await this.redis.hgetall(this.key)))
  }

  async lastRound (): Promise<string | undefined> {
    return await this.redis.get(`${this.key}:last-round`) ?? undefined
  }

  async setLastRound (report: string): Promise<void> {
    await this.redis.set(`${this.key}:last-round`, report)
  }

  async progress (tenantId: string, kind: DirectoryObjectKind, cursor: string): Promise<Set<string>> {
    return parseProgress(await this.redis.hget(`${this.key}:progress`, field(tenantId, kind)), cursor)
  }

  async setProgress (tenantId: string, kind: DirectoryObjectKind, cursor: string, applied: string[]): Promise<void> {
    await this.redis.hset(`${this.key}:progress`, field(tenantId, kind), JSON.stringify({ cursor, applied } satisfies Progress))
  }
}
