import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from '@jest/globals'
import { parseBind } from '../../src/host/gunicorn/bind.js'
import { runLocally, ScriptedRemote } from '../../__fixtures__/scripted-remote.js'
import { HELPER_PY } from '../../src/host/helper-client.js'
import { readGunicornEnv, readGunicornOptions } from '../../src/host/service-state.js'
import {
  configFileOf,
  optionsUnseen,
  parseGunicornCommand,
  parseEnvironmentFiles,
  parseUnitShow,
  withConfigFile,
  withDefaultWorkers,
  withGunicornEnv,
  type GunicornCommand,
  type GunicornEnv,
  type UnitInfo
} from '../../src/host/gunicorn/unit-info.js'

const SHOW = `LoadState=loaded
ActiveState=active
SubState=running
MainPID=412
NRestarts=0
ExecStart={ path=/srv/myapp/.venv/bin/gunicorn ; argv[]=/srv/myapp/.venv/bin/gunicorn --workers 3 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }
ExecReload={ path=/bin/kill ; argv[]=/bin/kill -HUP $MAINPID ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }
WorkingDirectory=/srv/myapp
EnvironmentFiles=/etc/myapp.env (ignore_errors=no)
User=www-data
FragmentPath=/etc/systemd/system/myapp.service
`

describe('parseUnitShow', () => {
  it('reads state, pids, exec lines and environment files', () => {
    const unit = parseUnitShow(SHOW)
    expect(unit).toMatchObject({
      loadState: 'loaded',
      activeState: 'active',
      mainPid: 412,
      workingDirectory: '/srv/myapp',
      environmentFiles: [{ path: '/etc/myapp.env', optional: false }],
      user: 'www-data'
    })
    expect(unit.execReload).toEqual(['/bin/kill', '-HUP', '$MAINPID'])
    expect(unit.execStart[0]).toBe('/srv/myapp/.venv/bin/gunicorn')
  })
})

describe('parseUnitShow, the environment', () => {
  // as systemd 252 shows a unit with EnvironmentFile= lines in the unit and a drop-in
  const show = [
    'EnvironmentFiles=/etc/myapp.env (ignore_errors=no)',
    'EnvironmentFiles=/etc/myapp-extra.env (ignore_errors=yes)',
    'EnvironmentFiles=/etc/myapp-b.env (ignore_errors=no)',
    'Environment="A=x y" B=2 "C=it\'s \\"q\\"" "D=\\$\\$HOME"',
    'Group=www-data'
  ].join('\n')

  // Issue 18: only the last EnvironmentFile line was read (the others, and whether one is optional, were lost).
  it('reads every EnvironmentFile in order, optional ones marked', () => {
    expect(parseUnitShow(show).environmentFiles).toEqual([
      { path: '/etc/myapp.env', optional: false },
      { path: '/etc/myapp-extra.env', optional: true },
      { path: '/etc/myapp-b.env', optional: false }
    ])
    expect(
      parseEnvironmentFiles(['/etc/a.env (ignore_errors=no) /etc/b.env (ignore_errors=yes)'])
    ).toEqual([
      { path: '/etc/a.env', optional: false },
      { path: '/etc/b.env', optional: true }
    ])
  })

  it('reads Environment= assignments as systemd quotes them, and Group=', () => {
    const unit = parseUnitShow(show)
    expect(unit.environment).toEqual(['A=x y', 'B=2', `C=it's "q"`, 'D=$$HOME'])
    expect(unit.group).toBe('www-data')
    expect(parseUnitShow('Environment=').environment).toEqual([])
  })
})

