import { describe, expect, it } from '@jest/globals'
import { releaseOfPath, releasesToPrune } from '../../src/host/prune.js'
import { revisions } from '../../src/host/release-checks.js'
import { orderReleases } from '../../src/host/release-layout.js'

describe('releasesToPrune', () => {
  const all = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']

  it('keeps the newest N', () => {
    expect(releasesToPrune(all, 3, [])).toEqual(['r1', 'r2', 'r3', 'r4'])
  })

  it('never deletes current, the previous release or the master start directory', () => {
    expect(releasesToPrune(all, 2, ['r7', 'r3', 'r1'])).toEqual(['r2', 'r4', 'r5'])
  })

  it('maps a physical path to its release id', () => {
    expect(releaseOfPath('/srv/myapp/releases', '/srv/myapp/releases/v0')).toBe('v0')
    expect(releaseOfPath('/srv/myapp/releases', '/srv/myapp')).toBeUndefined()
  })
})

describe('revisions', () => {
  it('reads revision ids from flask db current/heads output', () => {
    expect(
      revisions('INFO  [alembic.runtime.migration] Context impl SQLiteImpl.\n0001 (head)\n')
    ).toEqual(['0001'])
    expect(revisions('ae1027a6acf (head)\n0002 (head)')).toEqual(['0002', 'ae1027a6acf'])
    expect(revisions('')).toEqual([])
  })
})

describe('orderReleases', () => {
  it('orders by the packed metadata time, falling back to the directory time', () => {
    const out = [
      '300.5 zeta',
      '100.0 alpha',
      '900.0 alpha/.zdd-release.json',
      '200.0 mid',
      '150.0 mid/.zdd-release.json',
      '50 .incoming-x',
      '10.0 ../bad'
    ].join('\n')
    expect(orderReleases(out)).toEqual(['mid', 'zeta', 'alpha'])
  })

  it('keeps the newest by deploy time, not by name', () => {
    expect(releasesToPrune(['w1', 'w2', 'p1', 'p2', 'p3'], 2, ['p3', 'p2'])).toEqual([
      'w1',
      'w2',
      'p1'
    ])
  })
})
