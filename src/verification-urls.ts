// The URLs that must prove a release: health-url, Gunicorn's own bind, and Nginx.
import { withPath, type HttpTarget } from './http-target.js'
import type { Settings } from './settings.js'
import type { GunicornCommand } from './unit-info.js'

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

export function verificationUrls(
  settings: Pick<Settings, 'healthUrl' | 'nginxUrl'>,
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
