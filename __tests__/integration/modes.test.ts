// mode: rollback and mode: check, and the reload traps (the reference guide's
// unit and --preload) against real hosts.
import { describe, expect, it } from '@jest/globals'
import {
  annotations,
  appCopy,
  currentLink,
  deployLog,
  holdLock,
  inputsFor,
  rootSh,
  runAction,
  servedRelease,
  type KitHost
} from './kit.js'
import { unlessGunicornCrashed } from './problems.js'
import { withHost, withHostGroup } from './with-host.js'

/** Everything check mode must not change: the release tree, the log, the unit. */
/**
 * Everything under release-path with its times, the unit, the environment and the master.
 * A deploy takes the lock and uploads its release beside preflight, and removes both again
 * when preflight fails: only the times of release-path and releases/ tell, so they are left out.
 */
function hostFingerprint(host: KitHost): Promise<string> {
  return rootSh(
    host,
    'cd /srv/myapp && find . \\( -path . -o -path ./releases \\) -printf "%p %m %u %s %l\\n" -o -printf "%p %m %u %T@ %s %l\\n" | sort; sha256sum /etc/systemd/system/myapp.service /etc/myapp.env; systemctl show myapp -p MainPID -p NRestarts'
  )
}

/** Runs a root shell command on the host, restarts the service and waits until it serves. */
async function restartWith(host: KitHost, script: string): Promise<void> {
  await rootSh(
    host,
    `${script} && systemctl restart myapp && ` +
      'for i in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1/health && break; sleep 0.2; done'
  )
}

async function deployed(host: KitHost, id: string): Promise<void> {
  const run = await runAction(inputsFor(host, { source: appCopy(), 'release-id': id }))
  expect(run.outputs.status).toBe('deployed')
}

describe('mode: rollback', () => {
  const host = withHost('rb1', 'fixed', async () => {
    await deployed(host, 'a1')
    await deployed(host, 'a2')
  })

  it('goes back to the previous good release with zero failed probe requests', async () => {
    expect(await servedRelease(host)).toBe('a2')
    const run = await runAction(inputsFor(host, { mode: 'rollback' }))
    expect(run.code).toBe(0)
    expect(run.outputs).toMatchObject({
      status: 'rolled-back',
      release: 'a1',
      'previous-release': 'a2',
      'rolled-back': 'true',
      'failed-requests': unlessGunicornCrashed(run, '0')
    })
    expect(JSON.parse(run.outputs.hosts)[0].probeRequests).toBeGreaterThan(3)
    expect(await servedRelease(host)).toBe('a1')
    const last = (await deployLog(host)).at(-1)
    expect(last).toMatchObject({
      action: 'rollback',
      id: 'a1',
      previous: 'a2',
      outcome: 'rolled-back'
    })
  })

  it('rolls back to a named release id', async () => {
    const run = await runAction(inputsFor(host, { mode: 'rollback', 'rollback-to': 'a2' }))
    expect(run.outputs).toMatchObject({ status: 'rolled-back', release: 'a2' })
    expect(await servedRelease(host)).toBe('a2')
  })

  it('fails on an unknown id before any change, listing the releases that exist', async () => {
    const before = await hostFingerprint(host)
    const run = await runAction(inputsFor(host, { mode: 'rollback', 'rollback-to': 'nope' }))
    expect(run.code).not.toBe(0)
    expect(run.outputs.status).toBe('failed')
    expect(annotations(run)).toContain('release nope does not exist')
    expect(annotations(run)).toMatch(/Releases on the host: .*a1.*a2/)
    expect(await hostFingerprint(host)).toBe(before)
  })

  it('recovers when the current release is broken and the master has died', async () => {
    // put a release that cannot import live by hand, as a bad manual deploy would
    await rootSh(
      host,
      'cp -a /srv/myapp/releases/a2 /srv/myapp/releases/broken && echo "import no_such_module" > /srv/myapp/releases/broken/wsgi.py && echo \'{"id":"broken"}\' > /srv/myapp/releases/broken/.zdd-release.json && ln -sfn releases/broken /srv/myapp/current && systemctl restart myapp; ' +
        // the workers cannot boot, so the master exits; Restart=always then starts it again every
        // 3 s (a crash loop): wait for the first time it is down
        'for i in $(seq 150); do systemctl is-active -q myapp || break; sleep 0.2; done'
    )
    const state = await rootSh(host, 'systemctl show myapp -p MainPID -p ActiveState')
    expect(state).not.toContain('ActiveState=active')
    const run = await runAction(inputsFor(host, { mode: 'rollback', 'rollback-to': 'a1' }))
    // Depending on where the crash loop is when the rollback looks, the master is down (restart),
    // dies during the reload (restart after all), or is up and the reload itself rescues it.
    expect(run.stdout).toMatch(
      /systemctl (restart myapp \((the master was not running|the master had died)\)|reload myapp)/
    )
    expect(run.outputs).toMatchObject({
      status: 'rolled-back',
      release: 'a1',
      'previous-release': 'broken'
    })
    expect(await servedRelease(host)).toBe('a1')
  })

  it('decides under the lock: a master that went down while the rollback waited is started, not reloaded', async () => {
    // Another run's lock holds the rollback; while it waits, the master goes down. What the
    // rollback does is read once it holds the lock, so it finds the master down and starts it.
    const to = (await servedRelease(host)) === 'a1' ? 'a2' : 'a1'
    await holdLock(host, { actor: 'other', token: 't' })
    let stopped: Promise<string> | undefined
    const run = await runAction(
      inputsFor(host, { mode: 'rollback', 'rollback-to': to, 'lock-timeout': '60' }),
      {
        onLine: line => {
          if (!stopped && line.includes('waiting for the deploy lock'))
            stopped = rootSh(host, 'systemctl stop myapp && rm -rf /srv/myapp/.deploy-lock')
        }
      }
    )
    await stopped
    expect(run.outputs).toMatchObject({ status: 'rolled-back', release: to })
    expect(run.stdout).toMatch(/rolling back to \S+; master not running \(inactive\/dead\)/)
    expect(run.stdout).toContain('systemctl start myapp (the master was not running)')
    expect(run.stdout).not.toContain('reloading myapp')
    expect(await servedRelease(host)).toBe(to)
  })
})

