// `mode: deploy` on one host: the whole sequence of design.md, steps 2-13.
// Nothing changes on the host before the lock; nothing half-done stays
// behind; after the switch, any failure switches back and proves the old
// release serves again.
import { createReadStream, statSync } from 'node:fs'
import { acquireLock, releaseLock, type HeldLock } from '../host/deploy-lock.js'
import { collectEvidence, warnIfRequestsFailed } from '../host/evidence.js'
import { newHostResult, timed, type HostResult } from '../action/host-result.js'
import type { MigrationGate } from './fleet.js'
import type { Log } from '../action/log.js'
import { preflight, type ServiceSnapshot } from '../host/preflight.js'
import { releaseOfPath, releasesToPrune } from '../host/prune.js'
import {
  createArchive,
  type ArchiveStats,
  type ReleaseMetadata
} from '../action/release-archive.js'
import {
  checkEnvironment,
  importCheck,
  installDependencies,
  migrate
} from '../host/release-checks.js'
import {
  listReleases,
  ReleaseLayout,
  switchCurrent,
  uploadRelease
} from '../host/release-layout.js'
import { appendReleaseLog, logEntry } from '../host/release-log.js'
import { runStep, tailLines } from '../transport/remote-command.js'
import { helperArgv } from '../host/remote-helper.js'
import type { RunContext } from '../action/run-context.js'
import { readUnit, realPath } from '../host/service-state.js'
import type { Settings } from '../action/settings.js'
import { toShell } from '../transport/shell-quote.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import { startProbe, type TrafficProbe } from '../host/traffic-probe.js'
import { nginxTarget, verificationUrls } from '../host/verification-urls.js'
import { staticLocationFor } from '../host/nginx/nginx-config.js'
import { verifyStaticFile } from '../host/static-check.js'
import { verifyRelease, VerifyError, type VerifyExpectations } from '../host/verify-release.js'
import { may, sudoersLine } from '../host/access.js'
import { asRoot, serviceCommands } from '../host/service-commands.js'

export interface Cancellation {
  reason?: string
}

export interface DeployContext {
  settings: Settings
  run: RunContext
  log: Log
  cancellation: Cancellation
  /** The packed release (a local .tar.gz), shared by every host. */
  archivePath: string
  /** In a fleet: migrations run on one host; the others wait for them before switching. */
  gate?: MigrationGate
  /** Opens a new connection when the first one dropped, for cleanup and rollback. */
  reconnect?: () => Promise<RemoteHost>
}

/** Whether the connection still runs commands (a drop is not always reported at once). */
async function answers(remote: RemoteHost): Promise<boolean> {
  if (!remote.isConnected()) return false
  const probe = await remote.exec(toShell(['true']), { timeoutMs: 10_000 })
  return probe.code === 0
}

function checkCancelled(c: Cancellation): void {
  if (c.reason) throw new Error(`cancelled (${c.reason})`)
}

/** Packs the release once for every host: `source` less the exclusions, plus its metadata. */
export function packRelease(
  settings: Settings,
  run: RunContext,
  archivePath: string
): Promise<ArchiveStats> {
  const metadata: ReleaseMetadata = {
    id: settings.releaseId,
    sha: run.sha,
    actor: run.actor,
    run: run.runUrl,
    time: new Date().toISOString()
  }
  return createArchive(settings.source, metadata, archivePath, { exclude: settings.exclude })
}

