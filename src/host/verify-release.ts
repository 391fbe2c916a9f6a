// Proves, after the reload, that the NEW release is what serves: the same
// master, every old worker gone, enough new workers, the workers' working
// directory is the new release, and health answers 2xx K times in a row
// through Gunicorn and through Nginx, carrying the release id when exposed.
import { httpGet, type HttpResponse } from '../transport/http-over-ssh.js'
import type { HttpTarget } from '../transport/http-target.js'
import type { Log } from '../core/log.js'
import {
  readServiceState,
  watchServiceState,
  workingDirectories,
  type ServiceSnapshotNow,
  type WorkerWatch
} from './service-state.js'
import type { RemoteHost } from '../transport/ssh-connection.js'

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
  healthChecks: number
  healthExpect?: string
  timeoutSeconds: number
  /** What brought the workers up, for messages (default: the reload). */
  broughtUpBy?: string
}

export class VerifyError extends Error {
  constructor(
    message: string,
    readonly masterDied: boolean
  ) {
    super(message)
    this.name = 'VerifyError'
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
  const health = Promise.allSettled(
    exp.urls.map(url => healthyStreak(remote, url, exp, deadline, log, workersProven))
  )
  try {
    await proveWorkers(remote, exp, deadline, log)
  } catch (error) {
    // the health loops stop asking (a request under way ends on its own, its answer unused)
    settleWorkers(false)
    throw error
  }
  settleWorkers(true)
  for (const streak of await health) if (streak.status === 'rejected') throw streak.reason
}

/** 1. the master survived and replaced its workers with ones in the new release. */
async function proveWorkers(
  remote: RemoteHost,
  exp: VerifyExpectations,
  deadline: number,
  log: Log
): Promise<void> {
  let problem: string
  // The host watches the workers and answers once they could be right; where it
  // cannot (no watch helper), the unit and its workers are polled in one round trip.
  let watching = true
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
    const { unit, workers } = watched ?? (await readServiceState(remote, exp.service))
    if (unit.mainPid === 0 || unit.activeState !== 'active') {
      throw new VerifyError(
        `the Gunicorn master died after ${exp.broughtUpBy ?? 'the reload'} (ActiveState=${unit.activeState}/${unit.subState}, MainPID=${unit.mainPid}): new workers failed to boot`,
        true
      )
    }
    if (exp.mainPid !== undefined && unit.mainPid !== exp.mainPid) {
      throw new VerifyError(
        `the master PID changed from ${exp.mainPid} to ${unit.mainPid}: the service restarted instead of reloading`,
        false
      )
    }
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
      return
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
 * 2. health answers 2xx K times in a row on `url`, asked up to HEALTH_AT_ONCE at a time
 * (any failure among them starts the count again). Before `workersProven` settles, only
 * answers that name the new release count; after a failed worker proof nothing more is asked.
 */
async function healthyStreak(
  remote: RemoteHost,
  url: HttpTarget,
  exp: VerifyExpectations,
  deadline: number,
  log: Log,
  workersProven: Promise<boolean>
): Promise<void> {
  let proven: boolean | undefined
  void workersProven.then(p => (proven = p))
  let streak = 0
  while (streak < exp.healthChecks) {
    if (proven === false) return
    const early = proven === undefined
    const asked = Math.min(HEALTH_AT_ONCE, exp.healthChecks - streak)
    const answers = await Promise.all(
      Array.from({ length: asked }, () => askHealth(remote, url, exp))
    )
    const problem = answers.find(a => a.problem !== undefined)?.problem
    if (problem === undefined) {
      if (early && answers.some(a => !a.response || !namesRelease(a.response, exp))) {
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
