// The one cutover: every path that changes what serves (a deploy, its
// automatic rollback, `mode: rollback` and a fleet rollback) runs it. It
// switches `current`, reloads (or starts/restarts a master that is not
// running), proves the release serves, runs the traffic probe, collects the
// evidence of a failure, goes back when told how, and records the outcome in
// the release log.
import { sudoersLine, type Access } from './access.js'
import type { HostResult } from '../core/host-result.js'
import { timed } from '../core/host-result.js'
import type { Log } from '../core/log.js'
import { isRunning, type DirAccess } from './host-facts.js'
import { collectEvidence, warnIfRequestsFailed } from './evidence.js'
import type { StaticLocation } from './nginx/nginx-config.js'
import { switchCurrent, type ReleaseLayout } from './release-layout.js'
import { appendReleaseLog, logEntry, type ReleaseLogEntry } from './release-log.js'
import { asRoot, serviceCommands } from './service-commands.js'
import { readUnit } from './service-state.js'
import { verifyStaticFile } from './static-check.js'
import { startProbe, type TrafficProbe } from './traffic-probe.js'
import { verifyRelease, VerifyError, type VerifyExpectations } from './verify-release.js'
import type { HttpTarget } from '../transport/http-target.js'
import { tailLines } from '../transport/remote-command.js'
import { toShell } from '../transport/shell-quote.js'
import { replaceIfDropped, type Connection, type RemoteHost } from '../transport/ssh-connection.js'

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
  urls: HttpTarget[]
  healthExpect?: string
  /** Nginx serves the release's static files itself: one is compared after the switch. */
  staticFiles?: { nginx: HttpTarget; location: StaticLocation }
}

/** How to undo a failed cutover: switch back to a release, or remove `current` (a first deploy). */
export type Fallback = { kind: 'release'; plan: CutoverPlan } | { kind: 'remove-current' }

export interface CutoverRequest {
  action: ReleaseLogEntry['action']
  plan: CutoverPlan
  from: ServingState
  fallback?: Fallback
  /** A reload whose master dies (a crash loop) is followed by a restart instead of failing. */
  restartDeadMaster: boolean
}

export interface CutoverContext {
  conn: Connection
  service: string
  layout: ReleaseLayout
  access: Access
  healthChecks: number
  timeoutSeconds: number
  nginxErrorLog: string
  /** Requested continuously from the switch until the end; undefined: no probe. */
  probeUrl?: HttpTarget
  log: Log
  result: HostResult
  since: Date
  run: { sha: string; actor: string; runUrl: string }
}

/** Why a cutover failed, with the log excerpt collected on the host. */
export class CutoverError extends Error {
  constructor(
    message: string,
    readonly masterDied: boolean,
    /** systemctl refused or failed before anything reached the master: it serves as before. */
    readonly nothingSent = false
  ) {
    super(message)
    this.name = 'CutoverError'
  }
}

type Action = 'reload' | 'start' | 'restart'

/** Reload a running master; start an inactive unit; restart a failed or crash-looping one. */
export function bringUpAction(from: Pick<ServingState, 'alive' | 'activeState'>): Action {
  if (from.alive) return 'reload'
  return from.activeState === 'inactive' ? 'start' : 'restart'
}

async function bringUp(ctx: CutoverContext, action: Action, note: string): Promise<void> {
  const { conn, service, log } = ctx
  log.info(`${action === 'reload' ? 'reloading' : `${action}ing`} ${service}`)
  const result = await conn.remote.exec(toShell(asRoot(serviceCommands[action](service))), {
    timeoutMs: 120_000
  })
  if (result.code === 0) {
    log.info(`systemctl ${action} ${service}${note}`)
    return
  }
  const refused = /password is required|not allowed|may not run/i.test(result.stderr)
  throw new CutoverError(
    refused
      ? `sudo refused systemctl ${action} ${service} for ${conn.remote.target.user}: the deploy user needs ${sudoersLine(ctx.access, service, [action])}`
      : `systemctl ${action} ${service} ${result.code === null ? 'got no answer (the connection may have dropped)' : `failed (exit ${result.code})`}: ${tailLines(result.stderr, 8)}`,
    false,
    refused
  )
}

