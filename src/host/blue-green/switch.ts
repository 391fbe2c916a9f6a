// The blue-green cutover: the idle instance starts the release and proves it
// on its own socket before any request reaches it; then live.sock and current
// move in one round trip; Nginx proves it; the old instance stops once its
// accept queue is empty (its workers finish what they hold), or stays warm.
// A release that does not prove itself before the switch is stopped and
// nothing else changes; a failure after the switch moves traffic back.
import type { CutoverContext, CutoverPlan, ServingState } from '../cutover.js'
import {
  CutoverError,
  finishCutover,
  probeFrom,
  reconnectIfDropped,
  reconnectToCleanUp,
  record,
  stopProbe
} from '../cutover.js'
import { timed } from '../../action/host-result.js'
import { sudoersLine } from '../access.js'
import { collectEvidence } from '../evidence.js'
import { isRunning } from '../host-facts.js'
import { swapLink } from '../release-layout.js'
import type { ReleaseLogEntry } from '../release-log.js'
import { asRoot, serviceCommands } from '../service-commands.js'
import { readUnit } from '../service-state.js'
import { verifyStaticFile } from '../static-check.js'
import { bindTarget } from '../verification-urls.js'
import { verifyRelease } from '../verify-release.js'
import { tailLines } from '../../transport/remote-command.js'
import { allOf, optional, toShell } from '../../transport/shell-quote.js'
import { otherColour, slotPath, type BlueGreenLayout, type Instance } from './instances.js'

export interface BlueGreenRequest {
  action: ReleaseLogEntry['action']
  /** The release to serve; its urls reach it through live.sock and Nginx. */
  plan: CutoverPlan
  from: ServingState
  bg: BlueGreenLayout
  /** The old instance keeps running after the switch (keep-previous: warm). */
  keepWarm: boolean
  /** What proves the old release again if the switch has to be undone. */
  back?: CutoverPlan
}

/** Where the release goes: the instance that is not live, and whether it already runs the release. */
export function chooseInstance(
  bg: BlueGreenLayout,
  release: string
): { to: Instance; old?: Instance; warm: boolean } {
  const old = bg.live ? bg.instances[bg.live] : undefined
  const to = bg.instances[bg.live ? otherColour(bg.live) : 'blue']
  return { to, old, warm: isRunning(to.info) && to.slotRelease === release }
}

async function systemctl(
  ctx: CutoverContext,
  action: 'start' | 'stop',
  unit: string
): Promise<void> {
  const result = await ctx.conn.remote.exec(toShell(asRoot(serviceCommands[action](unit))), {
    timeoutMs: 120_000
  })
  if (result.code === 0) return
  const refused = /password is required|not allowed|may not run/i.test(result.stderr)
  throw new Error(
    refused
      ? `sudo refused systemctl ${action} ${unit} for ${ctx.conn.remote.target.user}: the deploy user needs ${sudoersLine(ctx.access, unit, [action])}`
      : `systemctl ${action} ${unit} failed (exit ${result.code ?? 'none'}): ${tailLines(result.stderr, 8)}`
  )
}

/** The instance's slot points at the release (the instance is stopped: a running slot never moves). */
async function pinSlot(ctx: CutoverContext, to: Instance, release: string): Promise<void> {
  const slot = slotPath(ctx.layout, to.colour)
  await ctx.conn.remote.exec(
    allOf(['mkdir', '-p', `${ctx.layout.root}/slots`], ...swapLink(`../releases/${release}`, slot)),
    { timeoutMs: 30_000 }
  )
}

