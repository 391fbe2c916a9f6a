// Reads the live state of the service on the host: the unit, the Gunicorn
// master and its workers, and which directory each process runs in.
import { runStep } from '../transport/remote-command.js'
import { helperOf } from './helper-client.js'
import { asRoot, serviceCommands } from './service-commands.js'
import { findGunicornProcesses, PS_TREE, type ProcessView } from './gunicorn/gunicorn-processes.js'
import { eachOf, optional, splitEach, toShell } from '../transport/shell-quote.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import {
  configFileOf,
  parseGunicornCommand,
  parseUnitShow,
  UNIT_PROPERTIES,
  withConfigFile,
  withDefaultWorkers,
  withGunicornEnv,
  parseSocketListens,
  socketUnits,
  withSocketActivation,
  type GunicornCommand,
  type GunicornEnv,
  type UnitInfo
} from './gunicorn/unit-info.js'

export async function readUnit(remote: RemoteHost, service: string): Promise<UnitInfo> {
  const show = await runStep(
    remote,
    `read unit ${service}`,
    toShell(serviceCommands.show(service, UNIT_PROPERTIES))
  )
  return parseUnitShow(show.stdout)
}

const STATE_MARKER = '@@zdd-state@@'

/**
 * The unit and the Gunicorn workers in one round trip (verification polls this); the
 * processes through `sudo ps` when only root sees them (hidepid).
 */
export async function readServiceState(
  remote: RemoteHost,
  service: string,
  processes: ProcessView = 'ps'
): Promise<{ unit: UnitInfo; workers: number[] }> {
  const tree = processes === 'sudo' ? asRoot(serviceCommands.psTree()) : PS_TREE
  const result = await runStep(
    remote,
    `read unit ${service} and its processes`,
    eachOf(STATE_MARKER, toShell(serviceCommands.show(service, UNIT_PROPERTIES)), optional(tree))
  )
  const [show = '', ps = ''] = splitEach(STATE_MARKER, result.stdout)
  const unit = parseUnitShow(show)
  return { unit, workers: findGunicornProcesses(ps, unit.mainPid)?.workers ?? [] }
}

/** What `watchServiceState` waits for on the host. */
export interface WorkerWatch {
  /** The master a reload keeps; undefined after a start or restart (any master). */
  mainPid?: number
  oldWorkers: number[]
  workers: number
  /** How the new workers' directories are read with the snapshot: own, through sudo, or not. */
  dirs: 'own' | 'sudo' | 'none'
  /** How long the host waits at most before it answers anyway. */
  timeoutMs: number
  /** How often the host looks (default 20 ms). */
  intervalMs?: number
}

export interface ServiceSnapshotNow {
  unit: UnitInfo
  workers: number[]
  /** The new workers' directories read with the snapshot (empty when not asked or refused). */
  dirs: Map<number, string>
}

/** Parses `pwdx` output (`PID: /path` lines). */
export function parsePwdx(output: string): Map<number, string> {
  const dirs = new Map<number, string>()
  for (const line of output.split('\n')) {
    const m = /^(\d+): (\/.*)$/.exec(line.trim())
    if (m) dirs.set(Number(m[1]), m[2])
  }
  return dirs
}

/**
 * The unit, the Gunicorn workers and their directories, read on the host once the
 * master has replaced its workers (or died, or changed, or `timeoutMs` passed): one
 * long command (the helper's `watchworkers`, looking every 20 ms) instead of a round
 * trip per look. The caller judges the snapshot as it would a polled one. Undefined
 * when the host could not run the watch (the caller polls instead).
 */
export async function watchServiceState(
  remote: RemoteHost,
  service: string,
  watch: WorkerWatch
): Promise<ServiceSnapshotNow | undefined> {
  const spec = {
    show: serviceCommands.show(service, UNIT_PROPERTIES),
    ps: PS_TREE,
    pwdx: watch.dirs === 'none' ? null : watch.dirs === 'sudo' ? asRoot(['pwdx']) : ['pwdx'],
    mainPid: watch.mainPid ?? 0,
    old: watch.oldWorkers,
    workers: watch.workers,
    timeout: Math.max(0, watch.timeoutMs) / 1000,
    interval: (watch.intervalMs ?? 20) / 1000
  }
  const seen = await helperOf(remote)
    .watchWorkers(spec)
    .catch(() => undefined)
  if (!seen) return undefined
  const unit = parseUnitShow(seen.show)
  return {
    unit,
    workers: findGunicornProcesses(seen.ps, unit.mainPid)?.workers ?? [],
    dirs: parsePwdx(seen.dirs)
  }
}

