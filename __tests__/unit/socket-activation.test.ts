// Socket activation, as Gunicorn's deployment docs set it up: gunicorn.socket listens on
// /run/gunicorn.sock and systemd hands the socket to gunicorn.service (LISTEN_FDS), whose
// ExecStart has no --bind. Gunicorn serves on the sockets it is handed and ignores its
// own bind settings, so the socket Nginx must proxy to is the socket unit's; systemd, not
// Gunicorn, creates it (also directly in /run), and a reload keeps it.
import { describe, expect, it } from '@jest/globals'
import { healthyFacts } from '../../__fixtures__/host-facts.js'
import { recorder } from '../../__fixtures__/recording-log.js'
import { runChecks } from '../../src/host/host-checks.js'
import { kitHostRules } from '../../__fixtures__/scripted-kit-host.js'
import { ScriptedRemote } from '../../__fixtures__/scripted-remote.js'
import { preflight } from '../../src/host/preflight.js'
import { ReleaseLayout } from '../../src/host/release-layout.js'
import {
  parseGunicornCommand,
  parseSocketListens,
  parseUnitShow,
  socketUnits,
  withSocketActivation
} from '../../src/host/gunicorn/unit-info.js'
import { verificationUrls } from '../../src/host/verification-urls.js'
import { parseHttpTarget, type HttpTarget } from '../../src/transport/http-target.js'

const DOCS_EXEC_START = '/usr/bin/gunicorn --workers 3 --chdir /srv/myapp/current wsgi:app'
const DOCS_SERVER =
  'server {\n  listen 8000;\n  server_name 127.0.0.1;\n  location / { proxy_pass http://unix:/run/gunicorn.sock; }\n}'

describe('reading socket activation', () => {
  it('takes the .socket units among the units that trigger the service', () => {
    const unit = parseUnitShow('Id=gunicorn.service\nTriggeredBy=gunicorn.socket other.path\n')
    expect(unit.triggeredBy).toEqual(['gunicorn.socket', 'other.path'])
    expect(socketUnits(unit)).toEqual(['gunicorn.socket'])
    expect(socketUnits(parseUnitShow('Id=myapp.service\nTriggeredBy=\n'))).toEqual([])
  })

  it('reads the stream sockets a socket unit listens on as Gunicorn binds', () => {
    const shown = [
      'Listen=/run/gunicorn.sock (Stream)',
      'Listen=127.0.0.1:8000 (Stream)',
      'Listen=[::]:8001 (Stream)',
      'Listen=/run/log.sock (Datagram)',
      'Listen=@abstract (Stream)'
    ].join('\n')
    expect(parseSocketListens(shown)).toEqual([
      'unix:/run/gunicorn.sock',
      '127.0.0.1:8000',
      '[::]:8001'
    ])
  })

  it('replaces every bind setting: Gunicorn serves on the sockets it is handed', () => {
    const g = parseGunicornCommand(['/usr/bin/gunicorn', '--bind', 'unix:/tmp/x.sock', 'wsgi:app'])
    const activated = withSocketActivation(g, ['unix:/run/gunicorn.sock'])
    expect(activated.binds.map(b => b.text)).toEqual(['unix:/run/gunicorn.sock'])
    expect(activated.sources.bind).toBe('systemd socket')
    expect(withSocketActivation(g, [])).toBe(g)
  })
})

describe('the socket check', () => {
  const facts = (g: ReturnType<typeof parseGunicornCommand>) =>
    healthyFacts({ unit: { ...healthyFacts().unit, user: 'someuser' }, gunicorn: g })
  const socketErrors = (g: ReturnType<typeof parseGunicornCommand>) =>
    runChecks(facts(g), { releasePath: '/srv/myapp', requiredEnv: [] }).blocking.filter(
      f => f.check === 'socket'
    )

  it('does not blame a socket unit’s socket directly in /run: systemd creates it', () => {
    const docs = parseGunicornCommand(DOCS_EXEC_START.split(' '))
    expect(socketErrors(withSocketActivation(docs, ['unix:/run/gunicorn.sock']))).toEqual([])
  })

  it('still refuses a --bind directly in /run, which Gunicorn as someuser cannot create', () => {
    const own = parseGunicornCommand([
      ...DOCS_EXEC_START.split(' '),
      '--bind',
      'unix:/run/gunicorn.sock'
    ])
    expect(socketErrors(own).map(f => f.finding)).toEqual([
      expect.stringContaining('someuser cannot create a socket directly in root-owned /run')
    ])
  })
})

describe('preflight on the docs’ socket-activated gunicorn.service', () => {
  const run = () => {
    const remote = new ScriptedRemote(
      kitHostRules({
        service: 'gunicorn',
        unitUser: 'someuser',
        execStart: DOCS_EXEC_START,
        triggeredBy: 'gunicorn.socket',
        listen: ['/run/gunicorn.sock (Stream)'],
        nginxServer: DOCS_SERVER
      })
    )
    const log = recorder()
    return {
      remote,
      log,
      snap: preflight(remote, {
        service: 'gunicorn',
        layout: new ReleaseLayout('/srv/myapp'),
        requiredEnv: [],
        nginxErrorLog: '/var/log/nginx/error.log',
        minFreeBytes: 1024,
        strict: false,
        log
      })
    }
  }

  it('takes the socket unit’s path as the bind Nginx must proxy to, and goes on', async () => {
    const { remote, snap } = run()
    const s = await snap
    expect(s.gunicorn.binds.map(b => b.text)).toEqual(['unix:/run/gunicorn.sock'])
    expect(s.nginx.kind).toBe('match')
    expect(remote.commands).toContain(
      'systemctl show gunicorn.socket --no-pager --property=Listen 2>/dev/null || true'
    )
  })

  it('proves the release on the socket unit’s socket too', async () => {
    const s = await run().snap
    const health = parseHttpTarget('http://unix:/run/gunicorn.sock:/health') as HttpTarget
    const nginx = parseHttpTarget('http://127.0.0.1:8000/health') as HttpTarget
    const urls = verificationUrls({ healthUrl: health, nginxUrl: nginx }, s.gunicorn).map(
      u => u.text
    )
    expect(urls).toEqual(['http://unix:/run/gunicorn.sock:/health', 'http://127.0.0.1:8000/health'])
  })
})
