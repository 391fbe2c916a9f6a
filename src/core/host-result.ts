// What happened on one host: the data behind outputs and the job summary.

/** `skipped`: a fleet run stopped before this host was touched. */
export type HostStatus = 'deployed' | 'rolled-back' | 'failed' | 'checked' | 'skipped'

export interface StepTiming {
  name: string
  ms: number
  ok: boolean
}

export interface Finding {
  /** `unverified`: a proof the deploy user's rights do not allow (a warning, an error under strict). */
  severity: 'error' | 'warning' | 'unverified' | 'ok'
  check: string
  finding: string
  fix: string
}

/** What a run did to one companion (restart-services). */
export interface CompanionReport {
  unit: string
  action: 'restart' | 'reload'
  /**
   * moved: runs the new release; failed: did not; restored: back on the previous release
   * after a failure; not-restored: could not be moved back.
   */
  status: 'moved' | 'failed' | 'restored' | 'not-restored'
  /** The release it runs after the run, when known. */
  release?: string
  mainPid?: number
  /** Its processes' directories could not be read: only active and a new main PID are proven. */
  dirsUnverified?: boolean
  error?: string
}

export interface HostResult {
  host: string
  status: HostStatus
  release?: string
  /** mode rollback: the commit the restored release was built from (from the release log). */
  sha?: string
  previousRelease?: string
  rolledBack: boolean
  failedRequests: number
  probeRequests: number
  steps: StepTiming[]
  error?: string
  /** Journal / nginx log excerpt collected on failure. */
  excerpt?: string
  /** SSH connections opened for this host during the run (a jump host counts too). */
  connections?: number
  /** mode: check */
  findings?: Finding[]
  /** Proofs this run could not obtain, and what would allow them. */
  notVerified?: { what: string; allow: string }[]
  /** strategy: blue-green: the instance that serves after this run (e.g. myapp@green). */
  instance?: string
  /** restart-services: what happened to each companion. */
  companions?: CompanionReport[]
  /** The packages that differ between the release that served and the one that serves now (`name 1.0 -> 2.0`, `+name 2.0`, `-name 1.0`). */
  packages?: string[]
  /** Under per-release environments: the venv the release runs (`venvs/<key>`). */
  environment?: string
}

export function newHostResult(host: string): HostResult {
  return {
    host,
    status: 'failed',
    rolledBack: false,
    failedRequests: 0,
    probeRequests: 0,
    steps: []
  }
}

/** Runs one named step, recording its duration and outcome. */
export async function timed<T>(result: HostResult, name: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now()
  try {
    const value = await fn()
    result.steps.push({ name, ms: Date.now() - started, ok: true })
    return value
  } catch (error) {
    result.steps.push({ name, ms: Date.now() - started, ok: false })
    throw error
  }
}
