import { describe, expect, it } from '@jest/globals'
import {
  accessWith,
  blueGreenFacts,
  healthyFacts,
  instanceFacts
} from '../../__fixtures__/host-facts.js'
import { HOST_CHECKS, olderThan, runChecks } from '../../src/host/host-checks.js'
import type { HostFacts } from '../../src/host/host-facts.js'
import { parseGunicornCommand } from '../../src/host/gunicorn/unit-info.js'
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
      env: {
        exists: true,
        readable: false,
        files: [
          { path: '/etc/myapp.env', optional: false, exists: true, readable: false, errors: [] }
        ],
        missing: [],
        empty: [],
        count: 0
      }
    })
    const report = runChecks(facts, { ...ctx, requiredEnv: ['SECRET_KEY'] })
    expect(report.blocking).toEqual([])
    const env = report.findings.find(f => f.check === 'environment')
    expect(env?.severity).toBe('unverified')
    expect(env?.finding).toContain('not readable by deploy')
    expect(env?.finding).toContain('import check')
  })

  it('reports a current that is not a release clearly, without refusing a deploy', () => {
    const facts = healthyFacts({
      currentRelease: undefined,
      currentOther: '/home/app/app',
      currentDir: '/home/app/app'
    })
    const report = runChecks(facts, ctx)
    expect(report.blocking).toEqual([])
    const layout = report.findings.find(f => f.check === 'layout')
    expect(layout?.severity).toBe('warning')
    expect(layout?.finding).toContain('/srv/myapp/current -> /home/app/app is not a release')
    expect(layout?.finding).toContain('pointed at /home/app/app again')
    expect(layout?.fix).toContain('cp -a /home/app/app /srv/myapp/releases/initial')
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
    expect(warnings[0]).toContain('Use strategy: blue-green')
  })
})

