import { afterEach, beforeEach, describe, expect, it } from '@jest/globals'
import {
  closedPort,
  startFakeGitHubApi,
  type FakeGitHubApi
} from '../../__fixtures__/github-api.js'
import { FACTS, inputs } from '../../__fixtures__/inputs.js'
import { finalStatus, githubDeployment } from '../../src/action/github-deployment.js'
import { newHostResult, type HostResult } from '../../src/core/host-result.js'
import { coreLog } from '../../src/action/core-log.js'
import { type Log } from '../../src/core/log.js'
import type { ReleaseLogEntry } from '../../src/host/release-log.js'
import { commitOf } from '../../src/modes/rollback.js'
import { readSettings } from '../../src/action/inputs.js'

const TOKEN = 'ghs_fakeTokenValue0123456789abcdefABCDEF'
const RUN = { sha: FACTS.sha, runUrl: 'https://github.com/octo/app/actions/runs/77' }
const HOSTS = ['deploy@app1.example.com:22', 'deploy@app2.example.com:22']

function settingsFor(overrides: Record<string, string> = {}) {
  return readSettings(
    inputs({
      host: 'app1.example.com, app2.example.com',
      'github-token': TOKEN,
      'release-id': 'r7',
      ...overrides
    }),
    FACTS
  )
}

function recordingLog(): Log & { infos: string[]; warnings: string[] } {
  const infos: string[] = []
  const warnings: string[] = []
  return {
    infos,
    warnings,
    info: m => void infos.push(m),
    warning: m => void warnings.push(m),
    error: m => void warnings.push(`error: ${m}`),
    group: (_name, fn) => fn()
  }
}

function hostResult(host: string, fields: Partial<HostResult>): HostResult {
  return { ...newHostResult(host), ...fields }
}

const deployed = (host: string) =>
  hostResult(host, { status: 'deployed', release: 'r7', previousRelease: 'r6', probeRequests: 50 })

const paths = (api: FakeGitHubApi) => api.requests.map(r => `${r.method} ${r.path}`)

