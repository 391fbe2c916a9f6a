// Moves the companions (restart-services) to a release once the web release is
// proven: each is restarted (or reloaded where its unit defines ExecReload),
// side by side, and proven: active, a new main PID after a restart, its
// processes working in the release, and still so STABLE_SECONDS later. The
// step's undo, run once the web release is back, moves every companion it
// touched back the same way. Stopping is systemd's: TimeoutStopSec is how long
// running tasks get to finish.
import type { CompanionReport } from '../../core/host-result.js'
import type { AfterProof, CutoverContext } from '../cutover/types.js'
import { PS_TREE, parsePs, type ProcessView } from '../gunicorn/gunicorn-processes.js'
import { asRoot, serviceCommands } from '../service-commands.js'
import { readUnit, workingDirectories } from '../service-state.js'
import { systemd, SystemctlError } from '../systemd.js'
import { optional } from '../../transport/shell-quote.js'
import type { RemoteHost } from '../../transport/ssh-connection.js'
import type { CompanionFacts } from './companion-facts.js'

/** How long a companion must stay up, with the same main process, after it was proven. */
export const STABLE_SECONDS = 5

/** What happened to one companion, for the hosts output and the job summary. */
export type CompanionResult = CompanionReport

/** Where a companion goes: a release, and its physical directory. */
export interface CompanionTarget {
  release: string
  releaseDir: string
}

/** The process and its descendants, from one ps of the whole tree (undefined: hidden). */
async function processesOf(
  remote: RemoteHost,
  mainPid: number,
  view: ProcessView
): Promise<number[] | undefined> {
  if (view === 'hidden') return [mainPid]
  const tree = view === 'sudo' ? asRoot(serviceCommands.psTree()) : PS_TREE
  const ps = parsePs((await remote.exec(optional(tree), { timeoutMs: 30_000 })).stdout)
  const below = new Set([mainPid])
  for (let grew = true; grew;) {
    grew = false
    for (const p of ps)
      if (below.has(p.ppid) && !below.has(p.pid)) {
        below.add(p.pid)
        grew = true
      }
  }
  return [...below]
}

const inDir = (dir: string, releaseDir: string) =>
  dir === releaseDir || dir.startsWith(`${releaseDir}/`)

interface Settled {
  mainPid: number
  nRestarts: number
  dirsUnverified: boolean
}

/**
 * Waits until the companion is active with a main process (a new one after a restart)
 * whose processes all work in `to`; throws with what was last seen at the deadline.
 */
async function waitUntilMoved(
  ctx: CutoverContext,
  c: CompanionFacts,
  to: CompanionTarget,
  opts: { oldPid: number; view: ProcessView; deadline: number }
): Promise<Settled> {
  const remote = ctx.conn.remote
  let seen = 'not read yet'
  while (Date.now() < opts.deadline) {
    const unit = await readUnit(remote, c.unit)
    const fresh = c.action === 'reload' || unit.mainPid !== opts.oldPid
    if (unit.activeState === 'failed')
      throw new Error(`${c.unit} failed (${unit.activeState}/${unit.subState})`)
    if (unit.activeState === 'active' && unit.mainPid > 0 && fresh) {
      if (c.dirs === 'none') return { ...unit, dirsUnverified: true }
      const pids = (await processesOf(remote, unit.mainPid, opts.view)) ?? [unit.mainPid]
      const dirs = await workingDirectories(remote, pids, c.dirs === 'sudo').catch(
        () => new Map<number, string>()
      )
      const elsewhere = [...dirs].filter(([, d]) => !inDir(d, to.releaseDir))
      if (dirs.size > 0 && elsewhere.length === 0) return { ...unit, dirsUnverified: false }
      seen = `main PID ${unit.mainPid}, ${elsewhere.map(([p, d]) => `${p} in ${d}`).join(', ') || 'no directory readable'}`
    } else
      seen = `${unit.activeState}/${unit.subState}, main PID ${unit.mainPid}${fresh ? '' : ' (the old one)'}`
    await new Promise(r => setTimeout(r, 300))
  }
  throw new Error(
    `${c.unit} did not come up in ${to.release} within the time allowed (last seen: ${seen})`
  )
}

/**
 * Restarts (or reloads) a companion. On the way back, a failure is tried once more after the
 * unit's start-limit interval (read with its facts): the broken release's crash loop may have
 * used up the limit (a second failure is reported as it is). Forward, a failure is final at once.
 */
async function bringUp(
  ctx: CutoverContext,
  c: CompanionFacts,
  limitMs: number,
  wayBack: boolean
): Promise<void> {
  const units = systemd(() => ctx.conn.remote, ctx.access, limitMs)
  try {
    await units.run(c.action, c.unit)
  } catch (error) {
    const wait = c.startLimitWait
    const startFailed = error instanceof SystemctlError && !error.refused && !error.noAnswer
    if (!wayBack || wait === undefined || !startFailed) throw error
    ctx.log.info(
      `${c.unit}: ${c.action} failed; systemd refuses starts for a while after a crash loop (its start limit): ${c.action} again in ${wait} s`
    )
    await new Promise(r => setTimeout(r, wait * 1000))
    await units.run(c.action, c.unit)
  }
}

