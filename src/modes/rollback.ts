// `mode: rollback` on one host: switch to the previous good release (from the
// release log) or to `rollback-to` through the one cutover (host/cutover.ts):
// reload, or restart when the master is dead or dies during the reload, and
// verify exactly as a deploy does. A fleet rollback uses it too.
import { newHostResult, timed, type HostResult } from '../action/host-result.js'
import type { Log } from '../action/log.js'
import type { RunContext } from '../action/run-context.js'
import type { Settings } from '../action/settings.js'
import { runBlueGreenCutover } from '../host/blue-green/switch.js'
import { runCutover, type CutoverContext, type CutoverPlan } from '../host/cutover.js'
import { withAdopted } from '../host/adopted-release.js'
import { withLock } from '../host/deploy-lock.js'
import { factOptions, gatherFacts } from '../host/host-facts.js'
import { reloadTrap, snapshotOf, type ServiceSnapshot } from '../host/preflight.js'
import { listReleases, ReleaseLayout } from '../host/release-layout.js'
import { readReleaseLog, type ReleaseLogEntry } from '../host/release-log.js'
import { realPath } from '../host/service-state.js'
import type { Connection, RemoteHost } from '../transport/ssh-connection.js'
import { cutoverContext, lockFor, planFor, servingState } from './plans.js'

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

interface RollbackPlan {
  snap: ServiceSnapshot
  target: string
  sha?: string
}

/** Reads the host and chooses the release to go back to; refuses a reload that cannot change code. */
async function planRollback(
  remote: RemoteHost,
  settings: Settings,
  layout: ReleaseLayout,
  log: Log
): Promise<RollbackPlan> {
  const [facts, existing, entries] = await Promise.all([
    gatherFacts(remote, factOptions(settings, layout, [])),
    listReleases(remote, layout),
    readReleaseLog(remote, layout.logFile)
  ])
  if (facts.unit.loadState !== 'loaded')
    throw new Error(
      `unit ${settings.service} is not loaded (LoadState=${facts.unit.loadState || 'unknown'})`
    )
  const current = facts.currentRelease
  const target = chooseRollbackTarget({
    requested: settings.rollbackTo,
    current,
    existing,
    log: entries
  })
  if ('error' in target) throw new Error(target.error)
  // A reload cannot switch code on a unit with a reload trap: refuse before any change
  // (a dead master is restarted, which loads the target whatever the unit says).
  const trap =
    !facts.blueGreen &&
    facts.masterAlive &&
    reloadTrap(facts.unit, facts.gunicorn, layout.root, settings.service)
  if (trap)
    throw new Error(
      `${trap.message}\nA rollback by reload would keep serving ${current ?? 'the current code'}; nothing was changed.`
    )
  if (facts.dirs === 'none')
    log.warning(
      'not verified: which release the workers run (the deploy user may not run sudo pwdx); health must name the release instead'
    )
  if (facts.blueGreen) {
    const { live, instances } = facts.blueGreen
    const idle = instances[live === 'blue' ? 'green' : 'blue']
    log.info(
      `blue-green: live ${live ? instances[live].unit : '(none)'}; ${idle.unit} ${idle.info.activeState}${idle.slotRelease ? ` on ${idle.slotRelease}` : ''}`
    )
  }
  log.info(
    `current ${current ?? '(none)'}, rolling back to ${target.id}; master ${facts.masterAlive ? `${facts.unit.mainPid} with ${facts.workers.length} workers` : `not running (${facts.unit.activeState}/${facts.unit.subState})`}`
  )
  return { snap: snapshotOf(facts), target: target.id, sha: commitOf(target.id, entries) }
}

/** Under blue-green: back to the other instance (at once when it runs the target warm). */
async function blueGreenBack(
  settings: Settings,
  snap: ServiceSnapshot,
  target: CutoverPlan,
  cutover: CutoverContext
): Promise<void> {
  const bg = snap.blueGreen
  if (!bg) return
  const current = snap.currentRelease
  await runBlueGreenCutover(
    {
      action: 'rollback',
      plan: target,
      from: servingState(snap),
      bg,
      keepWarm: settings.keepPreviousWarm,
      back:
        current && snap.currentDir
          ? planFor(settings, snap, current, snap.currentDir, false)
          : undefined
    },
    cutover
  )
}

export async function rollbackHost(remote: RemoteHost, ctx: RollbackContext): Promise<HostResult> {
  const { settings, log } = ctx
  const result = newHostResult(remote.target.label)
  const layout = new ReleaseLayout(settings.releasePath)
  const conn: Connection = { remote }
  const since = new Date()
  try {
    const plan = await timed(result, 'preflight', () =>
      log.group('Preflight', () => planRollback(remote, settings, layout, log))
    )
    result.previousRelease = plan.snap.currentRelease
    result.release = plan.target
    result.sha = plan.sha
    const lock = lockFor(settings, ctx.run, plan.target, { log, result })
    await withLock(conn, layout.lockDir, lock.owner, lock.options, async () => {
      const dir = await realPath(conn.remote, layout.release(plan.target))
      const cutover = cutoverContext(conn, settings, plan.snap, {
        log,
        result,
        since,
        run: ctx.run
      })
      // A release adopt.sh made (predating the action) is proven on its own health path.
      const adopted = await withAdopted(
        conn.remote,
        planFor(settings, plan.snap, plan.target, dir, true),
        plan.snap.currentDir,
        cutover.probeUrl,
        log
      )
      const target = adopted.plan
      cutover.probeUrl = adopted.probeUrl
      if (plan.snap.blueGreen) await blueGreenBack(settings, plan.snap, target, cutover)
      else
        await runCutover(
          {
            action: 'rollback',
            plan: target,
            from: servingState(plan.snap),
            restartDeadMaster: true
          },
          cutover
        )
    })
    result.status = 'rolled-back'
    result.rolledBack = true
    log.info(`rolled back to ${plan.target} (was ${plan.snap.currentRelease ?? 'none'})`)
  } catch (error) {
    result.error ??= (error as Error).message
    log.error(
      `${result.error}${result.excerpt ? `\n\n${result.excerpt}` : ''}`,
      `rollback failed on ${remote.target.label}`
    )
  }
  return result
}

/** The fleet's rollback of a host this run switched: back to `release` (its previous one). */
export function fleetRollback(settings: Settings, run: RunContext) {
  return (remote: RemoteHost, log: Log, release: string): Promise<HostResult> =>
    rollbackHost(remote, { settings: { ...settings, rollbackTo: release || undefined }, run, log })
}
