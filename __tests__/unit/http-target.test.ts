import { describe, expect, it } from '@jest/globals'
import {
  connectAddress,
  hostHeader,
  onServerLoopback,
  parseHttpTarget,
  serverName,
  withPath,
  type HttpTarget,
  type TcpTarget
} from '../../src/transport/http-target.js'

function tcp(text: string): TcpTarget {
  const target = parseHttpTarget(text)
  if (target?.kind !== 'tcp') throw new Error(`${text} is not a TCP target`)
  return target
}

describe('parseHttpTarget', () => {
  it('reads https URLs with a DNS host name, defaulting to port 443', () => {
    expect(parseHttpTarget('https://app.example.com/health')).toEqual({
      kind: 'tcp',
      scheme: 'https',
      host: 'app.example.com',
      port: 443,
      path: '/health',
      text: 'https://app.example.com/health'
    })
  })

  it('reads http URLs with a host name and an explicit port', () => {
    expect(parseHttpTarget('http://shop.example.test:8080/health?deep=1')).toMatchObject({
      kind: 'tcp',
      scheme: 'http',
      host: 'shop.example.test',
      port: 8080,
      path: '/health?deep=1'
    })
    expect(tcp('http://127.0.0.1/health')).toMatchObject({ host: '127.0.0.1', port: 80 })
    expect(tcp('http://localhost:8000').path).toBe('/')
  })

  it('reads IPv6 addresses in brackets and drops the brackets', () => {
    expect(tcp('https://[::1]:8443/health')).toMatchObject({ host: '::1', port: 8443 })
    expect(tcp('http://[2001:db8::5]/')).toMatchObject({ host: '2001:db8::5', port: 80 })
  })

  it("keeps nginx's unix socket notation", () => {
    expect(parseHttpTarget('http://unix:/run/myapp/myapp.sock:/health')).toEqual({
      kind: 'unix',
      socket: '/run/myapp/myapp.sock',
      path: '/health',
      text: 'http://unix:/run/myapp/myapp.sock:/health'
    })
  })

  it.each([
    '',
    'app.example.com/health',
    'ftp://app.example.com/health',
    'HTTPS://app.example.com/health',
    'https://unix:/run/app.sock:/health',
    'https://app.example.com:0/health',
    'https://app.example.com:65536/health',
    'https://app.example.com:/health',
    'https://-app.example.com/health',
    'https://app..example.com/health',
    'https://app.example.com./health',
    'https://app_1.example.com/health',
    'https://user@app.example.com/health',
    'https://999.1.1.1/health',
    'https://1.2.3/health',
    'https://[::1/health',
    'https://[not-ipv6]/health',
    'https://::1/health',
    'https://app.example.com/he alth',
    'https://app.example.com/a`b`',
    'https://app.example.com/health#frag',
    `https://${'a'.repeat(64)}.example.com/`,
    'http://unix:relative.sock:/health'
  ])('rejects %j', text => {
    expect(parseHttpTarget(text)).toBeUndefined()
  })
})

describe('onServerLoopback', () => {
  it('connects a named virtual host at 127.0.0.1 on its port, keeping its name for Host and SNI', () => {
    const target = onServerLoopback(tcp('https://app.example.com/health')) as TcpTarget
    expect(connectAddress(target)).toEqual({ host: '127.0.0.1', port: 443 })
    expect(hostHeader(target)).toBe('app.example.com')
    expect(serverName(target)).toBe('app.example.com')
    expect(target.text).toBe('https://app.example.com/health')
  })

  it('leaves URLs naming an address, and unix sockets, where they point', () => {
    const v4 = onServerLoopback(tcp('http://10.0.0.5:8080/health')) as TcpTarget
    expect(connectAddress(v4)).toEqual({ host: '10.0.0.5', port: 8080 })
    const v6 = onServerLoopback(tcp('https://[::1]/health')) as TcpTarget
    expect(connectAddress(v6)).toEqual({ host: '::1', port: 443 })
    expect(serverName(v6)).toBeUndefined()
    const unix = parseHttpTarget('http://unix:/run/app.sock:/health') as HttpTarget
    expect(onServerLoopback(unix)).toEqual(unix)
  })

  it('is not applied to health-url style targets: they connect to the host they name', () => {
    expect(connectAddress(tcp('https://app.example.com:8443/health'))).toEqual({
      host: 'app.example.com',
      port: 8443
    })
  })
})

describe('hostHeader', () => {
  it("adds the port only when it is not the scheme's default", () => {
    expect(hostHeader(tcp('http://app.example.com/'))).toBe('app.example.com')
    expect(hostHeader(tcp('http://app.example.com:443/'))).toBe('app.example.com:443')
    expect(hostHeader(tcp('https://app.example.com:80/'))).toBe('app.example.com:80')
    expect(hostHeader(tcp('https://[::1]:8443/'))).toBe('[::1]:8443')
  })

  it('treats a hand-built target without a scheme as http', () => {
    const bind: TcpTarget = { kind: 'tcp', host: '127.0.0.1', port: 80, path: '/', text: '' }
    expect(hostHeader(bind)).toBe('127.0.0.1')
  })
})

describe('withPath', () => {
  it('keeps the scheme, the host and the loopback route', () => {
    const moved = withPath(onServerLoopback(tcp('https://app.example.com/health')), '/ready')
    expect(moved).toMatchObject({
      scheme: 'https',
      host: 'app.example.com',
      connectHost: '127.0.0.1',
      path: '/ready',
      text: 'https://app.example.com:443/ready'
    })
    expect(withPath(tcp('http://[::1]:8000/'), '/health').text).toBe('http://[::1]:8000/health')
    expect(
      withPath({ kind: 'unix', socket: '/run/a.sock', path: '/', text: '' }, '/health').text
    ).toBe('http://unix:/run/a.sock:/health')
  })
})
