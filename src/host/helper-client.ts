// The typed client of the remote helper (remote-helper.py), the small Python
// program the action runs on the server (`python3 -c HELPER <command> args...`)
// for what would be fragile as shell text. One method per helper command, each
// with its argv (quoted by toShell), its own timeout and a checked answer: the
// helper prints exactly one JSON object per command, and an answer that is not
// one, or lacks a field, is a HelperError naming the command and the stderr tail.
//
// Everything in src/ reaches the helper through `helperOf(remote)`. A fake host
// in the unit tests implements HelperClient itself (HelperHost), so it answers
// in types instead of reading shell text.
import helperText from './remote-helper.py'
import { tailLines } from '../transport/remote-command.js'
import { toShell, type ShellLine } from '../transport/shell-quote.js'
import type { ExecResult, RemoteHost } from '../transport/ssh-connection.js'
import type { GunicornEnv } from './gunicorn/unit-info.js'
import { envArg, type EnvCheck, type EnvFileCheck, type EnvSources } from './env-sources.js'

export type { EnvCheck } from './env-sources.js'

export const HELPER_PY: string = helperText

/**
 * The unit's environment as the helper loads it for the release: its Environment= lines and
 * every EnvironmentFile, in order (env-sources.ts); none (the unit sets no environment); or,
 * `unreadable`, the same sources where the deploy user cannot read an EnvironmentFile: the
 * helper loads what it can (the Environment= lines, the files it may read) and judges a
 * failure knowing that the rest is missing (see importCheck).
 */
export type UnitEnvironment = { sources: EnvSources } | { unreadable: EnvSources } | 'none'

export function unitEnvironment(
  sources: EnvSources | undefined,
  readable: boolean
): UnitEnvironment {
  if (!sources || (sources.files.length === 0 && sources.assignments.length === 0)) return 'none'
  return readable ? { sources } : { unreadable: sources }
}

/** Whether the environment misses an EnvironmentFile the deploy user cannot read. */
export function isUnreadable(env: UnitEnvironment): env is { unreadable: EnvSources } {
  return env !== 'none' && 'unreadable' in env
}

/**
 * The helper's argument for a UnitEnvironment (remote-helper.py: NO_ENV, a spec, or
 * UNREADABLE_ENV followed by the spec of what may be read).
 */
function envWord(env: UnitEnvironment): string {
  if (env === 'none') return '-'
  return isUnreadable(env) ? `?${envArg(env.unreadable)}` : envArg(env.sources)
}

export interface ImportRequest {
  /** The unit's interpreter. */
  python: string
  env: UnitEnvironment
  releaseDir: string
  /** `module:attr` as Gunicorn is given it. */
  app: string
}

/** An environment variable the release's own code read while it was imported. */
export interface EnvRead {
  name: string
  /** Whether it was set (without the unit's EnvironmentFile: by the deploy user's session). */
  set: boolean
}

export type ImportAnswer =
  | { ok: true; file?: string; seconds: number; reads: EnvRead[] }
  | {
      ok: false
      failure: { type: string; message: string; file?: string; line?: number }
      traceback: string
      /**
       * Only when imported without the unit's environment: the cause of the failure
       * that no variable can change, when there is one (see remote-helper.py).
       */
      independent?: string
      reads: EnvRead[]
    }

export interface DbRevisionsRequest {
  python: string
  env: UnitEnvironment
  releaseDir: string
  module: string
  timeoutMs: number
  signal?: AbortSignal
}

/** The output of `flask db current` and `flask db heads`, read in one process. */
export type DbRevisions =
  { migrations: false } | { migrations: true; current: string; heads: string }

export interface LockOwner {
  token: string
  actor: string
  run: string
  release: string
  since: string
}

export interface LockAnswer {
  taken: boolean
  /** Taken over from a holder older than the stale limit. */
  stale: boolean
  holder: Partial<LockOwner>
  age: number
}

export interface SharedLink {
  /** The path inside the release, now a symlink. */
  path: string
  /** Where it points: under <release-path>/shared. */
  target: string
}

export interface AccessRequest {
  /** argv of each command to ask `sudo -n -l` about (never run). */
  sudo: (readonly string[])[]
  readable: readonly string[]
  which: readonly string[]
}

