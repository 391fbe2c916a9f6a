// How a command line starts Gunicorn: its console script, `python -m gunicorn`,
// or either of them behind a launcher (`sh -c '...'`, `env`, `poetry run`,
// `uv run`, `pipenv run`). Where the Gunicorn command line cannot be found in
// the text (a wrapper script, `sh -c "$CMD"`), the launch is "unknown" with the
// reason: the running master can still tell, so nothing valid is refused here.
import { parse } from 'shell-quote'

/** Gunicorn started directly: its console script (run by `python` when shown), or the module. */
export type GunicornEntry =
  { kind: 'script'; path: string; python?: string } | { kind: 'module'; python: string }

export type GunicornLauncher =
  | GunicornEntry
  /** Behind launchers, outermost first, e.g. ['sh -c', 'poetry run']. */
  | { kind: 'wrapped'; by: string[]; inner: GunicornEntry }
  /** Not readable statically: what was unwrapped so far, and why it stops there. */
  | { kind: 'unknown'; by: string[]; reason: string }

/** The two variables of the environment that change Gunicorn's settings. */
export const GUNICORN_ENV_NAMES = ['WEB_CONCURRENCY', 'GUNICORN_CMD_ARGS'] as const
export type GunicornEnvName = (typeof GUNICORN_ENV_NAMES)[number]
/** Values a launch sets itself (`env NAME=V`, `export NAME=V`); null: unset (`env -u NAME`). */
export type LaunchEnv = Partial<Record<GunicornEnvName, string | null>>

export interface GunicornLaunch {
  launcher: GunicornLauncher
  /** Gunicorn's own arguments. */
  args: string[]
  /** Where Gunicorn starts when the launch changes directory (`cd`, `env -C`, `--directory`). */
  startDirectory?: string
  env: LaunchEnv
  /** false: the launch empties the environment first (`env -i`). */
  inheritsEnv: boolean
  /** Why the service's environment is not all Gunicorn sees (a .env file the launcher loads). */
  envHidden?: string
}

type Context = Omit<GunicornLaunch, 'launcher' | 'args'> & { by: string[] }

const GUNICORN_SCRIPT = /^gunicorn3?$/
const PYTHON = /^(python|pypy)(\d+(\.\d+)*)?t?$/
const GUNICORN_MODULES = new Set(['gunicorn', 'gunicorn.app.wsgiapp'])
const SHELLS = /^(sh|bash|dash|zsh|ksh|mksh|ash)$/
const ASSIGNMENT = /^([A-Za-z_]\w*)=(.*)$/s

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1)
}

/** `gunicorn ...`, `python [-u ...] -m gunicorn ...` or `python /path/gunicorn ...`. */
function directEntry(
  argv: readonly string[]
): { entry: GunicornEntry; argsAt: number } | undefined {
  if (GUNICORN_SCRIPT.test(baseName(argv[0])))
    return { entry: { kind: 'script', path: argv[0] }, argsAt: 1 }
  if (!PYTHON.test(baseName(argv[0]))) return undefined
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]
    if (a.startsWith('-m')) {
      const module = a === '-m' ? argv[i + 1] : a.slice(2)
      if (!GUNICORN_MODULES.has(module)) return undefined
      return { entry: { kind: 'module', python: argv[0] }, argsAt: a === '-m' ? i + 2 : i + 1 }
    }
    if (a === '-W' || a === '-X') i++
    else if (a === '-c' || a === '-') return undefined
    else if (!a.startsWith('-')) {
      if (!GUNICORN_SCRIPT.test(baseName(a))) return undefined
      return { entry: { kind: 'script', path: a, python: argv[0] }, argsAt: i + 1 }
    }
  }
  return undefined
}

