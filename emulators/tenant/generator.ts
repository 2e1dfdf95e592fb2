// Deterministic generator of large, realistic-looking tenants (see docs/tenant-fixture.md).
//
// Same knobs ⇒ byte-identical fixture JSON. Randomness comes only from pure-rand's xoroshiro128+, seeded
// from `seed`, split into independent streams (ids and names of groups, users, memberships, service
// principals) so that changing one knob disturbs as little of the rest as possible: e.g. more users do not
// rename the groups. Everything is O(users + groups + memberships); 100,000 users and 43,000 groups in ten
// levels take a couple of seconds.

import { uniformInt } from 'pure-rand/distribution/uniformInt'
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus'
import type { JumpableRandomGenerator } from 'pure-rand/types/JumpableRandomGenerator'
import {
  Directory, isGuid,
  type ApplicationFixture, type GroupFixture, type ServicePrincipalFixture, type TenantFixture, type UserFixture
} from './model.ts'
import {
  DEPARTMENTS, FIRST_NAMES, GUEST_DOMAINS, JOB_TITLES, LAST_NAMES, LEVEL_SEGMENTS, QUIRKY_GROUP_NAMES, WORKLOADS
} from './names.ts'

export interface GeneratorKnobs {
  /** PRNG seed (a safe integer). Default 1. */
  seed?: number
  /** Tenant id (a GUID). Default: derived from the seed. */
  tenantId?: string
  /** Verified domain of the tenant. Default `contoso-<seed>.onmicrosoft.com`. */
  domain?: string
  /** Number of users, guests included. */
  users?: number
  /** Number of groups. */
  groups?: number
  /** Levels of the group trees: 1 = flat groups, 10 = a chain of ten nested groups. 1..10. */
  depth?: number
  /** Maximum number of child groups per group in the trees. */
  fanOut?: number
  /** Direct groups of each ordinary user (capped at `groups`). */
  membershipsPerUser?: number
  /** Number of service principals; each comes with an application registration and a secret. */
  servicePrincipals?: number
  /** Number of users that are direct members of `heavyUserGroups` groups. */
  heavyUsers?: number
  /** Direct groups of each heavy user (capped at `groups`). */
  heavyUserGroups?: number
  /** How many of the users are B2B guests (`…#EXT#@domain` UPNs, userType Guest). */
  guests?: number
  /** How many of the users have accountEnabled false (never a heavy user). */
  disabledUsers?: number
}

/** Every knob after defaults and validation. */
export type ResolvedKnobs = Required<GeneratorKnobs>

export const defaultKnobs: Readonly<Required<Omit<GeneratorKnobs, 'tenantId' | 'domain'>>> = Object.freeze({
  seed: 1,
  users: 1000,
  groups: 1500,
  depth: 5,
  fanOut: 4,
  membershipsPerUser: 3,
  servicePrincipals: 10,
  heavyUsers: 2,
  heavyUserGroups: 1200,
  guests: 25,
  disabledUsers: 10
})

/** Application permissions every generated application is granted. */
export const GENERATED_APP_ROLES: readonly string[] = ['User.Read.All', 'GroupMember.Read.All', 'Application.Read.All']

/** Upper bounds that keep a `POST /_emulator/tenant/generate` from exhausting memory. */
export const KNOB_LIMITS = Object.freeze({
  users: 1_000_000,
  groups: 1_000_000,
  servicePrincipals: 100_000,
  fanOut: 1000,
  membershipEdges: 20_000_000
})

const KNOB_NAMES = new Set<string>([
  'seed', 'tenantId', 'domain', 'users', 'groups', 'depth', 'fanOut', 'membershipsPerUser', 'servicePrincipals',
  'heavyUsers', 'heavyUserGroups', 'guests', 'disabledUsers'
])
const COUNT_KNOBS = ['users', 'groups', 'membershipsPerUser', 'servicePrincipals', 'heavyUsers', 'heavyUserGroups', 'guests', 'disabledUsers'] as const

const DOMAIN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/i

function fail (message: string): never {
  throw new Error(`tenant generator: ${message}`)
}