export interface AccessAnswer {
  user: string
  uid: number
  groups: string[]
  listing: { rc: number; out: string }
  sudo: { rc: number; out: string }[]
  readable: Record<string, boolean>
  which: Record<string, string | null>
  /** The hidepid= value /proc is mounted with when it hides other users' processes (else undefined). */
  hidepid?: string
}

export type GlobEntry = { path: string; text: string } | { path: string; error: string }

/** What the host waits for before it answers watchWorkers (see remote-helper.py). */
export interface WatchSpec {
  show: readonly string[]
  ps: readonly string[]
  /** argv prefix reading the new workers' directories; null: not read. */
  pwdx: readonly string[] | null
  /** The master a reload keeps; 0: any. */
  mainPid: number
  old: number[]
  workers: number
  /** Seconds. */
  timeout: number
  interval: number
}

/** The outputs of the spec's commands once the workers were replaced (or not, in time). */
export interface WatchAnswer {
  show: string
  ps: string
  dirs: string
}

/** The helper's commands. helperOf(remote) gives the one for a host. */
export interface HelperClient {
  /**
   * Whether every EnvironmentFile that must exist does, parses and can be read, and which of
   * `required` the environment leaves unset or empty; no value leaves the host.
   */
  envCheck(sources: EnvSources, required: readonly string[]): Promise<EnvCheck>
  /**
   * The environment's values (what the deploy user can read of it), NAME -> value: only to
   * scrub them from everything the action prints (core/secrets.ts), never printed.
   */
  envValues(sources: EnvSources): Promise<Record<string, string>>
  /** Imports the release's WSGI app with the unit's interpreter and environment. */
  importCheck(request: ImportRequest): Promise<ImportAnswer>
  dbRevisions(request: DbRevisionsRequest): Promise<DbRevisions>
  lock(dir: string, owner: LockOwner, staleSeconds: number): Promise<LockAnswer>
  /** Removes the lock if it is still ours (`released: false`: it was not). */
  unlock(dir: string, token: string): Promise<{ released: boolean }>
  /** Marks the lock alive if it is still ours. */
  touchLock(dir: string, token: string): Promise<{ fresh: boolean }>
  linkShared(root: string, releaseDir: string, paths: readonly string[]): Promise<SharedLink[]>
  access(request: AccessRequest): Promise<AccessAnswer>
  /** Nginx include patterns expanded and every file read, per pattern. */
  readGlobs(
    patterns: readonly string[],
    opts?: { python?: string; timeoutMs?: number }
  ): Promise<Record<string, GlobEntry[]>>
  /** WEB_CONCURRENCY and GUNICORN_CMD_ARGS as the unit gets them (unit undefined: its files only). */
  gunicornEnv(unit: string | undefined, envFiles: readonly string[]): Promise<GunicornEnv>
  /** Waits on the host until the workers were replaced (or spec.timeout passed). */
  watchWorkers(spec: WatchSpec): Promise<WatchAnswer>
}

/** A host that answers the helper's commands itself (the fakes of the unit tests). */
export interface HelperHost {
  readonly helper: HelperClient
}

/** The helper client for a host. */
export function helperOf(remote: RemoteHost): HelperClient {
  return (remote as Partial<HelperHost>).helper ?? new SshHelperClient(remote)
}

/** How long each command may take on the host before its answer counts as lost. */
export const HELPER_TIMEOUT_MS = {
  envcheck: 30_000,
  envvalues: 30_000,
  importcheck: 120_000,
  lock: 30_000,
  unlock: 15_000,
  touchlock: 15_000,
  // the first deploy copies each shared path out of the release: as long as pruning may take
  linkshared: 600_000,
  // every sudo probe has 10 s on the host
  access: 120_000,
  readglobs: 30_000,
  gunicornenv: 30_000,
  // added to the watch's own timeout
  watchworkers: 15_000
} as const

/**
 * What readglobs' answer may take: a whole Nginx configuration (a command's output is cut
 * past its limit, and a cut answer is no JSON).
 */
export const READGLOBS_OUTPUT_BYTES = 64 << 20

/** A helper command that did not answer as the protocol says. */
export class HelperError extends Error {
  constructor(
    readonly command: string,
    readonly host: string,
    /** What went wrong, in a few words. */
    readonly reason: string,
    /** What the command returned, when it ran. */
    readonly result?: ExecResult
  ) {
    const tail = result ? tailLines(result.stderr, 10) : ''
    super(`the remote helper's ${command} on ${host} failed: ${reason}${tail ? `:\n${tail}` : ''}`)
    this.name = 'HelperError'
  }

