// Checks and preparation that run BEFORE `current` is switched: the
// interpreter, dependencies, the EnvironmentFile, the import check and
// migrations. Any failure here leaves the running release untouched.
import type { Interpreter } from './gunicorn/gunicorn-interpreter.js'
import type { Log } from '../core/log.js'
import { helperArgv } from './remote-helper.js'
import { describeEnvFiles, envArg, type EnvCheck, type EnvSources } from './env-sources.js'
import { RemoteCommandError, runStep, tailLines } from '../transport/remote-command.js'
import { optional, toShell, type ShellLine } from '../transport/shell-quote.js'
import type { ExecResult, RemoteHost } from '../transport/ssh-connection.js'

export async function fileHash(remote: RemoteHost, path: string): Promise<string | undefined> {
  const result = await remote.exec(optional(['sha256sum', path]))
  return result.stdout.split(' ')[0] || undefined
}

/** How long a step that may run for minutes may take, and what stops it early. */
export interface LongStep {
  timeoutSeconds: number
  /** The input that sets timeoutSeconds, named when it passes. */
  timeoutInput: string
  /** Aborted when the run is cancelled. */
  signal?: AbortSignal
}

/**
 * Runs a step that may take minutes (pip, migrations) in a process group of its
 * own: when `limits.timeoutSeconds` pass or `limits.signal` aborts, the command
 * and everything it started are stopped on the host (TERM, then KILL) before
 * this throws. Throws RemoteCommandError for a non-zero exit status.
 */
export async function runLongStep(
  remote: RemoteHost,
  step: string,
  command: ShellLine,
  limits: LongStep
): Promise<ExecResult> {
  const result = await remote.exec(command, {
    processGroup: true,
    timeoutMs: limits.timeoutSeconds * 1000,
    signal: limits.signal
  })
  const host = remote.target.label
  if (result.cancelled)
    throw new Error(`${step} on ${host} was cancelled: it was stopped on the host`)
  if (result.timedOut)
    throw new Error(
      `${step} on ${host} did not finish within ${limits.timeoutSeconds}s (${limits.timeoutInput}): it was stopped on the host (TERM, then KILL). Nothing was switched; raise ${limits.timeoutInput} if it needs longer${tailOf(result)}`
    )
  if (result.code !== 0) throw new RemoteCommandError(step, result, host)
  return result
}

function tailOf(result: ExecResult): string {
  const tail = tailLines(result.stderr || result.stdout, 15)
  return tail ? `:\n${tail}` : ''
}

/** pip install -r requirements.txt when it differs from the current release's. Returns whether it ran. */
export async function installDependencies(
  remote: RemoteHost,
  opts: {
    /** Undefined when the unit's interpreter could not be found. */
    interpreter?: Interpreter
    releaseDir: string
    currentDir?: string
    pipArgs: string[]
    /** pip-timeout, and the run's cancellation */
    limits: Omit<LongStep, 'timeoutInput'>
    log: Log
  }
): Promise<boolean> {
  const requirements = `${opts.releaseDir}/requirements.txt`
  const [next, current] = await Promise.all([
    fileHash(remote, requirements),
    opts.currentDir
      ? fileHash(remote, `${opts.currentDir}/requirements.txt`)
      : Promise.resolve(undefined)
  ])
  if (!next) {
    opts.log.info('no requirements.txt in the release: nothing to install')
    return false
  }
  if (current === next) {
    opts.log.info('requirements.txt unchanged since the current release: skipping pip')
    return false
  }
  if (!opts.interpreter)
    throw new Error(
      "requirements.txt changed, but the unit's Python interpreter could not be found (see preflight's warning), so pip cannot install into the unit's venv: start Gunicorn as <venv>/bin/python -m gunicorn in ExecStart"
    )
  if (!opts.interpreter.venv) {
    throw new Error(
      `requirements.txt changed but ${opts.interpreter.python} is not in a virtualenv; refusing to pip install into the system Python`
    )
  }
  const result = await runLongStep(
    remote,
    'pip install',
    toShell([
      opts.interpreter.python,
      '-m',
      'pip',
      'install',
      '--disable-pip-version-check',
      '-r',
      requirements,
      ...opts.pipArgs
    ]),
    { ...opts.limits, timeoutInput: 'pip-timeout' }
  )
  opts.log.info(tailLines(result.stdout, 5))
  return true
}

