// The running Gunicorn master and its workers, found in the process tree under
// the unit's MainPID: MainPID itself, or, when a launcher did not exec
// (`uv run`, `sh -c '...; gunicorn ...'`), the first process below it that runs
// Gunicorn. One `ps` call; the tree is read by a pure function.
import { findGunicornLaunch } from './gunicorn-launch.js'
import { optional } from '../../transport/shell-quote.js'
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

/** Reads the process tree once and finds the master under MainPID (see findGunicornProcesses). */
export async function readGunicornProcesses(
  remote: RemoteHost,
  mainPid: number
): Promise<GunicornProcesses | undefined> {
  if (mainPid <= 0) return undefined
  const ps = await remote.exec(optional(PS_TREE))
  return findGunicornProcesses(ps.stdout, mainPid)
}