describe('githubDeployment', () => {
  let api: FakeGitHubApi
  let env: NodeJS.ProcessEnv

  beforeEach(async () => {
    api = await startFakeGitHubApi()
    env = { GITHUB_API_URL: api.url, GITHUB_REPOSITORY: 'octo/app' }
  })
  afterEach(() => api.close())

  it('records a successful deploy: the commit, in_progress when the first host starts, then success with the URLs', async () => {
    const log = recordingLog()
    const deployment = githubDeployment(settingsFor(), RUN, log, { env })
    deployment.begin()
    const results = [
      deployment.hostDone(deployed(HOSTS[0])),
      deployment.hostDone(deployed(HOSTS[1]))
    ]
    await deployment.finish(results, 'https://app.example.com')

    expect(paths(api)).toEqual([
      'POST /repos/octo/app/deployments',
      'POST /repos/octo/app/deployments/42/statuses',
      'POST /repos/octo/app/deployments/42/statuses'
    ])
    const [create, progress, done] = api.requests
    expect(create.body).toEqual({
      ref: FACTS.sha,
      environment: 'production',
      description: `deploy r7 on ${HOSTS.join(', ')}`,
      payload: { release: 'r7', hosts: HOSTS, mode: 'deploy', run: RUN.runUrl },
      required_contexts: [],
      auto_merge: false
    })
    expect(progress.body).toMatchObject({ state: 'in_progress', log_url: RUN.runUrl })
    expect(progress.body).not.toHaveProperty('environment_url')
    expect(done.body).toEqual({
      state: 'success',
      description: `release r7 serves on ${HOSTS.join(', ')}`,
      log_url: RUN.runUrl,
      environment_url: 'https://app.example.com'
    })
    expect(api.requests.every(r => r.authorization === `token ${TOKEN}`)).toBe(true)
    expect(log.warnings).toEqual([])
  })

  it('ends a rolled-back deploy as failure whose description says rolled back, without the environment URL', async () => {
    const log = recordingLog()
    const deployment = githubDeployment(
      settingsFor({ environment: 'staging', 'environment-url': 'https://staging.example.com' }),
      RUN,
      log,
      { env }
    )
    deployment.begin()
    const results = [
      hostResult(HOSTS[0], {
        status: 'rolled-back',
        rolledBack: true,
        release: 'r7',
        previousRelease: 'r6'
      }),
      hostResult(HOSTS[1], { status: 'skipped' })
    ].map(deployment.hostDone)
    await deployment.finish(results, 'https://staging.example.com')

    expect(paths(api)).toEqual([
      'POST /repos/octo/app/deployments',
      'POST /repos/octo/app/deployments/42/statuses',
      'POST /repos/octo/app/deployments/42/statuses'
    ])
    expect(api.requests[0].body).toMatchObject({ ref: FACTS.sha, environment: 'staging' })
    expect(api.requests[1].body).toMatchObject({ state: 'in_progress' })
    expect(api.requests[2].body).toEqual({
      state: 'failure',
      description: `release r7: rolled back on ${HOSTS[0]}; not started on ${HOSTS[1]}`,
      log_url: RUN.runUrl
    })
    expect(log.warnings).toEqual([])
  })

  it('records a rollback for the commit the restored release was built from, not the dispatched ref', async () => {
    const restoredSha = 'feedface00112233445566778899aabbccddeeff'
    const entry = (id: string, sha: string, fields: Partial<ReleaseLogEntry> = {}) =>
      ({
        id,
        sha,
        actor: 'a',
        run: '',
        time: '',
        host: '',
        action: 'deploy',
        outcome: 'deployed',
        ...fields
      }) as ReleaseLogEntry
    const releaseLog = [
      entry('r5', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'),
      entry('r6', restoredSha),
      entry('r7', FACTS.sha),
      entry('r6', FACTS.sha, { action: 'rollback', outcome: 'rolled-back' }),
      entry('r6', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', { outcome: 'failed' })
    ]
    const sha = commitOf('r6', releaseLog)
    expect(sha).toBe(restoredSha)

    const log = recordingLog()
    const deployment = githubDeployment(settingsFor({ mode: 'rollback' }), RUN, log, { env })
    deployment.begin()
    expect(api.requests).toEqual([]) // the commit is only known once a host chose its release
    const results = [
      deployment.hostDone(
        hostResult(HOSTS[0], {
          status: 'rolled-back',
          rolledBack: true,
          release: 'r6',
          sha,
          previousRelease: 'r7'
        })
      ),
      deployment.hostDone(
        hostResult(HOSTS[1], {
          status: 'rolled-back',
          rolledBack: true,
          release: 'r6',
          sha,
          previousRelease: 'r7'
        })
      )
    ]
    await deployment.finish(results, '')

    expect(paths(api)).toEqual([
      'POST /repos/octo/app/deployments',
      'POST /repos/octo/app/deployments/42/statuses',
      'POST /repos/octo/app/deployments/42/statuses'
    ])
    expect(api.requests[0].body).toMatchObject({
      ref: restoredSha,
      payload: { release: 'r6', hosts: HOSTS, mode: 'rollback', run: RUN.runUrl },
      required_contexts: [],
      auto_merge: false
    })
    expect(api.requests[1].body).toMatchObject({ state: 'in_progress' })
    expect(api.requests[2].body).toEqual({
      state: 'success',
      description: `rolled back to r6 on ${HOSTS.join(', ')}`,
      log_url: RUN.runUrl
    })
  })

  it('records no rollback deployment when no host restored a release with a known commit', async () => {
    const log = recordingLog()
    const deployment = githubDeployment(settingsFor({ mode: 'rollback' }), RUN, log, { env })
    deployment.begin()
    const failed = deployment.hostDone(hostResult(HOSTS[0], { error: 'no previous release' }))
    await deployment.finish([failed], '')
    expect(api.requests).toEqual([])
    expect(log.warnings).toEqual([])
    expect(log.infos.join('\n')).toContain('no host restored a release')
  })

  it('warns once, naming deployments: write, on 403 and leaves the deploy result alone', async () => {
    api.answer = () => ({
      status: 403,
      body: {
        message: 'Resource not accessible by integration',
        documentation_url: 'https://docs.github.com/rest/deployments/deployments'
      }
    })
    const log = recordingLog()
    const deployment = githubDeployment(settingsFor(), RUN, log, { env })
    deployment.begin()
    const result = deployed(HOSTS[0])
    const before = structuredClone(result)
    const returned = deployment.hostDone(result)
    await expect(deployment.finish([returned], 'https://app.example.com')).resolves.toBeUndefined()

    expect(paths(api)).toEqual(['POST /repos/octo/app/deployments'])
    expect(log.warnings).toHaveLength(1)
    expect(log.warnings[0]).toContain('`permissions: deployments: write`')
    expect(log.warnings[0]).toContain('HTTP 403: Resource not accessible by integration')
    expect(log.warnings[0]).toContain('the deploy is not affected')
    expect(returned).toBe(result)
    expect(result).toEqual(before)
  })

  it('stops after the first failed status call, with one warning', async () => {
    api.answer = r =>
      r.body.state === 'in_progress' ? { status: 502, body: 'bad gateway' } : undefined
    const log = recordingLog()
    const deployment = githubDeployment(settingsFor(), RUN, log, { env })
    deployment.begin()
    await deployment.finish([deployed(HOSTS[0])], '')
    expect(paths(api)).toEqual([
      'POST /repos/octo/app/deployments',
      'POST /repos/octo/app/deployments/42/statuses'
    ])
    expect(log.warnings).toHaveLength(1)
    expect(log.warnings[0]).toContain('HTTP 502')
  })

  it('warns once and moves on quickly when the API refuses connections', async () => {
    const log = recordingLog()
    const port = await closedPort()
    const deployment = githubDeployment(settingsFor(), RUN, log, {
      env: { ...env, GITHUB_API_URL: `http://127.0.0.1:${port}` }
    })
    const started = Date.now()
    deployment.begin()
    await deployment.finish([deployed(HOSTS[0])], 'https://app.example.com')
    expect(Date.now() - started).toBeLessThan(3000)
    expect(log.warnings).toHaveLength(1)
    expect(log.warnings[0]).toContain(
      `the GitHub API at http://127.0.0.1:${port} could not be reached`
    )
    expect(log.warnings[0]).toContain('ECONNREFUSED')
    expect(log.warnings[0]).toContain('`permissions: deployments: write`')
  })

  it('bounds each call in time when the API accepts but never answers', async () => {
    api.answer = () => 'hang'
    const log = recordingLog()
    const deployment = githubDeployment(settingsFor(), RUN, log, { env, timeoutMs: 300 })
    const started = Date.now()
    deployment.begin()
    await deployment.finish([deployed(HOSTS[0])], '')
    expect(Date.now() - started).toBeLessThan(2000)
    expect(paths(api)).toEqual(['POST /repos/octo/app/deployments'])
    expect(log.warnings).toEqual([
      expect.stringContaining(`did not answer within 0.3s`) as unknown as string
    ])
  })

  it('never prints the token, even when the API echoes it back', async () => {
    api.answer = r => ({ status: 500, body: { message: `server error for ${r.authorization}` } })
    const printed: string[] = []
    const stdout = process.stdout.write.bind(process.stdout)
    const stderr = process.stderr.write.bind(process.stderr)
    const capture = (chunk: string | Uint8Array) => {
      printed.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'))
      return true
    }
    process.stdout.write = capture as typeof process.stdout.write
    process.stderr.write = capture as typeof process.stderr.write
    try {
      for (const overrides of [{}, { mode: 'rollback' }] as Record<string, string>[]) {
        const deployment = githubDeployment(settingsFor(overrides), RUN, coreLog, { env })
        deployment.begin()
        deployment.hostDone(
          hostResult(HOSTS[0], { status: 'rolled-back', release: 'r6', sha: FACTS.sha })
        )
        await deployment.finish([deployed(HOSTS[0])], '')
      }
    } finally {
      process.stdout.write = stdout
      process.stderr.write = stderr
    }
    const text = printed.join('')
    expect(api.requests.map(r => r.authorization)).toEqual([`token ${TOKEN}`, `token ${TOKEN}`])
    expect(text).toContain('::warning::')
    expect(text).toContain('server error for token ***')
    expect(text).not.toContain(TOKEN)
    expect(text).not.toContain(TOKEN.slice(4, 20))
  })

  it('makes no request when turned off, in check mode, or without a token or repository', async () => {
    const cases: [Record<string, string>, NodeJS.ProcessEnv][] = [
      [{ 'github-deployment': 'false' }, env],
      [{ mode: 'check' }, env],
      [{ 'github-token': '' }, env],
      [{}, { GITHUB_API_URL: api.url }]
    ]
    for (const [overrides, caseEnv] of cases) {
      const log = recordingLog()
      const deployment = githubDeployment(settingsFor(overrides), RUN, log, { env: caseEnv })
      deployment.begin()
      deployment.hostDone(deployed(HOSTS[0]))
      await deployment.finish([deployed(HOSTS[0])], '')
      expect(log.warnings).toEqual([])
    }
    expect(api.requests).toEqual([])
  })
})

describe('finalStatus', () => {
  const settings = { mode: 'deploy' as const, releaseId: 'r7' }

  it('is success only when every host deployed', () => {
    expect(finalStatus(settings, [deployed('a'), deployed('b')]).state).toBe('success')
    expect(finalStatus(settings, [deployed('a'), hostResult('b', { status: 'failed' })])).toEqual({
      state: 'failure',
      description: 'release r7: failed on b; deployed on a'
    })
  })

  it('names the failed hosts of a rollback', () => {
    const results = [
      hostResult('a', { status: 'rolled-back', release: 'r6' }),
      hostResult('b', { status: 'failed', release: 'r6' })
    ]
    expect(finalStatus({ mode: 'rollback', releaseId: 'x' }, results)).toEqual({
      state: 'failure',
      description: 'rollback to r6 failed on b'
    })
  })
})

describe('deployment inputs', () => {
  it('default to a production deployment with no URL', () => {
    const s = readSettings(inputs(), FACTS)
    expect(s).toMatchObject({ githubDeployment: true, githubToken: '', environment: 'production' })
    expect(s.environmentUrl).toBeUndefined()
  })

  it('reject a token with spaces without showing it', () => {
    const secret = 'ghs_partOne partTwo'
    expect(() => readSettings(inputs({ 'github-token': secret }), FACTS)).toThrow(
      "Input 'github-token' has a value (***): must be one token without spaces"
    )
    try {
      readSettings(inputs({ 'github-token': secret }), FACTS)
    } catch (error) {
      expect((error as Error).message).not.toContain('partOne')
    }
  })

  it('require an http(s) environment-url and a one-line environment', () => {
    expect(() => readSettings(inputs({ 'environment-url': 'app.example.com' }), FACTS)).toThrow(
      'Input \'environment-url\' has value "app.example.com": must be an absolute http'
    )
    expect(() => readSettings(inputs({ environment: 'prod\u0007' }), FACTS)).toThrow(
      "Input 'environment'"
    )
    expect(() => readSettings(inputs({ 'github-deployment': 'maybe' }), FACTS)).toThrow(
      'Input \'github-deployment\' has value "maybe": must be true or false'
    )
  })
})
