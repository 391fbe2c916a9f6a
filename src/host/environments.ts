// The Python environment each release runs on. Two ways:
// - per release (blue-green whose template runs `<slot>/.venv/bin/python`): a venv
//   per requirements set, `<release-path>/venvs/<key>`, linked from the release as
//   `.venv`; the serving instance's environment is never touched, and a rollback
//   starts the old release on its own venv;
// - shared (reload, or a blue-green template that runs one venv): every release
//   runs the unit's venv. Each release records the exact set it ran on
//   (`pip freeze --local` in `.zdd-freeze.txt`), and going back to a release
//   whose set differs reinstalls that set before traffic goes back to it.
import type { Log } from '../core/log.js'
import { venvAnswer, venvBuildLine, type ReleaseVenv } from './helper-client.js'
import type { LongStep } from './release-checks.js'
import type { ReleaseLayout } from './release-layout.js'
import { runLongStep } from './release-checks.js'
import { runStep, tailLines } from '../transport/remote-command.js'
import { toShell } from '../transport/shell-quote.js'
import type { RemoteHost } from '../transport/ssh-connection.js'

/** The file, in each release (and each per-release venv), holding its `pip freeze --local`. */
export const FREEZE_FILE = '.zdd-freeze.txt'

/** A package's name as pip compares them (PEP 503). */
function canonical(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-')
}

/** The requirement lines of a freeze, by canonical name (comments and options left out). */
export function parseFreeze(text: string): Map<string, string> {
  const set = new Map<string, string>()
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith('-')) continue
    const name = /^([A-Za-z0-9][A-Za-z0-9._-]*)/.exec(line)?.[1]
    if (name) set.set(canonical(name), line)
  }
  return set
}

/** How one set differs from another: what to install, what to remove, in words. */
export interface SetChange {
  /** Lines of `to` that `from` does not have as they are. */
  install: string[]
  /** Names `from` has that `to` does not. */
  remove: string[]
  /** For people: `name 1.0 -> 2.0`, `+name 2.0`, `-name 1.0`. */
  changed: string[]
}

const versionOf = (line: string) =>
  /==\s*([^\s;]+)/.exec(line)?.[1] ?? line.replace(/^[^@=<>~!]*/, '')

export function diffSets(from: Map<string, string>, to: Map<string, string>): SetChange {
  const install: string[] = []
  const remove: string[] = []
  const changed: string[] = []
  for (const [name, line] of to) {
    const was = from.get(name)
    if (was === line) continue
    install.push(line)
    changed.push(
      was ? `${name} ${versionOf(was)} -> ${versionOf(line)}` : `+${name} ${versionOf(line)}`
    )
  }
  for (const [name, line] of from)
    if (!to.has(name)) {
      remove.push(name)
      changed.push(`-${name} ${versionOf(line)}`)
    }
  return { install, remove, changed: changed.sort() }
}

/** `pip freeze --local` of an interpreter's venv (undefined when pip cannot tell). */
export async function freeze(
  remote: RemoteHost,
  python: string
): Promise<Map<string, string> | undefined> {
  const result = await remote.exec(
    toShell([python, '-m', 'pip', 'freeze', '--local', '--disable-pip-version-check']),
    { timeoutMs: 120_000 }
  )
  return result.code === 0 ? parseFreeze(result.stdout) : undefined
}

/** The set recorded with a release (undefined: none recorded, e.g. deployed before it was). */
export async function readRecordedSet(
  remote: RemoteHost,
  releaseDir: string
): Promise<Map<string, string> | undefined> {
  const result = await remote.exec(
    toShell(['sh', '-c', 'test -f "$1" && cat "$1"', 'sh', `${releaseDir}/${FREEZE_FILE}`]),
    { timeoutMs: 30_000 }
  )
  return result.code === 0 ? parseFreeze(result.stdout) : undefined
}

/** Records a set with a release; `onlyIfMissing` keeps a set recorded before. */
export async function recordSet(
  remote: RemoteHost,
  releaseDir: string,
  set: Map<string, string>,
  opts: { onlyIfMissing?: boolean } = {}
): Promise<void> {
  const script = opts.onlyIfMissing
    ? 'test -e "$1" || cat > "$1"'
    : 'cat > "$1.new" && mv -f "$1.new" "$1"'
  await remote.exec(toShell(['sh', '-c', script, 'sh', `${releaseDir}/${FREEZE_FILE}`]), {
    stdin: [...set.values()].sort().join('\n') + '\n',
    timeoutMs: 30_000
  })
}

/** Copies the set recorded with one release to another; false when the first has none. */
export async function copySet(remote: RemoteHost, from: string, to: string): Promise<boolean> {
  const result = await remote.exec(
    toShell([
      'sh',
      '-c',
      'test -f "$1" && cp "$1" "$2"',
      'sh',
      `${from}/${FREEZE_FILE}`,
      `${to}/${FREEZE_FILE}`
    ]),
    { timeoutMs: 30_000 }
  )
  return result.code === 0
}

