// Issue 14, the Graph budget holds for the fleet: three replicas (child processes running src/server.ts,
// sharing the real Redis) with a budget of 4 Graph requests a second take cold logins of new users, each
// sent to every replica. Over the storm the fleet sends Graph requests at the budget's pace, as Graph
// counts them (a $batch's items each count); without the shared budget three replicas would send three
// times as many.
import t from 'tap'
import { startTestEmulator } from '../../helpers/emulator.ts'
import { busiestSecond, recordCalls, startFleet } from '../../helpers/fleet.ts'
import { smallTenant } from '../../helpers/tenant.ts'
import { tokenFor } from '../../helpers/service.ts'

const USERS = 6
const BUDGET = 4
const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')
const userIds = Array.from({ length: USERS }, (_, i) => `fb000000-0000-4000-8000-${hex(i, 12)}`)
const base = smallTenant()
const emulator = await startTestEmulator(t, {
  tenants: [{
    ...base,
    users: [...base.users, ...userIds.map((id, i) => ({ id, userPrincipalName: `graph${i}@contoso-test.onmicrosoft.com`, displayName: `Graph ${i}` }))],
    groups: [...base.groups, { id: 'fc000000-0000-4000-8000-000000000000', displayName: 'Graph team', members: userIds }]
  }]
})

// Every Graph request the emulator answers, with when it came (the test's own emulator, read in process),
// as Graph's throttling counts them: each item of a $batch, not the envelope.
const graphCalls = recordCalls(emulator, route => /^\S+ \/v1\.0\//.test(route) && !route.startsWith('POST /v1.0/$batch'))

t.test(`three replicas, ${BUDGET} Graph requests a second for the fleet`, async t => {
  const { replicas } = await startFleet(t, emulator, 3, { GRAPH_MAX_REQUESTS_PER_SECOND: String(BUDGET), REPLICAS: '3' })
  const tokens = await Promise.all(userIds.map(async id => await tokenFor(emulator, id)))
  graphCalls.length = 0
  const statuses = await Promise.all(tokens.flatMap(token => replicas.map(async r => {
    const res = await fetch(`${r.url}/v1/login`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
    await res.arrayBuffer()
    return res.status
  })))
  t.same([...new Set(statuses)], [200], `all ${statuses.length} cold logins get in`)
  const times = [...graphCalls].sort((a, b) => a - b)
  const most = busiestSecond(times)
  t.ok(times.length >= USERS, `Graph was asked (${times.length} requests)`)
  // Over the storm, the fleet's pace (the first second's burst aside) is the budget's; a load can only slow it.
  const rate = (times.length - BUDGET) / (((times[times.length - 1] as number) - (times[0] as number)) / 1000)
  t.ok(rate <= BUDGET * 1.25, `${rate.toFixed(1)} Graph requests a second over the storm (budget ${BUDGET}/s for the fleet)`)
  // A $batch's items reach Graph together once all their permits are granted: a second may hold a few more.
  t.ok(most <= 3 * BUDGET, `at most ${most} Graph requests within any second (three replicas each at the budget: ${3 * BUDGET} a second and more)`)
})
