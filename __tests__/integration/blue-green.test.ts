// strategy: blue-green against real hosts (hostkit style blue-green: myapp@blue serves v0
// through /srv/myapp/live.sock). Every case runs under HTTP load through Nginx and asserts
// that no request failed, and what the host serves, runs and links afterwards.
import { describe, expect, it } from '@jest/globals'
import * as path from 'node:path'
import { readFileSync, writeFileSync } from 'node:fs'
import {
  annotations,
  appFor,
  currentLink,
  deployLog,
  fetchNginx,
  inputsFor,
  prependTo,
  rootSh,
  runAction,
  servedRelease,
  type ActionRun,
  type KitHost
} from './kit.js'
import { underLoad, type LoadReport } from './load.js'
import { withHost, withHostGroup } from './with-host.js'

type Colour = 'blue' | 'green'
const other = (c: Colour): Colour => (c === 'blue' ? 'green' : 'blue')
const sockOf = (c: Colour) => `/run/myapp-${c}/gunicorn.sock`

/** 300 requests a second over 8 loops; each case waits for at least 400 answers. */
const LOAD = { rate: 300, loops: 8, maxSeconds: 150, atLeast: 400 }
const SLOW = 240_000

/** A deploy (or another mode) with strategy: blue-green, under load on /health through Nginx. */
function bgRun(host: KitHost, inputs: Record<string, string>): Promise<[ActionRun, LoadReport]> {
  return underLoadAt(host, '/health', inputs)
}