describe('parseGunicornCommand', () => {
  it('finds workers, chdir, bind and the app of a console-script launch', () => {
    const g = parseGunicornCommand(parseUnitShow(SHOW).execStart)
    expect(g).toEqual({
      launcher: { kind: 'script', path: '/srv/myapp/.venv/bin/gunicorn' },
      workers: 3,
      chdir: '/srv/myapp/current',
      binds: ['unix:/run/myapp/myapp.sock'].map(parseBind),
      preload: false,
      app: 'wsgi:app',
      sources: {
        workers: 'command line',
        chdir: 'command line',
        bind: 'command line',
        app: 'command line'
      }
    })
  })

  it('understands python -m gunicorn, = forms, short flags and --preload', () => {
    const g = parseGunicornCommand([
      '/srv/myapp/.venv/bin/python3',
      '-m',
      'gunicorn',
      '-w',
      '4',
      '--bind=127.0.0.1:8000',
      '--timeout',
      '30',
      '--preload',
      'app:create_app()'
    ])
    expect(g).toMatchObject({
      launcher: { kind: 'module', python: '/srv/myapp/.venv/bin/python3' },
      workers: 4,
      binds: ['127.0.0.1:8000'].map(parseBind),
      preload: true,
      app: 'app:create_app()'
    })
    expect(g.chdir).toBeUndefined()
  })
})

describe('Gunicorn config files', () => {
  const plain = parseGunicornCommand(['/v/bin/gunicorn', '--workers', '3', 'wsgi:app'])

  it('finds -c relative to the start directory, or the default gunicorn.conf.py there', () => {
    expect(configFileOf({ workingDirectory: '/srv/myapp' }, plain)).toBe(
      '/srv/myapp/gunicorn.conf.py'
    )
    expect(configFileOf({ workingDirectory: '' }, plain)).toBe('/gunicorn.conf.py')
    const withC = parseGunicornCommand(['/v/bin/gunicorn', '-c', './conf/g.py', 'wsgi:app'])
    expect(configFileOf({ workingDirectory: '/srv/myapp/' }, withC)).toBe('/srv/myapp/conf/g.py')
    const absolute = parseGunicornCommand(['/v/bin/gunicorn', '--config=/etc/g.py', 'wsgi:app'])
    expect(configFileOf({ workingDirectory: '/srv/myapp' }, absolute)).toBe('/etc/g.py')
  })

  it('takes literal preload_app, chdir, workers and bind; the last assignment wins', () => {
    const g = withConfigFile(
      plain,
      '/srv/myapp/gunicorn.conf.py',
      [
        'import os',
        'preload_app = False',
        'preload_app = True  # faster boot',
        "chdir = '/srv/myapp/current'",
        'workers = 9',
        'bind = ["unix:/run/myapp/myapp.sock", "127.0.0.1:8000"]',
        '    preload_app = False  # indented: inside a block, not read'
      ].join('\n')
    )
    expect(g).toMatchObject({
      preload: true,
      preloadSource: 'preload_app = True in /srv/myapp/gunicorn.conf.py',
      chdir: '/srv/myapp/current',
      workers: 3, // the command line wins
      binds: ['unix:/run/myapp/myapp.sock', '127.0.0.1:8000'].map(parseBind),
      configFile: '/srv/myapp/gunicorn.conf.py',
      configRead: true
    })
  })

  it('leaves a computed chdir or preload_app to verification (configRead false)', () => {
    const chdir = withConfigFile(plain, '/g.py', 'chdir = os.path.join(BASE, "current")')
    expect(chdir.chdir).toBeUndefined()
    expect(chdir.configRead).toBe(false)
    const preload = withConfigFile(plain, '/g.py', "preload_app = os.environ.get('PRELOAD') == '1'")
    expect(preload.preload).toBe(false)
    expect(preload.configRead).toBe(false)
  })

  it('keeps the command line when the file sets nothing that matters', () => {
    const g = withConfigFile(plain, '/g.py', 'accesslog = "-"\ntimeout = 30\n')
    expect(g).toMatchObject({ preload: false, workers: 3, binds: [], configRead: true })
    expect(g.chdir).toBeUndefined()
  })
})

/** ExecStart as `systemctl show` prints it: argv joined with spaces, quoting lost. */
const shown = (argv: string) =>
  parseUnitShow(
    `ExecStart={ path=/x ; argv[]=${argv} ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }\n`
  ).execStart
const words = (text: string) => text.split(' ')