export async function deployHost(connection: RemoteHost, ctx: DeployContext): Promise<HostResult> {
  let remote = connection
  const { settings, log, cancellation } = ctx
  const result = newHostResult(remote.target.label)
  const layout = new ReleaseLayout(settings.releasePath)
  const id = settings.releaseId
  const began = new Date()
  const runsMigrations = !ctx.gate || ctx.gate.host === remote.target.label
  result.release = id
  let lock: HeldLock | undefined
  let uploaded = false
  let switched = false
  let snapshot: ServiceSnapshot | undefined
  let probe: TrafficProbe | undefined
  const stopProbe = async () => {
    if (!probe) return
    const p = await probe.stop()
    probe = undefined
    result.probeRequests = p.requests
    result.failedRequests = p.failed
    log.info(
      `traffic probe: ${p.failed} of ${p.requests} requests failed${p.samples.length ? ` (${p.samples.join('; ')})` : ''}; releases seen: ${p.releases.join(' -> ') || 'none'}`
    )
  }

  try {
    const archiveBytes = statSync(ctx.archivePath).size
    snapshot = await timed(result, 'preflight', () =>
      log.group('Preflight', () =>
        preflight(remote, {
          service: settings.service,
          layout,
          envFile: settings.envFile,
          requiredEnv: settings.requiredEnv,
          nginxErrorLog: settings.nginxErrorLog,
          minFreeBytes: archiveBytes * 4 + 50 * 1048576,
          strict: settings.strict,
          log
        })
      )
    )
    const snap = snapshot
    result.previousRelease = snap.currentRelease
    result.notVerified = snap.notVerified
    if (snap.currentRelease === id) throw new Error(`release ${id} is already current on this host`)
    if ((await listReleases(remote, layout)).includes(id))
      throw new Error(
        `release ${id} already exists in ${layout.releasesDir}; give this deploy another release-id`
      )

    lock = await timed(result, 'lock', () =>
      acquireLock(
        remote,
        layout.lockDir,
        { actor: ctx.run.actor, run: ctx.run.runUrl, release: id },
        {
          timeoutSeconds: settings.lockTimeoutSeconds,
          staleSeconds: settings.lockStaleSeconds,
          log
        }
      )
    )
    checkCancelled(cancellation)

    const releaseDir = layout.release(id)
    await timed(result, 'upload', () =>
      log.group(`Upload release ${id}`, async () => {
        uploaded = true
        await uploadRelease(remote, layout, id, createReadStream(ctx.archivePath))
        if (settings.sharedPaths.length > 0) {
          const linked = await runStep(
            remote,
            'link shared paths',
            toShell(
              helperArgv('python3', 'linkshared', layout.root, releaseDir, ...settings.sharedPaths)
            )
          )
          log.info(linked.stdout.trim())
        }
        log.info(`uploaded ${Math.round(archiveBytes / 1024)} KiB to ${releaseDir}`)
      })
    )
    checkCancelled(cancellation)

    await timed(result, 'dependencies', () =>
      log.group('Dependencies', () =>
        installDependencies(remote, {
          interpreter: snap.interpreter,
          releaseDir,
          currentDir: snap.currentDir,
          pipArgs: settings.pipArgs,
          log
        })
      )
    )
    await timed(result, 'import check', () => checkBeforeSwitch(remote, ctx, snap, releaseDir))
    await timed(result, 'unit', () => daemonReloadIfChanged(remote, settings.service, snap, log))
    checkCancelled(cancellation)
    if (runsMigrations) {
      await timed(result, 'migrations', () =>
        log.group('Migrations', () =>
          migrate(remote, {
            interpreter: snap.interpreter,
            envFile: snap.envFile,
            envReadable: snap.envReadable,
            releaseDir,
            app: snap.app,
            command: settings.migrateCommand,
            mode: settings.migrate,
            log
          })
        )
      )
      ctx.gate?.open()
    } else {
      await timed(result, 'wait for migrations', async () => {
        log.info(
          `migrations run once for the fleet, on ${ctx.gate?.host}; waiting for them before the switch`
        )
        await ctx.gate?.done
      })
    }
    checkCancelled(cancellation)

    // A cold start has nothing serving before the switch: no traffic to probe.
    if (settings.probe && !snap.cold)
      probe = startProbe(remote, settings.healthUrl, {
        maxSeconds: settings.reloadTimeoutSeconds + 120
      })
    const newDir = await realPath(remote, releaseDir)
    log.info(`switching current to releases/${id}`)
    await timed(result, 'switch', async () => {
      switched = true
      await switchCurrent(remote, layout, id)
      log.info(`current -> releases/${id}`)
    })
    log.info(`${snap.cold ? 'starting' : 'reloading'} ${settings.service}`)
    await timed(result, snap.cold ? 'start' : 'reload', () =>
      bringUp(remote, settings.service, snap, log)
    )
    await timed(result, 'verify', () =>
      log.group('Verify the new release serves', () =>
        verifyRelease(remote, cutoverExpectations(settings, snap, id, newDir), log).then(() =>
          verifyStatic(remote, settings, snap, releaseDir, log)
        )
      )
    )
    await stopProbe()
    result.status = 'deployed'
    await warnIfRequestsFailed(remote, result, log, {
      service: settings.service,
      since: began,
      nginxErrorLog: settings.nginxErrorLog,
      what: 'deploy'
    })
    await record(remote, ctx, layout, result, 'deployed')
    await timed(result, 'prune', () => prune(remote, ctx, layout, snap, id))
    log.info(`deployed ${id} (previous: ${snap.currentRelease ?? 'none'})`)
    return result
  } catch (error) {
    result.error = (error as Error).message
    if (ctx.reconnect && !(await answers(remote))) {
      log.warning('the SSH connection dropped; reconnecting to clean up')
      await stopProbe().catch(() => undefined)
      try {
        remote = await ctx.reconnect()
      } catch (reconnectError) {
        result.error += `\nCould not reconnect to clean up: ${(reconnectError as Error).message}. The lock ${layout.lockDir} is taken over after lock-stale-after; check which release current points at.`
        log.error(result.error, `deploy of ${id} failed on ${remote.target.label}`)
        return result
      }
    }
    if (runsMigrations)
      ctx.gate?.fail(
        new Error(
          `the migration host ${remote.target.label} failed before its migrations completed`
        )
      )
    if (switched && snapshot?.firstDeploy) {
      await undoFirstDeploy(remote, ctx, layout, result)
    } else if (switched && snapshot) {
      result.excerpt = await collectEvidence(remote, {
        service: settings.service,
        since: began,
        nginxErrorLog: settings.nginxErrorLog
      }).catch(e => `(could not collect logs: ${(e as Error).message})`)
      await restorePrevious(remote, ctx, layout, snapshot, result, error)
    } else if (uploaded) {
      await remote.exec(toShell(['rm', '-rf', layout.release(id), layout.incoming(id)]), {
        timeoutMs: 60_000
      })
      log.info(
        `removed the unused release ${id}; ${snapshot?.currentRelease ?? 'the current release'} still serves`
      )
    }
    await stopProbe().catch(() => undefined)
    const outcome = result.rolledBack
      ? `rolled back to ${result.previousRelease}`
      : switched
        ? 'NOT rolled back'
        : 'nothing switched'
    log.error(
      `${result.error}${result.excerpt ? `\n\n${result.excerpt}` : ''}`,
      `deploy of ${id} failed (${outcome})`
    )
    if (lock)
      await record(
        remote,
        ctx,
        layout,
        result,
        result.status === 'rolled-back' ? 'rolled-back' : 'failed'
      )
    return result
  } finally {
    if (probe) await probe.stop().catch(() => undefined)
    if (lock) await releaseLock(remote, lock, log)
  }
}

