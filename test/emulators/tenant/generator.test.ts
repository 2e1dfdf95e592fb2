import t from 'tap'
import {
  defaultKnobs, GENERATED_APP_ROLES, generateDirectory, generateTenant, resolveKnobs, upnPart, type GeneratorKnobs
} from '../../../emulators/tenant/generator.ts'
import { Directory, isGuid, type TenantFixture } from '../../../emulators/tenant/model.ts'

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

const small: GeneratorKnobs = {
  seed: 7,
  users: 120,
  groups: 60,
  depth: 4,
  fanOut: 3,
  membershipsPerUser: 3,
  servicePrincipals: 6,
  heavyUsers: 2,
  heavyUserGroups: 20,
  guests: 10,
  disabledUsers: 5
}

function allIds (f: TenantFixture): string[] {
  return [
    ...f.users.map(u => u.id),
    ...f.groups.map(g => g.id),
    ...f.servicePrincipals.map(s => s.id),
    ...f.applications.map(a => a.appId)
  ]
}

/** Groups in the chain from `groupId` up to its root, following the (single) parent group. */
function chainUp (dir: Directory, groupId: string): string[] {
  const chain = [groupId]
  for (let p = dir.directParents(groupId); p.length > 0; p = dir.directParents(chain[chain.length - 1] as string)) {
    chain.push(p[0] as string)
  }
  return chain
}

t.test('same knobs and seed give byte-identical JSON', async t => {
  t.equal(JSON.stringify(generateTenant(small)), JSON.stringify(generateTenant(small)))
  t.same(generateTenant(), generateTenant({}), 'defaults are deterministic too')
  t.same(generateTenant({ ...small, tenantId: undefined }), generateTenant(small), 'an undefined knob means its default')
})

t.test('different seeds give different tenants', async t => {
  const a = generateTenant({ ...small, seed: 1 })
  const b = generateTenant({ ...small, seed: 2 })
  t.not(a.tenantId, b.tenantId)
  t.not(a.domain, b.domain)
  t.notSame(a.users.map(u => u.displayName), b.users.map(u => u.displayName))
  const idsA = new Set(allIds(a))
  t.equal(allIds(b).filter(id => idsA.has(id)).length, 0, 'no id in common')
  // Seeds beyond 32 bits are not folded onto small ones.
  t.not(generateTenant({ ...small, seed: 2 ** 32 + 1 }).tenantId, generateTenant({ ...small, seed: 1 }).tenantId)
})

t.test('tenant id and domain: derived from the seed unless given', async t => {
  const f = generateTenant({ ...small, seed: 12 })
  t.ok(V4.test(f.tenantId))
  t.equal(f.domain, 'contoso-12.onmicrosoft.com')
  t.equal(generateTenant({ seed: 12, users: 3, groups: 2, heavyUsers: 0, guests: 0, disabledUsers: 0 }).tenantId, f.tenantId,
    'the default tenant id depends on the seed only')
  const g = generateTenant({ ...small, tenantId: '11111111-2222-4333-8444-555555555555', domain: 'fabrikam.onmicrosoft.com' })
  t.equal(g.tenantId, '11111111-2222-4333-8444-555555555555')
  t.equal(g.domain, 'fabrikam.onmicrosoft.com')
  t.ok(g.users.every(u => u.userPrincipalName.endsWith('@fabrikam.onmicrosoft.com')))
  t.equal(generateTenant({ ...small, tenantId: 'AAAAAAAA-2222-4333-8444-555555555555' }).tenantId, 'aaaaaaaa-2222-4333-8444-555555555555')
})

