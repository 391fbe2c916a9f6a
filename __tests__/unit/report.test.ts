import { afterEach, beforeEach, describe, expect, it } from '@jest/globals'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { newHostResult, type HostResult } from '../../src/core/host-result.js'
import {
  environmentUrl,
  noticeSuccess,
  previousReleaseOutput,
  releaseOutput,
  setOutputs
} from '../../src/action/report.js'

const host = (name: string, fields: Partial<HostResult>): HostResult => ({
  ...newHostResult(name),
  ...fields
})
const DEPLOY = { mode: 'deploy' as const, releaseId: 'r9' }
const ROLLBACK = { mode: 'rollback' as const, releaseId: 'unused' }

/** Runs `fn` and returns what it printed on stdout (where @actions/core writes commands). */
function printed(fn: () => void): string {
  const lines: string[] = []
  const write = process.stdout.write.bind(process.stdout)
  process.stdout.write = ((chunk: string | Uint8Array) => {
    lines.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'))
    return true
  }) as typeof process.stdout.write
  try {
    fn()
  } finally {
    process.stdout.write = write
  }
  return lines.join('')
}

describe('release outputs across a fleet', () => {
  it('names the deploy release even when the first host never connected', () => {
    const results = [
      host('a', { error: 'could not connect' }),
      host('b', { status: 'deployed', release: 'r9', previousRelease: 'r8' })
    ]
    expect(releaseOutput(results, DEPLOY)).toBe('r9')
    expect(previousReleaseOutput(results)).toBe('r8')
  })

  it('gives the one restored release of a rollback, or each in host order when hosts differ', () => {
    const same = [
      host('a', { status: 'rolled-back', release: 'r7', previousRelease: 'r9' }),
      host('b', { status: 'rolled-back', release: 'r7', previousRelease: 'r9' })
    ]
    expect(releaseOutput(same, ROLLBACK)).toBe('r7')
    const differ = [
      host('a', { status: 'rolled-back', release: 'r7', previousRelease: 'r9' }),
      host('b', { status: 'rolled-back', release: 'r6', previousRelease: 'r8' }),
      host('c', { status: 'rolled-back', release: 'r7', previousRelease: 'r9' }),
      host('d', { status: 'skipped' })
    ]
    expect(releaseOutput(differ, ROLLBACK)).toBe('r7,r6')
    expect(previousReleaseOutput(differ)).toBe('r9,r8')
  })

  it('leaves out hosts that had no previous release (a first deploy)', () => {
    const results = [
      host('a', { status: 'deployed', release: 'r9' }),
      host('b', { status: 'deployed', release: 'r9', previousRelease: 'r8' })
    ]
    expect(previousReleaseOutput(results)).toBe('r8')
    expect(previousReleaseOutput([host('a', { status: 'deployed' })])).toBe('')
  })
})

describe('environmentUrl', () => {
  it('is the environment-url input, else empty', () => {
    expect(environmentUrl([], { environmentUrl: 'https://app.example.com' })).toBe(
      'https://app.example.com'
    )
    expect(environmentUrl([], { environmentUrl: undefined })).toBe('')
  })
})

describe('setOutputs', () => {
  let dir: string
  let saved: string | undefined
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'zdd-report-'))
    saved = process.env.GITHUB_OUTPUT
    process.env.GITHUB_OUTPUT = path.join(dir, 'output')
    writeFileSync(process.env.GITHUB_OUTPUT, '')
  })
  afterEach(() => {
    if (saved === undefined) delete process.env.GITHUB_OUTPUT
    else process.env.GITHUB_OUTPUT = saved
    rmSync(dir, { recursive: true, force: true })
  })

  function outputs(): Record<string, string> {
    const text = readFileSync(path.join(dir, 'output'), 'utf8')
    const found: Record<string, string> = {}
    for (const m of text.matchAll(/^([^<\n]+)<<(ghadelimiter_[^\n]+)\n([\s\S]*?)\n\2$/gm))
      found[m[1]] = m[3]
    return found
  }

  it('writes url, the fleet release, previous release and summed failed requests', () => {
    setOutputs(
      [
        host('a', { status: 'deployed', release: 'r9', previousRelease: 'r8', failedRequests: 1 }),
        host('b', { status: 'deployed', release: 'r9', previousRelease: 'r7', failedRequests: 2 })
      ],
      DEPLOY,
      'https://app.example.com'
    )
    expect(outputs()).toMatchObject({
      url: 'https://app.example.com',
      release: 'r9',
      'previous-release': 'r8,r7',
      status: 'deployed',
      'rolled-back': 'false',
      'failed-requests': '3'
    })
  })

  it('writes an empty url when none is known', () => {
    setOutputs([host('a', { status: 'failed' })], DEPLOY)
    expect(outputs()).toMatchObject({ url: '', release: 'r9', status: 'failed' })
  })
})

describe('noticeSuccess', () => {
  it('names the release, every host and the failed requests of a successful deploy', () => {
    const text = printed(() =>
      noticeSuccess(
        [
          host('deploy@a:22', {
            status: 'deployed',
            release: 'r9',
            failedRequests: 0,
            probeRequests: 40
          }),
          host('deploy@b:22', {
            status: 'deployed',
            release: 'r9',
            failedRequests: 1,
            probeRequests: 35
          })
        ],
        DEPLOY
      )
    )
    expect(text.trim()).toBe(
      '::notice title=Deployed::release r9 serves on deploy@a:22, deploy@b:22; 1 of 75 probe requests failed'
    )
  })

  it('names the restored release of a successful rollback', () => {
    const text = printed(() =>
      noticeSuccess(
        [host('a', { status: 'rolled-back', release: 'r7', probeRequests: 9 })],
        ROLLBACK
      )
    )
    expect(text).toContain('::notice title=Rolled back::rolled back to r7 on a; 0 of 9')
  })

  it('stays silent when the run did not succeed', () => {
    const deployFailed = [
      host('a', { status: 'deployed', release: 'r9' }),
      host('b', { status: 'rolled-back', release: 'r9', rolledBack: true })
    ]
    expect(printed(() => noticeSuccess(deployFailed, DEPLOY))).toBe('')
    const rollbackFailed = [host('a', { status: 'failed', release: 'r7' })]
    expect(printed(() => noticeSuccess(rollbackFailed, ROLLBACK))).toBe('')
    expect(printed(() => noticeSuccess([host('a', { status: 'checked' })], DEPLOY))).toBe('')
  })
})
