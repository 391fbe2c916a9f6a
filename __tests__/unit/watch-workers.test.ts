// Verification waits for the new workers on the host (the helper's watchworkers)
// instead of polling over SSH, and still judges the snapshot itself; without the
// watch it polls as before. Also: the lock wait that a failed preflight stops, and
// the log of a step that runs beside another step's log group.
import { afterEach, describe, expect, it } from '@jest/globals'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import type { Duplex } from 'node:stream'
import { ScriptedRemote, type Rule } from '../../__fixtures__/scripted-remote.js'
import { helperFailed, type HelperScript } from '../../__fixtures__/fake-helper.js'
import type { WatchAnswer, WatchSpec } from '../../src/host/helper-client.js'
import { recorder as recording } from '../../__fixtures__/recording-log.js'
import { acquireLock } from '../../src/host/deploy-lock.js'
import { parsePwdx, watchServiceState } from '../../src/host/service-state.js'
import {
  verifyRelease,
  VerifyError,
  type VerifyExpectations
} from '../../src/host/verify-release.js'
import { deferredLog } from '../../src/core/log.js'

const GUNICORN = '/srv/myapp/.venv/bin/python3 /srv/myapp/.venv/bin/gunicorn wsgi:app'
const MARKER = '@@zdd-state@@'
const NEW_DIR = '/srv/myapp/releases/v2'

const recorder = () => recording({ groups: true })

function show(mainPid: number, active = 'active'): string {
  return `ActiveState=${active}\nSubState=running\nMainPID=${mainPid}\nUser=www-data`
}

function ps(master: number, workers: number[]): string {
  return [`${master} 1 ${GUNICORN}`, ...workers.map(w => `${w} ${master} ${GUNICORN}`)].join('\n')
}

/** What watchworkers answers: the unit, the process table, the new workers' directories. */
function snapshot(master: number, workers: number[], dirs: Record<number, string>): WatchAnswer {
  const pwdx = Object.entries(dirs)
    .map(([pid, dir]) => `${pid}: ${dir}\n`)
    .join('')
  return { show: show(master), ps: ps(master, workers), dirs: pwdx }
}

const expectations: VerifyExpectations = {
  service: 'myapp',
  release: 'v2',
  releaseDir: NEW_DIR,
  mainPid: 10,
  oldWorkers: [11, 12, 13],
  workers: 3,
  dirs: 'sudo',
  oldReleaseDir: '/srv/myapp/releases/v1',
  oldRelease: 'v1',
  urls: [],
  healthChecks: 3,
  timeoutSeconds: 2
}

/** A host whose helper answers the watch, and whose other commands follow `rules`. */
const watching = (watchWorkers: HelperScript['watchWorkers'], rules: Rule[] = []) =>
  new ScriptedRemote(rules, { watchWorkers })

