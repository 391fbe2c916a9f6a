// The reload strategy: `current` moves to the release and the master reloads
// (HUP: new workers from the new code, the listening socket kept), or starts or
// restarts when it is not running. Its undo moves `current` back the same way.
import { journalCursor, readJournal } from '../evidence.js'
import { crashedInLogging, loggingCrashNote } from '../gunicorn/logging-crash.js'
import { isRunning } from '../host-facts.js'
import { switchCurrent } from '../release-layout.js'
import type { UnitInfo } from '../gunicorn/unit-info.js'
import { readUnit } from '../service-state.js'
import { verifyStaticFile } from '../static-check.js'
import { systemd, SystemctlError, type UnitAction } from '../systemd.js'
import {
  masterDeathIn,
  verifyRelease,
  VerifyError,
  type VerifyExpectations
} from '../verify-release.js'
import { toShell } from '../../transport/shell-quote.js'
import type {
  CutoverContext,
  CutoverPhase,
  CutoverPlan,
  CutoverRequest,
  CutoverStrategy,
  ServingState,
  Undo
} from './types.js'

/** How to undo a failed cutover: switch back to a release, or remove `current` (a first deploy). */
export type Fallback = { kind: 'release'; plan: CutoverPlan } | { kind: 'remove-current' }

export interface ReloadRequest extends CutoverRequest {
  /** Where to go when the release does not prove itself (none: stay, and fail). */
  fallback?: Fallback
  /** A reload whose master dies (a crash loop) is followed by a restart instead of failing. */
  restartDeadMaster: boolean
}

type BringUp = Exclude<UnitAction, 'stop'>

/** Reload a running master; start an inactive unit; restart a failed or crash-looping one. */
export function bringUpAction(from: Pick<ServingState, 'alive' | 'activeState'>): BringUp {
  if (from.alive) return 'reload'
  return from.activeState === 'inactive' ? 'start' : 'restart'
}

/** Proves `plan` serves: the master (kept after a reload), its workers, health and static files. */
async function prove(
  ctx: CutoverContext,
  plan: CutoverPlan,
  from: ServingState,
  reloaded: boolean,
  cursor: string | undefined
): Promise<void> {
  const expected: VerifyExpectations = {
    service: ctx.service,
    release: plan.release,
    anyReleaseName: plan.link !== undefined,
    releaseDir: plan.releaseDir,
    mainPid: reloaded ? from.mainPid : undefined,
    oldWorkers: reloaded ? from.workers : [],
    workers: plan.expectedWorkers,
    dirs: plan.dirs,
    processes: plan.processes,
    oldReleaseDir: from.releaseDir,
    oldRelease: from.release,
    urls: plan.urls,
    nginxUrl: plan.nginxUrl,
    healthChecks: ctx.healthChecks,
    healthExpect: plan.healthExpect,
    timeoutSeconds: ctx.timeoutSeconds,
    journalCursor: cursor
  }
  await ctx.step('verify', () =>
    ctx.log.group(`Verify ${plan.release} serves`, async () => {
      // Nginx serves the static files from `current` itself: they are compared beside the
      // workers' proof; a failure of the workers' proof is the one reported.
      const [workers, staticFile] = await Promise.allSettled([
        verifyRelease(ctx.conn.remote, expected, ctx.log),
        plan.staticFiles &&
          verifyStaticFile(ctx.conn.remote, {
            ...plan.staticFiles,
            releaseDir: plan.releaseDir,
            log: ctx.log
          })
      ])
      if (workers.status === 'rejected') throw workers.reason
      if (staticFile.status === 'rejected') throw staticFile.reason
    })
  )
}

/** The master's death after a failed reload (only a restart brings a release up), or undefined. */
function masterGone(error: unknown, unit: UnitInfo | undefined): VerifyError | undefined {
  if (error instanceof VerifyError && error.masterDied) return error
  const died = unit && masterDeathIn(unit)
  // named as the master's death, also when a health loop saw its effect first (Nginx's 502);
  // a master that stopped on its own keeps saying so (systemd may start another on current)
  const stops = error instanceof VerifyError && error.masterStops
  return (
    died && new VerifyError(`${died.message} (seen first: ${firstLine(error)})`, true, true, stops)
  )
}

