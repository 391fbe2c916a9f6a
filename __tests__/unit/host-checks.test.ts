import { describe, expect, it } from '@jest/globals'
import { accessWith, healthyFacts } from '../../__fixtures__/host-facts.js'
import { HOST_CHECKS, olderThan, runChecks } from '../../src/host/host-checks.js'
import { parseGunicornCommand } from '../../src/host/gunicorn/unit-info.js'
import { importSeconds } from '../../src/host/release-checks.js'
import { warnOfStall } from '../../src/modes/prepare-release.js'

const ctx = { releasePath: '/srv/myapp', requiredEnv: [], minFreeBytes: 100 * 1048576 }
const severities = (facts = healthyFacts()) =>
  runChecks(facts, ctx).findings.map(f => `${f.severity} ${f.check}`)

describe('host checks, one table for preflight and check mode', () => {
  it('finds nothing to block on a host set up like the corrected guide', () => {
    const report = runChecks(healthyFacts(), ctx)
    expect(report.blocking).toEqual([])
    expect(report.findings.filter(f => f.severity !== 'ok')).toEqual([])
  })

  it('declares every check once, with what it reads', () => {
    const ids = HOST_CHECKS.map(c => c.id)
    expect(new Set(ids).size).toBe(ids.length)
    for (const check of HOST_CHECKS) expect(check.reads).not.toBe('')
  })

  it('blocks only a definite Nginx mismatch; an unreadable configuration is not verified', () => {
    const mismatch = runChecks(
      healthyFacts({
        nginx: {
          kind: 'mismatch',
          proxiedTo: ['unix:/run/myapp/other.sock'],
          binds: ['unix:/run/myapp/myapp.sock']
        }
      }),
      ctx
    )
    expect(mismatch.blocking.map(f => f.check)).toEqual(['upstream'])
    expect(mismatch.blocking[0].finding).toContain('unix:/run/myapp/other.sock')
    expect(mismatch.blocking[0].finding).toContain('unix:/run/myapp/myapp.sock')
    const unknown = runChecks(
      healthyFacts({ nginx: { kind: 'unknown', reason: 'include /etc/nginx/x/* unreadable' } }),
      ctx
    )
    expect(unknown.blocking).toEqual([])
    expect(unknown.findings.find(f => f.check === 'upstream')?.severity).toBe('unverified')
  })

  it('names the sudoers line for each missing optional right and blocks nothing', () => {
    const report = runChecks(
      healthyFacts({
        access: accessWith({ pwdx: 'no', 'nginx-test': 'no', 'daemon-reload': 'no' }),
        dirs: 'none',
        nginxTest: undefined
      }),
      ctx
    )
    expect(report.blocking).toEqual([])
    const unverified = report.findings.filter(f => f.severity === 'unverified')
    expect(unverified.map(f => f.check).sort()).toEqual(['daemon-reload', 'nginx -t', 'pwdx'])
    expect(unverified.find(f => f.check === 'pwdx')?.fix).toContain(
      'deploy ALL=(root) NOPASSWD: /usr/bin/pwdx *'
    )
  })

  it('needs no pwdx right when the unit runs as the deploy user', () => {
    const facts = healthyFacts({ access: accessWith({ pwdx: 'no' }), dirs: 'own' })
    facts.unit = { ...facts.unit, user: 'deploy' }
    expect(severities(facts)).not.toContain('unverified pwdx')
  })

  it('blocks when the deploy user may not reload or restart the unit', () => {
    const report = runChecks(healthyFacts({ access: accessWith({ reload: 'no' }) }), ctx)
    expect(report.blocking.map(f => f.check)).toEqual(['sudo'])
    expect(report.blocking[0].fix).toContain('/usr/bin/systemctl reload myapp')
  })

  it('does not blame the release for an EnvironmentFile the deploy user cannot read', () => {
    const facts = healthyFacts({
      env: { exists: true, readable: false, errors: [], missing: [], empty: [], count: 0 }
    })
    const report = runChecks(facts, { ...ctx, requiredEnv: ['SECRET_KEY'] })
    expect(report.blocking).toEqual([])
    const env = report.findings.find(f => f.check === 'environment')
    expect(env?.severity).toBe('unverified')
    expect(env?.finding).toContain('not readable by deploy')
    expect(env?.finding).toContain('import check')
  })

  it('takes a first deploy: no current, the unit crash-looping, start/restart allowed', () => {
    const facts = healthyFacts({
      masterAlive: false,
      workers: [],
      currentIsLink: false,
      currentExists: false,
      currentRelease: undefined,
      currentDir: undefined
    })
    facts.unit = { ...facts.unit, activeState: 'activating', subState: 'auto-restart', mainPid: 0 }
    const report = runChecks(facts, ctx)
    expect(report.blocking).toEqual([])
    expect(report.findings.find(f => f.check === 'unit')?.finding).toContain('first deploy')
  })

  it('refuses a first deploy the deploy user could not start', () => {
    const facts = healthyFacts({
      masterAlive: false,
      workers: [],
      currentIsLink: false,
      currentExists: false,
      currentRelease: undefined,
      currentDir: undefined,
      access: accessWith({ start: 'no' })
    })
    facts.unit = { ...facts.unit, activeState: 'inactive', subState: 'dead', mainPid: 0 }
    const report = runChecks(facts, ctx)
    expect(report.blocking.map(f => f.check)).toEqual(['unit'])
    expect(report.blocking[0].fix).toContain('systemctl start myapp')
  })

  it('treats a unit without --bind the same in preflight and check mode: Gunicorn default, no error', () => {
    const argv = [
      '/srv/myapp/.venv/bin/gunicorn',
      '-w',
      '3',
      '--chdir',
      '/srv/myapp/current',
      'wsgi:app'
    ]
    const facts = healthyFacts({
      gunicorn: parseGunicornCommand(argv),
      nginx: { kind: 'unknown', reason: 'no Gunicorn bind in ExecStart' }
    })
    expect(runChecks(facts, ctx).blocking).toEqual([])
  })

  it('blocks the stale-code traps while a master runs, warns before a cold start', () => {
    const argv = ['/srv/myapp/.venv/bin/gunicorn', '-w', '3', '--preload', 'wsgi:app']
    const live = healthyFacts({ gunicorn: parseGunicornCommand(argv) })
    expect(runChecks(live, ctx).blocking.map(f => f.check)).toEqual(['preload'])
    const cold = healthyFacts({
      gunicorn: parseGunicornCommand(argv),
      masterAlive: false,
      workers: []
    })
    cold.unit = { ...cold.unit, activeState: 'failed', subState: 'failed', mainPid: 0 }
    expect(runChecks(cold, ctx).blocking).toEqual([])
  })

  it('blocks on too little disk for the release and on a current that is not a symlink', () => {
    expect(runChecks(healthyFacts({ freeKb: 1024 }), ctx).blocking.map(f => f.check)).toEqual([
      'disk'
    ])
    expect(
      runChecks(
        healthyFacts({ currentIsLink: false, currentRelease: undefined }),
        ctx
      ).blocking.map(f => f.check)
    ).toEqual(['layout'])
  })
})