describe('parseUnitShow, exec lines', () => {
  it('keeps an sh -c script that contains " ; " whole, and reads the unit Id', () => {
    const unit = parseUnitShow(
      'Id=myapp.service\nExecStart={ path=/bin/sh ; argv[]=/bin/sh -c cd /srv/app ; exec gunicorn wsgi:app ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }\n'
    )
    expect(unit.execStart).toEqual(words('/bin/sh -c cd /srv/app ; exec gunicorn wsgi:app'))
    expect(unit.id).toBe('myapp.service')
  })
})

describe('Gunicorn launchers', () => {
  it.each([
    ['/usr/bin/python3.13 -m gunicorn -w 3 wsgi:app', '/usr/bin/python3.13'],
    ['/opt/venv/bin/python -m gunicorn -w 3 wsgi:app', '/opt/venv/bin/python'],
    [
      '/opt/venv/bin/python3 -u -X dev -W ignore -m gunicorn -w 3 wsgi:app',
      '/opt/venv/bin/python3'
    ],
    ['/opt/venv/bin/python3 -mgunicorn -w 3 wsgi:app', '/opt/venv/bin/python3'],
    ['python3 -m gunicorn.app.wsgiapp -w 3 wsgi:app', 'python3']
  ])('reads the interpreter of a module launch: %s', (argv, python) => {
    const g = parseGunicornCommand(words(argv))
    expect(g.launcher).toEqual({ kind: 'module', python })
    expect(g).toMatchObject({ workers: 3, app: 'wsgi:app' })
  })

  it('reads console scripts by name, also run by an explicit python (as ps shows them)', () => {
    expect(parseGunicornCommand(words('/usr/bin/gunicorn3 -w 2 a:b')).launcher).toEqual({
      kind: 'script',
      path: '/usr/bin/gunicorn3'
    })
    const viaPython = parseGunicornCommand(
      words('/srv/a/.venv/bin/python3 /srv/a/.venv/bin/gunicorn -w 2 wsgi:app')
    )
    expect(viaPython.launcher).toEqual({
      kind: 'script',
      path: '/srv/a/.venv/bin/gunicorn',
      python: '/srv/a/.venv/bin/python3'
    })
    expect(viaPython.workers).toBe(2)
    expect(parseGunicornCommand(words('/usr/bin/mygunicorn -w 2 a:b')).launcher.kind).toBe(
      'unknown'
    )
  })

  it('unwraps /usr/bin/env with its options and assignments', () => {
    const g = parseGunicornCommand(
      words('/usr/bin/env -C /srv/app WEB_CONCURRENCY=4 PATH=/x gunicorn --bind :8000 wsgi:app')
    )
    expect(g.launcher).toEqual({
      kind: 'wrapped',
      by: ['env'],
      inner: { kind: 'script', path: 'gunicorn' }
    })
    expect(g).toMatchObject({
      binds: [':8000'].map(parseBind),
      app: 'wsgi:app',
      startDirectory: '/srv/app',
      launchEnv: { WEB_CONCURRENCY: '4' }
    })
    const cleared = parseGunicornCommand(words('/usr/bin/env -i -S gunicorn wsgi:app'))
    expect(cleared).toMatchObject({ inheritsEnv: false, app: 'wsgi:app' })
  })

  it('reads the Gunicorn command inside sh -c / bash -c, with its cd and variables', () => {
    const g = parseGunicornCommand(
      shown(
        '/bin/bash -lc cd /srv/app/current && . ../.venv/bin/activate && WEB_CONCURRENCY=5 exec /srv/app/.venv/bin/gunicorn --bind "unix:/run/app/app.sock" wsgi:app'
      )
    )
    expect(g.launcher).toEqual({
      kind: 'wrapped',
      by: ['bash -c'],
      inner: { kind: 'script', path: '/srv/app/.venv/bin/gunicorn' }
    })
    expect(g).toMatchObject({
      binds: ['unix:/run/app/app.sock'].map(parseBind),
      app: 'wsgi:app',
      startDirectory: '/srv/app/current',
      launchEnv: { WEB_CONCURRENCY: '5' }
    })
    const semicolons = parseGunicornCommand(
      shown('/bin/sh -c cd /srv/app ; exec python3 -m gunicorn -w 4 wsgi:app')
    )
    expect(semicolons.launcher).toEqual({
      kind: 'wrapped',
      by: ['sh -c'],
      inner: { kind: 'module', python: 'python3' }
    })
    expect(semicolons).toMatchObject({ workers: 4, startDirectory: '/srv/app' })
  })

  it.each([
    ['/usr/bin/poetry run gunicorn -w 3 wsgi:app', ['poetry run'], undefined],
    [
      '/usr/local/bin/poetry -C /srv/app run python -m gunicorn -w 3 wsgi:app',
      ['poetry run'],
      '/srv/app'
    ],
    [
      '/usr/local/bin/uv run --with gunicorn --frozen gunicorn -w 3 wsgi:app',
      ['uv run'],
      undefined
    ],
    [
      '/usr/local/bin/uv run --directory=/srv/app -- gunicorn -w 3 wsgi:app',
      ['uv run'],
      '/srv/app'
    ],
    ['/usr/bin/pipenv run gunicorn -w 3 wsgi:app', ['pipenv run'], undefined],
    ['/bin/sh -c exec poetry run gunicorn -w 3 wsgi:app', ['sh -c', 'poetry run'], undefined]
  ])('reads Gunicorn after a project runner: %s', (argv, by, dir) => {
    const g = parseGunicornCommand(words(argv))
    expect(g.launcher).toMatchObject({ kind: 'wrapped', by })
    expect(g).toMatchObject({ workers: 3, app: 'wsgi:app' })
    expect(g.startDirectory).toBe(dir)
  })

  it('says why the environment is hidden when the runner loads a .env file', () => {
    expect(parseGunicornCommand(words('/usr/bin/pipenv run gunicorn wsgi:app')).envHidden).toMatch(
      /\.env/
    )
    expect(
      parseGunicornCommand(words('/usr/bin/uv run --env-file .env gunicorn wsgi:app')).envHidden
    ).toContain('--env-file .env')
  })

  it.each([
    ['/srv/app/bin/start.sh', [], /start\.sh is neither Gunicorn/],
    ['/bin/sh /srv/app/bin/start.sh', [], /runs a script/],
    ['/bin/sh -c exec $APP_COMMAND', ['sh -c'], /starts no Gunicorn command/],
    ['/usr/bin/poetry run /srv/app/start.sh', ['poetry run'], /start\.sh is neither/],
    ['/usr/bin/poetry install', [], /"run"/],
    ['/srv/app/.venv/bin/python /srv/app/serve.py', [], /serve\.py|neither/]
  ])('returns "unknown" with the reason instead of refusing: %s', (argv, by, reason) => {
    const g = parseGunicornCommand(words(argv))
    expect(g.launcher).toMatchObject({ kind: 'unknown', by })
    expect(g.launcher.kind === 'unknown' && g.launcher.reason).toMatch(reason)
    expect(g).toMatchObject({ binds: [], preload: false })
    expect(g.workers).toBeUndefined()
  })
})

