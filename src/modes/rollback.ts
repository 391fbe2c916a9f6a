// `mode: rollback` on one host: switch to the previous good release (from the
// release log) or to `rollback-to`, reload (restart when the master is dead),
// and verify exactly as a deploy does.
import { acquireLock, releaseLock, type HeldLock } from '../host/deploy-lock.js'
import { collectEvidence, warnIfRequestsFailed } from '../host/evidence.js'
import { newHostResult, timed, type HostResult } from '../action/host-result.js'
import type { Log } from '../action/log.js'
import { reloadTrap } from '../host/preflight.js'
import { probeDirs } from '../host/host-facts.js'
import { readGunicornProcesses } from '../host/gunicorn/gunicorn-processes.js'
import { probeAccess } from '../host/access.js'
import { asRoot, serviceCommands } from '../host/service-commands.js'
import {
  listReleases,
  readCurrentRelease,
  ReleaseLayout,
  switchCurrent
} from '../host/release-layout.js'
import {
  appendReleaseLog,
  logEntry,
  readReleaseLog,
  type ReleaseLogEntry
} from '../host/release-log.js'
import { runStep } from '../transport/remote-command.js'
import type { RunContext } from '../action/run-context.js'
import { listWorkers, readGunicornOptions, readUnit, realPath } from '../host/service-state.js'
import type { Settings } from '../action/settings.js'
import { toShell } from '../transport/shell-quote.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import { startProbe, type TrafficProbe } from '../host/traffic-probe.js'
import { verificationUrls } from '../host/verification-urls.js'
import { verifyRelease, VerifyError } from '../host/verify-release.js'

export interface RollbackContext {
  settings: Settings
  run: RunContext
  log: Log
}

/** A release the log shows serving successfully: deployed, or rolled back to. */
export function isGoodEntry(e: ReleaseLogEntry): boolean {
  return (
    (e.action === 'deploy' && e.outcome === 'deployed') ||
    (e.action === 'rollback' && e.outcome === 'rolled-back')
  )
}

/**
 * The release to go back to: `requested` if it exists; else the newest good
 * release in the log other than `current` that still exists; else the newest
 * existing release older than `current`.
 */
export function chooseRollbackTarget(opts: {
  requested?: string
  current?: string
  existing: string[]
  log: ReleaseLogEntry[]
}): { id: string } | { error: string } {
  const { requested, current, existing, log } = opts
  const list = existing.length > 0 ? existing.join(', ') : '(none)'
  if (requested) {
    if (!existing.includes(requested))
      return {
        error: `release ${requested} does not exist (never deployed, or pruned). Releases on the host: ${list}`
      }
    if (requested === current)
      return { error: `release ${requested} is already current. Releases on the host: ${list}` }
    return { id: requested }
  }
  for (let i = log.length - 1; i >= 0; i--) {
    const e = log[i]
    if (isGoodEntry(e) && e.id !== current && existing.includes(e.id)) return { id: e.id }
  }
  const index = current ? existing.indexOf(current) : existing.length
  if (index > 0) return { id: existing[index - 1] }
  return { error: `no previous release to roll back to. Releases on the host: ${list}` }
}

/** The commit release `id` was built from: the newest successful deploy of it in the log. */
export function commitOf(id: string, log: ReleaseLogEntry[]): string | undefined {
  for (let i = log.length - 1; i >= 0; i--) {
    const e = log[i]
    if (e.id === id && e.action === 'deploy' && e.outcome === 'deployed' && e.sha) return e.sha
  }
  return undefined
}

