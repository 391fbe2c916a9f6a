// `mode: rollback` on one host: under the lock, read the host and choose the
// previous good release (from the release log) or `rollback-to`, then switch to
// it through the one cutover (host/cutover/): reload, or restart when the master
// is dead or dies during the reload, and verify exactly as a deploy does. A
// target that is current already but whose master is down is restored. A fleet
// rollback uses it too.
import { newHostResult, timed, type HostResult } from '../core/host-result.js'
import type { Log } from '../core/log.js'
import type { RunContext } from '../core/run-stamp.js'
import type { Settings } from './settings.js'
import { withAdopted } from '../host/adopted-release.js'
import { withLock } from '../host/deploy-lock.js'
import { factOptions, gatherFacts, type HostFacts } from '../host/host-facts.js'
import { reloadTrap, snapshotOf, workersSeen, type ServiceSnapshot } from '../host/preflight.js'
import { listReleases, ReleaseLayout } from '../host/release-layout.js'
import {
  isGoodEntry,
  lastOutcomeFailed,
  readReleaseLog,
  type ReleaseLogEntry
} from '../host/release-log.js'
import { realPath } from '../host/service-state.js'
import type { Connection, RemoteHost } from '../transport/ssh-connection.js'
import { cutOver, cutoverContext, lockFor, planFor, recordOutcome, servingState } from './plans.js'
import { companionFindings } from '../host/companions/companion-checks.js'
import { companionStep } from '../host/companions/move-companions.js'
import {
  diffSets,
  freeze,
  hasReleaseVenv,
  readRecordedSet,
  recordedSetOf,
  restoreSet
} from '../host/environments.js'
import { putBackPackages } from './dependencies.js'

export interface RollbackContext {
  settings: Settings
  run: RunContext
  log: Log
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
  /** The master is down: a requested target that is current is restored, not refused. */
  restoreCurrent?: boolean
}): { id: string } | { error: string } {
  const { requested, current, existing, log } = opts
  const list = existing.length > 0 ? existing.join(', ') : '(none)'
  if (requested) {
    if (!existing.includes(requested))
      return {
        error: `release ${requested} does not exist (never deployed, or pruned). Releases on the host: ${list}`
      }
    if (requested === current && !opts.restoreCurrent)
      return {
        error: `release ${requested} is already current and its master runs: nothing to roll back. Releases on the host: ${list}`
      }
    return { id: requested }
  }
  for (let i = log.length - 1; i >= 0; i--) {
    const e = log[i]
    if (isGoodEntry(e) && e.id !== current && existing.includes(e.id)) return { id: e.id }
  }
  // No good release in the log: the newest existing release older than current that the
  // log does not show failing.
  const failed = lastOutcomeFailed(log)
  const index = current ? existing.indexOf(current) : existing.length
  const older = existing.slice(0, Math.max(index, 0)).filter(id => !failed.has(id))
  if (older.length > 0) return { id: older[older.length - 1] }
  if (current && opts.restoreCurrent && existing.includes(current)) return { id: current }
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
  /** The target serves already, but its master is down: the rollback restores it in place. */
  restore: boolean
}

/** Logs what the rollback will do, from what was read under the lock. */
function describePlan(facts: HostFacts, target: string, restore: boolean, log: Log): void {
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
  const master = facts.masterAlive
    ? `${facts.unit.mainPid}, ${workersSeen(facts)}`
    : `not running (${facts.unit.activeState}/${facts.unit.subState})`
  log.info(
    restore
      ? `${target} is current, but its master is ${master}: restoring it`
      : `current ${facts.currentRelease ?? '(none)'}, rolling back to ${target}; master ${master}`
  )
}

/**
 * Reads the host (under the lock) and chooses the release to go back to; refuses a
 * reload that cannot change code. A target that is current already is refused while it
 * serves, and restored (restarted) when its master is down.
 */
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
  const down = !facts.masterAlive
  const target = chooseRollbackTarget({
    requested: settings.rollbackTo,
    current,
    existing,
    log: entries,
    restoreCurrent: down
  })
  if ('error' in target) throw new Error(target.error)
  const restore = target.id === current
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
  await refuseWhatCannotGoBack(remote, { facts, layout, target: target.id })
  describePlan(facts, target.id, restore, log)
  return {
    snap: snapshotOf(facts),
    target: target.id,
    sha: commitOf(target.id, entries),
    restore
  }
}

/**
 * Refused before any change: a companion that cannot be moved (not loaded, not running
 * the release, no right), and under per-release environments a target without its own.
 */
async function refuseWhatCannotGoBack(
  remote: RemoteHost,
  opts: { facts: HostFacts; layout: ReleaseLayout; target: string }
): Promise<void> {
  const { facts, layout, target } = opts
  const problems = companionFindings(facts.companions, {
    root: layout.root,
    releasesDir: facts.releasesDir,
    currentRelease: facts.currentRelease,
    access: facts.access,
    perReleaseVenvs: false
  }).filter(f => f.severity === 'error')
  if (facts.blueGreen?.perReleaseVenvs && !(await hasReleaseVenv(remote, layout.release(target))))
    problems.push({
      severity: 'error',
      check: 'environments',
      finding: `release ${target} has no environment of its own (${layout.release(target)}/.venv): the instance could not start it`,
      fix: `deploy it again, or link one: ln -s ../../.venv ${layout.release(target)}/.venv (the shared venv)`
    })
  if (problems.length > 0)
    throw new Error(
      `the rollback cannot move everything back; nothing was changed:\n${problems.map(p => `- ${p.finding}\n  Fix: ${p.fix}`).join('\n')}`
    )
}

