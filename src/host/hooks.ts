// The user's own commands around the switch (before-switch, after-switch): each
// runs on the host with `sh -c`, as the deploy user, in the release directory,
// with the unit's EnvironmentFile(s) loaded and the release's venv first on
// PATH, in a process group of its own that is stopped (TERM, then KILL) on its
// timeout or a cancel. The command travels as one quoted argument: no other
// input is interpolated into it. Its output goes to the log like every step's.
import type { Log } from '../core/log.js'
import { envArg, type EnvSources } from './env-sources.js'
import { hookLine, type HookSpec } from './helper-client.js'
import { tailLines } from '../transport/remote-command.js'
import type { RemoteHost } from '../transport/ssh-connection.js'

export type HookName = 'before-switch' | 'after-switch'

export interface Hook {
  name: HookName
  command: string
  /** The release the hook works in (its physical directory). */
  releaseDir: string
  /** The unit's Environment= and EnvironmentFiles (or env-file), loaded as systemd would. */
  envSources: EnvSources
  /** The release's venv bin directory, first on PATH (undefined: PATH as it is). */
  venvBin?: string
  /** ZDD_RELEASE, ZDD_PREVIOUS_RELEASE, ZDD_RELEASE_PATH. */
  env: Record<string, string>
  timeoutSeconds: number
  signal?: AbortSignal
  log: Log
}

/** The lines a hook printed that go to the log (the last ones, when it printed many). */
const LOGGED_LINES = 200

/** Runs one hook; throws, with the tail of its output, when it fails, times out or is cancelled. */
export async function runHook(remote: RemoteHost, hook: Hook): Promise<void> {
  const spec: HookSpec = {
    environment: envArg(hook.envSources),
    bin: hook.venvBin ?? null,
    env: hook.env,
    dir: hook.releaseDir,
    command: hook.command
  }
  const started = Date.now()
  const result = await remote.exec(hookLine(spec), {
    processGroup: true,
    timeoutMs: hook.timeoutSeconds * 1000,
    signal: hook.signal
  })
  const output = tailLines(`${result.stdout}${result.stderr}`, LOGGED_LINES)
  if (output) hook.log.info(output)
  const tail = tailLines(`${result.stdout}${result.stderr}`, 20)
  const shown = tail ? `:\n${tail}` : ''
  const host = remote.target.label
  if (result.cancelled)
    throw new Error(`${hook.name} on ${host} was cancelled: it was stopped on the host${shown}`)
  if (result.timedOut)
    throw new Error(
      `${hook.name} on ${host} did not finish within ${hook.timeoutSeconds}s (hook-timeout): it was stopped on the host (TERM, then KILL)${shown}`
    )
  if (result.code !== 0)
    throw new Error(
      `${hook.name} on ${host} ${result.code === null ? 'ended without an exit status (the connection may have dropped)' : `exited with status ${result.code}`}${shown}`
    )
  hook.log.info(`${hook.name} passed in ${((Date.now() - started) / 1000).toFixed(1)} s`)
}
