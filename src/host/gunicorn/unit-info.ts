// What systemd says about the service, and what its Gunicorn command line means:
// ExecStart (through any launcher, see gunicorn-launch.ts), GUNICORN_CMD_ARGS and
// WEB_CONCURRENCY of its environment, and the Gunicorn config file, merged with
// Gunicorn's precedence: command line > GUNICORN_CMD_ARGS > config file >
// WEB_CONCURRENCY > default.
import { parseBind, type Bind } from './bind.js'
import { parseGunicornArgs, splitLikeShlex, type GunicornArgs } from './gunicorn-flags.js'
import {
  findGunicornLaunch,
  type GunicornEnvName,
  type GunicornLauncher,
  type LaunchEnv
} from './gunicorn-launch.js'
import type { EnvFile } from '../env-sources.js'

export interface UnitInfo {
  loadState: string
  activeState: string
  subState: string
  mainPid: number
  nRestarts: number
  execStart: string[]
  execReload: string[]
  workingDirectory: string
  /** Every EnvironmentFile= of the unit and its drop-ins, in order (`-` prefixed: optional). */
  environmentFiles: EnvFile[]
  /** Environment= assignments (`NAME=value`), in order. */
  environment: string[]
  user: string
  /** Group= (empty: the user's primary group). */
  group: string
  fragmentPath: string
  /** The unit's name (`Id`), when shown. */
  id?: string
  /** Units that start this one (`TriggeredBy`): a `.socket` unit means socket activation. */
  triggeredBy?: string[]
}

export const UNIT_PROPERTIES = [
  'LoadState',
  'ActiveState',
  'SubState',
  'MainPID',
  'NRestarts',
  'ExecStart',
  'ExecReload',
  'WorkingDirectory',
  'EnvironmentFiles',
  'Environment',
  'User',
  'Group',
  'FragmentPath',
  'Id',
  'TriggeredBy'
]

/**
 * argv[] of a `{ path=... ; argv[]=... ; ignore_errors=... }` exec property. systemd
 * joins argv with spaces, unquoted, so an `sh -c` script comes back as several
 * words, and may itself contain ` ; `.
 */
function execArgv(value: string | undefined): string[] {
  if (!value) return []
  const m = /argv\[\]=(.*?) ; (?:ignore_errors|flags)=/.exec(value)
  return m ? m[1].split(' ').filter(w => w !== '') : []
}

/**
 * EnvironmentFiles lines: `PATH (ignore_errors=no)` each (ignore_errors=yes: a `-`
 * prefixed, optional file); one line per file, or several on one line.
 */
export function parseEnvironmentFiles(lines: string[]): EnvFile[] {
  const files: EnvFile[] = []
  for (const line of lines)
    for (const m of line.matchAll(/\s*(.+?) \(ignore_errors=(yes|no)\)/g))
      files.push({ path: m[1].replace(/^-/, ''), optional: m[2] === 'yes' })
  return files
}

/**
 * The words of an Environment= property as systemctl shows it: separated by spaces, a
 * word with spaces or special characters in double quotes, `\"`, `\\`, `\$` and `\``
 * escaped inside them.
 */
export function parseEnvironment(value: string): string[] {
  const words: string[] = []
  let i = 0
  while (i < value.length) {
    if (value[i] === ' ') {
      i++
      continue
    }
    let word = ''
    if (value[i] === '"') {
      for (i++; i < value.length && value[i] !== '"'; i++) {
        if (value[i] === '\\' && i + 1 < value.length) i++
        word += value[i]
      }
      i++
    } else for (; i < value.length && value[i] !== ' '; i++) word += value[i]
    if (word.includes('=')) words.push(word)
  }
  return words
}

