// Gunicorn's bind, read once, the way Gunicorn reads it (its parse_address): every
// reader (verification, the Nginx match, the blue-green instances, the host checks)
// takes the Bind this parses. Whether a connection reaches it follows the loopback
// rules of endpoint.ts; serverAddress says where the server itself requests it.
import { isIpLiteral, type Endpoint } from '../endpoint.js'

/**
 * One `--bind` (`-b`, `bind =`, GUNICORN_CMD_ARGS), as written (`text`) and as Gunicorn
 * takes it:
 * - `unix:PATH` or `unix://PATH`: a unix socket; PATH may be relative (to Gunicorn's
 *   directory), as `unix://run/a.sock` is;
 * - `fd://N`: a socket Gunicorn inherits as file descriptor N (systemd socket activation);
 * - otherwise TCP, `tcp://` optional: `HOST:PORT`, `[IPv6]:PORT`, `HOST` (port 8000),
 *   `:PORT` or nothing (every address); the host lowercased;
 * - `invalid`: what Gunicorn refuses to start with (a port that is not a number, ...).
 */
export type Bind =
  | { kind: 'unix'; path: string; text: string }
  | { kind: 'tcp'; host: string; port: number; text: string }
  | { kind: 'fd'; fd: number; text: string }
  | { kind: 'invalid'; text: string; reason: string }

/** Gunicorn's port when a bind names none. */
const DEFAULT_PORT = 8000

export function parseBind(text: string): Bind {
  const unix = /^unix:(?:\/\/)?/.exec(text)
  if (unix) {
    const path = text.slice(unix[0].length)
    return path ? { kind: 'unix', path, text } : { kind: 'invalid', text, reason: 'no socket path' }
  }
  if (text.startsWith('fd://')) {
    const fd = text.slice(5)
    return /^\d+$/.test(fd)
      ? { kind: 'fd', fd: Number(fd), text }
      : { kind: 'invalid', text, reason: `${fd} is not a file descriptor` }
  }
  const address = text.replace(/^tcp:\/\//, '')
  let host = address
  let port = String(DEFAULT_PORT)
  const v6 = /^\[([^\]]*)\](?::(.*))?$/.exec(address)
  if (v6) [host, port] = [v6[1], v6[2] ?? port]
  else if (address.includes(':')) [host, port] = address.split(':')
  else if (address === '') host = '0.0.0.0'
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535)
    return { kind: 'invalid', text, reason: `${port} is not a port` }
  return { kind: 'tcp', host: host.toLowerCase(), port: Number(port), text }
}

/** Where Gunicorn binds when nothing sets a bind. */
export const DEFAULT_BIND: Bind = parseBind(`127.0.0.1:${DEFAULT_PORT}`)

/** The absolute socket path of a unix bind (a relative one depends on Gunicorn's directory). */
export function socketOf(bind: Bind): string | undefined {
  return bind.kind === 'unix' && bind.path.startsWith('/') ? bind.path : undefined
}

/**
 * A bind as the endpoint a connection goes to; undefined when that is not known from the
 * bind alone: fd:// (the socket unit's), a relative socket path (Gunicorn's directory),
 * what Gunicorn refuses.
 */
export function bindEndpoint(bind: Bind): Endpoint | undefined {
  const socket = socketOf(bind)
  if (socket !== undefined) return { kind: 'unix', path: socket }
  if (bind.kind === 'tcp') return { kind: 'tcp', host: bind.host, port: bind.port }
  return undefined
}

/**
 * Where the server itself reaches a TCP bind: a wildcard on the loopback address of its
 * family, `localhost` and an IP literal as they are. Undefined for another name, which
 * may resolve to another machine.
 */
export function serverAddress(bind: Extract<Bind, { kind: 'tcp' }>): string | undefined {
  if (bind.host === '' || bind.host === '0.0.0.0') return '127.0.0.1'
  if (bind.host === '::') return '::1'
  return bind.host === 'localhost' || isIpLiteral(bind.host) ? bind.host : undefined
}
