// Every branch of the one cutover, against a simulated host (__fixtures__/fake-host.ts):
// commands are recorded and answered from the host's state; health answers come from a
// real local HTTP server, through the action's own HTTP client.
import { afterEach, describe, expect, it } from '@jest/globals'
import { accessWith } from '../../__fixtures__/host-facts.js'
import { FakeHost } from '../../__fixtures__/fake-host.js'
import { newHostResult, timed, type HostResult } from '../../src/core/host-result.js'
import { recorder } from '../../__fixtures__/recording-log.js'
import { runCutover as drive } from '../../src/host/cutover/driver.js'
import { reloadCutover, type ReloadRequest } from '../../src/host/cutover/reload.js'
import type {
  CutoverContext,
  CutoverOutcome,
  CutoverPlan,
  ServingState
} from '../../src/host/cutover/types.js'
import { recordOutcome } from '../../src/modes/plans.js'
import { ReleaseLayout } from '../../src/host/release-layout.js'

const hosts: FakeHost[] = []
afterEach(async () => {
  for (const h of hosts.splice(0)) await h.dispose()
})

async function fakeHost(current: string | undefined): Promise<FakeHost> {
  const host = new FakeHost(current)
  await host.listen()
  hosts.push(host)
  return host
}

const plan = (release: string): CutoverPlan => ({
  release,
  releaseDir: `/srv/myapp/releases/${release}`,
  expectedWorkers: 3,
  dirs: 'sudo',
  urls: [
    {
      kind: 'unix',
      socket: '/run/myapp/myapp.sock',
      path: '/health',
      text: 'http://unix:/run/myapp/myapp.sock:/health'
    }
  ],
  healthExpect: undefined
})

/** The health URL through Nginx on the host, which the fake host answers with 502 for a release in nginxFails. */
const nginxHealth = {
  kind: 'tcp' as const,
  host: '127.0.0.1',
  port: 80,
  path: '/health',
  text: 'http://127.0.0.1/health'
}

function servingOf(host: FakeHost): ServingState {
  const s = host.state
  return {
    release: s.current,
    releaseDir: s.current ? `/srv/myapp/releases/${s.current}` : undefined,
    activeState: s.activeState,
    subState: s.activeState === 'active' ? 'running' : 'dead',
    mainPid: s.mainPid,
    alive: s.mainPid > 0,
    workers: [...s.workers]
  }
}

function context(host: FakeHost, reconnect?: () => Promise<FakeHost>) {
  const log = recorder()
  const result = newHostResult(host.target.label)
  const ctx: CutoverContext = {
    conn: { remote: host, reconnect },
    service: 'myapp',
    layout: new ReleaseLayout('/srv/myapp'),
    access: accessWith(),
    healthChecks: 2,
    timeoutSeconds: 1,
    nginxErrorLog: '/var/log/nginx/error.log',
    probeUrl: undefined,
    log,
    since: new Date(),
    run: { sha: 'abc', actor: 'test', runUrl: 'local' },
    step: (name, fn) => timed(result, name, fn)
  }
  results.set(ctx, result)
  return { ctx, log, result }
}

const results = new WeakMap<CutoverContext, HostResult>()

/** A failed cutover's outcome, thrown by runCutover. */
class CutoverError extends Error {
  constructor(readonly outcome: CutoverOutcome) {
    super(outcome.error)
  }
}

/** Runs the reload cutover through the driver and reports it into the result, as the modes do. */
async function runCutover(req: ReloadRequest, ctx: CutoverContext): Promise<CutoverOutcome> {
  const outcome = await drive(reloadCutover(req, ctx), req, ctx)
  recordOutcome(results.get(ctx)!, outcome)
  if (!outcome.ok) throw new CutoverError(outcome)
  return outcome
}

function deployRequest(host: FakeHost, release: string, back?: string): ReloadRequest {
  const from = servingOf(host)
  return {
    action: 'deploy',
    plan: plan(release),
    from,
    fallback: back ? { kind: 'release', plan: plan(back) } : undefined,
    restartDeadMaster: false
  }
}