  /** The connection dropped: the command may or may not have run. */
  get dropped(): boolean {
    return this.result !== undefined && this.result.code === null && !this.result.timedOut
  }
}

/** argv that runs one helper command with the given interpreter. */
function helperArgv(python: string, command: string, args: readonly string[]): string[] {
  return [python, '-c', HELPER_PY, command, ...args]
}

/**
 * `run`: the one helper command that answers no JSON. It execs `argv` in the release
 * directory with the unit's EnvironmentFile loaded, so the command's output and exit
 * status are the program's own (migrations, migrate-command).
 */
export function inRelease(
  python: string,
  env: UnitEnvironment,
  releaseDir: string,
  argv: readonly string[]
): ShellLine {
  return toShell(helperArgv(python, 'run', [envWord(env), releaseDir, ...argv]))
}

/** What the `hook` launcher needs: the user's command and the release as the unit sees it. */
export interface HookSpec {
  /** The unit's environment as an environment argument (env-sources.ts: envArg). */
  environment: string
  /** Put first on PATH (null: PATH as it is). */
  bin: string | null
  env: Record<string, string>
  /** The working directory: the release. */
  dir: string
  /** Run with `sh -c`, as the user wrote it. */
  command: string
}

/**
 * `hook`: the other launcher. It execs `sh -c COMMAND` in the release with the unit's
 * environment, so the hook's output and exit status are its own.
 */
export function hookLine(spec: HookSpec): ShellLine {
  return toShell(helperArgv('python3', 'hook', [JSON.stringify(spec)]))
}

/** What venvBuild is given: the release, where venvs live, and how the unit's venv was made. */
export interface VenvSpec {
  release: string
  /** venvs/ is made under it. */
  root: string
  /** venvs whose pyvenv.cfg gives the Python and system-site-packages setting, first found wins. */
  models: readonly string[]
  pipArgs: readonly string[]
}

/** The environment one release runs on (remote-helper.py: cmd_venvbuild). */
export interface ReleaseVenv {
  key: string
  venv: string
  /** false: an environment with the same requirements was reused. */
  built: boolean
  seconds: number
  python: string
  version: string
  systemSite: boolean
}

type Json = Record<string, unknown>

/** Reads the fields of one answer, each checked; a wrong one is a HelperError. */
class Fields {
  constructor(
    private readonly wrong: (what: string) => HelperError,
    readonly json: Json
  ) {}

  private get(name: string, ok: (v: unknown) => boolean, what: string): unknown {
    const value = this.json[name]
    if (!ok(value)) throw this.wrong(`its answer has no ${what} "${name}"`)
    return value
  }

  boolean(name: string): boolean {
    return this.get(name, v => typeof v === 'boolean', 'true/false') as boolean
  }

  number(name: string): number {
    return this.get(name, v => typeof v === 'number' && Number.isFinite(v), 'number') as number
  }

  string(name: string): string {
    return this.get(name, v => typeof v === 'string', 'text') as string
  }

  /** Text, or undefined for null or a missing field. */
  optionalString(name: string): string | undefined {
    const value = this.get(name, v => v == null || typeof v === 'string', 'text')
    return typeof value === 'string' ? value : undefined
  }

  strings(name: string): string[] {
    return this.get(
      name,
      v => Array.isArray(v) && v.every(x => typeof x === 'string'),
      'list of text'
    ) as string[]
  }

  numbers(name: string): number[] {
    return this.get(
      name,
      v => Array.isArray(v) && v.every(x => typeof x === 'number'),
      'list of numbers'
    ) as number[]
  }

  object(name: string): Fields {
    return new Fields(this.wrong, this.get(name, isObject, 'object') as Json)
  }

  /** An object whose every value passes `ok`. */
  record<T>(name: string, ok: (v: unknown) => v is T): Record<string, T> {
    const valid = (v: unknown) => isObject(v) && Object.values(v).every(ok)
    return this.get(name, valid, 'object of the right values') as Record<string, T>
  }

