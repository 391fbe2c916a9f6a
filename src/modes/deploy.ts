// `mode: deploy` on one host, as a paced list of steps: preflight, the lock,
// everything before the switch (prepare-release.ts), then the one cutover
// (host/cutover.ts), which goes back to the previous release when the new one
// does not prove itself, and pruning. Nothing changes on the host before the
// lock; nothing half-done stays behind.
import { statSync } from 'node:fs'
import { newHostResult, timed, type HostResult } from '../core/host-result.js'
import type { Log } from '../core/log.js'
import { createArchive, type ArchiveStats } from './release-archive.js'
import { type ReleaseMetadata } from '../core/release-id.js'
import type { RunContext } from '../core/run-stamp.js'
import type { Settings } from './settings.js'
import { runBlueGreenCutover } from '../host/blue-green/switch.js'
import { CutoverError, runCutover, reconnectIfDropped, type Fallback } from '../host/cutover.js'
import { withLock } from '../host/deploy-lock.js'
import { preflight, type ServiceSnapshot } from '../host/preflight.js'
import { PRUNE_TIMEOUT_MS, releaseOfPath, releasesToPrune } from '../host/prune.js'
import { listReleases, ReleaseLayout } from '../host/release-layout.js'
import { appendReleaseLog, logEntry, readReleaseLog } from '../host/release-log.js'
import { runStamp } from '../core/run-stamp.js'
import { realPath } from '../host/service-state.js'
import { runStep } from '../transport/remote-command.js'
import { toShell } from '../transport/shell-quote.js'
import type { Connection, RemoteHost } from '../transport/ssh-connection.js'
import type { MigrationGate } from './fleet.js'
import { cutoverContext, lockFor, planFor, servingState } from './plans.js'
import { checkCancelled, type Cancellation } from '../core/cancellation.js'
import { deferredLog } from '../core/log.js'
import {
  prepareRelease,
  ReleaseExistsError,
  uploadNewRelease,
  type Requirements
} from './prepare-release.js'
import { settle, type Settled } from '../core/settle.js'

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
  const metadata: ReleaseMetadata = { id: settings.releaseId, ...runStamp(run) }
  return createArchive(settings.source, metadata, archivePath, { exclude: settings.exclude })
}

interface HostRun {
  conn: Connection
  ctx: DeployContext
  layout: ReleaseLayout
  result: HostResult
  since: Date
}

async function checkedPreflight(h: HostRun): Promise<ServiceSnapshot> {
  const { settings, log } = h.ctx
  const archiveBytes = statSync(h.ctx.archivePath).size
  const snap = await timed(h.result, 'preflight', () =>
    log.group('Preflight', () =>
      preflight(h.conn.remote, {
        service: settings.service,
        strategy: settings.strategy,
        layout: h.layout,
        envFile: settings.envFile,
        requiredEnv: settings.requiredEnv,
        nginxErrorLog: settings.nginxErrorLog,
        minFreeBytes: archiveBytes * 4 + 50 * 1048576,
        strict: settings.strict,
        log
      })
    )
  )
  h.result.previousRelease = snap.currentRelease
  h.result.notVerified = snap.notVerified
  const id = settings.releaseId
  if (snap.currentRelease === id) throw new Error(`release ${id} is already current on this host`)
  return snap
}

/** Removes releases/<id> and its incoming directory: a release this deploy uploaded and will not use. */
async function removeUpload(h: HostRun): Promise<void> {
  const id = h.ctx.settings.releaseId
  await runStep(
    h.conn.remote,
    'remove the unused release',
    toShell(['rm', '-rf', h.layout.release(id), h.layout.incoming(id)]),
    { timeoutMs: 60_000 }
  )
}

/**
 * Uploads the release (into an id that is new on the host) while preflight runs, and
 * returns preflight's snapshot. When preflight fails, the upload is removed again and
 * preflight's error thrown: nothing else was written.
 */