/**
 * Resolved working directory of each process: plain `pwdx` for the deploy
 * user's own processes, `sudo pwdx` for the service user's (the deploy user
 * cannot read another user's /proc/PID/cwd). Dead processes are left out.
 */
export async function workingDirectories(
  remote: RemoteHost,
  pids: number[],
  sudo = true
): Promise<Map<number, string>> {
  const dirs = new Map<number, string>()
  if (pids.length === 0) return dirs
  const pwdx = serviceCommands.pwdx(pids)
  const result = await remote.exec(toShell(sudo ? asRoot(pwdx) : pwdx))
  for (const [pid, dir] of parsePwdx(result.stdout)) dirs.set(pid, dir)
  if (dirs.size === 0 && sudo && /password|not allowed|sudoers/i.test(result.stderr)) {
    throw new Error(
      `sudo -n pwdx was refused for the deploy user, so the workers' working directory cannot be read: ${result.stderr.trim()}`
    )
  }
  return dirs
}

/** `readlink -f`: the physical path of a directory on the host. */
export async function realPath(remote: RemoteHost, path: string): Promise<string> {
  const result = await runStep(remote, `resolve ${path}`, toShell(['readlink', '-f', path]))
  return result.stdout.trim()
}

/**
 * The Gunicorn options of the unit, with Gunicorn's precedence: ExecStart (or
 * `argv`, e.g. the running master's command line) > GUNICORN_CMD_ARGS > the
 * config file (-c/--config, or gunicorn.conf.py in its start directory) >
 * WEB_CONCURRENCY > 1 worker. What cannot be read stays unknown: an unreadable
 * config file leaves configRead false (the reload traps are then left to
 * verification), an unreadable environment envRead false, and either leaves
 * `workers` undefined unless something readable sets it. A socket-activated service's
 * binds are its socket units' (Gunicorn serves on the sockets systemd hands it).
 */
export async function readGunicornOptions(
  remote: RemoteHost,
  unit: UnitInfo,
  argv: readonly string[] = unit.execStart
): Promise<GunicornCommand> {
  const parsed = parseGunicornCommand(argv)
  const listens = readSocketListens(remote, unit)
  if (parsed.launcher.kind === 'unknown') return withSocketActivation(parsed, await listens)
  const [env, binds] = await Promise.all([readGunicornEnv(remote, unit), listens])
  return withSocketActivation(
    await readConfigFile(remote, unit, withGunicornEnv(parsed, env)),
    binds
  )
}

/** Merges the config file Gunicorn reads at start (see readGunicornOptions). */
async function readConfigFile(
  remote: RemoteHost,
  unit: UnitInfo,
  g: GunicornCommand
): Promise<GunicornCommand> {
  const file = configFileOf(unit, g)
  const result = await remote.exec(toShell(['cat', '--', file]))
  if (result.code === 0)
    return { ...withDefaultWorkers(withConfigFile(g, file, result.stdout)), beforeConfig: g }
  const missing = /No such file/.test(result.stderr)
  if (missing && g.configFile === undefined) return { ...withDefaultWorkers(g), beforeConfig: g }
  return { ...g, configFile: file, configRead: false, configUnreadable: !missing }
}

/**
 * The listening sockets of the socket units that activate the service (none for a
 * service that is not socket-activated, or when systemd does not answer).
 */
export async function readSocketListens(remote: RemoteHost, unit: UnitInfo): Promise<string[]> {
  const sockets = socketUnits(unit)
  const shown = await Promise.all(
    sockets.map(s => remote.exec(optional(serviceCommands.show(s, ['Listen']))))
  )
  return shown.flatMap(r => parseSocketListens(r.stdout))
}

/**
 * WEB_CONCURRENCY and GUNICORN_CMD_ARGS as the service gets them (the unit's
 * Environment=, then its EnvironmentFiles), read on the host by the helper: no
 * other value of the environment leaves the server. `readable: false` when any
 * of it cannot be read.
 */
export async function readGunicornEnv(remote: RemoteHost, unit: UnitInfo): Promise<GunicornEnv> {
  return helperOf(remote)
    .gunicornEnv(
      unit.id || undefined,
      unit.environmentFiles.map(f => f.path)
    )
    .catch(() => ({ readable: false }))
}