/**
 * The EnvironmentFile and the import check, side by side (so without log groups).
 * When the deploy user cannot read the EnvironmentFile, the import check cannot
 * reproduce the unit's environment: it is skipped (preflight already said so, and
 * strict refused), and verification after the reload protects the release.
 */
async function checkBeforeSwitch(
  remote: RemoteHost,
  ctx: DeployContext,
  snap: ServiceSnapshot,
  releaseDir: string
): Promise<void> {
  const { settings, log } = ctx
  const readable = !snap.envFile || snap.envReadable
  if (!readable)
    log.warning(
      `import check skipped: ${remote.target.user} cannot read ${snap.envFile}, so the release cannot be imported with the unit's environment (verification after the reload proves it instead)`
    )
  else if (!snap.interpreter)
    log.warning("import check skipped: the unit's Python interpreter is unknown")
  await Promise.all([
    readable
      ? checkEnvironment(remote, snap.envFile, settings.requiredEnv, log)
      : Promise.resolve(),
    readable && snap.interpreter
      ? importCheck(remote, {
          interpreter: snap.interpreter,
          envFile: snap.envFile,
          releaseDir,
          app: snap.app,
          log
        })
      : Promise.resolve()
  ])
}

/** `systemctl daemon-reload` when the unit file changed on disk and the deploy user may run it. */
async function daemonReloadIfChanged(
  remote: RemoteHost,
  service: string,
  snap: ServiceSnapshot,
  log: Log
): Promise<void> {
  const needs = await remote.exec(
    toShell(serviceCommands.show(service, ['NeedDaemonReload']).concat('--value'))
  )
  if (needs.stdout.trim() !== 'yes') return
  if (!may(snap.access, 'daemon-reload')) {
    log.warning(
      `the unit file of ${service} changed on disk, but the deploy user may not run sudo systemctl daemon-reload: the reload uses the unit as systemd loaded it. To allow it: ${sudoersLine(snap.access, service, ['daemon-reload'])}`
    )
    return
  }
  await runStep(remote, 'daemon-reload', toShell(asRoot(serviceCommands.daemonReload())))
  log.info('the unit file changed on disk: ran systemctl daemon-reload')
}