const outcomes = (host: FakeHost) =>
  host.state.releaseLog.map(l => /"outcome":"([a-z-]+)"/.exec(l)?.[1])

describe('a current that was not a release', () => {
  // Issue 18: current -> /home/app/app was taken for a release called app, and a failed
  // deploy switched current to releases/app, which does not exist. Now the fallback
  // points current at exactly what it pointed at before.
  it('goes back to the very path current pointed at, whatever release its health names', async () => {
    const host = await fakeHost('/home/app/app')
    host.healthNames.set('/home/app/app', 'unknown')
    host.reloads = ['master-dies']
    host.bootFails.add('v2')
    const { ctx, result } = context(host)
    const back: CutoverPlan = {
      ...plan('/home/app/app'),
      releaseDir: '/home/app/app',
      link: '/home/app/app'
    }
    const from = { ...servingOf(host), release: undefined, releaseDir: '/home/app/app' }
    await expect(
      runCutover(
        {
          action: 'deploy',
          plan: plan('v2'),
          from,
          fallback: { kind: 'release', plan: back },
          restartDeadMaster: false
        },
        ctx
      )
    ).rejects.toThrow(CutoverError)
    expect(host.commands).toContain(
      'ln -sfn /home/app/app /srv/myapp/.current.tmp && mv -Tf /srv/myapp/.current.tmp /srv/myapp/current'
    )
    expect(host.state).toMatchObject({ current: '/home/app/app', workerRelease: '/home/app/app' })
    expect(result.rolledBack).toBe(true)
  })
})

