// Proves, after the reload, that the NEW release is what serves: the same
// master, every old worker gone, enough new workers, the workers' working
// directory is the new release, and health answers 2xx K times in a row
// through Gunicorn and through Nginx, carrying the release id when exposed.
import { httpGet, type HttpResponse } from '../transport/http-over-ssh.js'
import type { HttpTarget } from '../transport/http-target.js'
import type { Log } from '../core/log.js'
import type { ProcessView } from './gunicorn/gunicorn-processes.js'
import {
  readServiceState,
  readUnit,
  watchServiceState,
  workingDirectories,
  type ServiceSnapshotNow,
  type WorkerWatch
} from './service-state.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import type { UnitInfo } from './gunicorn/unit-info.js'
import { bootFailureIn } from './gunicorn/boot-failure.js'
import { readJournalAfter } from './evidence.js'

/** mainPid: the master before the reload (undefined after a start or restart); dirs: 'none' is not verified. */
export interface VerifyExpectations extends Pick<
  WorkerWatch,
  'mainPid' | 'oldWorkers' | 'workers' | 'dirs'
> {
  service: string
  release: string
  /** The health may name any release (back to a current that was not one of the action's). */
  anyReleaseName?: boolean
  /** Physical path of the release directory (readlink -f). */
  releaseDir: string
  /** Physical path of the release the old workers ran, to name stale code. */
  oldReleaseDir?: string
  /** Id of the release that served before the switch, to name stale code. */
  oldRelease?: string
  urls: HttpTarget[]
  /**
   * The URL through Nginx (one of `urls`), when Nginx answered before the switch: a
   * 502/503/504 there while Gunicorn answers on its own is a definite failure.
   */
  nginxUrl?: HttpTarget
  healthChecks: number
  healthExpect?: string
  timeoutSeconds: number
  /** What brought the workers up, for messages (default: the reload). */
  broughtUpBy?: string
  /**
   * How the workers are seen: `ps` (default), `sudo` (sudo ps, polled: the host's watch
   * reads /proc, which hides them) or `hidden` (only systemd's view of the master).
   */
  processes?: ProcessView
  /**
   * The journal's position just before the bring-up: new workers that cannot load the app
   * are read there while the proof runs (none: their master's exit is waited for).
   */
  journalCursor?: string
}

export class VerifyError extends Error {
  constructor(
    message: string,
    readonly masterDied: boolean,
    /** Certain already: waiting longer cannot change it (the caller undoes at once). */
    readonly definite = masterDied,
    /**
     * The master is stopping on its own (its new workers could not load the app): a HUP
     * sent to it now is lost, so the way back restarts the unit instead of reloading it.
     */
    readonly masterStops = false
  ) {
    super(message)
    this.name = 'VerifyError'
  }
}

/** Gateway errors Nginx gives when it cannot use the upstream. */
const GATEWAY = new Set([502, 503, 504])

/**
 * Watches for a path through Nginx that is broken while Gunicorn serves: Nginx
 * answering 502/504 in two rounds of asking at least 150 ms apart (503, which a
 * rate limit also gives, in rounds spanning a second), and nothing below 500, while
 * Gunicorn's own URL answered 2xx meanwhile. Under a heavy load Nginx mixes in 500s
 * (its connections run out) and some requests time out: those do not hide the gateway
 * errors. Gunicorn's own URL must not have answered 5xx in that time (an app that
 * answers 503 while it warms up fails both ways). Nothing a slow release does looks like that: requests
 * to a slow one wait, they are not refused.
 */
export class GatewayWatch {
  private badSince?: number
  private badRounds = 0
  private only503 = true
  private directOkAt = -Infinity
  private directFailedAt = -Infinity

  constructor(
    private readonly nginx: HttpTarget | undefined,
    private readonly now: () => number = Date.now
  ) {}