/** Restarts (or reloads) one companion and proves it in `to`, including that it stays up. */
async function moveOne(
  ctx: CutoverContext,
  c: CompanionFacts,
  to: CompanionTarget,
  view: ProcessView,
  wayBack: boolean
): Promise<CompanionResult> {
  const remote = ctx.conn.remote
  const before = await readUnit(remote, c.unit)
  // The stop waits for running tasks (TimeoutStopSec), the start for TimeoutStartSec.
  const limit = (c.stopSeconds ?? 600) + (c.startSeconds ?? 600) + 30
  await bringUp(ctx, c, limit * 1000, wayBack)
  const settled = await waitUntilMoved(ctx, c, to, {
    oldPid: before.mainPid,
    view,
    deadline: Date.now() + ctx.timeoutSeconds * 1000
  })
  await new Promise(r => setTimeout(r, STABLE_SECONDS * 1000))
  const after = await readUnit(remote, c.unit)
  if (after.activeState !== 'active' || after.mainPid !== settled.mainPid)
    throw new Error(
      `${c.unit} did not stay up in ${to.release}: ${STABLE_SECONDS} s after it started it is ${after.activeState}/${after.subState} with main PID ${after.mainPid} (was ${settled.mainPid})`
    )
  return {
    unit: c.unit,
    action: c.action,
    status: 'moved',
    release: to.release,
    mainPid: after.mainPid,
    ...(settled.dirsUnverified ? { dirsUnverified: true } : {})
  }
}

/** Moves every companion to `to`, side by side; the results in the order given. */
async function moveAll(
  ctx: CutoverContext,
  companions: CompanionFacts[],
  to: CompanionTarget,
  view: ProcessView,
  wayBack = false
): Promise<CompanionResult[]> {
  const settled = await Promise.allSettled(companions.map(c => moveOne(ctx, c, to, view, wayBack)))
  return settled.map((s, i) =>
    s.status === 'fulfilled'
      ? s.value
      : {
          unit: companions[i].unit,
          action: companions[i].action,
          status: 'failed',
          error: (s.reason as Error)?.message ?? String(s.reason)
        }
  )
}

/** The step after the proof that moves the companions, and what it did. */
export interface CompanionStep extends AfterProof {
  results(): CompanionResult[]
}

/**
 * The companions' step for a cutover to `to`. Its undo (after a failure of this
 * step or a later one, once the web release is back) moves them to `back`, when
 * something served before; a companion it never reached is left alone.
 */
export function companionStep(
  ctx: CutoverContext,
  opts: {
    companions: CompanionFacts[]
    to: CompanionTarget
    back?: CompanionTarget
    processes: ProcessView
  }
): CompanionStep {
  let results: CompanionResult[] = []
  return {
    name: 'companions',
    results: () => results,
    run: () =>
      ctx.step('companions', () =>
        ctx.log.group(
          `Restart ${opts.companions.map(c => c.unit).join(', ')} in ${opts.to.release}`,
          async () => {
            results = await moveAll(ctx, opts.companions, opts.to, opts.processes)
            for (const r of results)
              ctx.log.info(
                r.status === 'moved'
                  ? `${r.unit}: ${r.action}ed, main PID ${r.mainPid}, runs ${r.release}${r.dirsUnverified ? " (its processes' directory not verified)" : ''}; up ${STABLE_SECONDS} s later`
                  : `${r.unit}: ${r.error}`
              )
            const failed = results.filter(r => r.status === 'failed')
            if (failed.length > 0)
              throw new Error(
                `companion${failed.length > 1 ? 's' : ''} did not move to ${opts.to.release}: ${failed.map(r => r.error).join('; ')}`
              )
          }
        )
      ),
    undo: async () => {
      const back = opts.back
      if (results.length === 0 && opts.companions.length > 0)
        results = opts.companions.map(c => ({ unit: c.unit, action: c.action, status: 'failed' }))
      if (!back) return 'the companions stay as they are: nothing served before'
      const moved = await ctx
        .step('companions back', () =>
          ctx.log.group(`Restart the companions in ${back.release}`, () =>
            moveAll(ctx, opts.companions, back, opts.processes, true)
          )
        )
        .catch(() => [] as CompanionResult[])
      results = results.map((r, i) => {
        const m = moved[i]
        return m?.status === 'moved'
          ? { ...m, status: 'restored' }
          : { ...r, status: 'not-restored', error: m?.error ?? r.error }
      })
      const lost = results.filter(r => r.status === 'not-restored')
      return lost.length === 0
        ? `${opts.companions.map(c => c.unit).join(', ')} run ${back.release} again`
        : `${lost.map(r => `${r.unit} could not be moved back to ${back.release}: ${r.error}`).join('; ')}`
    }
  }
}
