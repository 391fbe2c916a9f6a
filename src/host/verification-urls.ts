// The URLs that must prove a release: health-url, Gunicorn's own bind, and Nginx.
import { parseHttpTarget, withPath, type HttpTarget } from '../transport/http-target.js'
import { deriveNginxUrl, type UpstreamVerdict } from './nginx/nginx-config.js'
import type { GunicornCommand } from './gunicorn/unit-info.js'

/** The health path on one Gunicorn bind (`unix:/path`, `host:port`, `:port`), if it can be reached. */
export function bindTarget(bind: string, path: string): HttpTarget | undefined {
  const unix = /^unix:(\/.+)$/.exec(bind)
  if (unix) return withPath({ kind: 'unix', socket: unix[1], path, text: '' }, path)
  const tcp = /^(?:([0-9.]+|localhost|\[[0-9a-fA-F:]+\]))?:([0-9]{1,5})$/.exec(bind)
  if (!tcp) return undefined
  const host = !tcp[1] || tcp[1] === '0.0.0.0' ? '127.0.0.1' : tcp[1].replace(/^\[|\]$/g, '')
  return withPath(
    { kind: 'tcp', host: host === '::' ? '::1' : host, port: Number(tcp[2]), path, text: '' },
    path
  )
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
