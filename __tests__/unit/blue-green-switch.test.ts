// Every branch of the blue-green cutover, against a simulated blue-green host
// (__fixtures__/fake-blue-green-host.ts): the layout is read from the host as
// preflight reads it, commands are recorded and answered from the host's state,
// and health answers come from real local HTTP servers through the action's own
// HTTP client.
import { afterEach, describe, expect, it } from '@jest/globals'
import { accessWith } from '../../__fixtures__/host-facts.js'
import {
  CURRENT,
  FakeBlueGreenHost,
  LIVE,
  ROOT,
  slotOf,
  socketOf,
  STATIC_FILE,
  type BlueGreenSetup
} from '../../__fixtures__/fake-blue-green-host.js'
import { newHostResult, timed, type HostResult } from '../../src/core/host-result.js'
import { recorder } from '../../__fixtures__/recording-log.js'
import { readBlueGreen } from '../../src/host/blue-green/instances.js'
import { blueGreenCutover, type BlueGreenRequest } from '../../src/host/cutover/blue-green.js'
import { runCutover } from '../../src/host/cutover/driver.js'
import type {
  CutoverContext,
  CutoverOutcome,
  CutoverPlan,
  ServingState
} from '../../src/host/cutover/types.js'
import { recordOutcome } from '../../src/modes/plans.js'
import type { StaticLocation } from '../../src/host/nginx/nginx-config.js'
import { ReleaseLayout } from '../../src/host/release-layout.js'
import { parseHttpTarget, type HttpTarget } from '../../src/transport/http-target.js'

const layout = new ReleaseLayout(ROOT)
const healthUrl = parseHttpTarget(`http://unix:${LIVE}:/health`)!
const nginxUrl = parseHttpTarget('http://127.0.0.1/health')!

const hosts: FakeBlueGreenHost[] = []
afterEach(async () => {
  for (const h of hosts.splice(0)) await h.dispose()
})

async function fakeHost(setup: BlueGreenSetup): Promise<FakeBlueGreenHost> {
  const host = new FakeBlueGreenHost(setup)
  await host.listen()
  hosts.push(host)
  return host
}

/** blue serves v1 through live.sock; green is stopped, its slot on v0 from the deploy before. */
const SERVING_V1: BlueGreenSetup = {
  slots: { blue: 'v1', green: 'v0' },
  running: ['blue'],
  live: 'blue'
}

/** Proves `release`: as planFor builds it under blue-green (health-url on live.sock, then Nginx). */
const plan = (release: string, staticFiles = false): CutoverPlan => ({
  release,
  releaseDir: `${ROOT}/releases/${release}`,
  expectedWorkers: 3,
  dirs: 'sudo',
  urls: [healthUrl, nginxUrl],
  healthExpect: undefined,
  staticFiles: staticFiles
    ? {
        nginx: nginxUrl,
        location: {
          urlPrefix: '/static/',
          dir: CURRENT,
          subdir: '',
          exact: false
        } as StaticLocation
      }
    : undefined
})

function context(
  host: FakeBlueGreenHost,
  opts: { reconnect?: () => Promise<FakeBlueGreenHost>; probe?: HttpTarget } = {}
) {
  const log = recorder()
  const result = newHostResult(host.target.label)
  const ctx: CutoverContext = {
    conn: { remote: host, reconnect: opts.reconnect },
    service: 'myapp',
    layout,
    access: accessWith(),
    healthChecks: 2,
    timeoutSeconds: 0.4,
    nginxErrorLog: '/var/log/nginx/error.log',
    probeUrl: opts.probe,
    log,
    since: new Date(),
    run: { sha: 'abc', actor: 'test', runUrl: 'local' },
    step: (name, fn) => timed(result, name, fn)
  }
  results.set(ctx, result)
  return { ctx, log, result }
}

const results = new WeakMap<CutoverContext, HostResult>()

/** A failed cutover's outcome, thrown by runBlueGreenCutover. */
class CutoverFailed extends Error {
  constructor(readonly outcome: CutoverOutcome) {
    super(outcome.error)
  }
}

