// Benchmark of the tenant generator and the Directory model at "big tenant" scale.
//
//   npx tsx bench/generator.ts                       # 100,000 users, 43,000 groups, depth 10
//   npx tsx bench/generator.ts '{"users":5000}'      # other knobs (merged over the defaults below)
//
// Writes bench/results/generator.json and prints a table.

import { availableParallelism } from 'node:os'
import { pathToFileURL } from 'node:url'
import { generateTenant, type GeneratorKnobs } from '../emulators/tenant/generator.ts'
import { Directory } from '../emulators/tenant/model.ts'
import { writeResult } from './lib/results.ts'

export const BIG_TENANT_KNOBS: GeneratorKnobs = Object.freeze({
  seed: 42,
  users: 100_000,
  groups: 43_000,
  depth: 10,
  fanOut: 4,
  membershipsPerUser: 3,
  servicePrincipals: 200,
  heavyUsers: 5,
  heavyUserGroups: 1200,
  guests: 2000,
  disabledUsers: 1000
})

export interface GeneratorBenchResult {
  name: 'generator'
  date: string
  node: string
  platform: string
  cpus: number
  knobs: GeneratorKnobs
  timingsMs: {
    generate: number
    serialize: number
    load: number
    /** First call of Directory.transitiveParents for a heavy user. */
    transitiveParentsHeavy: number
    /** Median of 5 further calls. */
    transitiveParentsHeavyMedian: number
    total: number
  }
  memory: {
    /** Peak resident set size of the whole process so far (getrusage maxRSS). */
    peakRssMB: number
    /** Largest heapUsed / rss seen in the samples taken between and after the steps. */
    peakHeapUsedSampledMB: number
    peakRssSampledMB: number
    samples: Array<{ after: string, rssMB: number, heapUsedMB: number }>
  }
  counts: {
    users: number
    guests: number
    disabledUsers: number
    groups: number
    servicePrincipals: number
    applications: number
    /** Every entry of every group's `members`. */
    membershipEdges: number
    userMemberships: number
    groupInGroupMemberships: number
    servicePrincipalMemberships: number
    maxNestingDepth: number
    heavyUserDirectGroups: number
    heavyUserTransitiveGroups: number
    fixtureJsonBytes: number
  }
}

const MB = 1024 * 1024
const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits

/** Builds a tenant with the generator, loads it into a Directory, and measures each step. */
export function measureGenerator (overrides: GeneratorKnobs = {}): GeneratorBenchResult {
  const knobs: GeneratorKnobs = { ...BIG_TENANT_KNOBS, ...overrides }
  const samples: GeneratorBenchResult['memory']['samples'] = []
  const sample = (after: string): void => {
    const m = process.memoryUsage()
    samples.push({ after, rssMB: round(m.rss / MB), heapUsedMB: round(m.heapUsed / MB) })
  }
  const time = <T>(step: string, fn: () => T): [T, number] => {
    const start = performance.now()
    const out = fn()
    const ms = performance.now() - start
    sample(step)
    return [out, round(ms)]
  }

  sample('start')
  const t0 = performance.now()
  const [fixture, generate] = time('generate', () => generateTenant(knobs))
  const [fixtureJsonBytes, serialize] = time('serialize', () => Buffer.byteLength(JSON.stringify(fixture)))
  const [dir, load] = time('load', () => new Directory(fixture))

  // A heavy user: the user with the most direct groups.
  let heavy = fixture.users[0]?.id
  let heavyUserDirectGroups = 0
  for (const u of fixture.users) {
    const n = dir.directParents(u.id).length
    if (n > heavyUserDirectGroups) {
      heavyUserDirectGroups = n
      heavy = u.id
    }
  }
  let heavyUserTransitiveGroups = 0
  let transitiveParentsHeavy = 0
  let transitiveParentsHeavyMedian = 0
  if (heavy !== undefined) {
    const [closure, first] = time('transitiveParents', () => dir.transitiveParents(heavy))
    heavyUserTransitiveGroups = closure.length
    transitiveParentsHeavy = first
    const runs: number[] = []
    for (let i = 0; i < 5; i++) {
      const start = performance.now()
      dir.transitiveParents(heavy)
      runs.push(performance.now() - start)
    }
    transitiveParentsHeavyMedian = round(runs.sort((a, b) => a - b)[2] as number, 2)
  }
  const total = round(performance.now() - t0)

  let userMemberships = 0
  let groupInGroupMemberships = 0
  let servicePrincipalMemberships = 0
  for (const g of fixture.groups) {
    for (const m of g.members) {
      const kind = dir.kindOf(m)
      if (kind === 'user') userMemberships++
      else if (kind === 'group') groupInGroupMemberships++
      else servicePrincipalMemberships++
    }
  }

  const peakRssMB = round(process.resourceUsage().maxRSS / 1024)
  return {
    name: 'generator',
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: availableParallelism(),
    knobs,
    timingsMs: { generate, serialize, load, transitiveParentsHeavy, transitiveParentsHeavyMedian, total },
    memory: {
      peakRssMB,
      peakHeapUsedSampledMB: Math.max(...samples.map(s => s.heapUsedMB)),
      peakRssSampledMB: Math.max(...samples.map(s => s.rssMB)),
      samples
    },
    counts: {
      users: dir.users.size,
      guests: fixture.users.filter(u => u.userType === 'Guest').length,
      disabledUsers: fixture.users.filter(u => u.accountEnabled === false).length,
      groups: dir.groups.size,
      servicePrincipals: dir.servicePrincipals.size,
      applications: dir.applications.size,
      membershipEdges: userMemberships + groupInGroupMemberships + servicePrincipalMemberships,
      userMemberships,
      groupInGroupMemberships,
      servicePrincipalMemberships,
      maxNestingDepth: maxNestingDepth(dir),
      heavyUserDirectGroups,
      heavyUserTransitiveGroups,
      fixtureJsonBytes
    }
  }
}

