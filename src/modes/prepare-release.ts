// Everything a deploy does before the switch: upload the release and link
// shared paths (beside preflight, into a release id that is new on the host),
// then install dependencies, check the environment and the import, run the
// migrations, pick up a changed unit file. Nothing here changes what serves;
// a failure leaves the running release untouched.
import { createReadStream, statSync } from 'node:fs'
import { timed, type HostResult } from '../core/host-result.js'
import type { Log } from '../core/log.js'
import type { Settings } from './settings.js'
import { may, sudoersLine } from '../host/access.js'
import type { ServiceSnapshot } from '../host/preflight.js'
import {
  checkEnvironment,
  dbReadFailed,
  dbReadTimeoutSeconds,
  fileHash,
  importCheck,
  migrate,
  revisions
} from '../host/release-checks.js'
import { runHook } from '../host/hooks.js'
import { prepareDependencies, type DependencyOutcome } from './dependencies.js'
import { hookFor } from './hook-steps.js'
import { placeRelease, uploadRelease, type ReleaseLayout } from '../host/release-layout.js'
import {
  openToNginx,
  readReleaseAccess,
  servedByNginx,
  type ReleaseAccess
} from '../host/release-permissions.js'
import { instanceUnit } from '../host/blue-green/instances.js'
import { helperOf, unitEnvironment } from '../host/helper-client.js'
import { asRoot, serviceCommands } from '../host/service-commands.js'
import { runStep } from '../transport/remote-command.js'
import { toShell } from '../transport/shell-quote.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import type { MigrationGate } from './fleet.js'
import { checkCancelled, type Cancellation } from '../core/cancellation.js'