describe('host checks under strategy: blue-green', () => {
  const bgErrors = (facts: HostFacts) =>
    runChecks(facts, ctx).blocking.filter(f => f.check === 'blue-green')
  const green = instanceFacts('green', false, 'v0')

  it('finds nothing to block on a host set up like the blue-green kit, and describes both instances', () => {
    const report = runChecks(blueGreenFacts(), ctx)
    expect(report.blocking).toEqual([])
    expect(report.findings.filter(f => f.severity !== 'ok')).toEqual([])
    expect(report.findings.find(f => f.check === 'blue-green')?.finding).toBe(
      'myapp@blue running on v1 (live), myapp@green inactive on v0; live.sock -> /run/myapp-blue/gunicorn.sock'
    )
  })

  it('warns, without blocking, when every release shares one venv (a template from before per-release environments)', () => {
    const report = runChecks(blueGreenFacts({}, { perReleaseVenvs: false }), ctx)
    expect(report.blocking).toEqual([])
    const [warning] = report.findings.filter(f => f.severity !== 'ok')
    expect(warning).toMatchObject({ severity: 'warning', check: 'environments' })
    expect(warning.finding).toContain('changes the packages under the serving instance')
    expect(warning.fix).toContain('/srv/myapp/slots/%i/.venv/bin/python -m gunicorn')
  })

  it('refuses when the template unit is not loaded', () => {
    const facts = blueGreenFacts()
    facts.blueGreen!.instances.green = {
      ...green,
      info: { ...green.info, loadState: 'not-found' }
    }
    const [error] = bgErrors(facts)
    expect(error.finding).toContain('myapp@green is not loaded (LoadState=not-found)')
    expect(error.fix).toContain('install /etc/systemd/system/myapp@.service')
  })

  it('refuses an instance that does not start in its slot', () => {
    const execStart = [
      '/srv/myapp/.venv/bin/gunicorn',
      '--chdir',
      '/srv/myapp/current',
      '--bind',
      'unix:/run/myapp-green/gunicorn.sock',
      'wsgi:app'
    ]
    const facts = blueGreenFacts()
    facts.blueGreen!.instances.green = { ...green, gunicorn: parseGunicornCommand(execStart) }
    const [error] = bgErrors(facts)
    expect(error.finding).toContain(
      'myapp@green starts in /srv/myapp/current, not in its slot /srv/myapp/slots/green'
    )
    expect(error.fix).toContain('--chdir /srv/myapp/slots/%i')
  })

  it('refuses instances that share a socket', () => {
    const facts = blueGreenFacts()
    facts.blueGreen!.instances.green = { ...green, socket: '/run/myapp-blue/gunicorn.sock' }
    const [error] = bgErrors(facts)
    expect(error.finding).toContain(
      'myapp@blue and myapp@green both bind /run/myapp-blue/gunicorn.sock'
    )
  })

  it('refuses a live.sock that points at neither instance', () => {
    const facts = blueGreenFacts({}, { liveTarget: '/run/myapp/myapp.sock', live: undefined })
    const [error] = bgErrors(facts)
    expect(error.finding).toContain(
      '/srv/myapp/live.sock points at /run/myapp/myapp.sock, which is neither'
    )
    expect(error.fix).toContain('ln -sfn /run/myapp-blue/gunicorn.sock /srv/myapp/live.sock.tmp')
  })

  it('refuses a slot that points outside releases/', () => {
    const facts = blueGreenFacts()
    facts.blueGreen!.instances.green = { ...green, slotTarget: '/tmp/app', slotRelease: undefined }
    const [error] = bgErrors(facts)
    expect(error.finding).toBe(
      '/srv/myapp/slots/green points at /tmp/app, not at /srv/myapp/releases/<id>'
    )
  })

  it('refuses an upstream with keepalive on the way to live.sock', () => {
    const facts = blueGreenFacts({
      nginx: {
        kind: 'match',
        servers: [],
        proxies: [],
        keepalive: [{ upstream: 'myapp', connections: 16 }]
      }
    })
    const blocking = runChecks(facts, ctx).blocking
    expect(blocking).toHaveLength(1)
    expect(blocking[0].finding).toContain('through upstream myapp (keepalive 16)')
    expect(blocking[0].fix).toBe(
      'proxy to it directly, without keepalive: proxy_pass http://unix:/srv/myapp/live.sock;'
    )
    // the same upstream under reload is no error
    expect(runChecks(healthyFacts({ nginx: facts.nginx }), ctx).blocking).toEqual([])
  })

  it('refuses when Nginx does not proxy to live.sock', () => {
    const facts = blueGreenFacts({
      nginx: { kind: 'mismatch', proxiedTo: ['unix:/run/myapp-blue/gunicorn.sock'], binds: [] }
    })
    const blocking = runChecks(facts, ctx).blocking
    expect(blocking.map(f => f.check)).toEqual(['upstream'])
    expect(blocking[0].finding).toBe(
      'Nginx proxies only to unix:/run/myapp-blue/gunicorn.sock, not to /srv/myapp/live.sock: switching live.sock would not move traffic'
    )
  })

  it('names the sudoers line for start and stop of the idle instance', () => {
    const facts = blueGreenFacts({}, { idleAccess: accessWith({ start: 'no', stop: 'no' }) })
    const blocking = runChecks(facts, ctx).blocking
    expect(blocking.map(f => f.check)).toEqual(['sudo'])
    expect(blocking[0].finding).toContain(
      'sudo systemctl start myapp@green (starting the new release in the idle instance)'
    )
    expect(blocking[0].finding).toContain('sudo systemctl stop myapp@green')
    expect(blocking[0].fix).toBe(
      'add to sudoers: deploy ALL=(root) NOPASSWD: /usr/bin/systemctl start myapp@green, /usr/bin/systemctl stop myapp@green'
    )
  })

  it('does not need reload and restart under blue-green', () => {
    const facts = blueGreenFacts({ access: accessWith({ reload: 'no', restart: 'no' }) })
    expect(runChecks(facts, ctx).blocking).toEqual([])
    expect(
      runChecks(healthyFacts({ access: facts.access }), ctx).blocking.map(f => f.check)
    ).toEqual(['sudo'])
  })

  it('names the serving instance when it may not be stopped', () => {
    const blocking = runChecks(blueGreenFacts({ access: accessWith({ stop: 'no' }) }), ctx).blocking
    expect(blocking.map(f => f.check)).toEqual(['sudo'])
    expect(blocking[0].fix).toBe(
      'add to sudoers: deploy ALL=(root) NOPASSWD: /usr/bin/systemctl stop myapp@blue'
    )
  })

  it("says an instance's bind cannot be read when its ExecStart hides Gunicorn", () => {
    const facts = blueGreenFacts()
    const opaque = ['/srv/myapp/start-gunicorn.sh']
    facts.blueGreen!.instances.green = {
      ...green,
      info: { ...green.info, execStart: opaque },
      gunicorn: parseGunicornCommand(opaque),
      socket: undefined
    }
    const [error] = bgErrors(facts)
    expect(error.finding).not.toContain("Gunicorn's default 127.0.0.1:8000")
    expect(error.finding).toContain('/srv/myapp/start-gunicorn.sh')
  })

  it('lets a deploy replace a live instance that crashed without the restart right', () => {
    const facts = blueGreenFacts({
      access: accessWith({ reload: 'no', restart: 'no' }),
      masterAlive: false,
      workers: []
    })
    facts.unit = { ...facts.unit, activeState: 'failed', subState: 'failed', mainPid: 0 }
    expect(runChecks(facts, ctx).blocking).toEqual([])
  })

  it('names the template, not an instance unit file, when the instances are not loaded', () => {
    const facts = blueGreenFacts()
    facts.unit = { ...facts.unit, loadState: 'not-found' }
    facts.blueGreen!.instances.blue = { ...facts.blueGreen!.instances.blue, info: facts.unit }
    const fixes = runChecks(facts, ctx).blocking.map(f => f.fix)
    expect(fixes.join('\n')).not.toContain('myapp@blue.service')
  })

  it('does not run the reload-only checks: ExecReload, workers, the reload traps, the Gunicorn version', () => {
    const overrides = {
      workers: [101],
      gunicornVersion: '23.0.0'
    }
    const checks = (facts: HostFacts) =>
      new Set(runChecks(facts, ctx, 'check').findings.map(f => f.check))
    const bg = checks(blueGreenFacts(overrides))
    for (const id of ['ExecReload', 'workers', 'chdir', 'preload', 'gunicorn version'])
      expect(bg).not.toContain(id)
    // the same facts under reload are checked (and the empty ExecReload and one worker refused)
    const facts = blueGreenFacts(overrides)
    const reload = runChecks({ ...facts, blueGreen: undefined }, ctx, 'check')
    expect(reload.blocking.map(f => f.check)).toEqual(
      expect.arrayContaining(['ExecReload', 'workers', 'chdir'])
    )
    expect(checks({ ...facts, blueGreen: undefined })).toContain('gunicorn version')
  })
})
