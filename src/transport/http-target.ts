// URLs requested on the server: http(s)://HOST[:PORT]/PATH over TCP, or
// http://unix:/SOCKET:/PATH (nginx's notation) over a unix socket.
//
// A TCP target is connected to from the server's side. Normally that is the
// host the URL names; a target made with `onServerLoopback` instead connects to
// the server's own 127.0.0.1 at the URL's port and still sends the URL's host as
// the Host header and the TLS server name. That is how nginx-url is requested:
// Nginx picks the virtual host (and its certificate) by those names, while the
// name itself may resolve to a load balancer or a CDN rather than this server.
import { isIP } from 'node:net'

export type Scheme = 'http' | 'https'

export interface TcpTarget {
  kind: 'tcp'
  /** Absent means http (targets built by hand, such as Gunicorn's bind). */
  scheme?: Scheme
  /** The URL's host, without IPv6 brackets: the Host header and the TLS server name. */
  host: string
  port: number
  /** Where the channel is opened when it is not `host` (see onServerLoopback). */
  connectHost?: string
  path: string
  /** The URL as given, for messages. */
  text: string
}

export interface UnixTarget {
  kind: 'unix'
  socket: string
  path: string
  text: string
}

export type HttpTarget = TcpTarget | UnixTarget

export const DEFAULT_PORTS: Readonly<Record<Scheme, number>> = { http: 80, https: 443 }

export const HTTP_TARGET_RULE =
  'must be http://HOST[:PORT]/PATH, https://HOST[:PORT]/PATH (HOST a DNS name, an IPv4 address or [IPv6]) or http://unix:/SOCKET:/PATH'

const PATH_RE = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$/
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
const HOSTNAME_RE = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`)

export function parseHttpTarget(text: string): HttpTarget | undefined {
  const unix = /^http:\/\/unix:(\/[A-Za-z0-9._@+/-]+):(\/.*)$/.exec(text)
  if (unix) {
    if (!PATH_RE.test(unix[2])) return undefined
    return { kind: 'unix', socket: unix[1], path: unix[2], text }
  }
  const tcp = /^(https?):\/\/([^/:[\]]+|\[[^\]]*\])(?::([0-9]{1,5}))?(\/.*)?$/.exec(text)
  if (!tcp) return undefined
  const scheme = tcp[1] as Scheme
  const host = parseHost(tcp[2])
  if (host === undefined) return undefined
  const port = tcp[3] === undefined ? DEFAULT_PORTS[scheme] : Number(tcp[3])
  if (port < 1 || port > 65535) return undefined
  const path = tcp[4] ?? '/'
  if (!PATH_RE.test(path)) return undefined
  return { kind: 'tcp', scheme, host, port, path, text }
}

/** A DNS name, an IPv4 address, or an IPv6 address in brackets (returned without them). */
function parseHost(text: string): string | undefined {
  if (text.startsWith('[')) {
    const inner = text.slice(1, -1)
    return isIP(inner) === 6 ? inner : undefined
  }
  if (/^[0-9.]+$/.test(text)) return isIP(text) === 4 ? text : undefined
  return HOSTNAME_RE.test(text) ? text : undefined
}

export function schemeOf(target: HttpTarget): Scheme {
  return target.kind === 'tcp' ? (target.scheme ?? 'http') : 'http'
}

/**
 * The same URL, requested at the server's loopback (127.0.0.1, the URL's port)
 * with the URL's host as Host header and TLS server name. A URL naming an IP
 * address already says where to connect, and a unix socket is local: both are
 * returned unchanged.
 */
export function onServerLoopback(target: HttpTarget): HttpTarget {
  if (target.kind !== 'tcp' || isIP(target.host) !== 0) return target
  return { ...target, connectHost: '127.0.0.1' }
}

/** Where the channel is opened from the server's side. */
export function connectAddress(target: TcpTarget): { host: string; port: number } {
  return { host: target.connectHost ?? target.host, port: target.port }
}

/** The Host header: the URL's host, with the port unless it is the scheme's default. */
export function hostHeader(target: TcpTarget): string {
  const host = bracketed(target.host)
  return target.port === DEFAULT_PORTS[schemeOf(target)] ? host : `${host}:${target.port}`
}

/** The TLS server name (SNI): the URL's host, unless it is an IP address (SNI carries names only). */
export function serverName(target: TcpTarget): string | undefined {
  return isIP(target.host) === 0 ? target.host : undefined
}

/** The same path on another endpoint, e.g. Gunicorn's bind taken from the unit. */
export function withPath(target: HttpTarget, path: string): HttpTarget {
  const base =
    target.kind === 'unix'
      ? `http://unix:${target.socket}:`
      : `${schemeOf(target)}://${bracketed(target.host)}:${target.port}`
  return { ...target, path, text: base + path }
}

function bracketed(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
