import t from 'tap'
import { shortestGroupPaths } from '../../../src/permissions/group-paths.ts'

t.test('the shortest chain from a direct group up to each group, through any depth', async t => {
  // on-call ⊂ data ⊂ eng ⊂ staff, and data ⊂ staff directly too (a shortcut); finance ⊂ staff.
  const parents = new Map([
    ['on-call', ['data']],
    ['data', ['eng', 'staff']],
    ['eng', ['staff']],
    ['finance', ['staff']]
  ])
  const paths = shortestGroupPaths(['on-call'], parents)
  t.same(Object.fromEntries(paths), {
    'on-call': ['on-call'],
    data: ['on-call', 'data'],
    eng: ['on-call', 'data', 'eng'],
    staff: ['on-call', 'data', 'staff']
  })
  t.notOk(paths.has('finance'), 'groups the principal is not in are left out')
})

t.test('ties go to the smaller id whatever order Entra lists the edges in; cycles end', async t => {
  const a = shortestGroupPaths(['y', 'x'], new Map([['x', ['top']], ['y', ['top']], ['top', ['x']]]))
  const b = shortestGroupPaths(['x', 'y'], new Map([['y', ['top']], ['x', ['top']], ['top', ['x']]]))
  t.same(a.get('top'), ['x', 'top'])
  t.same(Object.fromEntries(a), Object.fromEntries(b))
  t.same(shortestGroupPaths([], new Map()).size, 0)
})
