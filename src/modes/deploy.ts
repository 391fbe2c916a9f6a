// `mode: deploy` on one host, as a paced list of phases. The upload overlaps
// the wait for the lock (it writes only into this run's own directory); every
// decision (what serves, what was before, where to fall back) is made from what
// is read once the lock is held; the release is placed, prepared, switched and
// proven through the one cutover (host/cutover/); pruning follows. What a
// failure leaves to clean up is decided by the phase it reached, nothing else.
import { randomBytes } from 'node:crypto'
import { statSync } from 'node:fs'
import { checkCancelled, type Cancellation } from '../core/cancellation.js'
import { newHostResult, timed, type HostResult } from '../core/host-result.js'
import { deferredLog, type Log } from '../core/log.js'
import { runStamp, type RunContext } from '../core/run-stamp.js'
import { settle } from '../core/settle.js'
import { reconnectIfDropped } from '../host/cutover/driver.js'
import type {
  AfterProof,
  CutoverContext,
  CutoverOutcome,
  CutoverPlan
} from '../host/cutover/types.js'
import { companionStep, type CompanionStep } from '../host/companions/move-companions.js'
import { pruneVenvs } from '../host/environments.js'
import { putBackPackages, type DependencyOutcome } from './dependencies.js'
import { afterSwitchStep, hookFor, hooksNeedEnvironment } from './hook-steps.js'
import { withLock } from '../host/deploy-lock.js'
import { PreflightError } from '../host/gunicorn/reload-traps.js'
import { preflight, type ServiceSnapshot } from '../host/preflight.js'
import { PRUNE_TIMEOUT_MS, releaseOfPath, releasesToPrune } from '../host/prune.js'
import { listReleases, ReleaseLayout } from '../host/release-layout.js'
import { appendReleaseLog, logEntry, readReleaseLog } from '../host/release-log.js'
import { realPath } from '../host/service-state.js'
import { adoptedPlan, probeFor, readAdopted } from '../host/adopted-release.js'
import { predictSwitch, type SwitchPrediction } from '../host/switch-paths.js'
import { runStep } from '../transport/remote-command.js'
import { toShell } from '../transport/shell-quote.js'
import type { Connection, RemoteHost } from '../transport/ssh-connection.js'
import type { ReleaseAccess } from '../host/release-permissions.js'
import type { MigrationGate } from './fleet.js'
import { cutOver, cutoverContext, lockFor, planFor, recordOutcome, servingState } from './plans.js'
import { nginxAnswers } from './nginx-baseline.js'
import {
  placeUpload,
  prepareRelease,
  reportAccess,
  uploadToIncoming,
  type Requirements
} from './prepare-release.js'
import { createArchive, type ArchiveStats } from './release-archive.js'
import type { Settings } from './settings.js'

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

/** Packs the release once for every host: `source` less the exclusions, plus its metadata. */
export function packRelease(
  settings: Settings,
  run: RunContext,
  archivePath: string
): Promise<ArchiveStats> {
  return createArchive(settings.source, { id: settings.releaseId, ...runStamp(run) }, archivePath, {
    exclude: settings.exclude
  })
}

/**
 * How far a deploy got. Cleanup reads this alone:
 * - `started`: only this run's incoming directory may exist (removed);
 * - `locked`: the host was read under the lock; nothing was changed (the incoming directory is removed);
 * - `placed` / `prepared`: releases/<id> is this run's (removed, and the release log says failed);
 * - `switched`: the cutover ran, and undid and recorded its own failure; nothing more to clean up;
 * - `finished`: deployed and pruned.
 */
export type DeployPhase = 'started' | 'locked' | 'placed' | 'prepared' | 'switched' | 'finished'

