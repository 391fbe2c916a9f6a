// The blue-green strategy: the idle instance starts the release and proves it
// on its own socket before any request reaches it; then live.sock and current
// move in one round trip; Nginx proves it; the old instance stops once its
// accept queue is empty (its workers finish what they hold), or stays warm.
// Its undo: a release that did not prove itself before the switch is stopped
// and nothing else changes; after the switch, traffic moves back first.
import { isRunning } from '../host-facts.js'
import { swapLink } from '../release-layout.js'
import { readUnit } from '../service-state.js'
import { verifyStaticFile } from '../static-check.js'
import { systemd } from '../systemd.js'
import { bindTarget } from '../verification-urls.js'
import { verifyRelease } from '../verify-release.js'
import {
  otherColour,
  slotPath,
  type BlueGreenLayout,
  type Instance
} from '../blue-green/instances.js'
import { tailLines } from '../../transport/remote-command.js'
import { allOf, optional, toShell } from '../../transport/shell-quote.js'
import { reconnectIfDropped } from './driver.js'
import type {
  CutoverContext,
  CutoverPhase,
  CutoverPlan,
  CutoverRequest,
  CutoverStrategy,
  Undo
} from './types.js'

export interface BlueGreenRequest extends CutoverRequest {
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

const units = (ctx: CutoverContext) => systemd(() => ctx.conn.remote, ctx.access)

/** The instance's slot points at the release (the instance is stopped: a running slot never moves). */
async function pinSlot(ctx: CutoverContext, to: Instance, release: string): Promise<void> {
  const slot = slotPath(ctx.layout, to.colour)
  await ctx.conn.remote.exec(
    allOf(['mkdir', '-p', `${ctx.layout.root}/slots`], ...swapLink(`../releases/${release}`, slot)),
    { timeoutMs: 30_000 }
  )
}

/** Proves the instance serves `plan.release`: workers, their directory, health K times on `urls`. */
async function proveInstance(
  ctx: CutoverContext,
  req: BlueGreenRequest,
  to: Instance,
  plan: CutoverPlan,
  urls: { urls: CutoverPlan['urls']; nginxUrl?: CutoverPlan['nginxUrl'] }
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
      ...urls,
      healthChecks: ctx.healthChecks,
      healthExpect: plan.healthExpect,
      timeoutSeconds: ctx.timeoutSeconds,
      broughtUpBy: `${to.unit} started`
    },
    ctx.log
  )
}

/** On the instance's own socket only: no request through Nginx reaches it yet. */
function onOwnSocket(to: Instance, plan: CutoverPlan) {
  return { urls: [bindTarget(`unix:${to.socket}`, plan.urls[0].path)!] }
}