t.test('knob counts are respected and the tenant loads into a Directory', async t => {
  const f = generateTenant(small)
  t.equal(f.users.length, 120)
  t.equal(f.groups.length, 60)
  t.equal(f.servicePrincipals.length, 6)
  t.equal(f.applications.length, 6)
  t.equal(f.users.filter(u => u.userType === 'Guest').length, 10)
  t.equal(f.users.filter(u => u.accountEnabled === false).length, 5)

  const dir = new Directory(f)
  t.equal(dir.users.size, 120)
  t.equal(dir.groups.size, 60)
  t.equal(dir.servicePrincipals.size, 6, 'every application already has its service principal')

  const ids = allIds(f)
  t.ok(ids.every(id => V4.test(id)), 'every id is a lowercase v4-shaped GUID')
  t.equal(new Set(ids).size, ids.length, 'ids are unique')
  t.ok(V4.test(f.tenantId))

  const heavy = f.users.filter(u => dir.directParents(u.id).length === 20)
  t.equal(heavy.length, 2, 'heavyUsers users have heavyUserGroups direct groups')
  const ordinary = f.users.filter(u => !heavy.includes(u))
  t.ok(ordinary.every(u => dir.directParents(u.id).length === 3), 'everyone else has membershipsPerUser direct groups')
  t.ok(heavy.every(u => u.accountEnabled === true && u.userType === 'Member'), 'heavy users are enabled members')
})

