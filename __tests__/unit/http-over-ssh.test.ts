// httpGet and readCertificate against real servers on 127.0.0.1 (an https
// server with a certificate made here, an http server that redirects to it, a
// unix socket server). The TCP and TLS are real; only SSH is left out: the
// channels come from ChannelRemote.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import * as http from 'node:http'
import * as https from 'node:https'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import {
  certificateWarning,
  httpGet,
  readCertificate,
  type ServerCertificate
} from '../../src/transport/http-over-ssh.js'
import {
  onServerLoopback,
  parseHttpTarget,
  type HttpTarget
} from '../../src/transport/http-target.js'
import { ChannelRemote } from '../../__fixtures__/channel-remote.js'

const VHOST = 'app.example.test'

let dir: string
let tlsServer: https.Server
let plainServer: http.Server
let unixServer: http.Server
let silentServer: Server
const silentSockets = new Set<Socket>()
let tlsPort: number
let plainPort: number
let silentPort: number
let socketPath: string

function url(text: string): HttpTarget {
  const target = parseHttpTarget(text)
  if (!target) throw new Error(`test URL ${text} does not parse`)
  return target
}

function listen(server: http.Server | Server, where: number | string = 0): Promise<number> {
  return new Promise(resolve => {
    const done = () => resolve((server.address() as AddressInfo | null)?.port ?? 0)
    if (typeof where === 'string') server.listen(where, done)
    else server.listen(where, '127.0.0.1', done)
  })
}

/** What a server saw of a request, sent back as the body. */
function echo(req: http.IncomingMessage, res: http.ServerResponse, status = 200): void {
  const sni = (req.socket as TLSSocket).servername
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ host: req.headers.host, sni: sni || null, path: req.url }))
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'http-over-ssh-'))
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '5',
      '-subj',
      `/CN=${VHOST}/O=Test Vhost`,
      '-addext',
      `subjectAltName=DNS:${VHOST}`,
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem')
    ],
    { stdio: 'pipe' }
  )
  // Like an Nginx server block for VHOST: 421 for any other Host or server name.
  tlsServer = https.createServer(
    { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
    (req, res) => {
      const sni = (req.socket as TLSSocket).servername
      const name = (req.headers.host ?? '').replace(/:[0-9]+$/, '')
      if (req.url?.startsWith('/any')) return echo(req, res)
      if (req.url === '/again') {
        res.writeHead(301, { location: `https://${VHOST}:${tlsPort}/health` })
        return res.end()
      }
      if (name !== VHOST || sni !== VHOST) return echo(req, res, 421)
      echo(req, res)
    }
  )
  tlsPort = await listen(tlsServer)
  plainServer = http.createServer((req, res) => {
    const to = (location: string, status = 301) => {
      res.writeHead(status, { location })
      res.end()
    }
    if (req.url === '/health') return to(`https://${VHOST}:${tlsPort}/health`)
    if (req.url === '/see-other') return to(`https://${VHOST}:${tlsPort}/health?from=303`, 303)
    if (req.url === '/elsewhere') return to(`https://other.example.test:${tlsPort}/health`, 302)
    if (req.url === '/plain-redirect') return to(`http://${VHOST}:${plainPort}/echo`, 302)
    if (req.url === '/twice') return to(`https://${VHOST}:${tlsPort}/again`, 308)
    echo(req, res)
  })
  plainPort = await listen(plainServer)
  socketPath = join(dir, 'app.sock')
  unixServer = http.createServer((req, res) => echo(req, res))
  await listen(unixServer, socketPath)
  // Accepts connections and never answers: a TLS handshake that never completes.
  silentServer = createServer(socket => {
    silentSockets.add(socket)
    socket.on('close', () => silentSockets.delete(socket))
  })
  silentPort = await listen(silentServer)
})

afterAll(async () => {
  for (const server of [tlsServer, plainServer, unixServer]) server.closeAllConnections()
  for (const socket of silentSockets) socket.destroy()
  await Promise.all(
    [tlsServer, plainServer, unixServer, silentServer].map(
      server => new Promise(resolve => server.close(resolve))
    )
  )
  rmSync(dir, { recursive: true, force: true })
})

