import { describe, expect, it } from '@jest/globals'
import { parseGunicornCommand, parseUnitShow } from '../../src/unit-info.js'

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