/** Parses `systemctl show -p A -p B ...` output (KEY=VALUE lines). */
export function parseUnitShow(text: string): UnitInfo {
  const props = new Map<string, string>()
  const envFileLines: string[] = []
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=')
    if (eq <= 0) continue
    props.set(line.slice(0, eq), line.slice(eq + 1))
    if (line.slice(0, eq) === 'EnvironmentFiles') envFileLines.push(line.slice(eq + 1))
  }
  const get = (k: string) => props.get(k) ?? ''
  return {
    loadState: get('LoadState'),
    activeState: get('ActiveState'),
    subState: get('SubState'),
    mainPid: Number(get('MainPID')) || 0,
    nRestarts: Number(get('NRestarts')) || 0,
    execStart: execArgv(props.get('ExecStart')),
    execReload: execArgv(props.get('ExecReload')),
    workingDirectory: get('WorkingDirectory').replace(/^!/, ''),
    environmentFiles: parseEnvironmentFiles(envFileLines),
    environment: parseEnvironment(get('Environment')),
    user: get('User'),
    group: get('Group'),
    fragmentPath: get('FragmentPath'),
    ...(props.has('Id') ? { id: get('Id') } : {}),
    ...(get('TriggeredBy') ? { triggeredBy: get('TriggeredBy').split(/\s+/) } : {})
  }
}

/** The socket units that activate the service (systemd hands Gunicorn their sockets). */
export function socketUnits(unit: Pick<UnitInfo, 'triggeredBy'>): string[] {
  return (unit.triggeredBy ?? []).filter(u => u.endsWith('.socket'))
}

/**
 * Gunicorn's binds from a socket unit's `Listen` property (`systemctl show -p Listen`:
 * `Listen=/run/gunicorn.sock (Stream)`, `Listen=[::]:8000 (Stream)`): stream sockets
 * only, a path as `unix:PATH`; an abstract socket (`@name`) is left out.
 */
export function parseSocketListens(text: string): string[] {
  const binds: string[] = []
  for (const line of text.split('\n')) {
    const m = /^Listen=(\S+) \(Stream\)$/.exec(line.trim())
    if (!m || m[1].startsWith('@')) continue
    binds.push(m[1].startsWith('/') ? `unix:${m[1]}` : m[1])
  }
  return binds
}

/** Where a setting's value comes from, weakest last (as Gunicorn applies them). */
export type SettingSource =
  | 'systemd socket'
  | 'command line'
  | 'GUNICORN_CMD_ARGS'
  | 'config file'
  | 'WEB_CONCURRENCY'
  | 'default'

const RANK: Record<SettingSource, number> = {
  'systemd socket': 5,
  'command line': 4,
  GUNICORN_CMD_ARGS: 3,
  'config file': 2,
  WEB_CONCURRENCY: 1,
  default: 0
}

export type GunicornSetting =
  'config' | 'workers' | 'workerClass' | 'threads' | 'chdir' | 'bind' | 'preload' | 'app'

export interface GunicornCommand {
  /** How the unit starts Gunicorn; `unknown` when its command line cannot be read statically. */
  launcher: GunicornLauncher
  /** Undefined when unknown (computed, or set where it could not be read). */
  workers?: number
  /** As given (-k, worker_class); undefined when not set (Gunicorn's default is sync). */
  workerClass?: string
  threads?: number
  chdir?: string
  /** Every bind, parsed (a $-bind is left out: its value is known only at start). */
  binds: Bind[]
  preload: boolean
  /** The Gunicorn config file named by -c/--config (or, once read, the default one). */
  configFile?: string
  /** True once the config file's settings were merged in (see withConfigFile). */
  configRead?: boolean
  /** The config file exists but the deploy user cannot read it. */
  configUnreadable?: boolean
  /** Where preload comes from, for messages: `--preload` or `preload_app in <file>`. */
  preloadSource?: string
  app?: string
  /** Which source set each setting that is set (or computed). */
  sources: Partial<Record<GunicornSetting, SettingSource>>
  /** Settings a source sets to a value not known statically (an expression, $VAR). */
  computed?: GunicornSetting[]
  /** Words of the command line that systemd or a shell expands at start ($OPTS): options unknown. */
  unresolved?: string[]
  /** Where Gunicorn starts when the launch changes directory (relative: to WorkingDirectory). */
  startDirectory?: string
  /** WEB_CONCURRENCY / GUNICORN_CMD_ARGS that the launch itself sets (null: unsets). */
  launchEnv?: LaunchEnv
  /** false: the launch empties the environment (`env -i`). */
  inheritsEnv?: boolean
  /** Why the environment Gunicorn sees cannot be known (a .env file the launcher loads). */
  envHidden?: string
  /** True once WEB_CONCURRENCY and GUNICORN_CMD_ARGS of the service are known (withGunicornEnv). */
  envRead?: boolean
  /** The options before a config file was merged in: what another config file would change. */
  beforeConfig?: GunicornCommand
}

