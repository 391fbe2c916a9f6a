// Runs the chosen mode on every target: packs the release once (deploy),
// connects each host (host key pinned), runs the fleet in its batches, and
// keeps the GitHub deployment's bookkeeping beside it.
import * as core from '@actions/core'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { githubDeployment } from './github-deployment.js'
import type { HostResult } from '../core/host-result.js'
import { coreLog } from './core-log.js'
import { hostLog, type Log } from '../core/log.js'
import { archiveSize, assertSourceDirectory, describeArchive } from '../modes/release-archive.js'
import { environmentUrl } from './report.js'
import type { RunContext } from '../core/run-stamp.js'
import type { Settings } from '../modes/settings.js'
import type { Target } from '../core/targets.js'
import { connect, connectionStats, type RemoteHost } from '../transport/ssh-connection.js'
import { checkHost } from '../modes/check.js'
import { deployHost, packRelease } from '../modes/deploy.js'
import { type Cancellation } from '../core/cancellation.js'
import { runFleet, type FleetHooks } from '../modes/fleet.js'
import { fleetRollback, rollbackHost } from '../modes/rollback.js'

type HostJob = FleetHooks['run']

function connectTarget(target: Target, settings: Settings, log: Log): Promise<RemoteHost> {
  const pinning = settings.hostKeys.kind === 'insecure' ? 'NOT checked' : 'pinned'
  log.info(
    `connecting (host key ${pinning}${settings.jumpHost ? `, through ${settings.jumpHost.label}` : ''})`
  )
  return connect(target, {
    privateKey: settings.privateKey,
    passphrase: settings.passphrase,
    hostKeys: settings.hostKeys,
    jumpHost: settings.jumpHost,
    jumpCredentials: settings.jumpCredentials,
    timeoutSeconds: settings.connectTimeoutSeconds,
    retries: settings.connectRetries,
    log: m => log.info(m)
  }).catch((error: Error) => {
    throw new Error(`could not connect: ${error.message}`, { cause: error })
  })
}

/** Packs the release into `workDir` and returns the deploy job that uploads it. */
async function deployJob(
  settings: Settings,
  run: RunContext,
  cancellation: Cancellation,
  workDir: string
): Promise<HostJob> {
  assertSourceDirectory(settings.source)
  const archivePath = path.join(workDir, 'release.tar.gz')
  const packed = await core.group(`Pack ${settings.source} as release ${settings.releaseId}`, () =>
    packRelease(settings, run, archivePath)
  )
  coreLog.info(`release ${settings.releaseId}: ${describeArchive(packed)}`)
  // Release ids are letters, digits, . _ - only: nothing here needs escaping.
  core.summary.addRaw(`<p>Release ${settings.releaseId}: ${archiveSize(packed)}</p>`, true)
  return (remote, log, gate, reconnect) =>
    deployHost(remote, { settings, run, log, cancellation, archivePath, gate, reconnect })
}

export async function runMode(
  settings: Settings,
  run: RunContext,
  cancellation: Cancellation
): Promise<{ results: HostResult[]; url: string }> {
  const workDir = mkdtempSync(path.join(tmpdir(), 'zdd-'))
  try {
    const job: HostJob =
      settings.mode === 'deploy'
        ? await deployJob(settings, run, cancellation, workDir)
        : settings.mode === 'rollback'
          ? (remote, log) => rollbackHost(remote, { settings, run, log })
          : (remote, log) => checkHost(remote, settings, log)
    const deployment = githubDeployment(settings, run, coreLog)
    deployment.begin()
    const results = await runFleet(
      settings,
      {
        connect: (target, log) => connectTarget(target, settings, log),
        run: (...args) => job(...args).then(deployment.hostDone),
        rollback: fleetRollback(settings, run),
        logFor: (target, parallel) => hostLog(coreLog, target.label, parallel),
        connectionsOf: target => connectionStats.byTarget.get(target.label) ?? 0
      },
      coreLog
    ).catch(async (error: Error) => {
      await deployment.finish([], '')
      throw error
    })
    const url = environmentUrl(results, settings)
    await deployment.finish(results, url)
    return { results, url }
  } finally {
    rmSync(workDir, { recursive: true, force: true })
  }
}
