// The upstream Nginx proxies to, compared with the bind Gunicorn listens on.
import { optional } from './shell-quote.js'
import type { RemoteHost } from './ssh-connection.js'

/** Upstreams named in Nginx config text: proxy_pass targets and `server` lines of upstream blocks. */
export function nginxUpstreams(config: string): string[] {
  const found = new Set<string>()
  for (const m of config.matchAll(/^\s*proxy_pass\s+http:\/\/(unix:[^\s;:]+|[^\s;/]+)/gm))
    found.add(m[1])
  for (const m of config.matchAll(
    /^\s*server\s+(unix:[^\s;]+|[0-9.]+:[0-9]+|localhost:[0-9]+)\s*[^;]*;/gm
  ))
    found.add(m[1])
  return [...found]
}

/** Gunicorn bind spelled as Nginx spells upstreams (`unix:/x.sock`, `127.0.0.1:8000`). */
export function bindAsUpstream(bind: string): string {
  if (bind.startsWith('unix:')) return bind
  return bind
    .replace(/^0\.0\.0\.0:/, '127.0.0.1:')
    .replace(/^:/, '127.0.0.1:')
    .replace(/^localhost:/, '127.0.0.1:')
}

/** Upstreams of the enabled Nginx sites (sites-enabled/*, conf.d/*.conf), read without sudo. */
export async function readNginxUpstreams(remote: RemoteHost): Promise<string[]> {
  const sites = await remote.exec(
    optional(['sh', '-c', 'cat /etc/nginx/sites-enabled/* /etc/nginx/conf.d/*.conf'])
  )
  return nginxUpstreams(sites.stdout)
}
