// Least privilege (the deploy user cannot read the unit's EnvironmentFile) must not
// turn a broken release into an outage: the release is imported without the file,
// and what fails for a reason no variable can change is refused before the switch;
// only what may depend on the environment is a warning.
import { afterEach, describe, expect, it } from '@jest/globals'
import { FakeHost } from '../../__fixtures__/fake-host.js'
import { healthyFacts } from '../../__fixtures__/host-facts.js'
import { recorder } from '../../__fixtures__/recording-log.js'
import { FixableError } from '../../src/core/fixable-error.js'
import { newHostResult } from '../../src/core/host-result.js'
import type { ImportAnswer, ImportRequest } from '../../src/host/helper-client.js'
import { snapshotOf } from '../../src/host/preflight.js'
import { ReleaseLayout } from '../../src/host/release-layout.js'
import { prepareRelease } from '../../src/modes/prepare-release.js'
import type { Settings } from '../../src/modes/settings.js'

const settings = {
  releaseId: 'v2',
  strategy: 'reload',
  requiredEnv: [],
  migrate: 'off',
  pipArgs: [],
  pipTimeoutSeconds: 900,
  migrateTimeoutSeconds: 1800
} as unknown as Settings

const TRACEBACK = `Traceback (most recent call last):
  File "/srv/myapp/releases/v2/wsgi.py", line 1, in <module>
    import flask_not_installed
ModuleNotFoundError: No module named 'flask_not_installed'
`

const notInstalled: ImportAnswer = {
  ok: false,
  failure: {
    type: 'ModuleNotFoundError',
    message: "No module named 'flask_not_installed'",
    file: 'wsgi.py',
    line: 1
  },
  traceback: TRACEBACK,
  independent: 'no module named flask_not_installed is installed for /srv/myapp/.venv/bin/python3',
  reads: []
}

const secretUnset: ImportAnswer = {
  ok: false,
  failure: { type: 'KeyError', message: "'SECRET_KEY'", file: 'wsgi.py', line: 3 },
  traceback: "Traceback (most recent call last):\nKeyError: 'SECRET_KEY'\n",
  reads: [{ name: 'SECRET_KEY', set: false }]
}

const hosts: FakeHost[] = []
afterEach(async () => {
  for (const h of hosts.splice(0)) await h.dispose()
})

/** Prepares release v2 on a host serving v1, whose EnvironmentFile the deploy user can or cannot read. */
const ENV_FILES = [{ path: '/etc/myapp.env', optional: false }]

function prepare(envReadable: boolean, answer: ImportAnswer) {
  const host = new FakeHost('v1')
  hosts.push(host)
  const requests: ImportRequest[] = []
  host.imports = request => {
    requests.push(request)
    return answer
  }
  const facts = healthyFacts({
    envSources: { assignments: ['APP_MODE=production'], files: ENV_FILES },
    env: envReadable
      ? { exists: true, readable: true, files: [], missing: [], empty: [], count: 2 }
      : { exists: true, readable: false }
  })
  const log = recorder()
  const prepared = prepareRelease({
    remote: host,
    settings,
    snap: snapshotOf(facts),
    layout: new ReleaseLayout('/srv/myapp'),
    log,
    result: newHostResult(host.target.label),
    cancellation: {},
    archivePath: '/nonexistent/release.tar.gz',
    requirements: 'absent'
  })
  return { host, requests, log, prepared }
}

describe('the import check when the deploy user cannot read the EnvironmentFile', () => {
  it('imports the release without the file, telling the helper so', async () => {
    const { requests, prepared } = prepare(false, { ok: true, seconds: 0.4, reads: [] })
    await expect(prepared).resolves.toMatchObject({ releaseDir: '/srv/myapp/releases/v2' })
    expect(requests).toEqual([
      {
        python: '/srv/myapp/.venv/bin/python3',
        // what may be read still goes with it: the unit's Environment= lines
        env: { unreadable: { assignments: ['APP_MODE=production'], files: ENV_FILES } },
        releaseDir: '/srv/myapp/releases/v2',
        app: 'wsgi:app'
      }
    ])
  })

  it('refuses before the switch a release with a module that is not installed', async () => {
    const { host, prepared } = prepare(false, notInstalled)
    await expect(prepared).rejects.toThrow(
      'the new release cannot import wsgi:app with /srv/myapp/.venv/bin/python3 (it never reached the reload): no module named flask_not_installed is installed'
    )
    await expect(prepared).rejects.toThrow(
      'fails the same with any environment.\n' + TRACEBACK.trimEnd()
    )
    const error = (await prepared.catch((e: unknown) => e)) as FixableError
    expect(error).toBeInstanceOf(FixableError)
    expect(error.fix).toContain(
      'let deploy read /etc/myapp.env, so that the import check runs with it'
    )
    expect(host.state.current).toBe('v1')
    expect(host.commands.filter(c => /systemctl (reload|restart)|ln -sfn/.test(c))).toEqual([])
  })

  it('warns and goes on when the failure may depend on the environment', async () => {
    const { log, prepared } = prepare(false, secretUnset)
    await expect(prepared).resolves.toMatchObject({ releaseDir: '/srv/myapp/releases/v2' })
    const warning = log.lines.find(l => l.startsWith('warning not verified before the switch'))
    expect(warning).toContain(
      "wsgi:app does not import without /etc/myapp.env, which deploy cannot read: KeyError: 'SECRET_KEY' (wsgi.py:3); it reads SECRET_KEY, unset without that file"
    )
    expect(warning).toContain('verification after the switch proves the release')
  })

  it('with the file readable, refuses any failure, judged or not', async () => {
    const { requests, prepared } = prepare(true, secretUnset)
    await expect(prepared).rejects.toThrow('(it never reached the reload):\n')
    expect(requests[0].env).toEqual({
      sources: { assignments: ['APP_MODE=production'], files: ENV_FILES }
    })
  })
})