interface HostRun {
  conn: Connection
  ctx: DeployContext
  layout: ReleaseLayout
  result: HostResult
  since: Date
  phase: DeployPhase
  /** This run's own upload directory (no other run writes there). */
  incoming: string
  /** Read under the lock; set from `locked` on. */
  snap?: ServiceSnapshot
  /** The cutover's outcome, from `switched` on. */
  outcome?: CutoverOutcome
  /** What the dependency step did, from the moment it did it (a failure puts a shared venv back). */
  deps?: DependencyOutcome
}

function preflightOptions(h: HostRun, log: Log) {
  const { settings } = h.ctx
  return {
    service: settings.service,
    strategy: settings.strategy,
    layout: h.layout,
    envFile: settings.envFile,
    requiredEnv: settings.requiredEnv,
    nginxErrorLog: settings.nginxErrorLog,
    companions: settings.restartServices,
    minFreeBytes: statSync(h.ctx.archivePath).size * 4 + 50 * 1048576,
    strict: settings.strict,
    log
  }
}

/** A log that drops everything: a read whose only use is an early failure. */
const quiet: Log = {
  info: () => undefined,
  warning: () => undefined,
  error: () => undefined,
  group: (_n, fn) => fn()
}

/**
 * Takes the lock. While another run holds it, preflight is read once to fail early
 * on what would refuse the deploy anyway (its picture of the host is not used: the
 * other run may change it).
 */
async function underLock<T>(h: HostRun, fn: () => Promise<T>): Promise<T> {
  const { settings, log, run } = h.ctx
  const lock = lockFor(settings, run, settings.releaseId, { log, result: h.result })
  const stop = new AbortController()
  let early: Promise<unknown> | undefined
  const onWait = () => {
    early = preflight(h.conn.remote, preflightOptions(h, quiet)).catch((error: unknown) => {
      if (error instanceof PreflightError) stop.abort()
      throw error
    })
    early.catch(() => undefined)
  }
  return withLock(
    h.conn,
    h.layout.lockDir,
    lock.owner,
    { ...lock.options, signal: stop.signal, onWait },
    fn
  ).catch(async (error: unknown) => {
    // A wait stopped by preflight names preflight's finding.
    if (stop.signal.aborted && early) await early
    throw error
  })
}

/** Preflight under the lock: the one reading every decision of this deploy comes from. */
async function readHost(h: HostRun): Promise<ServiceSnapshot> {
  const { settings, log } = h.ctx
  const snap = await timed(h.result, 'preflight', () =>
    log.group('Preflight', () => preflight(h.conn.remote, preflightOptions(h, log)))
  )
  h.result.previousRelease = snap.currentRelease
  h.result.notVerified = snap.notVerified
  const id = settings.releaseId
  if (snap.currentRelease === id) throw new Error(`release ${id} is already current on this host`)
  const hooksRefused = hooksNeedEnvironment(settings, snap)
  if (hooksRefused) throw new PreflightError(hooksRefused)
  return snap
}

/** The upload (started before the lock), placed as releases/<id> under it. */
async function place(
  h: HostRun,
  uploading: Promise<ReleaseAccess>
): Promise<{ releaseDir: string; requirements: Requirements }> {
  const { settings, log } = h.ctx
  const held = deferredLog(log)
  held.info(`uploading ${settings.releaseId} while the lock was taken and the host read`)
  const access = await uploading
  const upload = { ...h.ctx, remote: h.conn.remote, layout: h.layout, log: held }
  reportAccess(upload, access)
  const placed = await placeUpload(upload, h.incoming)
  h.phase = 'placed'
  await held.replay(`Upload release ${settings.releaseId}`)
  return placed
}

/**
 * What the switch changes besides the code (paths through `current`, the Gunicorn
 * configuration the reload reads), checked against the new release: refused before
 * anything changes when it would certainly break the site.
 */
