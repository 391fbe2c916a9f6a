// The switch's prediction against a real directory tree on this machine: the
// existence checks and the reads run through this machine's sh, as on a host.
import { afterAll, describe, expect, it } from '@jest/globals'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { runLocally, ScriptedRemote } from '../../__fixtures__/scripted-remote.js'
import { analyzeNginx, matchUpstream } from '../../src/host/nginx/nginx-config.js'
import {
  parseGunicornCommand,
  withConfigFile,
  withDefaultWorkers,
  type GunicornCommand
} from '../../src/host/gunicorn/unit-info.js'
import { belowCurrent, predictSwitch, type SwitchFacts } from '../../src/host/switch-paths.js'
import { parseBind } from '../../src/host/gunicorn/bind.js'

const dirs: string[] = []
afterAll(() => dirs.forEach(d => rmSync(d, { recursive: true, force: true })))

/** release-path with releases v1 (serving) and v2 (new), each given `files` (path -> text, '/' ends a directory). */
function layout(v1: Record<string, string>, v2: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmpdir(), 'zdd-switch-'))
  dirs.push(root)
  for (const [release, files] of [
    ['v1', v1],
    ['v2', v2]
  ] as const) {
    const dir = path.join(root, 'releases', release)
    mkdirSync(dir, { recursive: true })
    for (const [file, text] of Object.entries(files)) {
      const full = path.join(dir, file)
      if (file.endsWith('/')) mkdirSync(full, { recursive: true })
      else {
        mkdirSync(path.dirname(full), { recursive: true })
        writeFileSync(full, text)
      }
    }
  }
  symlinkSync('releases/v1', path.join(root, 'current'))
  return root
}

const local = () => new ScriptedRemote([{ when: /./, reply: runLocally }])

/** The unit's Gunicorn as preflight reads it: ExecStart, then the config file read at start. */
function gunicorn(argv: string[], config?: { file: string; text: string }): GunicornCommand {
  const base = parseGunicornCommand(argv)
  if (!config) return { ...withDefaultWorkers(base), beforeConfig: base }
  return {
    ...withDefaultWorkers(withConfigFile(base, config.file, config.text)),
    beforeConfig: base
  }
}

/** Nginx's configuration from one file. */
const nginxConf = (text: string) =>
  analyzeNginx({
    mainPath: '/etc/nginx/nginx.conf',
    files: new Map([['/etc/nginx/nginx.conf', text]])
  })

function nginxTo(socket: string) {
  const verdict = matchUpstream(
    nginxConf(`http { server { listen 80; location / { proxy_pass http://unix:${socket}; } } }`),
    [parseBind(`unix:${socket}`)]
  )
  if (verdict.kind !== 'match')
    throw new Error(`nginx fixture did not match: ${JSON.stringify(verdict)}`)
  return { proxies: verdict.proxies, servers: verdict.servers }
}

function facts(root: string, g: GunicornCommand, extra: Partial<SwitchFacts> = {}): SwitchFacts {
  return {
    root,
    unit: { execStart: ['/usr/bin/gunicorn'], environmentFiles: [], workingDirectory: root },
    gunicorn: g,
    masterDir: `${root}/releases/v1`,
    currentDir: `${root}/releases/v1`,
    newDir: `${root}/releases/v2`,
    ...nginxTo('/run/myapp/myapp.sock'),
    ...extra
  }
}

