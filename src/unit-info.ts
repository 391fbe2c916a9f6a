// What systemd says about the service, and what its Gunicorn command line means.

export interface UnitInfo {
  loadState: string
  activeState: string
  subState: string
  mainPid: number
  nRestarts: number
  execStart: string[]
  execReload: string[]
  workingDirectory: string
  environmentFiles: string[]
  user: string
  fragmentPath: string
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
  'User',
  'FragmentPath'
]

/** argv[] of a `{ path=... ; argv[]=... ; ... }` exec property (systemd joins it with spaces). */
function execArgv(value: string | undefined): string[] {
  if (!value) return []
  const m = /argv\[\]=(.*?) ; /.exec(value)
  return m ? m[1].split(' ').filter(w => w !== '') : []
}

/** Parses `systemctl show -p A -p B ...` output (KEY=VALUE lines). */
export function parseUnitShow(text: string): UnitInfo {
  const props = new Map<string, string>()
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=')
    if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1))
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
    environmentFiles: get('EnvironmentFiles')
      .split(/\s+\(ignore_errors=(?:yes|no)\)\s*/)
      .map(s => s.trim().replace(/^-/, ''))
      .filter(s => s !== ''),
    user: get('User'),
    fragmentPath: get('FragmentPath')
  }
}

export interface GunicornCommand {
  /** How the unit starts Gunicorn: a console script, or `python -m gunicorn`. */
  launcher:
    { kind: 'script'; path: string } | { kind: 'module'; python: string } | { kind: 'unknown' }
  workers?: number
  chdir?: string
  binds: string[]
  preload: boolean
  /** The Gunicorn config file named by -c/--config (or, once read, the default one). */
  configFile?: string
  /** True once the config file's settings were merged in (see withConfigFile). */
  configRead?: boolean
  /** Where preload comes from, for messages: `--preload` or `preload_app in <file>`. */
  preloadSource?: string
  app?: string
}

const VALUE_FLAGS = new Map<string, string>([
  ['-w', 'workers'],
  ['--workers', 'workers'],
  ['--chdir', 'chdir'],
  ['-b', 'bind'],
  ['--bind', 'bind'],
  ['-c', 'config'],
  ['--config', 'config']
])

// Flags of Gunicorn that take a value, so their value is not taken for the app.
const OTHER_VALUE_FLAGS =
  /^(-[kteugmn]|--(worker-class|threads|timeout|graceful-timeout|keep-alive|user|group|umask|name|log-level|access-logfile|error-logfile|log-file|pid|max-requests|max-requests-jitter|backlog|worker-connections|env|pythonpath|paste|forwarded-allow-ips|log-config|statsd-host|limit-request-line|worker-tmp-dir))$/

/** Reads the Gunicorn options that matter for a graceful reload out of ExecStart. */
export function parseGunicornCommand(argv: string[]): GunicornCommand {
  const result: GunicornCommand = { launcher: { kind: 'unknown' }, binds: [], preload: false }
  let i: number
  if (argv.length === 0) return result
  const first = argv[0]
  if (/\/python[0-9.]*$/.test(first) && argv[1] === '-m' && argv[2] === 'gunicorn') {
    result.launcher = { kind: 'module', python: first }
    i = 3
  } else if (/gunicorn$/.test(first)) {
    result.launcher = { kind: 'script', path: first }
    i = 1
  } else {
    return result
  }
  for (; i < argv.length; i++) {
    const arg = argv[i]
    const [flag, inline] =
      arg.startsWith('--') && arg.includes('=')
        ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
        : [arg, undefined]
    const key = VALUE_FLAGS.get(flag)
    if (key) {
      const value = inline ?? argv[++i]
      if (key === 'workers') result.workers = Number(value)
      else if (key === 'chdir') result.chdir = value
      else if (key === 'bind') result.binds.push(value)
      else result.configFile = value
    } else if (flag === '--preload') {
      result.preload = true
      result.preloadSource = '--preload'
    } else if (OTHER_VALUE_FLAGS.test(flag) && inline === undefined) {
      i++
    } else if (!flag.startsWith('-')) {
      result.app = arg
    }
  }
  return result
}

/**
 * True when Gunicorn reads a config file whose settings are not known here (unreadable,
 * or chdir/preload_app computed): the reload traps are then left to verification.
 */
export function configUnseen(g: GunicornCommand): boolean {
  return g.configFile !== undefined && g.configRead !== true
}

/** The config file Gunicorn reads at start: -c, or ./gunicorn.conf.py in its start directory. */
export function configFileOf(unit: Pick<UnitInfo, 'workingDirectory'>, g: GunicornCommand): string {
  const dir = unit.workingDirectory || '/'
  const file = g.configFile ?? 'gunicorn.conf.py'
  if (file.startsWith('/')) return file
  return `${dir.replace(/\/+$/, '')}/${file.replace(/^\.\//, '')}`
}

function quotedStrings(text: string): string[] {
  return [...text.matchAll(/(['"])(.*?)\1/g)].map(m => m[2])
}

const STRING_LITERAL = /^(['"])[^'"]*\1$/
const STRING_LIST = /^[[(]\s*(['"][^'"]*['"]\s*,?\s*)*[\])]$/

/**
 * Merges the settings a Gunicorn config file (Python) sets with plain literal
 * assignments at the start of a line: preload_app, chdir, workers, bind. The
 * command line wins over the file, as in Gunicorn; the last assignment wins, as
 * in Python. A setting assigned a computed value leaves the file "not read"
 * (configRead false), so the reload traps are left to verification after the
 * reload, which catches whatever this misses.
 */
export function withConfigFile(g: GunicornCommand, file: string, text: string): GunicornCommand {
  const setting = (name: string): string | undefined => {
    const all = [...text.matchAll(new RegExp(`^${name}\\s*=\\s*(.+?)\\s*(#.*)?$`, 'gm'))]
    return all.length > 0 ? all[all.length - 1][1] : undefined
  }
  const merged: GunicornCommand = { ...g, binds: [...g.binds], configFile: file, configRead: true }
  const preload = setting('preload_app')
  if (preload !== undefined && !g.preload) {
    if (preload === 'True' || preload === '1') {
      merged.preload = true
      merged.preloadSource = `preload_app = True in ${file}`
    } else if (preload !== 'False' && preload !== '0') merged.configRead = false
  }
  const chdir = setting('chdir')
  if (chdir !== undefined && g.chdir === undefined) {
    if (STRING_LITERAL.test(chdir)) merged.chdir = chdir.slice(1, -1)
    else merged.configRead = false
  }
  const workers = setting('workers')
  if (workers !== undefined && g.workers === undefined && /^\d+$/.test(workers))
    merged.workers = Number(workers)
  const bind = setting('bind')
  if (
    bind !== undefined &&
    g.binds.length === 0 &&
    (STRING_LITERAL.test(bind) || STRING_LIST.test(bind))
  )
    merged.binds = quotedStrings(bind)
  return merged
}