async function predict(h: HostRun, snap: ServiceSnapshot): Promise<SwitchPrediction> {
  const { settings, log } = h.ctx
  const prediction = await predictSwitch(h.conn.remote, {
    root: h.layout.root,
    unit: snap.unit,
    gunicorn: snap.gunicorn,
    proxies: snap.nginx.kind === 'match' ? snap.nginx.proxies : undefined,
    servers: snap.nginx.kind === 'match' ? snap.nginx.servers : undefined,
    masterDir: snap.masterDir,
    currentDir: snap.currentDir,
    newDir: h.layout.release(settings.releaseId)
  })
  for (const w of prediction.warnings) log.warning(`not verified before the switch: ${w}`)
  if (prediction.problems.length > 0)
    throw new PreflightError(
      `the switch to ${settings.releaseId} would break the site; nothing was switched:\n${prediction.problems.map(p => `- ${p.cause}\n  Fix: ${p.fix}`).join('\n')}`
    )
  if (prediction.workers !== undefined)
    log.info(
      `the reload applies a Gunicorn configuration with ${prediction.workers} workers: expecting ${prediction.workers}`
    )
  return prediction
}

/** Everything before the switch, beside the reads the cutover needs (new path, way back, Nginx). */
async function prepare(h: HostRun, snap: ServiceSnapshot, requirements: Requirements) {
  const { settings } = h.ctx
  const remote = h.conn.remote
  const newDir = settle(realPath(remote, h.layout.release(settings.releaseId)))
  const backDir = settle(
    snap.currentRelease && !snap.firstDeploy
      ? snap.currentDir
        ? Promise.resolve(snap.currentDir)
        : realPath(remote, h.layout.release(snap.currentRelease))
      : Promise.resolve(undefined)
  )
  const nginxServed = settle(nginxAnswers(remote, settings, snap))
  // The release serving now may be the one adopt.sh made: it is proven on its own health path.
  const adopted = settle(backDir.then(b => (b.ok ? readAdopted(remote, b.value) : undefined)))
  // Checked beside the dependencies; nothing is imported or migrated before it passes.
  const predicted = timed(h.result, 'predict the switch', () => predict(h, snap))
  predicted.catch(() => undefined)
  const { deps } = await prepareRelease({
    ...h.ctx,
    remote,
    snap,
    requirements,
    layout: h.layout,
    result: h.result,
    mustPass: predicted,
    onDependencies: d => (h.deps = d)
  })
  const [dir, back, served, prediction, previous] = await Promise.all([
    newDir,
    backDir,
    nginxServed,
    predicted,
    adopted
  ])
  if (!dir.ok) throw dir.error
  if (!back.ok) throw back.error
  h.phase = 'prepared'
  return {
    deps,
    newDir: dir.value,
    backDir: back.value,
    nginxServed: served.ok && served.value,
    workers: prediction.workers,
    adopted: previous.ok ? previous.value : undefined
  }
}

/** The steps after the proof: after-switch, then the companions. */
function afterProofSteps(
  h: HostRun,
  snap: ServiceSnapshot,
  prepared: Awaited<ReturnType<typeof prepare>>,
  ctx: CutoverContext
): { steps: AfterProof[]; companions?: CompanionStep } {
  const { settings, log } = h.ctx
  const steps: AfterProof[] = []
  if (settings.afterSwitch)
    steps.push(
      afterSwitchStep(
        ctx,
        hookFor('after-switch', settings.afterSwitch, {
          settings,
          snap,
          releaseDir: prepared.newDir,
          interpreter: prepared.deps.interpreter ?? snap.interpreter,
          log,
          signal: h.ctx.cancellation.signal
        })
      )
    )
  if (snap.companions.length === 0) return { steps }
  const companions = companionStep(ctx, {
    companions: snap.companions,
    to: { release: settings.releaseId, releaseDir: prepared.newDir },
    back:
      snap.currentRelease && prepared.backDir
        ? { release: snap.currentRelease, releaseDir: prepared.backDir }
        : undefined,
    processes: snap.processes
  })
  return { steps: [...steps, companions], companions }
}

