// Log excerpts that explain a failure: the unit's journal since the deploy
// began and the tail of the Nginx error log.
import { tailLines } from '../transport/remote-command.js'
import { serviceCommands } from './service-commands.js'
import { toShell } from '../transport/shell-quote.js'
import type { ExecResult, RemoteHost } from '../transport/ssh-connection.js'

/** The unit's journal since `since` (a second before it), its last `lines` lines. */
export function readJournal(
  remote: RemoteHost,
  service: string,
  since: Date,
  lines: number
): Promise<ExecResult> {
  const from = `@${Math.floor(since.getTime() / 1000) - 1}`
  return remote.exec(toShell(serviceCommands.journal(service, from, lines)), { timeoutMs: 20_000 })
}

/**
 * The journal's position now, to read later only what the unit logged after it; undefined
 * when the deploy user cannot read the journal (or it holds nothing of the unit).
 */
export async function journalCursor(
  remote: RemoteHost,
  service: string
): Promise<string | undefined> {
  const shown = await remote
    .exec(toShell(serviceCommands.journalCursor(service)), { timeoutMs: 10_000 })
    .catch(() => undefined)
  return shown && /^-- cursor: (\S+)$/m.exec(shown.stdout)?.[1]
}

/** The unit's journal after `cursor` (from journalCursor), its last `lines` lines. */
export function readJournalAfter(
  remote: RemoteHost,
  service: string,
  cursor: string,
  lines: number
): Promise<ExecResult> {
  return remote.exec(toShell(serviceCommands.journalAfter(service, cursor, lines)), {
    timeoutMs: 10_000
  })
}

export async function collectEvidence(
  remote: RemoteHost,
  opts: { service: string; since: Date; nginxErrorLog: string }
): Promise<string> {
  // The journal and the Nginx log are independent reads.
  const [journal, nginx] = await Promise.all([
    readJournal(remote, opts.service, opts.since, 80),
    remote.exec(toShell(['tail', '-n', '20', opts.nginxErrorLog]), { timeoutMs: 20_000 })
  ])
  const part = (title: string, text: string, stderr: string) =>
    `--- ${title} ---\n${tailLines(text, 80) || `(nothing${stderr ? `: ${stderr.trim()}` : ''})`}`
  return [
    part(`journalctl -u ${opts.service} since the deploy began`, journal.stdout, journal.stderr),
    part(`tail ${opts.nginxErrorLog}`, nginx.stdout, nginx.stderr)
  ].join('\n')
}
