// What a cutover is given and what it returns. A cutover is the one sequence
// that changes what serves (a deploy, its automatic undo, `mode: rollback`, a
// fleet rollback); host/cutover/driver.ts runs it, and each strategy
// (reload, blue-green) provides its own steps.
import type { Log } from '../../core/log.js'
import type { Access } from '../access.js'
import type { DirAccess } from '../host-facts.js'
import type { ProcessView } from '../gunicorn/gunicorn-processes.js'
import type { StaticLocation } from '../nginx/nginx-config.js'
import type { ReleaseLayout } from '../release-layout.js'
import type { ReleaseLogEntry } from '../release-log.js'
import type { ProbeResult } from '../traffic-probe.js'
import type { HttpTarget } from '../../transport/http-target.js'
import type { Connection } from '../../transport/ssh-connection.js'

/** What serves before a cutover. */
export interface ServingState {
  /** The release `current` points at (undefined: a first deploy). */
  release?: string
  /** Its physical directory. */
  releaseDir?: string
  activeState: string
  subState: string
  mainPid: number
  /** The Gunicorn master is up (a unit between crash-loop restarts is not). */
  alive: boolean
  workers: number[]
}

/** Where a cutover goes and what proves it got there. */
export interface CutoverPlan {
  /** The release id, or (with `link`) what current pointed at before, for messages. */
  release: string
  /**
   * The text `current` gets when it is not `releases/<release>`: back to a current that
   * was not one of the action's releases (its health may then name any release).
   */
  link?: string
  /** Physical path of the release directory (readlink -f). */
  releaseDir: string
  expectedWorkers: number
  dirs: DirAccess
  /** How the workers are seen: ps (the default), sudo ps, or not at all (hidepid). */
  processes?: ProcessView
  /** The URLs that must prove the release; Gunicorn's own first, Nginx's last. */
  urls: HttpTarget[]
  /** The URL through Nginx, when known: a 5xx there while Gunicorn answers is a definite failure. */
  nginxUrl?: HttpTarget
  healthExpect?: string
  /** Nginx serves the release's static files itself: one is compared after the switch. */
  staticFiles?: { nginx: HttpTarget; location: StaticLocation }
}

/**
 * A step after the proof (the after-switch hook, the companions): it runs once the
 * release is proven where users reach it. When it or a later one fails, the driver
 * undoes the switch first and then every started step, newest first.
 */
export interface AfterProof {
  readonly name: string
  run(): Promise<void>
  /** Once traffic is back on what served before: puts back what `run` changed. Never throws. */
  undo(): Promise<string>
}

/** What every cutover is asked: where to go, from what, and for which kind of run. */
export interface CutoverRequest {
  action: ReleaseLogEntry['action']
  plan: CutoverPlan
  from: ServingState
  /** Run in order after the proof, inside the same failure handling. */
  afterProof?: AfterProof[]
  /**
   * Before traffic goes back to what served (an undo): restores what that release
   * needs besides its code (the packages of a shared venv). Returns a note; never throws.
   */
  beforeBack?: () => Promise<string>
}

export interface CutoverContext {
  conn: Connection
  /** The unit; under blue-green the template's name (`myapp` for myapp@.service). */
  service: string
  layout: ReleaseLayout
  access: Access
  healthChecks: number
  timeoutSeconds: number
  nginxErrorLog: string
  /** Requested continuously from the switch until the end; undefined: no probe. */
  probeUrl?: HttpTarget
  log: Log
  /** When the run began on this host (the journal excerpt starts there). */
  since: Date
  run: { sha: string; actor: string; runUrl: string }
  /** Runs one named step and records its time (the caller decides where). */
  step<T>(name: string, fn: () => Promise<T>): Promise<T>
}

/** What a strategy's undo achieved. */
export interface Undo {
  /** The release that served before serves again, and proved it. */
  rolledBack: boolean
  /** No request can reach the new release any more. */
  trafficOff: boolean
  /** What happened, for the error and the log (empty: nothing to say). */
  note: string
  /** Under blue-green: the instance that serves now. */
  instance?: string
}

/** How far a cutover got before it failed. */
export type CutoverPhase = 'bring-up' | 'move' | 'prove' | 'after'

/**
 * One way of moving traffic to a release. The driver calls the steps in order;
 * each throws on failure, except `undo` and `retire`, which report.
 */
export interface CutoverStrategy {
  /** The unit whose journal explains a failure. */
  readonly evidenceUnit: string
  /** Where to look when the host cannot be reached to clean up. */
  readonly whereToLook: string
  /** Before traffic moves: the release comes up where no request reaches it (blue-green). */
  bringUp(): Promise<void>
  /** Traffic moves to the release. */
  moveTraffic(): Promise<void>
  /** Proves the release serves where the users reach it. */
  prove(): Promise<void>
  /** After a failure: undoes what the steps up to `phase` did. Never throws. */
  undo(phase: CutoverPhase, cause: unknown): Promise<Undo>
  /** After success: retires what served before (a failure is a warning). */
  retire(): Promise<void>
  /** Requests may have reached the new release (the switch happened, and something reached it). */
  readonly trafficMoved: boolean
  /** The instance that serves after success, under blue-green. */
  readonly instance?: string
}

/** What a cutover did: the caller reports it (outputs, summary, annotations). */
export interface CutoverOutcome {
  ok: boolean
  /** Requests may have reached the new release. */
  switched: boolean
  /** After a failure: the release that served before serves again. */
  rolledBack: boolean
  /** After a failure: the cause, then what the undo did. */
  error?: string
  /** Journal and Nginx excerpts: after a failure, or after failed probe requests. */
  excerpt?: string
  /** Under blue-green: the instance that serves after the run. */
  instance?: string
  /** The traffic probe's count (undefined: no probe ran). */
  probe?: ProbeResult
  /** After a failure: the steps after the proof that were undone, and how. */
  afterUndone?: string[]
}
