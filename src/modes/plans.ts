// Builds the cutover plans and context the modes hand to host/cutover/, from
// the settings and the service snapshot, and runs a cutover under the host's
// strategy: in one place for every path.
import { timed, type CompanionReport, type HostResult } from '../core/host-result.js'
import type { Log } from '../core/log.js'
import type { RunContext } from '../core/run-stamp.js'
import type { HeldLock } from '../host/deploy-lock.js'
import { blueGreenCutover } from '../host/cutover/blue-green.js'
import { runCutover } from '../host/cutover/driver.js'
import { reloadCutover, type Fallback } from '../host/cutover/reload.js'
import type {
  CutoverContext,
  CutoverOutcome,
  CutoverPlan,
  CutoverRequest,
  ServingState
} from '../host/cutover/types.js'
import { staticLocationFor } from '../host/nginx/nginx-config.js'
import type { ServiceSnapshot } from '../host/preflight.js'
import { ReleaseLayout } from '../host/release-layout.js'
import { nginxTarget, verificationUrls } from '../host/verification-urls.js'
import type { Connection } from '../transport/ssh-connection.js'
import type { Settings } from './settings.js'

/**
 * health-expect is written for the release being deployed. Going back to an
 * older release (the automatic rollback, mode: rollback) applies it only when it
 * names {release}, which then means the older release's id: a literal text the
 * new release introduced would otherwise never be found on the old one.
 */
export function healthExpectFor(settings: Settings, goingBack: boolean): string | undefined {
  if (!goingBack) return settings.healthExpect
  return settings.healthExpect?.includes('{release}') ? settings.healthExpect : undefined
}

/**
 * What proves `release` (in physical directory `releaseDir`) serves. `nginxServed`:
 * Nginx answered before the switch, so a gateway error there afterwards is the release's.
 */
export function planFor(
  settings: Settings,
  snap: ServiceSnapshot,
  release: string,
  releaseDir: string,
  opts: { goingBack: boolean; nginxServed?: boolean }
): CutoverPlan {
  const nginx = nginxTarget(settings, snap.nginx)
  const location =
    snap.nginx.kind === 'match'
      ? staticLocationFor(snap.nginx.servers, `${settings.releasePath}/current`)
      : undefined
  // Under blue-green the serving instance's own bind is the old one: health-url (live.sock) and Nginx prove it.
  const urls = verificationUrls(
    { healthUrl: settings.healthUrl, nginxUrl: nginx },
    snap.blueGreen ? { ...snap.gunicorn, binds: [] } : snap.gunicorn
  )
  return {
    release,
    releaseDir,
    expectedWorkers: Math.max(snap.expectedWorkers, 1),
    dirs: snap.dirs,
    processes: snap.processes,
    urls,
    // Only a URL that differs from the direct ones can show Nginx failing while Gunicorn answers.
    nginxUrl: opts.nginxServed && urls.length > 1 && urls.at(-1) === nginx ? nginx : undefined,
    healthExpect: healthExpectFor(settings, opts.goingBack),
    staticFiles: location ? { nginx, location } : undefined
  }
}

/** What serves before the cutover, from the snapshot. */
export function servingState(snap: ServiceSnapshot): ServingState {
  return {
    release: snap.currentRelease,
    releaseDir: snap.currentDir,
    activeState: snap.unit.activeState,
    subState: snap.unit.subState,
    mainPid: snap.unit.mainPid,
    alive: !snap.cold,
    workers: snap.workers
  }
}

export function cutoverContext(
  conn: Connection,
  settings: Settings,
  snap: ServiceSnapshot,
  host: { log: Log; result: HostResult; since: Date; run: RunContext }
): CutoverContext {
  return {
    conn,
    service: settings.service,
    layout: new ReleaseLayout(settings.releasePath),
    access: snap.access,
    healthChecks: settings.healthChecks,
    timeoutSeconds: settings.reloadTimeoutSeconds,
    nginxErrorLog: settings.nginxErrorLog,
    // What the users reach: through Nginx (a probe of health-url alone misses what Nginx answers).
    probeUrl: settings.probe ? nginxTarget(settings, snap.nginx) : undefined,
    log: host.log,
    since: host.since,
    run: host.run,
    step: (name, fn) => timed(host.result, name, fn)
  }
}

/** Where a failed cutover goes back to. */
export interface WayBack {
  /** The release that served before, and what proves it again. */
  plan?: CutoverPlan
  /** Nothing served before (a first deploy): `current` is removed again. */
  firstDeploy?: boolean
}

/**
 * Runs one cutover under the host's strategy. `back` says where a failure goes;
 * `restartDeadMaster`: a master that dies on the reload is restarted (rollbacks).
 */
export function cutOver(
  settings: Settings,
  snap: ServiceSnapshot,
  ctx: CutoverContext,
  req: CutoverRequest & { back: WayBack; restartDeadMaster: boolean }
): Promise<CutoverOutcome> {
  const { back, restartDeadMaster, ...common } = req
  if (snap.blueGreen)
    return runCutover(
      blueGreenCutover(
        { ...common, bg: snap.blueGreen, keepWarm: settings.keepPreviousWarm, back: back.plan },
        ctx
      ),
      common,
      ctx
    )
  const fallback: Fallback | undefined = back.firstDeploy
    ? { kind: 'remove-current' }
    : back.plan && { kind: 'release', plan: back.plan }
  return runCutover(reloadCutover({ ...common, fallback, restartDeadMaster }, ctx), common, ctx)
}

/** What a run reports beside the cutover's outcome: the companions and the environment. */
export interface AlongsideOutcome {
  companions?: CompanionReport[]
  packages?: string[]
  environment?: string
}

/** Writes what a cutover did into the host's result (the modes report from there). */
export function recordOutcome(
  result: HostResult,
  outcome: CutoverOutcome,
  alongside: AlongsideOutcome = {}
): void {
  if (alongside.companions?.length) result.companions = alongside.companions
  if (alongside.packages?.length) result.packages = alongside.packages
  if (alongside.environment) result.environment = alongside.environment
  if (outcome.probe) {
    result.probeRequests = outcome.probe.requests
    result.failedRequests = outcome.probe.failed
  }
  if (outcome.instance) result.instance = outcome.instance
  if (outcome.excerpt) result.excerpt = outcome.excerpt
  if (outcome.ok) return
  result.error = outcome.error
  if (outcome.rolledBack) {
    result.rolledBack = true
    result.status = 'rolled-back'
  }
}

/** Who takes the deploy lock for `release`, and how long it waits or counts as stale. */
export function lockFor(
  settings: Settings,
  run: RunContext,
  release: string,
  host: { log: Log; result: HostResult }
) {
  return {
    owner: { actor: run.actor, run: run.runUrl, release },
    options: {
      timeoutSeconds: settings.lockTimeoutSeconds,
      staleSeconds: settings.lockStaleSeconds,
      log: host.log,
      timing: (wait: () => Promise<HeldLock>) => timed(host.result, 'lock', wait)
    }
  }
}
