import t from 'tap'
import { ALL_GROUPS, admitsGroup, filterClosure, type Closure, type GroupFilter } from '../../../src/resolver/group-filter.ts'

const g = (id: string, securityEnabled = true): { id: string, displayName: string, securityEnabled: boolean } => ({ id, displayName: id.toUpperCase(), securityEnabled })

// The user is directly in `team` (security) and `m365` (a Microsoft 365 group) and in `payroll-fake`
// (made by a user, outside the trusted tree). team ⊂ dept ⊂ trusted; m365 ⊂ dept; a cycle x ⊂ y ⊂ x.
const closure: Closure = {
  groups: [g('team'), g('m365', false), g('dept'), g('trusted'), g('payroll-fake'), g('x'), g('y')],
  directGroupIds: ['team', 'm365', 'payroll-fake', 'x'],
  parents: new Map([['team', ['dept']], ['m365', ['dept']], ['dept', ['trusted']], ['trusted', []], ['payroll-fake', []], ['x', ['y']], ['y', ['x', 'trusted']]])
}
const ids = (c: Closure): string[] => c.groups.map(x => x.id).sort()

t.test('no filter: the closure as it is', async t => {
  t.equal(filterClosure(ALL_GROUPS, closure), closure)
})

t.test('security groups only: a Microsoft 365 group is left out', async t => {
  const out = filterClosure({ securityOnly: true, parents: new Set() }, closure)
  t.same(ids(out), ['dept', 'payroll-fake', 'team', 'trusted', 'x', 'y'])
  t.same(out.directGroupIds.sort(), ['dept', 'payroll-fake', 'team', 'x'], 'the member of m365 is still in dept, through it')
})

t.test('under given parents: only the trusted tree (cycles included), nesting collapsed', async t => {
  const filter: GroupFilter = { securityOnly: false, parents: new Set(['trusted']) }
  const out = filterClosure(filter, closure)
  t.same(ids(out), ['dept', 'm365', 'team', 'trusted', 'x', 'y'], 'payroll-fake is out; x and y are nested in trusted through y')
  t.same(out.directGroupIds.sort(), ['m365', 'team', 'x'])
  t.same(out.parents.get('y')?.sort(), ['trusted', 'x'])
})

t.test('both: a left-out group in the middle of a chain is collapsed onto its nearest admitted parents', async t => {
  const chain: Closure = {
    groups: [g('a'), g('mid', false), g('top')],
    directGroupIds: ['a'],
    parents: new Map([['a', ['mid']], ['mid', ['top']], ['top', []]])
  }
  const out = filterClosure({ securityOnly: true, parents: new Set(['top']) }, chain)
  t.same(ids(out), ['a', 'top'])
  t.same(out.parents.get('a'), ['top'], 'a is nested in top directly now')
  const direct = filterClosure({ securityOnly: true, parents: new Set() }, { ...chain, directGroupIds: ['mid'] })
  t.same(direct.directGroupIds, ['top'], 'a member of the left-out group lands in its parent')
})

t.test('one group, with its ancestors', async t => {
  t.ok(admitsGroup(ALL_GROUPS, g('m365', false), []))
  t.notOk(admitsGroup({ securityOnly: true, parents: new Set() }, g('m365', false), []))
  t.ok(admitsGroup({ securityOnly: false, parents: new Set(['trusted']) }, g('team'), [g('dept'), g('trusted')]))
  t.ok(admitsGroup({ securityOnly: false, parents: new Set(['trusted']) }, g('TRUSTED'.toLowerCase()), []), 'a root itself')
  t.notOk(admitsGroup({ securityOnly: false, parents: new Set(['trusted']) }, g('payroll-fake'), []))
})
