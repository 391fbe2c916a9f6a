// Gunicorn before 24.1.0 logs from its SIGCHLD handler. When old workers exit
// together during a reload, the handler can interrupt the master while it is
// writing to stderr, and the nested write raises "RuntimeError: reentrant call
// inside <_io.BufferedWriter name='<stderr>'>" (gunicorn issues #2564, #3198):
// the master dies although the release is fine. Told apart here from a release
// whose workers cannot boot, which also makes the master exit.

/** The master's own crash in its logging. */
const LOGGING_CRASH = /RuntimeError: reentrant call inside <_io\.BufferedWriter/

/** What Gunicorn logs when a worker cannot load the app (the master exits after it). */
const BOOT_FAILURE = /Worker failed to boot|Exception in worker process|App failed to load/

/**
 * Whether `journal` (journalctl lines, `... name[PID]: text`) shows the master `masterPid`
 * crashing in its own logging, and no worker failing to boot.
 */
export function crashedInLogging(journal: string, masterPid: number): boolean {
  const lines = journal.split('\n')
  const own = `[${masterPid}]:`
  return (
    lines.some(l => l.includes(own) && LOGGING_CRASH.test(l)) &&
    !lines.some(l => BOOT_FAILURE.test(l))
  )
}

/** The warning when it happened during `what` (a deploy's reload), and what the action does. */
export function loggingCrashNote(masterPid: number, what: string, then: string): string {
  return `the Gunicorn master ${masterPid} crashed in its own logging during the ${what} ("RuntimeError: reentrant call inside <_io.BufferedWriter name='<stderr>'>", a bug of Gunicorn before 24.1.0: gunicorn issues #2564 and #3198), not because of the release: ${then}. Upgrade Gunicorn in the unit's venv to 24.1.0 or newer; until then --log-level error avoids the crashing write`
}