describe('verification watches the workers on the host', () => {
  it('proves the workers from one snapshot the host sends once they are up, with no polling', async () => {
    const remote = watching(snapshot(10, [21, 22, 23], { 21: NEW_DIR, 22: NEW_DIR, 23: NEW_DIR }))
    const log = recorder()
    await verifyRelease(remote, expectations, log)
    expect(remote.commands).toHaveLength(0)
    expect(remote.helper!.calls).toHaveLength(1)
    expect(log.lines).toContain(`info master 10 kept; 3 new workers (21, 22, 23) in ${NEW_DIR}`)
  })

  it('tells the host what to wait for: the kept master, the old workers, the count, and how to read directories', async () => {
    const remote = watching(snapshot(10, [21, 22, 23], { 21: NEW_DIR, 22: NEW_DIR, 23: NEW_DIR }))
    await watchServiceState(remote, 'myapp', {
      mainPid: 10,
      oldWorkers: [11, 12, 13],
      workers: 3,
      dirs: 'sudo',
      timeoutMs: 1500
    })
    const [[spec]] = remote.helper!.callsOf('watchWorkers') as [[WatchSpec]]
    expect(spec).toMatchObject({
      mainPid: 10,
      old: [11, 12, 13],
      workers: 3,
      pwdx: ['sudo', '-n', 'pwdx'],
      timeout: 1.5,
      interval: 0.02
    })
    expect(spec.show).toEqual(expect.arrayContaining(['systemctl', 'show', 'myapp']))
  })

  it('reports a master that died from the snapshot', async () => {
    const remote = watching({ show: show(0, 'failed'), ps: '', dirs: '' })
    const failure = verifyRelease(remote, expectations, recorder())
    await expect(failure).rejects.toThrow(VerifyError)
    await expect(failure).rejects.toThrow('the Gunicorn master died after the reload')
  })

  it('ends at once when the master dies after its workers were proven, while health still fails', async () => {
    // workers that were up, then failed to boot the app: Gunicorn's master exits
    const remote = watching(snapshot(10, [21, 22, 23], { 21: NEW_DIR, 22: NEW_DIR, 23: NEW_DIR }), [
      { when: /^systemctl show/, reply: { stdout: show(0, 'activating') } }
    ])
    const socket = '/run/myapp/myapp.sock'
    const health = {
      kind: 'unix' as const,
      socket,
      path: '/health',
      text: `http://unix:${socket}:/health`
    }
    const started = Date.now()
    const failure = verifyRelease(
      remote,
      { ...expectations, urls: [health], timeoutSeconds: 30 },
      recorder()
    )
    await expect(failure).rejects.toThrow('the Gunicorn master died after the reload')
    expect(Date.now() - started).toBeLessThan(5000)
  })

  it('names stale code when the snapshot shows the new workers in the old release', async () => {
    const old = expectations.oldReleaseDir!
    const remote = watching(snapshot(10, [21, 22, 23], { 21: old, 22: old, 23: old }))
    await expect(
      verifyRelease(remote, { ...expectations, timeoutSeconds: 0.1 }, recorder())
    ).rejects.toThrow('the OLD release: stale code')
  })

  it('reads the directories again when the snapshot missed a worker', async () => {
    const remote = watching(snapshot(10, [21, 22, 23], { 21: NEW_DIR, 22: NEW_DIR }), [
      {
        when: /^sudo -n pwdx 21 22 23$/,
        reply: { stdout: `21: ${NEW_DIR}\n22: ${NEW_DIR}\n23: ${NEW_DIR}\n` }
      }
    ])
    await verifyRelease(remote, expectations, recorder())
    expect(remote.commands).toEqual(['sudo -n pwdx 21 22 23'])
  })

  it('polls the unit and its workers when the host cannot run the watch', async () => {
    let polls = 0
    const remote = watching(() => {
      throw helperFailed('watchworkers')
    }, [
      {
        when: /^echo @@zdd-state@@; systemctl show/,
        reply: () => {
          polls++
          const workers = polls < 3 ? [11, 21, 22] : [21, 22, 23]
          return { stdout: `${MARKER}\n${show(10)}\n${MARKER}\n${ps(10, workers)}\n` }
        }
      },
      { when: /pwdx/, reply: { stdout: `21: ${NEW_DIR}\n22: ${NEW_DIR}\n23: ${NEW_DIR}\n` } }
    ])
    await verifyRelease(remote, expectations, recorder())
    expect(polls).toBe(3)
    expect(remote.helper!.callsOf('watchWorkers')).toHaveLength(1)
  })

  it('parses pwdx lines, leaving out what is not one', () => {
    expect(parsePwdx('21: /srv/a\n22: No such process\nnoise\n 23: /srv/b \n')).toEqual(
      new Map([
        [21, '/srv/a'],
        [23, '/srv/b']
      ])
    )
  })
})

/** A scripted host whose watch answers after `watchMs`, with an HTTP server for health. */
class SlowWatchHost extends ScriptedRemote {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'zdd-watch-'))
  readonly socket = path.join(this.dir, 'http.sock')
  /** When each health request arrived, and when the watch answered (ms since start). */
  readonly asked: number[] = []
  answeredAt = -1
  private server?: Server
  private readonly started = Date.now()

  constructor(
    answer: WatchAnswer,
    watchMs: number,
    private readonly body: (n: number) => { headers: Record<string, string>; text: string }
  ) {
    super([], {
      watchWorkers: async () => {
        await new Promise(resolve => setTimeout(resolve, watchMs))
        this.answeredAt = Date.now() - this.started
        return answer
      }
    })
  }

  async listen(): Promise<void> {
    this.server = createServer((_req, res) => {
      this.asked.push(Date.now() - this.started)
      const { headers, text } = this.body(this.asked.length)
      res.writeHead(200, headers).end(text)
    })
    await new Promise<void>(resolve => this.server!.listen(this.socket, resolve))
  }

  openChannel(): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.socket)
      socket.once('connect', () => resolve(socket))
      socket.once('error', reject)
    })
  }

  async dispose(): Promise<void> {
    await new Promise(resolve => (this.server ? this.server.close(resolve) : resolve(undefined)))
    rmSync(this.dir, { recursive: true, force: true })
  }
}