describe('Gunicorn versions exposed to the reload crash', () => {
  it('compares dotted versions', () => {
    expect(olderThan('20.1.0', '24.1.0')).toBe(true)
    expect(olderThan('23.0.0', '24.1.0')).toBe(true)
    expect(olderThan('24.0.0', '24.1.0')).toBe(true)
    expect(olderThan('24.1.0', '24.1.0')).toBe(false)
    expect(olderThan('24.1.1', '24.1.0')).toBe(false)
    expect(olderThan('25', '24.1.0')).toBe(false)
  })

  it('warns, without blocking, about Gunicorn before 24.1.0 and names the upgrade', () => {
    const report = runChecks(healthyFacts({ gunicornVersion: '20.1.0' }), ctx, 'check')
    expect(report.blocking).toEqual([])
    expect(
      runChecks(healthyFacts({ gunicornVersion: '20.1.0' }), ctx).findings.map(f => f.check)
    ).not.toContain('gunicorn version')
    const finding = report.findings.find(f => f.check === 'gunicorn version')
    expect(finding?.severity).toBe('warning')
    expect(finding?.finding).toContain('reentrant call')
    expect(finding?.fix).toContain('24.1.0')
    expect(
      runChecks(healthyFacts({ gunicornVersion: '24.1.0' }), ctx, 'check').findings.find(
        f => f.check === 'gunicorn version'
      )?.severity
    ).toBe('ok')
  })
})

describe('predicting the reload stall from the import check', () => {
  it('reads the import time the helper reports', () => {
    expect(importSeconds('ok wsgi:app from /srv/myapp/releases/v2/wsgi.py in 4.02s\n')).toBe(4.02)
    expect(importSeconds('ok wsgi:app from /srv/x.py')).toBeUndefined()
  })

  it('warns past about a second of import, naming the held requests', () => {
    const warnings: string[] = []
    const log = {
      info: () => undefined,
      warning: (m: string) => warnings.push(m),
      error: () => undefined,
      group: <T>(_n: string, fn: () => Promise<T>) => fn()
    }
    warnOfStall(0.4, log)
    warnOfStall(undefined, log)
    expect(warnings).toEqual([])
    warnOfStall(4.02, log)
    expect(warnings[0]).toContain('took 4.0 s to import: a reload (HUP) holds requests')
  })
})
