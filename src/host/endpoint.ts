// Where a connection goes (a unix socket, or a TCP host and port), and the loopback
// rules: which addresses mean "this host" or "every address", and whether a
// connection to one endpoint reaches a server listening on another. Gunicorn's binds
// (gunicorn/bind.ts) and Nginx's proxy_pass and listen (nginx/) use them alike.

/** Where a connection goes: a unix socket (by path) or a TCP host and port. */
export type Endpoint = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number }

/** `unix:/x.sock` or `host:port` (IPv6 in brackets). */
export function endpointText(e: Endpoint): string {
  if (e.kind === 'unix') return `unix:${e.path}`
  return `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '0:0:0:0:0:0:0:1'])
/** Every address: Gunicorn's `:8000`, `0.0.0.0`, `[::]`; Nginx's `*`. */
const WILDCARD = new Set(['', '*', '0.0.0.0', '::'])

/** This host's own address (a name or literal of the loopback). */
export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host)
}

/** Every address of the host. */
export function isWildcard(host: string): boolean {
  return WILDCARD.has(host)
}

export function isIpLiteral(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':')
}

/** A socket path as the kernel finds it: `//` and `/./` collapsed, /var/run is /run. */
export function socketPath(path: string): string {
  return path
    .replace(/\/+/g, '/')
    .replace(/\/(\.\/)+/g, '/')
    .replace(/^\/var\/run\//, '/run/')
}

/**
 * Whether a connection to `target` reaches a Gunicorn listening on `bind`: 'maybe' when it
 * depends on DNS or on which addresses the host has.
 */
export function reaches(target: Endpoint, bind: Endpoint): 'yes' | 'maybe' | 'no' {
  if (target.kind === 'unix' && bind.kind === 'unix')
    return socketPath(target.path) === socketPath(bind.path) ? 'yes' : 'no'
  if (target.kind === 'unix' || bind.kind === 'unix') return 'no'
  if (target.port !== bind.port) return 'no'
  const loopback = (h: string) => LOOPBACK.has(h) || WILDCARD.has(h)
  const named = (h: string) => !loopback(h) && !isIpLiteral(h)
  if (WILDCARD.has(bind.host)) return loopback(target.host) ? 'yes' : 'maybe'
  if (target.host === bind.host || (LOOPBACK.has(bind.host) && loopback(target.host))) return 'yes'
  return named(target.host) || named(bind.host) ? 'maybe' : 'no'
}
