import { describe, expect, it } from '@jest/globals'
import type { HttpResponse } from '../../src/transport/http-over-ssh.js'
import {
  gatewayStatuses,
  GatewayWatch,
  healthProblem,
  workerProblem,
  type VerifyExpectations
} from '../../src/host/verify-release.js'
import type { HttpTarget } from '../../src/transport/http-target.js'

const res = (status: number, body: string, headers: Record<string, string> = {}): HttpResponse => ({
  status,
  body,
  headers,
  ms: 1
})

const nginx: HttpTarget = {
  kind: 'tcp',
  host: '127.0.0.1',
  port: 80,
  path: '/health',
  text: 'http://127.0.0.1/health'
}
const direct: HttpTarget = {
  kind: 'unix',
  socket: '/run/myapp/myapp.sock',
  path: '/health',
  text: 'http://unix:/run/myapp/myapp.sock:/health'
}

describe('healthProblem', () => {
  it('accepts a 2xx that names the new release', () => {
    expect(healthProblem(res(200, '{"release":"v2"}'), 'v2')).toBeUndefined()
    expect(healthProblem(res(204, '', { 'x-release': 'v2' }), 'v2')).toBeUndefined()
  })

  it('rejects a 200 from the old release (stale code)', () => {
    expect(healthProblem(res(200, '{"release":"v1"}'), 'v2')).toBe(
      'answered 2xx for release v1, not v2'
    )
  })

  it('names the cause and the fix when the OLD release still answers', () => {
    const problem = healthProblem(res(200, '{"release":"v1"}'), 'v2', undefined, 'v1')
    expect(problem).toContain('answered 2xx for release v1, not v2: the reload kept the OLD code')
    expect(problem).toContain('--chdir <release-path>/current')
    expect(problem).toContain('remove preload')
    expect(healthProblem(res(200, '{"release":"v0"}'), 'v2', undefined, 'v1')).toBe(
      'answered 2xx for release v0, not v2'
    )
  })

  it('rejects non-2xx answers', () => {
    expect(healthProblem(res(502, 'Bad Gateway'), 'v2')).toContain('HTTP 502')
  })

  it('applies health-expect with the {release} placeholder', () => {
    expect(healthProblem(res(200, 'version=v2 ok'), 'v2', 'version={release}')).toBeUndefined()
    expect(healthProblem(res(200, 'version=v1 ok'), 'v2', 'version={release}')).toContain(
      'health-expect'
    )
  })

  it('accepts a body that does not expose any release when no expectation is set', () => {
    expect(healthProblem(res(200, 'OK'), 'v2')).toBeUndefined()
  })
})

describe('workerProblem', () => {
  const exp = {
    oldWorkers: [11, 12, 13],
    workers: 3,
    releaseDir: '/srv/myapp/releases/v2',
    oldReleaseDir: '/srv/myapp/releases/v1',
    dirs: 'sudo' as const
  }
  const dirs = (pids: number[], dir: string) => new Map(pids.map(p => [p, dir]))

  it('accepts all-new workers in the new release', () => {
    expect(workerProblem(exp, [21, 22, 23], dirs([21, 22, 23], exp.releaseDir))).toBeUndefined()
  })

  it('waits while old workers linger or too few new ones are up', () => {
    expect(workerProblem(exp, [12, 21, 22], dirs([12, 21, 22], exp.releaseDir))).toContain(
      'old worker(s) 12'
    )
    expect(workerProblem(exp, [21, 22], dirs([21, 22], exp.releaseDir))).toBe(
      '2 of 3 new workers up'
    )
  })

  it('without a right to read worker directories, judges the workers by count and PIDs only', () => {
    const blind = { ...exp, dirs: 'none' as const }
    expect(workerProblem(blind, [21, 22, 23], new Map())).toBeUndefined()
    expect(workerProblem(blind, [12, 21, 22], new Map())).toContain('old worker(s) 12')
    expect(workerProblem(exp, [21, 22, 23], new Map())).toBe(
      'working directory of a new worker not readable yet'
    )
  })

  it('names stale code when new workers run in the old release directory', () => {
    expect(workerProblem(exp, [21, 22, 23], dirs([21, 22, 23], exp.oldReleaseDir))).toContain(
      'the OLD release: stale code'
    )
  })
})