describe('reload traps', () => {
  const {
    gd1: guide,
    pl1: preload,
    fx1: fixed
  } = withHostGroup({ gd1: 'guide', pl1: 'preload', fx1: 'fixed' })

  it("never reports the reference guide's unit as deployed, and names the --chdir fix", async () => {
    const run = await runAction(inputsFor(guide, { source: appCopy(), 'release-id': 'g1' }))
    expect(run.code).not.toBe(0)
    expect(run.outputs.status).not.toBe('deployed')
    expect(annotations(run)).toContain('keep importing the OLD release')
    expect(annotations(run)).toContain('add --chdir /srv/myapp/current')
    expect(await servedRelease(guide)).toBe('v0')
  })

  it('never silently reports the --preload unit as deployed', async () => {
    const run = await runAction(inputsFor(preload, { source: appCopy(), 'release-id': 'p1' }))
    expect(run.code).not.toBe(0)
    expect(run.outputs.status).not.toBe('deployed')
    expect(annotations(run)).toContain('--preload')
    expect(annotations(run)).toContain('remove --preload')
    expect(await servedRelease(preload)).toBe('v0')
  })

  it('refuses a rollback by reload on the --preload unit before any change', async () => {
    await rootSh(preload, 'cp -a /srv/myapp/releases/v0 /srv/myapp/releases/u0')
    const before = await hostFingerprint(preload)
    const run = await runAction(inputsFor(preload, { mode: 'rollback', 'rollback-to': 'u0' }))
    expect(run.code).not.toBe(0)
    expect(run.outputs.status).toBe('failed')
    expect(annotations(run)).toContain('runs Gunicorn with --preload')
    expect(annotations(run)).toContain(
      'A rollback by reload would keep serving v0; nothing was changed.'
    )
    expect(await hostFingerprint(preload)).toBe(before)
  })

  it('check mode reports the chdir trap on the guide unit with its fix, changing nothing', async () => {
    const before = await hostFingerprint(guide)
    const run = await runAction(inputsFor(guide, { mode: 'check' }))
    expect(run.code).not.toBe(0)
    expect(run.outputs.status).toBe('failed')
    expect(annotations(run)).toContain('chdir:')
    expect(annotations(run)).toContain('Fix: add --chdir /srv/myapp/current')
    expect(run.summary).toContain('<td>chdir</td>')
    expect(await hostFingerprint(guide)).toBe(before)
  })

  it('check mode reports --preload on the preload unit', async () => {
    const run = await runAction(inputsFor(preload, { mode: 'check' }))
    expect(run.outputs.status).toBe('failed')
    expect(annotations(run)).toContain('preload:')
  })

  it('check mode finds no errors on the corrected unit and only warns with warn-only', async () => {
    const before = await hostFingerprint(fixed)
    const run = await runAction(
      inputsFor(fixed, { mode: 'check', 'required-env': 'SECRET_KEY,DATABASE_URL' })
    )
    expect(annotations(run)).not.toContain('::error')
    expect(run.code).toBe(0)
    expect(run.outputs.status).toBe('checked')
    const findings = JSON.parse(run.outputs.hosts)[0].findings as {
      severity: string
      check: string
    }[]
    expect(findings.filter(f => f.severity === 'error')).toEqual([])
    expect(findings.map(f => f.check)).toEqual(
      expect.arrayContaining([
        'ExecReload',
        'workers',
        'upstream',
        'nginx -t',
        'layout',
        'venv',
        'environment',
        'disk',
        'sudo',
        'health',
        'chdir',
        'preload'
      ])
    )
    expect(await hostFingerprint(fixed)).toBe(before)
    const warnOnly = await runAction(inputsFor(guide, { mode: 'check', 'warn-only': 'true' }))
    expect(warnOnly.code).toBe(0)
    expect(warnOnly.outputs.status).toBe('checked')
  })

  it('refuses preload_app = True in the default gunicorn.conf.py before any change; check reports it', async () => {
    // No flag in the unit: Gunicorn reads ./gunicorn.conf.py from its start directory by itself.
    await restartWith(
      fixed,
      'printf "workers = 3\\npreload_app = True\\n" > /srv/myapp/gunicorn.conf.py'
    )
    const before = await hostFingerprint(fixed)
    const run = await runAction(inputsFor(fixed, { source: appCopy(), 'release-id': 'c1' }))
    expect(run.code).not.toBe(0)
    expect(run.outputs.status).toBe('failed')
    expect(annotations(run)).toContain(
      'runs Gunicorn with preload_app = True in /srv/myapp/gunicorn.conf.py'
    )
    expect(await hostFingerprint(fixed)).toBe(before)
    const check = await runAction(inputsFor(fixed, { mode: 'check' }))
    expect(check.outputs.status).toBe('failed')
    expect(annotations(check)).toContain('preload: ')
    expect(annotations(check)).toContain('preload_app = True in /srv/myapp/gunicorn.conf.py')
    await restartWith(fixed, 'rm /srv/myapp/gunicorn.conf.py')
  })

  it('refuses before any change GUNICORN_CMD_ARGS=--preload in the EnvironmentFile (read by name only)', async () => {
    await restartWith(fixed, 'echo GUNICORN_CMD_ARGS=--preload >> /etc/myapp.env')
    const run = await runAction(
      inputsFor(fixed, { source: appCopy(), 'release-id': 's0', 'reload-timeout': '15' })
    )
    expect(run.outputs.status).toBe('failed')
    expect(annotations(run)).toContain('preload')
    expect(annotations(run)).toContain('GUNICORN_CMD_ARGS')
    expect(annotations(run)).not.toContain('SECRET_KEY=')
    expect(await rootSh(fixed, 'ls /srv/myapp/releases')).not.toContain('s0')
    await restartWith(fixed, "sed -i '/^GUNICORN_CMD_ARGS=/d' /etc/myapp.env")
  })

  it('rolls back a stale-code trap preflight cannot see (preload_app computed in gunicorn.conf.py)', async () => {
    // A computed setting cannot be read statically; only the verification after the reload
    // notices that the old code still serves.
    await restartWith(
      fixed,
      'printf "import os\\npreload_app = os.environ.get(\\"ZDD_PRELOAD\\", \\"1\\") == \\"1\\"\\n" > /srv/myapp/gunicorn.conf.py'
    )
    expect(await servedRelease(fixed)).toBe('v0')
    const run = await runAction(
      inputsFor(fixed, { source: appCopy(), 'release-id': 's1', 'reload-timeout': '15' })
    )
    expect(run.code).not.toBe(0)
    expect(run.outputs).toMatchObject({
      status: 'rolled-back',
      'rolled-back': 'true',
      release: 's1',
      'previous-release': 'v0'
    })
    expect(annotations(run)).toContain(
      'answered 2xx for release v0, not s1: the reload kept the OLD code'
    )
    expect(run.summary).toContain('rolled-back')
    expect(await servedRelease(fixed)).toBe('v0')
    expect(await currentLink(fixed)).toBe('releases/v0')
    await restartWith(fixed, 'rm /srv/myapp/gunicorn.conf.py')
  })
})
