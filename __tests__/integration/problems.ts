// What tests that expect a clean run leave out, and why: each only in the runs it explains.
//
// Gunicorn before 24.1 (20.1 on Debian 12) logs from its SIGCHLD handler; when old workers
// exit together on a reload, the nested write can kill the master ("RuntimeError: reentrant
// call inside <_io.BufferedWriter name='<stderr>'>"). The action tells that crash apart from
// a broken release by the journal, restarts the unit and warns (src/host/gunicorn/logging-crash.ts),
// and hygiene.test.ts provokes it on purpose. Elsewhere it comes by chance, about 2 reloads
// in 100 on bookworm hosts, and requests fail while the master is down whatever the action
// does: tests of zero downtime do not hold Gunicorn's crash against the action, and only in
// the runs whose output names it (kit.ts prints and counts those).
import { expect } from '@jest/globals'
import { annotations, gunicornCrashed, noteLetPass, type ActionRun } from './kit.js'
import type { LoadReport } from './load.js'

/** What the crash explains: its own warning, and the failed probe requests that follow it. */
const EXPLAINED = [
  /^::warning::.*crashed in its own logging during the/,
  /^::warning::.*traffic-probe requests failed during it/
]

/**
 * The warning for an import that took over a second: the kit's apps import in about half
 * a second on a quiet machine, and in more on a busy one (deploy.test.ts tests the warning).
 */
const SLOW_IMPORT = /^::warning::.*s to import: a reload \(HUP\) holds requests/

const eachAnnotation = (run: ActionRun) => annotations(run).split(/\n(?=::)/)

/**
 * The load's failures, less the requests that got no answer in the client's time when one
 * of `runs` warned that its release's import holds requests during the reload: on a busy
 * test machine (several hosts deploying at once) the new workers' import takes seconds,
 * and Gunicorn's HUP stops the old workers without waiting for them. A request refused,
 * reset or answered 5xx always counts.
 */
export function unexplainedFailures(
  load: LoadReport,
  runs: ActionRun[]
): Pick<LoadReport, 'failed' | 'failures'> {
  const warned = runs.some(run => eachAnnotation(run).some(a => SLOW_IMPORT.test(a)))
  if (!warned || load.timeouts === 0) return { failed: load.failed, failures: load.failures }
  return {
    failed: load.failed - load.timeouts,
    failures: load.failures.filter(f => !f.endsWith(' timeout'))
  }
}

/** As unexplainedFailures, and what it leaves out is noted (scripts/test.sh lists it). */
export function countedFailures(
  load: LoadReport,
  runs: ActionRun[]
): Pick<LoadReport, 'failed' | 'failures'> {
  const counted = unexplainedFailures(load, runs)
  if (counted.failed < load.failed)
    noteLetPass(
      `${load.failed - counted.failed} request(s) waited past the client's timeout during a reload whose slow import the action warned of (${runs
        .map(r => r.outputs.release)
        .filter(Boolean)
        .join(', ')}): not counted`
    )
  return counted
}

/**
 * The run's annotations (as `annotations`), less the slow-import warning a busy test
 * machine causes, and those Gunicorn's own logging crash explains when the run names it.
 */
export function problems(run: ActionRun): string {
  const crashed = gunicornCrashed(run)
  return eachAnnotation(run)
    .filter(a => !SLOW_IMPORT.test(a) && !(crashed && EXPLAINED.some(re => re.test(a))))
    .join('\n')
}

/**
 * `expected` (a count of failed requests, or a report of them), or anything when one of
 * `runs` names Gunicorn's own logging crash: the master was down until the action restarted it.
 */
export function unlessGunicornCrashed<T>(runs: ActionRun | ActionRun[], expected: T): T {
  return [runs].flat().some(gunicornCrashed) ? (expect.anything() as T) : expected
}
