import { describe, expect, it } from '@jest/globals'
import type { HttpResponse } from '../../src/transport/http-over-ssh.js'
import { healthProblem, workerProblem } from '../../src/host/verify-release.js'

const res = (status: number, body: string, headers: Record<string, string> = {}): HttpResponse => ({
  status,
  body,
  headers,
  ms: 1
})

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
