// Stale static files are a failure like stale code: when Nginx serves the
// release's static files itself (a location whose alias/root points into
// `current`), one of the new release's files is requested through Nginx after
// the switch and its hash compared with the file on disk.
import { createHash } from 'node:crypto'
import { httpGet } from '../transport/http-over-ssh.js'
import { withPath, type HttpTarget } from '../transport/http-target.js'
import type { Log } from '../core/log.js'
import type { StaticLocation } from './nginx/nginx-config.js'
import { optional } from '../transport/shell-quote.js'
import type { RemoteHost } from '../transport/ssh-connection.js'

/** Text files compare exactly through the HTTP client (bodies are read as UTF-8, up to 64 KiB). */
const TEXT_FILE = /\.(css|js|mjs|txt|svg|json|html|map|xml)$/i

/** The smallest text file under `dir` on the host, relative to it. */
async function sampleFile(remote: RemoteHost, dir: string): Promise<string | undefined> {
  const found = await remote.exec(
    optional(['find', dir, '-maxdepth', '3', '-type', 'f', '-size', '-60k', '-printf', '%s %P\\n'])
  )
  return found.stdout
    .split('\n')
    .map(l => /^(\d+) (.+)$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null && TEXT_FILE.test(m[2]))
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map(m => m[2])
    .find(p => /^[A-Za-z0-9._/-]+$/.test(p))
}

/**
 * Requests one static file of the new release through Nginx and compares hashes.
 * Returns what was checked, or throws when Nginx serves another file's content.
 */
export async function verifyStaticFile(
  remote: RemoteHost,
  opts: { nginx: HttpTarget; location: StaticLocation; releaseDir: string; log: Log }
): Promise<void> {
  const { location } = opts
  if (location.exact) return
  const dir = location.subdir ? `${opts.releaseDir}/${location.subdir}` : opts.releaseDir
  const file = await sampleFile(remote, dir)
  if (!file) {
    opts.log.info(`static files: no small text file under ${dir} to compare through Nginx`)
    return
  }
  const onDisk = await remote.exec(optional(['sha256sum', `${dir}/${file}`]))
  const expected = onDisk.stdout.split(' ')[0]
  const url = withPath(opts.nginx, `${location.urlPrefix.replace(/\/?$/, '/')}${file}`)
  const response = await httpGet(remote, url, 5000)
  const served = createHash('sha256').update(response.body, 'utf8').digest('hex')
  if (response.status !== 200 || served !== expected)
    throw new Error(
      `stale static files: Nginx answers ${url.text} with ${response.status === 200 ? 'other content than' : `HTTP ${response.status}, not`} the new release's ${dir}/${file} (location ${location.urlPrefix} -> ${location.dir}). Nginx serves static files from another place than the release current points at.`
    )
  opts.log.info(`static files: ${url.text} through Nginx matches the new release's ${file}`)
}