/** A step that failed because the run was cancelled reads as the cancellation. */
function asCancelled(c: Cancellation, error: unknown): unknown {
  if (!c.reason || /^cancelled \(/.test((error as Error)?.message ?? '')) return error
  return new Error(`cancelled (${c.reason}): ${String((error as Error)?.message ?? error)}`, {
    cause: error
  })
}

export interface PrepareContext {
  remote: RemoteHost
  settings: Settings
  snap: ServiceSnapshot
  layout: ReleaseLayout
  log: Log
  result: HostResult
  cancellation: Cancellation
  archivePath: string
  /** In a fleet: migrations run on one host; the others wait for them. */
  gate?: MigrationGate
  /** requirements.txt against the current release's, when compared already (placeUpload). */
  requirements?: Requirements
  /** Must pass before the import check and the migrations (the switch's prediction). */
  mustPass?: Promise<unknown>
  /** Told what the dependency step did as soon as it did it (a later failure puts it back). */
  onDependencies?: (deps: DependencyOutcome) => void
}

/** requirements.txt of the new release: none, the same as the current release's, or changed. */
export type Requirements = 'absent' | 'unchanged' | 'changed'

/** What the upload needs: it runs while the lock is taken, before the host is read. */
export type UploadContext = Pick<
  PrepareContext,
  'remote' | 'settings' | 'layout' | 'log' | 'archivePath'
>

/**
 * Uploads the release into this run's own incoming directory: the only write before
 * the lock is held (no other run uses that directory), so it may overlap the wait.
 */
export async function uploadToIncoming(p: UploadContext, incoming: string): Promise<ReleaseAccess> {
  // who may read the release: the service's group (under blue-green, of the template's instance)
  const unit =
    p.settings.strategy === 'blue-green'
      ? instanceUnit(p.settings.service, 'blue')
      : p.settings.service
  const access = await readReleaseAccess(p.remote, unit)
  await uploadRelease(p.remote, incoming, createReadStream(p.archivePath), access)
  p.log.info(`uploaded ${Math.round(statSync(p.archivePath).size / 1024)} KiB to ${incoming}`)
  return access
}

/** Says who may read the uploaded release (a warning when every user of the host may). */
export function reportAccess(p: UploadContext, access: ReleaseAccess): void {
  if (access.mode === 'group')
    p.log.info(`release files are readable by the group ${access.group}, not by other users`)
  else
    p.log.warning(
      `release ${p.settings.releaseId} is readable by every user on ${p.remote.target.label}: ${access.why}. To keep it from other users: ${access.fix}`
    )
}

/**
 * Under the lock: the upload becomes releases/<id> (ReleaseExistsError when that id is
 * on the host: nothing is touched then), its shared paths are linked, and its
 * requirements.txt is compared with the one of the release `current` points at.
 */
export async function placeUpload(
  p: UploadContext,
  incoming: string
): Promise<{ releaseDir: string; requirements: Requirements }> {
  const { remote, settings, layout, log } = p
  const releaseDir = layout.release(settings.releaseId)
  await placeRelease(remote, layout, incoming, settings.releaseId)
  const [next, current] = await Promise.all([
    fileHash(remote, `${releaseDir}/requirements.txt`),
    fileHash(remote, `${layout.current}/requirements.txt`),
    settings.sharedPaths.length > 0 &&
      helperOf(remote)
        .linkShared(layout.root, releaseDir, settings.sharedPaths)
        .then(links => log.info(links.map(l => `${l.path} -> ${l.target}`).join('\n')))
  ])
  return { releaseDir, requirements: !next ? 'absent' : next === current ? 'unchanged' : 'changed' }
}

/**
 * The EnvironmentFile and the import check, side by side (so without log groups).
 * When the deploy user cannot read the EnvironmentFile, the release is imported
 * without it (preflight said so, and strict refused): what fails for a reason no
 * variable can change is refused, what may depend on the environment is a warning,
 * and verification after the switch proves the release (see importCheck).
 */
async function checkRelease(p: PrepareContext, releaseDir: string): Promise<void> {
  const { remote, settings, snap, log } = p
  const readable = snap.envSources.files.length === 0 || snap.envReadable
  if (!snap.interpreter)
    log.warning("import check skipped: the unit's Python interpreter is unknown")
  await Promise.all([
    readable ? checkEnvironment(remote, snap.envSources, settings.requiredEnv, log) : undefined,
    snap.interpreter
      ? importCheck(remote, {
          interpreter: snap.interpreter,
          envSources: snap.envSources,
          envReadable: readable,
          releaseDir,
          app: snap.app,
          log
        }).then(seconds => settings.strategy === 'reload' && warnOfStall(seconds, log))
      : undefined
  ])
}

/** Seconds of import past which a reload visibly holds requests (the example app imports in about 0.4 s). */
export const STALL_WARN_SECONDS = 1.5

/**
 * Gunicorn's HUP forks the new workers and stops the old ones at once, without
 * waiting for the new ones to be ready: requests wait for the new workers'
 * import. Predict that from the import check's own timing.
 */
export function warnOfStall(importSeconds: number | undefined, log: Log): void {
  if (importSeconds === undefined || importSeconds <= STALL_WARN_SECONDS) return
  log.warning(
    `the new release took ${importSeconds.toFixed(1)} s to import: a reload (HUP) holds requests for about that long, because Gunicorn stops the old workers without waiting for the new ones to boot (gunicorn issues #1757, #1199); under load some may fail. Use strategy: blue-green (the new release is proven on its own socket before any request reaches it), keep the import fast (defer heavy loading), or deploy when traffic is low.`
  )
}

/** `systemctl daemon-reload` when the unit file changed on disk and the deploy user may run it. */
async function daemonReloadIfChanged(p: PrepareContext, changed: Promise<boolean>): Promise<void> {
  const { remote, snap, log } = p
  const service = snap.service
  if (!(await changed)) return
  if (!may(snap.access, 'daemon-reload')) {
    log.warning(
      `the unit file of ${service} changed on disk, but the deploy user may not run sudo systemctl daemon-reload: the reload uses the unit as systemd loaded it. To allow it: ${sudoersLine(snap.access, service, ['daemon-reload'])}`
    )
    return
  }
  await runStep(remote, 'daemon-reload', toShell(asRoot(serviceCommands.daemonReload())))
  log.info('the unit file changed on disk: ran systemctl daemon-reload')
}

/** Whether systemd reports the unit file changed on disk (a read, done beside the checks). */
async function unitFileChanged(p: PrepareContext): Promise<boolean> {
  const needs = await p.remote.exec(
    toShell([...serviceCommands.show(p.snap.service, ['NeedDaemonReload']), '--value'])
  )
  return needs.stdout.trim() === 'yes'
}

async function migrations(
  p: PrepareContext,
  releaseDir: string,
  ready: Promise<unknown>
): Promise<void> {
  const { remote, settings, snap, log, gate } = p
  if (gate && gate.host !== remote.target.label) {
    await timed(p.result, 'wait for migrations', async () => {
      log.info(
        `migrations run once for the fleet, on ${gate.host}; waiting for them before the switch`
      )
      await Promise.all([gate.done, ready])
    })
    return
  }
  await timed(p.result, 'migrations', () =>
    log.group('Migrations', async () => {
      const head = await databaseAtHead(p, releaseDir)
      if (head) return log.info(`database already at head ${head.join(', ')}: no migration to run`)
      checkCancelled(p.cancellation)
      await migrate(remote, {
        interpreter: snap.interpreter,
        envSources: snap.envSources,
        envReadable: snap.envReadable,
        releaseDir,
        app: snap.app,
        command: settings.migrateCommand,
        mode: settings.migrate,
        limits: { timeoutSeconds: settings.migrateTimeoutSeconds, signal: p.cancellation.signal },
        ready,
        log
      })
    })
  )
  gate?.open()
}

/**
 * The common case, a database already at the release's head, read in one process
 * (`flask db current` and `flask db heads` with the app imported once, beside the import
 * check). Returns the heads when `current` equals them; undefined for anything else
 * (migrations to run, no migrations/, migrate-command or migrate: off, a failure to
 * read), which `migrate` then decides as always.
 */
async function databaseAtHead(
  p: PrepareContext,
  releaseDir: string
): Promise<string[] | undefined> {
  const { settings, snap } = p
  if (settings.migrate !== 'auto' || settings.migrateCommand || !snap.interpreter) return undefined
  if (snap.envSources.files.length > 0 && !snap.envReadable) return undefined
  const read = await helperOf(p.remote)
    .dbRevisions({
      python: snap.interpreter.python,
      env: unitEnvironment(snap.envSources, true),
      releaseDir,
      module: snap.app.split(':')[0],
      timeoutMs: dbReadTimeoutSeconds(settings.migrateTimeoutSeconds) * 1000,
      signal: p.cancellation.signal
    })
    .catch((error: unknown) => {
      // A database that does not answer here would not answer flask db current either.
      const failed = dbReadFailed(
        error,
        'flask db current and heads',
        settings.migrateTimeoutSeconds
      )
      if (failed !== error) throw failed
      return undefined
    })
  if (!read?.migrations) return undefined
  const [current, heads] = [revisions(read.current), revisions(read.heads)]
  if (heads.length === 0) return undefined
  return current.join(',') === heads.join(',') ? heads : undefined
}

/** What the steps before the switch leave for the switch. */
export interface PreparedRelease {
  releaseDir: string
  deps: DependencyOutcome
}

/**
 * What Nginx serves from the release itself (its static files) must be readable by
 * Nginx's worker, which may be neither the deploy user nor in the release's group: those
 * files are public anyway, and are made readable by every user (all of the release when
 * the Nginx configuration could not be read).
 */
async function openServedFiles(p: PrepareContext, releaseDir: string): Promise<void> {
  const served = servedByNginx(p.snap.nginx, p.layout.current)
  const opened = await openToNginx(p.remote, releaseDir, served)
  if (served === undefined)
    p.log.info(
      'the Nginx configuration could not be read, so Nginx may serve any file of the release: it is readable by every user'
    )
  else if (opened.length > 0)
    p.log.info(
      `served by Nginx itself, readable by every user: ${opened.map(d => d || '.').join(', ')}`
    )
}

/**
 * Runs every step before the switch (dependencies, the import check and migrations,
 * the unit file, before-switch). A cancel stops a running pip, migration or hook on
 * the host and fails as `cancelled (SIGNAL)`.
 */
export async function prepareRelease(p: PrepareContext): Promise<PreparedRelease> {
  try {
    return await prepareSteps(p)
  } catch (error) {
    throw asCancelled(p.cancellation, error)
  }
}

async function prepareSteps(p: PrepareContext): Promise<PreparedRelease> {
  const { settings, log, result, cancellation } = p
  const releaseDir = p.layout.release(settings.releaseId)
  checkCancelled(cancellation)
  await openServedFiles(p, releaseDir)
  const deps = await timed(result, 'dependencies', () =>
    log.group('Dependencies', () =>
      prepareDependencies({ ...p, signal: cancellation.signal }, releaseDir)
    )
  )
  p.onDependencies?.(deps)
  // The checks, migrations and hooks run on the release's own interpreter (per release).
  const q: PrepareContext = {
    ...p,
    snap: { ...p.snap, interpreter: deps.interpreter ?? p.snap.interpreter }
  }
  await p.mustPass
  // The migrations read the database's revision beside the import check, and change
  // nothing before the import check passed.
  const changed = unitFileChanged(q)
  changed.catch(() => undefined) // awaited below unless a check fails first
  const checked = timed(result, 'import check', () => checkRelease(q, releaseDir))
  const [imported, migrated] = await Promise.allSettled([
    checked,
    migrations(q, releaseDir, checked)
  ])
  // An import that fails breaks `flask db current` too: the import check names the cause.
  if (imported.status === 'rejected') throw imported.reason
  if (migrated.status === 'rejected') throw migrated.reason
  checkCancelled(cancellation)
  await deps.recording
  await timed(result, 'unit', () => daemonReloadIfChanged(q, changed))
  checkCancelled(cancellation)
  if (settings.beforeSwitch) {
    const hook = hookFor('before-switch', settings.beforeSwitch, {
      ...q,
      releaseDir,
      interpreter: q.snap.interpreter,
      signal: cancellation.signal
    })
    await timed(result, 'before-switch', () =>
      log.group('before-switch', () => runHook(p.remote, hook))
    )
    checkCancelled(cancellation)
  }
  return { releaseDir, deps }
}