  /** Notes one round of answers from `url`; returns the definite failure, if it is one now. */
  note(url: HttpTarget, statuses: (number | undefined)[]): string | undefined {
    const t = this.now()
    if (!this.nginx) return undefined
    if (url.text !== this.nginx.text) {
      if (statuses.some(s => s !== undefined && s >= 200 && s <= 299)) this.directOkAt = t
      if (statuses.some(s => s !== undefined && s >= 500)) this.directFailedAt = t
      return undefined
    }
    // Any answer below 500 clears it; a round with no gateway error and nothing below 500
    // (timeouts, a 500 Nginx gives when its connections run out) neither counts nor clears.
    if (statuses.some(s => s !== undefined && s < 500)) {
      this.badSince = undefined
      this.badRounds = 0
      this.only503 = true
      return undefined
    }
    const gateway = statuses.filter((s): s is number => s !== undefined && GATEWAY.has(s))
    if (gateway.length === 0) return undefined
    this.badSince ??= t
    this.badRounds++
    this.only503 &&= gateway.every(s => s === 503)
    const span = t - this.badSince
    const long = this.only503 ? span >= 1000 : span >= 150
    // Gunicorn must have answered 2xx, and nothing 5xx, on its own from a second before
    // Nginx failed until now: an app that answers 503 itself (warming up) is not Nginx's.
    const window = this.badSince - 1000
    if (this.badRounds < 2 || !long || this.directOkAt < window || this.directFailedAt >= window)
      return undefined
    const shown = statuses.map(s => s ?? 'no answer').join('/')
    return `${this.nginx.text} answered HTTP ${shown} in ${this.badRounds} rounds over ${(span / 1000).toFixed(1)}s while Gunicorn answered 2xx on its own: Nginx cannot use the new release (see the Nginx error log below)`
  }
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** The release a health response names: X-Release header, or a JSON "release" field. */
export function releaseOf(response: HttpResponse): string | undefined {
  if (response.headers['x-release']) return response.headers['x-release']
  try {
    const body = JSON.parse(response.body) as { release?: unknown }
    return typeof body.release === 'string' ? body.release : undefined
  } catch {
    return undefined
  }
}

/** What a reload that keeps the old code means, and how to fix it. */
const STALE_CODE_CAUSE =
  'the reload kept the OLD code (stale code). Gunicorn keeps the app it loaded with preload_app/--preload (set in the unit, a gunicorn.conf.py in its start directory, or GUNICORN_CMD_ARGS in the EnvironmentFile), and keeps the directory it started in without --chdir <release-path>/current. Fix: remove preload, start Gunicorn with --chdir <release-path>/current, then restart it once.'

/** Why a health response does not prove the release, or undefined when it does. */
export function healthProblem(
  response: HttpResponse,
  /** undefined: any release the health names will do */
  release: string | undefined,
  expect?: string,
  oldRelease?: string
): string | undefined {
  if (response.status < 200 || response.status > 299)
    // The body is not echoed: error pages can carry configuration or secrets.
    // The journal excerpt collected on failure shows the traceback instead.
    return `answered HTTP ${response.status} (${response.body.length} bytes${response.headers['content-type'] ? `, ${response.headers['content-type']}` : ''})`
  if (expect !== undefined) {
    const wanted = expect.split('{release}').join(release ?? '')
    if (!response.body.includes(wanted) && response.headers['x-release'] !== wanted)
      return `answered 2xx but does not contain health-expect ${JSON.stringify(wanted)}`
    return undefined
  }
  const served = releaseOf(response)
  if (served !== undefined && release !== undefined && served !== release)
    return `answered 2xx for release ${served}, not ${release}${served === oldRelease ? `: ${STALE_CODE_CAUSE}` : ''}`
  return undefined
}

/** Checks worker state once; returns undefined when it is as expected, else what is wrong. */
export function workerProblem(
  exp: Pick<VerifyExpectations, 'oldWorkers' | 'workers' | 'releaseDir' | 'oldReleaseDir' | 'dirs'>,
  workers: number[],
  dirs: Map<number, string>
): string | undefined {
  const lingering = workers.filter(p => exp.oldWorkers.includes(p))
  if (lingering.length > 0) return `old worker(s) ${lingering.join(', ')} still running`
  if (workers.length < exp.workers) return `${workers.length} of ${exp.workers} new workers up`
  // 'own' that cannot read them after all (the unit's Group= differs): not verified.
  if (exp.dirs === 'none' || (exp.dirs === 'own' && dirs.size === 0)) return undefined
  const wrong = workers.filter(p => dirs.has(p) && dirs.get(p) !== exp.releaseDir)
  if (wrong.length > 0) {
    const dir = dirs.get(wrong[0])
    const stale = exp.oldReleaseDir !== undefined && dir === exp.oldReleaseDir
    return `worker ${wrong[0]} runs in ${dir}${stale ? ' (the OLD release: stale code)' : ''}, not ${exp.releaseDir}`
  }
  if (workers.some(p => !dirs.has(p))) return 'working directory of a new worker not readable yet'
  return undefined
}

/**
 * Proves the release after a reload or restart: (1) the master and its new workers in the
 * new release, (2) health K times in a row on every URL. Health is asked beside (1): an
 * answer counts before (1) is proven only when it names the new release (an old worker
 * cannot), so an app whose health names no release is asked only after (1).
 */
export async function verifyRelease(
  remote: RemoteHost,
  exp: VerifyExpectations,
  log: Log
): Promise<void> {
  const deadline = Date.now() + exp.timeoutSeconds * 1000
  let settleWorkers: (proven: boolean) => void = () => undefined
  const workersProven = new Promise<boolean>(resolve => (settleWorkers = resolve))
  // A definite failure seen by any health loop ends the proof at once.
  let definite: (error: VerifyError) => void = () => undefined
  const failed = new Promise<never>((_, reject) => (definite = reject))
  failed.catch(() => undefined)
  const asking: Asking = {
    exp,
    deadline,
    log,
    workersProven,
    gateway: new GatewayWatch(exp.nginxUrl),
    definite
  }
  let healthDone = false
  const health = Promise.allSettled(
    exp.urls.map(url => healthyStreak(remote, url, asking))
  ).finally(() => (healthDone = true))
  if (exp.journalCursor !== undefined)
    bootStaysClean(
      remote,
      exp,
      exp.journalCursor,
      () => healthDone || asking.stopped === true
    ).catch(definite)
  const hidden = exp.processes === 'hidden'
  let master: number | void
  try {
    master = await Promise.race([
      hidden
        ? watchMaster(remote, exp, log, () => healthDone)
        : proveWorkers(remote, exp, deadline, log),
      failed
    ])
  } catch (error) {
    // the health loops stop asking (a request under way ends on its own, its answer unused)
    settleWorkers(false)
    throw error
  }
  settleWorkers(true)
  // Workers that were up may still fail to boot the app, and the master exits then: it is
  // watched until health is proven, so that is final at once, not at reload-timeout.
  const masterWatch =
    typeof master === 'number'
      ? masterStaysUp(remote, { ...exp, mainPid: master }, () => healthDone).then(() => health)
      : health
  let streaks: PromiseSettledResult<void>[]
  try {
    streaks = await Promise.race([health, failed, masterWatch])
  } catch (error) {
    asking.stopped = true
    throw error
  }
  for (const streak of streaks) if (streak.status === 'rejected') throw streak.reason
  // The workers could not be watched: the master must still be the one systemd started.
  if (hidden) masterCheck(await readUnit(remote, exp.service), exp)
}

/** What every health loop of one proof shares. */
interface Asking {
  exp: VerifyExpectations
  deadline: number
  log: Log
  /** Settles true once the workers are proven, false when their proof failed. */
  workersProven: Promise<boolean>
  gateway: GatewayWatch
  /** Ends the whole proof with a definite failure. */
  definite: (error: VerifyError) => void
  /** Set when the proof failed on another path: the loops stop asking. */
  stopped?: boolean
}

/** The master's death, when the unit shows no running master (undefined while one runs). */
export function masterDeathIn(unit: UnitInfo, broughtUpBy = 'the reload'): VerifyError | undefined {
  if (unit.mainPid !== 0 && unit.activeState === 'active') return undefined
  return new VerifyError(
    `the Gunicorn master died after ${broughtUpBy} (ActiveState=${unit.activeState}/${unit.subState}, MainPID=${unit.mainPid}): new workers failed to boot`,
    true
  )
}

/** Throws when the master died or was replaced (a restart instead of a reload). */
function masterCheck(unit: UnitInfo, exp: VerifyExpectations): void {
  const died = masterDeathIn(unit, exp.broughtUpBy)
  if (died) throw died
  if (exp.mainPid !== undefined && unit.mainPid !== exp.mainPid) {
    throw new VerifyError(
      `the master PID changed from ${exp.mainPid} to ${unit.mainPid}: the service restarted instead of reloading`,
      false
    )
  }
}

/**
 * How often the proven master is looked at while health is asked: a master that exits
 * (its new workers could not boot the app) is rolled back this much sooner.
 */
const MASTER_WATCH_MS = 150

/** Calls `look` every `everyMs` until `done()`; `look` ends the watch by throwing. */
async function watchEvery(
  everyMs: number,
  done: () => boolean,
  look: () => Promise<void>
): Promise<void> {
  for (;;) {
    await sleep(everyMs)
    if (done()) return
    await look()
  }
}

/** Throws (masterCheck) as soon as the proven master dies or is replaced; returns once `done()`. */
function masterStaysUp(
  remote: RemoteHost,
  exp: VerifyExpectations,
  done: () => boolean
): Promise<void> {
  return watchEvery(MASTER_WATCH_MS, done, async () => {
    // a failed read proves nothing either way (the health loops see a dropped connection)
    const unit = await readUnit(remote, exp.service).catch(() => undefined)
    if (unit) masterCheck(unit, exp)
  })
}

/** How often the journal is read for new workers that cannot load the app. */
const BOOT_WATCH_MS = 400

/**
 * Throws, definite, as soon as the journal after `cursor` shows a new worker that could
 * not load the app (its master stops then, but may take graceful_timeout to exit, its
 * listeners already closed); returns once `done()`.
 */
function bootStaysClean(
  remote: RemoteHost,
  exp: VerifyExpectations,
  cursor: string,
  done: () => boolean
): Promise<void> {
  return watchEvery(BOOT_WATCH_MS, done, async () => {
    // an unreadable journal proves nothing either way
    const journal = await readJournalAfter(remote, exp.service, cursor, 1000).catch(() => undefined)
    const failure = journal && bootFailureIn(journal.stdout)
    if (failure)
      throw new VerifyError(
        `the new workers cannot load ${exp.release} (${failure}): Gunicorn stops its master after that`,
        /* masterDied */ false,
        /* definite */ true,
        /* masterStops */ true
      )
  })
}

/** How long the master must stay up before health that does not name the release may count. */
const HIDDEN_SETTLE_MS = 2000

/**
 * 1, when the workers are hidden from the deploy user (hidepid, no sudo ps): systemd's
 * view of the master instead. It must stay up (and be the same after a reload) until
 * health has named the new release, or for HIDDEN_SETTLE_MS, after which any 2xx counts.
 */
async function watchMaster(
  remote: RemoteHost,
  exp: VerifyExpectations,
  log: Log,
  healthDone: () => boolean
): Promise<void> {
  const settled = Date.now() + HIDDEN_SETTLE_MS
  for (;;) {
    const unit = await readUnit(remote, exp.service)
    masterCheck(unit, exp)
    if (healthDone() || Date.now() >= settled) {
      log.info(
        `master ${unit.mainPid}${exp.mainPid ? ' kept' : ' up'}; its workers are hidden from the deploy user (not verified: health must name the release)`
      )
      return
    }
    await sleep(100)
  }
}

/** 1. the master survived and replaced its workers with ones in the new release. */
async function proveWorkers(
  remote: RemoteHost,
  exp: VerifyExpectations,
  deadline: number,
  log: Log
): Promise<number> {
  let problem: string
  // The host watches the workers and answers once they could be right; where it
  // cannot (no watch helper, or processes seen only through sudo ps), the unit and its
  // workers are polled in one round trip.
  let watching = exp.processes !== 'sudo'
  for (;;) {
    const watched: ServiceSnapshotNow | undefined = watching
      ? await watchServiceState(remote, exp.service, {
          mainPid: exp.mainPid,
          oldWorkers: exp.oldWorkers,
          workers: exp.workers,
          dirs: exp.dirs,
          timeoutMs: deadline - Date.now()
        })
      : undefined
    watching = watched !== undefined
    const { unit, workers } =
      watched ?? (await readServiceState(remote, exp.service, exp.processes))
    masterCheck(unit, exp)
    // The directories are read only once the right workers are up (the watch read them with
    // the snapshot; they are read again when it missed one).
    const readDirs = async () =>
      watched && workers.every(p => watched.dirs.has(p))
        ? watched.dirs
        : workingDirectories(remote, workers, exp.dirs === 'sudo')
    const found =
      workerProblem({ ...exp, dirs: 'none' }, workers, new Map()) ??
      (exp.dirs === 'none' ? undefined : workerProblem(exp, workers, await readDirs()))
    if (found === undefined) {
      log.info(
        `master ${unit.mainPid}${exp.mainPid ? ' kept' : ' up'}; ${workers.length} new workers (${workers.join(', ')}) ${exp.dirs === 'none' ? '(their directory not verified: health must name the release)' : `in ${exp.releaseDir}`}`
      )
      return unit.mainPid
    }
    problem = found
    if (Date.now() >= deadline)
      throw new VerifyError(`within reload-timeout (${exp.timeoutSeconds}s): ${problem}`, false)
    await sleep(watching ? 20 : 50)
  }
}

/** Whether a healthy answer names the new release itself (so no old worker gave it). */
function namesRelease(response: HttpResponse, exp: VerifyExpectations): boolean {
  if (exp.healthExpect !== undefined) return exp.healthExpect.includes('{release}')
  return releaseOf(response) === exp.release
}

/** At most this many health requests to one URL at a time. */
const HEALTH_AT_ONCE = 4

/** One health answer, and why it does not prove the release (undefined when it does). */
async function askHealth(
  remote: RemoteHost,
  url: HttpTarget,
  exp: VerifyExpectations
): Promise<{ response?: HttpResponse; problem?: string }> {
  try {
    const response = await httpGet(remote, url, 5000)
    return {
      response,
      problem: healthProblem(
        response,
        exp.anyReleaseName ? undefined : exp.release,
        exp.healthExpect,
        exp.oldRelease
      )
    }
  } catch (error) {
    return { problem: `failed: ${(error as Error).message}` }
  }
}

/**
 * The statuses the gateway watch notes. Gunicorn's own 2xx counts only as the new
 * release's: before the workers are proven, an answer that does not name the new release
 * may come from an old worker still finishing (it proves nothing about the new release).
 */
export function gatewayStatuses(
  url: HttpTarget,
  answers: { response?: HttpResponse }[],
  exp: VerifyExpectations,
  early: boolean
): (number | undefined)[] {
  const direct = url.text !== exp.nginxUrl?.text
  return answers.map(({ response: r }) =>
    direct && early && r && r.status < 300 && !namesRelease(r, exp) ? undefined : r?.status
  )
}

/**
 * 2. health answers 2xx K times in a row on `url`, asked up to HEALTH_AT_ONCE at a time
 * (any failure among them starts the count again). Before `workersProven` settles, only
 * answers that name the new release count; after a failed worker proof nothing more is asked.
 */
async function healthyStreak(remote: RemoteHost, url: HttpTarget, a: Asking): Promise<void> {
  const { exp, deadline, log, workersProven } = a
  let proven: boolean | undefined
  void workersProven.then(p => (proven = p))
  let streak = 0
  while (streak < exp.healthChecks) {
    if (proven === false || a.stopped) return
    const early = proven === undefined
    const asked = Math.min(HEALTH_AT_ONCE, exp.healthChecks - streak)
    const answers = await Promise.all(
      Array.from({ length: asked }, () => askHealth(remote, url, exp))
    )
    const broken = a.gateway.note(url, gatewayStatuses(url, answers, exp, early))
    if (broken !== undefined) {
      const error = new VerifyError(broken, false, true)
      a.definite(error)
      throw error
    }
    const problem = answers.find(x => x.problem !== undefined)?.problem
    if (problem === undefined) {
      if (early && answers.some(x => !x.response || !namesRelease(x.response, exp))) {
        // answers that may come from old workers: ask again once the workers are proven
        if (!(await workersProven)) return
        continue
      }
      streak += answers.length
      continue
    }
    streak = 0
    if (Date.now() >= deadline) {
      if (early && (await workersProven) === false) return
      throw new VerifyError(
        `within reload-timeout (${exp.timeoutSeconds}s): ${url.text} ${problem}`,
        false
      )
    }
    await sleep(100)
  }
  log.info(`${url.text}: ${exp.healthChecks} healthy answers in a row for release ${exp.release}`)
}