describe('httpGet over a channel', () => {
  it('requests an https virtual host at the server loopback with its name as Host and SNI', async () => {
    const remote = new ChannelRemote()
    const target = onServerLoopback(url(`https://${VHOST}:${tlsPort}/health`))
    const response = await httpGet(remote, target, 5000)
    expect(response.status).toBe(200)
    expect(JSON.parse(response.body)).toEqual({
      host: `${VHOST}:${tlsPort}`,
      sni: VHOST,
      path: '/health'
    })
    expect(remote.opened).toEqual([{ kind: 'tcp', host: '127.0.0.1', port: tlsPort }])
  })

  it('sends no server name to an https URL that names an IP address', async () => {
    const remote = new ChannelRemote()
    const response = await httpGet(remote, url(`https://127.0.0.1:${tlsPort}/any`), 5000)
    expect(response.status).toBe(200)
    expect(JSON.parse(response.body)).toEqual({
      host: `127.0.0.1:${tlsPort}`,
      sni: null,
      path: '/any'
    })
  })

  it('gets the virtual host answer, not a 421, only when Host and SNI both name it', async () => {
    const remote = new ChannelRemote({ 'other.example.test': '127.0.0.1' })
    const other = onServerLoopback(url(`https://other.example.test:${tlsPort}/health`))
    expect((await httpGet(remote, other, 5000)).status).toBe(421)
  })

  it('connects a health-url host name from the server side, as the server resolves it', async () => {
    const remote = new ChannelRemote({ [VHOST]: '127.0.0.1' })
    const response = await httpGet(remote, url(`https://${VHOST}:${tlsPort}/health`), 5000)
    expect(response.status).toBe(200)
    expect(remote.opened).toEqual([{ kind: 'tcp', host: VHOST, port: tlsPort }])
    await expect(
      httpGet(new ChannelRemote(), url(`https://${VHOST}:${tlsPort}/health`), 5000)
    ).rejects.toThrow(`cannot resolve ${VHOST}`)
  })

  it('sends the URL host as the Host header over plain http', async () => {
    const remote = new ChannelRemote()
    const response = await httpGet(
      remote,
      onServerLoopback(url(`http://shop.example.test:${plainPort}/echo`)),
      5000
    )
    expect(JSON.parse(response.body)).toMatchObject({ host: `shop.example.test:${plainPort}` })
    expect(remote.opened).toEqual([{ kind: 'tcp', host: '127.0.0.1', port: plainPort }])
  })

  it('follows one redirect from http to https on the same host', async () => {
    const remote = new ChannelRemote()
    const target = onServerLoopback(url(`http://${VHOST}:${plainPort}/health`))
    const response = await httpGet(remote, target, 5000)
    expect(response.status).toBe(200)
    expect(response.redirectedTo).toBe(`https://${VHOST}:${tlsPort}/health`)
    expect(JSON.parse(response.body)).toEqual({
      host: `${VHOST}:${tlsPort}`,
      sni: VHOST,
      path: '/health'
    })
    expect(remote.opened).toEqual([
      { kind: 'tcp', host: '127.0.0.1', port: plainPort },
      { kind: 'tcp', host: '127.0.0.1', port: tlsPort }
    ])
    const seeOther = await httpGet(
      new ChannelRemote(),
      onServerLoopback(url(`http://${VHOST}:${plainPort}/see-other`)),
      5000
    )
    expect(JSON.parse(seeOther.body)).toMatchObject({ path: '/health?from=303' })
  })

  it('returns, without following, a redirect to another host, to http, or a second one', async () => {
    const remote = new ChannelRemote()
    const elsewhere = await httpGet(
      remote,
      onServerLoopback(url(`http://${VHOST}:${plainPort}/elsewhere`)),
      5000
    )
    expect(elsewhere.status).toBe(302)
    expect(elsewhere.headers.location).toBe(`https://other.example.test:${tlsPort}/health`)
    expect(elsewhere.redirectedTo).toBeUndefined()

    const plain = await httpGet(
      remote,
      onServerLoopback(url(`http://${VHOST}:${plainPort}/plain-redirect`)),
      5000
    )
    expect(plain.status).toBe(302)

    const twice = await httpGet(
      remote,
      onServerLoopback(url(`http://${VHOST}:${plainPort}/twice`)),
      5000
    )
    expect(twice.status).toBe(301)
    expect(twice.redirectedTo).toBe(`https://${VHOST}:${tlsPort}/again`)
    expect(remote.opened).toHaveLength(4)
  })

  it('keeps working over unix sockets', async () => {
    const response = await httpGet(
      new ChannelRemote(),
      url(`http://unix:${socketPath}:/health`),
      5000
    )
    expect(response.status).toBe(200)
    expect(JSON.parse(response.body)).toMatchObject({ host: 'localhost', path: '/health' })
  })

  it('gives up at the timeout when the TLS handshake never completes, and closes the channel', async () => {
    const remote = new ChannelRemote()
    const started = Date.now()
    await expect(
      httpGet(remote, onServerLoopback(url(`https://${VHOST}:${silentPort}/health`)), 300)
    ).rejects.toThrow('no answer within 300 ms')
    expect(Date.now() - started).toBeLessThan(2000)
    await waitFor(() => remote.openCount === 0)
  })

  it('leaves no channel open after a request, plain or TLS', async () => {
    const remote = new ChannelRemote()
    await httpGet(remote, onServerLoopback(url(`http://${VHOST}:${plainPort}/health`)), 5000)
    await httpGet(remote, url(`http://unix:${socketPath}:/health`), 5000)
    await waitFor(() => remote.openCount === 0)
  })
})

