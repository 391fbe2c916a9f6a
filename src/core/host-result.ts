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
