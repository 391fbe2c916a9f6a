// Builds the cutover plans and context the modes hand to host/cutover.ts, from
// the settings and the service snapshot, in one place for every path.
import { timed, type HostResult } from '../action/host-result.js'
import type { HeldLock } from '../host/deploy-lock.js'
import type { Log } from '../action/log.js'
import type { RunContext } from '../action/run-context.js'
import type { Settings } from '../action/settings.js'
import type { CutoverContext, CutoverPlan, ServingState } from '../host/cutover.js'
import { staticLocationFor } from '../host/nginx/nginx-config.js'
import type { ServiceSnapshot } from '../host/preflight.js'
import { ReleaseLayout } from '../host/release-layout.js'
import { nginxTarget, verificationUrls } from '../host/verification-urls.js'
import type { Connection } from '../transport/ssh-connection.js'

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

/** What proves `release` (in physical directory `releaseDir`) serves. */
export function planFor(
  settings: Settings,
  snap: ServiceSnapshot,
  release: string,
  releaseDir: string,
  goingBack: boolean
): CutoverPlan {
  const nginx = nginxTarget(settings, snap.nginx)
  const location =
    snap.nginx.kind === 'match'
      ? staticLocationFor(snap.nginx.servers, `${settings.releasePath}/current`)
      : undefined
  return {
    release,
    releaseDir,
    expectedWorkers: Math.max(snap.expectedWorkers, 1),
    dirs: snap.dirs,
    processes: snap.processes,
    // Under blue-green the serving instance's own bind is the old one: health-url (live.sock) and Nginx prove it.
    urls: verificationUrls(
      { healthUrl: settings.healthUrl, nginxUrl: nginx },
      snap.blueGreen ? { ...snap.gunicorn, binds: [] } : snap.gunicorn
    ),
    healthExpect: healthExpectFor(settings, goingBack),
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
    probeUrl: settings.probe ? settings.healthUrl : undefined,
    log: host.log,
    result: host.result,
    since: host.since,
    run: host.run
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
