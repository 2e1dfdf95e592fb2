// Membership writes to one account group, coalesced across every principal being materialized at that
// moment: account SCIM allows 2 PATCHes a second, so 500 new users in the same 10 groups must not cost
// 5,000 PATCHes. Each group has at most one open batch. It opens with the first write, waits for a PATCH
// token in the write lane (write-scheduler.ts), and every write for the group that arrives meanwhile joins
// it; it closes when the token is granted and is sent as one PATCH (more only past the adapter's per-PATCH
// limits). So the batching window is exactly the wait for the budget: nothing when the budget is idle (a
// lone login never waits for batching), and as long as the queue when it is busy.
//
// - A write that contradicts the open batch (adds a member the batch removes, or the reverse) does not
//   join: it waits for that batch and goes in the next one, so the order of contradicting writes holds.
// - Each writer gets the refusals of its own members only; a failure of the whole PATCH (throttled after
//   retries, an outage) fails every writer of the batch, each of which retries as it would have alone.
// - The batch's ticket counts for every writer waiting on it (its Retry-After), and an interactive writer
//   joining a background batch lifts it to interactive.
import { Waits, type WriteContext, type WriteLane } from './write-scheduler.ts'

interface Batch {
  add: Set<string>
  remove: Set<string>
  waits: Waits
  done: Promise<Map<string, Error>>
}

export type SendMembers<E extends Error> = (groupId: string, add: string[], remove: string[], prepaid: boolean, ctx?: WriteContext) => Promise<Map<string, E>>

export class MembershipBatches<E extends Error> {
  private readonly open = new Map<string, Batch>()

  /**
   * @param lane the PATCH lane (absent: no budget, every write is sent at once, uncoalesced)
   * @param send writes one batch; `prepaid`: its first PATCH's token was taken here
   * @param onSent hears the size of each batch sent (members added and removed)
   */
  constructor (private readonly lane: WriteLane | undefined, private readonly send: SendMembers<E>, private readonly onSent?: (members: number) => void) {}

  async write (groupId: string, add: string[], remove: string[], ctx?: WriteContext): Promise<Map<string, E>> {
    if (add.length === 0 && remove.length === 0) return new Map()
    if (this.lane === undefined) return await this.send(groupId, add, remove, false, ctx)
    const open = this.open.get(groupId)
    if (open !== undefined && (add.some(m => open.remove.has(m)) || remove.some(m => open.add.has(m)))) {
      await open.done.catch(() => {})
      return await this.write(groupId, add, remove, ctx)
    }
    const batch = open ?? this.start(groupId, this.lane, ctx)
    for (const m of add) batch.add.add(m)
    for (const m of remove) batch.remove.add(m)
    ctx?.waiting?.joined.add(batch.waits)
    if ((ctx?.priority ?? 'interactive') === 'interactive') batch.waits.raise()
    const refused = await batch.done
    const mine = new Map<string, E>()
    for (const m of add) {
      const err = refused.get(m)
      if (err !== undefined) mine.set(m, err as E)
    }
    return mine
  }

  private start (groupId: string, lane: WriteLane, ctx: WriteContext | undefined): Batch {
    const batch: Batch = { add: new Set(), remove: new Set(), waits: new Waits(), done: Promise.resolve(new Map()) }
    this.open.set(groupId, batch)
    batch.done = (async () => {
      try {
        await lane.take({ priority: ctx?.priority ?? 'interactive', owner: `group:${groupId}`, waiting: batch.waits })
      } finally {
        if (this.open.get(groupId) === batch) this.open.delete(groupId)
      }
      this.onSent?.(batch.add.size + batch.remove.size)
      return await this.send(groupId, [...batch.add], [...batch.remove], true, ctx)
    })()
    return batch
  }
}
