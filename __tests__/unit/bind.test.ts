// Gunicorn's bind, parsed once as Gunicorn parses it, and what each reader makes of
// it: the URL verification requests on the server, the socket of a blue-green
// instance, the endpoint Nginx must reach.
import { describe, expect, it } from '@jest/globals'
import {
  bindEndpoint,
  DEFAULT_BIND,
  parseBind,
  serverAddress
} from '../../src/host/gunicorn/bind.js'
import { parseGunicornCommand } from '../../src/host/gunicorn/unit-info.js'
import { bindTarget, verificationUrls } from '../../src/host/verification-urls.js'
import { parseHttpTarget, type HttpTarget } from '../../src/transport/http-target.js'

describe('parseBind', () => {
  it.each([
    ['unix:/run/myapp/myapp.sock', { kind: 'unix', path: '/run/myapp/myapp.sock' }],
    ['unix:///run/myapp/myapp.sock', { kind: 'unix', path: '/run/myapp/myapp.sock' }],
    ['unix://run/myapp.sock', { kind: 'unix', path: 'run/myapp.sock' }],
    ['unix:app.sock', { kind: 'unix', path: 'app.sock' }],
    ['127.0.0.1:8000', { kind: 'tcp', host: '127.0.0.1', port: 8000 }],
    ['tcp://127.0.0.1:9000', { kind: 'tcp', host: '127.0.0.1', port: 9000 }],
    ['[::1]:8000', { kind: 'tcp', host: '::1', port: 8000 }],
    ['[::]', { kind: 'tcp', host: '::', port: 8000 }],
    [':8000', { kind: 'tcp', host: '', port: 8000 }],
    ['0.0.0.0', { kind: 'tcp', host: '0.0.0.0', port: 8000 }],
    ['localhost', { kind: 'tcp', host: 'localhost', port: 8000 }],
    ['App.Internal:80', { kind: 'tcp', host: 'app.internal', port: 80 }],
    ['', { kind: 'tcp', host: '0.0.0.0', port: 8000 }],
    ['fd://3', { kind: 'fd', fd: 3 }]
  ])('%s', (text, bind) => {
    expect(parseBind(text)).toEqual({ ...bind, text })
  })

  it.each([
    ['localhost:http', 'http is not a port'],
    ['127.0.0.1:70000', '70000 is not a port'],
    ['fd://three', 'three is not a file descriptor'],
    ['unix:', 'no socket path']
  ])('%s is what Gunicorn refuses', (text, reason) => {
    expect(parseBind(text)).toEqual({ kind: 'invalid', text, reason })
  })

  it("is Gunicorn's default bind when none is given", () => {
    expect(DEFAULT_BIND).toEqual({
      kind: 'tcp',
      host: '127.0.0.1',
      port: 8000,
      text: '127.0.0.1:8000'
    })
  })
})

describe('the loopback rules', () => {
  const address = (text: string) => {
    const bind = parseBind(text)
    return bind.kind === 'tcp' ? serverAddress(bind) : 'not tcp'
  }

  it('requests a wildcard bind on the loopback of its family, a literal or localhost as it is', () => {
    expect(address(':8000')).toBe('127.0.0.1')
    expect(address('0.0.0.0:8000')).toBe('127.0.0.1')
    expect(address('[::]:8000')).toBe('::1')
    expect(address('[::1]:8000')).toBe('::1')
    expect(address('localhost:8000')).toBe('localhost')
    expect(address('10.0.0.5:8000')).toBe('10.0.0.5')
    expect(address('app.internal:8000')).toBeUndefined()
  })

  it('gives an endpoint only for what is known from the bind alone', () => {
    expect(bindEndpoint(parseBind('unix://run/a.sock'))).toBeUndefined()
    expect(bindEndpoint(parseBind('fd://3'))).toBeUndefined()
    expect(bindEndpoint(parseBind('unix:/run/a.sock'))).toEqual({
      kind: 'unix',
      path: '/run/a.sock'
    })
  })
})

describe('every reader takes the one Bind', () => {
  const text = (t: HttpTarget | undefined) =>
    t === undefined
      ? undefined
      : t.kind === 'unix'
        ? `unix ${t.socket}${t.path}`
        : `${t.host} ${t.port}${t.path}`

  it.each([
    ['unix:/run/a.sock', 'unix /run/a.sock/health'],
    // tcp:// and unix:// were accepted by the Nginx match but not by verification
    ['unix:///run/a.sock', 'unix /run/a.sock/health'],
    ['tcp://127.0.0.1:8000', '127.0.0.1 8000/health'],
    // a host without a port is Gunicorn's port 8000
    ['127.0.0.1', '127.0.0.1 8000/health'],
    [':9000', '127.0.0.1 9000/health'],
    ['[::]:9000', '::1 9000/health'],
    ['localhost:5000', 'localhost 5000/health'],
    ['app.internal:8000', undefined],
    ['unix:relative.sock', undefined],
    ['fd://3', undefined]
  ])('verification requests %s at %s', (bind, expected) => {
    expect(text(bindTarget(parseBind(bind), '/health'))).toBe(expected)
  })

  it('verifies on every bind the unit gives, in ExecStart order, beside health-url and Nginx', () => {
    const healthUrl = parseHttpTarget('http://unix:/run/myapp/myapp.sock:/health')!
    const nginxUrl = parseHttpTarget('http://127.0.0.1/health')!
    const g = parseGunicornCommand(
      '/v/bin/gunicorn -b unix:///run/myapp/myapp.sock -b tcp://127.0.0.1:8001 wsgi:app'.split(' ')
    )
    expect(verificationUrls({ healthUrl, nginxUrl }, g).map(text)).toEqual([
      'unix /run/myapp/myapp.sock/health',
      '127.0.0.1 8001/health',
      '127.0.0.1 80/health'
    ])
  })
})