describe('GatewayWatch: a path through Nginx that is broken while Gunicorn serves', () => {
  function watch() {
    let t = 1000
    const w = new GatewayWatch(nginx, () => t)
    return { w, at: (ms: number) => (t = ms) }
  }

  it('is definite after two rounds of 502 at least 150 ms apart while Gunicorn answered 2xx', () => {
    const { w, at } = watch()
    expect(w.note(direct, [200])).toBeUndefined()
    at(1050)
    expect(w.note(nginx, [502, 502, 502, 502])).toBeUndefined()
    at(1100)
    expect(w.note(nginx, [502])).toBeUndefined() // too soon after the first
    at(1250)
    expect(w.note(nginx, [502, 504])).toMatch(
      /answered HTTP 502\/504 in 3 rounds over 0\.2s while Gunicorn answered 2xx/
    )
  })

  it('is never definite while Gunicorn does not answer either (that is the master, or a slow release)', () => {
    const { w, at } = watch()
    expect(w.note(direct, [undefined, 502])).toBeUndefined()
    at(1200)
    w.note(nginx, [502])
    at(1400)
    expect(w.note(nginx, [502])).toBeUndefined()
    at(3000)
    expect(w.note(nginx, [502])).toBeUndefined()
  })

  it('needs a full second of 503 (a rate limit answers 503 too), and starts again after a good answer', () => {
    const { w, at } = watch()
    w.note(direct, [200])
    w.note(nginx, [503])
    at(1500)
    expect(w.note(nginx, [503])).toBeUndefined()
    at(1900)
    expect(w.note(nginx, [200])).toBeUndefined()
    at(2000)
    w.note(direct, [200])
    w.note(nginx, [503])
    at(2900)
    expect(w.note(nginx, [503])).toBeUndefined()
    at(3050)
    expect(w.note(nginx, [503])).toMatch(/HTTP 503 in 3 rounds over 1\.1s/)
  })

  it('counts a round of gateway errors mixed with timeouts and 500s (Nginx short of connections under load)', () => {
    const { w, at } = watch()
    w.note(direct, [200])
    expect(w.note(nginx, [502, undefined, 500, 502])).toBeUndefined()
    at(1100)
    expect(w.note(nginx, [undefined, 500])).toBeUndefined() // neither counts nor clears
    at(1200)
    expect(w.note(nginx, [500, 502])).toMatch(
      /answered HTTP 500\/502 in 2 rounds over 0\.2s while Gunicorn answered 2xx/
    )
  })

  it('is not definite when Gunicorn answered 5xx on its own meanwhile (the app itself, warming up)', () => {
    const { w, at } = watch()
    w.note(direct, [200])
    w.note(nginx, [503])
    at(1500)
    w.note(direct, [503, 200])
    at(2100)
    expect(w.note(nginx, [503])).toBeUndefined()
    at(2400)
    w.note(direct, [200])
    at(2600)
    expect(w.note(nginx, [503])).toBeUndefined()
  })

  it('starts again after any answer below 500 in a round', () => {
    const { w, at } = watch()
    w.note(direct, [200])
    w.note(nginx, [502, 502])
    at(1200)
    expect(w.note(nginx, [502, 404])).toBeUndefined()
    at(1400)
    expect(w.note(nginx, [502])).toBeUndefined()
  })

  it('ignores answers other than gateway errors, and watches nothing without an Nginx URL', () => {
    const { w, at } = watch()
    w.note(direct, [200])
    w.note(nginx, [500])
    at(2000)
    expect(w.note(nginx, [500])).toBeUndefined()
    const blind = new GatewayWatch(undefined)
    blind.note(direct, [200])
    expect(blind.note(nginx, [502])).toBeUndefined()
  })
})

describe("the answers the gateway watch notes: Gunicorn's own 2xx only from the new release", () => {
  const exp = { release: 'v2', nginxUrl: nginx } as VerifyExpectations
  const named = (release: string) => ({ response: res(200, '', { 'x-release': release }) })

  it('drops a 2xx of an old worker before the workers are proven (it proves nothing about v2)', () => {
    // the old workers answer while the new ones fail to boot: no "Gunicorn answered" for Nginx's 502s
    expect(gatewayStatuses(direct, [named('v1'), named('v2'), {}], exp, true)).toEqual([
      undefined,
      200,
      undefined
    ])
  })

  it('keeps every status once the workers are proven, and every status through Nginx', () => {
    expect(gatewayStatuses(direct, [named('v1')], exp, false)).toEqual([200])
    expect(gatewayStatuses(nginx, [named('v1'), { response: res(502, '') }], exp, true)).toEqual([
      200, 502
    ])
  })

  it("keeps Gunicorn's own 5xx before the proof (an app warming up is not Nginx's failure)", () => {
    expect(gatewayStatuses(direct, [{ response: res(503, '') }], exp, true)).toEqual([503])
  })
})
