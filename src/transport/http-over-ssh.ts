// The one module that owns HTTP. Requests are made with undici from the
// runner, over a channel the SSH server opens on its own side: so
// `http://127.0.0.1/health` means the server's loopback, and unix sockets
// (`http://unix:/run/myapp/myapp.sock:/health`) work without curl on the host.
// https targets get TLS on top of that channel, made here on the runner.
import type { Duplex } from 'node:stream'
import * as tls from 'node:tls'
import { Client } from 'undici'
import {
  connectAddress,
  hostHeader,
  parseHttpTarget,
  schemeOf,
  serverName,
  type HttpTarget,
  type TcpTarget
} from './http-target.js'
import type { ChannelTarget, RemoteHost } from './ssh-connection.js'

export interface HttpResponse {
  status: number
  headers: Record<string, string>
  body: string
  ms: number
  /** The https URL an http redirect led to, when it was followed. */
  redirectedTo?: string
}

export interface ServerCertificate {
  validFrom: Date
  validTo: Date
  /** e.g. `CN=app.example.com, O=Example` */
  subject: string
  issuer: string
  /** Whole days until validTo, rounded down; negative once expired. */
  daysLeft: number
}

/** Check mode warns about certificates that expire within this many days. */
export const CERTIFICATE_WARN_DAYS = 14

const MAX_BODY = 64 * 1024
const REDIRECTS = new Set([301, 302, 303, 307, 308])
const DAY_MS = 24 * 60 * 60 * 1000

function channelFor(target: HttpTarget): ChannelTarget {
  return target.kind === 'unix'
    ? { kind: 'unix', socket: target.socket }
    : { kind: 'tcp', ...connectAddress(target) }
}

/**
 * The streams one request opened. Closing it closes them, and any that open
 * later (a channel or a handshake the timeout cut short), so nothing is left
 * open on the SSH connection.
 */
class OpenedStreams {
  private readonly streams = new Set<Duplex>()
  private closed = false

  add<T extends Duplex>(stream: T): T {
    if (this.closed) stream.destroy()
    else this.streams.add(stream)
    return stream
  }

  closeAll(): void {
    this.closed = true
    for (const stream of this.streams) stream.destroy()
  }
}

/**
 * TLS over the channel. The certificate is NOT verified, on purpose: this hop
 * runs from the SSH server to its own Nginx (usually its loopback) inside the
 * authenticated SSH connection, so it never crosses a network the TLS would
 * protect; and a name served by a CDN or a load balancer often has, on the
 * origin, a certificate that would not verify. Expiry is reported separately
 * (readCertificate).
 */
function startTls(
  channel: Duplex,
  target: TcpTarget,
  opened: OpenedStreams
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = opened.add(
      tls.connect({
        socket: channel,
        servername: serverName(target) ?? '',
        rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1']
      })
    )
    const failed = (error: Error) => {
      socket.destroy()
      channel.destroy()
      reject(error)
    }
    const closed = () => failed(new Error('closed before the TLS handshake completed'))
    socket.once('error', failed)
    socket.once('close', closed)
    socket.once('secureConnect', () => {
      socket.off('error', failed)
      socket.off('close', closed)
      resolve(socket)
    })
  })
}

async function openStream(
  remote: RemoteHost,
  target: HttpTarget,
  opened: OpenedStreams
): Promise<Duplex> {
  const channel = opened.add(await remote.openChannel(channelFor(target)))
  return schemeOf(target) === 'https' ? startTls(channel, target as TcpTarget, opened) : channel
}

/**
 * One GET through the SSH connection; rejects on connection errors and timeouts.
 * The Host header (and, for https, the TLS server name) is the URL's host. A
 * redirect from http to https on the same host is followed once (within the
 * same timeout); any other redirect is the response.
 */
export async function httpGet(
  remote: RemoteHost,
  target: HttpTarget,
  timeoutMs = 5000
): Promise<HttpResponse> {
  const started = Date.now()
  const first = await getOnce(remote, target, timeoutMs)
  const next = httpsRedirect(target, first)
  if (!next) return { ...first, ms: Date.now() - started }
  const left = timeoutMs - (Date.now() - started)
  if (left <= 0) throw new Error(`no answer within ${timeoutMs} ms`)
  const second = await getOnce(remote, next, left)
  return { ...second, ms: Date.now() - started, redirectedTo: next.text }
}

