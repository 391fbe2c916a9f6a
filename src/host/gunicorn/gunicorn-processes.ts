// The running Gunicorn master and its workers, found in the process tree under
// the unit's MainPID: MainPID itself, or, when a launcher did not exec
// (`uv run`, `sh -c '...; gunicorn ...'`), the first process below it that runs
// Gunicorn. One `ps` call; the tree is read by a pure function. Where /proc hides
// other users' processes (hidepid), the tree is read through `sudo ps` when allowed,
// and is otherwise hidden: nothing about the processes is known then, not even that
// none run.
import { findGunicornLaunch } from './gunicorn-launch.js'
import { asRoot, serviceCommands } from '../service-commands.js'
import { optional, toShell } from '../../transport/shell-quote.js'
import type { RemoteHost } from '../../transport/ssh-connection.js'

export interface PsEntry {
  pid: number
  ppid: number
  args: string
}

export interface GunicornProcesses {
  masterPid: number
  /** The master's children, ascending. */
  workers: number[]
  /** The master's command line split on whitespace; undefined when setproctitle renamed it. */
  argv?: string[]
  /**
   * NAME of a setproctitle title `gunicorn: master [NAME]`: the app, unless
   * proc_name/--name is set. Only then is nothing else of the command line known.
   */
  procName?: string
  /** The master is not MainPID: a launcher that did not exec started it. */
  viaWrapper: boolean
}

/** argv of ps that lists every process: `pid ppid args`, no header, never truncated. */
export const PS_TREE: readonly string[] = ['ps', '-ww', '-eo', 'pid=,ppid=,args=']

/** Parses `ps -eo pid=,ppid=,args=` output. */
export function parsePs(text: string): PsEntry[] {
  const entries: PsEntry[] = []
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s?(.*)$/.exec(line)
    if (m) entries.push({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3].trim() })
  }
  return entries
}

const MASTER_TITLE = /^gunicorn: master \[(.*)\]$/

/** Whether a process runs Gunicorn itself (not a launcher that would start it). */
function runsGunicorn(args: string): boolean {
  if (MASTER_TITLE.test(args)) return true
  const kind = findGunicornLaunch(args.split(/\s+/)).launcher.kind
  return kind === 'script' || kind === 'module'
}

/**
 * The Gunicorn master under MainPID and its workers, from `ps` output: MainPID
 * when it runs Gunicorn, else the nearest descendant (breadth first) that does.
 * Undefined when MainPID is not running or nothing under it runs Gunicorn visibly.
 */
export function findGunicornProcesses(
  psOutput: string,
  mainPid: number
): GunicornProcesses | undefined {
  const entries = parsePs(psOutput)
  const children = new Map<number, PsEntry[]>()
  for (const e of entries) children.set(e.ppid, [...(children.get(e.ppid) ?? []), e])
  const main = entries.find(e => e.pid === mainPid)
  if (mainPid <= 0 || !main) return undefined
  const queue = [main]
  const seen = new Set<number>()
  for (let next = queue.shift(); next; next = queue.shift()) {
    if (seen.has(next.pid)) continue
    seen.add(next.pid)
    if (runsGunicorn(next.args)) return describe(next, children, mainPid)
    queue.push(...[...(children.get(next.pid) ?? [])].sort((a, b) => a.pid - b.pid))
  }
  return undefined
}

function describe(
  master: PsEntry,
  children: Map<number, PsEntry[]>,
  mainPid: number
): GunicornProcesses {
  const found: GunicornProcesses = {
    masterPid: master.pid,
    workers: (children.get(master.pid) ?? []).map(c => c.pid).sort((a, b) => a - b),
    viaWrapper: master.pid !== mainPid
  }
  const title = MASTER_TITLE.exec(master.args)
  if (title) found.procName = title[1]
  else found.argv = master.args.split(/\s+/).filter(w => w !== '')
  return found
}

/**
 * How the deploy user sees the service's processes: `ps` (as anyone sees them), `sudo`
 * (/proc hides them, `sudo ps` shows them) or `hidden` (neither: worker counts, the
 * master's command line and the workers' directories cannot be verified).
 */
export type ProcessView = 'ps' | 'sudo' | 'hidden'

/** Whether `ps` output lists the process `pid` at all. */
export function listsPid(psOutput: string, pid: number): boolean {
  return parsePs(psOutput).some(e => e.pid === pid)
}

/** What decides how the deploy user sees the processes (from the access probe and the unit). */
export interface ProcessAccess {
  /** /proc's hidepid= value when it hides other users' processes from the deploy user. */
  hidepid?: string
  /** The deploy user may run `sudo ps` (serviceCommands.psTree). */
  sudoPs: boolean
  /** The unit runs as the deploy user: its own processes are never hidden. */
  ownUnit: boolean
}

/**
 * The master under MainPID and how its processes were seen. A MainPID that plain `ps`
 * does not list is hidden from the deploy user (hidepid): `sudo ps` is tried when
 * allowed. With no MainPID, hidepid decides how a master started later will be seen.
 * `access` is awaited only when needed, so the plain `ps` runs beside the access probe.
 */
export async function readProcesses(
  remote: RemoteHost,
  mainPid: number,
  access: ProcessAccess | Promise<ProcessAccess>
): Promise<{ view: ProcessView; processes?: GunicornProcesses }> {
  const hiddenView = async (): Promise<ProcessView> => ((await access).sudoPs ? 'sudo' : 'hidden')
  if (mainPid <= 0) {
    const { hidepid, ownUnit } = await access
    return { view: hidepid !== undefined && !ownUnit ? await hiddenView() : 'ps' }
  }
  const ps = await remote.exec(optional(PS_TREE))
  if (listsPid(ps.stdout, mainPid))
    return { view: 'ps', processes: findGunicornProcesses(ps.stdout, mainPid) }
  if ((await hiddenView()) === 'hidden') return { view: 'hidden' }
  const viaSudo = await remote.exec(toShell(asRoot(serviceCommands.psTree())))
  if (viaSudo.code !== 0 || !listsPid(viaSudo.stdout, mainPid)) return { view: 'hidden' }
  return { view: 'sudo', processes: findGunicornProcesses(viaSudo.stdout, mainPid) }
}

/** Reads the process tree once and finds the master under MainPID (see findGunicornProcesses). */
export async function readGunicornProcesses(
  remote: RemoteHost,
  mainPid: number
): Promise<GunicornProcesses | undefined> {
  if (mainPid <= 0) return undefined
  const ps = await remote.exec(optional(PS_TREE))
  return findGunicornProcesses(ps.stdout, mainPid)
}