/** Proves the instance serves `plan.release` on its own socket: workers, their directory, health K times. */
async function proveOnSocket(
  ctx: CutoverContext,
  req: BlueGreenRequest,
  to: Instance,
  plan: CutoverPlan,
  urls = [bindTarget(`unix:${to.socket}`, plan.urls[0].path)!]
): Promise<void> {
  await verifyRelease(
    ctx.conn.remote,
    {
      service: to.unit,
      release: plan.release,
      releaseDir: plan.releaseDir,
      oldWorkers: [],
      workers: plan.expectedWorkers,
      dirs: plan.dirs,
      processes: plan.processes,
      oldRelease: req.from.release,
      oldReleaseDir: req.from.releaseDir,
      urls,
      healthChecks: ctx.healthChecks,
      healthExpect: plan.healthExpect,
      timeoutSeconds: ctx.timeoutSeconds,
      broughtUpBy: `${to.unit} started`
    },
    ctx.log
  )
}

/** Stop the idle instance if it runs another release, pin the release in its slot, start it, prove it. */
async function bringUpIdle(
  ctx: CutoverContext,
  req: BlueGreenRequest,
  to: Instance,
  warm: boolean
): Promise<void> {
  const { log, result } = ctx
  const release = req.plan.release
  if (warm) log.info(`${to.unit} already runs ${release} (kept warm): proving it`)
  else {
    // Stopped first also when it crash-loops (activating): systemd would restart it on the new slot.
    if (to.info.activeState !== 'inactive') {
      log.info(`stopping ${to.unit}, idle on ${to.slotRelease ?? 'another release'}`)
      await timed(result, 'stop idle', () => systemctl(ctx, 'stop', to.unit))
    }
    await pinSlot(ctx, to, release)
    log.info(`slots/${to.colour} -> releases/${release}; starting ${to.unit}`)
    await timed(result, 'start', () => systemctl(ctx, 'start', to.unit))
  }
  await timed(result, 'prove', () =>
    log.group(`Prove ${release} on ${to.unit}'s socket ${to.socket}`, () =>
      proveOnSocket(ctx, req, to, req.plan)
    )
  )
}

/** live.sock, then current, each in one rename, in one round trip. */
async function pointTrafficAt(
  ctx: CutoverContext,
  socket: string,
  release?: string
): Promise<void> {
  const live = `${ctx.layout.root}/live.sock`
  const steps = [
    ...swapLink(socket, live),
    ...(release ? swapLink(`releases/${release}`, ctx.layout.current) : [])
  ]
  const result = await ctx.conn.remote.exec(allOf(...steps), { timeoutMs: 30_000 })
  if (result.code !== 0)
    throw new Error(
      `switching ${live} failed: ${tailLines(result.stderr, 4) || `exit ${result.code}`}`
    )
}

/** After the switch: health through live.sock and Nginx, and the static files Nginx serves. */
async function proveThroughNginx(
  ctx: CutoverContext,
  req: BlueGreenRequest,
  to: Instance,
  plan: CutoverPlan
): Promise<void> {
  await proveOnSocket(ctx, req, to, plan, plan.urls)
  if (plan.staticFiles)
    await verifyStaticFile(ctx.conn.remote, {
      ...plan.staticFiles,
      releaseDir: plan.releaseDir,
      log: ctx.log
    })
}

/** Stops the instance that failed and gives its slot back (never throws; returns what went wrong). */
async function retireFailed(ctx: CutoverContext, to: Instance): Promise<string | undefined> {
  try {
    await systemctl(ctx, 'stop', to.unit)
    const slot = slotPath(ctx.layout, to.colour)
    await ctx.conn.remote.exec(
      to.slotTarget ? allOf(...swapLink(to.slotTarget, slot)) : toShell(['rm', '-f', slot]),
      { timeoutMs: 30_000 }
    )
    ctx.log.info(`stopped ${to.unit}`)
    return undefined
  } catch (error) {
    return `${to.unit} could not be stopped: ${(error as Error).message}`
  }
}

/**
 * Waits until no connection waits in the instance's accept queue: stopping
 * Gunicorn drops queued connections, while its workers finish the requests
 * they hold. Traffic has moved off it before.
 */
