// The action's one try/catch: settings, pack the release, connect, run the
// mode on each host, report. Any error ends here as core.setFailed.
import * as core from '@actions/core'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { deployHost, packRelease, type Cancellation } from './deploy.js'
import { newHostResult, type HostResult } from './host-result.js'
import { coreLog, hostLog } from './log.js'
import { assertSourceDirectory } from './release-archive.js'
import { overallStatus, setOutputs, writeSummary } from './report.js'
import { readRunContext, type RunContext } from './run-context.js'
import { readSettings, type Settings } from './settings.js'
import { connect, type RemoteHost } from './ssh-connection.js'
import type { Target } from './targets.js'

function maskSecrets(read: (name: string) => string): void {
  for (const name of ['private-key', 'passphrase']) {
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
    if (!cancellation.reason)
      core.warning(
        `received ${signal}: stopping after the current step, then cleaning up (lock, partial release, rollback)`
      )
    cancellation.reason = signal
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return () => {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

async function runOnHost(
  target: Target,
  settings: Settings,
  run: RunContext,
  cancellation: Cancellation,
  archivePath: string
): Promise<HostResult> {
  const log = hostLog(coreLog, target.label)
  let remote: RemoteHost
  try {
    log.info(
      `connecting (host key ${settings.hostKeys.kind === 'insecure' ? 'NOT checked' : 'pinned'}${settings.jumpHost ? `, through ${settings.jumpHost.label}` : ''})`
    )
    remote = await connect(target, {
      privateKey: settings.privateKey,
      passphrase: settings.passphrase,
      hostKeys: settings.hostKeys,
      jumpHost: settings.jumpHost,
      timeoutSeconds: settings.connectTimeoutSeconds,
      retries: settings.connectRetries,
      log: m => log.info(m)
    })
  } catch (error) {
    const result = newHostResult(target.label)
    result.error = `could not connect: ${(error as Error).message}`
    return result
  }
  try {
    return await deployHost(remote, { settings, run, log, cancellation, archivePath })
  } finally {
    await remote.close()
  }
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
    if (settings.mode !== 'deploy')
      throw new Error(`mode '${settings.mode}' is not implemented yet`)
    assertSourceDirectory(settings.source)

    workDir = mkdtempSync(path.join(tmpdir(), 'zdd-'))
    const archivePath = path.join(workDir, 'release.tar.gz')
    const bytes = await core.group(`Pack ${settings.source} as release ${settings.releaseId}`, () =>
      packRelease(settings, runContext, archivePath)
    )
    core.info(`release ${settings.releaseId}: ${Math.round(bytes / 1024)} KiB packed`)

    const results: HostResult[] = []
    for (const target of settings.targets)
      results.push(await runOnHost(target, settings, runContext, cancellation, archivePath))

    setOutputs(results)
    await writeSummary(results, settings.mode)
    const status = overallStatus(results)
    if (status === 'failed' || status === 'rolled-back') {
      throw new Error(
        `${settings.mode} ${status} on ${results
          .filter(r => r.status !== 'deployed')
          .map(r => r.host)
          .join(', ')}: ${results.find(r => r.error)?.error?.split('\n')[0] ?? ''}`
      )
    }
  } catch (error) {
    core.setFailed(error instanceof Error ? error.message : String(error))
  } finally {
    if (workDir) rmSync(workDir, { recursive: true, force: true })
    unwatch()
  }
}