function copy(g: GunicornCommand): GunicornCommand {
  return {
    ...g,
    binds: [...g.binds],
    sources: { ...g.sources },
    ...(g.computed ? { computed: [...g.computed] } : {}),
    ...(g.unresolved ? { unresolved: [...g.unresolved] } : {})
  }
}

/** Takes a setting for `source` unless a stronger source set it; a weaker value is replaced. */
function claim(g: GunicornCommand, key: GunicornSetting, source: SettingSource): boolean {
  const have = g.sources[key]
  if (have !== undefined && RANK[have] > RANK[source]) return false
  g.sources[key] = source
  if (g.computed) g.computed = g.computed.filter(k => k !== key)
  if (g.computed?.length === 0) delete g.computed
  return true
}

/** The source sets `key` to a value not known here: whatever a weaker source said is void. */
function computed(g: GunicornCommand, key: GunicornSetting, source: SettingSource): boolean {
  if (!claim(g, key, source)) return false
  g.computed = [...(g.computed ?? []), key]
  if (key === 'bind') g.binds = []
  else if (key !== 'config' && key !== 'preload') delete g[key]
  return true
}

function unresolved(g: GunicornCommand, word: string): void {
  g.unresolved = [...(g.unresolved ?? []), word]
}

function applyCount(
  g: GunicornCommand,
  key: 'workers' | 'threads',
  raw: string | undefined,
  source: SettingSource
): void {
  if (raw === undefined) return
  if (/^\s*\d+\s*$/.test(raw)) {
    if (claim(g, key, source)) g[key] = Number(raw)
  } else computed(g, key, source)
}

/** Merges one set of Gunicorn arguments (the command line, or GUNICORN_CMD_ARGS). */
function applyArgs(g: GunicornCommand, a: GunicornArgs, source: SettingSource): void {
  const fromCommandLine = source === 'command line'
  if (fromCommandLine) for (const w of a.unresolved) unresolved(g, w)
  const values = [a.workers, a.threads, a.workerClass, a.chdir, a.config, ...a.binds]
  if (fromCommandLine) for (const v of values) if (v?.includes('$')) unresolved(g, v)
  applyCount(g, 'workers', a.workers, source)
  applyCount(g, 'threads', a.threads, source)
  if (a.workerClass !== undefined) {
    if (a.workerClass.includes('$')) computed(g, 'workerClass', source)
    else if (claim(g, 'workerClass', source)) g.workerClass = a.workerClass
  }
  if (a.chdir !== undefined) {
    if (a.chdir.includes('$')) computed(g, 'chdir', source)
    else if (claim(g, 'chdir', source)) g.chdir = a.chdir
  }
  // a $-path is kept as written: it is never read, so the file stays unseen
  if (a.config !== undefined && claim(g, 'config', source)) g.configFile = a.config
  if (a.binds.length > 0 && claim(g, 'bind', source))
    g.binds = a.binds.filter(b => !b.includes('$')).map(parseBind)
  if (a.preload && claim(g, 'preload', source)) {
    g.preload = true
    g.preloadSource = fromCommandLine ? '--preload' : `--preload in ${source}`
  }
  if (fromCommandLine && a.app !== undefined && claim(g, 'app', source)) g.app = a.app
}

/**
 * Reads the Gunicorn options that matter for a graceful reload out of ExecStart
 * (or a running master's command line), through the launchers it understands.
 */
export function parseGunicornCommand(argv: readonly string[]): GunicornCommand {
  const launch = findGunicornLaunch(argv)
  const g: GunicornCommand = { launcher: launch.launcher, binds: [], preload: false, sources: {} }
  if (launch.startDirectory !== undefined) g.startDirectory = launch.startDirectory
  if (Object.keys(launch.env).length > 0) g.launchEnv = launch.env
  if (!launch.inheritsEnv) g.inheritsEnv = false
  if (launch.envHidden !== undefined) g.envHidden = launch.envHidden
  if (launch.launcher.kind !== 'unknown')
    applyArgs(g, parseGunicornArgs(launch.args), 'command line')
  return g
}