/** Every EnvironmentFile exists, parses, and the environment sets every required name; values never leave the host. */
export async function checkEnvironment(
  remote: RemoteHost,
  sources: EnvSources,
  required: string[],
  log: Log
): Promise<void> {
  const files = describeEnvFiles(sources)
  if (sources.files.length === 0 && sources.assignments.length === 0) {
    if (required.length > 0)
      throw new Error(
        `required-env lists ${required.join(', ')} but the unit has no EnvironmentFile (set env-file)`
      )
    log.info('the unit has no EnvironmentFile')
    return
  }
  const result = await runStep(
    remote,
    'check the EnvironmentFile',
    toShell(helperArgv('python3', 'envcheck', envArg(sources), ...required))
  )
  const check = JSON.parse(result.stdout) as EnvCheck
  const gone = check.files.filter(f => !f.exists && !f.optional).map(f => f.path)
  if (!check.exists) throw new Error(`EnvironmentFile ${gone.join(', ')} does not exist`)
  if (!check.readable)
    throw new Error(
      `EnvironmentFile ${check.files
        .filter(f => f.exists && !f.readable)
        .map(f => f.path)
        .join(
          ', '
        )} is not readable by the deploy user (make it root:www-data 640 and add the deploy user to that group)`
    )
  const problems: string[] = []
  for (const f of check.files)
    if (f.errors.length > 0)
      problems.push(`${f.path}: line(s) ${f.errors.join(', ')} are not NAME=VALUE`)
  if (check.missing.length > 0)
    problems.push(`required variable(s) not set: ${check.missing.join(', ')}`)
  if (check.empty.length > 0) problems.push(`required variable(s) empty: ${check.empty.join(', ')}`)
  if (problems.length > 0) throw new Error(`EnvironmentFile ${files}: ${problems.join('; ')}`)
  log.info(
    `EnvironmentFile ${files || '(none; Environment= only)'}: ${check.count} variables, required ones set (${required.join(', ') || 'none listed'})`
  )
}

/** Imports the WSGI app of the new release with the unit's interpreter and environment. */
export async function importCheck(
  remote: RemoteHost,
  opts: {
    interpreter: Interpreter
    envSources?: EnvSources
    releaseDir: string
    app: string
    log: Log
  }
): Promise<number | undefined> {
  const result = await remote.exec(
    toShell(
      helperArgv(
        opts.interpreter.python,
        'importcheck',
        envArg(opts.envSources),
        opts.releaseDir,
        opts.app
      )
    ),
    { timeoutMs: 120_000 }
  )
  if (result.code !== 0) {
    throw new Error(
      `the new release cannot import ${opts.app} with ${opts.interpreter.python} (it never reached the reload):\n${tailLines(result.stderr || result.stdout, 20)}`
    )
  }
  opts.log.info(result.stdout.trim())
  return importSeconds(result.stdout)
}

/** The import time the helper reports (`... in 1.23s`), when it does. */
export function importSeconds(output: string): number | undefined {
  const m = / in (\d+(?:\.\d+)?)s\s*$/.exec(output.trim())
  return m ? Number(m[1]) : undefined
}

/** Revision ids in `flask db current` / `flask db heads` output. */
export function revisions(output: string): string[] {
  return output
    .split('\n')
    .map(l => /^([0-9A-Za-z_]+)(?:\s|$)/.exec(l.trim())?.[1])
    .filter((r): r is string => !!r && !/^(INFO|WARNING|ERROR)$/.test(r))
    .sort()
}

/**
 * How long reading the database's revision (`flask db current`, `heads`) may take: it
 * imports the app and asks the database, so a database that does not answer would hold
 * the deploy (and its lock) until migrate-timeout, or forever. At most 5 minutes.
 */
export function dbReadTimeoutSeconds(migrateTimeoutSeconds: number): number {
  return Math.min(300, migrateTimeoutSeconds)
}

/** A read of the database's revision that timed out says so, and what was stopped. */
export function dbReadFailed(error: unknown, what: string, migrateTimeoutSeconds: number): unknown {
  if (!(error instanceof RemoteCommandError) || !error.result.timedOut) return error
  return new Error(
    `${what} did not answer within ${dbReadTimeoutSeconds(migrateTimeoutSeconds)} s (the shorter of 300 s and migrate-timeout): the database does not answer, or the app hangs while it is imported. It was stopped on the host; nothing was migrated or switched.${error.result.stderr.trim() ? `\n${tailLines(error.result.stderr, 10)}` : ''}`,
    { cause: error }
  )
}

