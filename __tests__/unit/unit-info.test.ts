import { describe, expect, it } from '@jest/globals'
import {
  configFileOf,
  parseGunicornCommand,
  parseUnitShow,
  withConfigFile
} from '../../src/unit-info.js'

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
      environmentFiles: ['/etc/myapp.env'],
      user: 'www-data'
    })
    expect(unit.execReload).toEqual(['/bin/kill', '-HUP', '$MAINPID'])
    expect(unit.execStart[0]).toBe('/srv/myapp/.venv/bin/gunicorn')
  })
})

describe('parseGunicornCommand', () => {
  it('finds workers, chdir, bind and the app of a console-script launch', () => {
    const g = parseGunicornCommand(parseUnitShow(SHOW).execStart)
    expect(g).toEqual({
      launcher: { kind: 'script', path: '/srv/myapp/.venv/bin/gunicorn' },
      workers: 3,
      chdir: '/srv/myapp/current',
      binds: ['unix:/run/myapp/myapp.sock'],
      preload: false,
      app: 'wsgi:app'
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
      binds: ['127.0.0.1:8000'],
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
      binds: ['unix:/run/myapp/myapp.sock', '127.0.0.1:8000'],
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