const firstLine = (error: unknown) => (error as Error).message.split('\n')[0]

/** What one switch-and-bring-up did, for its undo. */
interface Moved {
  /** `current` may point at the new release. */
  switched: boolean
  /** A systemctl command reached the unit (a refused one did not). */
  sent: boolean
}

/** What a bring-up sent, and where the journal stood before it. */
interface BroughtUp {
  action: BringUp
  cursor?: string
}

/** How one switch-and-bring-up goes about it. */
interface BringUpOptions {
  /** What to send (by default from the state: reload a running master, else start or restart). */
  action?: BringUp
  /** A reload refused because the master has exited meanwhile becomes a restart. */
  restartIfGone: boolean
}

/** Switch `current`, then reload (or start/restart) the unit. */
async function switchAndBringUp(
  ctx: CutoverContext,
  plan: CutoverPlan,
  from: ServingState,
  moved: Moved,
  opts: BringUpOptions
): Promise<BroughtUp> {
  const action = opts.action ?? bringUpAction(from)
  // The journal's position is read beside the switch, for a reload only: what the new workers
  // log comes after it. A restart's stopping master logs its own workers' boot failures after
  // it (a release being left); a restarted master whose workers cannot boot exits, watched.
  const [cursor] = await Promise.all([
    action === 'reload' ? journalCursor(ctx.conn.remote, ctx.service) : undefined,
    ctx.step('switch', async () => {
      ctx.log.info(`switching current to ${plan.link ?? `releases/${plan.release}`}`)
      moved.switched = true
      await switchCurrent(ctx.conn.remote, ctx.layout, plan.release, plan.link)
    })
  ])
  ctx.log.info(`${action === 'reload' ? 'reloading' : `${action}ing`} ${ctx.service}`)
  try {
    await sendToUnit(ctx, action, moved)
  } catch (error) {
    const gone = action === 'reload' && opts.restartIfGone && (await exitedBefore(ctx, error))
    if (!gone) throw error
    // the master that was read as running exited before the HUP reached it
    ctx.log.warning(`${gone}; restarting ${ctx.service} on ${plan.release} instead`)
    await sendToUnit(ctx, 'restart', moved)
    ctx.log.info(`systemctl restart ${ctx.service} (the master had exited)`)
    return { action: 'restart' }
  }
  ctx.log.info(
    `systemctl ${action} ${ctx.service}${from.alive ? '' : ' (the master was not running)'}`
  )
  return { action, cursor }
}

/** systemctl `action` on the unit, as a step; `moved.sent` says whether it reached the unit. */
async function sendToUnit(ctx: CutoverContext, action: BringUp, moved: Moved): Promise<void> {
  await ctx.step(action, async () => {
    try {
      await systemd(() => ctx.conn.remote, ctx.access).run(action, ctx.service)
    } catch (error) {
      moved.sent = !(error instanceof SystemctlError && error.refused)
      throw error
    }
    moved.sent = true
  })
}

/**
 * Why a failed reload found no master to reload (it exited after the unit was read), or
 * undefined: sudo's refusal, a dropped connection and a running master are not that.
 */
async function exitedBefore(ctx: CutoverContext, error: unknown): Promise<string | undefined> {
  if (!(error instanceof SystemctlError) || error.refused || error.noAnswer) return undefined
  const unit = await readUnit(ctx.conn.remote, ctx.service).catch(() => undefined)
  if (!unit || isRunning(unit)) return undefined
  return `the master had exited before the reload (ActiveState=${unit.activeState}/${unit.subState}): ${firstLine(error)}`
}

/**
 * Whether the master `pid` died of Gunicorn's own logging crash (not of the release) since
 * the run began; false when the journal cannot be read.
 */
async function diedOfLoggingCrash(ctx: CutoverContext, pid: number): Promise<boolean> {
  if (!pid) return false
  const journal = await readJournal(ctx.conn.remote, ctx.service, ctx.since, 400).catch(
    () => undefined
  )
  return journal !== undefined && crashedInLogging(journal.stdout, pid)
}