describe('predicting what the switch changes', () => {
  it('finds nothing on the kit unit (nothing but the code is reached through current)', async () => {
    const root = layout({ 'wsgi.py': '' }, { 'wsgi.py': '' })
    const g = gunicorn([
      'gunicorn',
      '--workers',
      '3',
      '--chdir',
      `${root}/current`,
      '--bind',
      'unix:/run/myapp/myapp.sock',
      'wsgi:app'
    ])
    expect(await predictSwitch(local(), facts(root, g))).toEqual({ problems: [], warnings: [] })
  })

  it('refuses a release without the config file Gunicorn re-reads through current (-c)', async () => {
    const conf = 'workers = 3\nbind = "unix:/run/myapp/myapp.sock"\n'
    const root = layout({ 'wsgi.py': '', 'gunicorn.conf.py': conf }, { 'wsgi.py': '' })
    const file = `${root}/current/gunicorn.conf.py`
    const g = gunicorn(['gunicorn', '-c', file, '--chdir', `${root}/current`, 'wsgi:app'], {
      file,
      text: conf
    })
    const p = await predictSwitch(local(), facts(root, g))
    expect(p.problems).toHaveLength(1)
    expect(p.problems[0].path).toBe(file)
    expect(p.problems[0].cause).toContain('Gunicorn re-reads it on the reload and exits without it')
    expect(p.problems[0].fix).toContain('add gunicorn.conf.py to the release')
  })

  it('refuses a new config file that moves the bind away from what Nginx proxies to', async () => {
    const conf = 'workers = 3\nbind = "unix:/run/myapp/myapp.sock"\n'
    const moved = 'workers = 3\nbind = ["unix:/run/myapp/other.sock"]\n'
    const root = layout({ 'gunicorn.conf.py': conf }, { 'gunicorn.conf.py': moved })
    const file = `${root}/current/gunicorn.conf.py`
    const g = gunicorn(['gunicorn', '-c', file, '--chdir', `${root}/current`, 'wsgi:app'], {
      file,
      text: conf
    })
    const p = await predictSwitch(local(), facts(root, g))
    expect(p.problems.map(x => x.cause)).toEqual([
      expect.stringContaining(
        'which binds unix:/run/myapp/other.sock: Gunicorn would stop listening where Nginx sends the requests'
      )
    ])
  })

  it('expects the worker count the new config file sets', async () => {
    const conf = 'workers = 3\nbind = "unix:/run/myapp/myapp.sock"\n'
    const more = 'workers = 5\nbind = "unix:/run/myapp/myapp.sock"\n'
    const root = layout({ 'gunicorn.conf.py': conf }, { 'gunicorn.conf.py': more })
    const file = `${root}/current/gunicorn.conf.py`
    const g = gunicorn(['gunicorn', '-c', file, '--chdir', `${root}/current`, 'wsgi:app'], {
      file,
      text: conf
    })
    expect(await predictSwitch(local(), facts(root, g))).toEqual({
      problems: [],
      warnings: [],
      workers: 5
    })
  })

  it('judges the default gunicorn.conf.py in the directory the master runs in, not the new release', async () => {
    // Gunicorn started in WorkingDirectory with its gunicorn.conf.py; the serving release's own file
    // binds elsewhere: the reload applies that one (the new release's only at the next reload).
    const start = 'bind = "unix:/run/myapp/myapp.sock"\n'
    const root = layout(
      { 'gunicorn.conf.py': 'bind = "unix:/run/myapp/other.sock"\n' },
      { 'gunicorn.conf.py': start }
    )
    const g = gunicorn(['gunicorn', '--chdir', `${root}/current`, 'wsgi:app'], {
      file: `${root}/gunicorn.conf.py`,
      text: start
    })
    const p = await predictSwitch(local(), facts(root, g))
    expect(p.problems).toHaveLength(1)
    expect(p.problems[0].path).toBe(`${root}/releases/v1/gunicorn.conf.py`)
    expect(p.problems[0].fix).toContain(`absolute -c ${root}/current/gunicorn.conf.py`)
  })

  it("lets the command line win over any config file (Gunicorn's precedence)", async () => {
    const root = layout({ 'gunicorn.conf.py': 'bind = "unix:/run/myapp/other.sock"\n' }, {})
    const g = gunicorn([
      'gunicorn',
      '--chdir',
      `${root}/current`,
      '--bind',
      'unix:/run/myapp/myapp.sock',
      'wsgi:app'
    ])
    expect((await predictSwitch(local(), facts(root, g))).problems).toEqual([])
  })

  it('warns, and does not refuse, when the config file the reload reads binds by an expression', async () => {
    const start = 'bind = "unix:/run/myapp/myapp.sock"\n'
    const root = layout({ 'gunicorn.conf.py': 'import os\nbind = os.environ["BIND"]\n' }, {})
    const g = gunicorn(['gunicorn', '--chdir', `${root}/current`, 'wsgi:app'], {
      file: `${root}/gunicorn.conf.py`,
      text: start
    })
    const p = await predictSwitch(local(), facts(root, g))
    expect(p.problems).toEqual([])
    expect(p.warnings).toEqual([
      expect.stringContaining('what it binds cannot be judged before the switch')
    ])
  })

  it('refuses a socket Gunicorn binds inside the release (absolute through current, or relative to its --chdir)', async () => {
    const root = layout({}, {})
    const absolute = gunicorn([
      'gunicorn',
      '--chdir',
      `${root}/current`,
      '--bind',
      `unix:${root}/current/app.sock`,
      'wsgi:app'
    ])
    const relative = gunicorn([
      'gunicorn',
      '--chdir',
      `${root}/current`,
      '--bind',
      'unix:app.sock',
      'wsgi:app'
    ])
    for (const g of [absolute, relative]) {
      const p = await predictSwitch(local(), facts(root, g, nginxTo(`${root}/current/app.sock`)))
      expect(p.problems.map(x => x.cause)).toEqual([
        expect.stringContaining('inside the release that serves')
      ])
    }
  })

  it('refuses a release without a directory the unit starts in, or a script it runs, through current', async () => {
    const root = layout({ 'src/': '', 'bin/run': '' }, {})
    const g = gunicorn([
      'gunicorn',
      '--chdir',
      `${root}/current/src`,
      '--bind',
      'unix:/run/myapp/myapp.sock',
      'wsgi:app'
    ])
    const p = await predictSwitch(
      local(),
      facts(root, g, {
        unit: {
          execStart: [`${root}/current/bin/run`],
          environmentFiles: [
            { path: `${root}/current/.env`, optional: false },
            // systemd skips a missing optional file: not a problem
            { path: `${root}/current/.env.local`, optional: true }
          ],
          workingDirectory: root
        }
      })
    )
    expect(p.problems.map(x => x.path).sort()).toEqual(
      [`${root}/current/.env`, `${root}/current/bin/run`, `${root}/current/src`].sort()
    )
  })

  it('refuses a release without the static directory Nginx serves through current', async () => {
    const root = layout({ 'static/': '' }, {})
    const servers = nginxConf(
      `http { server { listen 80; location /static/ { alias ${root}/current/static/; } location / { proxy_pass http://unix:/run/myapp/myapp.sock; } } }`
    ).servers
    const g = gunicorn([
      'gunicorn',
      '--chdir',
      `${root}/current`,
      '--bind',
      'unix:/run/myapp/myapp.sock',
      'wsgi:app'
    ])
    const p = await predictSwitch(local(), facts(root, g, { servers }))
    expect(p.problems.map(x => x.cause)).toEqual([
      expect.stringContaining('every static file would answer 404 after the switch')
    ])
  })

  it('tells a path through current from one beside it', () => {
    expect(belowCurrent('/srv/app', '/srv/app/current/x/y')).toBe('x/y')
    expect(belowCurrent('/srv/app', '/srv/app/current')).toBe('')
    expect(belowCurrent('/srv/app', '/srv/app/currently')).toBeUndefined()
    expect(belowCurrent('/srv/app/', '/srv//app/current/')).toBe('')
  })
})