describe('readCertificate', () => {
  it('reads the virtual host certificate through the channel: about 5 days left', async () => {
    const remote = new ChannelRemote()
    const cert = await readCertificate(
      remote,
      onServerLoopback(url(`https://${VHOST}:${tlsPort}/health`)),
      5000
    )
    expect(cert.subject).toContain(`CN=${VHOST}`)
    expect(cert.subject).toContain('O=Test Vhost')
    expect(cert.issuer).toContain(`CN=${VHOST}`)
    expect(cert.daysLeft).toBe(4)
    const hoursLeft = (cert.validTo.getTime() - Date.now()) / 3600_000
    expect(hoursLeft).toBeGreaterThan(5 * 24 - 1)
    expect(hoursLeft).toBeLessThanOrEqual(5 * 24)
    expect(certificateWarning(cert)).toMatch(/expires in 4 day\(s\)/)
    await waitFor(() => remote.openCount === 0)
  })

  it('counts days from the time it is given', async () => {
    const target = onServerLoopback(url(`https://${VHOST}:${tlsPort}/`))
    const later = new Date(Date.now() + 6 * 24 * 3600_000)
    const cert = await readCertificate(new ChannelRemote(), target, 5000, later)
    expect(cert.daysLeft).toBe(-2)
    expect(certificateWarning(cert)).toContain('expired on')
  })

  it('refuses an http target and times out on a silent port', async () => {
    await expect(
      readCertificate(new ChannelRemote(), url(`http://${VHOST}:${plainPort}/`))
    ).rejects.toThrow('is not an https URL')
    const remote = new ChannelRemote()
    await expect(
      readCertificate(remote, url(`https://127.0.0.1:${silentPort}/`), 300)
    ).rejects.toThrow('no TLS handshake within 300 ms')
    await waitFor(() => remote.openCount === 0)
  })
})

describe('certificateWarning', () => {
  const cert = (daysLeft: number): ServerCertificate => ({
    validFrom: new Date('2026-01-01T00:00:00Z'),
    validTo: new Date('2026-06-01T00:00:00Z'),
    subject: `CN=${VHOST}`,
    issuer: 'CN=Test CA',
    daysLeft
  })

  it('warns within 14 days of expiry and not before', () => {
    expect(certificateWarning(cert(14))).toBeUndefined()
    expect(certificateWarning(cert(13))).toBe(
      `certificate CN=${VHOST} expires in 13 day(s), on 2026-06-01T00:00:00.000Z`
    )
    expect(certificateWarning(cert(30), 31)).toContain('expires in 30 day(s)')
  })
})

async function waitFor(condition: () => boolean, ms = 2000): Promise<void> {
  const until = Date.now() + ms
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}