/** Runs the cutover through the driver and reports it into the result, as the modes do. */
async function runBlueGreenCutover(
  req: BlueGreenRequest,
  ctx: CutoverContext
): Promise<CutoverOutcome> {
  const outcome = await runCutover(blueGreenCutover(req, ctx), req, ctx)
  recordOutcome(results.get(ctx)!, outcome)
  if (!outcome.ok) throw new CutoverFailed(outcome)
  return outcome
}

/** The request deploy.ts (or rollback.ts) builds: the layout read from the host, as preflight reads it. */
async function request(
  host: FakeBlueGreenHost,
  release: string,
  opts: { keepWarm?: boolean; action?: BlueGreenRequest['action']; staticFiles?: boolean } = {}
): Promise<BlueGreenRequest> {
  const bg = await readBlueGreen(host, 'myapp', layout)
  const serving = host.instances[bg.live ?? 'blue']
  const current = host.current
  const from: ServingState = {
    release: current,
    releaseDir: current ? `${ROOT}/releases/${current}` : undefined,
    activeState: serving.activeState,
    subState: serving.subState,
    mainPid: serving.mainPid,
    alive: serving.activeState === 'active' && serving.mainPid > 0,
    workers: [...serving.workers]
  }
  host.forget()
  return {
    action: opts.action ?? 'deploy',
    plan: plan(release, opts.staticFiles),
    from,
    bg,
    keepWarm: opts.keepWarm ?? false,
    back: current ? plan(current) : undefined
  }
}

const outcomes = (host: FakeBlueGreenHost) => host.releaseLog.map(e => e.outcome)
const stepNames = (result: { steps: { name: string }[] }) => result.steps.map(s => s.name)

/** Runs the cutover expecting it to fail; returns the failure. */
async function failing(req: BlueGreenRequest, ctx: CutoverContext): Promise<CutoverFailed> {
  const error = await runBlueGreenCutover(req, ctx).then(
    () => undefined,
    (e: unknown) => e
  )
  expect(error).toBeInstanceOf(CutoverFailed)
  return error as CutoverFailed
}

