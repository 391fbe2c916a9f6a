// Parses `[user@]host[:port]` target entries (host may be `[ipv6]`).

export interface Target {
  user: string
  host: string
  port: number
  /** `user@host:port`, as shown in logs and the summary. */
  label: string
}

const USER_RE = /^[A-Za-z_][A-Za-z0-9._-]{0,31}$/
const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/
const IPV6_RE = /^[0-9A-Fa-f:.]+$/

export const TARGET_RULE =
  'each entry must be [user@]host[:port]: user of letters, digits, . _ - ; host a DNS name, an IPv4 address or [IPv6]; port 1-65535'

/** Splits a list given one per line or comma separated; blank entries are dropped. */
export function splitList(value: string): string[] {
  return value
    .split(/[\n,]/)
    .map(s => s.trim())
    .filter(s => s.length > 0)
}

export function parsePort(value: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(value)) return undefined
  const port = Number(value)
  return port >= 1 && port <= 65535 ? port : undefined
}

/** Returns the parsed target, or undefined when the entry breaks TARGET_RULE. */
export function parseTarget(
  entry: string,
  defaults: { user: string; port: number }
): Target | undefined {
  let rest = entry
  let user = defaults.user
  const at = rest.lastIndexOf('@')
  if (at >= 0) {
    user = rest.slice(0, at)
    rest = rest.slice(at + 1)
    if (!USER_RE.test(user)) return undefined
  }
  let host: string
  let portText: string | undefined
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']')
    if (close < 0) return undefined
    host = rest.slice(1, close)
    const after = rest.slice(close + 1)
    if (after !== '' && !after.startsWith(':')) return undefined
    portText = after === '' ? undefined : after.slice(1)
    if (!IPV6_RE.test(host) || !host.includes(':')) return undefined
  } else {
    const parts = rest.split(':')
    if (parts.length > 2) return undefined
    host = parts[0]
    portText = parts[1]
    if (!HOSTNAME_RE.test(host)) return undefined
  }
  let port = defaults.port
  if (portText !== undefined) {
    const parsed = parsePort(portText)
    if (parsed === undefined) return undefined
    port = parsed
  }
  const shownHost = host.includes(':') ? `[${host}]` : host
  return { user, host, port, label: `${user}@${shownHost}:${port}` }
}
