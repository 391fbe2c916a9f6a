// Which old releases to delete. Kept: the newest `keep` releases that are not
// known to have failed, the releases this run may leave current (the new one,
// the previous one), the directory the Gunicorn master started in, and, for
// each release that may be current afterwards, the release a rollback from it
// would choose. Failed releases (the release log shows them failing and never
// serving) never count towards `keep`: they go first.
import { isGoodEntry, lastOutcomeFailed, type ReleaseLogEntry } from './release-log.js'

/** How long deleting old releases may take (a large release on a slow disk). */
export const PRUNE_TIMEOUT_MS = 600_000

export interface PruneInput {
  /** Every release on the host, oldest first. */
  all: string[]
  keep: number
  /** The host's release log, oldest entry first. */
  log: ReleaseLogEntry[]
  /** Never deleted: the new release, current, the master's start directory, blue-green slots. */
  protect: (string | undefined)[]
  /** Releases that may be current when this run ends: what a rollback from each would choose stays. */
  mayBeCurrent: (string | undefined)[]
}

/** Releases the log names only with failed outcomes: they never served successfully. */
export function failedReleases(log: ReleaseLogEntry[]): Set<string> {
  const good = new Set(log.filter(isGoodEntry).map(e => e.id))
  return new Set(log.map(e => e.id).filter(id => !good.has(id)))
}

/**
 * The release `mode: rollback` chooses when `current` serves (see chooseRollbackTarget in
 * modes/rollback.ts): the newest release the log shows serving that still exists and is not
 * current, else the newest release older than current that is not known to have failed.
 */
export function rollbackChoice(
  current: string,
  existing: string[],
  log: ReleaseLogEntry[]
): string | undefined {
  for (let i = log.length - 1; i >= 0; i--) {
    const e = log[i]
    if (isGoodEntry(e) && e.id !== current && existing.includes(e.id)) return e.id
  }
  // no good release in the log: as chooseRollbackTarget, the newest existing release older
  // than current whose newest log entry is not a failure
  const failed = lastOutcomeFailed(log)
  const older = existing.slice(0, Math.max(existing.indexOf(current), 0))
  return older.filter(id => !failed.has(id)).pop()
}

/** The ids to delete, oldest first. */
export function releasesToPrune(input: PruneInput): string[] {
  const { all, keep, log } = input
  const failed = failedReleases(log)
  const kept = new Set(all.filter(id => !failed.has(id)).slice(-Math.max(keep, 0)))
  for (const id of input.protect) if (id) kept.add(id)
  for (const id of input.mayBeCurrent) {
    const back = id ? rollbackChoice(id, all, log) : undefined
    if (back) kept.add(back)
  }
  return all.filter(id => !kept.has(id))
}

/** The release id a physical path under releases/ belongs to. */
export function releaseOfPath(releasesDir: string, path: string | undefined): string | undefined {
  if (!path || !path.startsWith(releasesDir + '/')) return undefined
  return path.slice(releasesDir.length + 1).split('/')[0]
}
