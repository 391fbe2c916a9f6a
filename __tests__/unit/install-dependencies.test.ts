// pip runs only into the unit's virtualenv, and the migrations only need an EnvironmentFile
// when the unit has one. Gunicorn's deployment docs start the system's Gunicorn
// (ExecStart=/usr/bin/gunicorn) from a unit without an EnvironmentFile.
import { describe, expect, it } from '@jest/globals'
import { recorder } from '../../__fixtures__/recording-log.js'
import { ScriptedRemote } from '../../__fixtures__/scripted-remote.js'
import { installDependencies, migrate } from '../../src/host/release-checks.js'

describe('installDependencies under the system Python', () => {
  const remote = () =>
    new ScriptedRemote([
      {
        when: /^sha256sum /,
        reply: c => ({ stdout: `${c.includes('releases/v2') ? 'aa' : 'bb'}  requirements.txt\n` })
      }
    ])
  const run = (r: ScriptedRemote) =>
    installDependencies(r, {
      interpreter: { python: '/usr/bin/python3', source: 'the #! line of /usr/bin/gunicorn' },
      releaseDir: '/srv/myapp/releases/v2',
      currentDir: '/srv/myapp/releases/v1',
      pipArgs: [],
      limits: { timeoutSeconds: 60 },
      log: recorder()
    })

  it('refuses a changed requirements.txt, naming a virtualenv or exclude as the fix', async () => {
    const r = remote()
    await expect(run(r)).rejects.toThrow(
      /not in a virtualenv; refusing to pip install into the system Python\. Fix: start Gunicorn from a virtualenv .*exclude: \/requirements\.txt/
    )
    expect(r.commands.some(c => c.includes('pip'))).toBe(false)
  })
})

describe('migrate on a unit without an EnvironmentFile (Gunicorn’s deployment docs)', () => {
  it('runs the migrations: there is no file the deploy user could fail to read', async () => {
    let upgraded = false
    const r = new ScriptedRemote([
      { when: /^test -d /, reply: {} },
      {
        when: / run - \/srv\/myapp\/releases\/v2 .* db current/,
        reply: () => ({ stdout: upgraded ? 'abc123 (head)\n' : '' })
      },
      {
        when: / run - \/srv\/myapp\/releases\/v2 .* db heads/,
        reply: { stdout: 'abc123 (head)\n' }
      },
      {
        when: / db upgrade/,
        reply: () => {
          upgraded = true
          return { stderr: 'INFO  [alembic.runtime.migration] Running upgrade  -> abc123\n' }
        }
      }
    ])
    const ran = await migrate(r, {
      interpreter: { python: '/usr/bin/python3' },
      envSources: undefined,
      envReadable: false,
      releaseDir: '/srv/myapp/releases/v2',
      app: 'wsgi:app',
      mode: 'auto',
      limits: { timeoutSeconds: 60 },
      log: recorder()
    })
    expect(ran).toBe('ran')
    expect(upgraded).toBe(true)
  })
})
