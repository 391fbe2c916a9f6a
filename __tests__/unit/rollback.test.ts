import { describe, expect, it } from '@jest/globals'
import type { ReleaseLogEntry } from '../../src/host/release-log.js'
import { chooseRollbackTarget } from '../../src/modes/rollback.js'

const entry = (
  id: string,
  action: 'deploy' | 'rollback',
  outcome: ReleaseLogEntry['outcome']
): ReleaseLogEntry => ({ id, action, outcome, sha: '', actor: '', run: '', time: '', host: '' })

describe('chooseRollbackTarget', () => {
  const existing = ['r1', 'r2', 'r3', 'r4']

  it('goes to the newest release the log shows serving, skipping failed and rolled-back deploys', () => {
    const log = [
      entry('r1', 'deploy', 'deployed'),
      entry('r2', 'deploy', 'deployed'),
      entry('r3', 'deploy', 'rolled-back'),
      entry('r4', 'deploy', 'deployed')
    ]
    expect(chooseRollbackTarget({ current: 'r4', existing, log })).toEqual({ id: 'r2' })
  })

  it('counts a successful rollback as a good release, and skips pruned ones', () => {
    const log = [
      entry('r1', 'deploy', 'deployed'),
      entry('r0', 'deploy', 'deployed'),
      entry('r1', 'rollback', 'rolled-back'),
      entry('r4', 'deploy', 'deployed')
    ]
    expect(chooseRollbackTarget({ current: 'r4', existing, log })).toEqual({ id: 'r1' })
  })

  it('falls back to the release before current when there is no log', () => {
    expect(chooseRollbackTarget({ current: 'r3', existing, log: [] })).toEqual({ id: 'r2' })
  })

  it('refuses unknown, current or missing targets, listing what exists', () => {
    expect(chooseRollbackTarget({ requested: 'nope', current: 'r4', existing, log: [] })).toEqual({
      error:
        'release nope does not exist (never deployed, or pruned). Releases on the host: r1, r2, r3, r4'
    })
    expect(
      chooseRollbackTarget({ requested: 'r4', current: 'r4', existing, log: [] })
    ).toMatchObject({ error: expect.stringContaining('already current') })
    expect(chooseRollbackTarget({ current: 'r1', existing: ['r1'], log: [] })).toMatchObject({
      error: expect.stringContaining('no previous release')
    })
  })

  it('never falls back to a release the log shows failing', () => {
    // r4 serves; no good release but r4 is left (pruned): r3 and r2 failed after their switch
    const log = [
      entry('r2', 'deploy', 'rolled-back'),
      entry('r3', 'deploy', 'failed'),
      entry('r4', 'deploy', 'deployed')
    ]
    expect(chooseRollbackTarget({ current: 'r4', existing, log })).toEqual({ id: 'r1' })
  })

  it('restores a current release whose master is down instead of refusing it', () => {
    expect(
      chooseRollbackTarget({
        requested: 'r4',
        current: 'r4',
        existing,
        log: [],
        restoreCurrent: true
      })
    ).toEqual({ id: 'r4' })
    // nothing older to go to: the current release is restored
    expect(
      chooseRollbackTarget({ current: 'r1', existing: ['r1'], log: [], restoreCurrent: true })
    ).toEqual({ id: 'r1' })
  })
})