/** Reload (HUP) a running master; start or restart a unit that is not running. */
async function bringUp(
  remote: RemoteHost,
  service: string,
  snap: ServiceSnapshot,
  log: Log
): Promise<void> {
  const action = !snap.cold ? 'reload' : snap.unit.activeState === 'inactive' ? 'start' : 'restart'
  const result = await remote.exec(toShell(asRoot(serviceCommands[action](service))), {
    timeoutMs: 120_000
  })
  if (result.code !== 0) {
    const refused = /password is required|not allowed|may not run/i.test(result.stderr)
    throw new Error(
      refused
        ? `sudo refused systemctl ${action} ${service} for ${remote.target.user}: the deploy user needs ${sudoersLine(snap.access, service, [action])}`
        : `systemctl ${action} ${service} failed (exit ${result.code}): ${tailLines(result.stderr, 8)}`
    )
  }
  log.info(
    action === 'reload'
      ? `systemctl reload ${service}: HUP sent to master ${snap.unit.mainPid}`
      : `systemctl ${action} ${service}: the unit was ${snap.unit.activeState}/${snap.unit.subState}`
  )
}

/** What proves the release serves after the switch (and after a reload or a start). */
function cutoverExpectations(
  settings: Settings,
  snap: ServiceSnapshot,
  release: string,
  releaseDir: string
): VerifyExpectations {
  return {
    service: settings.service,
    release,
    releaseDir,
    mainPid: snap.cold ? undefined : snap.unit.mainPid,
    oldWorkers: snap.cold ? [] : snap.workers,
    workers: snap.expectedWorkers,
    dirs: snap.dirs,
    oldReleaseDir: snap.currentDir,
    oldRelease: snap.currentRelease,
    urls: verificationUrls(
      { healthUrl: settings.healthUrl, nginxUrl: nginxTarget(settings, snap.nginx) },
      snap.gunicorn
    ),
    healthChecks: settings.healthChecks,
    healthExpect: settings.healthExpect,
    timeoutSeconds: settings.reloadTimeoutSeconds
  }
}

/** When Nginx serves the release's static files itself, one of them must be the new release's. */
async function verifyStatic(
  remote: RemoteHost,
  settings: Settings,
  snap: ServiceSnapshot,
  releaseDir: string,
  log: Log
): Promise<void> {
  if (snap.nginx.kind !== 'match') return
  const location = staticLocationFor(snap.nginx.servers, `${settings.releasePath}/current`)
  if (!location) return
  await verifyStaticFile(remote, {
    nginx: nginxTarget(settings, snap.nginx),
    location,
    releaseDir,
    log
  })
}

/** A failed first deploy: `current` removed again and the unit left stopped (when allowed). */
async function undoFirstDeploy(
  remote: RemoteHost,
  ctx: DeployContext,
  layout: ReleaseLayout,
  result: HostResult
): Promise<void> {
  const { settings, log } = ctx
  result.excerpt = await collectEvidence(remote, {
    service: settings.service,
    since: new Date(Date.now() - 10 * 60_000),
    nginxErrorLog: settings.nginxErrorLog
  }).catch(e => `(could not collect logs: ${(e as Error).message})`)
  await remote.exec(toShell(['rm', '-f', layout.current]), { timeoutMs: 30_000 })
  const stop = await remote.exec(toShell(asRoot(serviceCommands.stop(settings.service))), {
    timeoutMs: 60_000
  })
  const left =
    stop.code === 0
      ? `${settings.service} is stopped`
      : `${settings.service} could not be stopped (${stop.stderr.trim() || `exit ${stop.code}`}); it keeps restarting without current`
  result.error += `\nThis was the first deploy: ${layout.current} was removed again and ${left}.`
  log.error(`first deploy failed: ${layout.current} removed, ${left}`)
}

