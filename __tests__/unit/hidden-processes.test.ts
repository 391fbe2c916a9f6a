// Hosts hardened the way security benchmarks recommend mount /proc with hidepid: the
// deploy user sees only its own processes, so ps shows neither the Gunicorn master nor
// its workers. What it cannot see is "not verified" (with the sudoers line that lets it
// see them), never "0 workers"; `sudo ps`, where allowed, shows them; verification
// after the reload proves the release through systemd and health.
import { afterEach, describe, expect, it } from '@jest/globals'
import { accessWith } from '../../__fixtures__/host-facts.js'
import { FakeHost } from '../../__fixtures__/fake-host.js'
import { recorder } from '../../__fixtures__/recording-log.js'
import { kitHostRules, type KitHostScript } from '../../__fixtures__/scripted-kit-host.js'
import { ScriptedRemote } from '../../__fixtures__/scripted-remote.js'
import { newHostResult, timed } from '../../src/core/host-result.js'
import { runCutover } from '../../src/host/cutover/driver.js'
import { reloadCutover, type ReloadRequest } from '../../src/host/cutover/reload.js'
import type { CutoverContext, CutoverPlan } from '../../src/host/cutover/types.js'
import { recordOutcome } from '../../src/modes/plans.js'
import { preflight } from '../../src/host/preflight.js'
import { ReleaseLayout } from '../../src/host/release-layout.js'

function preflightOf(script: KitHostScript) {
  const remote = new ScriptedRemote(kitHostRules(script))
  const log = recorder()
  const run = preflight(remote, {
    service: 'myapp',
    layout: new ReleaseLayout('/srv/myapp'),
    requiredEnv: [],
    nginxErrorLog: '/var/log/nginx/error.log',
    minFreeBytes: 1024,
    strict: false,
    log
  })
  return { remote, log, run }
}

const SUDO_PS = 'deploy ALL=(root) NOPASSWD: /usr/bin/ps -ww -e -o pid -o ppid -o args --no-headers'

describe('preflight on a host whose /proc hides other users’ processes', () => {
  it('reports the workers as not verified, with the sudo ps line, and goes on (not "0 workers")', async () => {
    const { log, run } = preflightOf({ hidepid: 'invisible', refused: ['ps'] })
    const snap = await run
    expect(snap.processes).toBe('hidden')
    expect(snap.cold).toBe(false)
    const workers = snap.notVerified.find(n => n.what.startsWith('workers:'))
    expect(workers?.what).toContain('/proc is mounted with hidepid=invisible')
    expect(workers?.what).toContain('cannot see the processes of www-data')
    expect(workers?.allow).toContain(SUDO_PS)
    expect(log.lines.join('\n')).not.toMatch(/0 worker/)
    expect(log.lines.join('\n')).toContain('master 31, its workers hidden from the deploy user')
  })

  it('still refuses a unit configured for fewer than 2 workers (read from the unit, not from ps)', async () => {
    const { run } = preflightOf({
      hidepid: 'invisible',
      refused: ['ps'],
      execStart:
        '/srv/myapp/.venv/bin/gunicorn --workers 1 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app'
    })
    await expect(run).rejects.toThrow(/configured for 1 worker/)
  })

  it('sees the master and its workers through sudo ps where allowed', async () => {
    const { remote, log, run } = preflightOf({ hidepid: 'invisible' })
    const snap = await run
    expect(snap.processes).toBe('sudo')
    expect(snap.workers).toEqual([32, 33, 34])
    expect(snap.masterDir).toBe('/srv/myapp/releases/v1')
    expect(snap.notVerified.map(n => n.what).join('\n')).not.toMatch(/workers/)
    expect(remote.commands).toContain('sudo -n ps -ww -e -o pid -o ppid -o args --no-headers')
    expect(log.lines.join('\n')).toContain('3 workers (seen through sudo ps)')
  })

  it('reads the hidden master’s directory with sudo pwdx (pruning spares it)', async () => {
    const { run } = preflightOf({ hidepid: 'invisible', refused: ['ps'] })
    expect((await run).masterDir).toBe('/srv/myapp/releases/v1')
  })

  it('on an ordinary host reads ps alone, never sudo ps', async () => {
    const { remote, run } = preflightOf({})
    const snap = await run
    expect(snap.processes).toBe('ps')
    expect(snap.workers).toEqual([32, 33, 34])
    expect(remote.commands.some(c => c.startsWith('sudo -n ps'))).toBe(false)
  })
})