describe('Gunicorn flags', () => {
  const parse = (args: string) => parseGunicornCommand(['/v/bin/gunicorn', ...words(args)])

  it.each([
    ['-c /etc/g.py wsgi:app', '/etc/g.py'],
    ['--config /etc/g.py wsgi:app', '/etc/g.py'],
    ['--config=/etc/g.py wsgi:app', '/etc/g.py'],
    ['-c/etc/g.py wsgi:app', '/etc/g.py'],
    ['--conf /etc/g.py wsgi:app', '/etc/g.py']
  ])('finds the config file in %s', (args, file) => {
    expect(parse(args)).toMatchObject({ configFile: file, app: 'wsgi:app' })
  })

  it('reads worker class, threads, clustered and attached short options', () => {
    expect(parse('-k gevent -w4 --threads 8 wsgi:app')).toMatchObject({
      workerClass: 'gevent',
      workers: 4,
      threads: 8
    })
    expect(parse('-Dw3 --worker-class=uvicorn.workers.UvicornWorker wsgi:app')).toMatchObject({
      workers: 3,
      workerClass: 'uvicorn.workers.UvicornWorker'
    })
    expect(parse('--pre wsgi:app')).toMatchObject({ preload: true, preloadSource: '--preload' })
    // ambiguous prefix: argparse refuses it, nothing is taken from it
    expect(parse('--work 5 wsgi:app').workers).toBeUndefined()
  })

  it('takes the app as Gunicorn does, despite a value systemd split at its spaces', () => {
    expect(parse('--access-logformat %(h)s %(r)s wsgi:app').app).toBe('wsgi:app')
    expect(parse('app:create_app() --timeout 30 other').app).toBe('app:create_app()')
  })

  it('leaves options behind $VARIABLES unknown, and says so', () => {
    const opts = parse('$GUNICORN_OPTS wsgi:app')
    expect(opts.unresolved).toEqual(['$GUNICORN_OPTS'])
    expect(optionsUnseen(opts)).toBe(true)
    const dir = parse('--chdir ${APP_DIR}/current -w ${WORKERS} wsgi:app')
    expect(dir.chdir).toBeUndefined()
    expect(dir.workers).toBeUndefined()
    expect(dir.computed).toEqual(expect.arrayContaining(['chdir', 'workers']))
    expect(optionsUnseen(dir)).toBe(true)
    expect(optionsUnseen(parse('--chdir /srv/a/current wsgi:app'))).toBe(false)
  })
})

