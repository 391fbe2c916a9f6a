// The URLs that must prove a release: health-url, Gunicorn's own bind, and Nginx.
import { parseHttpTarget, withPath, type HttpTarget } from '../transport/http-target.js'
import { parseBind, serverAddress, socketOf, type Bind } from './gunicorn/bind.js'
import { deriveNginxUrl, type UpstreamVerdict } from './nginx/nginx-config.js'
import type { GunicornCommand } from './gunicorn/unit-info.js'

/**
 * The health path on one Gunicorn bind (a string is read with parseBind), when the server
 * can request it: a unix socket by its absolute path; TCP at serverAddress (a wildcard on
 * the loopback; not at a name other than localhost). Not fd:// (the socket's own address
 * is the unit's business).
 */
export function bindTarget(bind: Bind | string, path: string): HttpTarget | undefined {
  const b = typeof bind === 'string' ? parseBind(bind) : bind
  const socket = socketOf(b)
  if (socket) return withPath({ kind: 'unix', socket, path, text: '' }, path)
  if (b.kind !== 'tcp') return undefined
  const host = serverAddress(b)
  if (host === undefined) return undefined
  return withPath({ kind: 'tcp', host, port: b.port, path, text: '' }, path)
}

/** The URLs the settings give: health-url, and nginx-url (or its default). */
export interface GivenUrls {
  healthUrl: HttpTarget
  nginxUrl: HttpTarget
  /** false: nginx-url was empty and nginxUrl is the default. */
  nginxUrlGiven: boolean
}

export function verificationUrls(
  settings: Pick<GivenUrls, 'healthUrl' | 'nginxUrl'>,
  gunicorn: GunicornCommand
): HttpTarget[] {
  const urls: HttpTarget[] = [settings.healthUrl]
  for (const bind of gunicorn.binds) {
    const target = bindTarget(bind, settings.healthUrl.path)
    if (target) urls.push(target)
  }
  urls.push(settings.nginxUrl)
  const seen = new Set<string>()
  return urls.filter(u => !seen.has(u.text) && seen.add(u.text))
}

/**
 * The URL that proves the release through Nginx: `nginx-url` when given; else
 * derived from the server block that proxies to Gunicorn (its scheme, first
 * server_name and port, requested on the server's loopback or listen address);
 * else http://127.0.0.1<health path>.
 */
export function nginxTarget(settings: GivenUrls, nginx: UpstreamVerdict): HttpTarget {
  if (settings.nginxUrlGiven || nginx.kind !== 'match' || nginx.servers.length === 0)
    return settings.nginxUrl
  const derived = deriveNginxUrl(nginx.servers[0], settings.healthUrl.path)
  const target = parseHttpTarget(derived.url)
  if (!target || target.kind !== 'tcp' || derived.connect.kind !== 'tcp') return settings.nginxUrl
  return { ...target, connectHost: derived.connect.host }
}
