import { describe, expect, it } from '@jest/globals'
import {
  failedReleases,
  releaseOfPath,
  releasesToPrune,
  rollbackChoice
} from '../../src/host/prune.js'
import type { ReleaseLogEntry } from '../../src/host/release-log.js'
import { chooseRollbackTarget } from '../../src/modes/rollback.js'
import { revisions } from '../../src/host/release-checks.js'
import { orderReleases } from '../../src/host/release-layout.js'

const entry = (
  id: string,
  action: 'deploy' | 'rollback',
  outcome: ReleaseLogEntry['outcome']
): ReleaseLogEntry => ({ id, action, outcome, sha: '', actor: '', run: '', time: '', host: '' })

const prune = (all: string[], keep: number, protect: string[], log: ReleaseLogEntry[] = []) =>
  releasesToPrune({ all, keep, log, protect, mayBeCurrent: [] })

describe('releasesToPrune', () => {
  const all = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']

  it('keeps the newest N', () => {
    expect(prune(all, 3, [])).toEqual(['r1', 'r2', 'r3', 'r4'])
  })

  it('never deletes current, the previous release or the master start directory', () => {
    expect(prune(all, 2, ['r7', 'r3', 'r1'])).toEqual(['r2', 'r4', 'r5'])
  })

  // Issue 18, problem 5: after three releases that failed after their switch (each rolled
  // back to g2), pruning with keep-releases 2 kept f2 and f3 and deleted g1, the release
  // mode: rollback chooses from g2 (the old releasesToPrune(all, 2, [f4, g2]) returned
  // [g1, f1]). Failed releases never count towards keep; what a rollback would choose stays.
  it('keeps what a rollback would choose and never counts failed releases against it', () => {
    const releases = ['g1', 'g2', 'f1', 'f2', 'f3', 'f4']
    const log = [
      entry('g1', 'deploy', 'deployed'),
      entry('g2', 'deploy', 'deployed'),
      entry('f1', 'deploy', 'rolled-back'),
      entry('f2', 'deploy', 'rolled-back'),
      entry('f3', 'deploy', 'failed')
    ]
    const doomed = releasesToPrune({
      all: releases,
      keep: 2,
      log,
      protect: ['f4', 'g2'],
      mayBeCurrent: ['f4', 'g2']
    })
    expect(doomed).toEqual(['f1', 'f2', 'f3'])
    const left = releases.filter(r => !doomed.includes(r))
    // after this deploy, and after its automatic rollback, mode: rollback still finds its target
    expect(chooseRollbackTarget({ current: 'f4', existing: left, log })).toEqual({ id: 'g2' })
    expect(chooseRollbackTarget({ current: 'g2', existing: left, log })).toEqual({ id: 'g1' })
  })

  it('keeps the target of a rollback from each release that may be current, even with keep 1', () => {
    const log = [entry('a', 'deploy', 'deployed'), entry('b', 'deploy', 'deployed')]
    expect(
      releasesToPrune({
        all: ['a', 'b', 'c'],
        keep: 1,
        log,
        protect: ['c', 'b'],
        mayBeCurrent: ['c', 'b']
      })
    ).toEqual([])
    // without a log: the newest older release that did not fail
    expect(rollbackChoice('c', ['a', 'b', 'c'], [entry('b', 'deploy', 'failed')])).toBe('a')
  })

  it('counts a release the log does not know (made by hand, or before the log) as good', () => {
    expect(
      failedReleases([entry('x', 'deploy', 'failed'), entry('x', 'rollback', 'rolled-back')])
    ).toEqual(new Set())
    expect(prune(['v0', 'f1', 'n1'], 2, ['n1'], [entry('f1', 'deploy', 'failed')])).toEqual(['f1'])
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
    expect(prune(['w1', 'w2', 'p1', 'p2', 'p3'], 2, ['p3', 'p2'])).toEqual(['w1', 'w2', 'p1'])
  })
})