/**
 * The PID of the master systemd started after the reloaded one died of Gunicorn's own
 * logging crash (the unit's Restart=, before the proof looked), or 0: the proof failed
 * otherwise, or the master was replaced for another reason.
 */
async function restartedAfterCrash(
  ctx: CutoverContext,
  from: ServingState,
  error: unknown,
  unit: UnitInfo | undefined
): Promise<number> {
  if (!(error instanceof VerifyError) || error.masterDied) return 0
  if (!unit || !isRunning(unit) || unit.mainPid === from.mainPid) return 0
  return (await diedOfLoggingCrash(ctx, from.mainPid)) ? unit.mainPid : 0
}

/**
 * Proves the release. A master that died on the reload is restarted and the release proven
 * again when it died of Gunicorn's own logging crash and not of the release (whose workers
 * would have failed to boot), said as such, or else when allowed (a rollback).
 */
async function proveOrRestart(
  ctx: CutoverContext,
  plan: CutoverPlan,
  from: ServingState,
  { action, cursor }: BroughtUp,
  opts: { restartDeadMaster: boolean; what: string }
): Promise<void> {
  try {
    await prove(ctx, plan, from, action === 'reload', cursor)
  } catch (error) {
    // the unit as it is now, read once: was the master replaced, or is it gone?
    const unit =
      action === 'reload' && !(error instanceof VerifyError && error.masterDied)
        ? await readUnit(ctx.conn.remote, ctx.service).catch(() => undefined)
        : undefined
    const successor = action === 'reload' ? await restartedAfterCrash(ctx, from, error, unit) : 0
    if (successor) {
      // systemd's Restart= was quicker than the action: the new master runs `current`
      ctx.log.warning(
        loggingCrashNote(
          from.mainPid,
          opts.what,
          `systemd restarted ${ctx.service} (master ${successor}) on ${plan.release}, which is proven on it`
        )
      )
      return prove(ctx, plan, from, false, undefined)
    }
    // A master stopping on its own is as good as dead where a restart is allowed (a rollback,
    // the way back): in a crash loop its failing workers may be the old release's, not ours.
    const stops = error instanceof VerifyError && error.masterStops && opts.restartDeadMaster
    const death = action !== 'reload' ? undefined : stops ? error : masterGone(error, unit)
    if (!death) throw error
    if (await diedOfLoggingCrash(ctx, from.mainPid))
      ctx.log.warning(
        loggingCrashNote(from.mainPid, opts.what, `restarting ${ctx.service} on ${plan.release}`)
      )
    else if (opts.restartDeadMaster)
      ctx.log.warning(
        `the master died during the ${opts.what} (${firstLine(error)}); restarting ${ctx.service}`
      )
    else throw death
    await ctx.step('restart', () =>
      systemd(() => ctx.conn.remote, ctx.access).run('restart', ctx.service)
    )
    ctx.log.info(`systemctl restart ${ctx.service} (the master had died)`)
    await prove(ctx, plan, from, false, undefined)
  }
}

/** A failed first deploy: `current` goes, and the unit is left stopped. */
async function undoFirstDeploy(ctx: CutoverContext): Promise<string> {
  const { conn, service, layout } = ctx
  await conn.remote.exec(toShell(['rm', '-f', layout.current]), { timeoutMs: 30_000 })
  const stopped = await systemd(() => conn.remote, ctx.access, 60_000)
    .run('stop', service)
    .then(
      () => undefined,
      (e: Error) => e.message
    )
  return stopped === undefined
    ? `This was the first deploy: ${layout.current} was removed again and ${service} is stopped.`
    : `This was the first deploy: ${layout.current} was removed again, but ${service} could not be stopped (${stopped}); it keeps restarting without current.`
}