/** WEB_CONCURRENCY and GUNICORN_CMD_ARGS of the service (the only names ever read). */
export type GunicornEnv = { readable: boolean } & Partial<Record<GunicornEnvName, string>>

/**
 * Merges the service's environment: GUNICORN_CMD_ARGS between the config file
 * and the command line (its --config is used when the command line has none),
 * WEB_CONCURRENCY as the default worker count. What the launch itself sets
 * (`env NAME=V`, `export`) wins over the service's environment.
 */
export function withGunicornEnv(g: GunicornCommand, env: GunicornEnv): GunicornCommand {
  const merged = copy(g)
  const launchEnv = g.launchEnv ?? {}
  const value = (name: GunicornEnvName): string | undefined =>
    name in launchEnv
      ? (launchEnv[name] ?? undefined)
      : g.inheritsEnv === false
        ? undefined
        : env[name]
  const allByLaunch = (['WEB_CONCURRENCY', 'GUNICORN_CMD_ARGS'] as const).every(n => n in launchEnv)
  merged.envRead =
    g.envHidden === undefined && (env.readable || g.inheritsEnv === false || allByLaunch)
  const cmdArgs = value('GUNICORN_CMD_ARGS')
  if (cmdArgs) applyArgs(merged, parseGunicornArgs(splitLikeShlex(cmdArgs)), 'GUNICORN_CMD_ARGS')
  const concurrency = value('WEB_CONCURRENCY')
  if (concurrency !== undefined) applyCount(merged, 'workers', concurrency, 'WEB_CONCURRENCY')
  return merged
}

/**
 * True when Gunicorn reads a config file whose settings are not known here (unreadable,
 * or chdir/preload_app computed): the reload traps are then left to verification.
 */
export function configUnseen(g: GunicornCommand): boolean {
  return g.configFile !== undefined && g.configRead !== true
}

/**
 * True when the options that decide the reload traps (chdir, preload) may be set
 * where they cannot be read: an unseen config file, words of the command line
 * expanded at start ($GUNICORN_OPTS, --chdir $DIR), or a computed value. An
 * unreadable environment (envRead false) is not counted: GUNICORN_CMD_ARGS
 * rarely sets them, and verification after the reload catches it.
 */
export function optionsUnseen(g: GunicornCommand): boolean {
  const computedTrap = g.computed?.some(k => k === 'chdir' || k === 'preload') ?? false
  return configUnseen(g) || (g.unresolved?.length ?? 0) > 0 || computedTrap
}

/** The directory Gunicorn starts in: the launch's `cd`, else WorkingDirectory, else /. */
export function startDirectoryOf(
  unit: Pick<UnitInfo, 'workingDirectory'>,
  g: Pick<GunicornCommand, 'startDirectory'>
): string {
  const base = (unit.workingDirectory || '/').replace(/(.)\/+$/, '$1')
  const dir = g.startDirectory
  if (dir === undefined) return base
  if (dir.startsWith('/')) return dir
  return `${base.replace(/\/$/, '')}/${dir.replace(/^\.\//, '')}`
}

/** The config file Gunicorn reads at start: -c, or ./gunicorn.conf.py in its start directory. */
export function configFileOf(
  unit: Pick<UnitInfo, 'workingDirectory'>,
  g: Pick<GunicornCommand, 'configFile' | 'startDirectory'>
): string {
  const file = g.configFile ?? 'gunicorn.conf.py'
  if (file.startsWith('/')) return file
  return `${startDirectoryOf(unit, g).replace(/\/+$/, '')}/${file.replace(/^\.\//, '')}`
}