async function drainQueue(ctx: CutoverContext, old: Instance): Promise<void> {
  const { log, result, conn } = ctx
  const waitForEmptyQueue = () =>
    conn.remote.exec(
      toShell([
        'sh',
        '-c',
        'command -v ss >/dev/null || exit 4; sleep 0.1; i=0; while [ $i -lt 300 ]; do q=$(ss -xlnH 2>/dev/null | awk -v s="$1" \'$5 == s { print $3; exit }\'); { [ -z "$q" ] || [ "$q" = 0 ]; } && exit 0; i=$((i+1)); sleep 0.1; done; exit 3',
        'sh',
        old.socket ?? ''
      ]),
      { timeoutMs: 60_000 }
    )
  const drained = await timed(result, 'drain', async () => {
    const first = await waitForEmptyQueue()
    if (first.code !== null) return first
    // No answer: the connection dropped. The stop and the release log need a new one.
    await reconnectIfDropped(ctx)
    return waitForEmptyQueue()
  })
  if (drained.code === 4) {
    log.warning(
      `ss (iproute2) is missing: the old instance's accept queue cannot be read, so ${old.unit} stops after 1 s instead. Fix: apt install iproute2`
    )
    await new Promise(r => setTimeout(r, 1000))
  } else if (drained.code !== 0)
    log.warning(
      `${old.socket} still had queued connections after 30 s; stopping ${old.unit} anyway`
    )
}

/** The old instance, once traffic moved off it: drained, then stopped (a failure is a warning). */
async function retireOld(ctx: CutoverContext, old: Instance): Promise<void> {
  const { log, result } = ctx
  await timed(result, 'stop old', async () => {
    await drainQueue(ctx, old)
    await systemctl(ctx, 'stop', old.unit)
  }).then(
    () =>
      log.info(`stopped ${old.unit} once its queue was empty (its in-flight requests finished)`),
    (error: Error) =>
      log.warning(
        `${old.unit} keeps running: ${error.message}. Both instances use memory until it stops.`
      )
  )
}

/**
 * After a failure past the switch: traffic back to the old instance. Throws
 * only while traffic may still reach the new one (the links did not move back).
 */
async function switchBack(
  ctx: CutoverContext,
  req: BlueGreenRequest,
  old: Instance | undefined
): Promise<string> {
  const { layout, conn } = ctx
  const live = `${layout.root}/live.sock`
  if (!old) {
    // No instance was live: live.sock did not exist. current goes back to what it was, if anything.
    const undo = req.from.release
      ? allOf(['rm', '-f', live], ...swapLink(`releases/${req.from.release}`, layout.current))
      : toShell(['rm', '-f', live, layout.current])
    const removed = await conn.remote.exec(undo, { timeoutMs: 30_000 })
    if (removed.code !== 0) throw new Error(`removing live.sock failed: ${removed.stderr.trim()}`)
    return req.from.release
      ? `live.sock was removed again (no instance served through it before) and ${layout.current} points at releases/${req.from.release} again.`
      : `This was the first deploy: live.sock and ${layout.current} were removed again.`
  }
  const unit = await readUnit(conn.remote, old.unit)
  await pointTrafficAt(ctx, old.socket!, req.from.release)
  if (!isRunning(unit))
    return req.from.alive
      ? `live.sock points at ${old.unit} again, but it stopped running during the deploy: nothing serves. sudo journalctl -u ${old.unit} shows why.`
      : `live.sock points at ${old.unit} again, which is not running (it was not before the deploy either): nothing serves.`
  if (req.back) {
    const back = req.back
    const proven = await timed(ctx.result, 'rollback', () =>
      ctx.log.group(`Roll back to ${back.release}`, () =>
        proveThroughNginx(ctx, { ...req, from: { ...req.from, release: undefined } }, old, back)
      )
    ).then(
      () => undefined,
      (error: Error) => error.message
    )
    if (proven !== undefined)
      return `Traffic is back on ${old.unit}, but ${back.release} did not prove itself there either: ${proven}`
  }
  ctx.result.rolledBack = true
  ctx.result.status = 'rolled-back'
  ctx.result.instance = old.unit
  return `Traffic is back on ${old.unit} (${req.from.release}).`
}

