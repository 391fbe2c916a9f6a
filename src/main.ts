// The action's one try/catch: settings, pack the release, connect, run the
// mode on each host, report. Any error ends here as core.setFailed.
import * as core from '@actions/core'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { checkHost } from './modes/check.js'
import { deployHost, packRelease, type Cancellation } from './modes/deploy.js'
import { runFleet, type MigrationGate } from './modes/fleet.js'
import { githubDeployment } from './action/github-deployment.js'
import type { HostResult } from './action/host-result.js'
import { coreLog, hostLog, type Log } from './action/log.js'
import { archiveSize, assertSourceDirectory, describeArchive } from './action/release-archive.js'
import {
  environmentUrl,
  noticeSuccess,
  overallStatus,
  setOutputs,
  writeSummary
} from './action/report.js'
import { rollbackHost } from './modes/rollback.js'
import { readRunContext } from './action/run-context.js'
import { readSettings, type Settings } from './action/settings.js'
import { connect, connectionStats, type RemoteHost } from './transport/ssh-connection.js'
import type { Target } from './action/targets.js'

type HostJob = (
  remote: RemoteHost,
  log: Log,
  gate: MigrationGate | undefined,
  reconnect: () => Promise<RemoteHost>
) => Promise<HostResult>

function maskSecrets(read: (name: string) => string): void {
  for (const name of [
    'private-key',
    'passphrase',
    'jump-private-key',
    'jump-passphrase',
    'github-token'
  ]) {
    const value = read(name)
    if (value.trim() === '') continue
    core.setSecret(value)
    // Multi-line secrets are masked line by line as well.
    for (const line of value.split(/\r?\n/))
      if (line.trim().length >= 8) core.setSecret(line.trim())
  }
}

/** SIGINT/SIGTERM (a cancelled run) stop the deploy at the next step; cleanup still runs. */
function watchCancellation(cancellation: Cancellation): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    if (!cancellation.reason) {
      core.warning(
        `received ${signal}: stopping after the current step, then cleaning up (lock, partial release, rollback)`
      )
    }
    cancellation.reason = signal
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return () => {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

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

export async function run(): Promise<void> {
  const cancellation: Cancellation = {}
  const unwatch = watchCancellation(cancellation)
  let workDir: string | undefined
  try {
    const read = (name: string) => core.getInput(name)
    maskSecrets(read)
    const runContext = readRunContext()
    const settings = readSettings(read, {
      sha: runContext.sha,
      now: new Date(),
      workspace: runContext.workspace
    })
    if (settings.hostKeys.kind === 'insecure') {
      core.warning(
        'insecure-skip-host-key-check is true: the server identity is NOT verified; anyone in the network path can impersonate it and receive your code and commands. Pin it with known-hosts or host-fingerprint.'
      )
    }

    let job: HostJob
    if (settings.mode === 'deploy') {
      assertSourceDirectory(settings.source)
      workDir = mkdtempSync(path.join(tmpdir(), 'zdd-'))
      const archivePath = path.join(workDir, 'release.tar.gz')
      const packed = await core.group(
        `Pack ${settings.source} as release ${settings.releaseId}`,
        () => packRelease(settings, runContext, archivePath)
      )
      core.info(`release ${settings.releaseId}: ${describeArchive(packed)}`)
      // Release ids are letters, digits, . _ - only: nothing here needs escaping.
      core.summary.addRaw(`<p>Release ${settings.releaseId}: ${archiveSize(packed)}</p>`, true)
      job = (remote, log, gate, reconnect) =>
        deployHost(remote, {
          settings,
          run: runContext,
          log,
          cancellation,
          archivePath,
          gate,
          reconnect
        })
    } else if (settings.mode === 'rollback') {
      job = (remote, log) => rollbackHost(remote, { settings, run: runContext, log })
    } else {
      job = (remote, log) => checkHost(remote, settings, log)
    }

    const deployment = githubDeployment(settings, runContext, coreLog)
    deployment.begin()
    const results = await runFleet(
      settings,
      {
        connect: (target, log) => connectTarget(target, settings, log),
        run: (...args) => job(...args).then(deployment.hostDone),
        rollback: (remote, log, release) =>
          rollbackHost(remote, {
            settings: { ...settings, rollbackTo: release || undefined },
            run: runContext,
            log
          }),
        logFor: (target, parallel) => hostLog(coreLog, target.label, parallel),
        connectionsOf: target => connectionStats.byTarget.get(target.label) ?? 0
      },
      coreLog
    )

    const url = environmentUrl(results, settings)
    setOutputs(results, settings, url)
    await deployment.finish(results, url)
    noticeSuccess(results, settings)
    await writeSummary(results, settings.mode)
    const status = overallStatus(results)
    if (status === 'failed' || (status === 'rolled-back' && settings.mode === 'deploy')) {
      const failedHosts = results
        .filter(r => r.status !== 'deployed' && r.status !== 'checked')
        .map(r => r.host)
      const first = results.find(r => r.error)?.error?.split('\n')[0] ?? ''
      throw new Error(`${settings.mode} ${status} on ${failedHosts.join(', ')}: ${first}`)
    }
  } catch (error) {
    core.setFailed(error instanceof Error ? error.message : String(error))
  } finally {
    if (workDir) rmSync(workDir, { recursive: true, force: true })
    unwatch()
  }
}