const hosts: FakeHost[] = []
afterEach(async () => {
  for (const h of hosts.splice(0)) await h.dispose()
})

async function hiddenHost(sudoPs: boolean): Promise<FakeHost> {
  const host = new FakeHost('v1')
  host.hidesProcesses = { sudoPs }
  await host.listen()
  hosts.push(host)
  return host
}

function cutover(host: FakeHost, processes: CutoverPlan['processes']) {
  const plan = (release: string): CutoverPlan => ({
    release,
    releaseDir: `/srv/myapp/releases/${release}`,
    expectedWorkers: 3,
    dirs: 'sudo',
    processes,
    urls: [{ kind: 'unix', socket: '/run/myapp/myapp.sock', path: '/health', text: 'health' }],
    healthExpect: undefined
  })
  const s = host.state
  const req: ReloadRequest = {
    action: 'deploy',
    plan: plan('v2'),
    from: {
      release: 'v1',
      releaseDir: '/srv/myapp/releases/v1',
      activeState: s.activeState,
      subState: 'running',
      mainPid: s.mainPid,
      alive: true,
      workers: processes === 'hidden' ? [] : [...s.workers]
    },
    fallback: { kind: 'release', plan: plan('v1') },
    restartDeadMaster: false
  }
  const log = recorder()
  const result = newHostResult(host.target.label)
  const ctx: CutoverContext = {
    conn: { remote: host },
    service: 'myapp',
    layout: new ReleaseLayout('/srv/myapp'),
    access: accessWith(),
    healthChecks: 2,
    timeoutSeconds: 2,
    nginxErrorLog: '/var/log/nginx/error.log',
    probeUrl: undefined,
    log,
    since: new Date(),
    run: { sha: 'abc', actor: 'test', runUrl: 'local' },
    step: (name, fn) => timed(result, name, fn)
  }
  // As the modes run it: the outcome is reported into the result, a failure thrown.
  const run = runCutover(reloadCutover(req, ctx), req, ctx).then(outcome => {
    recordOutcome(result, outcome)
    if (!outcome.ok) throw new CutoverFailed(outcome.error ?? '')
  })
  return { run, log, result }
}

class CutoverFailed extends Error {}

describe('verification when the workers are hidden', () => {
  it('proves the release by systemd (the master kept) and health naming it', async () => {
    const host = await hiddenHost(false)
    const master = host.state.mainPid
    const { run, log } = cutover(host, 'hidden')
    await run
    expect(host.state).toMatchObject({ current: 'v2', mainPid: master, workerRelease: 'v2' })
    expect(log.lines.join('\n')).toContain(`master ${master} kept; its workers are hidden`)
  })

  it('catches a master that dies after the reload through systemd, and rolls back', async () => {
    const host = await hiddenHost(false)
    host.reloads = ['master-dies']
    const { run, result } = cutover(host, 'hidden')
    await expect(run).rejects.toThrow(CutoverFailed)
    expect(result.error).toContain('the Gunicorn master died after the reload')
    expect(result.rolledBack).toBe(true)
    expect(host.state.current).toBe('v1')
  })

  it('with sudo ps, watches the old workers go and the new ones come through sudo ps', async () => {
    const host = await hiddenHost(true)
    const old = [...host.state.workers]
    const { run, log } = cutover(host, 'sudo')
    await run
    expect(host.state.workers).not.toEqual(old)
    expect(host.commands.some(c => c.includes('sudo -n ps -ww -e -o pid'))).toBe(true)
    expect(log.lines.join('\n')).toContain('3 new workers')
    expect(log.lines.join('\n')).toContain('in /srv/myapp/releases/v2')
  })
})
