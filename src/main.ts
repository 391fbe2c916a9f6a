// The action's one try/catch: read the inputs, run the mode on every host,
// report. Any error ends here as core.setFailed.
import * as core from '@actions/core'
import type { HostResult } from './core/host-result.js'
import { noticeSuccess, overallStatus, setOutputs, writeSummary } from './action/report.js'
import { readRunContext } from './action/run-context.js'
import { readSettings, SECRET_INPUTS } from './action/inputs.js'
import { type Settings } from './modes/settings.js'
import type { Cancellation } from './core/cancellation.js'
import { runMode } from './action/run-mode.js'
import { secrets } from './core/secrets.js'

function maskSecrets(read: (name: string) => string): void {
  for (const name of SECRET_INPUTS) {
    const value = read(name)
    if (value.trim() === '') continue
    core.setSecret(value)
    // Multi-line secrets are masked line by line as well.
    for (const line of value.split(/\r?\n/))
      if (line.trim().length >= 8) core.setSecret(line.trim())
  }
}

/**
 * SIGINT/SIGTERM (a cancelled run; the runner kills the process a few seconds
 * later) stop the deploy: a running pip or migration is stopped on the host at
 * once, other steps at their end; cleanup still runs.
 */
function watchCancellation(cancellation: Cancellation): () => void {
  const controller = new AbortController()
  cancellation.signal = controller.signal
  const onSignal = (signal: NodeJS.Signals) => {
    if (!cancellation.reason)
      core.warning(
        `received ${signal}: stopping the current step (a running pip or migration at once), then cleaning up (lock, partial release, rollback)`
      )
    cancellation.reason ??= signal
    controller.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return () => {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

/** Fails the step when a host failed, or a deploy was rolled back. */
function failIfNotDone(results: HostResult[], settings: Settings): void {
  const status = overallStatus(results)
  if (status !== 'failed' && !(status === 'rolled-back' && settings.mode === 'deploy')) return
  const failedHosts = results
    .filter(r => r.status !== 'deployed' && r.status !== 'checked')
    .map(r => r.host)
  const first = results.find(r => r.error)?.error?.split('\n')[0] ?? ''
  throw new Error(`${settings.mode} ${status} on ${failedHosts.join(', ')}: ${first}`)
}

export async function run(): Promise<void> {
  const cancellation: Cancellation = {}
  const unwatch = watchCancellation(cancellation)
  // A second line of defence: the runner masks every value the hosts' reads add.
  secrets.onAdd(value => core.setSecret(value))
  try {
    const read = (name: string) => core.getInput(name)
    maskSecrets(read)
    const runContext = readRunContext()
    const settings = readSettings(read, {
      sha: runContext.sha,
      now: new Date(),
      workspace: runContext.workspace
    })
    if (settings.hostKeys.kind === 'insecure')
      core.warning(
        'insecure-skip-host-key-check is true: the server identity is NOT verified; anyone in the network path can impersonate it and receive your code and commands. Pin it with known-hosts or host-fingerprint.'
      )
    const { results, url } = await runMode(settings, runContext, cancellation)
    setOutputs(results, settings, url)
    noticeSuccess(results, settings)
    await writeSummary(results, settings.mode, settings.strategy)
    failIfNotDone(results, settings)
  } catch (error) {
    core.setFailed(secrets.redact(error instanceof Error ? error.message : String(error)))
  } finally {
    unwatch()
  }
}