function chdir(ctx: Context, dir: string | undefined): void {
  if (dir === undefined || dir === '' || /[$~`]/.test(dir)) return
  if (dir.startsWith('/') || ctx.startDirectory === undefined) ctx.startDirectory = dir
  else ctx.startDirectory = `${ctx.startDirectory.replace(/\/+$/, '')}/${dir}`
}

function assign(ctx: Context, word: string): void {
  const m = ASSIGNMENT.exec(word)
  const name = m?.[1] as GunicornEnvName | undefined
  if (!m || !name || !GUNICORN_ENV_NAMES.includes(name)) return
  if (m[2].includes('$')) ctx.envHidden = `the launch sets ${name}=${m[2]} at start`
  else ctx.env[name] = m[2]
}

function unset(ctx: Context, name: string | undefined): void {
  if (GUNICORN_ENV_NAMES.includes(name as GunicornEnvName)) ctx.env[name as GunicornEnvName] = null
}

/** `env [-i] [-u NAME] [-C DIR] [-S STRING] [NAME=VALUE]... COMMAND`: the command's argv. */
function unwrapEnv(argv: readonly string[], ctx: Context): readonly string[] {
  ctx.by.push('env')
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--') return argv.slice(i + 1)
    if (a === '-i' || a === '-' || a === '--ignore-environment') {
      ctx.inheritsEnv = false
      ctx.env = {}
    } else if (a === '-u' || a === '--unset') unset(ctx, argv[++i])
    else if (a.startsWith('--unset=')) unset(ctx, a.slice(8))
    else if (/^-u./.test(a)) unset(ctx, a.slice(2))
    else if (a === '-C' || a === '--chdir') chdir(ctx, argv[++i])
    else if (a.startsWith('--chdir=')) chdir(ctx, a.slice(8))
    else if (a === '-S' || a === '--split-string')
      return [...(argv[i + 1] ?? '').split(/\s+/).filter(w => w !== ''), ...argv.slice(i + 2)]
    else if (ASSIGNMENT.test(a)) assign(ctx, a)
    else if (!a.startsWith('-')) return argv.slice(i)
  }
  return []
}

interface Tool {
  run: string
  /** Options that take a value, and those among them that change directory or load a .env. */
  values: Set<string>
  chdir: Set<string>
  envFile: Set<string>
  /** The tool always loads a .env file. */
  dotenv?: string
}

const UV_VALUE_OPTIONS = `
  --directory --project -p --python --with --with-editable --with-requirements --env-file
  --extra --group --only-group --no-group --package --index --default-index -i --index-url
  --extra-index-url -f --find-links --config-file --cache-dir --color --index-strategy
  --keyring-provider --resolution --prerelease --link-mode --exclude-newer --python-platform
  -P --upgrade-package --reinstall-package --no-build-package --no-binary-package
  --refresh-package -C --config-setting --allow-insecure-host --python-preference
`
  .trim()
  .split(/\s+/)

const TOOLS = new Map<string, Tool>([
  [
    'poetry',
    {
      run: 'poetry run',
      values: new Set(['-C', '--directory', '-P', '--project']),
      chdir: new Set(['-C', '--directory']),
      envFile: new Set()
    }
  ],
  [
    'uv',
    {
      run: 'uv run',
      values: new Set(UV_VALUE_OPTIONS),
      chdir: new Set(['--directory']),
      envFile: new Set(['--env-file'])
    }
  ],
  [
    'pipenv',
    {
      run: 'pipenv run',
      values: new Set(['--python', '--pypi-mirror']),
      chdir: new Set(),
      envFile: new Set(),
      dotenv: 'pipenv run loads the project .env file (unless PIPENV_DONT_LOAD_ENV is set)'
    }
  ]
])

/** `TOOL [options] run [options] [--] COMMAND`: the command's argv, or why it is not one. */
function unwrapTool(argv: readonly string[], ctx: Context, tool: Tool): readonly string[] | string {
  let ran = false
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]
    if (!ran && a === 'run') {
      ran = true
      ctx.by.push(tool.run)
      if (tool.dotenv) ctx.envHidden = tool.dotenv
    } else if (ran && a === '--') return argv.slice(i + 1)
    else if (!a.startsWith('-')) return ran ? argv.slice(i) : `${argv[0]} ${a} is not "run"`
    else {
      const eq = a.indexOf('=')
      const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a
      if (!tool.values.has(name)) continue
      const value = name === a ? argv[++i] : a.slice(eq + 1)
      if (tool.chdir.has(name)) chdir(ctx, value)
      if (tool.envFile.has(name)) ctx.envHidden = `${tool.run} ${name} ${value} loads variables`
    }
  }
  return `${argv[0]} runs no command`
}

/** Words and operators of an `sh -c` script, `$VAR` kept as written. */
function scriptCommands(script: string): string[][] {
  const commands: string[][] = [[]]
  for (const entry of parse(script, key => `$${key}`)) {
    if (typeof entry === 'string') commands[commands.length - 1].push(entry)
    else if ('comment' in entry) break
    else if (entry.op === 'glob') commands[commands.length - 1].push(entry.pattern)
    else commands.push([])
  }
  return commands.filter(c => c.length > 0)
}

/** `sh -c SCRIPT`: the first command of the script that starts Gunicorn. */
function shellLaunch(argv: readonly string[], ctx: Context, depth: number): GunicornLaunch {
  let i = 1
  for (; i < argv.length && !/^-[A-Za-z]*c[A-Za-z]*$/.test(argv[i]); i++) {
    if (argv[i] === '-o' || argv[i] === '+o') i++
    else if (!/^[-+]/.test(argv[i])) break
  }
  if (i >= argv.length || argv[i][0] !== '-')
    return unknown(ctx, `${argv.join(' ')} runs a script whose Gunicorn command line is not read`)
  ctx.by.push(`${baseName(argv[0])} -c`)
  const script = argv.slice(i + 1).join(' ')
  for (let words of scriptCommands(script)) {
    if (words[0] === 'cd') chdir(ctx, words[1])
    else if (words[0] === 'export') words.slice(1).forEach(w => assign(ctx, w))
    if (words[0] === 'cd' || words[0] === 'export') continue
    const attempt: Context = { ...ctx, by: [...ctx.by], env: { ...ctx.env } }
    while (words.length > 1 && (ASSIGNMENT.test(words[0]) || words[0] === 'exec')) {
      if (words[0] !== 'exec') assign(attempt, words[0])
      words = words.slice(1)
    }
    const found = launchAt(words, attempt, depth + 1)
    if (found.launcher.kind !== 'unknown') return found
  }
  return unknown(
    ctx,
    `the ${baseName(argv[0])} -c script starts no Gunicorn command that can be read: ${script}`
  )
}

function unknown(ctx: Context, reason: string): GunicornLaunch {
  return finish({ kind: 'unknown', by: ctx.by, reason }, [], ctx)
}

function finish(launcher: GunicornLauncher, args: string[], ctx: Context): GunicornLaunch {
  const launch: GunicornLaunch = { launcher, args, env: ctx.env, inheritsEnv: ctx.inheritsEnv }
  if (ctx.startDirectory !== undefined) launch.startDirectory = ctx.startDirectory
  if (ctx.envHidden !== undefined) launch.envHidden = ctx.envHidden
  return launch
}

function launchAt(argv: readonly string[], ctx: Context, depth: number): GunicornLaunch {
  if (argv.length === 0) return unknown(ctx, 'the command line is empty')
  const direct = directEntry(argv)
  if (direct) {
    const args = argv.slice(direct.argsAt)
    if (ctx.by.length === 0) return finish(direct.entry, args, ctx)
    return finish({ kind: 'wrapped', by: ctx.by, inner: direct.entry }, args, ctx)
  }
  const name = baseName(argv[0])
  if (depth > 5) return unknown(ctx, `launchers nested too deeply at ${argv[0]}`)
  if (SHELLS.test(name)) return shellLaunch(argv, ctx, depth)
  const tool = TOOLS.get(name)
  const inner =
    name === 'env' ? unwrapEnv(argv, ctx) : tool ? unwrapTool(argv, ctx, tool) : undefined
  if (typeof inner === 'string') return unknown(ctx, inner)
  if (inner) return launchAt(inner, ctx, depth + 1)
  return unknown(
    ctx,
    `${argv[0]} is neither Gunicorn nor a launcher whose Gunicorn command line can be read (a wrapper script?)`
  )
}

/** How argv (ExecStart, or a running process's command line) starts Gunicorn. */
export function findGunicornLaunch(argv: readonly string[]): GunicornLaunch {
  return launchAt(argv, { by: [], env: {}, inheritsEnv: true }, 0)
}