describe('precedence: command line > GUNICORN_CMD_ARGS > config file > WEB_CONCURRENCY > 1', () => {
  const unit = { workingDirectory: '/srv/app' }
  /** Resolves a launch the way readGunicornOptions does, from given sources. */
  function resolve(
    args: string,
    env: GunicornEnv,
    config?: string,
    argv0 = '/v/bin/gunicorn'
  ): GunicornCommand {
    const g = withGunicornEnv(parseGunicornCommand([argv0, ...words(args)]), env)
    const merged = config === undefined ? g : withConfigFile(g, configFileOf(unit, g), config)
    return withDefaultWorkers(merged)
  }
  const all = { readable: true, WEB_CONCURRENCY: '2', GUNICORN_CMD_ARGS: '--workers 3' }

  it.each([
    ['-w 4 wsgi:app', all, 'workers = 5', 4, 'command line'],
    ['wsgi:app', all, 'workers = 5', 3, 'GUNICORN_CMD_ARGS'],
    ['wsgi:app', { readable: true, WEB_CONCURRENCY: '2' }, 'workers = 5', 5, 'config file'],
    ['wsgi:app', { readable: true, WEB_CONCURRENCY: '2' }, 'timeout = 5', 2, 'WEB_CONCURRENCY'],
    ['wsgi:app', { readable: true }, 'timeout = 5', 1, 'default'],
    ['wsgi:app', { readable: true }, undefined, 1, 'default']
  ])('%s with %j and %j: %d workers from the %s', (args, env, config, workers, source) => {
    const g = resolve(args, env, config)
    expect(g.workers).toBe(workers)
    expect(g.sources.workers).toBe(source)
  })

  it('claims no default when something that could set workers was not read', () => {
    expect(resolve('wsgi:app', { readable: false }, 'timeout = 5').workers).toBeUndefined()
    const computed = resolve(
      'wsgi:app',
      { readable: true, WEB_CONCURRENCY: '4' },
      'workers = int(os.environ.get("WEB_CONCURRENCY", 3))'
    )
    expect(computed.workers).toBeUndefined()
    expect(computed.computed).toContain('workers')
    const unreadable = withDefaultWorkers({
      ...withGunicornEnv(parseGunicornCommand(words('/v/bin/gunicorn wsgi:app')), {
        readable: true
      }),
      configFile: '/srv/app/gunicorn.conf.py',
      configRead: false,
      configUnreadable: true
    })
    expect(unreadable.workers).toBeUndefined()
    expect(
      resolve('wsgi:app', { readable: true }, undefined, '/usr/bin/pipenv run gunicorn').workers
    ).toBeUndefined()
    expect(resolve('$OPTS wsgi:app', { readable: true }).workers).toBeUndefined()
  })

  it('applies --preload, --bind and --config from GUNICORN_CMD_ARGS, quoted as shlex reads it', () => {
    const g = withGunicornEnv(parseGunicornCommand(words('/v/bin/gunicorn wsgi:app')), {
      readable: true,
      GUNICORN_CMD_ARGS: `--preload --bind 'unix:/run/a b.sock' --config conf/g.py -k gthread`
    })
    expect(g).toMatchObject({
      preload: true,
      preloadSource: '--preload in GUNICORN_CMD_ARGS',
      binds: ['unix:/run/a b.sock'].map(parseBind),
      workerClass: 'gthread',
      envRead: true
    })
    expect(configFileOf(unit, g)).toBe('/srv/app/conf/g.py')
    // the command line's -c wins over the environment's
    const withC = withGunicornEnv(parseGunicornCommand(words('/v/bin/gunicorn -c /etc/g.py a:b')), {
      readable: true,
      GUNICORN_CMD_ARGS: '--config other.py --bind :9000 --chdir /srv/x'
    })
    expect(configFileOf(unit, withC)).toBe('/etc/g.py')
    // GUNICORN_CMD_ARGS beats the config file, even when applied first
    const file = withConfigFile(withC, '/etc/g.py', 'bind = "unix:/x.sock"\nchdir = "/srv/y"\n')
    expect(file).toMatchObject({ binds: [':9000'].map(parseBind), chdir: '/srv/x' })
  })

  it('lets what the launch sets win over the EnvironmentFile, and env -i drop it', () => {
    const launched = withGunicornEnv(
      parseGunicornCommand(shown('/bin/sh -c export WEB_CONCURRENCY=6 ; exec gunicorn a:b')),
      { readable: true, WEB_CONCURRENCY: '2', GUNICORN_CMD_ARGS: '--threads 4' }
    )
    expect(launched).toMatchObject({ workers: 6, threads: 4 })
    const cleared = withDefaultWorkers(
      withGunicornEnv(parseGunicornCommand(words('/usr/bin/env -i /v/bin/gunicorn a:b')), {
        readable: false,
        WEB_CONCURRENCY: '9'
      })
    )
    expect(cleared).toMatchObject({ workers: 1, envRead: true })
  })

  it('finds gunicorn.conf.py where the launch cds to', () => {
    const g = parseGunicornCommand(shown('/bin/sh -c cd current && exec gunicorn wsgi:app'))
    expect(configFileOf(unit, g)).toBe('/srv/app/current/gunicorn.conf.py')
  })
})