  list(name: string): Fields[] {
    const items = this.get(name, v => Array.isArray(v) && v.every(isObject), 'list of objects')
    return (items as Json[]).map(item => new Fields(this.wrong, item))
  }
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

const runResult = (f: Fields) => ({ rc: f.number('rc'), out: f.string('out') })

function envReads(f: Fields): EnvRead[] {
  return f.list('reads').map(r => ({ name: r.string('name'), set: r.boolean('set') }))
}

/** Checks that a command answered one JSON object, not an error, and gives its fields. */
function answerOf(command: string, host: string, result: ExecResult, timeoutMs: number): Fields {
  const fail = (reason: string) => new HelperError(command, host, reason, result)
  if (result.cancelled) throw fail('cancelled')
  if (result.timedOut) throw fail(`no answer within ${Math.round(timeoutMs / 1000)}s`)
  if (result.code === null) throw fail('the connection dropped before it answered')
  let answer: unknown
  try {
    answer = JSON.parse(result.stdout)
  } catch {
    const out = result.stdout.trim() ? 'an answer that is not JSON' : 'no answer'
    throw fail(`exit status ${result.code} with ${out}`)
  }
  if (!isObject(answer)) throw fail('its answer is not a JSON object')
  if (isObject(answer.error)) {
    const e = new Fields(fail, answer.error)
    throw fail(`${e.string('type')}: ${e.string('message')}`)
  }
  if (result.code !== 0) throw fail(`exit status ${result.code}`)
  return new Fields(fail, answer)
}

/**
 * `venvbuild` runs as a long step (pip-timeout, progress, cancel), so it is built as a
 * line here and run by the caller; venvAnswer checks what it answered.
 */
export function venvBuildLine(spec: VenvSpec): ShellLine {
  return toShell(helperArgv('python3', 'venvbuild', [JSON.stringify(spec)]))
}

export function venvAnswer(host: string, result: ExecResult, timeoutMs: number): ReleaseVenv {
  const f = answerOf('venvbuild', host, result, timeoutMs)
  return {
    key: f.string('key'),
    venv: f.string('venv'),
    built: f.boolean('built'),
    seconds: f.number('seconds'),
    python: f.string('python'),
    version: f.string('version'),
    systemSite: f.boolean('systemSite')
  }
}

/** The client that runs the helper over SSH. */
export class SshHelperClient implements HelperClient {
  constructor(private readonly remote: RemoteHost) {}

  /** Runs one command and checks that it answered one JSON object, not an error. */
  private async call(
    command: string,
    args: readonly string[],
    opts: { python?: string; timeoutMs: number; signal?: AbortSignal; maxOutputBytes?: number }
  ): Promise<Fields> {
    const result = await this.remote.exec(
      toShell(helperArgv(opts.python ?? 'python3', command, args)),
      { timeoutMs: opts.timeoutMs, signal: opts.signal, maxOutputBytes: opts.maxOutputBytes }
    )
    return answerOf(command, this.remote.target.label, result, opts.timeoutMs)
  }

  async envCheck(sources: EnvSources, required: readonly string[]): Promise<EnvCheck> {
    const f = await this.call('envcheck', [envArg(sources), ...required], {
      timeoutMs: HELPER_TIMEOUT_MS.envcheck
    })
    return {
      exists: f.boolean('exists'),
      readable: f.boolean('readable'),
      files: f.list('files').map((file): EnvFileCheck => ({
        path: file.string('path'),
        optional: file.boolean('optional'),
        exists: file.boolean('exists'),
        readable: file.boolean('readable'),
        errors: file.numbers('errors')
      })),
      missing: f.strings('missing'),
      empty: f.strings('empty'),
      count: f.number('count')
    }
  }

  async envValues(sources: EnvSources): Promise<Record<string, string>> {
    const f = await this.call('envvalues', [envArg(sources)], {
      timeoutMs: HELPER_TIMEOUT_MS.envvalues
    })
    return f.record('values', (v): v is string => typeof v === 'string')
  }

  async importCheck(r: ImportRequest): Promise<ImportAnswer> {
    const f = await this.call('importcheck', [envWord(r.env), r.releaseDir, r.app], {
      python: r.python,
      timeoutMs: HELPER_TIMEOUT_MS.importcheck
    })
    const reads = envReads(f)
    if (f.boolean('ok'))
      return { ok: true, file: f.optionalString('file'), seconds: f.number('seconds'), reads }
    const failure = f.object('failure')
    const line = failure.json.line
    return {
      ok: false,
      failure: {
        type: failure.string('type'),
        message: failure.string('message'),
        file: failure.optionalString('file'),
        line: typeof line === 'number' ? line : undefined
      },
      traceback: f.string('traceback'),
      independent: f.optionalString('independent'),
      reads
    }
  }

