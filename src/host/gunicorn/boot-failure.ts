// New workers that cannot load the app, in Gunicorn's own words in the journal. A worker
// whose app raises while it is loaded logs "Exception in worker process" and a traceback
// through load_wsgi, and exits with WORKER_BOOT_ERROR; the master then stops (HaltServer):
// it closes its listeners at once but can stay alive up to graceful_timeout (30 s) while
// other new workers still load. Seen in the journal, that is final within a second of the
// first failure, where the master's exit would only show at the end of that wait.

/** One journalctl -o short-iso line: `time host name[PID]: text`. */
const ENTRY = /^\S+ \S+ [^\s[]+\[(\d+)\]: ?(.*)$/

/** What the master logs once it stops for that reason (26.x also logs the worker's exit code). */
const MASTER_STOPS =
  /Reason: (Worker failed to boot|App failed to load)\.|Worker \(pid:\d+\) exited with code [34]\b/

/** Gunicorn's own prefix of a log line: `[time] [pid] [LEVEL] `. */
const PREFIX = /^\[[^\]]*\] \[\d+\] \[\w+\] /

/**
 * Why new workers cannot load the app, from the journal since the bring-up (journalctl
 * -o short-iso lines), or undefined while nothing says so. A traceback is taken once its
 * final line (the exception) is there; an exception in a worker that was serving already
 * (no load_wsgi in it) is not a boot failure: the master replaces that worker.
 */
export function bootFailureIn(journal: string): string | undefined {
  const entries = journal
    .split('\n')
    .map(line => ENTRY.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map(m => ({ pid: Number(m[1]), text: m[2] }))
  for (const [i, entry] of entries.entries()) {
    if (!entry.text.includes('Exception in worker process')) continue
    const own = entries
      .slice(i + 1)
      .filter(e => e.pid === entry.pid)
      .map(e => e.text)
    const end = own.findIndex(t => PREFIX.test(t))
    const traceback = end < 0 ? own : own.slice(0, end)
    if (!traceback.some(t => t.includes('in load_wsgi'))) continue
    // the exception: the last unindented line after the frames
    const last = traceback.findLastIndex(t => /^\S/.test(t))
    if (last <= traceback.findIndex(t => t.startsWith('  File '))) continue
    return `worker ${entry.pid} could not load the app: ${traceback[last]}`
  }
  const stopped = entries.find(e => MASTER_STOPS.test(e.text))
  return stopped && `the master logged "${stopped.text.replace(PREFIX, '')}"`
}