/** Applies defaults and checks every knob; throws an Error naming the bad knob. */
export function resolveKnobs (knobs: GeneratorKnobs = {}): ResolvedKnobs {
  if (typeof knobs !== 'object' || knobs === null || Array.isArray(knobs)) fail('knobs must be an object')
  for (const key of Object.keys(knobs)) {
    if (!KNOB_NAMES.has(key)) fail(`unknown knob '${key}' (known: ${[...KNOB_NAMES].join(', ')})`)
  }
  const given = Object.fromEntries(Object.entries(knobs).filter(([, v]) => v !== undefined)) as GeneratorKnobs
  const k = { ...defaultKnobs, ...given }
  if (!Number.isSafeInteger(k.seed)) fail(`seed must be a safe integer (got ${String(k.seed)})`)
  for (const name of COUNT_KNOBS) {
    const v = k[name]
    if (!Number.isSafeInteger(v) || v < 0) fail(`${name} must be a non-negative integer (got ${String(v)})`)
  }
  if (!Number.isInteger(k.depth) || k.depth < 1 || k.depth > 10) {
    fail(`depth must be an integer from 1 to 10 (got ${String(k.depth)})`)
  }
  if (!Number.isInteger(k.fanOut) || k.fanOut < 1 || k.fanOut > KNOB_LIMITS.fanOut) {
    fail(`fanOut must be an integer from 1 to ${KNOB_LIMITS.fanOut} (got ${String(k.fanOut)})`)
  }
  if (k.users > KNOB_LIMITS.users) fail(`users must be at most ${KNOB_LIMITS.users} (got ${k.users})`)
  if (k.groups > KNOB_LIMITS.groups) fail(`groups must be at most ${KNOB_LIMITS.groups} (got ${k.groups})`)
  if (k.servicePrincipals > KNOB_LIMITS.servicePrincipals) {
    fail(`servicePrincipals must be at most ${KNOB_LIMITS.servicePrincipals} (got ${k.servicePrincipals})`)
  }
  if (k.heavyUsers + k.guests > k.users) {
    fail(`heavyUsers + guests (${k.heavyUsers} + ${k.guests}) must not exceed users (${k.users})`)
  }
  if (k.disabledUsers > k.users - k.heavyUsers) {
    fail(`disabledUsers (${k.disabledUsers}) must not exceed users - heavyUsers (${k.users - k.heavyUsers})`)
  }
  const edges = (k.users - k.heavyUsers) * Math.min(k.membershipsPerUser, k.groups) +
    k.heavyUsers * Math.min(k.heavyUserGroups, k.groups)
  if (edges > KNOB_LIMITS.membershipEdges) {
    fail(`the knobs ask for ${edges} user memberships; the limit is ${KNOB_LIMITS.membershipEdges}`)
  }
  const seed = k.seed
  const tenantId = k.tenantId ?? seededGuid(seed)
  if (typeof tenantId !== 'string' || !isGuid(tenantId)) fail(`tenantId must be a GUID (got ${String(tenantId)})`)
  const domain = k.domain ?? `contoso-${seed}.onmicrosoft.com`
  if (typeof domain !== 'string' || !DOMAIN.test(domain)) fail(`domain must be a DNS name (got ${String(domain)})`)
  return { ...k, tenantId: tenantId.toLowerCase(), domain }
}

// ---- randomness -----------------------------------------------------------------------------------

type Rng = JumpableRandomGenerator

/** xoroshiro128+ seeded from all 53 bits of `seed` (pure-rand's own seeding only uses 32), then warmed up. */
function seededRng (seed: number): Rng {
  const lo = seed | 0
  const hi = Math.floor(seed / 0x1_0000_0000) | 0
  // The same state as pure-rand's xoroshiro128plus(seed) for 32-bit seeds; never all-zero (s00 = ~s11).
  const rng = xoroshiro128plusFromState([~hi, ~lo, lo, hi])
  // The first outputs of xoroshiro from such a sparse state are close to the seed itself: skip them.
  for (let i = 0; i < 64; i++) rng.next()
  return rng
}

/** `count` independent streams: each is `jump()`ed 2^64 steps past the previous one. */
function streams (seed: number, count: number): Rng[] {
  const base = seededRng(seed)
  const out: Rng[] = []
  for (let i = 0; i < count; i++) {
    base.jump()
    out.push(base.clone())
  }
  return out
}

const int = (rng: Rng, n: number): number => uniformInt(rng, 0, n - 1)
const pick = <T>(rng: Rng, list: readonly T[]): T => list[int(rng, list.length)] as T
const VARIANT = ['8', '9', 'a', 'b']
const hex8 = (n: number): string => (n >>> 0).toString(16).padStart(8, '0')

