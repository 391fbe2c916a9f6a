// The release log: one JSON line per deploy or rollback in release-path.
import { appendOutput, optional } from '../transport/shell-quote.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import { runStamp, type RunStamp } from '../core/run-stamp.js'

export interface ReleaseLogEntry extends RunStamp {
  id: string
  previous?: string
  host: string
  action: 'deploy' | 'rollback'
  outcome: 'deployed' | 'rolled-back' | 'failed'
}

/** A release the log shows serving successfully: deployed, or rolled back to. */
export function isGoodEntry(e: ReleaseLogEntry): boolean {
  return (
    (e.action === 'deploy' && e.outcome === 'deployed') ||
    (e.action === 'rollback' && e.outcome === 'rolled-back')
  )
}

/**
 * Releases whose newest entry in the log is a failure (deployed and undone, or never served):
 * what `mode: rollback` does not choose by itself (and pruning, predicting that choice).
 */
export function lastOutcomeFailed(log: ReleaseLogEntry[]): Set<string> {
  const newest = new Map<string, ReleaseLogEntry>()
  for (const e of log) newest.set(e.id, e)
  return new Set([...newest].filter(([, e]) => !isGoodEntry(e)).map(([id]) => id))
}

export async function appendReleaseLog(
  remote: RemoteHost,
  file: string,
  entry: ReleaseLogEntry
): Promise<boolean> {
  const result = await remote.exec(appendOutput(['printf', '%s\\n', JSON.stringify(entry)], file), {
    timeoutMs: 15_000
  })
  return result.code === 0
}

export async function readReleaseLog(remote: RemoteHost, file: string): Promise<ReleaseLogEntry[]> {
  const result = await remote.exec(optional(['cat', file]))
  const entries: ReleaseLogEntry[] = []
  for (const line of result.stdout.split('\n')) {
    try {
      if (line.trim()) entries.push(JSON.parse(line) as ReleaseLogEntry)
    } catch {
      /* a torn line is skipped */
    }
  }
  return entries
}

/** A release-log entry for this run on one host. */
export function logEntry(
  run: { sha: string; actor: string; runUrl: string },
  fields: Pick<ReleaseLogEntry, 'id' | 'previous' | 'host' | 'action' | 'outcome'>
): ReleaseLogEntry {
  return { ...fields, ...runStamp(run) }
}