/** The https target a response redirects to, when it is one this module follows. */
function httpsRedirect(target: HttpTarget, response: HttpResponse): HttpTarget | undefined {
  if (target.kind !== 'tcp' || schemeOf(target) !== 'http') return undefined
  if (!REDIRECTS.has(response.status) || !response.headers.location) return undefined
  const next = parseHttpTarget(response.headers.location)
  if (next?.kind !== 'tcp' || next.scheme !== 'https') return undefined
  if (next.host.toLowerCase() !== target.host.toLowerCase()) return undefined
  // Same host, so the same way to reach it: the loopback stays the loopback.
  return { ...next, connectHost: target.connectHost }
}

async function getOnce(
  remote: RemoteHost,
  target: HttpTarget,
  timeoutMs: number
): Promise<HttpResponse> {
  const started = Date.now()
  const opened = new OpenedStreams()
  // The origin only names the connection; the connector below decides where
  // it goes, and the Host header is set per request.
  const client = new Client('http://localhost', {
    connect: (_options, callback) => {
      openStream(remote, target, opened).then(
        stream => callback(null, stream as never),
        error => callback(error as Error, null)
      )
    },
    // undici's own parser timers can fire after the client is destroyed (a
    // crash with channel sockets); the one timer below bounds the request instead.
    headersTimeout: 0,
    bodyTimeout: 0,
    pipelining: 0
  })
  const timer = setTimeout(
    () => client.destroy(new Error(`no answer within ${timeoutMs} ms`)).catch(() => undefined),
    timeoutMs
  )
  try {
    const response = await client.request({
      method: 'GET',
      path: target.path,
      headers: {
        host: target.kind === 'tcp' ? hostHeader(target) : 'localhost',
        'user-agent': 'flask-zero-downtime-deploy',
        connection: 'close'
      },
      reset: true
    })
    let body = ''
    for await (const chunk of response.body) {
      if (body.length < MAX_BODY) body += (chunk as Buffer).toString('utf8')
    }
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(response.headers)) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value ?? '')
    }
    return {
      status: response.statusCode,
      headers,
      body: body.slice(0, MAX_BODY),
      ms: Date.now() - started
    }
  } finally {
    clearTimeout(timer)
    await client.destroy().catch(() => undefined)
    opened.closeAll()
  }
}

/** The certificate an https target presents (through the channel, not verified). */
export async function readCertificate(
  remote: RemoteHost,
  target: HttpTarget,
  timeoutMs = 5000,
  now: Date = new Date()
): Promise<ServerCertificate> {
  if (target.kind !== 'tcp' || schemeOf(target) !== 'https')
    throw new Error(`${target.text} is not an https URL`)
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no TLS handshake within ${timeoutMs} ms`)),
      timeoutMs
    )
  })
  const opened = new OpenedStreams()
  const handshake = openStream(remote, target, opened) as Promise<tls.TLSSocket>
  try {
    const peer = (await Promise.race([handshake, timeout])).getPeerCertificate()
    const validFrom = new Date(peer.valid_from)
    const validTo = new Date(peer.valid_to)
    if (!peer.subject || isNaN(validTo.getTime()) || isNaN(validFrom.getTime()))
      throw new Error(`${target.text} presented no readable certificate`)
    return {
      validFrom,
      validTo,
      subject: distinguishedName(peer.subject),
      issuer: distinguishedName(peer.issuer),
      daysLeft: Math.floor((validTo.getTime() - now.getTime()) / DAY_MS)
    }
  } finally {
    clearTimeout(timer)
    opened.closeAll()
    handshake.catch(() => undefined)
  }
}

/** A warning when the certificate expires within `days` (or has expired), else undefined. */
export function certificateWarning(
  cert: ServerCertificate,
  days = CERTIFICATE_WARN_DAYS
): string | undefined {
  const until = cert.validTo.toISOString()
  if (cert.daysLeft < 0) return `certificate ${cert.subject} expired on ${until}`
  if (cert.daysLeft < days)
    return `certificate ${cert.subject} expires in ${cert.daysLeft} day(s), on ${until}`
  return undefined
}

function distinguishedName(name: tls.Certificate | undefined): string {
  if (!name) return ''
  return Object.entries(name)
    .flatMap(([key, value]) =>
      (Array.isArray(value) ? value : [value]).map(v => `${key}=${String(v)}`)
    )
    .join(', ')
}
