// Log excerpts that explain a failure: the unit's journal since the deploy
// began and the tail of the Nginx error log.
import type { HostResult } from '../core/host-result.js'
import type { Log } from '../core/log.js'
import { tailLines } from '../transport/remote-command.js'
import { serviceCommands } from './service-commands.js'
import { toShell } from '../transport/shell-quote.js'
import type { RemoteHost } from '../transport/ssh-connection.js'

export async function collectEvidence(
  remote: RemoteHost,
  opts: { service: string; since: Date; nginxErrorLog: string }
): Promise<string> {
  const since = `@${Math.floor(opts.since.getTime() / 1000) - 1}`
  // The journal and the Nginx log are independent reads.
  const [journal, nginx] = await Promise.all([
    remote.exec(toShell(serviceCommands.journal(opts.service, since, 80)), { timeoutMs: 20_000 }),
    remote.exec(toShell(['tail', '-n', '20', opts.nginxErrorLog]), { timeoutMs: 20_000 })
  ])
  const part = (title: string, text: string, stderr: string) =>
    `--- ${title} ---\n${tailLines(text, 80) || `(nothing${stderr ? `: ${stderr.trim()}` : ''})`}`
  return [
    part(`journalctl -u ${opts.service} since the deploy began`, journal.stdout, journal.stderr),
    part(`tail ${opts.nginxErrorLog}`, nginx.stdout, nginx.stderr)
  ].join('\n')
}

/**
 * A deploy or rollback that verified but whose traffic probe saw failed requests was
 * not zero-downtime (e.g. the Gunicorn master died during the reload and was restarted):
 * say so in a warning with the log excerpt, rather than only in a number.
 */
export async function warnIfRequestsFailed(
  remote: RemoteHost,
  result: HostResult,
  log: Log,
  opts: { service: string; since: Date; nginxErrorLog: string; what: string }
): Promise<void> {
  if (!result.failedRequests) return
  result.excerpt = await collectEvidence(remote, opts).catch(() => undefined)
  log.warning(
    `the ${opts.what} was verified, but ${result.failedRequests} of ${result.probeRequests} traffic-probe requests failed during it: it was not zero-downtime this time${result.excerpt ? `\n\n${result.excerpt}` : ''}`
  )
}
