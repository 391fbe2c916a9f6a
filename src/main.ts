// The action's one try/catch: settings, connect, run the mode on each host,
// report. Any error ends here as core.setFailed.
import * as core from '@actions/core'
import { deployHost } from './deploy.js'
import { newHostResult, type HostResult } from './host-result.js'
import { coreLog, hostLog } from './log.js'
import { assertSourceDirectory } from './release-archive.js'
import { overallStatus, setOutputs, writeSummary } from './report.js'
import { readRunContext } from './run-context.js'
import { readSettings, type Settings } from './settings.js'
import { connect } from './ssh-connection.js'
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

async function runOnHost(
  target: Target,
  settings: Settings,
  run: ReturnType<typeof readRunContext>
): Promise<HostResult> {
  const log = hostLog(coreLog, target.label)
  let remote
  try {
    log.info(
      `connecting (host key ${settings.hostKeys.kind === 'insecure' ? 'NOT checked' : 'pinned'})`
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
    result.error = (error as Error).message
    return result
  }
  try {
    return await deployHost(remote, { settings, run, log })
  } catch (error) {
    const result = newHostResult(target.label)
    result.error = (error as Error).message
    return result
  } finally {
    await remote.close()
  }
}

export async function run(): Promise<void> {
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

    const results: HostResult[] = []
    for (const target of settings.targets)
      results.push(await runOnHost(target, settings, runContext))

    for (const r of results)
      if (r.error)
        core.error(r.error + (r.excerpt ? `\n${r.excerpt}` : ''), {
          title: `${r.status} on ${r.host}`
        })
    setOutputs(results)
    await writeSummary(results, settings.mode)
    const status = overallStatus(results)
    if (status === 'failed' || status === 'rolled-back')
      throw new Error(
        `deploy ${status}: ${results
          .filter(r => r.error)
          .map(r => r.host)
          .join(', ')}`
      )
  } catch (error) {
    core.setFailed(error instanceof Error ? error.message : String(error))
  }
}
