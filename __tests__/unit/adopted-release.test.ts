// Releases examples/server/adopt.sh made from a server's running code predate the action:
// they are proven on the path that answered when they were adopted, not by a health
// answer naming the release, and the traffic probe asks that path while one takes part.
import { describe, expect, it } from '@jest/globals'
import { recorder } from '../../__fixtures__/recording-log.js'
import { ScriptedRemote } from '../../__fixtures__/scripted-remote.js'
import {
  adoptedHealth,
  adoptedPlan,
  parseAdopted,
  probeFor,
  readAdopted,
  withAdopted
} from '../../src/host/adopted-release.js'
import type { CutoverPlan } from '../../src/host/cutover/types.js'
import { parseHttpTarget, type HttpTarget } from '../../src/transport/http-target.js'

const url = (text: string): HttpTarget => parseHttpTarget(text)!
const MARKER = JSON.stringify({
  id: 'adopted-20261205T124917Z',
  time: '2026-12-05T12:49:19+00:00',
  adopted: { from: '/home/app/myproject', healthPath: '/', by: 'adopt.sh' }
})
const DEPLOYED = JSON.stringify({ id: 'v1', sha: 'abc', actor: 'a', run: 'r', time: 't' })

const plan = (release: string, releaseDir: string): CutoverPlan => ({
  release,
  releaseDir,
  expectedWorkers: 3,
  dirs: 'sudo',
  urls: [url('http://unix:/run/myproject/myproject.sock:/health'), url('http://127.0.0.1/health')],
  healthExpect: 'release={release}'
})

/** A host whose releases' metadata files hold `files` (dir -> text); others are missing. */
const host = (files: Record<string, string>) =>
  new ScriptedRemote([
    {
      when: /cat /,
      reply: command => {
        const dir = Object.keys(files).find(d => command.includes(`${d}/.zdd-release.json`))
        return dir ? { stdout: files[dir] } : { stdout: '' }
      }
    }
  ])

describe('parseAdopted', () => {
  it("reads adopt.sh's marker: the health path and the directory the app ran from", () => {
    expect(parseAdopted(MARKER)).toEqual({ healthPath: '/', from: '/home/app/myproject' })
  })

  it('is undefined for a release the action deployed, or metadata it cannot read', () => {
    expect(parseAdopted(DEPLOYED)).toBeUndefined()
    expect(parseAdopted('')).toBeUndefined()
    expect(parseAdopted('{"adopted": true')).toBeUndefined()
    expect(parseAdopted('{"adopted": null}')).toBeUndefined()
  })

  it('falls back to / for a health path that is not a plain path', () => {
    const odd = JSON.stringify({ adopted: { healthPath: 'http://elsewhere/x' } })
    expect(parseAdopted(odd)).toEqual({ healthPath: '/', from: undefined })
    const spaced = JSON.stringify({ adopted: { healthPath: '/a b' } })
    expect(parseAdopted(spaced)?.healthPath).toBe('/')
  })
})

describe('adoptedPlan', () => {
  it('asks every URL at the adopted path and expects no release name', () => {
    const proven = adoptedPlan(plan('adopted-1', '/srv/p/releases/adopted-1'), {
      healthPath: '/'
    })
    expect(proven.urls.map(u => u.text)).toEqual([
      'http://unix:/run/myproject/myproject.sock:/',
      'http://127.0.0.1:80/'
    ])
    expect(proven.healthExpect).toBeUndefined()
    // the workers' proof is unchanged: they must run in the adopted release's directory
    expect(proven.releaseDir).toBe('/srv/p/releases/adopted-1')
    expect(proven.expectedWorkers).toBe(3)
    expect(proven.dirs).toBe('sudo')
  })
})

describe('probeFor', () => {
  const probe = url('http://unix:/run/myproject/myproject.sock:/health')

  it('asks the adopted path while an adopted release takes part, on either side', () => {
    expect(probeFor(probe, { healthPath: '/' })?.text).toBe(
      'http://unix:/run/myproject/myproject.sock:/'
    )
    expect(probeFor(probe, undefined, { healthPath: '/ping' })?.text).toBe(
      'http://unix:/run/myproject/myproject.sock:/ping'
    )
  })

  it('leaves the probe alone between releases the action deployed, and no probe stays none', () => {
    expect(probeFor(probe, undefined, undefined)).toBe(probe)
    expect(probeFor(undefined, { healthPath: '/' })).toBeUndefined()
  })
})

describe('readAdopted and withAdopted', () => {
  const files = { '/srv/p/releases/adopted-1': MARKER, '/srv/p/releases/v1': DEPLOYED }

  it('reads the marker of a release directory; nothing for the action’s own or none', async () => {
    const remote = host(files)
    expect(await readAdopted(remote, '/srv/p/releases/adopted-1')).toEqual({
      healthPath: '/',
      from: '/home/app/myproject'
    })
    expect(await readAdopted(remote, '/srv/p/releases/v1')).toBeUndefined()
    expect(await readAdopted(remote, undefined)).toBeUndefined()
    expect(remote.commands).toHaveLength(2)
  })

  it('a rollback to the adopted release is proven at its path, and says why', async () => {
    const log = recorder()
    const probe = url('http://unix:/run/myproject/myproject.sock:/health')
    const back = await withAdopted(
      host(files),
      plan('adopted-1', '/srv/p/releases/adopted-1'),
      '/srv/p/releases/v1',
      probe,
      log
    )
    expect(back.plan.urls.map(u => u.path)).toEqual(['/', '/'])
    expect(back.probeUrl?.path).toBe('/')
    expect(log.lines.join('\n')).toContain('adopted-1 predates the action')
  })

  it('a rollback between releases the action deployed is planned as before', async () => {
    const log = recorder()
    const probe = url('http://unix:/run/myproject/myproject.sock:/health')
    const v1 = plan('v1', '/srv/p/releases/v1')
    const back = await withAdopted(host(files), v1, '/srv/p/releases/v2', probe, log)
    expect(back.plan).toBe(v1)
    expect(back.probeUrl).toBe(probe)
    expect(log.lines).toEqual([])
  })

  it('a rollback away from the adopted release keeps its own proof but probes the adopted path', async () => {
    const log = recorder()
    const probe = url('http://unix:/run/myproject/myproject.sock:/health')
    const v1 = plan('v1', '/srv/p/releases/v1')
    const back = await withAdopted(host(files), v1, '/srv/p/releases/adopted-1', probe, log)
    expect(back.plan).toBe(v1)
    expect(back.probeUrl?.path).toBe('/')
  })
})

describe('adoptedHealth (mode: check)', () => {
  it('is ok, names both answers and says what deployed releases need', () => {
    const finding = adoptedHealth(
      url('http://unix:/run/myproject/myproject.sock:/health'),
      404,
      url('http://unix:/run/myproject/myproject.sock:/'),
      200
    )
    expect(finding.severity).toBe('ok')
    expect(finding.finding).toContain('answers 404')
    expect(finding.finding).toContain('http://unix:/run/myproject/myproject.sock:/ answers 200')
    expect(finding.finding).toContain('must answer 2xx at /health')
  })
})