async function uploadBesidePreflight(
  h: HostRun,
  checked: Promise<Settled<ServiceSnapshot>>
): Promise<{ snap: ServiceSnapshot; requirements: Requirements }> {
  const { settings, log } = h.ctx
  const held = deferredLog(log)
  const uploading = settle(
    timed(h.result, 'upload', () =>
      uploadNewRelease({ ...h.ctx, remote: h.conn.remote, layout: h.layout, log: held })
    )
  )
  const [pre, up] = await Promise.all([checked, uploading])
  if (!pre.ok) {
    if (up.ok || !(up.error instanceof ReleaseExistsError)) {
      await reconnectIfDropped({ conn: h.conn, log })
        .then(() => removeUpload(h))
        .then(
          () => log.info(`preflight failed: removed the uploaded release ${settings.releaseId}`),
          (e: Error) =>
            log.warning(
              `preflight failed, and the uploaded ${h.layout.release(settings.releaseId)} could not be removed: ${e.message}`
            )
        )
    }
    throw pre.error
  }
  await held.replay(`Upload release ${settings.releaseId}`)
  if (up.ok) return { snap: pre.value, requirements: up.value.requirements }
  if (up.error instanceof ReleaseExistsError) throw up.error
  return undoPrepared(h, pre.value, up.error)
}

/** A failure before the switch: the uploaded release goes, the log records it, nothing else changed. */
async function undoPrepared(h: HostRun, snap: ServiceSnapshot, error: unknown): Promise<never> {
  const { settings, log } = h.ctx
  const id = settings.releaseId
  h.result.error = (error as Error).message
  try {
    await reconnectIfDropped({ conn: h.conn, log })
  } catch (reconnectError) {
    h.result.error += `\nCould not reconnect to clean up: ${(reconnectError as Error).message}. The lock ${h.layout.lockDir} is taken over after lock-stale-after; ${snap.currentRelease ?? 'nothing'} still serves.`
    throw error
  }
  await removeUpload(h)
  log.info(`removed the unused release ${id}; ${snap.currentRelease ?? 'nothing'} still serves`)
  const written = await appendReleaseLog(
    h.conn.remote,
    h.layout.logFile,
    logEntry(h.ctx.run, {
      id,
      previous: snap.currentRelease,
      host: h.conn.remote.target.label,
      action: 'deploy',
      outcome: 'failed'
    })
  )
  if (!written) log.warning(`could not append to the release log ${h.layout.logFile}`)
  throw error
}

/** Where a failed cutover goes back to: the previous release, or no release (a first deploy). */
async function fallbackFor(h: HostRun, snap: ServiceSnapshot): Promise<Fallback | undefined> {
  if (snap.firstDeploy) return { kind: 'remove-current' }
  const previous = snap.currentRelease
  // current pointed somewhere that is not a release (a hand-made server): back to exactly that
  if (!previous && snap.currentOther && snap.currentDir) {
    const back = planFor(h.ctx.settings, snap, snap.currentOther, snap.currentDir, true)
    return { kind: 'release', plan: { ...back, link: snap.currentOther, healthExpect: undefined } }
  }
  if (!previous) return undefined
  const dir = snap.currentDir ?? (await realPath(h.conn.remote, h.layout.release(previous)))
  return { kind: 'release', plan: planFor(h.ctx.settings, snap, previous, dir, true) }
}

interface Prepared {
  /** Physical path of the new release. */
  newDir: string
  fallback?: Fallback
}

async function prepare(
  h: HostRun,
  snap: ServiceSnapshot,
  requirements: Requirements
): Promise<Prepared> {
  const remote = h.conn.remote
  // The release's physical path and the fallback are read beside the checks.
  const newDir = settle(realPath(remote, h.layout.release(h.ctx.settings.releaseId)))
  const fallback = settle(fallbackFor(h, snap))
  await prepareRelease({
    ...h.ctx,
    remote,
    snap,
    requirements,
    layout: h.layout,
    result: h.result
  })
  const [dir, back] = await Promise.all([newDir, fallback])
  if (!dir.ok) throw dir.error
  if (!back.ok) throw back.error
  return { newDir: dir.value, fallback: back.value }
}

async function switchToNew(h: HostRun, snap: ServiceSnapshot, prepared: Prepared): Promise<void> {
  const { settings, log } = h.ctx
  const plan = planFor(settings, snap, settings.releaseId, prepared.newDir, false)
  const ctx = cutoverContext(h.conn, settings, snap, {
    log,
    result: h.result,
    since: h.since,
    run: h.ctx.run
  })
  if (snap.blueGreen) {
    await runBlueGreenCutover(
      {
        action: 'deploy',
        plan,
        from: servingState(snap),
        bg: snap.blueGreen,
        keepWarm: settings.keepPreviousWarm,
        back: prepared.fallback?.kind === 'release' ? prepared.fallback.plan : undefined
      },
      ctx
    )
    h.result.status = 'deployed'
    return
  }
  await runCutover(
    {
      action: 'deploy',
      plan,
      from: servingState(snap),
      fallback: prepared.fallback,
      restartDeadMaster: false
    },
    ctx
  )
  h.result.status = 'deployed'
}