/** After the switch: health through live.sock and Nginx, and the static files Nginx serves. */
async function proveThroughNginx(
  ctx: CutoverContext,
  req: BlueGreenRequest,
  to: Instance,
  plan: CutoverPlan
): Promise<void> {
  await proveInstance(ctx, req, to, plan, { urls: plan.urls, nginxUrl: plan.nginxUrl })
  if (plan.staticFiles)
    await verifyStaticFile(ctx.conn.remote, {
      ...plan.staticFiles,
      releaseDir: plan.releaseDir,
      log: ctx.log
    })
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

/** Stops the instance that failed and gives its slot back; returns what went wrong, if anything. */
async function retireFailed(ctx: CutoverContext, to: Instance): Promise<string | undefined> {
  try {
    await units(ctx).run('stop', to.unit)
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
  const { log, conn } = ctx
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
  const drained = await ctx.step('drain', async () => {
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

/** Where a symlink points ('' when it does not exist). */
async function readLink(ctx: CutoverContext, link: string): Promise<string> {
  const result = await ctx.conn.remote.exec(optional(['readlink', link]), { timeoutMs: 30_000 })
  if (result.code === null) throw new Error('no answer')
  return result.stdout.trim()
}

/** No instance was live before: live.sock goes, and current goes back to what it was, if anything. */
async function undoWithoutOld(ctx: CutoverContext, req: BlueGreenRequest): Promise<string> {
  const { layout, conn } = ctx
  const live = `${layout.root}/live.sock`
  const undo = req.from.release
    ? allOf(['rm', '-f', live], ...swapLink(`releases/${req.from.release}`, layout.current))
    : toShell(['rm', '-f', live, layout.current])
  const removed = await conn.remote.exec(undo, { timeoutMs: 30_000 })
  if (removed.code !== 0) throw new Error(`removing live.sock failed: ${removed.stderr.trim()}`)
  return req.from.release
    ? `live.sock was removed again (no instance served through it before) and ${layout.current} points at releases/${req.from.release} again.`
    : `This was the first deploy: live.sock and ${layout.current} were removed again.`
}

/**
 * The old instance served before the deploy and has stopped since (killed for memory,
 * say): started again on its slot and proven on its own socket before traffic goes back
 * to it. Returns why it could not be, or undefined.
 */
async function startOldAgain(
  ctx: CutoverContext,
  req: BlueGreenRequest,
  old: Instance,
  back: CutoverPlan
): Promise<string | undefined> {
  ctx.log.warning(
    `${old.unit} stopped running during the deploy: starting it again on ${back.release} before traffic goes back to it`
  )
  return ctx
    .step('start old', async () => {
      await units(ctx).run('start', old.unit)
      await ctx.log.group(`Prove ${back.release} on ${old.unit}'s socket ${old.socket}`, () =>
        proveInstance(ctx, oldAsFrom(req), old, back, onOwnSocket(old, back))
      )
    })
    .then(
      () => undefined,
      (error: Error) => error.message
    )
}

/** The request as seen from the old instance: no other release's answer to tell apart. */
const oldAsFrom = (req: BlueGreenRequest): BlueGreenRequest => ({
  ...req,
  from: { ...req.from, release: undefined }
})

/**
 * After a failure past the switch: traffic back to the old instance, then proven.
 * An old instance that stopped during the deploy is started again first; when it cannot
 * be, traffic stays where it is (on the new instance, which answers at least in part).
 * Throws only while traffic may still reach the new one (the links did not move back).
 */
async function switchBack(
  ctx: CutoverContext,
  req: BlueGreenRequest,
  old: Instance | undefined,
  to: Instance
): Promise<Undo> {
  if (!old) return { rolledBack: false, trafficOff: true, note: await undoWithoutOld(ctx, req) }
  let running = isRunning(await readUnit(ctx.conn.remote, old.unit))
  if (!running && req.from.alive && req.back) {
    const failed = await startOldAgain(ctx, req, old, req.back)
    if (failed !== undefined)
      return {
        rolledBack: false,
        trafficOff: false,
        note: `${old.unit} stopped running during the deploy and could not be started again (${failed}): traffic stays on ${to.unit}, the new release, rather than on nothing. sudo journalctl -u ${old.unit} shows why it stopped.`
      }
    running = true
  }
  await pointTrafficAt(ctx, old.socket!, req.from.release)
  const off = { rolledBack: false, trafficOff: true }
  if (!running)
    return {
      ...off,
      note: req.from.alive
        ? `live.sock points at ${old.unit} again, but it stopped running during the deploy: nothing serves. sudo journalctl -u ${old.unit} shows why.`
        : `live.sock points at ${old.unit} again, which is not running (it was not before the deploy either): nothing serves.`
    }
  if (req.back) {
    const back = req.back
    const proven = await ctx
      .step('rollback', () =>
        ctx.log.group(`Roll back to ${back.release}`, () =>
          proveThroughNginx(ctx, oldAsFrom(req), old, back)
        )
      )
      .then(
        () => undefined,
        (error: Error) => error.message
      )
    if (proven !== undefined)
      return {
        ...off,
        note: `Traffic is back on ${old.unit}, but ${back.release} did not prove itself there either: ${proven}`
      }
  }
  return {
    rolledBack: true,
    trafficOff: true,
    instance: old.unit,
    note: `Traffic is back on ${old.unit} (${req.from.release}).`
  }
}

/** The blue-green strategy for one request. */
export function blueGreenCutover(req: BlueGreenRequest, ctx: CutoverContext): CutoverStrategy {
  const { to, old, warm } = chooseInstance(req.bg, req.plan.release)
  const { log } = ctx
  const release = req.plan.release
  let moved = false

  /** After a failure past the switch: traffic back, then the new instance drained and stopped. */
  const undoSwitch = async (): Promise<Undo> => {
    // A shared venv the deploy changed: the old instance's later imports read it.
    const prepared = req.beforeBack ? await req.beforeBack() : ''
    if (prepared) log.info(prepared)
    const undo = await switchBack(ctx, req, old, to).catch(async (e: Error): Promise<Undo> => {
      // Whether traffic can still reach the new instance is what live.sock says now.
      const points = await readLink(ctx, `${ctx.layout.root}/live.sock`).catch(() => to.socket)
      const trafficOff = points !== to.socket
      return {
        rolledBack: false,
        trafficOff,
        note: trafficOff
          ? `Switching back failed: ${e.message}; live.sock points at ${points || 'nothing'}, not at ${to.unit}.`
          : `Switching back failed too: ${e.message}. ${to.unit} keeps running: live.sock still points at it.`
      }
    })
    if (!undo.trafficOff) return undo
    await drainQueue(ctx, to).catch(() => undefined)
    const stopped = await retireFailed(ctx, to)
    return stopped ? { ...undo, note: `${undo.note}\n${stopped}` } : undo
  }

  return {
    evidenceUnit: to.unit,
    whereToLook: `check where ${ctx.layout.root}/live.sock points`,
    get trafficMoved() {
      return moved
    },
    get instance() {
      return to.unit
    },
    bringUp: async () => {
      if (warm) log.info(`${to.unit} already runs ${release} (kept warm): proving it`)
      else {
        // Stopped first also when it crash-loops (activating): systemd would restart it on the new slot.
        if (to.info.activeState !== 'inactive') {
          log.info(`stopping ${to.unit}, idle on ${to.slotRelease ?? 'another release'}`)
          await ctx.step('stop idle', () => units(ctx).run('stop', to.unit))
        }
        await pinSlot(ctx, to, release)
        log.info(`slots/${to.colour} -> releases/${release}; starting ${to.unit}`)
        await ctx.step('start', () => units(ctx).run('start', to.unit))
      }
      await ctx.step('prove', () =>
        log.group(`Prove ${release} on ${to.unit}'s socket ${to.socket}`, () =>
          proveInstance(ctx, req, to, req.plan, onOwnSocket(to, req.plan))
        )
      )
    },
    moveTraffic: () =>
      ctx.step('switch', async () => {
        log.info(`switching live.sock to ${to.unit} and current to releases/${release}`)
        moved = true
        await pointTrafficAt(ctx, to.socket!, release)
      }),
    prove: () =>
      ctx.step('verify', () =>
        log.group(`Verify ${release} serves through Nginx`, () =>
          proveThroughNginx(ctx, req, to, req.plan)
        )
      ),
    undo: async (phase: CutoverPhase): Promise<Undo> => {
      if (phase !== 'bring-up') return undoSwitch()
      const stopped = await retireFailed(ctx, to)
      return {
        rolledBack: false,
        trafficOff: true,
        note: [`No request reached ${release}: traffic never moved.`, stopped]
          .filter(Boolean)
          .join('\n')
      }
    },
    retire: async () => {
      // A crash-looping old instance (activating) is stopped even under warm: it serves nothing.
      if (old && req.keepWarm && req.from.alive)
        log.info(`${old.unit} stays warm on ${req.from.release} (keep-previous: warm)`)
      else if (old && old.info.activeState !== 'inactive')
        await ctx
          .step('stop old', async () => {
            await drainQueue(ctx, old)
            await units(ctx).run('stop', old.unit)
          })
          .then(
            () =>
              log.info(
                `stopped ${old.unit} once its queue was empty (its in-flight requests finished)`
              ),
            (error: Error) =>
              log.warning(
                `${old.unit} keeps running: ${error.message}. Both instances use memory until it stops.`
              )
          )
    }
  }
}