describe('config file settings beyond the reload traps', () => {
  const plain = parseGunicornCommand(['/v/bin/gunicorn'])

  it('reads literal worker_class, threads, a bind list and wsgi_app', () => {
    const g = withConfigFile(
      plain,
      '/g.py',
      [
        'worker_class = "gthread"',
        'threads: int = 4',
        "bind = ('unix:/run/a.sock', '127.0.0.1:8000')",
        'wsgi_app = "wsgi:app"  # the app'
      ].join('\n')
    )
    expect(g).toMatchObject({
      workerClass: 'gthread',
      threads: 4,
      binds: ['unix:/run/a.sock', '127.0.0.1:8000'].map(parseBind),
      app: 'wsgi:app',
      configRead: true
    })
    expect(
      withConfigFile(parseGunicornCommand(['/v/bin/gunicorn', 'x:y']), '/g.py', 'wsgi_app = "a:b"')
        .app
    ).toBe('x:y')
  })

  it('marks computed settings unknown instead of guessing', () => {
    const g = withConfigFile(
      plain,
      '/g.py',
      'worker_class = WORKER\nbind = [f"unix:{RUN}/a.sock"]\nwsgi_app = os.environ["APP"]\nthreads = 2 * 2'
    )
    expect(g.computed?.sort()).toEqual(['app', 'bind', 'threads', 'workerClass'])
    expect(g).toMatchObject({ binds: [], configRead: true })
    expect(g.workerClass).toBeUndefined()
    expect(g.app).toBeUndefined()
  })
})