/**
 * current pointed somewhere that is not a release (a hand-made server, current -> /home/app/app):
 * a failed deploy points it at exactly that again and proves the old code, whatever release
 * its health names (reload strategy; blue-green hosts serve from their slots).
 */
function backToOther(settings: Settings, snap: ServiceSnapshot): CutoverPlan | undefined {
  if (snap.firstDeploy || snap.blueGreen || snap.currentRelease) return undefined
  if (!snap.currentOther || !snap.currentDir) return undefined
  const back = planFor(settings, snap, snap.currentOther, snap.currentDir, { goingBack: true })
  return { ...back, link: snap.currentOther, healthExpect: undefined }
}

/** The cutover to the new release; the way back is the release read as current under the lock. */
async function switchToNew(
  h: HostRun,
  snap: ServiceSnapshot,
  prepared: Awaited<ReturnType<typeof prepare>>
): Promise<CutoverOutcome> {
  const { settings, log } = h.ctx
  const previous = snap.currentRelease
  const planned = planFor(settings, snap, settings.releaseId, prepared.newDir, {
    goingBack: false,
    nginxServed: prepared.nginxServed
  })
  const plan = { ...planned, expectedWorkers: prepared.workers ?? planned.expectedWorkers }
  const backPlan = (release: string, dir: string) => {
    const back = planFor(settings, snap, release, dir, { goingBack: true })
    return prepared.adopted ? adoptedPlan(back, prepared.adopted) : back
  }
  const ctx = cutoverContext(h.conn, settings, snap, {
    log,
    result: h.result,
    since: h.since,
    run: h.ctx.run
  })
  ctx.probeUrl = probeFor(ctx.probeUrl, prepared.adopted)
  const after = afterProofSteps(h, snap, prepared, ctx)
  const restore = prepared.deps.restore
  let putBack = false
  const outcome = await cutOver(settings, snap, ctx, {
    action: 'deploy',
    plan,
    from: servingState(snap),
    afterProof: after.steps,
    beforeBack: restore
      ? () => {
          putBack = true
          return putBackPackages(h.conn.remote, settings, restore, log)
        }
      : undefined,
    back: {
      firstDeploy: snap.firstDeploy,
      plan:
        previous && prepared.backDir
          ? backPlan(previous, prepared.backDir)
          : backToOther(settings, snap)
    },
    restartDeadMaster: false
  })
  // Failed before traffic moved (nothing to switch back): the old release still needs its packages.
  if (!outcome.ok && restore && !putBack)
    log.info(await putBackPackages(h.conn.remote, settings, restore, log))
  h.outcome = outcome
  recordOutcome(h.result, outcome, {
    companions: after.companions?.results(),
    packages: prepared.deps.changed,
    environment: prepared.deps.environment
  })
  // The cutover undid and recorded its own failure, switched or not.
  h.phase = 'switched'
  if (outcome.ok) h.result.status = 'deployed'
  return outcome
}

/**
 * Uploads older than two hours belong to runs that died (a run waits for the lock at
 * most an hour, lock-timeout's limit, and then removes its own upload).
 */
const ABANDONED_UPLOAD_MINUTES = 120

