// What an Nginx configuration proxies to, and whether that is Gunicorn. The
// syntax (and include resolution) is in nginx-syntax.ts; this module reads the
// resulting directives the way Nginx's http module does: server blocks with
// their names, listens, TLS and locations; proxy_pass to addresses, sockets
// and named upstreams. Pure logic: a caller reads the files (nginx-read.ts).
import {
  resolveIncludes,
  type Directive,
  type NginxSources,
  type NginxTree
} from './nginx-syntax.js'

export { splitNginxDump } from './nginx-syntax.js'
export type { NginxSources } from './nginx-syntax.js'

import { DEFAULT_BIND, bindEndpoint, type Bind } from '../gunicorn/bind.js'
import { endpointText, isLoopback, isWildcard, reaches, type Endpoint } from '../endpoint.js'

export interface UpstreamServer {
  endpoint: Endpoint
  /** weight=, max_fails=, fail_timeout=, backup, down...: value, or true for a flag. */
  params: Record<string, string | true>
}

export interface Upstream {
  name: string
  servers: UpstreamServer[]
  keepalive?: number
  file: string
  line: number
}

export interface ProxyPass {
  /** The argument as written. */
  url: string
  scheme?: 'http' | 'https'
  /** The upstream block it names, if any. */
  upstream?: string
  endpoints: Endpoint[]
  /** Why the endpoints are not known statically (variables, an upstream with a port...). */
  unresolved?: string
  /** The enclosing location's path, '' at server level. */
  location: string
  file: string
  line: number
}

export interface Listen {
  /** undefined when it listens on every address (`listen 80`, `*:80`, `[::]:80`). */
  address?: string
  port: number
  /** Set for `listen unix:/path`. */
  socket?: string
  ssl: boolean
  defaultServer: boolean
  /** No listen directive: Nginx listens on *:80. */
  implicit: boolean
}

export interface Location {
  modifier: '' | '=' | '^~' | '~' | '~*' | '@'
  path: string
  /** The files it serves from: its own alias or root, or the root it inherits. */
  files?: { kind: 'alias' | 'root'; path: string }
  proxies: boolean
  file: string
  line: number
}

export interface ServerBlock {
  file: string
  line: number
  names: string[]
  listens: Listen[]
  /** Any listen has `ssl`, or `ssl on`. */
  tls: boolean
  certificates: string[]
  /** A plain-http `return 30x https://...` (or rewrite) answering every request. */
  redirectsToHttps?: { status: number; target: string }
  /** Other server blocks (file:line) that redirect plain http to this one over https. */
  redirectedFrom: string[]
  proxies: ProxyPass[]
  locations: Location[]
}

export interface NginxConfig extends NginxTree {
  upstreams: Map<string, Upstream>
  servers: ServerBlock[]
  /** proxy_pass directives of the stream module (TCP proxying), not analysed further. */
  streamProxies: number
  /** Everything read, every include resolved, no syntax error. */
  complete: boolean
  /** Why it is not complete, one line each. */
  problems: string[]
}

export type UpstreamVerdict =
  | {
      kind: 'match'
      servers: ServerBlock[]
      proxies: ProxyPass[]
      /** Upstream blocks on the way that keep connections open (`keepalive N`): name and N. */
      keepalive: { upstream: string; connections: number }[]
    }
  | { kind: 'mismatch'; proxiedTo: string[]; binds: string[] }
  | { kind: 'unknown'; reason: string }

/** Splits `host:port`, `[v6]:port`, `[v6]` or `host` (port `defaultPort`). */
function hostPort(text: string, defaultPort: number): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]*)\]|([^:[\]]*))(?::([0-9]{1,5}))?$/.exec(text)
  if (!m) return undefined
  const port = m[3] === undefined ? defaultPort : Number(m[3])
  if (port < 1 || port > 65535) return undefined
  return { host: (m[1] ?? m[2]).toLowerCase(), port }
}

const URI_VARIABLES = /^\$(request_uri|uri|document_uri|is_args|args)\b/