describe('reading the service environment on the host', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gunicornenv-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const SECRET = 's3cr3t-value-never-printed'
  const first = join(dir, 'first.env')
  const second = join(dir, 'second.env')
  writeFileSync(
    first,
    `SECRET_KEY=${SECRET}\nexport WEB_CONCURRENCY=3\nGUNICORN_CMD_ARGS="--threads 2 --bind 'unix:/run/a.sock'"\nDATABASE_URL='postgres://u:${SECRET}@db/x'\n`
  )
  writeFileSync(second, `WEB_CONCURRENCY=5\nAPI_TOKEN=${SECRET}\n`)
  const helper = (...args: string[]) => {
    const run = spawnSync('/usr/bin/python3', ['-c', HELPER_PY, 'gunicornenv', ...args], {
      encoding: 'utf8'
    })
    expect(run.stderr).toBe('')
    return run.stdout
  }

  it('prints only WEB_CONCURRENCY and GUNICORN_CMD_ARGS, later files winning', () => {
    const out = helper('-', first, join(dir, 'missing.env'), second)
    expect(JSON.parse(out)).toEqual({
      readable: true,
      values: {
        WEB_CONCURRENCY: '5',
        GUNICORN_CMD_ARGS: "--threads 2 --bind 'unix:/run/a.sock'"
      }
    })
    expect(out).not.toContain(SECRET)
    expect(out).not.toMatch(/SECRET_KEY|DATABASE_URL|API_TOKEN/)
  })

  it('omits absent names, and says unreadable without any value', () => {
    const none = join(dir, 'none.env')
    writeFileSync(none, `OTHER=${SECRET}\n`)
    expect(JSON.parse(helper('-', none))).toEqual({ readable: true, values: {} })
    const out = helper('-', first, dir) // a directory cannot be read as a file
    expect(JSON.parse(out)).toEqual({ readable: false, values: {} })
    expect(out).not.toContain(SECRET)
  })

  const unitWith = (over: Partial<UnitInfo>): UnitInfo => ({
    ...parseUnitShow(''),
    activeState: 'active',
    mainPid: 10,
    workingDirectory: dir,
    environmentFiles: [{ path: first, optional: false }],
    ...over
  })
  const onThisMachine = () =>
    new ScriptedRemote([{ when: /./, reply: command => runLocally(command) }])

  it('readGunicornEnv runs the helper on the host and keeps only the two names', async () => {
    const remote = onThisMachine()
    expect(await readGunicornEnv(remote, unitWith({}))).toEqual({
      readable: true,
      WEB_CONCURRENCY: '3',
      GUNICORN_CMD_ARGS: "--threads 2 --bind 'unix:/run/a.sock'"
    })
    expect(remote.commands[0]).toMatch(/ gunicornenv - \S*first\.env$/)
    const broken = new ScriptedRemote([{ when: /./, reply: { code: 127, stdout: '' } }])
    expect(await readGunicornEnv(broken, unitWith({}))).toEqual({ readable: false })
  })

  it('readGunicornOptions merges ExecStart, the environment and gunicorn.conf.py', async () => {
    writeFileSync(join(dir, 'gunicorn.conf.py'), 'workers = 7\nbind = "127.0.0.1:1"\n')
    const g = await readGunicornOptions(
      onThisMachine(),
      unitWith({ execStart: words('/v/bin/gunicorn --threads 9 wsgi:app') })
    )
    expect(g).toMatchObject({
      workers: 7,
      threads: 9,
      binds: ['unix:/run/a.sock'].map(parseBind),
      configFile: join(dir, 'gunicorn.conf.py'),
      configRead: true,
      envRead: true
    })
    expect(g.sources).toMatchObject({
      workers: 'config file',
      threads: 'command line',
      bind: 'GUNICORN_CMD_ARGS'
    })
    rmSync(join(dir, 'gunicorn.conf.py'))
    const noFile = await readGunicornOptions(
      onThisMachine(),
      unitWith({ execStart: words('/v/bin/gunicorn wsgi:app'), environmentFiles: [] })
    )
    expect(noFile).toMatchObject({ workers: 1, envRead: true })
    expect(noFile.sources.workers).toBe('default')
    expect(noFile.configFile).toBeUndefined()
  })
})
