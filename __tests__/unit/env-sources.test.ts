// The checks, the import check and the migrations run with the service's whole
// environment: Environment=, then every EnvironmentFile in order (optional ones
// skipped when missing), as systemd builds it. The remote helper runs on this
// machine, as it does on a server.
import { afterAll, describe, expect, it } from '@jest/globals'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { envArg, envSourcesOf } from '../../src/host/env-sources.js'
import { parseUnitShow } from '../../src/host/gunicorn/unit-info.js'
import { checkEnvironment, importCheck, migrate } from '../../src/host/release-checks.js'
import { recorder } from '../../__fixtures__/recording-log.js'
import { runLocally, ScriptedRemote } from '../../__fixtures__/scripted-remote.js'

const dir = mkdtempSync(join(tmpdir(), 'zdd-env-sources-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const file = (name: string, text: string) => {
  writeFileSync(join(dir, name), text)
  return join(dir, name)
}
const secrets = file(
  'secrets.env',
  'SECRET_KEY=from-the-first-file\nDATABASE_URL=sqlite:///wrong\n'
)
const database = file('database.env', 'DATABASE_URL=postgresql://db/app\n')
// the unit with its drop-in, as systemctl show prints it
const unit = parseUnitShow(
  [
    `EnvironmentFiles=${secrets} (ignore_errors=no)`,
    `EnvironmentFiles=${join(dir, 'absent.env')} (ignore_errors=yes)`,
    `EnvironmentFiles=${database} (ignore_errors=no)`,
    'Environment=APP_MODE=production "DATABASE_URL=sqlite:///from-environment"'
  ].join('\n')
)
const sources = envSourcesOf(unit)
const release = join(dir, 'release')
mkdirSync(release)
writeFileSync(
  join(release, 'wsgi.py'),
  [
    'import os',
    'assert os.environ["SECRET_KEY"] == "from-the-first-file"',
    'assert os.environ["APP_MODE"] == "production"',
    'assert os.environ["DATABASE_URL"] == "postgresql://db/app", os.environ["DATABASE_URL"]',
    'def app(environ, start_response):',
    '    return []',
    ''
  ].join('\n')
)
const onThisMachine = () => new ScriptedRemote([{ when: /./, reply: c => runLocally(c) }])
const interpreter = { python: '/usr/bin/python3' }

describe("the service's environment", () => {
  it('imports the release with Environment= and every file, a later one winning', async () => {
    const log = recorder()
    await importCheck(onThisMachine(), {
      interpreter,
      envSources: sources,
      envReadable: true,
      releaseDir: release,
      app: 'wsgi:app',
      log
    })
    expect(log.lines.join('\n')).toMatch(/^info ok wsgi:app with /)
  })

  it('finds required names in any of the files, and skips a missing optional one', async () => {
    const log = recorder()
    await checkEnvironment(
      onThisMachine(),
      sources,
      ['SECRET_KEY', 'DATABASE_URL', 'APP_MODE'],
      log
    )
    expect(log.lines.at(-1)).toContain('3 variables, required ones set')
    await expect(
      checkEnvironment(onThisMachine(), sources, ['NOT_SET'], recorder())
    ).rejects.toThrow('required variable(s) not set: NOT_SET')
  })

  it('refuses a missing file that is not optional, naming it', async () => {
    const gone = {
      assignments: [],
      files: [...sources.files, { path: join(dir, 'gone.env'), optional: false }]
    }
    await expect(checkEnvironment(onThisMachine(), gone, [], recorder())).rejects.toThrow(
      `EnvironmentFile ${join(dir, 'gone.env')} does not exist`
    )
  })

  it('runs migrate-command with the same environment', async () => {
    const log = recorder()
    await migrate(onThisMachine(), {
      interpreter,
      envSources: sources,
      envReadable: true,
      releaseDir: release,
      app: 'wsgi:app',
      command: [
        '/bin/sh',
        '-c',
        'test "$DATABASE_URL" = postgresql://db/app && test "$SECRET_KEY" = from-the-first-file'
      ],
      mode: 'auto',
      limits: { timeoutSeconds: 30 },
      log
    })
    expect(log.lines.at(-1)).toMatch(/^info ran \/bin\/sh/)
  })

  it('passes nothing when the unit sets no environment', () => {
    expect(envArg(envSourcesOf(parseUnitShow('')))).toBe('-')
    expect(envSourcesOf(unit, '/etc/override.env').files).toEqual([
      { path: '/etc/override.env', optional: false }
    ])
  })
})