async function prune(h: HostRun, snap: ServiceSnapshot, log: Log): Promise<void> {
  const { settings } = h.ctx
  const [all, entries] = await Promise.all([
    listReleases(h.conn.remote, h.layout),
    readReleaseLog(h.conn.remote, h.layout.logFile),
    runStep(
      h.conn.remote,
      'remove abandoned uploads',
      toShell([
        'find',
        h.layout.releasesDir,
        '-mindepth',
        '1',
        '-maxdepth',
        '1',
        '-name',
        '.incoming-*',
        '-mmin',
        `+${ABANDONED_UPLOAD_MINUTES}`,
        '-exec',
        'rm',
        '-rf',
        '{}',
        '+'
      ])
    )
  ])
  const masterRelease = releaseOfPath(snap.releasesDir, snap.masterDir)
  // Under blue-green the old live instance's release stays too (the other slot now holds the new one).
  const bg = snap.blueGreen
  const pinned = bg?.live ? [bg.instances[bg.live].slotRelease] : []
  const doomed = releasesToPrune({
    all,
    keep: settings.keepReleases,
    log: entries,
    protect: [settings.releaseId, snap.currentRelease, masterRelease, ...pinned],
    mayBeCurrent: [settings.releaseId, snap.currentRelease]
  })
  if (doomed.length === 0) return pruneEnvironments(h, snap, log)
  await runStep(
    h.conn.remote,
    'prune old releases',
    toShell(['rm', '-rf', ...doomed.map(r => h.layout.release(r))]),
    { timeoutMs: PRUNE_TIMEOUT_MS }
  )
  log.info(
    `pruned ${doomed.join(', ')} (keeping ${settings.keepReleases} that did not fail, the previous release ${snap.currentRelease ?? '-'}, the master's start directory ${masterRelease ?? '-'} and what a rollback would choose)`
  )
  await pruneEnvironments(h, snap, log)
}

/** Per-release environments that no kept release links to any more. */
async function pruneEnvironments(h: HostRun, snap: ServiceSnapshot, log: Log): Promise<void> {
  if (snap.venvs !== 'per-release') return
  const gone = await pruneVenvs(h.conn.remote, h.layout)
  if (gone.length > 0)
    log.info(
      `removed the environments no kept release uses: ${gone.map(k => `venvs/${k}`).join(', ')}`
    )
}

/**
 * The cutover, and pruning: beside the reload cutover (whose rollback needs none of the
 * releases pruning may remove; its lines are logged after it), after a blue-green one
 * (a failed one gives the idle slot its release back).
 */
async function switchAndPrune(
  h: HostRun,
  snap: ServiceSnapshot,
  prepared: Awaited<ReturnType<typeof prepare>>
): Promise<void> {
  const pruneLog = deferredLog(h.ctx.log)
  const pruning = () => timed(h.result, 'prune', () => prune(h, snap, pruneLog))
  const [cutover, pruned] = await Promise.allSettled([
    switchToNew(h, snap, prepared),
    snap.blueGreen ? Promise.resolve() : pruning()
  ])
  if (cutover.status === 'rejected') throw cutover.reason
  if (!cutover.value.ok) throw new Error(cutover.value.error)
  if (snap.blueGreen) await pruning()
  await pruneLog.replay('Prune')
  if (pruned.status === 'rejected') throw pruned.reason
}

/** The phases of one deploy; the lock is held from `locked` on. */
async function deploySteps(h: HostRun): Promise<void> {
  const { ctx } = h
  const uploading = timed(h.result, 'upload', () =>
    uploadToIncoming({ ...ctx, remote: h.conn.remote, layout: h.layout, log: quiet }, h.incoming)
  )
  uploading.catch(() => undefined) // awaited under the lock
  await underLock(h, async () => {
    try {
      h.phase = 'locked'
      checkCancelled(ctx.cancellation)
      const snap = (h.snap = await readHost(h))
      const { requirements } = await place(h, uploading)
      const prepared = await prepare(h, snap, requirements)
      await switchAndPrune(h, snap, prepared)
      h.phase = 'finished'
    } catch (error) {
      // Cleaned up while the lock is still held.
      await cleanUp(h, error)
      throw error
    }
  })
  ctx.log.info(`deployed ${ctx.settings.releaseId} (previous: ${h.snap?.currentRelease ?? 'none'})`)
}

/**
 * What a failed run wrote and may remove, by the phase it reached: its own upload
 * directory always; releases/<id> only once it placed it there itself; nothing once
 * the cutover ran (the cutover undid its own failure).
 */