/** The unit as it is now (after the failed release), for the way back. */
async function stateNow(ctx: CutoverContext, req: CutoverRequest): Promise<ServingState> {
  const now: ServingState = {
    ...req.from,
    release: req.plan.release,
    releaseDir: req.plan.releaseDir
  }
  const unit = await readUnit(ctx.conn.remote, ctx.service).catch(() => undefined)
  if (!unit) return now
  return {
    ...now,
    activeState: unit.activeState,
    subState: unit.subState,
    mainPid: unit.mainPid,
    alive: isRunning(unit),
    workers: []
  }
}

/**
 * Back to the fallback release: switch, then reload or restart (only switch when nothing was
 * sent). A master that is stopping on its own (`masterStops`) would lose a HUP: restarted.
 */
async function switchBack(
  ctx: CutoverContext,
  req: ReloadRequest,
  back: CutoverPlan,
  { sent, masterStops }: { sent: boolean; masterStops: boolean }
): Promise<Undo> {
  const state = await stateNow(ctx, req)
  // The old release's packages first (a shared venv the deploy changed): its workers import them.
  const prepared = req.beforeBack ? await req.beforeBack() : ''
  const undone = await ctx
    .step('rollback', () =>
      ctx.log.group(`Roll back to ${back.release}`, async () => {
        if (!sent && state.alive) {
          // Nothing reached the master (a refused reload): switching current back is the whole undo.
          await ctx.step('switch', () =>
            switchCurrent(ctx.conn.remote, ctx.layout, back.release, back.link)
          )
          return prove(ctx, back, { ...state, workers: [] }, true, undefined)
        }
        const stopping = masterStops && state.alive
        if (stopping)
          ctx.log.info(
            `the master ${state.mainPid} is stopping on its own (Gunicorn stops it when new workers cannot load the app): restarting, not reloading`
          )
        const up = await switchAndBringUp(
          ctx,
          back,
          state,
          { switched: false, sent: false },
          { action: stopping ? 'restart' : undefined, restartIfGone: true }
        )
        await proveOrRestart(ctx, back, state, up, {
          restartDeadMaster: true,
          what: 'rollback'
        })
      })
    )
    .then(
      () => undefined,
      (e: Error) => e.message
    )
  const withPrepared = (note: string) => (prepared ? `${prepared}\n${note}` : note)
  if (undone === undefined)
    return {
      rolledBack: true,
      trafficOff: true,
      note: withPrepared(`rolled back: ${back.release} serves again`)
    }
  return {
    rolledBack: false,
    trafficOff: false,
    note: withPrepared(`Rollback to ${back.release} failed too: ${undone}`)
  }
}

/** The reload strategy for one request. */
export function reloadCutover(req: ReloadRequest, ctx: CutoverContext): CutoverStrategy {
  const moved: Moved = { switched: false, sent: false }
  let broughtUp: BroughtUp = { action: bringUpAction(req.from) }
  /** The proof failed because the master stops on its own. */
  let masterStops = false
  return {
    evidenceUnit: ctx.service,
    whereToLook: `check which release ${ctx.layout.current} points at`,
    get trafficMoved() {
      return moved.switched && moved.sent
    },
    bringUp: async () => undefined,
    moveTraffic: async () => {
      broughtUp = await switchAndBringUp(ctx, req.plan, req.from, moved, {
        restartIfGone: req.restartDeadMaster
      })
    },
    prove: () =>
      proveOrRestart(ctx, req.plan, req.from, broughtUp, {
        restartDeadMaster: req.restartDeadMaster,
        what: req.action
      }).catch((error: unknown) => {
        masterStops = error instanceof VerifyError && error.masterStops
        throw error
      }),
    undo: async (_phase: CutoverPhase): Promise<Undo> => {
      const fallback = req.fallback
      if (!moved.switched || !fallback)
        return { rolledBack: false, trafficOff: !moved.switched, note: '' }
      if (fallback.kind === 'remove-current')
        return {
          rolledBack: false,
          trafficOff: true,
          note: await undoFirstDeploy(ctx).catch(e => `Undoing the first deploy failed: ${e}`)
        }
      return switchBack(ctx, req, fallback.plan, { sent: moved.sent, masterStops })
    },
    retire: async () => undefined
  }
}