  async dbRevisions(r: DbRevisionsRequest): Promise<DbRevisions> {
    const f = await this.call('dbrevisions', [envWord(r.env), r.releaseDir, r.module], {
      python: r.python,
      timeoutMs: r.timeoutMs,
      signal: r.signal
    })
    if (!f.boolean('migrations')) return { migrations: false }
    return { migrations: true, current: f.string('current'), heads: f.string('heads') }
  }

  async lock(dir: string, owner: LockOwner, staleSeconds: number): Promise<LockAnswer> {
    const f = await this.call('lock', [dir, JSON.stringify(owner), String(staleSeconds)], {
      timeoutMs: HELPER_TIMEOUT_MS.lock
    })
    const holder = f.object('holder').json
    const owned: Partial<LockOwner> = {}
    for (const key of ['token', 'actor', 'run', 'release', 'since'] as const)
      if (typeof holder[key] === 'string') owned[key] = holder[key]
    return {
      taken: f.boolean('taken'),
      stale: f.boolean('stale'),
      holder: owned,
      age: f.number('age')
    }
  }

  async unlock(dir: string, token: string): Promise<{ released: boolean }> {
    const f = await this.call('unlock', [dir, token], { timeoutMs: HELPER_TIMEOUT_MS.unlock })
    return { released: f.boolean('released') }
  }

  async touchLock(dir: string, token: string): Promise<{ fresh: boolean }> {
    const f = await this.call('touchlock', [dir, token], { timeoutMs: HELPER_TIMEOUT_MS.touchlock })
    return { fresh: f.boolean('fresh') }
  }

  async linkShared(
    root: string,
    releaseDir: string,
    paths: readonly string[]
  ): Promise<SharedLink[]> {
    const f = await this.call('linkshared', [root, releaseDir, ...paths], {
      timeoutMs: HELPER_TIMEOUT_MS.linkshared
    })
    return f.list('links').map(l => ({ path: l.string('path'), target: l.string('target') }))
  }

  async access(request: AccessRequest): Promise<AccessAnswer> {
    const f = await this.call('access', [JSON.stringify(request)], {
      timeoutMs: HELPER_TIMEOUT_MS.access
    })
    return {
      user: f.string('user'),
      uid: f.number('uid'),
      groups: f.strings('groups'),
      listing: runResult(f.object('listing')),
      sudo: f.list('sudo').map(runResult),
      readable: f.record('readable', (v): v is boolean => typeof v === 'boolean'),
      which: f.record('which', (v): v is string | null => v === null || typeof v === 'string'),
      hidepid: f.optionalString('hidepid')
    }
  }

  async readGlobs(
    patterns: readonly string[],
    opts: { python?: string; timeoutMs?: number } = {}
  ): Promise<Record<string, GlobEntry[]>> {
    const f = await this.call('readglobs', patterns, {
      python: opts.python,
      timeoutMs: opts.timeoutMs ?? HELPER_TIMEOUT_MS.readglobs,
      maxOutputBytes: READGLOBS_OUTPUT_BYTES
    })
    const files = f.object('files')
    return Object.fromEntries(
      Object.keys(files.json).map(pattern => [
        pattern,
        files.list(pattern).map(e => {
          const path = e.string('path')
          return typeof e.json.text === 'string'
            ? { path, text: e.json.text }
            : { path, error: e.string('error') }
        })
      ])
    )
  }

  async gunicornEnv(unit: string | undefined, envFiles: readonly string[]): Promise<GunicornEnv> {
    const f = await this.call('gunicornenv', [unit || '-', ...envFiles], {
      timeoutMs: HELPER_TIMEOUT_MS.gunicornenv
    })
    const values = f.object('values')
    const env: GunicornEnv = { readable: f.boolean('readable') }
    for (const name of ['WEB_CONCURRENCY', 'GUNICORN_CMD_ARGS'] as const) {
      const value = values.optionalString(name)
      if (value !== undefined) env[name] = value
    }
    return env
  }

  async watchWorkers(spec: WatchSpec): Promise<WatchAnswer> {
    const f = await this.call('watchworkers', [JSON.stringify(spec)], {
      timeoutMs: spec.timeout * 1000 + HELPER_TIMEOUT_MS.watchworkers
    })
    return { show: f.string('show'), ps: f.string('ps'), dirs: f.string('dirs') }
  }
}