async function prune(h: HostRun, snap: ServiceSnapshot): Promise<void> {
  const { settings, log } = h.ctx
  const [all, entries] = await Promise.all([
    listReleases(h.conn.remote, h.layout),
    readReleaseLog(h.conn.remote, h.layout.logFile)
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
  if (doomed.length === 0) return
  await runStep(
    h.conn.remote,
    'prune old releases',
    toShell(['rm', '-rf', ...doomed.map(r => h.layout.release(r))]),
    { timeoutMs: PRUNE_TIMEOUT_MS }
  )
  log.info(
    `pruned ${doomed.join(', ')} (keeping ${settings.keepReleases} that did not fail, the previous release ${snap.currentRelease ?? '-'}, the master's start directory ${masterRelease ?? '-'} and what a rollback would choose)`
  )
}

function reportFailure(h: HostRun, switched: boolean): void {
  const id = h.ctx.settings.releaseId
  const outcome = h.result.rolledBack
    ? `rolled back to ${h.result.previousRelease}`
    : switched
      ? 'NOT rolled back'
      : 'nothing switched'
  h.ctx.log.error(
    `${h.result.error}${h.result.excerpt ? `\n\n${h.result.excerpt}` : ''}`,
    `deploy of ${id} failed (${outcome})`
  )
}

export async function deployHost(connection: RemoteHost, ctx: DeployContext): Promise<HostResult> {
  const { settings } = ctx
  const h: HostRun = {
    conn: { remote: connection, reconnect: ctx.reconnect },
    ctx,
    layout: new ReleaseLayout(settings.releasePath),
    result: newHostResult(connection.target.label),
    since: new Date()
  }
  h.result.release = settings.releaseId
  let switched = false
  try {
    // Preflight reads the host while the lock is taken and the release is uploaded beside
    // it; a failed preflight stops the wait for the lock and removes the upload again.
    const checked = settle(checkedPreflight(h))
    const failed = new AbortController()
    void checked.then(c => c.ok || failed.abort())
    const lock = lockFor(settings, ctx.run, settings.releaseId, { log: ctx.log, result: h.result })
    const options = { ...lock.options, signal: failed.signal }
    const snap = await withLock(h.conn, h.layout.lockDir, lock.owner, options, async () => {
      checkCancelled(ctx.cancellation)
      const { snap, requirements } = await uploadBesidePreflight(h, checked)
      const prepared = await prepare(h, snap, requirements).catch(error =>
        undoPrepared(h, snap, error)
      )
      switched = true
      // Pruning spares the new release, the previous one and the master's: it runs beside
      // the cutover, whose rollback needs none of the others (its lines are logged after it).
      const pruneLog = deferredLog(ctx.log)
      // Under blue-green it waits for the cutover: a failed one gives the idle slot its release back.
      const pruning = () =>
        timed(h.result, 'prune', () => prune({ ...h, ctx: { ...ctx, log: pruneLog } }, snap))
      const [cutover, pruned] = await Promise.allSettled([
        switchToNew(h, snap, prepared),
        snap.blueGreen ? Promise.resolve() : pruning()
      ])
      if (cutover.status === 'fulfilled' && snap.blueGreen) await pruning()
      await pruneLog.replay('Prune')
      if (cutover.status === 'rejected') throw cutover.reason
      if (pruned.status === 'rejected') throw pruned.reason
      return snap
    }).catch(async (error: unknown) => {
      // Preflight names the cause of a lock that could not be taken (e.g. no release-path).
      const c = await checked
      throw c.ok ? error : c.error
    })
    ctx.log.info(`deployed ${settings.releaseId} (previous: ${snap.currentRelease ?? 'none'})`)
  } catch (error) {
    // A blue-green release that failed on its own socket never received traffic.
    if (error instanceof CutoverError && error.nothingSent && !h.result.rolledBack) switched = false
    h.result.error ??= (error as Error).message
    if (ctx.gate?.host === connection.target.label)
      ctx.gate.fail(
        new Error(`the migration host ${ctx.gate.host} failed before its migrations completed`)
      )
    reportFailure(h, switched)
  }
  return h.result
}
