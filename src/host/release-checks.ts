// Checks and preparation that run BEFORE `current` is switched: the
// interpreter, dependencies, the EnvironmentFile, the import check and
// migrations. Any failure here leaves the running release untouched.
import type { Interpreter } from './gunicorn/gunicorn-interpreter.js'
import { FixableError } from '../core/fixable-error.js'
import type { Log } from '../core/log.js'
import {
  HelperError,
  helperOf,
  inRelease,
  unitEnvironment,
  isUnreadable,
  type ImportAnswer
} from './helper-client.js'
import { describeEnvFiles, type EnvSources } from './env-sources.js'
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
      `requirements.txt changed but ${opts.interpreter.python} is not in a virtualenv; refusing to pip install into the system Python. Fix: start Gunicorn from a virtualenv (<venv>/bin/gunicorn), or, when the system's packages provide the dependencies, leave requirements.txt out of the release (exclude: /requirements.txt)`
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
  const check = await helperOf(remote).envCheck(sources, required)
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

export interface ImportCheckOptions {
  interpreter: Interpreter
  /** The unit's environment: Environment= and every EnvironmentFile. */
  envSources?: EnvSources
  /** false: the deploy user cannot read the EnvironmentFiles, so the release is imported without them. */
  envReadable: boolean
  releaseDir: string
  app: string
  log: Log
}

/**
 * Imports the WSGI app of the new release with the unit's interpreter, before the switch;
 * returns how long the import took (undefined when it was not proven). With the unit's
 * environment (its EnvironmentFile read, or none to read) any failure refuses the release.
 *
 * When the deploy user cannot read the EnvironmentFile, the release is imported without
 * it, and a failure refuses the release only when its cause is one no variable can change
 * (the helper's rule, remote-helper.py `independent_cause` and `static_cause`): a file of
 * the release that does not compile, a module that is not installed or a name a module
 * lacks, a file missing from the release, the app missing from its module, each only when
 * the release's own code had read no environment variable before it failed; or, found in
 * the source, a module reached through imports that always run that does not compile or
 * is not installed. Anything else (an unset variable, an error raised after reading one, a
 * refused connection, a permission the service user may have) may depend on the
 * environment: a warning, and verification after the switch proves the release.
 */
export async function importCheck(
  remote: RemoteHost,
  opts: ImportCheckOptions
): Promise<number | undefined> {
  const env = unitEnvironment(opts.envSources, opts.envReadable)
  const files = envFilesOf(opts)
  const answer = await helperOf(remote).importCheck({
    python: opts.interpreter.python,
    env,
    releaseDir: opts.releaseDir,
    app: opts.app
  })
  const how = `${opts.app} with ${opts.interpreter.python}`
  if (answer.ok) {
    const without = isUnreadable(env) ? ` (without ${files})` : ''
    opts.log.info(`ok ${how}${without} in ${answer.seconds.toFixed(2)}s`)
    return answer.seconds
  }
  const traceback = tailLines(answer.traceback, 20)
  if (!isUnreadable(env))
    throw new Error(
      `the new release cannot import ${how} (it never reached the reload):\n${traceback}`
    )
  const user = remote.target.user
  if (answer.independent)
    throw new FixableError(
      `the new release cannot import ${how} (it never reached the reload): ${answer.independent}. It was imported without ${files}, which ${user} cannot read, and fails the same with any environment.\n${traceback}`,
      `correct the release. Only a module found through a variable of ${files} (such as PYTHONPATH) would make this wrong: then let ${user} read ${files}, so that the import check runs with it.`
    )
  opts.log.warning(uncertainImport(opts, answer, user))
  return undefined
}

/** The unit's EnvironmentFiles, for messages. */
function envFilesOf(opts: Pick<ImportCheckOptions, 'envSources'>): string {
  return describeEnvFiles(opts.envSources ?? { files: [] }) || 'the EnvironmentFile'
}

function uncertainImport(
  opts: ImportCheckOptions,
  answer: Extract<ImportAnswer, { ok: false }>,
  user: string
): string {
  const { type, message, file, line } = answer.failure
  const at = file ? ` (${file}${line ? `:${line}` : ''})` : ''
  const unset = answer.reads.filter(r => !r.set).map(r => r.name)
  const reads = unset.length > 0 ? `; it reads ${unset.join(', ')}, unset without that file` : ''
  const files = envFilesOf(opts)
  return `not verified before the switch: ${opts.app} does not import without ${files}, which ${user} cannot read: ${type}: ${message}${at}${reads}. That may depend on the environment, so the deploy goes on and verification after the switch proves the release. To check the import fully before the switch, let ${user} read ${files}.`
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
  const result =
    error instanceof RemoteCommandError || error instanceof HelperError ? error.result : undefined
  if (!result?.timedOut || result.cancelled) return error
  return new Error(
    `${what} did not answer within ${dbReadTimeoutSeconds(migrateTimeoutSeconds)} s (the shorter of 300 s and migrate-timeout): the database does not answer, or the app hangs while it is imported. It was stopped on the host; nothing was migrated or switched.${result.stderr.trim() ? `\n${tailLines(result.stderr, 10)}` : ''}`,
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
  // A unit without an EnvironmentFile has nothing the deploy user could fail to read.
  if ((opts.envSources?.files.length ?? 0) > 0 && opts.envReadable === false)
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
  const env = unitEnvironment(opts.envSources, opts.envReadable !== false)
  const python = opts.interpreter?.python ?? 'python3'
  const run = (...argv: string[]) => inRelease(python, env, opts.releaseDir, argv)
  const module = opts.app.split(':')[0]
  const flask = [python, '-m', 'flask', '--app', module, 'db']
  const limits = { ...opts.limits, timeoutInput: 'migrate-timeout' }
  const has = opts.command
    ? { code: 0 }
    : await remote.exec(toShell(['test', '-d', `${opts.releaseDir}/migrations`]))
  if (has.code === 0) migrationsNeed(opts)
  if (opts.command) {
    await opts.ready
    await runLongStep(remote, 'migrate-command', run(...opts.command), limits)
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
    runStep(remote, `flask db ${what}`, run(...flask, what), {
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
    const up = await runLongStep(remote, 'flask db upgrade', run(...flask, 'upgrade'), limits)
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