describe('health beside the worker watch', () => {
  const hosts: SlowWatchHost[] = []
  afterEach(async () => {
    for (const h of hosts.splice(0)) await h.dispose()
  })

  async function slowWatch(body: (n: number) => { headers: Record<string, string>; text: string }) {
    const host = new SlowWatchHost(
      snapshot(10, [21, 22, 23], { 21: NEW_DIR, 22: NEW_DIR, 23: NEW_DIR }),
      400,
      body
    )
    await host.listen()
    hosts.push(host)
    const url = {
      kind: 'unix' as const,
      socket: host.socket,
      path: '/health',
      text: 'http://unix:/run/myapp/myapp.sock:/health'
    }
    return { host, exp: { ...expectations, urls: [url] } }
  }

  it('counts answers that name the new release while the workers are still being proven', async () => {
    const { host, exp } = await slowWatch(() => ({
      headers: { 'x-release': 'v2' },
      text: '{"release":"v2"}'
    }))
    await verifyRelease(host, exp, recorder())
    expect(host.asked).toHaveLength(3)
    expect(host.asked.every(t => t < host.answeredAt)).toBe(true)
  })

  it('asks a health that names no release again once the workers are proven, counting only those answers', async () => {
    const { host, exp } = await slowWatch(() => ({ headers: {}, text: 'OK' }))
    await verifyRelease(host, exp, recorder())
    // one round asked at once before the proof, its answers unused; then three that count
    expect(host.asked.filter(t => t >= host.answeredAt)).toHaveLength(3)
    expect(host.asked.filter(t => t < host.answeredAt).length).toBeLessThanOrEqual(3)
  })

  it('starts the count again when an old worker answers, and still needs K answers in a row', async () => {
    const { host, exp } = await slowWatch(n => {
      const release = n === 2 ? 'v1' : 'v2'
      return { headers: { 'x-release': release }, text: `{"release":"${release}"}` }
    })
    await verifyRelease(host, exp, recorder())
    // v2, v1, v2 asked at once (the count starts again), then three v2 in a row
    expect(host.asked).toHaveLength(6)
  })
})

describe('the wait for the deploy lock', () => {
  it('stops when its signal aborts, long before lock-timeout', async () => {
    const remote = new ScriptedRemote([], {
      lock: { taken: false, stale: false, holder: { actor: 'ana' }, age: 5 }
    })
    const stop = new AbortController()
    setTimeout(() => stop.abort(), 50)
    const started = Date.now()
    await expect(
      acquireLock(
        remote,
        '/srv/myapp/.deploy-lock',
        { actor: 'me', run: 'r', release: 'v2' },
        {
          timeoutSeconds: 60,
          staleSeconds: 3600,
          log: recorder(),
          pollMs: 10_000,
          signal: stop.signal
        }
      )
    ).rejects.toThrow('stopped waiting for the deploy lock /srv/myapp/.deploy-lock held by ana')
    expect(Date.now() - started).toBeLessThan(2000)
  })
})

describe('the log of a step beside another group', () => {
  it('holds its lines until replayed in a group of their own, in order', async () => {
    const log = recorder()
    const held = deferredLog(log)
    held.info('uploaded')
    held.warning('shared path linked')
    expect(log.lines).toEqual([])
    await held.replay('Upload release v2')
    expect(log.lines).toEqual([
      'group Upload release v2',
      'info uploaded',
      'warning shared path linked',
      'endgroup'
    ])
    await held.replay('again')
    expect(log.lines).toHaveLength(4)
  })
})