/** Proves `plan` serves: the master (kept after a reload), its workers, health and static files. */
async function prove(
  ctx: CutoverContext,
  plan: CutoverPlan,
  from: ServingState,
  reloaded: boolean
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
    oldReleaseDir: from.releaseDir,
    oldRelease: from.release,
    urls: plan.urls,
    healthChecks: ctx.healthChecks,
    healthExpect: plan.healthExpect,
    timeoutSeconds: ctx.timeoutSeconds
  }
  await timed(ctx.result, 'verify', () =>
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

/** Whether the master is gone after a failed reload (so only a restart brings a release up). */
async function masterGone(remote: RemoteHost, service: string, error: unknown): Promise<boolean> {
  if (error instanceof VerifyError || error instanceof CutoverError)
    if (error.masterDied) return true
  const unit = await readUnit(remote, service).catch(() => undefined)
  return unit !== undefined && (unit.mainPid === 0 || unit.activeState !== 'active')
}

/** Switch `current`, bring the release up, prove it. */
export async function switchAndProve(
  ctx: CutoverContext,
  plan: CutoverPlan,
  from: ServingState,
  restartDeadMaster: boolean,
  bring = true,
  what: string = 'reload'
): Promise<void> {
  await timed(ctx.result, 'switch', async () => {
    ctx.log.info(`switching current to ${plan.link ?? `releases/${plan.release}`}`)
    await switchCurrent(ctx.conn.remote, ctx.layout, plan.release, plan.link)
  })
  // Nothing reached the master (a refused reload): switching current back is the whole rollback.
  if (!bring) return prove(ctx, plan, { ...from, workers: [] }, true)
  const action = bringUpAction(from)
  try {
    const why = from.alive ? '' : ' (the master was not running)'
    await timed(ctx.result, action, () => bringUp(ctx, action, why))
    await prove(ctx, plan, from, action === 'reload')
  } catch (error) {
    if (action !== 'reload' || !restartDeadMaster) throw error
    if (!(await masterGone(ctx.conn.remote, ctx.service, error))) throw error
    ctx.log.warning(
      `the master died during the ${what} (${(error as Error).message.split('\n')[0]}); restarting ${ctx.service}`
    )
    await timed(ctx.result, 'restart', () => bringUp(ctx, 'restart', ' (the master had died)'))
    await prove(ctx, plan, from, false)
  }
}

/** After a failure: a new connection when the old one dropped. */
export function reconnectIfDropped(ctx: Pick<CutoverContext, 'conn' | 'log'>): Promise<void> {
  return replaceIfDropped(ctx.conn, m => ctx.log.warning(m))
}

async function undoFirstDeploy(ctx: CutoverContext): Promise<string> {
  const { conn, service, layout } = ctx
  await conn.remote.exec(toShell(['rm', '-f', layout.current]), { timeoutMs: 30_000 })
  const stop = await conn.remote.exec(toShell(asRoot(serviceCommands.stop(service))), {
    timeoutMs: 60_000
  })
  return stop.code === 0
    ? `This was the first deploy: ${layout.current} was removed again and ${service} is stopped.`
    : `This was the first deploy: ${layout.current} was removed again, but ${service} could not be stopped (${stop.stderr.trim() || `exit ${stop.code}`}); it keeps restarting without current.`
}

/** After the switch failed: go back as the fallback says. Never throws; the result says how it went. */
async function fallBack(ctx: CutoverContext, req: CutoverRequest, cause: unknown): Promise<void> {
  const { result, log } = ctx
  const fallback = req.fallback
  if (!fallback) return
  if (fallback.kind === 'remove-current') {
    const note = await undoFirstDeploy(ctx).catch(e => `Undoing the first deploy failed: ${e}`)
    result.error += `\n${note}`
    log.error(note)
    return
  }
  const back = fallback.plan
  const now: ServingState = {
    ...req.from,
    release: req.plan.release,
    releaseDir: req.plan.releaseDir
  }
  const unit = await readUnit(ctx.conn.remote, ctx.service).catch(() => undefined)
  const state: ServingState = unit
    ? {
        ...now,
        activeState: unit.activeState,
        subState: unit.subState,
        mainPid: unit.mainPid,
        alive: isRunning(unit),
        workers: []
      }
    : now
  await timed(result, 'rollback', () =>
    log.group(`Roll back to ${back.release}`, () =>
      switchAndProve(
        ctx,
        back,
        state,
        true,
        !(cause instanceof CutoverError && cause.nothingSent && state.alive),
        'rollback'
      )
    )
  ).then(
    () => {
      result.status = 'rolled-back'
      result.rolledBack = true
      log.info(`rolled back: ${back.release} serves again`)
    },
    (error: Error) => {
      result.error += `\nRollback to ${back.release} failed too: ${error.message}`
      log.error(`rollback to ${back.release} failed: ${error.message}`)
    }
  )
}

/** Stops the traffic probe and reports what it saw. */
export async function stopProbe(
  probe: TrafficProbe | undefined,
  ctx: CutoverContext
): Promise<void> {
  if (!probe) return
  const p = await probe.stop()
  ctx.result.probeRequests = p.requests
  ctx.result.failedRequests = p.failed
  ctx.log.info(
    `traffic probe: ${p.failed} of ${p.requests} requests failed${p.samples.length ? ` (${p.samples.join('; ')})` : ''}; releases seen: ${p.releases.join(' -> ') || 'none'}`
  )
}

/** Appends the cutover's outcome to the release log (a failure to write is a warning). */
export async function record(
  ctx: CutoverContext,
  req: Pick<CutoverRequest, 'action' | 'plan' | 'from'>,
  ok: boolean
): Promise<void> {
  const { result } = ctx
  const outcome = ok
    ? req.action === 'deploy'
      ? 'deployed'
      : 'rolled-back'
    : result.rolledBack
      ? 'rolled-back'
      : 'failed'
  const written = await appendReleaseLog(
    ctx.conn.remote,
    ctx.layout.logFile,
    logEntry(ctx.run, {
      id: req.plan.release,
      previous: req.from.release,
      host: ctx.conn.remote.target.label,
      action: req.action,
      outcome
    })
  )
  if (!written) ctx.log.warning(`could not append to the release log ${ctx.layout.logFile}`)
}

/** The traffic probe, from the switch to the end, while a master serves. */
export function probeFrom(ctx: CutoverContext, from: ServingState): TrafficProbe | undefined {
  return ctx.probeUrl && from.alive
    ? startProbe(ctx.conn.remote, ctx.probeUrl, { maxSeconds: ctx.timeoutSeconds * 2 + 120 })
    : undefined
}

/** After a failure: a new connection if the old one dropped, or a CutoverError saying what to check. */
export async function reconnectToCleanUp(
  ctx: CutoverContext,
  probe: TrafficProbe | undefined,
  check: string
): Promise<void> {
  try {
    await reconnectIfDropped(ctx)
  } catch (reconnectError) {
    await stopProbe(probe, ctx).catch(() => undefined)
    ctx.result.error += `\nCould not reconnect to clean up: ${(reconnectError as Error).message}. The lock ${ctx.layout.lockDir} is taken over after lock-stale-after; ${check}.`
    throw new CutoverError(ctx.result.error ?? '', false)
  }
}

/**
 * Runs one cutover and records it. On success result.status is left to the
 * caller; on failure the error carries the evidence, the fallback has run
 * (result.rolledBack tells whether it worked), and CutoverError is thrown.
 */
export async function runCutover(req: CutoverRequest, ctx: CutoverContext): Promise<void> {
  const { result } = ctx
  const probe = probeFrom(ctx, req.from)
  try {
    await switchAndProve(ctx, req.plan, req.from, req.restartDeadMaster, true, req.action)
  } catch (error) {
    result.error = (error as Error).message
    await reconnectToCleanUp(ctx, probe, `check which release ${ctx.layout.current} points at`)
    result.excerpt = await collectEvidence(ctx.conn.remote, {
      service: ctx.service,
      since: ctx.since,
      nginxErrorLog: ctx.nginxErrorLog
    }).catch(e => `(could not collect logs: ${(e as Error).message})`)
    await fallBack(ctx, req, error)
    await stopProbe(probe, ctx).catch(() => undefined)
    await record(ctx, req, false)
    throw new CutoverError(result.error, false)
  }
  await finishCutover(ctx, req, probe, ctx.service)
}

/** After a proven cutover: the probe's count (a warning with evidence if requests failed), the log entry. */
export async function finishCutover(
  ctx: CutoverContext,
  req: Pick<CutoverRequest, 'action' | 'plan' | 'from'>,
  probe: TrafficProbe | undefined,
  service: string
): Promise<void> {
  await stopProbe(probe, ctx)
  await warnIfRequestsFailed(ctx.conn.remote, ctx.result, ctx.log, {
    service,
    since: ctx.since,
    nginxErrorLog: ctx.nginxErrorLog,
    what: req.action
  })
  await record(ctx, req, true)
}