function quotedStrings(text: string): string[] {
  return [...text.matchAll(/(['"])(.*?)\1/g)].map(m => m[2])
}

const STRING_LITERAL = /^(['"])[^'"]*\1$/
const STRING_LIST = /^[[(]\s*(['"][^'"]*['"]\s*,?\s*)*[\])]$/
const stringValue = (v: string): string | undefined =>
  STRING_LITERAL.test(v) ? v.slice(1, -1) : undefined

/** The last plain assignment `name = value` at the start of a line (optionally annotated). */
function assignment(text: string, name: string): string | undefined {
  const re = new RegExp(`^${name}\\s*(?::[^=]*)?=\\s*(.+?)\\s*(#.*)?$`, 'gm')
  const all = [...text.matchAll(re)]
  return all.length > 0 ? all[all.length - 1][1] : undefined
}

function applyFilePreload(g: GunicornCommand, file: string, preload: string | undefined): void {
  if (preload === undefined) return
  const on = preload === 'True' || preload === '1'
  const off = preload === 'False' || preload === '0'
  if (!on && !off) {
    if (!g.preload) {
      computed(g, 'preload', 'config file')
      g.configRead = false
    }
  } else if (claim(g, 'preload', 'config file') && on) {
    g.preload = true
    g.preloadSource = `preload_app = True in ${file}`
  }
}

/**
 * Merges the settings a Gunicorn config file (Python) sets with plain literal
 * assignments at the start of a line: preload_app, chdir, workers, threads,
 * worker_class, bind (a string or a list) and wsgi_app. Stronger sources (the
 * command line, GUNICORN_CMD_ARGS) win over the file, as in Gunicorn; the last
 * assignment wins, as in Python. A computed workers/threads/worker_class/bind/
 * wsgi_app is "computed" (unknown); a computed chdir or preload_app leaves the
 * file "not read" (configRead false), so the reload traps are left to
 * verification after the reload, which catches whatever this misses.
 */
export function withConfigFile(g: GunicornCommand, file: string, text: string): GunicornCommand {
  const merged = copy(g)
  merged.configFile = file
  merged.configRead = true
  delete merged.configUnreadable
  applyFilePreload(merged, file, assignment(text, 'preload_app'))
  const chdir = assignment(text, 'chdir')
  if (chdir !== undefined && claim(merged, 'chdir', 'config file')) {
    if (stringValue(chdir) !== undefined) merged.chdir = stringValue(chdir)
    else merged.configRead = false
  }
  applyCount(merged, 'workers', assignment(text, 'workers'), 'config file')
  applyCount(merged, 'threads', assignment(text, 'threads'), 'config file')
  const workerClass = assignment(text, 'worker_class')
  if (workerClass !== undefined) {
    const literal = stringValue(workerClass)
    if (literal === undefined) computed(merged, 'workerClass', 'config file')
    else if (claim(merged, 'workerClass', 'config file')) merged.workerClass = literal
  }
  const bind = assignment(text, 'bind')
  if (bind !== undefined) {
    if (!STRING_LITERAL.test(bind) && !STRING_LIST.test(bind))
      computed(merged, 'bind', 'config file')
    else if (claim(merged, 'bind', 'config file')) merged.binds = quotedStrings(bind).map(parseBind)
  }
  const app = assignment(text, 'wsgi_app')
  if (app !== undefined) {
    if (stringValue(app) === undefined) computed(merged, 'app', 'config file')
    else if (claim(merged, 'app', 'config file')) merged.app = stringValue(app)
  }
  return merged
}

/**
 * Socket activation: systemd hands Gunicorn the socket unit's listening sockets
 * (LISTEN_FDS), and Gunicorn then serves on them alone, whatever --bind or the config
 * file say. Its binds are the socket unit's, and a reload keeps them.
 */
export function withSocketActivation(g: GunicornCommand, binds: string[]): GunicornCommand {
  if (binds.length === 0) return g
  const merged = copy(g)
  merged.binds = binds.map(parseBind)
  merged.sources.bind = 'systemd socket'
  if (merged.computed) merged.computed = merged.computed.filter(k => k !== 'bind')
  if (merged.computed?.length === 0) delete merged.computed
  return merged
}

/**
 * Gunicorn runs 1 worker when nothing sets a count. That default is claimed only
 * when everything that could set one is known: the command line (no $-words), the
 * service's environment (withGunicornEnv) and the config file (read, or absent).
 */
export function withDefaultWorkers(g: GunicornCommand): GunicornCommand {
  const known =
    g.launcher.kind !== 'unknown' &&
    g.envRead === true &&
    g.configUnreadable !== true &&
    (g.unresolved?.length ?? 0) === 0
  if (g.workers !== undefined || g.sources.workers !== undefined || !known) return g
  return { ...copy(g), workers: 1, sources: { ...g.sources, workers: 'default' } }
}