describe('the blue-green cutover', () => {
  it('starts the idle instance, proves it, switches live.sock and current in one command, and stops the old one after the drain', async () => {
    const host = await fakeHost(SERVING_V1)
    const { ctx, result, log } = context(host, { probe: nginxUrl })
    await runBlueGreenCutover(await request(host, 'v2', { staticFiles: true }), ctx)

    expect(host.events).toEqual([
      'slot green -> v2',
      'start myapp@green',
      'live -> green',
      'current -> v2',
      `drain ${socketOf('blue')}`,
      'stop myapp@blue'
    ])
    // live.sock then current, in one round trip
    const switches = host.commands.filter(c => c.includes(`mv -Tf ${ROOT}/.live.sock.tmp ${LIVE}`))
    expect(switches).toHaveLength(1)
    expect(switches[0]).toContain(`mv -Tf ${ROOT}/.current.tmp ${CURRENT}`)
    expect(switches[0].indexOf('live.sock')).toBeLessThan(switches[0].indexOf('current'))
    // the new instance was proven on its own socket before traffic moved
    const proven = log.lines.findIndex(l =>
      l.includes(`http://unix:${socketOf('green')}:/health: 2 healthy answers`)
    )
    const switched = log.lines.findIndex(l => l.includes('switching live.sock to myapp@green'))
    expect(proven).toBeGreaterThan(-1)
    expect(proven).toBeLessThan(switched)
    expect(log.lines).toContainEqual(
      expect.stringContaining(
        `static files: http://127.0.0.1:80/static/${STATIC_FILE} through Nginx matches`
      )
    )
    expect(host.live).toBe('green')
    expect(host.current).toBe('v2')
    expect(host.instances.green).toMatchObject({ activeState: 'active', release: 'v2' })
    expect(host.instances.blue.activeState).toBe('inactive')
    expect(stepNames(result)).toEqual(['start', 'prove', 'switch', 'verify', 'drain', 'stop old'])
    expect(result.error).toBeUndefined()
    expect(result.instance).toBe('myapp@green')
    // requests through Nginx all the way: the old release, then the new one, none failed
    expect(result.failedRequests).toBe(0)
    expect(result.probeRequests).toBeGreaterThan(0)
    expect(log.lines).toContainEqual(expect.stringContaining('releases seen: v1 -> v2'))
    expect(outcomes(host)).toEqual(['deployed'])
    expect(host.releaseLog[0]).toMatchObject({ id: 'v2', previous: 'v1', action: 'deploy' })
    expect(host.violations).toEqual([])
  })

  it('polls the instance when the host cannot run the watch helper', async () => {
    const host = await fakeHost(SERVING_V1)
    host.watchHelper = false
    const { ctx } = context(host)
    await runBlueGreenCutover(await request(host, 'v2'), ctx)
    expect(host.live).toBe('green')
    expect(
      host.commands.some(c => c.startsWith('echo @@zdd-state@@; systemctl show myapp@green'))
    ).toBe(true)
  })

  it('keeps the old instance running with keep-previous: warm', async () => {
    const host = await fakeHost(SERVING_V1)
    const { ctx, result, log } = context(host)
    await runBlueGreenCutover(await request(host, 'v2', { keepWarm: true }), ctx)
    expect(host.live).toBe('green')
    expect(host.instances.blue).toMatchObject({ activeState: 'active', release: 'v1' })
    expect(host.events).not.toContainEqual(expect.stringMatching(/^(drain|stop)/))
    expect(log.lines).toContain('info myapp@blue stays warm on v1 (keep-previous: warm)')
    expect(stepNames(result)).toEqual(['start', 'prove', 'switch', 'verify'])
    expect(host.violations).toEqual([])
  })

  it('rolls back to a warm instance at once: no start, no slot change, only the switch', async () => {
    // v2 serves on green; blue still runs v1, kept warm by the deploy before.
    const host = await fakeHost({
      slots: { blue: 'v1', green: 'v2' },
      running: ['blue', 'green'],
      live: 'green'
    })
    const blueMaster = host.instances.blue.mainPid
    const { ctx, result } = context(host)
    await runBlueGreenCutover(await request(host, 'v1', { action: 'rollback' }), ctx)
    expect(host.events).toEqual([
      'live -> blue',
      'current -> v1',
      `drain ${socketOf('green')}`,
      'stop myapp@green'
    ])
    expect(host.instances.blue.mainPid).toBe(blueMaster)
    expect(host.current).toBe('v1')
    expect(stepNames(result)).toEqual(['prove', 'switch', 'verify', 'drain', 'stop old'])
    expect(outcomes(host)).toEqual(['rolled-back'])
    expect(host.violations).toEqual([])
  })

  it('rolls back to a stopped instance by starting it on the previous release (mode: rollback, cold)', async () => {
    const host = await fakeHost({
      slots: { blue: 'v1', green: 'v2' },
      running: ['green'],
      live: 'green'
    })
    const { ctx } = context(host)
    await runBlueGreenCutover(await request(host, 'v1', { action: 'rollback' }), ctx)
    expect(host.events.slice(0, 2)).toEqual(['slot blue -> v1', 'start myapp@blue'])
    expect(host.live).toBe('blue')
    expect(host.instances.blue.release).toBe('v1')
    expect(host.instances.green.activeState).toBe('inactive')
    expect(outcomes(host)).toEqual(['rolled-back'])
    expect(host.violations).toEqual([])
  })

  it('stops an idle instance that runs another release before its slot moves', async () => {
    const host = await fakeHost({ ...SERVING_V1, running: ['blue', 'green'] })
    const { ctx, result } = context(host)
    await runBlueGreenCutover(await request(host, 'v2'), ctx)
    expect(host.events.slice(0, 3)).toEqual([
      'stop myapp@green',
      'slot green -> v2',
      'start myapp@green'
    ])
    expect(host.instances.green.release).toBe('v2')
    expect(stepNames(result)[0]).toBe('stop idle')
    expect(host.violations).toEqual([])
  })

  it('names the sudoers line when sudo refuses to start the idle instance, and switches nothing', async () => {
    const host = await fakeHost(SERVING_V1)
    host.sudoRefuses.add('start myapp@green')
    const { ctx, result } = context(host)
    const error = await failing(await request(host, 'v2'), ctx)
    expect(error.outcome.switched).toBe(false)
    expect(result.error).toContain('sudo refused systemctl start myapp@green for deploy')
    expect(result.error).toContain(
      'deploy ALL=(root) NOPASSWD: /usr/bin/systemctl start myapp@green'
    )
    expect(result.error).toContain('No request reached v2: traffic never moved.')
    expect(host.live).toBe('blue')
    expect(host.current).toBe('v1')
    expect(host.instances.blue.activeState).toBe('active')
    // the slot goes back to where it pointed
    expect(host.slotRelease('green')).toBe('v0')
    expect(result.rolledBack).toBe(false)
    expect(outcomes(host)).toEqual(['failed'])
    expect(host.violations).toEqual([])
  })

  it('stops a new master that dies at boot, gives its slot back and collects its journal; nothing switched', async () => {
    const host = await fakeHost(SERVING_V1)
    host.bootFails.add('v2')
    const { ctx, result } = context(host)
    const error = await failing(await request(host, 'v2'), ctx)
    expect(error.outcome.switched).toBe(false)
    expect(result.error).toMatch(/the Gunicorn master died after myapp@green started/)
    expect(result.error).toContain('No request reached v2')
    expect(result.excerpt).toContain('myapp journal: myapp@green log line')
    expect(host.events).not.toContainEqual(expect.stringMatching(/^(live|current)/))
    expect(host.events.slice(-2)).toEqual(['stop myapp@green', 'slot green -> v0'])
    expect(host.instances.green.activeState).toBe('inactive')
    expect(host.slotRelease('green')).toBe('v0')
    expect(host.live).toBe('blue')
    expect(host.current).toBe('v1')
    expect(outcomes(host)).toEqual(['failed'])
  })

  it('removes the slot it created when the first release in that instance fails', async () => {
    const host = await fakeHost({ slots: { blue: 'v1' }, running: ['blue'], live: 'blue' })
    host.bootFails.add('v2')
    const { ctx } = context(host)
    await failing(await request(host, 'v2'), ctx)
    expect(host.links.has(slotOf('green'))).toBe(false)
    expect(host.events.slice(-1)).toEqual([`rm ${slotOf('green')}`])
  })

  it.each([
    [
      'names another release',
      (h: FakeBlueGreenHost) => h.namesRelease.set('v2', 'v1'),
      'answered 2xx for release v1, not v2'
    ],
    ['answers 500', (h: FakeBlueGreenHost) => h.unhealthy.add('v2'), 'answered HTTP 500']
  ])('switches nothing when health on the new instance %s', async (_what, knob, message) => {
    const host = await fakeHost(SERVING_V1)
    knob(host)
    const { ctx, result } = context(host)
    const error = await failing(await request(host, 'v2'), ctx)
    expect(error.outcome.switched).toBe(false)
    expect(result.error).toContain(`http://unix:${socketOf('green')}:/health ${message}`)
    expect(host.live).toBe('blue')
    expect(host.instances.green.activeState).toBe('inactive')
    expect(host.instances.blue.activeState).toBe('active')
    expect(outcomes(host)).toEqual(['failed'])
  })

  it('switches traffic back to the old instance and proves it when the release fails through Nginx', async () => {
    const host = await fakeHost(SERVING_V1)
    host.failsBehindNginx.add('v2')
    const { ctx, result } = context(host, { probe: nginxUrl })
    const error = await failing(await request(host, 'v2'), ctx)
    expect(error.outcome.switched).toBe(true)
    expect(result.error).toContain('http://127.0.0.1/health answered HTTP 400')
    expect(result.error).toContain('Traffic is back on myapp@blue (v1).')
    expect(host.events).toEqual([
      'slot green -> v2',
      'start myapp@green',
      'live -> green',
      'current -> v2',
      'live -> blue',
      'current -> v1',
      'drain /run/myapp-green/gunicorn.sock',
      'stop myapp@green',
      'slot green -> v0'
    ])
    expect(result.rolledBack).toBe(true)
    expect(result.status).toBe('rolled-back')
    expect(result.instance).toBe('myapp@blue')
    expect(stepNames(result)).toContain('rollback')
    expect(host.instances.blue.activeState).toBe('active')
    expect(result.excerpt).toContain('myapp@green')
    expect(outcomes(host)).toEqual(['rolled-back'])
    expect(host.violations).toEqual([])
  })

  it('switches back when live.sock cannot be replaced', async () => {
    const host = await fakeHost(SERVING_V1)
    host.readOnly.add(LIVE)
    const { ctx, result } = context(host)
    await failing(await request(host, 'v2'), ctx)
    expect(result.error).toContain(`switching ${LIVE} failed: mv: cannot move`)
    expect(host.live).toBe('blue')
    expect(host.current).toBe('v1')
    expect(host.instances.green.activeState).toBe('inactive')
  })

  it('starts blue on a first deploy; with no instance before, nothing is drained or stopped', async () => {
    const host = await fakeHost({})
    const { ctx, result } = context(host, { probe: nginxUrl })
    await runBlueGreenCutover(await request(host, 'v1'), ctx)
    expect(host.events).toEqual([
      'slot blue -> v1',
      'start myapp@blue',
      'live -> blue',
      'current -> v1'
    ])
    // nothing served before: no traffic probe
    expect(result.probeRequests).toBe(0)
    expect(outcomes(host)).toEqual(['deployed'])
  })

  it('removes live.sock and current again when a first deploy fails after the switch', async () => {
    const host = await fakeHost({})
    host.failsBehindNginx.add('v1')
    const { ctx, result } = context(host)
    const error = await failing(await request(host, 'v1'), ctx)
    expect(error.outcome.switched).toBe(true)
    expect(result.error).toContain(
      `This was the first deploy: live.sock and ${CURRENT} were removed again.`
    )
    expect(host.links.has(LIVE)).toBe(false)
    expect(host.links.has(CURRENT)).toBe(false)
    expect(host.links.has(slotOf('blue'))).toBe(false)
    expect(host.instances.blue.activeState).toBe('inactive')
    expect(result.rolledBack).toBe(false)
    expect(outcomes(host)).toEqual(['failed'])
  })

  it('warns when the drain helper finds no ss, and still stops the old instance', async () => {
    const host = await fakeHost(SERVING_V1)
    host.drain = 'no-ss'
    const { ctx, log } = context(host)
    await runBlueGreenCutover(await request(host, 'v2'), ctx)
    expect(log.lines).toContainEqual(
      expect.stringMatching(
        /^warning ss \(iproute2\) is missing: .* myapp@blue stops after 1 s instead/
      )
    )
    expect(host.events.slice(-2)).toEqual([`drain ${socketOf('blue')}`, 'stop myapp@blue'])
    expect(host.instances.blue.activeState).toBe('inactive')
  })

  it('warns when the old queue never empties, and stops the old instance anyway', async () => {
    const host = await fakeHost(SERVING_V1)
    host.drain = 'stays-full'
    const { ctx, log } = context(host)
    await runBlueGreenCutover(await request(host, 'v2'), ctx)
    expect(log.lines).toContainEqual(
      `warning ${socketOf('blue')} still had queued connections after 30 s; stopping myapp@blue anyway`
    )
    expect(host.instances.blue.activeState).toBe('inactive')
  })

  it('succeeds with a warning when the old instance cannot be stopped', async () => {
    const host = await fakeHost(SERVING_V1)
    host.sudoRefuses.add('stop myapp@blue')
    const { ctx, result, log } = context(host)
    await runBlueGreenCutover(await request(host, 'v2'), ctx)
    expect(result.error).toBeUndefined()
    expect(host.live).toBe('green')
    expect(host.instances.blue.activeState).toBe('active')
    expect(log.lines).toContainEqual(
      expect.stringMatching(
        /^warning myapp@blue keeps running: sudo refused systemctl stop myapp@blue .*Both instances use memory/
      )
    )
    expect(outcomes(host)).toEqual(['deployed'])
  })

  it('reconnects when the connection drops after the switch, and switches back on the new connection', async () => {
    const host = await fakeHost(SERVING_V1)
    // the first command after the switch: proving green through live.sock and Nginx
    host.dropWhen = c => host.live === 'green' && c.includes('watchworkers')
    let reconnects = 0
    const { ctx, result } = context(host, {
      reconnect: async () => {
        reconnects++
        return host.reconnected()
      }
    })
    await failing(await request(host, 'v2'), ctx)
    expect(reconnects).toBe(1)
    expect(host.live).toBe('blue')
    expect(host.current).toBe('v1')
    expect(host.instances.green.activeState).toBe('inactive')
    expect(result.rolledBack).toBe(true)
    expect(outcomes(host)).toEqual(['rolled-back'])
  })

  it('reconnects when the connection drops during the start, and stops the new instance', async () => {
    const host = await fakeHost(SERVING_V1)
    host.dropWhen = c => c.includes('systemctl start')
    const { ctx, result } = context(host, { reconnect: async () => host.reconnected() })
    const error = await failing(await request(host, 'v2'), ctx)
    expect(error.outcome.switched).toBe(false)
    expect(host.live).toBe('blue')
    expect(host.instances.green.activeState).toBe('inactive')
    expect(host.slotRelease('green')).toBe('v0')
    expect(result.error).toContain(
      'systemctl start myapp@green got no answer (the connection may have dropped)'
    )
  })

  it('starts the old instance again when it died during the deploy, proves it, then moves traffic back', async () => {
    const host = await fakeHost(SERVING_V1)
    host.failsBehindNginx.add('v2')
    // blue dies once traffic has moved to green (killed for memory, say)
    host.afterCommand = () => {
      if (
        host.live === 'green' &&
        host.running('blue') &&
        !host.events.includes('start myapp@blue')
      )
        host.kill('blue')
    }
    const { ctx, result, log } = context(host)
    await failing(await request(host, 'v2'), ctx)
    expect(log.lines.join('\n')).toContain(
      'myapp@blue stopped running during the deploy: starting it again on v1 before traffic goes back to it'
    )
    // started and proven before live.sock moved back to it; green stopped after
    expect(host.events).toEqual([
      'slot green -> v2',
      'start myapp@green',
      'live -> green',
      'current -> v2',
      'start myapp@blue',
      'live -> blue',
      'current -> v1',
      'drain /run/myapp-green/gunicorn.sock',
      'stop myapp@green',
      'slot green -> v0'
    ])
    expect(host.live).toBe('blue')
    expect(host.running('blue')).toBe(true)
    expect(host.current).toBe('v1')
    expect(result.rolledBack).toBe(true)
    expect(outcomes(host)).toEqual(['rolled-back'])
    expect(host.violations).toEqual([])
  })

  it('keeps traffic on the new instance when the old one died and cannot start again: not on nothing', async () => {
    const host = await fakeHost(SERVING_V1)
    host.failsBehindNginx.add('v2')
    host.afterCommand = () => {
      if (host.live === 'green' && host.running('blue')) {
        host.kill('blue')
        host.bootFails.add('v1') // and it cannot boot again (its release broke meanwhile)
      }
    }
    const { ctx, result } = context(host)
    await failing(await request(host, 'v2'), ctx)
    expect(result.error).toContain(
      'myapp@blue stopped running during the deploy and could not be started again'
    )
    expect(result.error).toContain(
      'traffic stays on myapp@green, the new release, rather than on nothing'
    )
    expect(host.live).toBe('green')
    expect(host.running('green')).toBe(true)
    expect(result.rolledBack).toBe(false)
    expect(outcomes(host)).toEqual(['failed'])
  })

  it('keeps the new instance running when switching back fails: live.sock still points at it', async () => {
    const host = await fakeHost(SERVING_V1)
    host.failsBehindNginx.add('v2')
    // once traffic is on green, live.sock can no longer be replaced
    host.afterCommand = () => {
      if (host.live === 'green') host.readOnly.add(LIVE)
    }
    const { ctx, result } = context(host)
    await failing(await request(host, 'v2'), ctx)
    expect(result.error).toContain('Switching back failed too')
    expect(host.live).toBe('green')
    expect(host.instances.green.activeState).toBe('active')
    expect(host.violations).toEqual([])
  })

  it('stops an old live instance that crash-loops once traffic has moved off it', async () => {
    // blue is live but its master keeps dying (Restart=always: activating/auto-restart)
    const host = await fakeHost(SERVING_V1)
    host.crashLoop('blue')
    expect(host.instances.blue.activeState).toBe('activating')
    const { ctx } = context(host)
    await runBlueGreenCutover(await request(host, 'v2'), ctx)
    expect(host.live).toBe('green')
    expect(host.events).toContain('stop myapp@blue')
    expect(host.instances.blue.activeState).toBe('inactive')
  })

  it("waits for the failed instance's queue to empty before stopping it after a switch back", async () => {
    const host = await fakeHost(SERVING_V1)
    host.failsBehindNginx.add('v2')
    const { ctx } = context(host)
    await failing(await request(host, 'v2'), ctx)
    const drained = host.events.indexOf(`drain ${socketOf('green')}`)
    expect(drained).toBeGreaterThan(host.events.indexOf('live -> blue'))
    expect(drained).toBeLessThan(host.events.indexOf('stop myapp@green'))
  })

  it('does not repoint the slot of an idle instance that crash-loops: it is stopped first', async () => {
    const host = await fakeHost(SERVING_V1)
    host.crashLoop('green')
    expect(host.instances.green.activeState).toBe('activating')
    const { ctx } = context(host)
    await runBlueGreenCutover(await request(host, 'v2'), ctx)
    expect(host.events.slice(0, 2)).toEqual(['stop myapp@green', 'slot green -> v2'])
    expect(host.violations).toEqual([])
  })

  it('reconnects to stop the old instance when the connection drops during the drain', async () => {
    const host = await fakeHost(SERVING_V1)
    host.dropWhen = c => c.includes('ss -xlnH')
    const { ctx, log } = context(host, { reconnect: async () => host.reconnected() })
    await runBlueGreenCutover(await request(host, 'v2'), ctx)
    expect(host.live).toBe('green')
    expect(log.lines).not.toContainEqual(expect.stringContaining('after 30 s'))
    expect(host.instances.blue.activeState).toBe('inactive')
    expect(outcomes(host)).toEqual(['deployed'])
  })

  it('says so when the old release does not prove itself after the switch back either', async () => {
    const host = await fakeHost(SERVING_V1)
    host.failsBehindNginx.add('v2')
    host.failsBehindNginx.add('v1')
    const { ctx, result } = context(host)
    await failing(await request(host, 'v2'), ctx)
    expect(result.error).toContain(
      'Traffic is back on myapp@blue, but v1 did not prove itself there either: within reload-timeout'
    )
    expect(host.live).toBe('blue')
    expect(host.current).toBe('v1')
    expect(host.instances.green.activeState).toBe('inactive')
    expect(result.rolledBack).toBe(false)
    expect(outcomes(host)).toEqual(['failed'])
  })

  it('stops the new instance when live.sock moved back but current could not', async () => {
    const host = await fakeHost(SERVING_V1)
    host.readOnly.add(CURRENT)
    const { ctx, result } = context(host)
    await failing(await request(host, 'v2'), ctx)
    expect(result.error).toContain(
      `Switching back failed: switching ${LIVE} failed: mv: cannot move`
    )
    expect(result.error).toContain(`live.sock points at ${socketOf('blue')}, not at myapp@green.`)
    expect(host.live).toBe('blue')
    expect(host.current).toBe('v1')
    expect(host.events.slice(-2)).toEqual(['stop myapp@green', 'slot green -> v0'])
    expect(host.violations).toEqual([])
  })

  it('puts current back when the first blue-green deploy onto a host that has current fails after the switch', async () => {
    // no instance ran and live.sock does not exist yet, but current points at v1
    const host = await fakeHost({})
    host.links.set(CURRENT, 'releases/v1')
    host.failsBehindNginx.add('v2')
    const { ctx, result } = context(host)
    await failing(await request(host, 'v2'), ctx)
    expect(host.links.has(LIVE)).toBe(false)
    expect(host.current).toBe('v1')
    expect(result.error).not.toContain('This was the first deploy')
  })

  it('says where live.sock may point when it cannot reconnect to clean up', async () => {
    const host = await fakeHost(SERVING_V1)
    host.dropWhen = c => host.live === 'green' && c.includes('watchworkers')
    const { ctx, result } = context(host, {
      reconnect: () => Promise.reject(new Error('connect ECONNREFUSED'))
    })
    const error = await failing(await request(host, 'v2'), ctx)
    expect(error.outcome.switched).toBe(true)
    expect(result.error).toContain('Could not reconnect to clean up: connect ECONNREFUSED')
    expect(result.error).toContain(`check where ${LIVE} points`)
    expect(host.live).toBe('green')
  })
})

