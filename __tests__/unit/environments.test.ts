// The package sets recorded with each release, and how two of them differ.
import { describe, expect, it } from '@jest/globals'
import { diffSets, parseFreeze } from '../../src/host/environments.js'
import {
  commandDir,
  configuredDir,
  parseTimespan
} from '../../src/host/companions/companion-facts.js'
import { underCurrent } from '../../src/host/companions/companion-checks.js'

describe('package sets', () => {
  it('reads pip freeze by canonical name, leaving out comments and options', () => {
    const set = parseFreeze(
      '# comment\nZdd_Dep==1.0\n-e git+https://x/y#egg=y\nflask @ file:///w/flask.whl\n\n'
    )
    expect([...set]).toEqual([
      ['zdd-dep', 'Zdd_Dep==1.0'],
      ['flask', 'flask @ file:///w/flask.whl']
    ])
  })

  it('names what changed, what to install and what to remove', () => {
    const from = parseFreeze('zdd-dep==2.0\nnew-only==1.1\nsame==3\n')
    const to = parseFreeze('zdd_dep==1.0\nold-only==0.9\nsame==3\n')
    expect(diffSets(from, to)).toEqual({
      install: ['zdd_dep==1.0', 'old-only==0.9'],
      remove: ['new-only'],
      changed: ['+old-only 0.9', '-new-only 1.1', 'zdd-dep 2.0 -> 1.0']
    })
    expect(diffSets(to, to).changed).toEqual([])
  })
})

describe('companions as systemd describes them', () => {
  it('reads systemd time spans', () => {
    expect(parseTimespan('1min 30s')).toBe(90)
    expect(parseTimespan('500ms')).toBe(0.5)
    expect(parseTimespan('infinity')).toBeUndefined()
    expect(parseTimespan('')).toBeUndefined()
  })

  it('takes the directory from --workdir or --chdir before WorkingDirectory', () => {
    expect(commandDir(['python', '-m', 'celery', '--workdir', '/srv/a/current', 'worker'])).toBe(
      '/srv/a/current'
    )
    expect(commandDir(['gunicorn', '--chdir=/srv/a/current/web'])).toBe('/srv/a/current/web')
    const unit = {
      loadState: 'loaded',
      activeState: 'active',
      subState: 'running',
      mainPid: 1,
      nRestarts: 0,
      execStart: ['rq', 'worker'],
      execReload: [],
      workingDirectory: '/srv/a/current',
      environmentFiles: [],
      user: 'www-data',
      fragmentPath: ''
    }
    expect(configuredDir(unit)).toBe('/srv/a/current')
    expect(configuredDir({ ...unit, workingDirectory: '' })).toBeUndefined()
  })

  it('counts current and what is below it, not a sibling that starts the same', () => {
    expect(underCurrent('/srv/a/current', '/srv/a')).toBe(true)
    expect(underCurrent('/srv/a/current/app', '/srv/a')).toBe(true)
    expect(underCurrent('/srv/a/current-old', '/srv/a')).toBe(false)
    expect(underCurrent('/srv/a/releases/v1', '/srv/a')).toBe(false)
  })
})