/** As bgRun, with the load on `urlPath`. */
async function underLoadAt(
  host: KitHost,
  urlPath: string,
  inputs: Record<string, string>
): Promise<[ActionRun, LoadReport]> {
  const started = Date.now()
  const [run, load] = await underLoad(
    host,
    () => runAction(inputsFor(host, { strategy: 'blue-green', ...inputs })),
    { ...LOAD, path: urlPath }
  )
  const what = `${inputs.mode ?? 'deploy'} ${inputs['release-id'] ?? ''}`.trim()
  console.log(
    `${host.name} ${what}: ${run.outputs.status} in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
      `load ${load.total} requests at ${load.rate}/s, ${load.failed} failed, releases ${load.releases.join(' -> ')}`
  )
  return [run, load]
}

function expectNoFailedRequests(load: LoadReport): void {
  // the failures are in the message when this fails
  expect({ failed: load.failed, failures: load.failures }).toEqual({ failed: 0, failures: [] })
  expect(load.total).toBeGreaterThanOrEqual(LOAD.atLeast)
}

/** The instance live.sock points at. */
async function liveColour(host: KitHost): Promise<Colour> {
  const target = (await rootSh(host, 'readlink /srv/myapp/live.sock')).trim()
  if (target === sockOf('blue')) return 'blue'
  if (target === sockOf('green')) return 'green'
  throw new Error(`live.sock points at ${target || 'nothing'}`)
}

/** systemctl is-active of one instance: active, inactive, failed, activating, ... */
async function stateOf(host: KitHost, colour: Colour): Promise<string> {
  return (await rootSh(host, `systemctl is-active myapp@${colour} || true`)).trim()
}

async function mainPid(host: KitHost, colour: Colour): Promise<number> {
  return Number((await rootSh(host, `systemctl show -P MainPID myapp@${colour}`)).trim())
}

/** Where slots/<colour> points, e.g. ../releases/g1 ('' when there is no slot). */
async function slotOf(host: KitHost, colour: Colour): Promise<string> {
  return (await rootSh(host, `readlink /srv/myapp/slots/${colour} || true`)).trim()
}

/** Everything a refused deploy must leave as it was: links, releases, instances, site. */
function layoutFingerprint(host: KitHost): Promise<string> {
  return rootSh(
    host,
    'cd /srv/myapp && for l in live.sock current slots/blue slots/green; do echo "$l -> $(readlink $l)"; done; ' +
      'ls -A releases; ls -A; sha256sum /etc/nginx/sites-enabled/*; ' +
      'systemctl show myapp@blue myapp@green -p Id -p MainPID -p ActiveState'
  )
}

function editHealth(dir: string, newBody: string): void {
  const file = path.join(dir, 'wsgi.py')
  const source = readFileSync(file, 'utf8')
  const start = source.indexOf('@app.route("/health")')
  writeFileSync(file, source.slice(0, start) + `@app.route("/health")\ndef health():\n${newBody}\n`)
}

/**
 * A good release deploys into the idle instance: traffic moves to it, the old instance
 * stops, Nginx serves it, the outputs and the release log say so.
 */
async function deploysGoodRelease(host: KitHost, id: string): Promise<void> {
  const before = await servedRelease(host)
  const from = await liveColour(host)
  const to = other(from)
  const [run, load] = await bgRun(host, { source: appFor(host), 'release-id': id })
  expect(annotations(run)).toBe('')
  expect(run.code).toBe(0)
  expect(run.outputs).toMatchObject({
    status: 'deployed',
    release: id,
    'previous-release': before,
    'rolled-back': 'false',
    'failed-requests': '0'
  })
  expectNoFailedRequests(load)
  expect(load.releases).toEqual([before, id])
  expect(await liveColour(host)).toBe(to)
  expect(await slotOf(host, to)).toBe(`../releases/${id}`)
  expect(await stateOf(host, to)).toBe('active')
  expect(await stateOf(host, from)).toBe('inactive')
  expect(await currentLink(host)).toBe(`releases/${id}`)
  expect(await servedRelease(host)).toBe(id)
  expect((await fetchNginx(host, '/static/style.css')).status).toBe(200)
  expect((await deployLog(host)).at(-1)).toMatchObject({
    action: 'deploy',
    id,
    previous: before,
    outcome: 'deployed'
  })
}

/** A /health that answers 500 only to proxied requests (X-Forwarded-For, set by the kit's Nginx site). */
const BROKEN_BEHIND_PROXY =
  '    from flask import request\n' +
  '    if request.headers.get("X-Forwarded-For"):\n' +
  '        return "broken behind the proxy", 500\n' +
  '    return {"status": "ok", "release": RELEASE}'

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

describe('blue-green deploys (Debian 12)', () => {
  const host = withHost('bkd1', { style: 'blue-green' })

  it(
    'deploys a good release into the idle instance and stops the old one, with 0 failed requests',
    async () => {
      expect(await liveColour(host)).toBe('blue')
      await deploysGoodRelease(host, 'g1')
    },
    SLOW
  )

  it(
    'deploys a release that takes 4 s to import with 0 failed requests',
    async () => {
      // Under reload the master's workers would be busy importing while requests queue
      // (bench/ measures that contrast); here the new instance imports off to the side.
      const slow = appFor(host, (_dir, file) => prependTo(file, 'import time\ntime.sleep(4)\n'))
      const from = await liveColour(host)
      const [run, load] = await bgRun(host, { source: slow, 'release-id': 'slow1' })
      // no import-time stall warning either: blue-green sends no HUP
      expect(annotations(run)).toBe('')
      expect(run.code).toBe(0)
      expect(run.outputs).toMatchObject({
        status: 'deployed',
        release: 'slow1',
        'previous-release': 'g1'
      })
      expectNoFailedRequests(load)
      expect(load.releases).toEqual(['g1', 'slow1'])
      expect(await liveColour(host)).toBe(other(from))
      expect(await stateOf(host, from)).toBe('inactive')
      expect(await servedRelease(host)).toBe('slow1')
    },
    SLOW
  )

  it(
    'stops a release whose workers fail to import: nothing switched, the old release keeps serving',
    async () => {
      // The import fails only inside Gunicorn, so the release passes the import check and
      // is stopped after its instance started (the journal shows why).
      const broken = appFor(host, (_dir, file) =>
        prependTo(
          file,
          'import sys\nif "gunicorn" in sys.argv[0]:\n    import flask_not_installed\n'
        )
      )
      const before = await servedRelease(host)
      const from = await liveColour(host)
      const idle = other(from)
      const [run, load] = await bgRun(host, {
        source: broken,
        'release-id': 'broken1',
        'reload-timeout': '15'
      })
      expect(run.code).not.toBe(0)
      expect(run.outputs.status).toBe('failed')
      expect(run.outputs['rolled-back']).not.toBe('true')
      const text = annotations(run)
      expect(text).toContain('nothing switched')
      expect(text).toContain(`myapp@${idle}`)
      expect(text).toContain(`journalctl -u myapp@${idle}`)
      expect(text).toContain("No module named 'flask_not_installed'") // the journal excerpt
      expectNoFailedRequests(load)
      expect(load.releases).toEqual([before])
      expect(await liveColour(host)).toBe(from)
      expect(await stateOf(host, from)).toBe('active')
      expect(await stateOf(host, idle)).toMatch(/^(inactive|failed)$/)
      expect(await currentLink(host)).toBe(`releases/${before}`)
      expect(await servedRelease(host)).toBe(before)
    },
    SLOW
  )

  it(
    'stops a release whose /health answers 500: nothing switched, the old release keeps serving',
    async () => {
      const sick = appFor(host, dir => editHealth(dir, '    return "database unreachable", 500'))
      const before = await servedRelease(host)
      const from = await liveColour(host)
      const idle = other(from)
      const [run, load] = await bgRun(host, {
        source: sick,
        'release-id': 'sick1',
        'reload-timeout': '10'
      })
      expect(run.code).not.toBe(0)
      expect(run.outputs.status).toBe('failed')
      expect(run.outputs['rolled-back']).not.toBe('true')
      const text = annotations(run)
      expect(text).toContain('nothing switched')
      expect(text).toContain('HTTP 500')
      expect(text).toContain(`myapp@${idle}`)
      expect(text).toContain(`journalctl -u myapp@${idle}`)
      expect(text).toMatch(/Booting worker|Listening at/) // the journal excerpt
      expectNoFailedRequests(load)
      expect(load.releases).toEqual([before])
      expect(await liveColour(host)).toBe(from)
      expect(await stateOf(host, idle)).toMatch(/^(inactive|failed)$/)
      expect(await currentLink(host)).toBe(`releases/${before}`)
      expect(await servedRelease(host)).toBe(before)
      expect((await deployLog(host)).at(-1)).toMatchObject({ id: 'sick1', outcome: 'failed' })
    },
    SLOW
  )

  it(
    'switches back to the old instance when the release fails behind Nginx after the switch',
    async () => {
      // /health answers 500 only to proxied requests (X-Forwarded-For, set by the kit's Nginx
      // site): the release passes its proof on its own socket, and fails the verification
      // through Nginx after live.sock moved. The load asks for / (200 from every release).
      const behindProxy = appFor(host, dir => editHealth(dir, BROKEN_BEHIND_PROXY))
      const before = await servedRelease(host)
      const from = await liveColour(host)
      const idle = other(from)
      const oldPid = await mainPid(host, from)
      const [run, load] = await underLoadAt(host, '/', {
        source: behindProxy,
        'release-id': 'proxied1',
        'reload-timeout': '10'
      })
      expect(run.code).not.toBe(0)
      expect(run.outputs).toMatchObject({
        status: 'rolled-back',
        'rolled-back': 'true',
        release: 'proxied1',
        'previous-release': before
      })
      expect(annotations(run)).toContain('HTTP 500')
      expectNoFailedRequests(load)
      expect(await liveColour(host)).toBe(from)
      // the old instance kept running through it all: the switch back needed no start
      expect(await mainPid(host, from)).toBe(oldPid)
      expect(await stateOf(host, idle)).toMatch(/^(inactive|failed)$/)
      expect(await currentLink(host)).toBe(`releases/${before}`)
      expect(await servedRelease(host)).toBe(before)
      expect((await deployLog(host)).at(-1)).toMatchObject({
        id: 'proxied1',
        outcome: 'rolled-back'
      })
    },
    SLOW
  )

  it(
    'starts the old instance again when it stopped during the deploy, and only then moves traffic back to it',
    async () => {
      const before = await servedRelease(host)
      const from = await liveColour(host)
      const idle = other(from)
      const oldPid = await mainPid(host, from)
      // Once live.sock has moved to the new instance (and the old one's queue has emptied),
      // the old instance stops, as if killed for memory, while the release fails its
      // verification through Nginx. Bounded: about 300 looks.
      const stopper = (async () => {
        for (let i = 0; i < 300; i++) {
          if ((await liveColour(host).catch(() => from)) === idle) {
            await sleep(1000)
            await rootSh(host, `systemctl stop myapp@${from}`)
            return true
          }
          await sleep(100)
        }
        return false
      })()
      const [run, load] = await underLoadAt(host, '/', {
        source: appFor(host, dir => editHealth(dir, BROKEN_BEHIND_PROXY)),
        'release-id': 'proxied2',
        'reload-timeout': '10'
      })
      expect(await stopper).toBe(true)
      expect(run.outputs).toMatchObject({ status: 'rolled-back', 'rolled-back': 'true' })
      expect(annotations(run)).toContain(
        `myapp@${from} stopped running during the deploy: starting it again on ${before}`
      )
      // traffic never went to the stopped instance: it was started and proven first
      expectNoFailedRequests(load)
      expect(await liveColour(host)).toBe(from)
      expect(await stateOf(host, from)).toBe('active')
      expect(await mainPid(host, from)).not.toBe(oldPid)
      expect(await stateOf(host, idle)).toMatch(/^(inactive|failed)$/)
      expect(await currentLink(host)).toBe(`releases/${before}`)
      expect(await servedRelease(host)).toBe(before)
    },
    SLOW
  )
})

describe('blue-green deploys (Debian 13)', () => {
  const host = withHost('bkt1', { style: 'blue-green', suite: 'trixie' })

  it(
    'deploys a good release into the idle instance and stops the old one, with 0 failed requests',
    async () => {
      expect(await liveColour(host)).toBe('blue')
      await deploysGoodRelease(host, 't1')
    },
    SLOW
  )
})

describe('blue-green deploys (Debian sid: Gunicorn 26)', () => {
  const host = withHost('bks1', { style: 'blue-green', suite: 'sid' })

  it(
    'deploys a good release into the idle instance and stops the old one, with 0 failed requests',
    async () => {
      expect(await liveColour(host)).toBe('blue')
      await deploysGoodRelease(host, 's1')
    },
    SLOW
  )
})

describe('blue-green rollbacks', () => {
  // r1 (green), then r2 (blue): green is stopped on r1, blue serves r2.
  const host = withHost('bkr1', { style: 'blue-green' }, async h => {
    for (const id of ['r1', 'r2']) {
      const run = await runAction(
        inputsFor(h, { strategy: 'blue-green', source: appFor(h), 'release-id': id })
      )
      if (run.outputs.status !== 'deployed')
        throw new Error(`setup deploy ${id}: ${annotations(run) || run.stdout.slice(-2000)}`)
    }
  })

  it(
    'rolls back without a warm instance: starts the previous release, proves it, then switches',
    async () => {
      expect(await liveColour(host)).toBe('blue')
      expect(await stateOf(host, 'green')).toBe('inactive')
      const [run, load] = await bgRun(host, { mode: 'rollback' })
      expect(run.code).toBe(0)
      expect(run.outputs).toMatchObject({
        status: 'rolled-back',
        release: 'r1',
        'previous-release': 'r2',
        'rolled-back': 'true'
      })
      expectNoFailedRequests(load)
      expect(load.releases).toEqual(['r2', 'r1'])
      expect(await liveColour(host)).toBe('green')
      expect(await slotOf(host, 'green')).toBe('../releases/r1')
      expect(await stateOf(host, 'green')).toBe('active')
      expect(await stateOf(host, 'blue')).toBe('inactive')
      expect(await currentLink(host)).toBe('releases/r1')
      expect(await servedRelease(host)).toBe('r1')
      expect((await deployLog(host)).at(-1)).toMatchObject({
        action: 'rollback',
        id: 'r1',
        previous: 'r2',
        outcome: 'rolled-back'
      })
    },
    SLOW
  )

  it(
    'keeps the previous instance warm, so a rollback is an instant switch back to it',
    async () => {
      // green serves r1; r3 goes into blue and green keeps running
      const [deploy, deployLoad] = await bgRun(host, {
        source: appFor(host),
        'release-id': 'r3',
        'keep-previous': 'warm'
      })
      expect(deploy.outputs).toMatchObject({
        status: 'deployed',
        release: 'r3',
        'previous-release': 'r1'
      })
      expectNoFailedRequests(deployLoad)
      expect(await liveColour(host)).toBe('blue')
      expect(await stateOf(host, 'green')).toBe('active')
      const warmPid = await mainPid(host, 'green')
      expect(warmPid).toBeGreaterThan(0)

      const [run, load] = await bgRun(host, { mode: 'rollback', 'keep-previous': 'warm' })
      expect(run.code).toBe(0)
      expect(run.outputs).toMatchObject({
        status: 'rolled-back',
        release: 'r1',
        'previous-release': 'r3'
      })
      expectNoFailedRequests(load)
      expect(load.releases).toEqual(['r3', 'r1'])
      expect(await liveColour(host)).toBe('green')
      // the same master serves: the instance was switched to, not started again
      expect(await mainPid(host, 'green')).toBe(warmPid)
      expect(run.stdout).not.toMatch(/starting myapp@/)
      expect(await servedRelease(host)).toBe('r1')
      expect(await currentLink(host)).toBe('releases/r1')
    },
    SLOW
  )
})

describe('blue-green check mode and refusals', () => {
  const { bkc1: plain, bkk1: keepalive } = withHostGroup({
    bkc1: { style: 'blue-green' },
    bkk1: { style: 'blue-green-keepalive' }
  })

  it(
    'check mode passes on a blue-green host and names the live instance, changing nothing',
    async () => {
      const before = await layoutFingerprint(plain)
      const [run, load] = await bgRun(plain, { mode: 'check' })
      expect(annotations(run)).not.toContain('::error')
      expect(run.code).toBe(0)
      expect(run.outputs.status).toBe('checked')
      expect(run.stdout).toMatch(/live[^\n]*myapp@blue|myapp@blue[^\n]*live/)
      expectNoFailedRequests(load)
      expect(await layoutFingerprint(plain)).toBe(before)
    },
    SLOW
  )

  it(
    'refuses a blue-green deploy behind an upstream with keepalive before any change',
    async () => {
      const before = await layoutFingerprint(keepalive)
      const [run, load] = await bgRun(keepalive, { source: appFor(keepalive), 'release-id': 'k1' })
      expect(run.code).not.toBe(0)
      expect(run.outputs.status).toBe('failed')
      expect(annotations(run)).toContain('keepalive')
      expectNoFailedRequests(load)
      expect(load.releases).toEqual(['v0'])
      expect(await layoutFingerprint(keepalive)).toBe(before)
      expect(await servedRelease(keepalive)).toBe('v0')
    },
    SLOW
  )

  it(
    'check mode on a blue-green host behind an upstream with keepalive reports it as an error',
    async () => {
      const before = await layoutFingerprint(keepalive)
      const [run, load] = await bgRun(keepalive, { mode: 'check' })
      expect(run.code).not.toBe(0)
      expect(run.outputs.status).toBe('failed')
      expect(annotations(run)).toMatch(/::error[^\n]*keepalive/)
      expectNoFailedRequests(load)
      expect(await layoutFingerprint(keepalive)).toBe(before)
    },
    SLOW
  )
})

describe('blue-green first deploy', () => {
  // provisioned for blue-green, never deployed: no live.sock, no slots, no current
  const host = withHost('bkf1', { style: 'blue-green' }, h =>
    rootSh(
      h,
      'systemctl stop myapp@blue && rm -rf /srv/myapp/live.sock /srv/myapp/current /srv/myapp/slots/blue /srv/myapp/releases/v0'
    )
  )

  it(
    'pins the first release in slots/blue, points live.sock at myapp@blue and starts it',
    async () => {
      expect((await fetchNginx(host)).status).toBe(502)
      const [run, load] = await bgRun(host, { source: appFor(host), 'release-id': 'f1' })
      expect(annotations(run)).not.toContain('::error')
      expect(run.code).toBe(0)
      expect(run.outputs).toMatchObject({ status: 'deployed', release: 'f1' })
      // nothing served before the first release: no request may fail once it serves
      expect(load.failedAfterFirstOk).toBe(0)
      expect(load.total).toBeGreaterThanOrEqual(LOAD.atLeast)
      expect(load.releases).toEqual(['f1'])
      expect(await liveColour(host)).toBe('blue')
      expect(await slotOf(host, 'blue')).toBe('../releases/f1')
      expect(await stateOf(host, 'blue')).toBe('active')
      expect(await stateOf(host, 'green')).toBe('inactive')
      expect(await currentLink(host)).toBe('releases/f1')
      expect(await servedRelease(host)).toBe('f1')
    },
    SLOW
  )
})