/** Parses a proxy_pass URL (http[s]://host[:port][/uri], http://unix:/path[:/uri]). */
function parseProxyTarget(
  url: string
): { scheme: 'http' | 'https'; host?: string; port?: number; socket?: string } | string {
  const scheme = /^(https?):\/\//i.exec(url)
  if (!scheme) return url.includes('$') ? 'variables in proxy_pass' : 'not an http(s) URL'
  const rest = url.slice(scheme[0].length)
  const kind = scheme[1].toLowerCase() as 'http' | 'https'
  if (/^unix:/i.test(rest)) {
    const path = rest.slice(5).split(':')[0]
    return path.includes('$') || !path.startsWith('/')
      ? 'variables in proxy_pass'
      : {
          scheme: kind,
          socket: path
        }
  }
  const cut = rest.search(/[/$]/)
  if (cut >= 0 && rest[cut] === '$' && !URI_VARIABLES.test(rest.slice(cut)))
    return 'variables in proxy_pass'
  const authority = cut >= 0 ? rest.slice(0, cut) : rest
  const explicitPort = /:[0-9]+$/.test(authority)
  const hp = hostPort(authority, kind === 'https' ? 443 : 80)
  if (!hp || hp.host === '') return `cannot read the address in ${url}`
  return { scheme: kind, host: hp.host, port: explicitPort ? hp.port : undefined }
}

/** A proxy_pass resolved against the upstream blocks. */
function resolveProxy(d: Directive, location: string, upstreams: Map<string, Upstream>): ProxyPass {
  const url = d.args[0] ?? ''
  const base: ProxyPass = { url, endpoints: [], location, file: d.file, line: d.line }
  const target = parseProxyTarget(url)
  if (typeof target === 'string') return { ...base, unresolved: target }
  if (target.socket)
    return { ...base, scheme: target.scheme, endpoints: [unixEndpoint(target.socket)] }
  const host = target.host ?? ''
  const upstream = upstreams.get(host)
  const withScheme = { ...base, scheme: target.scheme }
  if (!upstream) {
    const port = target.port ?? (target.scheme === 'https' ? 443 : 80)
    return { ...withScheme, endpoints: [{ kind: 'tcp', host, port }] }
  }
  if (target.port !== undefined)
    return { ...withScheme, upstream: host, unresolved: `upstream "${host}" may not have a port` }
  if (upstream.servers.length === 0)
    return { ...withScheme, upstream: host, unresolved: `no servers inside upstream "${host}"` }
  return { ...withScheme, upstream: host, endpoints: upstream.servers.map(s => s.endpoint) }
}

function unixEndpoint(path: string): Endpoint {
  return { kind: 'unix', path }
}

/** `server ADDRESS [params]` inside an upstream block. */
function upstreamServer(d: Directive): UpstreamServer | undefined {
  const [address, ...rest] = d.args
  if (address === undefined) return undefined
  const params: Record<string, string | true> = {}
  for (const p of rest) {
    const eq = p.indexOf('=')
    if (eq > 0) params[p.slice(0, eq)] = p.slice(eq + 1)
    else params[p] = true
  }
  if (/^unix:/i.test(address)) return { endpoint: unixEndpoint(address.slice(5)), params }
  const hp = hostPort(address, 80)
  return hp && { endpoint: { kind: 'tcp', ...hp }, params }
}

function readUpstream(d: Directive): Upstream {
  const upstream: Upstream = { name: d.args[0] ?? '', servers: [], file: d.file, line: d.line }
  for (const child of d.block ?? []) {
    if (child.name === 'server') {
      const server = upstreamServer(child)
      if (server) upstream.servers.push(server)
    } else if (child.name === 'keepalive') upstream.keepalive = Number(child.args[0])
  }
  return upstream
}

/** `listen` arguments: address[:port] | port | unix:path, then flags. */
export function parseListen(args: string[]): Listen | undefined {
  const [address, ...flags] = args
  if (address === undefined) return undefined
  const listen = {
    ssl: flags.includes('ssl'),
    defaultServer: flags.includes('default_server') || flags.includes('default'),
    implicit: false
  }
  if (/^unix:/i.test(address)) return { ...listen, port: 0, socket: address.slice(5) }
  if (/^[0-9]+$/.test(address)) return { ...listen, port: Number(address) }
  const hp = hostPort(address.replace(/^\*:/, ':'), 80)
  if (!hp) return undefined
  return { ...listen, port: hp.port, address: isWildcard(hp.host) ? undefined : hp.host }
}

const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308])

