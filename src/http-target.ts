// URLs requested on the server: http://HOST[:PORT]/PATH over TCP, or
// http://unix:/SOCKET:/PATH (nginx's notation) over a unix socket.

export type HttpTarget =
  | { kind: 'tcp'; host: string; port: number; path: string; text: string }
  | { kind: 'unix'; socket: string; path: string; text: string }

const PATH_RE = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$/

export function parseHttpTarget(text: string): HttpTarget | undefined {
  const unix = /^http:\/\/unix:(\/[A-Za-z0-9._@+/-]+):(\/.*)$/.exec(text)
  if (unix) {
    if (!PATH_RE.test(unix[2])) return undefined
    return { kind: 'unix', socket: unix[1], path: unix[2], text }
  }
  const tcp = /^http:\/\/([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?(\/.*)?$/.exec(text)
  if (!tcp) return undefined
  const port = tcp[2] === undefined ? 80 : Number(tcp[2])
  if (port < 1 || port > 65535) return undefined
  const path = tcp[3] ?? '/'
  if (!PATH_RE.test(path)) return undefined
  return { kind: 'tcp', host: tcp[1].replace(/^\[|\]$/g, ''), port, path, text }
}

/** The same path on another endpoint, e.g. Gunicorn's bind taken from the unit. */
export function withPath(target: HttpTarget, path: string): HttpTarget {
  const base =
    target.kind === 'unix'
      ? `http://unix:${target.socket}:`
      : `http://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`
  return { ...target, path, text: base + path }
}
