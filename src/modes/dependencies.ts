// A deploy's dependency step, under either kind of environment (host/environments.ts):
// per release, the release's own venv is built or reused and linked, and the
// checks, migrations and hooks run on it; shared, pip installs into the unit's venv
// when requirements.txt changed, and the set before and after is recorded, so a
// failure (before or after the switch) can put the old set back.
import type { Log } from '../core/log.js'
import {
  buildReleaseVenv,
  copySet,
  diffSets,
  freeze,
  recordSet,
  recordedSetOf,
  restoreSet
} from '../host/environments.js'
import type { Interpreter } from '../host/gunicorn/gunicorn-interpreter.js'
import type { ServiceSnapshot } from '../host/preflight.js'
import { installDependencies } from '../host/release-checks.js'
import type { ReleaseLayout } from '../host/release-layout.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import type { Settings } from './settings.js'

/** What the dependency step did, for the later steps, the way back and the report. */
export interface DependencyOutcome {
  /** The interpreter the new release runs (its own venv's, per release). */
  interpreter?: Interpreter
  /** Shared venv changed by pip: the set that served before, to put back on a failure. */
  restore?: { python: string; set: Map<string, string> }
  /** The packages that differ from the release that served (for the summary). */
  changed: string[]
  /** Per release: `venvs/<key>`. */
  environment?: string
  /**
   * Unchanged requirements with no set recorded yet: the set is read and recorded beside
   * the checks (nothing waits for it but the switch). Never rejects.
   */
  recording?: Promise<void>
}

export interface DependencyContext {
  remote: RemoteHost
  settings: Settings
  snap: ServiceSnapshot
  layout: ReleaseLayout
  log: Log
  signal?: AbortSignal
  /** requirements.txt against the current release's. */
  requirements?: 'absent' | 'unchanged' | 'changed'
}

/** The release's own venv, built beside nothing else that needs it (the checks wait for it). */
async function perRelease(d: DependencyContext, releaseDir: string): Promise<DependencyOutcome> {
  const { remote, settings, snap, layout, log } = d
  const models = [`${layout.current}/.venv`, snap.interpreter?.venv, `${layout.root}/.venv`]
  const [venv, before] = await Promise.all([
    buildReleaseVenv(remote, {
      layout,
      releaseDir,
      models: models.filter((m): m is string => !!m),
      pipArgs: settings.pipArgs,
      limits: { timeoutSeconds: settings.pipTimeoutSeconds, signal: d.signal },
      log
    }),
    recordedSetOf(remote, snap.currentDir)
  ])
  const after = await recordedSetOf(remote, releaseDir)
  const changed = before && after ? diffSets(before, after).changed : []
  if (changed.length > 0)
    log.info(`packages that differ from ${snap.currentRelease}: ${changed.join(', ')}`)
  return {
    interpreter: {
      python: `${releaseDir}/.venv/bin/python`,
      venv: `${releaseDir}/.venv`,
      source: `venvs/${venv.key}`
    },
    changed,
    environment: `venvs/${venv.key}`
  }
}

/** pip into the unit's venv when requirements.txt changed; the sets before and after recorded. */
async function shared(d: DependencyContext, releaseDir: string): Promise<DependencyOutcome> {
  const { remote, settings, snap, log } = d
  const python = snap.interpreter?.venv ? snap.interpreter.python : undefined
  if (d.requirements === 'absent')
    log.info('no requirements.txt in the release: nothing to install')
  else if (d.requirements === 'unchanged')
    log.info('requirements.txt unchanged since the current release: skipping pip')
  // Unchanged requirements: the set is the one recorded with the current release, when it is.
  if (
    d.requirements !== 'changed' &&
    snap.currentDir &&
    (await copySet(remote, snap.currentDir, releaseDir))
  )
    return { changed: [] }
  if (d.requirements !== 'changed')
    return { changed: [], recording: recordUnchanged(d, releaseDir) }
  const before = python ? await freeze(remote, python) : undefined
  const installed = await installDependencies(remote, {
    interpreter: snap.interpreter,
    releaseDir,
    currentDir: snap.currentDir,
    pipArgs: settings.pipArgs,
    limits: { timeoutSeconds: settings.pipTimeoutSeconds, signal: d.signal },
    log
  })
  if (!python || !before) return { changed: [] }
  const after = installed ? await freeze(remote, python) : before
  if (!after) return { changed: [] }
  // The release's exact set; the one that served gets its own when it had none recorded.
  await Promise.all([
    recordSet(remote, releaseDir, after),
    snap.currentDir && recordSet(remote, snap.currentDir, before, { onlyIfMissing: true })
  ])
  const changed = diffSets(before, after).changed
  if (changed.length > 0)
    log.info(
      `packages changed in ${snap.interpreter?.venv}, which the running release uses too: ${changed.join(', ')}`
    )
  return { changed, restore: changed.length > 0 ? { python, set: before } : undefined }
}

/**
 * Nothing was installed: the venv's set is the release's, and the one that served gets
 * it too when it had none recorded (a release made before this was recorded).
 */
async function recordUnchanged(d: DependencyContext, releaseDir: string): Promise<void> {
  const python = d.snap.interpreter?.venv ? d.snap.interpreter.python : undefined
  if (!python) return
  try {
    const set = await freeze(d.remote, python)
    if (!set) return
    await Promise.all([
      recordSet(d.remote, releaseDir, set),
      d.snap.currentDir && recordSet(d.remote, d.snap.currentDir, set, { onlyIfMissing: true })
    ])
  } catch {
    // recording is a convenience for a later rollback; it never fails a deploy
  }
}

/** The dependency step of a deploy. */
export function prepareDependencies(
  d: DependencyContext,
  releaseDir: string
): Promise<DependencyOutcome> {
  return d.snap.venvs === 'per-release' ? perRelease(d, releaseDir) : shared(d, releaseDir)
}

/**
 * Puts the set that served before back into the shared venv; returns a note for the
 * log and the error (never throws: going back must go on).
 */
export async function putBackPackages(
  remote: RemoteHost,
  settings: Settings,
  restore: { python: string; set: Map<string, string> },
  log: Log
): Promise<string> {
  try {
    const changed = await restoreSet(remote, {
      python: restore.python,
      target: restore.set,
      pipArgs: settings.pipArgs,
      limits: { timeoutSeconds: settings.pipTimeoutSeconds },
      log
    })
    return changed.length > 0
      ? `the previous packages are back: ${changed.join(', ')}`
      : 'the packages were already the previous ones'
  } catch (error) {
    return `the previous packages could not be put back: ${(error as Error).message}`
  }
}