t.test('users look real: names, UPNs, guests, departments', async t => {
  const f = generateTenant(small)
  const upns = f.users.map(u => u.userPrincipalName.toLowerCase())
  t.equal(new Set(upns).size, upns.length, 'UPNs are unique')
  for (const u of f.users) {
    t.equal(u.displayName, `${u.givenName as string} ${u.surname as string}`)
    if (u.userType === 'Guest') {
      t.match(u.userPrincipalName, /^[a-z0-9.'-]+_[a-z0-9.-]+#EXT#@contoso-7\.onmicrosoft\.com$/)
      t.equal(u.userPrincipalName.split('#EXT#')[0], (u.mail as string).replace('@', '_'), 'guest UPN is built from the home mail')
      t.equal(u.department, null)
    } else {
      t.match(u.userPrincipalName, /^[a-z0-9.'-]+@contoso-7\.onmicrosoft\.com$/)
      t.equal(u.mail, u.userPrincipalName)
      t.type(u.department, 'string')
    }
  }
  t.ok(f.users.some(u => u.displayName.includes('\'')), 'some name has an apostrophe')
  t.ok(f.users.some(u => /[^\p{ASCII}]/u.test(u.displayName)), 'some name has non-ASCII letters')
  // Two users are enough for both.
  const two = generateTenant({ users: 2, groups: 1, heavyUsers: 0, guests: 0, disabledUsers: 0 })
  t.ok(two.users.some(u => u.surname === 'O\'Brien'))
  t.ok(two.users.some(u => u.givenName === 'Zoë'))
  t.equal(new Directory(two).users.size, 2)
})

t.test('many users with the same names still get unique UPNs', async t => {
  const f = generateTenant({ users: 3000, groups: 10, heavyUsers: 0, guests: 300, disabledUsers: 0, membershipsPerUser: 1 })
  const upns = f.users.map(u => u.userPrincipalName.toLowerCase())
  t.equal(new Set(upns).size, 3000)
  t.ok(upns.some(u => /\d@/.test(u)), 'repeated names get a number')
  t.doesNotThrow(() => new Directory(f))
})

t.test('group names: department trees, duplicates, and escaping-hostile names', async t => {
  const f = generateTenant({ ...small, groups: 200, depth: 5 })
  const names = f.groups.map(g => g.displayName)
  t.ok(names.length > new Set(names).size, 'some display names are shared by different groups')
  t.ok(names.some(n => n.includes('"')), 'a name with double quotes')
  t.ok(names.some(n => n.includes('\\')), 'a name with a backslash')
  t.ok(names.some(n => n.includes('\'')), 'a name with an apostrophe')
  t.ok(names.some(n => /[^\p{ASCII}]/u.test(n)), 'a non-ASCII name')
  t.ok(names.some(n => /^[A-Za-z&' ]+ - [A-Za-z&' ]+ - [^-]+$/.test(n)), 'names like "Finance - Payroll - EMEA"')

  const dir = new Directory(f)
  const roots = f.groups.filter(g => dir.directParents(g.id).length === 0)
  t.ok(roots.length >= 2)
  for (const r of roots) t.equal(r.mailEnabled, true)
  t.ok(f.groups.every(g => g.securityEnabled || g.mailEnabled), 'distribution lists are mail-enabled')
})

t.test('depth 10 gives a chain of ten nested groups, and no deeper', async t => {
  const f = generateTenant({ users: 50, groups: 300, depth: 10, fanOut: 3, heavyUsers: 0, guests: 0, disabledUsers: 0 })
  const dir = new Directory(f)
  let deepest = ''
  let max = -1
  for (const g of f.groups) {
    const n = dir.transitiveParents(g.id).length
    if (n > max) [max, deepest] = [n, g.id]
  }
  t.equal(max, 9, 'the deepest group has nine ancestors')
  const chain = chainUp(dir, deepest)
  t.equal(chain.length, 10)
  for (let i = 1; i < chain.length; i++) t.ok(dir.directMembers(chain[i] as string).includes(chain[i - 1] as string))
  t.equal(dir.directParents(chain[9] as string).length, 0, 'the chain ends at a root')

  const member = dir.directMembers(deepest).find(m => dir.kindOf(m) === 'user')
  if (member !== undefined) t.ok(dir.transitiveParents(member).length >= 10, 'a member of the deepest group is in 10+ groups')

  for (const g of f.groups) {
    t.ok(dir.directMembers(g.id).filter(m => dir.kindOf(m) === 'group').length <= 3, 'fanOut bounds the child groups')
    t.ok(dir.directParents(g.id).length <= 1, 'groups form trees')
  }

  const flat = new Directory(generateTenant({ users: 10, groups: 20, depth: 1, heavyUsers: 0, guests: 0, disabledUsers: 0 }))
  t.ok([...flat.groups.keys()].every(g => flat.directParents(g).length === 0), 'depth 1: no nesting')
})

t.test('every tree reaches the full depth when it has enough groups', async t => {
  const f = generateTenant({ users: 10, groups: 100, depth: 6, fanOut: 2, heavyUsers: 0, guests: 0, disabledUsers: 0 })
  const dir = new Directory(f)
  const roots = f.groups.filter(g => dir.directParents(g.id).length === 0).map(g => g.id)
  for (const root of roots) {
    const size = dir.transitiveMembers(root).filter(m => dir.kindOf(m) === 'group').length + 1
    const deepest = Math.max(0, ...dir.transitiveMembers(root).filter(m => dir.kindOf(m) === 'group').map(g => chainUp(dir, g).length))
    if (size >= 6) t.equal(deepest, 6)
  }
})

t.test('heavy users are in more than 1,000 groups transitively', async t => {
  const dir = generateDirectory({ seed: 3, users: 40, groups: 1300, depth: 3, fanOut: 5, heavyUsers: 2, heavyUserGroups: 1050, guests: 2, disabledUsers: 1 })
  const heavy = [...dir.users.values()].filter(u => dir.directParents(u.id).length === 1050)
  t.equal(heavy.length, 2)
  for (const u of heavy) {
    const groups = dir.transitiveParents(u.id)
    t.ok(groups.length > 1000, `${groups.length} groups`)
    t.equal(new Set(groups).size, groups.length)
  }
  // heavyUserGroups is capped at the number of groups.
  const capped = generateDirectory({ users: 5, groups: 30, heavyUsers: 1, heavyUserGroups: 1200, guests: 0, disabledUsers: 0 })
  t.ok([...capped.users.keys()].some(u => capped.directParents(u).length === 30))
})

t.test('service principals: applications, secrets, roles, group memberships', async t => {
  const f = generateTenant({ ...small, servicePrincipals: 20 })
  const dir = new Directory(f)
  t.equal(f.applications.length, 20)
  for (const sp of f.servicePrincipals) {
    const app = dir.application(sp.appId)
    t.ok(app, 'each service principal has an application')
    t.equal(app?.displayName, sp.displayName)
    t.match(app?.secret, /^[A-Za-z0-9_.~-]{3}8Q~[A-Za-z0-9_.~-]{34}$/)
    t.same(app?.roles, GENERATED_APP_ROLES)
    t.equal(sp.servicePrincipalType, 'Application')
  }
  t.equal(new Set(f.applications.map(a => a.secret)).size, 20, 'secrets differ')
  t.equal(new Set(f.servicePrincipals.map(s => s.displayName)).size, 20, 'names are unique')
  const inGroups = f.servicePrincipals.filter(sp => dir.directParents(sp.id).length > 0)
  t.ok(inGroups.length >= 1, 'some service principals are group members')
  t.ok(inGroups.length < 20, 'not all of them')
  t.ok(dir.transitiveParents(f.servicePrincipals[0]?.id as string).length >= 1, 'the first one always is')
})

t.test('streams are independent: more users do not change the groups', async t => {
  const a = generateTenant({ ...small, users: 100 })
  const b = generateTenant({ ...small, users: 110 })
  t.same(b.groups.map(g => [g.id, g.displayName]), a.groups.map(g => [g.id, g.displayName]))
  t.same(b.servicePrincipals, a.servicePrincipals)
  t.equal(b.tenantId, a.tenantId)
})

t.test('empty and tiny tenants', async t => {
  const empty = generateTenant({ users: 0, groups: 0, servicePrincipals: 0, heavyUsers: 0, guests: 0, disabledUsers: 0 })
  t.same([empty.users, empty.groups, empty.servicePrincipals, empty.applications], [[], [], [], []])
  t.doesNotThrow(() => new Directory(empty))
  const noGroups = generateTenant({ users: 5, groups: 0, heavyUsers: 1, guests: 1, disabledUsers: 1 })
  t.ok(noGroups.users.every(u => u.department === null))
  t.doesNotThrow(() => new Directory(noGroups))
  const chain = new Directory(generateTenant({ users: 1, groups: 10, depth: 10, fanOut: 1, heavyUsers: 0, guests: 0, disabledUsers: 0 }))
  t.equal(Math.max(...[...chain.groups.keys()].map(g => chain.transitiveParents(g).length)), 9, 'fanOut 1: a single chain')
})

t.test('invalid knobs throw clear errors', async t => {
  t.throws(() => generateTenant({ depth: 0 }), /depth must be an integer from 1 to 10 \(got 0\)/)
  t.throws(() => generateTenant({ depth: 11 }), /depth must be an integer from 1 to 10 \(got 11\)/)
  t.throws(() => generateTenant({ depth: 2.5 }), /depth/)
  t.throws(() => generateTenant({ users: -1 }), /users must be a non-negative integer/)
  t.throws(() => generateTenant({ groups: 1.5 }), /groups must be a non-negative integer/)
  t.throws(() => generateTenant({ fanOut: 0 }), /fanOut/)
  t.throws(() => generateTenant({ seed: 0.5 }), /seed must be a safe integer/)
  t.throws(() => generateTenant({ users: 5, heavyUsers: 3, guests: 3 }), /heavyUsers \+ guests/)
  t.throws(() => generateTenant({ users: 5, heavyUsers: 2, guests: 0, disabledUsers: 4 }), /disabledUsers/)
  t.throws(() => generateTenant({ tenantId: 'not-a-guid' }), /tenantId must be a GUID/)
  t.throws(() => generateTenant({ domain: 'no spaces allowed' }), /domain must be a DNS name/)
  t.throws(() => generateTenant({ users: 2_000_000 }), /users must be at most/)
  t.throws(() => generateTenant({ groups: 2_000_000 }), /groups must be at most/)
  t.throws(() => generateTenant({ servicePrincipals: 200_000 }), /servicePrincipals must be at most/)
  t.throws(() => generateTenant({ users: 1_000_000, groups: 100_000, membershipsPerUser: 50 }), /user memberships/)
  t.throws(() => generateTenant({ usres: 5 } as unknown as GeneratorKnobs), /unknown knob 'usres'/)
  t.throws(() => generateTenant(null as unknown as GeneratorKnobs), /knobs must be an object/)
  t.throws(() => generateTenant({ depth: 0 }), { name: 'Error' })
})

t.test('resolveKnobs fills in the defaults', async t => {
  const k = resolveKnobs({ seed: 5 })
  t.match(k, { ...defaultKnobs, seed: 5, domain: 'contoso-5.onmicrosoft.com' })
  t.ok(isGuid(k.tenantId))
  t.ok(Object.isFrozen(defaultKnobs))
})

t.test('upnPart folds names into UPN-safe ASCII', async t => {
  t.equal(upnPart('Zoë'), 'zoe')
  t.equal(upnPart('O\'Brien'), 'o\'brien')
  t.equal(upnPart('Søren'), 'soren')
  t.equal(upnPart('Łukasz'), 'lukasz')
  t.equal(upnPart('Van der Berg'), 'vanderberg')
  t.equal(upnPart('Dvořák'), 'dvorak')
})