/** A lowercase version-4-shaped GUID from 122 bits of the PRNG. */
function randomGuid (rng: Rng): string {
  const s = hex8(rng.next()) + hex8(rng.next()) + hex8(rng.next()) + hex8(rng.next())
  const variant = VARIANT[parseInt(s[16] as string, 16) & 3] as string
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-4${s.slice(13, 16)}-${variant}${s.slice(17, 20)}-${s.slice(20, 32)}`
}

/** The default tenant id of a seed: the first draw of the first stream (the one generateTenant reserves for it). */
function seededGuid (seed: number): string {
  return randomGuid(streams(seed, 1)[0] as Rng)
}

const SECRET_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-'
/** A client secret shaped like Entra's: 3 characters, `8Q~`, 34 characters (40 in all). */
function randomSecret (rng: Rng): string {
  let s = ''
  for (let i = 0; i < 37; i++) {
    if (i === 3) s += '8Q~'
    s += SECRET_CHARS[int(rng, SECRET_CHARS.length)] as string
  }
  return s
}

/** `k` distinct integers of [0, n), in draw order (all of them, in order, when k ≥ n). */
function sampleDistinct (rng: Rng, k: number, n: number): number[] {
  if (k >= n) return Array.from({ length: n }, (_, i) => i)
  const out: number[] = []
  if (k <= 16) {
    while (out.length < k) {
      const x = int(rng, n)
      if (!out.includes(x)) out.push(x)
    }
  } else if (k * 2 <= n) {
    const seen = new Set<number>()
    while (out.length < k) {
      const x = int(rng, n)
      if (!seen.has(x)) {
        seen.add(x)
        out.push(x)
      }
    }
  } else {
    const a = new Int32Array(n)
    for (let i = 0; i < n; i++) a[i] = i
    for (let i = 0; i < k; i++) {
      const j = i + int(rng, n - i)
      const t = a[i] as number
      a[i] = a[j] as number
      a[j] = t
      out.push(a[i] as number)
    }
  }
  return out
}

/** A Fisher–Yates permutation of [0, n). */
function permutation (rng: Rng, n: number): Int32Array {
  const a = new Int32Array(n)
  for (let i = 0; i < n; i++) a[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = int(rng, i + 1)
    const t = a[i] as number
    a[i] = a[j] as number
    a[j] = t
  }
  return a
}

// ---- names ----------------------------------------------------------------------------------------

const FOLD: Record<string, string> = { ø: 'o', æ: 'ae', ß: 'ss', ł: 'l', đ: 'd', œ: 'oe', þ: 'th' }

/** The UPN local-part form of a name: lowercase ASCII, diacritics dropped, apostrophes kept (Entra allows them). */
export function upnPart (name: string): string {
  return name.toLowerCase().normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[øæßłđœþ]/g, c => FOLD[c] as string)
    .replace(/[^a-z0-9'-]/g, '')
}

class UniqueNames {
  private readonly seen = new Map<string, number>()
  /**
   * `base`, or `base2`, `base3`… when `base` is taken within `scope`. Bases contain no digits, so a suffixed
   * name never collides with a base.
   */
  take (base: string, scope = ''): string {
    const key = `${base}@${scope}`
    const n = (this.seen.get(key) ?? 0) + 1
    this.seen.set(key, n)
    return n === 1 ? base : `${base}${n}`
  }
}

// ---- the generator --------------------------------------------------------------------------------

interface Trees {
  names: string[]
  /** Level of each group, 1 = a tree root. */
  levels: Uint8Array
  /** Department (root name) of each group's tree. */
  departments: string[]
  /** Ids of the direct member groups of each group. */
  children: number[][]
}

/** Number of groups in a full tree of `depth` levels and `fanOut` children per group, capped at `cap`. */
function fullTreeSize (depth: number, fanOut: number, cap: number): number {
  let size = 0
  let width = 1
  for (let l = 0; l < depth && size < cap; l++) {
    size += width
    width *= fanOut
  }
  return Math.min(size, cap)
}

/**
 * Lays out `count` groups as trees of max(3 × depth, count / 24) groups each (at most a full tree), rooted at
 * departments: one tree per department in big tenants; with more than 24 trees, several roots share a name.
 * Each tree first gets a chain reaching `depth` levels, then the rest of its groups hang under random groups
 * that are neither at the last level nor full (`fanOut` children).
 */
function layOutTrees (rng: Rng, count: number, depth: number, fanOut: number): Trees {
  const names: string[] = []
  const windows: string[][] = []
  const levels = new Uint8Array(count)
  const departments: string[] = []
  const children: number[][] = []
  const segmentOffset = new Int32Array(count)
  const openPos = new Int32Array(count).fill(-1)
  // One tree per department in big tenants; in small ones, trees of a few times the depth so they branch.
  const treeSize = Math.min(fullTreeSize(depth, fanOut, count), Math.max(3 * depth, Math.ceil(count / DEPARTMENTS.length)))
  const departmentOffset = int(rng, DEPARTMENTS.length)

  let open: number[] = []
  const closeGroup = (g: number): void => {
    const pos = openPos[g] as number
    const last = open.pop() as number
    if (last !== g) {
      open[pos] = last
      openPos[last] = pos
    }
    openPos[g] = -1
  }
  const newGroup = (level: number, window: string[], department: string): number => {
    const g = names.length
    names.push(window.join(' - '))
    windows.push(window)
    levels[g] = level
    departments.push(department)
    children.push([])
    segmentOffset[g] = int(rng, 1 << 16)
    if (level < depth) {
      openPos[g] = open.length
      open.push(g)
    }
    return g
  }
  const addChild = (parent: number): number => {
    const level = (levels[parent] as number) + 1
    const segments = LEVEL_SEGMENTS[level - 2] as readonly string[]
    const siblings = children[parent] as number[]
    // Siblings take consecutive segments from a random start, so they differ while fanOut ≤ the list length.
    const segment = segments[((segmentOffset[parent] as number) + siblings.length) % segments.length] as string
    const window = [...(windows[parent] as string[]), segment].slice(-3)
    const g = newGroup(level, window, departments[parent] as string)
    siblings.push(g)
    if (siblings.length >= fanOut) closeGroup(parent)
    return g
  }

  for (let tree = 0; names.length < count; tree++) {
    const size = Math.min(treeSize, count - names.length)
    const department = DEPARTMENTS[(departmentOffset + tree) % DEPARTMENTS.length] as string
    open = []
    let g = newGroup(1, [department], department)
    let made = 1
    for (; made < Math.min(size, depth); made++) g = addChild(g)
    for (; made < size; made++) addChild(open[int(rng, open.length)] as number)
    // Leftover open groups of this tree must not take children of the next one.
    for (const o of open) openPos[o] = -1
  }
  return { names, levels, departments, children }
}

/** Builds the tenant fixture described by `knobs` (see `defaultKnobs` and docs/tenant-fixture.md). */
export function generateTenant (knobs: GeneratorKnobs = {}): TenantFixture {
  const k = resolveKnobs(knobs)
  // Stream 0 is the tenant id's (see seededGuid); the others are one per concern.
  const [, groupRng, userRng, memberRng, spRng, quirkRng] = streams(k.seed, 6) as [Rng, Rng, Rng, Rng, Rng, Rng]
  const ids = new Set<string>()
  const newId = (rng: Rng): string => {
    let id = randomGuid(rng)
    while (ids.has(id)) id = randomGuid(rng)
    ids.add(id)
    return id
  }

  // Groups: trees, ids, a few distribution lists, then the quirks (escaping-hostile names, duplicates).
  const trees = layOutTrees(groupRng, k.groups, k.depth, k.fanOut)
  const groupIds = trees.names.map(() => newId(groupRng))
  const members: string[][] = trees.children.map(cs => cs.map(c => groupIds[c] as string))
  const quirky = k.groups >= QUIRKY_GROUP_NAMES.length + 2 ? QUIRKY_GROUP_NAMES.length : 0
  const duplicates = k.groups >= 2 ? Math.min(Math.max(1, Math.floor(k.groups / 500)), Math.floor((k.groups - quirky) / 2)) : 0
  const renamed = sampleDistinct(quirkRng, quirky + 2 * duplicates, k.groups)
  for (let i = 0; i < quirky; i++) trees.names[renamed[i] as number] = QUIRKY_GROUP_NAMES[i] as string
  for (let i = 0; i < duplicates; i++) {
    const from = renamed[quirky + 2 * i] as number
    trees.names[renamed[quirky + 2 * i + 1] as number] = trees.names[from] as string
  }

  // Users: who is heavy, a guest, disabled.
  const order = permutation(userRng, k.users)
  const role = new Uint8Array(k.users) // 0 member, 1 heavy, 2 guest
  const disabled = new Uint8Array(k.users)
  for (let j = 0; j < k.users; j++) {
    const u = order[j] as number
    role[u] = j < k.heavyUsers ? 1 : j >= k.users - k.guests ? 2 : 0
    if (j >= k.heavyUsers && j < k.heavyUsers + k.disabledUsers) disabled[u] = 1
  }
  // Make sure even small tenants have an apostrophe and a non-ASCII letter in some user's name.
  const forcedSurname = k.users >= 1 ? int(userRng, k.users) : -1
  const forcedGivenName = k.users >= 2 ? (forcedSurname + 1 + int(userRng, k.users - 1)) % k.users : -1

  const localParts = new UniqueNames()
  const users: UserFixture[] = new Array(k.users)
  for (let u = 0; u < k.users; u++) {
    const id = newId(userRng)
    const givenName = u === forcedGivenName ? 'Zoë' : pick(userRng, FIRST_NAMES)
    const surname = u === forcedSurname ? 'O\'Brien' : pick(userRng, LAST_NAMES)
    const guest = role[u] === 2
    const base = `${upnPart(givenName)}.${upnPart(surname)}`
    let userPrincipalName: string
    let mail: string
    if (guest) {
      const home = pick(userRng, GUEST_DOMAINS)
      const local = localParts.take(base, home)
      mail = `${local}@${home}`
      userPrincipalName = `${local}_${home}#EXT#@${k.domain}`
    } else {
      userPrincipalName = `${localParts.take(base)}@${k.domain}`
      mail = userPrincipalName
    }
    const jobTitle = guest ? null : pick(userRng, JOB_TITLES)

    const direct = sampleDistinct(memberRng, role[u] === 1 ? k.heavyUserGroups : k.membershipsPerUser, k.groups)
    for (const g of direct) (members[g] as string[]).push(id)
    const department = guest || direct.length === 0 ? null : trees.departments[direct[0] as number] as string

    users[u] = {
      id,
      userPrincipalName,
      displayName: `${givenName} ${surname}`,
      mail,
      accountEnabled: disabled[u] !== 1,
      userType: guest ? 'Guest' : 'Member',
      givenName,
      surname,
      jobTitle,
      department
    }
  }

  // Service principals, each with its application registration; some are members of groups.
  const servicePrincipals: ServicePrincipalFixture[] = []
  const applications: ApplicationFixture[] = []
  for (let s = 0; s < k.servicePrincipals; s++) {
    const round = Math.floor(s / WORKLOADS.length)
    const displayName = `${WORKLOADS[s % WORKLOADS.length] as string}${round === 0 ? '' : ` ${round + 1}`}`
    const appId = newId(spRng)
    const id = newId(spRng)
    applications.push({ appId, displayName, secret: randomSecret(spRng), roles: [...GENERATED_APP_ROLES] })
    servicePrincipals.push({ id, appId, displayName, accountEnabled: true, servicePrincipalType: 'Application' })
    const count = s === 0 ? 1 : int(memberRng, 4)
    for (const g of sampleDistinct(memberRng, count, k.groups)) (members[g] as string[]).push(id)
  }

  const groups: GroupFixture[] = new Array(k.groups)
  for (let g = 0; g < k.groups; g++) {
    const root = trees.levels[g] === 1
    // About one group in forty (never a root) is a distribution list: mail-enabled, not a security group.
    const distributionList = !root && int(groupRng, 40) === 0
    groups[g] = {
      id: groupIds[g] as string,
      displayName: trees.names[g] as string,
      description: root ? `Everyone in ${trees.departments[g] as string}` : null,
      securityEnabled: !distributionList,
      mailEnabled: root || distributionList,
      members: members[g] as string[]
    }
  }

  return {
    tenantId: k.tenantId,
    domain: k.domain,
    displayName: `Contoso (generated, seed ${k.seed})`,
    users,
    servicePrincipals,
    groups,
    applications
  }
}

/** A ready-to-use Directory of a generated tenant. */
export function generateDirectory (knobs: GeneratorKnobs = {}, now?: () => number): Directory {
  return new Directory(generateTenant(knobs), now)
}