/** Where a symlink points ('' when it does not exist). */
async function readLink(ctx: CutoverContext, link: string): Promise<string> {
  const result = await ctx.conn.remote.exec(optional(['readlink', link]), { timeoutMs: 30_000 })
  if (result.code === null) throw new Error('no answer')
  return result.stdout.trim()
}

async function evidenceOf(ctx: CutoverContext, unit: string): Promise<void> {
  ctx.result.excerpt = await collectEvidence(ctx.conn.remote, {
    service: unit,
    since: ctx.since,
    nginxErrorLog: ctx.nginxErrorLog
  }).catch(e => `(could not collect logs: ${(e as Error).message})`)
}

/**
 * Runs one blue-green cutover and records it. On failure result.error carries
 * the cause and the journal excerpt, traffic is where it was (result.rolledBack
 * when it had moved and came back), and CutoverError is thrown: `nothingSent`
 * when no request could have reached the new release.
 */
export async function runBlueGreenCutover(
  req: BlueGreenRequest,
  ctx: CutoverContext
): Promise<void> {
  const { result, log } = ctx
  const { to, old, warm } = chooseInstance(req.bg, req.plan.release)
  const probe = probeFrom(ctx, req.from)
  const fail = async (error: unknown, switched: boolean): Promise<never> => {
    result.error = (error as Error).message
    await reconnectToCleanUp(ctx, probe, `check where ${ctx.layout.root}/live.sock points`)
    const notes: string[] = []
    let trafficOff = !switched
    if (switched)
      notes.push(
        await switchBack(ctx, req, old).then(
          note => ((trafficOff = true), note),
          async (e: Error) => {
            // Whether traffic can still reach the new instance is what live.sock says now.
            const points = await readLink(ctx, `${ctx.layout.root}/live.sock`).catch(
              () => to.socket
            )
            trafficOff = points !== to.socket
            return trafficOff
              ? `Switching back failed: ${e.message}; live.sock points at ${points || 'nothing'}, not at ${to.unit}.`
              : `Switching back failed too: ${e.message}. ${to.unit} keeps running: live.sock still points at it.`
          }
        )
      )
    else notes.push(`No request reached ${req.plan.release}: traffic never moved.`)
    // The excerpt once traffic is back (the journal keeps what the new instance wrote).
    await evidenceOf(ctx, to.unit)
    if (trafficOff) {
      if (switched) await drainQueue(ctx, to).catch(() => undefined)
      const stopped = await retireFailed(ctx, to)
      if (stopped) notes.push(stopped)
    }
    result.error += `\n${notes.join('\n')}`
    log.error(notes.join('\n'))
    await stopProbe(probe, ctx).catch(() => undefined)
    await record(ctx, req, false)
    throw new CutoverError(result.error, false, !switched)
  }
  await bringUpIdle(ctx, req, to, warm).catch(error => fail(error, false))
  await timed(result, 'switch', async () => {
    log.info(`switching live.sock to ${to.unit} and current to releases/${req.plan.release}`)
    await pointTrafficAt(ctx, to.socket!, req.plan.release)
  }).catch(error => fail(error, true))
  await timed(result, 'verify', () =>
    log.group(`Verify ${req.plan.release} serves through Nginx`, () =>
      proveThroughNginx(ctx, req, to, req.plan)
    )
  ).catch(error => fail(error, true))
  // A crash-looping old instance (activating) is stopped even under warm: it serves nothing.
  if (old && req.keepWarm && req.from.alive)
    log.info(`${old.unit} stays warm on ${req.from.release} (keep-previous: warm)`)
  else if (old && old.info.activeState !== 'inactive') await retireOld(ctx, old)
  result.instance = to.unit
  await finishCutover(ctx, req, probe, to.unit)
}
