// The package sets recorded with each release, and how two of them differ.
import { describe, expect, it } from '@jest/globals'
import { diffSets, parseFreeze } from '../../src/host/environments.js'
import {
  commandDir,
  configuredDir,
  parseTimespan,
  startLimitWait
} from '../../src/host/companions/companion-facts.js'
import { companionFindings, underCurrent } from '../../src/host/companions/companion-checks.js'
import type { CompanionFacts } from '../../src/host/companions/companion-facts.js'
import { accessWith } from '../../__fixtures__/host-facts.js'

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
      environment: [],
      user: 'www-data',
      group: '',
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

describe('companion checks', () => {
  const info = {
    loadState: 'loaded',
    activeState: 'active',
    subState: 'running',
    mainPid: 42,
    nRestarts: 0,
    execStart: ['/srv/myapp/.venv/bin/python', '-m', 'celery', '--workdir', '/srv/myapp/current'],
    execReload: [],
    workingDirectory: '/srv/myapp',
    environmentFiles: [],
    environment: [],
    user: 'www-data',
    group: '',
    fragmentPath: ''
  }
  const worker = (over: Partial<CompanionFacts> = {}): CompanionFacts => ({
    unit: 'myapp-worker',
    info,
    configuredDir: '/srv/myapp/current',
    mainDir: '/srv/myapp/releases/v1',
    dirs: 'sudo',
    action: 'restart',
    grant: 'yes',
    ...over
  })
  const ctx = {
    root: '/srv/myapp',
    releasesDir: '/srv/myapp/releases',
    currentRelease: 'v1',
    access: accessWith(),
    perReleaseVenvs: false
  }
  const errors = (c: CompanionFacts, over = {}) =>
    companionFindings([c], { ...ctx, ...over }).filter(f => f.severity === 'error')

  it('passes a worker that runs current, may be restarted and runs the current release', () => {
    const findings = companionFindings([worker()], ctx)
    expect(findings.filter(f => f.severity !== 'ok')).toEqual([])
    expect(findings.map(f => f.finding)).toContain('myapp-worker runs release v1')
  })

  it('refuses a worker the deploy user may not restart, with the sudoers line', () => {
    const [error] = errors(worker({ grant: 'no' }))
    expect(error.finding).toContain('may not run sudo systemctl restart myapp-worker')
    expect(error.fix).toBe(
      'add to sudoers: deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart myapp-worker'
    )
  })

  it('refuses a worker whose code comes from a fixed release, or from outside the releases', () => {
    expect(errors(worker({ configuredDir: '/srv/myapp/releases/v0' }))[0].finding).toContain(
      'a restart would not move it to the new release'
    )
    expect(
      errors(worker({ configuredDir: undefined, mainDir: '/opt/worker' }))[0].finding
    ).toContain('outside /srv/myapp/releases')
  })

  it('leaves a worker with no directory of its own to the proof after the restart', () => {
    const findings = companionFindings([worker({ configuredDir: undefined })], ctx)
    expect(findings.filter(f => f.severity === 'error')).toEqual([])
    expect(findings.find(f => f.severity === 'unverified')?.finding).toContain(
      'proven after the restart'
    )
  })

  it('warns about a worker that still runs an older release, and one not loaded is an error', () => {
    const stale = companionFindings([worker({ mainDir: '/srv/myapp/releases/v0' })], ctx)
    expect(stale.find(f => f.severity === 'warning')?.finding).toContain(
      'runs release v0, but current is v1'
    )
    expect(errors(worker({ info: { ...info, loadState: 'not-found' } }))[0].finding).toContain(
      'is not loaded'
    )
  })

  it('under per-release environments, warns about a worker that does not run the release venv', () => {
    const findings = companionFindings([worker()], { ...ctx, perReleaseVenvs: true })
    expect(findings.find(f => f.severity === 'warning')?.finding).toContain(
      "not the release's environment"
    )
  })
})

describe("a companion's crash loop and systemd's start limit", () => {
  it("waits out the unit's start-limit interval", () => {
    expect(startLimitWait('StartLimitBurst=5\nStartLimitIntervalUSec=10s')).toBe(11)
    expect(startLimitWait('StartLimitBurst=3\nStartLimitIntervalUSec=1min 30s')).toBe(61)
    expect(startLimitWait('StartLimitBurst=5\nStartLimitIntervalUSec=500ms')).toBe(1.5)
  })

  it('does not wait for a unit without a start limit', () => {
    expect(startLimitWait('StartLimitBurst=0\nStartLimitIntervalUSec=10s')).toBeUndefined()
    expect(startLimitWait('StartLimitBurst=5\nStartLimitIntervalUSec=0')).toBeUndefined()
    expect(startLimitWait('')).toBeUndefined()
  })
})