describe('reading the blue-green layout', () => {
  it('finds the live instance, each slot and each socket', async () => {
    const host = await fakeHost({
      slots: { blue: 'v1', green: 'v2' },
      running: ['blue', 'green'],
      live: 'green'
    })
    host.links.set(slotOf('blue'), `${ROOT}/releases/v1`)
    const bg = await readBlueGreen(host, 'myapp', layout)
    expect(bg.live).toBe('green')
    expect(bg.liveTarget).toBe(socketOf('green'))
    expect(bg.instances.blue).toMatchObject({
      unit: 'myapp@blue',
      socket: socketOf('blue'),
      slotRelease: 'v1',
      slotTarget: `${ROOT}/releases/v1`
    })
    expect(bg.instances.green).toMatchObject({ slotRelease: 'v2', slotTarget: '../releases/v2' })
    expect(bg.instances.green.gunicorn.chdir).toBe(slotOf('green'))
  })

  it('names no live instance when live.sock points at another socket, and none before the first deploy', async () => {
    const host = await fakeHost(SERVING_V1)
    host.links.set(LIVE, '/run/myapp/myapp.sock')
    const bg = await readBlueGreen(host, 'myapp', layout)
    expect(bg.liveTarget).toBe('/run/myapp/myapp.sock')
    expect(bg.live).toBeUndefined()
    const first = await readBlueGreen(await fakeHost({}), 'myapp', layout)
    expect(first.liveTarget).toBeUndefined()
    expect(first.instances.blue.slotTarget).toBeUndefined()
  })

  it('reads no release from a slot that points outside releases/', async () => {
    const host = await fakeHost(SERVING_V1)
    host.links.set(slotOf('green'), '/tmp/app')
    expect((await readBlueGreen(host, 'myapp', layout)).instances.green.slotRelease).toBeUndefined()
  })

  it("reads no release from a slot that points into another app's releases/", async () => {
    const host = await fakeHost(SERVING_V1)
    host.links.set(slotOf('green'), '/srv/otherapp/releases/v1')
    expect((await readBlueGreen(host, 'myapp', layout)).instances.green.slotRelease).toBeUndefined()
  })
})