/** `return 30x https://...`, `return https://...` or `rewrite ^ https://... permanent`. */
function httpsRedirect(d: Directive): ServerBlock['redirectsToHttps'] {
  if (d.name === 'return') {
    const [first, second] = d.args
    if (second !== undefined && REDIRECT_STATUS.has(Number(first)) && /^https:\/\//i.test(second))
      return { status: Number(first), target: second }
    if (second === undefined && /^https:\/\//i.test(first ?? ''))
      return { status: 302, target: first }
  }
  if (d.name === 'rewrite' && /^https:\/\//i.test(d.args[1] ?? ''))
    return { status: d.args[2] === 'permanent' ? 301 : 302, target: d.args[1] }
  return undefined
}

/** `location [=|^~|~|~*] path` or `location @name`, modifier possibly glued to the path. */
function locationOf(args: string[]): Pick<Location, 'modifier' | 'path'> {
  if (args.length >= 2) return { modifier: args[0] as Location['modifier'], path: args[1] }
  const glued = /^(=|\^~|~\*|~|@)?(.*)$/s.exec(args[0] ?? '')
  const modifier = (glued?.[1] ?? '') as Location['modifier']
  return { modifier, path: modifier === '@' ? (args[0] ?? '') : (glued?.[2] ?? '') }
}

/** The alias or root a block sets for itself. */
function ownFiles(block: Directive[]): Location['files'] {
  const d = block.find(c => c.name === 'alias' || c.name === 'root')
  return d?.args[0] === undefined
    ? undefined
    : { kind: d.name as 'alias' | 'root', path: d.args[0] }
}

/** Directives of a block and of its `if` and `limit_except` blocks, not of nested locations. */
function ownDirectives(block: Directive[]): Directive[] {
  return block.flatMap(d =>
    d.name === 'if' || d.name === 'limit_except' ? [d, ...ownDirectives(d.block ?? [])] : [d]
  )
}

interface Scope {
  location: string
  files?: Location['files']
}

/** proxy_pass and location blocks of a server, locations nested in locations included. */
function walkLocations(
  block: Directive[],
  scope: Scope,
  server: ServerBlock,
  upstreams: Map<string, Upstream>
): void {
  for (const d of ownDirectives(block)) {
    if (d.name === 'proxy_pass') server.proxies.push(resolveProxy(d, scope.location, upstreams))
    if (d.name !== 'location' || !d.block) continue
    const where = locationOf(d.args)
    const files = ownFiles(d.block) ?? scope.files
    const proxies = ownDirectives(d.block).some(c => c.name === 'proxy_pass')
    server.locations.push({ ...where, files, proxies, file: d.file, line: d.line })
    walkLocations(d.block, { location: where.path, files }, server, upstreams)
  }
}

/** What the http block sets for every server. */
interface HttpDefaults {
  root?: Location['files']
  certificates: string[]
  sslOn: boolean
}

function readServer(
  d: Directive,
  http: HttpDefaults,
  upstreams: Map<string, Upstream>
): ServerBlock {
  const block = d.block ?? []
  const args = (name: string) => block.filter(c => c.name === name).map(c => c.args)
  const sslOn = block.some(c => c.name === 'ssl' && c.args[0] === 'on') || http.sslOn
  const listens = args('listen')
    .map(parseListen)
    .filter(l => l !== undefined)
    .map(l => (sslOn ? { ...l, ssl: true } : l))
  if (listens.length === 0)
    listens.push({ port: 80, ssl: sslOn, defaultServer: false, implicit: true })
  const certificates = args('ssl_certificate').map(a => a[0] ?? '')
  const server: ServerBlock = {
    file: d.file,
    line: d.line,
    names: args('server_name').flat(),
    listens,
    tls: listens.some(l => l.ssl),
    certificates: certificates.length > 0 ? certificates : http.certificates,
    redirectedFrom: [],
    proxies: [],
    locations: []
  }
  const slash = block.find(c => c.name === 'location' && locationOf(c.args).path === '/')
  const answering = [...ownDirectives(block), ...ownDirectives(slash?.block ?? [])]
  const redirect = answering.map(httpsRedirect).find(r => r !== undefined)
  if (redirect && listens.some(l => !l.ssl)) server.redirectsToHttps = redirect
  walkLocations(block, { location: '', files: ownFiles(block) ?? http.root }, server, upstreams)
  return server
}

/** Marks TLS servers that a plain-http server with the same name redirects to. */
function linkRedirects(servers: ServerBlock[]): void {
  for (const from of servers) {
    if (!from.redirectsToHttps) continue
    const host = /^https:\/\/([^/:$]*)/i.exec(from.redirectsToHttps.target)?.[1] ?? ''
    const names = host === '' ? from.names : [host.toLowerCase()]
    for (const to of servers) {
      if (to === from || !to.tls) continue
      if (to.names.some(n => names.includes(n.toLowerCase())))
        to.redirectedFrom.push(`${from.file}:${from.line}`)
    }
  }
}

function childrenNamed(directives: Directive[], name: string): Directive[] {
  return directives.filter(d => d.name === name && d.block).flatMap(d => d.block ?? [])
}

function problemsOf(tree: NginxTree): string[] {
  return [
    ...tree.errors.map(e => `${e.file}:${e.line}: ${e.message}`),
    ...tree.unresolvedIncludes.map(p => `include ${p} was not read`),
    ...tree.unreadable.map(u => `could not read ${u}`)
  ]
}

/** Reads an Nginx configuration: includes expanded, upstreams and server blocks analysed. */
export function analyzeNginx(sources: NginxSources): NginxConfig {
  const tree = resolveIncludes(sources)
  const http = childrenNamed(tree.directives, 'http')
  const upstreams = new Map<string, Upstream>()
  for (const d of http.filter(d => d.name === 'upstream' && d.block))
    upstreams.set((d.args[0] ?? '').toLowerCase(), readUpstream(d))
  const defaults: HttpDefaults = {
    root: ownFiles(http.filter(d => d.name === 'root')),
    certificates: http.filter(d => d.name === 'ssl_certificate').map(d => d.args[0] ?? ''),
    sslOn: http.some(d => d.name === 'ssl' && d.args[0] === 'on')
  }
  const servers = http
    .filter(d => d.name === 'server' && d.block)
    .map(d => readServer(d, defaults, upstreams))
  linkRedirects(servers)
  const streamProxies = ownDirectivesDeep(childrenNamed(tree.directives, 'stream')).filter(
    d => d.name === 'proxy_pass'
  ).length
  const problems = problemsOf(tree)
  return { ...tree, upstreams, servers, streamProxies, complete: problems.length === 0, problems }
}

function ownDirectivesDeep(directives: Directive[]): Directive[] {
  return directives.flatMap(d => [d, ...ownDirectivesDeep(d.block ?? [])])
}

/** Why no verdict can be given, or undefined when the configuration says for certain. */
function whyUnknown(config: NginxConfig, proxies: ProxyPass[], binds: Bind[]): string | undefined {
  if (!config.complete) {
    const more = config.problems.length > 1 ? ` (and ${config.problems.length - 1} more)` : ''
    return `the Nginx configuration was not read completely: ${config.problems[0]}${more}`
  }
  const odd = binds.find(b => bindEndpoint(b) === undefined)
  if (odd !== undefined) return `Gunicorn's bind ${odd.text} cannot be compared with proxy_pass`
  if (proxies.length === 0) return 'no proxy_pass in any http server block'
  if (config.streamProxies > 0) return 'the stream module proxies too, which is not analysed'
  const unresolved = proxies.find(p => p.unresolved !== undefined)
  if (unresolved)
    return `proxy_pass ${unresolved.url} (${unresolved.file}:${unresolved.line}): ${unresolved.unresolved}`
  for (const p of proxies)
    for (const e of p.endpoints)
      for (const b of binds) {
        const bind = bindEndpoint(b)
        if (bind && reaches(e, bind) === 'maybe')
          return `whether ${endpointText(e)} reaches Gunicorn's ${b.text} depends on DNS or the host's addresses`
      }
  return undefined
}

/**
 * Whether Nginx proxies to Gunicorn. `gunicornBinds` empty means Gunicorn's default bind.
 * 'mismatch' only when everything was read and resolved and no proxy_pass reaches a bind.
 */
export function matchUpstream(config: NginxConfig, gunicornBinds: Bind[]): UpstreamVerdict {
  const binds = gunicornBinds.length > 0 ? gunicornBinds : [DEFAULT_BIND]
  const endpoints = binds.map(bindEndpoint).filter(e => e !== undefined)
  const proxies = config.servers.flatMap(s => s.proxies)
  const hits = proxies.filter(p =>
    p.endpoints.some(e => endpoints.some(b => reaches(e, b) === 'yes'))
  )
  if (hits.length > 0) {
    const servers = config.servers.filter(s => s.proxies.some(p => hits.includes(p)))
    const pooled = [...new Set(hits.flatMap(p => (p.upstream ? [p.upstream] : [])))].flatMap(
      name => {
        const connections = config.upstreams.get(name)?.keepalive
        return connections ? [{ upstream: name, connections }] : []
      }
    )
    return { kind: 'match', servers, proxies: hits, keepalive: pooled }
  }
  const reason = whyUnknown(config, proxies, binds)
  if (reason !== undefined) return { kind: 'unknown', reason }
  const proxiedTo = [...new Set(proxies.flatMap(p => p.endpoints.map(endpointText)))]
  return { kind: 'mismatch', proxiedTo, binds: binds.map(b => b.text) }
}

export interface NginxUrl {
  scheme: 'http' | 'https'
  /** The URL's host: the first concrete server_name, else 127.0.0.1. */
  host: string
  port: number
  path: string
  url: string
  /** Where to connect on the server: the listen address when it names one, else 127.0.0.1. */
  connect: { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; socket: string }
}

/** A server_name a client can send: not `_`, empty, a wildcard or a regex. */
function concreteName(name: string): boolean {
  return /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(
    name
  )
}

/** The URL that asks `server` for `healthPath`, as a client on the host would. */
export function deriveNginxUrl(server: ServerBlock, healthPath: string): NginxUrl {
  const https = server.tls || server.redirectedFrom.length > 0 || !!server.redirectsToHttps
  const scheme = https ? 'https' : 'http'
  const defaultPort = https ? 443 : 80
  const fitting = server.listens.filter(l => l.ssl === https)
  const local = (l: Listen) => l.address === undefined || isLoopback(l.address)
  const listen = fitting.find(local) ?? fitting[0]
  const port = listen && !listen.socket ? listen.port : defaultPort
  const host = server.names.find(concreteName) ?? '127.0.0.1'
  const path = healthPath.startsWith('/') ? healthPath : `/${healthPath}`
  const url = `${scheme}://${host}${port === defaultPort ? '' : `:${port}`}${path}`
  const address = !listen?.address || listen.address === 'localhost' ? '127.0.0.1' : listen.address
  const connect: NginxUrl['connect'] = listen?.socket
    ? { kind: 'unix', socket: listen.socket }
    : { kind: 'tcp', host: address, port }
  return { scheme, host, port, path, url, connect }
}

export interface StaticLocation {
  /** URL path prefix: URL `urlPrefix + rest` serves file `dir + rest`. */
  urlPrefix: string
  dir: string
  /** `dir` relative to the current release ('' when it is the release itself). */
  subdir: string
  /** An exact (`location =`) match: `dir` is the one file it serves. */
  exact: boolean
  server: ServerBlock
  location: Location
}

function cleanPath(path: string): string {
  return path.replace(/\/+/g, '/')
}

/** A location that serves files from inside `currentPath` (`<release-path>/current`). */
export function staticLocationFor(
  servers: ServerBlock | ServerBlock[],
  currentPath: string
): StaticLocation | undefined {
  const current = cleanPath(currentPath).replace(/(.)\/$/, '$1')
  const found: StaticLocation[] = []
  for (const server of Array.isArray(servers) ? servers : [servers])
    for (const location of server.locations) {
      const files = location.files
      if (location.proxies || !files || !['', '^~', '='].includes(location.modifier)) continue
      if (!files.path.startsWith('/') || files.path.includes('$')) continue
      const dir = cleanPath(files.kind === 'alias' ? files.path : `${files.path}/${location.path}`)
      if (dir !== current && !dir.startsWith(`${current}/`)) continue
      const subdir = dir.slice(current.length + 1)
      const exact = location.modifier === '='
      found.push({ urlPrefix: location.path, dir, subdir, exact, server, location })
    }
  return found.sort((a, b) => b.urlPrefix.length - a.urlPrefix.length)[0]
}
