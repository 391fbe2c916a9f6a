// A HelperClient for the unit tests: each command answers what the test gives it
// (a value, or a function of the request), and every call is recorded. A command
// the test did not script fails as the real client fails for a helper that does
// not answer: with a HelperError.
import {
  HelperError,
  type AccessAnswer,
  type AccessRequest,
  type DbRevisions,
  type DbRevisionsRequest,
  type EnvCheck,
  type GlobEntry,
  type HelperClient,
  type ImportAnswer,
  type ImportRequest,
  type LockAnswer,
  type LockOwner,
  type SharedLink,
  type WatchAnswer,
  type WatchSpec
} from '../src/host/helper-client.js'
import type { GunicornEnv } from '../src/host/gunicorn/unit-info.js'
import type { EnvSources } from '../src/host/env-sources.js'

/** What each command answers: a value, or a function of its arguments (which may throw). */
export interface HelperScript {
  envCheck?: EnvCheck | ((sources: EnvSources, required: readonly string[]) => EnvCheck)
  envValues?: Record<string, string> | ((sources: EnvSources) => Record<string, string>)
  importCheck?: ImportAnswer | ((request: ImportRequest) => ImportAnswer)
  dbRevisions?: DbRevisions | ((request: DbRevisionsRequest) => DbRevisions)
  lock?: LockAnswer | ((dir: string, owner: LockOwner, staleSeconds: number) => LockAnswer)
  unlock?: { released: boolean } | ((dir: string, token: string) => { released: boolean })
  touchLock?: { fresh: boolean } | ((dir: string, token: string) => { fresh: boolean })
  linkShared?:
    SharedLink[] | ((root: string, dir: string, paths: readonly string[]) => SharedLink[])
  access?: AccessAnswer | ((request: AccessRequest) => AccessAnswer)
  readGlobs?:
    Record<string, GlobEntry[]> | ((patterns: readonly string[]) => Record<string, GlobEntry[]>)
  gunicornEnv?: GunicornEnv | ((unit: string | undefined, files: readonly string[]) => GunicornEnv)
  watchWorkers?: WatchAnswer | ((spec: WatchSpec) => WatchAnswer | Promise<WatchAnswer>)
}

export interface HelperCall {
  command: keyof HelperClient
  args: unknown[]
}

/** The error the real client raises for a command that could not run (e.g. no python3). */
export function helperFailed(
  command: string,
  reason = 'exit status 127 with no answer'
): HelperError {
  return new HelperError(command, 'deploy@fake:22', reason)
}

export class FakeHelper implements HelperClient {
  readonly calls: HelperCall[] = []

  constructor(readonly script: HelperScript = {}) {}

  /** The arguments of every call of one command, in order. */
  callsOf(command: keyof HelperClient): unknown[][] {
    return this.calls.filter(c => c.command === command).map(c => c.args)
  }

  private async answer<T>(command: keyof HelperClient, args: unknown[]): Promise<T> {
    this.calls.push({ command, args })
    const scripted = this.script[command] as T | ((...a: unknown[]) => T | Promise<T>) | undefined
    if (scripted === undefined) throw helperFailed(command.toLowerCase(), 'not scripted')
    return typeof scripted === 'function'
      ? await (scripted as (...a: unknown[]) => T | Promise<T>)(...args)
      : scripted
  }

  envCheck(sources: EnvSources, required: readonly string[]): Promise<EnvCheck> {
    return this.answer('envCheck', [sources, required])
  }
  envValues(sources: EnvSources): Promise<Record<string, string>> {
    return this.answer('envValues', [sources])
  }
  importCheck(request: ImportRequest): Promise<ImportAnswer> {
    return this.answer('importCheck', [request])
  }
  dbRevisions(request: DbRevisionsRequest): Promise<DbRevisions> {
    return this.answer('dbRevisions', [request])
  }
  lock(dir: string, owner: LockOwner, staleSeconds: number): Promise<LockAnswer> {
    return this.answer('lock', [dir, owner, staleSeconds])
  }
  unlock(dir: string, token: string): Promise<{ released: boolean }> {
    return this.answer('unlock', [dir, token])
  }
  touchLock(dir: string, token: string): Promise<{ fresh: boolean }> {
    return this.answer('touchLock', [dir, token])
  }
  linkShared(root: string, releaseDir: string, paths: readonly string[]): Promise<SharedLink[]> {
    return this.answer('linkShared', [root, releaseDir, paths])
  }
  access(request: AccessRequest): Promise<AccessAnswer> {
    return this.answer('access', [request])
  }
  readGlobs(patterns: readonly string[]): Promise<Record<string, GlobEntry[]>> {
    return this.answer('readGlobs', [patterns])
  }
  gunicornEnv(unit: string | undefined, envFiles: readonly string[]): Promise<GunicornEnv> {
    return this.answer('gunicornEnv', [unit, envFiles])
  }
  watchWorkers(spec: WatchSpec): Promise<WatchAnswer> {
    return this.answer('watchWorkers', [spec])
  }
}