export async function rollbackHost(remote: RemoteHost, ctx: RollbackContext): Promise<HostResult> {
  const { settings, log } = ctx
  const result = newHostResult(remote.target.label)
  const layout = new ReleaseLayout(settings.releasePath)
  const began = new Date()
  let lock: HeldLock | undefined
  let probe: TrafficProbe | undefined
  let switched = false
  try {
    const plan = await timed(result, 'preflight', () =>
      log.group('Preflight', async () => {
        const unit = await readUnit(remote, settings.service)
        if (unit.loadState !== 'loaded')
          throw new Error(
            `unit ${settings.service} is not loaded (LoadState=${unit.loadState || 'unknown'})`
          )
        const current = await readCurrentRelease(remote, layout)
        const existing = await listReleases(remote, layout)
        const entries = await readReleaseLog(remote, layout.logFile)
        const target = chooseRollbackTarget({
          requested: settings.rollbackTo,
          current,
          existing,
          log: entries
        })
        if ('error' in target) throw new Error(target.error)
        const [workers, gunicorn, access] = await Promise.all([
          listWorkers(remote, unit.mainPid),
          readGunicornOptions(remote, unit),
          probeAccess(remote, settings.service, [])
        ])
        const master = await readGunicornProcesses(remote, unit.mainPid)
        const dirs = (await probeDirs(remote, unit, master?.masterPid, access)).via
        if (dirs === 'none')
          log.warning(
            `not verified: which release the workers run (the deploy user may not run sudo pwdx); health must name the release instead`
          )
        const masterAlive = unit.mainPid > 0 && unit.activeState === 'active'
        // A reload cannot switch code on a unit with a reload trap: refuse before any change
        // (a dead master is restarted, which loads the target whatever the unit says).
        const trap = masterAlive && reloadTrap(unit, gunicorn, layout.root, settings.service)
        if (trap)
          throw new Error(
            `${trap.message}\nA rollback by reload would keep serving ${current ?? 'the current code'}; nothing was changed.`
          )
        log.info(
          `current ${current ?? '(none)'}, rolling back to ${target.id}; master ${masterAlive ? `${unit.mainPid} with ${workers.length} workers` : `not running (${unit.activeState}/${unit.subState})`}`
        )
        const sha = commitOf(target.id, entries)
        return { unit, current, target: target.id, sha, workers, gunicorn, masterAlive, dirs }
      })
    )
    result.previousRelease = plan.current
    result.release = plan.target
    result.sha = plan.sha
    lock = await timed(result, 'lock', () =>
      acquireLock(
        remote,
        layout.lockDir,
        { actor: ctx.run.actor, run: ctx.run.runUrl, release: plan.target },
        {
          timeoutSeconds: settings.lockTimeoutSeconds,
          staleSeconds: settings.lockStaleSeconds,
          log
        }
      )
    )
    const targetDir = await realPath(remote, layout.release(plan.target))
    const oldDir = plan.current ? await realPath(remote, layout.current) : undefined
    if (settings.probe && plan.masterAlive)
      probe = startProbe(remote, settings.healthUrl, {
        maxSeconds: settings.reloadTimeoutSeconds + 120
      })
    await timed(result, 'switch', async () => {
      switched = true
      await switchCurrent(remote, layout, plan.target)
      log.info(`current -> releases/${plan.target}`)
    })
    const restartOrReload = (action: 'reload' | 'restart', note: string) =>
      timed(result, action, async () => {
        await runStep(
          remote,
          `${action} the service`,
          toShell(asRoot(serviceCommands[action](settings.service)))
        )
        log.info(`systemctl ${action} ${settings.service}${note}`)
      })
    const verifyTarget = (afterReload: boolean) =>
      timed(result, 'verify', () =>
        log.group(`Verify ${plan.target} serves`, () =>
          verifyRelease(
            remote,
            {
              service: settings.service,
              release: plan.target,
              releaseDir: targetDir,
              mainPid: afterReload ? plan.unit.mainPid : undefined,
              oldWorkers: afterReload ? plan.workers : [],
              workers: plan.gunicorn.workers ?? Math.max(plan.workers.length, 1),
              dirs: plan.dirs,
              oldReleaseDir: oldDir,
              oldRelease: plan.current,
              urls: verificationUrls(settings, plan.gunicorn),
              healthChecks: settings.healthChecks,
              healthExpect: settings.healthExpect,
              timeoutSeconds: settings.reloadTimeoutSeconds
            },
            log
          )
        )
      )
    if (!plan.masterAlive) {
      await restartOrReload('restart', ' (the master was not running)')
      await verifyTarget(false)
    } else {
      try {
        await restartOrReload('reload', '')
        await verifyTarget(true)
      } catch (error) {
        // A master in a crash loop (the broken release's workers cannot boot) can die between
        // preflight and the reload: then only a restart brings the target up.
        const died =
          (error instanceof VerifyError && error.masterDied) ||
          (await readUnit(remote, settings.service)).activeState !== 'active'
        if (!died) throw error
        log.warning(
          `the master died during the rollback (${(error as Error).message.split('\n')[0]}); restarting ${settings.service}`
        )
        await restartOrReload('restart', ' (the master had died)')
        await verifyTarget(false)
      }
    }
    result.status = 'rolled-back'
    result.rolledBack = true
    log.info(`rolled back to ${plan.target} (was ${plan.current ?? 'none'})`)
  } catch (error) {
    result.error = (error as Error).message
    if (switched)
      result.excerpt = await collectEvidence(remote, {
        service: settings.service,
        since: began,
        nginxErrorLog: settings.nginxErrorLog
      }).catch(() => undefined)
    log.error(
      `${result.error}${result.excerpt ? `\n\n${result.excerpt}` : ''}`,
      `rollback failed on ${remote.target.label}`
    )
  } finally {
    if (probe) {
      const p = await probe.stop()
      result.probeRequests = p.requests
      result.failedRequests = p.failed
      log.info(
        `traffic probe: ${p.failed} of ${p.requests} requests failed${p.samples.length ? ` (${p.samples.join('; ')})` : ''}`
      )
      if (result.status === 'rolled-back')
        await warnIfRequestsFailed(remote, result, log, {
          service: settings.service,
          since: began,
          nginxErrorLog: settings.nginxErrorLog,
          what: 'rollback'
        })
    }
    if (lock) {
      await appendReleaseLog(
        remote,
        layout.logFile,
        logEntry(ctx.run, {
          id: result.release ?? '',
          previous: result.previousRelease,
          host: remote.target.label,
          action: 'rollback',
          outcome: result.status === 'rolled-back' ? 'rolled-back' : 'failed'
        })
      )
      await releaseLock(remote, lock, log)
    }
  }
  return result
}