/** After a failure past the switch: point current back, reload (restart if the master died), prove the old release serves. */
async function restorePrevious(
  remote: RemoteHost,
  ctx: DeployContext,
  layout: ReleaseLayout,
  snap: ServiceSnapshot,
  result: HostResult,
  cause: unknown
): Promise<void> {
  const { settings, log } = ctx
  const previous = snap.currentRelease
  if (!previous) {
    log.error('there is no previous release to go back to; the host is left on the new release')
    return
  }
  await timed(result, 'rollback', () =>
    log.group(`Roll back to ${previous}`, async () => {
      await switchCurrent(remote, layout, previous)
      const unit = await readUnit(remote, settings.service)
      const masterDead =
        (cause instanceof VerifyError && cause.masterDied) ||
        unit.mainPid === 0 ||
        unit.activeState !== 'active'
      const action = masterDead ? 'restart' : 'reload'
      await runStep(
        remote,
        `${action} the service`,
        toShell(asRoot(serviceCommands[action](settings.service)))
      )
      log.info(
        `current -> releases/${previous}; systemctl ${action} ${settings.service}${masterDead ? ' (the master had died)' : ''}`
      )
      const after = await readUnit(remote, settings.service)
      // The release going back served before this deploy. health-expect was written for
      // the new release: it applies to the old one only when it names {release}.
      const back = cutoverExpectations(
        settings,
        { ...snap, cold: true },
        previous,
        snap.currentDir ?? (await realPath(remote, layout.release(previous)))
      )
      await verifyRelease(
        remote,
        {
          ...back,
          mainPid: masterDead ? undefined : after.mainPid,
          oldRelease: undefined,
          healthExpect: settings.healthExpect?.includes('{release}')
            ? settings.healthExpect
            : undefined
        },
        log
      )
      result.status = 'rolled-back'
      result.rolledBack = true
      log.info(`rolled back: ${previous} serves again`)
    })
  ).catch(error => {
    result.error += `\nRollback to ${previous} failed too: ${(error as Error).message}`
    log.error(`rollback to ${previous} failed: ${(error as Error).message}`)
  })
}

async function record(
  remote: RemoteHost,
  ctx: DeployContext,
  layout: ReleaseLayout,
  result: HostResult,
  outcome: 'deployed' | 'rolled-back' | 'failed'
): Promise<void> {
  const ok = await appendReleaseLog(
    remote,
    layout.logFile,
    logEntry(ctx.run, {
      id: ctx.settings.releaseId,
      previous: result.previousRelease,
      host: remote.target.label,
      action: 'deploy',
      outcome
    })
  )
  if (!ok) ctx.log.warning(`could not append to the release log ${layout.logFile}`)
}

async function prune(
  remote: RemoteHost,
  ctx: DeployContext,
  layout: ReleaseLayout,
  snap: ServiceSnapshot,
  id: string
): Promise<void> {
  const all = await listReleases(remote, layout)
  const masterRelease = releaseOfPath(snap.releasesDir, snap.masterDir)
  const doomed = releasesToPrune(all, ctx.settings.keepReleases, [
    id,
    snap.currentRelease,
    masterRelease
  ])
  if (doomed.length === 0) return
  await runStep(
    remote,
    'prune old releases',
    toShell(['rm', '-rf', ...doomed.map(r => layout.release(r))])
  )
  ctx.log.info(
    `pruned ${doomed.join(', ')} (keeping ${ctx.settings.keepReleases}, the previous release ${snap.currentRelease ?? '-'} and the master's start directory ${masterRelease ?? '-'})`
  )
}
