// Who runs the action, from which workflow run, and the stamp that goes with
// every release and release-log entry.

/** The workflow run, as action/run-context.ts reads it. */
export interface RunContext {
  sha: string
  actor: string
  runUrl: string
  workspace: string
}

/** Who made a release or a log entry, from which run, and when. */
export interface RunStamp {
  sha: string
  actor: string
  run: string
  time: string
}

export function runStamp(run: { sha: string; actor: string; runUrl: string }): RunStamp {
  return { sha: run.sha, actor: run.actor, run: run.runUrl, time: new Date().toISOString() }
}