describe('the one cutover', () => {
  it('switches, reloads and proves the new release: same master, new workers, health names it', async () => {
    const host = await fakeHost('v1')
    const master = host.state.mainPid
    const { ctx, result } = context(host)
    await runCutover(deployRequest(host, 'v2', 'v1'), ctx)
    expect(host.state).toMatchObject({ current: 'v2', mainPid: master, workerRelease: 'v2' })
    expect(host.commands.filter(c => /systemctl (reload|restart|start)/.test(c))).toEqual([
      'sudo -n systemctl reload myapp'
    ])
    expect(result.steps.map(s => s.name)).toEqual(['switch', 'reload', 'verify'])
    expect(outcomes(host)).toEqual(['deployed'])
  })

  it('switches back without a reload when sudo refuses the reload, and names the sudoers line', async () => {
    const host = await fakeHost('v1')
    host.reloads = ['refused']
    const { ctx, result } = context(host)
    await expect(runCutover(deployRequest(host, 'v2', 'v1'), ctx)).rejects.toThrow(CutoverError)
    expect(result.error).toContain('sudo refused systemctl reload myapp')
    expect(result.error).toContain('deploy ALL=(root) NOPASSWD: /usr/bin/systemctl reload myapp')
    expect(host.state.current).toBe('v1')
    expect(host.commands.filter(c => /systemctl reload/.test(c))).toHaveLength(1)
    expect(result.rolledBack).toBe(true)
    expect(outcomes(host)).toEqual(['rolled-back'])
  })

  it('restarts on the previous release when the master dies during the reload', async () => {
    const host = await fakeHost('v1')
    host.reloads = ['master-dies']
    host.bootFails.add('v2')
    const { ctx, result } = context(host)
    await expect(runCutover(deployRequest(host, 'v2', 'v1'), ctx)).rejects.toThrow(
      /master died after the reload/
    )
    expect(host.state).toMatchObject({ current: 'v1', activeState: 'active', workerRelease: 'v1' })
    expect(host.commands).toContain('sudo -n systemctl restart myapp')
    expect(result.rolledBack).toBe(true)
    expect(result.excerpt).toContain('log line')
  })

  it("restarts on the new release when the master died of Gunicorn's own logging crash, not of the release", async () => {
    const host = await fakeHost('v1')
    const master = host.state.mainPid
    host.reloads = ['master-dies']
    host.journal = [
      `2026-12-05T20:14:27+0000 web gunicorn[${master}]: [INFO] Unhandled exception in main loop`,
      `2026-12-05T20:14:27+0000 web gunicorn[${master}]: RuntimeError: reentrant call inside <_io.BufferedWriter name='<stderr>'>`
    ].join('\n')
    const { ctx, log, result } = context(host)
    await runCutover(deployRequest(host, 'v2', 'v1'), ctx)
    expect(host.state).toMatchObject({ current: 'v2', activeState: 'active', workerRelease: 'v2' })
    expect(host.commands.filter(c => /systemctl (reload|restart)/.test(c))).toEqual([
      'sudo -n systemctl reload myapp',
      'sudo -n systemctl restart myapp'
    ])
    expect(log.lines.join('\n')).toContain(
      `warning the Gunicorn master ${master} crashed in its own logging during the deploy`
    )
    expect(log.lines.join('\n')).toContain('not because of the release: restarting myapp on v2')
    expect(result.rolledBack).toBe(false)
    expect(outcomes(host)).toEqual(['deployed'])
  })

  it("proves the new release when systemd restarted the master that died of Gunicorn's logging crash before the action looked", async () => {
    const host = await fakeHost('v1')
    const master = host.state.mainPid
    host.reloads = ['systemd-restarts']
    host.journal = [
      `2026-12-06T04:40:50+0000 web gunicorn[${master}]: [INFO] Unhandled exception in main loop`,
      `2026-12-06T04:40:50+0000 web gunicorn[${master}]: RuntimeError: reentrant call inside <_io.BufferedWriter name='<stderr>'>`
    ].join('\n')
    const { ctx, log, result } = context(host)
    await runCutover(deployRequest(host, 'v2', 'v1'), ctx)
    expect(host.state).toMatchObject({ current: 'v2', activeState: 'active', workerRelease: 'v2' })
    expect(host.state.mainPid).not.toBe(master)
    // no second restart: systemd's new master is proven as it is
    expect(host.commands.filter(c => /systemctl (reload|restart)/.test(c))).toEqual([
      'sudo -n systemctl reload myapp'
    ])
    expect(log.lines.join('\n')).toContain(
      `the Gunicorn master ${master} crashed in its own logging during the deploy`
    )
    expect(log.lines.join('\n')).toContain(
      `not because of the release: systemd restarted myapp (master ${host.state.mainPid}) on v2`
    )
    expect(result.rolledBack).toBe(false)
    expect(outcomes(host)).toEqual(['deployed'])
  })

  it('still goes back when the master was replaced and the journal does not show the logging crash', async () => {
    const host = await fakeHost('v1')
    host.reloads = ['systemd-restarts', 'ok']
    const { ctx, result } = context(host)
    await expect(runCutover(deployRequest(host, 'v2', 'v1'), ctx)).rejects.toThrow(
      /the master PID changed from \d+ to \d+: the service restarted instead of reloading/
    )
    expect(host.state).toMatchObject({ current: 'v1', workerRelease: 'v1' })
    expect(result.rolledBack).toBe(true)
  })

  it('still goes back when the journal shows a worker that failed to boot beside the logging crash', async () => {
    const host = await fakeHost('v1')
    const master = host.state.mainPid
    host.reloads = ['master-dies']
    host.bootFails.add('v2')
    host.journal = [
      `x gunicorn[${master}]: RuntimeError: reentrant call inside <_io.BufferedWriter name='<stderr>'>`,
      `x gunicorn[${master}]: Reason: Worker failed to boot.`
    ].join('\n')
    const { ctx, result } = context(host)
    await expect(runCutover(deployRequest(host, 'v2', 'v1'), ctx)).rejects.toThrow(
      /master died after the reload/
    )
    expect(host.state).toMatchObject({ current: 'v1', workerRelease: 'v1' })
    expect(result.rolledBack).toBe(true)
  })

  it("names Gunicorn's own logging crash when a rollback's master dies of it", async () => {
    const host = await fakeHost('v2')
    const master = host.state.mainPid
    host.reloads = ['master-dies']
    host.journal = `x gunicorn[${master}]: RuntimeError: reentrant call inside <_io.BufferedWriter name='<stderr>'>`
    const { ctx, log } = context(host)
    await runCutover(
      { action: 'rollback', plan: plan('v1'), from: servingOf(host), restartDeadMaster: true },
      ctx
    )
    expect(host.state).toMatchObject({ current: 'v1', activeState: 'active', workerRelease: 'v1' })
    expect(log.lines.join('\n')).toContain(
      `the Gunicorn master ${master} crashed in its own logging during the rollback`
    )
    expect(log.lines.join('\n')).not.toContain('the master died during the rollback')
  })

  it('goes back at once, not at reload-timeout, when the journal shows new workers that cannot load the app', async () => {
    const host = await fakeHost('v1')
    const at = (pid: number, text: string) => `2026-12-05T23:02:01+0000 x gunicorn[${pid}]: ${text}`
    const failed = (pid: number, error: string) => [
      at(pid, `[2026-12-05 23:02:01 +0000] [${pid}] [ERROR] Exception in worker process`),
      at(pid, 'Traceback (most recent call last):'),
      at(
        pid,
        '  File "/usr/lib/python3/dist-packages/gunicorn/workers/base.py", line 146, in load_wsgi'
      ),
      at(pid, '    self.wsgi = self.app.wsgi()'),
      at(pid, error),
      ''
    ]
    // an earlier release's failure, before this reload: only what follows the reload counts
    host.journal = failed(9, 'ImportError: an earlier release').join('\n')
    host.reloads = ['master-halts', 'ok']
    host.haltLog = failed(501, "KeyError: 'SECRET_KEY'").join('\n')
    const { ctx, result } = context(host)
    ctx.timeoutSeconds = 600 // a wait for it would outlast the test's own limit
    await expect(runCutover(deployRequest(host, 'v2', 'v1'), ctx)).rejects.toThrow(
      "the new workers cannot load v2 (worker 501 could not load the app: KeyError: 'SECRET_KEY'): Gunicorn stops its master after that"
    )
    expect(host.state).toMatchObject({ current: 'v1', activeState: 'active', workerRelease: 'v1' })
    expect(result.rolledBack).toBe(true)
    // the stopping master would lose a HUP (and exit before it came): the way back restarts
    expect(host.commands.filter(c => /systemctl (reload|restart)/.test(c))).toEqual([
      expect.stringContaining('systemctl reload'),
      expect.stringContaining('systemctl restart')
    ])
  })

  it('restarts instead when the master read as running has exited before its reload (mode: rollback)', async () => {
    // a master still stopping after a deploy whose workers could not load the app
    const host = await fakeHost('v2')
    host.halting = true
    const { ctx, log } = context(host)
    await runCutover(
      { action: 'rollback', plan: plan('v1'), from: servingOf(host), restartDeadMaster: true },
      ctx
    )
    expect(host.state).toMatchObject({ current: 'v1', activeState: 'active', workerRelease: 'v1' })
    expect(outcomes(host)).toEqual(['rolled-back'])
    expect(log.lines.join('\n')).toMatch(
      /the master had exited before the reload \(ActiveState=failed\/dead\): systemctl reload myapp failed \(exit 1\): myapp.service is not active, cannot reload.; restarting myapp on v1 instead/
    )
  })

  it('does not restart a deploy whose master exited before its reload: it fails and goes back', async () => {
    const host = await fakeHost('v1')
    host.halting = true
    const { ctx, result } = context(host)
    await expect(runCutover(deployRequest(host, 'v2', 'v1'), ctx)).rejects.toThrow(
      /systemctl reload myapp failed \(exit 1\): myapp.service is not active/
    )
    expect(host.state).toMatchObject({ current: 'v1', activeState: 'active', workerRelease: 'v1' })
    expect(result.rolledBack).toBe(true)
  })

  it('fails and goes back when the old workers never leave', async () => {
    const host = await fakeHost('v1')
    host.reloads = ['old-workers-stay', 'ok']
    const { ctx, result } = context(host)
    await expect(runCutover(deployRequest(host, 'v2', 'v1'), ctx)).rejects.toThrow(
      /old worker\(s\) .* still running/
    )
    expect(host.state.current).toBe('v1')
    expect(result.rolledBack).toBe(true)
  })

  it('names stale code when health keeps answering for the old release', async () => {
    const host = await fakeHost('v1')
    host.reloads = ['keeps-old-code', 'ok']
    const { ctx, result } = context(host)
    const request = {
      ...deployRequest(host, 'v2', 'v1'),
      plan: { ...plan('v2'), dirs: 'none' as const }
    }
    await expect(runCutover(request, ctx)).rejects.toThrow(
      /answered 2xx for release v1, not v2: the reload kept the OLD code/
    )
    expect(result.rolledBack).toBe(true)
    expect(host.state.current).toBe('v1')
  })

  it('reports when the rollback fails too, and records the deploy as failed', async () => {
    const host = await fakeHost('v1')
    host.reloads = ['master-dies']
    host.bootFails.add('v2')
    host.bootFails.add('v1')
    const { ctx, result } = context(host)
    await expect(runCutover(deployRequest(host, 'v2', 'v1'), ctx)).rejects.toThrow(CutoverError)
    expect(result.error).toContain('Rollback to v1 failed too')
    expect(result.rolledBack).toBe(false)
    expect(outcomes(host)).toEqual(['failed'])
  })

  it('reconnects when the connection drops mid-cutover, and goes back on the new connection', async () => {
    const host = await fakeHost('v1')
    host.reloads = ['drops-connection', 'ok']
    let reconnects = 0
    const { ctx, result } = context(host, async () => {
      reconnects++
      return host.reconnected()
    })
    await expect(runCutover(deployRequest(host, 'v2', 'v1'), ctx)).rejects.toThrow(CutoverError)
    expect(reconnects).toBe(1)
    expect(host.state.current).toBe('v1')
    expect(result.rolledBack).toBe(true)
  })

  it('starts a unit that is not running (first deploy), and removes current when it fails', async () => {
    const good = await fakeHost(undefined)
    const { ctx } = context(good)
    await runCutover({ ...deployRequest(good, 'v1'), fallback: { kind: 'remove-current' } }, ctx)
    expect(good.commands).toContain('sudo -n systemctl start myapp')
    expect(good.state).toMatchObject({ current: 'v1', activeState: 'active' })

    const broken = await fakeHost(undefined)
    broken.bootFails.add('v1')
    const failed = context(broken)
    await expect(
      runCutover(
        { ...deployRequest(broken, 'v1'), fallback: { kind: 'remove-current' } },
        failed.ctx
      )
    ).rejects.toThrow(CutoverError)
    expect(broken.state.current).toBeUndefined()
    expect(broken.commands).toContain('sudo -n systemctl stop myapp')
    expect(failed.result.error).toContain('first deploy')
  })

  it('restarts a rollback whose master died in a crash loop (mode: rollback)', async () => {
    const host = await fakeHost('v2')
    host.reloads = ['master-dies']
    const { ctx } = context(host)
    await runCutover(
      { action: 'rollback', plan: plan('v1'), from: servingOf(host), restartDeadMaster: true },
      ctx
    )
    expect(host.state).toMatchObject({ current: 'v1', activeState: 'active', workerRelease: 'v1' })
    expect(outcomes(host)).toEqual(['rolled-back'])
  })

  it('goes back at once, not at reload-timeout, when Nginx answers 502 while Gunicorn answers', async () => {
    const host = await fakeHost('v1')
    host.nginxFails.add('v2')
    const { ctx, result } = context(host)
    ctx.timeoutSeconds = 600 // a wait for it would outlast the test's own limit
    const withNginx = (release: string): CutoverPlan => ({
      ...plan(release),
      urls: [...plan(release).urls, nginxHealth],
      nginxUrl: nginxHealth
    })
    const request = {
      ...deployRequest(host, 'v2', 'v1'),
      plan: withNginx('v2'),
      fallback: { kind: 'release' as const, plan: withNginx('v1') }
    }
    await expect(runCutover(request, ctx)).rejects.toThrow(
      /http:\/\/127\.0\.0\.1\/health answered HTTP 502.* while Gunicorn answered 2xx on its own: Nginx cannot use the new release/
    )
    expect(host.state).toMatchObject({ current: 'v1', workerRelease: 'v1' })
    expect(result.rolledBack).toBe(true)
    expect(outcomes(host)).toEqual(['rolled-back'])
    // the old release serves through Nginx again
    expect(host.nginxAnswers.at(-1)).toBe(200)
  }, 20_000)

  // Nginx fails the new release and was not known to serve before the switch: the proof
  // waits out reload-timeout, and a step after the proof is neither run nor undone.
  it.each([
    { steps: 'no step after the proof', withStep: false },
    { steps: 'a step after the proof, which is neither run nor undone', withStep: true }
  ])(
    'waits out reload-timeout when Nginx was not known to serve before the switch ($steps)',
    async ({ withStep }) => {
      const host = await fakeHost('v1')
      host.nginxFails.add('v2')
      const { ctx, result } = context(host)
      let ran = false
      const companions = {
        name: 'companions',
        run: async () => {
          ran = true
        },
        undo: async () => {
          ran = true
          return ''
        }
      }
      const request = {
        ...deployRequest(host, 'v2', 'v1'),
        plan: { ...plan('v2'), urls: [...plan('v2').urls, nginxHealth] },
        ...(withStep ? { afterProof: [companions] } : {})
      }
      const failed = runCutover(request, ctx)
      await expect(failed).rejects.toThrow(CutoverError)
      await expect(failed).rejects.toThrow(
        /within reload-timeout \(1s\): http:\/\/127\.0\.0\.1\/health answered HTTP 502/
      )
      expect(result.rolledBack).toBe(true)
      expect(ran).toBe(false)
      expect(host.state.current).toBe('v1')
    }
  )

  it('runs the steps after the proof in order, and a failing one undoes the switch, then the started steps newest first, with the old packages back before the reload', async () => {
    const host = await fakeHost('v1')
    const { ctx, result } = context(host)
    const seen: string[] = []
    const step = (name: string, fails = false) => ({
      name,
      run: async () => {
        seen.push(`run ${name} on ${host.state.current}`)
        if (fails) throw new Error(`${name} broke`)
      },
      undo: async () => {
        seen.push(`undo ${name} on ${host.state.current}`)
        return `${name} undone`
      }
    })
    const request = {
      ...deployRequest(host, 'v2', 'v1'),
      afterProof: [step('after-switch'), step('companions', true), step('never')],
      beforeBack: async () => {
        seen.push(`packages back while current is ${host.state.current}`)
        return 'packages back'
      }
    }
    await expect(runCutover(request, ctx)).rejects.toThrow(CutoverError)
    expect(seen).toEqual([
      'run after-switch on v2',
      'run companions on v2',
      'packages back while current is v2',
      'undo companions on v1',
      'undo after-switch on v1'
    ])
    expect(host.state).toMatchObject({ current: 'v1', workerRelease: 'v1' })
    expect(result.rolledBack).toBe(true)
    expect(result.error).toContain('companions broke')
    expect(result.error).toContain('packages back')
    expect(result.error).toContain('companions undone')
    expect(outcomes(host)).toEqual(['rolled-back'])
  })
})