/**
 * Installs exactly `target` into the venv of `python` (a shared venv): what differs is
 * installed with --no-deps (the set is complete), what it lacks is uninstalled. Returns
 * the change made (empty when the sets already agreed).
 */
export async function restoreSet(
  remote: RemoteHost,
  opts: {
    python: string
    target: Map<string, string>
    pipArgs: string[]
    limits: Omit<LongStep, 'timeoutInput'>
    log: Log
  }
): Promise<string[]> {
  const now = await freeze(remote, opts.python)
  if (!now)
    throw new Error(`pip freeze failed with ${opts.python}: the packages cannot be restored`)
  const change = diffSets(now, opts.target)
  if (change.changed.length === 0) return []
  const pip = [opts.python, '-m', 'pip']
  const limits = { ...opts.limits, timeoutInput: 'pip-timeout' }
  if (change.remove.length > 0)
    await runLongStep(
      remote,
      'pip uninstall',
      toShell([...pip, 'uninstall', '--yes', '--disable-pip-version-check', ...change.remove]),
      limits
    )
  if (change.install.length > 0)
    await runLongStep(
      remote,
      'pip install (restore)',
      toShell([
        ...pip,
        'install',
        '--disable-pip-version-check',
        '--no-deps',
        ...opts.pipArgs.filter(a => a !== '--no-deps'),
        ...change.install
      ]),
      limits
    )
  const after = await freeze(remote, opts.python)
  const left = after ? diffSets(after, opts.target).changed : ['(pip freeze failed)']
  if (left.length > 0)
    throw new Error(`the packages were restored only in part; still different: ${left.join(', ')}`)
  opts.log.info(`packages restored: ${change.changed.join(', ')}`)
  return change.changed
}

/** What a per-release environment build did. */
export type { ReleaseVenv }

/**
 * Builds (or reuses) the release's own venv and links it as `<release>/.venv`; its
 * freeze is recorded with the release. `models`: venvs whose Python and
 * system-site-packages setting a new one copies, the first that exists.
 */
export async function buildReleaseVenv(
  remote: RemoteHost,
  opts: {
    layout: ReleaseLayout
    releaseDir: string
    models: string[]
    pipArgs: string[]
    limits: Omit<LongStep, 'timeoutInput'>
    log: Log
  }
): Promise<ReleaseVenv> {
  const spec = {
    root: opts.layout.root,
    release: opts.releaseDir,
    models: opts.models,
    pipArgs: opts.pipArgs
  }
  const result = await runLongStep(remote, 'the release environment', venvBuildLine(spec), {
    ...opts.limits,
    timeoutInput: 'pip-timeout'
  })
  const built = venvAnswer(remote.target.label, result, opts.limits.timeoutSeconds * 1000)
  if (built.built) {
    const pip = tailLines(result.stderr, 3)
    opts.log.info(
      `built the environment venvs/${built.key} in ${built.seconds} s${pip ? `:\n${pip}` : ''}`
    )
  } else opts.log.info(`reused the environment venvs/${built.key} (same requirements)`)
  return built
}

/** Whether a release's own environment is there to start it on (`.venv` resolves to a venv). */
export async function hasReleaseVenv(remote: RemoteHost, releaseDir: string): Promise<boolean> {
  const result = await remote.exec(toShell(['test', '-x', `${releaseDir}/.venv/bin/python`]), {
    timeoutMs: 30_000
  })
  return result.code === 0
}

/** Removes every venv under venvs/ that no release left in releases/ links to; returns their keys. */
export async function pruneVenvs(remote: RemoteHost, layout: ReleaseLayout): Promise<string[]> {
  const script = [
    'cd "$1" 2>/dev/null && [ -d venvs ] || exit 0',
    'used=$(for r in releases/*/; do readlink "$r.venv" 2>/dev/null; done)',
    'for v in venvs/*/; do',
    '  [ -d "$v" ] || continue',
    '  k=${v#venvs/}; k=${k%/}',
    '  printf "%s\\n" "$used" | grep -q "venvs/$k\\$" && continue',
    '  rm -rf "venvs/$k" && echo "$k"',
    'done'
  ].join('\n')
  const result = await runStep(
    remote,
    'prune unused environments',
    toShell(['sh', '-c', script, 'sh', layout.root]),
    { timeoutMs: 300_000 }
  )
  return result.stdout.split('\n').filter(Boolean)
}

/** The freeze of a release as a set, read beside other reads (undefined when none is recorded). */
export function recordedSetOf(remote: RemoteHost, releaseDir: string | undefined) {
  return releaseDir ? readRecordedSet(remote, releaseDir) : Promise.resolve(undefined)
}