/**
 * Under a shared venv: the target's recorded set, installed before the switch when it
 * differs from what is installed; `putBack` restores the set that serves now, when the
 * rollback has to go back. Per release: only what differs, for the report.
 */
async function packagesFor(
  conn: Connection,
  ctx: RollbackContext,
  plan: RollbackPlan & { dir: string },
  result: HostResult
): Promise<{ changed: string[]; putBack?: () => Promise<string> }> {
  const { settings, log } = ctx
  const { snap } = plan
  const remote = conn.remote
  const [target, serving] = await Promise.all([
    readRecordedSet(remote, plan.dir),
    recordedSetOf(remote, snap.currentDir)
  ])
  if (snap.venvs === 'per-release')
    return { changed: target && serving ? diffSets(serving, target).changed : [] }
  const python = snap.interpreter?.venv ? snap.interpreter.python : undefined
  if (!python) return { changed: [] }
  if (!target) {
    log.info(
      `the packages ${plan.target} ran on were not recorded (deployed before the action recorded them): the venv keeps the packages installed now`
    )
    return { changed: [] }
  }
  const now = await freeze(remote, python)
  if (!now) return { changed: [] }
  const change = diffSets(now, target)
  if (change.changed.length === 0) return { changed: [] }
  await timed(result, 'dependencies', () =>
    log.group(`Packages of ${plan.target}`, () =>
      restoreSet(remote, {
        python,
        target,
        pipArgs: settings.pipArgs,
        limits: { timeoutSeconds: settings.pipTimeoutSeconds },
        log
      })
    )
  ).catch(async (error: Error) => {
    const back = await putBackPackages(remote, settings, { python, set: now }, log)
    throw new Error(`${error.message}\nNothing was switched; ${back}`)
  })
  return {
    changed: change.changed,
    putBack: () => putBackPackages(remote, settings, { python, set: now }, log)
  }
}

/** The cutover to the target; a failure goes back to what served, when it served. */
async function rollBack(
  conn: Connection,
  ctx: RollbackContext,
  plan: RollbackPlan,
  step: { result: HostResult; since: Date }
): Promise<void> {
  const { settings, log } = ctx
  const { snap } = plan
  const layout = new ReleaseLayout(settings.releasePath)
  const dir = await realPath(conn.remote, layout.release(plan.target))
  const cutover = cutoverContext(conn, settings, snap, { log, ...step, run: ctx.run })
  // A release adopt.sh made (predating the action) is proven on its own health path.
  const adopted = await withAdopted(
    conn.remote,
    planFor(settings, snap, plan.target, dir, { goingBack: true }),
    snap.currentDir,
    cutover.probeUrl,
    log
  )
  const target = adopted.plan
  cutover.probeUrl = adopted.probeUrl
  const current = snap.currentRelease
  const served = !snap.cold && current && snap.currentDir && !plan.restore
  const packages = await packagesFor(conn, ctx, { ...plan, dir }, step.result)
  const companions =
    snap.companions.length > 0
      ? companionStep(cutover, {
          companions: snap.companions,
          to: { release: plan.target, releaseDir: dir },
          back:
            current && snap.currentDir
              ? { release: current, releaseDir: snap.currentDir }
              : undefined,
          processes: snap.processes
        })
      : undefined
  let putBack = false
  const wayBack = packages.putBack
  const beforeBack = wayBack
    ? () => {
        putBack = true
        return wayBack()
      }
    : undefined
  const outcome = await cutOver(settings, snap, cutover, {
    action: 'rollback',
    plan: target,
    from: servingState(snap),
    afterProof: companions ? [companions] : [],
    beforeBack,
    back: {
      plan: served
        ? planFor(settings, snap, current, snap.currentDir!, { goingBack: false })
        : undefined
    },
    restartDeadMaster: true
  })
  // Failed before traffic moved: the release that serves needs its packages back.
  if (!outcome.ok && wayBack && !putBack) log.info(await wayBack())
  recordOutcome(step.result, outcome, {
    companions: companions?.results(),
    packages: packages.changed
  })
  if (!outcome.ok) {
    // The rollback itself failed: what serves is what served before, when the undo worked.
    step.result.status = 'failed'
    step.result.rolledBack = false
    throw new Error(outcome.error)
  }
}

export async function rollbackHost(remote: RemoteHost, ctx: RollbackContext): Promise<HostResult> {
  const { settings, log } = ctx
  const result = newHostResult(remote.target.label)
  const layout = new ReleaseLayout(settings.releasePath)
  const conn: Connection = { remote }
  const since = new Date()
  try {
    // The target is chosen from what is read while the lock is held.
    const lock = lockFor(settings, ctx.run, settings.rollbackTo ?? 'rollback', { log, result })
    const plan = await withLock(conn, layout.lockDir, lock.owner, lock.options, async () => {
      const plan = await timed(result, 'preflight', () =>
        log.group('Preflight', () => planRollback(conn.remote, settings, layout, log))
      )
      result.previousRelease = plan.snap.currentRelease
      result.release = plan.target
      result.sha = plan.sha
      await rollBack(conn, ctx, plan, { result, since })
      return plan
    })
    result.status = 'rolled-back'
    result.rolledBack = true
    log.info(
      plan.restore
        ? `restored ${plan.target}: its master runs again`
        : `rolled back to ${plan.target} (was ${plan.snap.currentRelease ?? 'none'})`
    )
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