/** Migrations run with the unit's interpreter and environment: name the access that is missing. */
function migrationsNeed(opts: {
  interpreter?: Interpreter
  envReadable?: boolean
  envSources?: EnvSources
}): void {
  if (!opts.interpreter)
    throw new Error(
      "the release has migrations, but the unit's Python interpreter could not be found: start Gunicorn as <venv>/bin/python -m gunicorn in ExecStart, or set migrate: off and migrate another way"
    )
  if (opts.envReadable === false)
    throw new Error(
      `the release has migrations, which need the unit's environment (e.g. DATABASE_URL), but the deploy user cannot read ${describeEnvFiles(opts.envSources ?? { files: [] })}: let it read the file (e.g. add it to the file's group), or set migrate: off and migrate another way. Nothing was switched.`
    )
}

/** Runs migrations once before the switch, then proves `flask db current` equals `flask db heads`. */
export async function migrate(
  remote: RemoteHost,
  opts: {
    interpreter?: Interpreter
    envSources?: EnvSources
    /** false: the deploy user cannot read the EnvironmentFile the migrations need. */
    envReadable?: boolean
    releaseDir: string
    app: string
    command?: string[]
    mode: 'auto' | 'off'
    /** migrate-timeout, and the run's cancellation */
    limits: Omit<LongStep, 'timeoutInput'>
    /** Nothing is migrated before this settles (the import check); the reads run beside it. */
    ready?: Promise<unknown>
    log: Log
  }
): Promise<'ran' | 'skipped'> {
  if (opts.mode === 'off') return 'skipped'
  const env = envArg(opts.envSources)
  const python = opts.interpreter?.python ?? 'python3'
  const inRelease = (...argv: string[]) =>
    toShell(helperArgv(python, 'run', env, opts.releaseDir, ...argv))
  const module = opts.app.split(':')[0]
  const flask = [python, '-m', 'flask', '--app', module, 'db']
  const limits = { ...opts.limits, timeoutInput: 'migrate-timeout' }
  const has = opts.command
    ? { code: 0 }
    : await remote.exec(toShell(['test', '-d', `${opts.releaseDir}/migrations`]))
  if (has.code === 0) migrationsNeed(opts)
  if (opts.command) {
    await opts.ready
    await runLongStep(remote, 'migrate-command', inRelease(...opts.command), limits)
    opts.log.info(`ran ${opts.command.join(' ')}`)
    return 'ran'
  }
  if (has.code !== 0) {
    opts.log.info('no migrations/ in the release: nothing to migrate')
    return 'skipped'
  }
  // current and heads are independent reads, run side by side
  const reading = { timeoutMs: dbReadTimeoutSeconds(opts.limits.timeoutSeconds) * 1000 }
  const read = (what: 'current' | 'heads') =>
    runStep(remote, `flask db ${what}`, inRelease(...flask, what), {
      ...reading,
      signal: opts.limits.signal
    }).catch((error: unknown) => {
      throw dbReadFailed(error, `flask db ${what}`, opts.limits.timeoutSeconds)
    })
  const readRevisions = async () => {
    const [currentOut, headsOut] = await Promise.all([read('current'), read('heads')])
    return { current: revisions(currentOut.stdout), heads: revisions(headsOut.stdout) }
  }
  const atHead = (r: { current: string[]; heads: string[] }) =>
    r.heads.length > 0 && r.current.join(',') === r.heads.join(',')
  const before = await readRevisions()
  if (atHead(before)) {
    opts.log.info(`database already at head ${before.heads.join(', ')}: no migration to run`)
    return 'skipped'
  }
  await opts.ready
  try {
    const up = await runLongStep(remote, 'flask db upgrade', inRelease(...flask, 'upgrade'), limits)
    const output = tailLines(up.stderr + up.stdout, 5)
    if (output) opts.log.info(output)
  } catch (error) {
    if (error instanceof RemoteCommandError)
      throw new Error(
        `migrations failed before the switch; the running release is untouched:\n${tailLines(error.result.stderr || error.result.stdout, 20)}`,
        { cause: error }
      )
    throw error
  }
  const { current, heads } = await readRevisions()
  if (!atHead({ current, heads })) {
    throw new Error(
      `after flask db upgrade the database is at [${current.join(', ')}] but the release's heads are [${heads.join(', ')}]`
    )
  }
  opts.log.info(`database at head ${heads.join(', ')}`)
  return 'ran'
}