export function ownedPaths(
  phase: DeployPhase,
  paths: { release: string; incoming: string }
): string[] {
  if (phase === 'switched' || phase === 'finished') return []
  return phase === 'placed' || phase === 'prepared'
    ? [paths.release, paths.incoming]
    : [paths.incoming]
}

/** Removes what this run wrote and will not use, as far as its phase says; never throws. */
async function cleanUp(h: HostRun, error: unknown): Promise<void> {
  if (h.phase === 'switched' || h.phase === 'finished') return
  const { settings, log } = h.ctx
  const id = settings.releaseId
  const placed = h.phase === 'placed' || h.phase === 'prepared'
  h.result.error ??= (error as Error).message
  try {
    await reconnectIfDropped({ conn: h.conn, log })
  } catch (reconnectError) {
    h.result.error += `\nCould not reconnect to clean up: ${(reconnectError as Error).message}. The lock ${h.layout.lockDir} is taken over after lock-stale-after; ${h.snap?.currentRelease ?? 'nothing'} still serves.`
    return
  }
  // pip changed the venv the running release uses: its packages go back first.
  if (placed && h.deps?.restore)
    log.info(await putBackPackages(h.conn.remote, settings, h.deps.restore, log))
  const mine = ownedPaths(h.phase, { release: h.layout.release(id), incoming: h.incoming })
  await runStep(h.conn.remote, 'remove the unused release', toShell(['rm', '-rf', ...mine]), {
    timeoutMs: 60_000
  }).then(
    () =>
      placed &&
      log.info(
        `removed the unused release ${id}; ${h.snap?.currentRelease ?? 'nothing'} still serves`
      ),
    (e: Error) => log.warning(`could not remove ${mine.join(' and ')}: ${e.message}`)
  )
  if (!placed) return
  const written = await appendReleaseLog(
    h.conn.remote,
    h.layout.logFile,
    logEntry(h.ctx.run, {
      id,
      previous: h.snap?.currentRelease,
      host: h.conn.remote.target.label,
      action: 'deploy',
      outcome: 'failed'
    })
  ).catch(() => false)
  if (!written) log.warning(`could not append to the release log ${h.layout.logFile}`)
}

/** Removes the upload of a run that failed before it held the lock (it is this run's alone). */
async function removeIncoming(h: HostRun): Promise<void> {
  await reconnectIfDropped({ conn: h.conn, log: h.ctx.log })
    .then(() => h.conn.remote.exec(toShell(['rm', '-rf', h.incoming]), { timeoutMs: 60_000 }))
    .catch(() => undefined)
}

function reportFailure(h: HostRun): void {
  const id = h.ctx.settings.releaseId
  const outcome = h.result.rolledBack
    ? `rolled back to ${h.result.previousRelease}`
    : h.outcome?.switched
      ? 'NOT rolled back'
      : 'nothing switched'
  h.ctx.log.error(
    `${h.result.error}${h.result.excerpt ? `\n\n${h.result.excerpt}` : ''}`,
    `deploy of ${id} failed (${outcome})`
  )
}

export async function deployHost(connection: RemoteHost, ctx: DeployContext): Promise<HostResult> {
  const { settings } = ctx
  const layout = new ReleaseLayout(settings.releasePath)
  const h: HostRun = {
    conn: { remote: connection, reconnect: ctx.reconnect },
    ctx,
    layout,
    result: newHostResult(connection.target.label),
    since: new Date(),
    phase: 'started',
    incoming: layout.incoming(settings.releaseId, randomBytes(6).toString('hex'))
  }
  h.result.release = settings.releaseId
  try {
    await deploySteps(h)
  } catch (error) {
    h.result.error ??= (error as Error).message
    // Before the lock, the upload is the only thing written.
    if (h.phase === 'started') await removeIncoming(h)
    if (ctx.gate?.host === connection.target.label)
      ctx.gate.fail(
        new Error(`the migration host ${ctx.gate.host} failed before its migrations completed`)
      )
    reportFailure(h)
  }
  return h.result
}