/** Groups in the longest chain of nested groups (1 = no nesting). Assumes no cycles, as the generator makes none. */
export function maxNestingDepth (dir: Directory): number {
  const depth = new Map<string, number>()
  const depthOf = (g: string): number => {
    const known = depth.get(g)
    if (known !== undefined) return known
    // Iterative post-order walk up the parents, so long chains do not overflow the stack.
    const stack = [g]
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as string
      const parents = dir.directParents(top)
      const pending = parents.filter(p => !depth.has(p))
      if (pending.length > 0) {
        stack.push(...pending)
        continue
      }
      stack.pop()
      depth.set(top, 1 + Math.max(0, ...parents.map(p => depth.get(p) as number)))
    }
    return depth.get(g) as number
  }
  let max = 0
  for (const g of dir.groups.keys()) max = Math.max(max, depthOf(g))
  return max
}

export function tableRows (r: GeneratorBenchResult): Array<[string, string]> {
  return [
    ['generate', `${r.timingsMs.generate} ms`],
    ['JSON.stringify', `${r.timingsMs.serialize} ms (${round(r.counts.fixtureJsonBytes / MB)} MB)`],
    ['new Directory', `${r.timingsMs.load} ms`],
    ['transitiveParents(heavy)', `${r.timingsMs.transitiveParentsHeavy} ms first, ${r.timingsMs.transitiveParentsHeavyMedian} ms median`],
    ['total', `${r.timingsMs.total} ms`],
    ['peak RSS (maxRSS)', `${r.memory.peakRssMB} MB`],
    ['peak heapUsed (sampled)', `${r.memory.peakHeapUsedSampledMB} MB`],
    ['users / guests / disabled', `${r.counts.users} / ${r.counts.guests} / ${r.counts.disabledUsers}`],
    ['groups / max nesting', `${r.counts.groups} / ${r.counts.maxNestingDepth}`],
    ['service principals / apps', `${r.counts.servicePrincipals} / ${r.counts.applications}`],
    ['membership edges', `${r.counts.membershipEdges} (users ${r.counts.userMemberships}, groups ${r.counts.groupInGroupMemberships}, SPs ${r.counts.servicePrincipalMemberships})`],
    ['heavy user groups', `${r.counts.heavyUserDirectGroups} direct, ${r.counts.heavyUserTransitiveGroups} transitive`]
  ]
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const overrides = process.argv[2] !== undefined ? JSON.parse(process.argv[2]) as GeneratorKnobs : {}
  const { name: _name, ...result } = measureGenerator(overrides)
  writeResult('generator', result, tableRows({ name: 'generator', ...result }))
}
