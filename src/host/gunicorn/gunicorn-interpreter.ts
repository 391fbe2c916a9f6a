// Which Python runs the unit's Gunicorn, for pip and the import check: the
// interpreter of `python -m gunicorn`, the #! line of the console script, and,
// when a launcher hides them (`poetry run`, `uv run`, a wrapper script), the
// command line of the running master. When none tells, the answer is the
// reasons, so the caller can warn instead of failing.
import { findGunicornLaunch, type GunicornEntry } from './gunicorn-launch.js'
import { parseShebang, SHEBANG_LINES } from './shebang.js'
import { readGunicornProcesses, type GunicornProcesses } from './gunicorn-processes.js'
import { tailLines } from '../../transport/remote-command.js'
import { optional, toShell } from '../../transport/shell-quote.js'
import type { RemoteHost } from '../../transport/ssh-connection.js'
import type { GunicornCommand } from './unit-info.js'

export interface InterpreterUnknown {
  /** Why no interpreter could be found, every way tried. */
  error: string
}

const PROBE =
  'import sys; print(sys.executable); print(sys.prefix if sys.prefix != sys.base_prefix else "")'

export interface Interpreter {
  python: string
  /** The venv root when the interpreter lives in one. */
  venv?: string
  /** How it was found: ExecStart, a console script's #! line, or the running master. */
  source?: string
}

/** Runs the interpreter: its path (a bare name is resolved by the host) and its venv. */
async function probe(
  remote: RemoteHost,
  python: string,
  source: string
): Promise<Interpreter | InterpreterUnknown> {
  const run = await remote.exec(toShell([python, '-c', PROBE]))
  if (run.code !== 0)
    return { error: `${python} (from ${source}) does not run: ${tailLines(run.stderr, 3)}` }
  const [executable, prefix] = run.stdout.split('\n').map(l => l.trim())
  const path = python.startsWith('/') || !executable ? python : executable
  return { python: path, venv: prefix || undefined, source }
}

/**
 * The interpreter of a direct Gunicorn entry. A bare name (`python3`,
 * `gunicorn`, `#!/usr/bin/env python3`) is resolved on the host only when
 * `bareOk`: behind `poetry run`/`uv run`/`sh -c` the PATH is the launcher's.
 */
async function fromEntry(
  remote: RemoteHost,
  entry: GunicornEntry,
  bareOk: boolean,
  source: string
): Promise<Interpreter | InterpreterUnknown> {
  const hidden = (name: string) => ({
    error: `${source} runs ${name}, found through a PATH set at start`
  })
  const run = (python: string) =>
    python.startsWith('/') || bareOk ? probe(remote, python, source) : hidden(python)
  if (entry.kind === 'module') return run(entry.python)
  if (entry.python !== undefined) return run(entry.python)
  let script = entry.path
  if (!script.startsWith('/')) {
    if (!bareOk) return hidden(script)
    const found = await remote.exec(optional(['sh', '-c', 'command -v "$1"', 'sh', script]))
    script = found.stdout.trim()
    if (!script.startsWith('/')) return { error: `${entry.path} is not on the PATH of the host` }
  }
  const head = await remote.exec(optional(['head', '-n', String(SHEBANG_LINES), script]))
  const interpreter = parseShebang(head.stdout)?.interpreter
  if (!interpreter) return { error: `${script} is missing or has no #! line` }
  if (!interpreter.startsWith('/') && !bareOk) return hidden(interpreter)
  return probe(remote, interpreter, `the #! line of ${script}`)
}

/**
 * The interpreter the unit starts Gunicorn with. Tried in order: what ExecStart
 * shows (module launch, the console script's #! line), then the running master's
 * command line (`running`: its processes, MainPID to read them, or `hidden` when the
 * deploy user cannot see them). Never throws for a missing answer: `{ error }` says
 * what was tried.
 */
export async function findInterpreter(
  remote: RemoteHost,
  gunicorn: GunicornCommand,
  running?: GunicornProcesses | number | 'hidden'
): Promise<Interpreter | InterpreterUnknown> {
  const reasons: string[] = []
  const l = gunicorn.launcher
  const entry = l.kind === 'wrapped' ? l.inner : l.kind === 'unknown' ? undefined : l
  const by = l.kind === 'wrapped' || l.kind === 'unknown' ? l.by : []
  if (entry) {
    const found = await fromEntry(
      remote,
      entry,
      by.every(w => w === 'env'),
      'ExecStart'
    )
    if (!('error' in found)) return found
    reasons.push(found.error)
  } else reasons.push(l.kind === 'unknown' ? l.reason : 'ExecStart does not show Gunicorn')
  if (running === 'hidden') {
    reasons.push(
      "the running master's command line is hidden from the deploy user (/proc hides other users' processes)"
    )
    return { error: reasons.join('; ') }
  }
  const master =
    typeof running === 'number' ? await readGunicornProcesses(remote, running) : running
  if (master?.argv) {
    const launch = findGunicornLaunch(master.argv).launcher
    if (launch.kind === 'script' || launch.kind === 'module') {
      const found = await fromEntry(remote, launch, true, `the running master ${master.masterPid}`)
      if (!('error' in found)) return found
      reasons.push(found.error)
    }
  } else if (master)
    reasons.push(
      `the running master ${master.masterPid} shows only its setproctitle name [${master.procName ?? ''}], not its command line`
    )
  else if (running !== undefined) reasons.push('no running Gunicorn master was found under MainPID')
  return { error: reasons.join('; ') }
}
