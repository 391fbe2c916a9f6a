// The hooks of a deploy (before-switch, after-switch), built from the settings
// and what preflight read: which EnvironmentFiles, which venv, which release.
import type { Log } from '../core/log.js'
import type { AfterProof, CutoverContext } from '../host/cutover/types.js'
import type { Interpreter } from '../host/gunicorn/gunicorn-interpreter.js'
import { runHook, type Hook, type HookName } from '../host/hooks.js'
import { describeEnvFiles } from '../host/env-sources.js'
import type { ServiceSnapshot } from '../host/preflight.js'
import type { Settings } from './settings.js'

/** The hook `name` for the release in `releaseDir`, run as the unit's code would see it. */
export function hookFor(
  name: HookName,
  command: string,
  opts: {
    settings: Settings
    snap: ServiceSnapshot
    releaseDir: string
    /** The release's interpreter (its own venv's, per release). */
    interpreter?: Interpreter
    log: Log
    signal?: AbortSignal
  }
): Hook {
  const { settings, snap } = opts
  const venv = opts.interpreter?.venv
  return {
    name,
    command,
    releaseDir: opts.releaseDir,
    envSources: snap.envSources,
    venvBin: venv ? `${venv}/bin` : undefined,
    env: {
      ZDD_RELEASE: settings.releaseId,
      ZDD_PREVIOUS_RELEASE: snap.currentRelease ?? '',
      ZDD_RELEASE_PATH: settings.releasePath
    },
    timeoutSeconds: settings.hookTimeoutSeconds,
    signal: opts.signal,
    log: opts.log
  }
}

/** after-switch as a step after the proof: its failure rolls the deploy back; it has nothing to undo. */
export function afterSwitchStep(ctx: CutoverContext, hook: Hook): AfterProof {
  return {
    name: 'after-switch',
    run: () =>
      ctx.step('after-switch', () =>
        ctx.log.group('after-switch', () => runHook(ctx.conn.remote, hook))
      ),
    undo: async () => ''
  }
}

/**
 * The hooks run with the unit's environment: a deploy user that cannot read the
 * EnvironmentFile cannot give it to them (refused before any change).
 */
export function hooksNeedEnvironment(
  settings: Settings,
  snap: ServiceSnapshot
): string | undefined {
  const hooks = [settings.beforeSwitch && 'before-switch', settings.afterSwitch && 'after-switch']
  const named = hooks.filter(Boolean).join(' and ')
  if (!named || snap.envSources.files.length === 0 || snap.envReadable) return undefined
  return `${named} run with the unit's environment, but the deploy user cannot read ${describeEnvFiles(snap.envSources)}: let it read the files (e.g. add it to their group), or leave the hooks out. Nothing was changed.`
}
