// Outputs and the job summary, written once at the end of the run.
import * as core from '@actions/core'
import type { HostResult, HostStatus } from '../core/host-result.js'
import type { Settings } from '../modes/settings.js'
import { secrets } from '../core/secrets.js'

export function overallStatus(results: HostResult[]): HostStatus {
  if (results.some(r => r.status === 'failed' || r.status === 'skipped')) return 'failed'
  if (results.some(r => r.status === 'rolled-back')) return 'rolled-back'
  if (results.every(r => r.status === 'checked')) return 'checked'
  return 'deployed'
}

/** One value when the hosts agree, else each distinct value in host order, comma separated. */
function agreed(values: (string | undefined)[]): string {
  return [...new Set(values.filter((v): v is string => !!v))].join(',')
}

/**
 * The `release` output: mode deploy, the deploy's release id (the same on every
 * host, whatever the outcome); mode rollback, the restored release, or the
 * restored releases comma separated when hosts went back to different ones.
 */
export function releaseOutput(
  results: HostResult[],
  settings: Pick<Settings, 'mode' | 'releaseId'>
): string {
  if (settings.mode === 'deploy') return settings.releaseId
  return agreed(results.map(r => r.release))
}

/** The `previous-release` output: what served before, comma separated when hosts differed. */
export function previousReleaseOutput(results: HostResult[]): string {
  return agreed(results.map(r => r.previousRelease))
}

/**
 * The environment URL (`url` output, deployment status): the environment-url
 * input. The hook for deriving one from the hosts when the input is empty.
 */
export function environmentUrl(
  _results: HostResult[],
  settings: Pick<Settings, 'environmentUrl'>
): string {
  return settings.environmentUrl ?? ''
}

export function setOutputs(
  results: HostResult[],
  settings: Pick<Settings, 'mode' | 'releaseId'>,
  url = ''
): void {
  core.setOutput('url', url)
  core.setOutput('release', releaseOutput(results, settings))
  core.setOutput('previous-release', previousReleaseOutput(results))
  core.setOutput('status', overallStatus(results))
  core.setOutput('rolled-back', String(results.some(r => r.rolledBack)))
  core.setOutput('failed-requests', String(results.reduce((n, r) => n + r.failedRequests, 0)))
  core.setOutput('hosts', JSON.stringify(secrets.redactDeep(results)))
}

/** A `::notice` when the run did what its mode intends: the release, the hosts, failed requests. */
export function noticeSuccess(
  results: HostResult[],
  settings: Pick<Settings, 'mode' | 'releaseId'>
): void {
  const status = overallStatus(results)
  const ok =
    (settings.mode === 'deploy' && status === 'deployed') ||
    (settings.mode === 'rollback' && status === 'rolled-back')
  if (!ok) return
  const failed = results.reduce((n, r) => n + r.failedRequests, 0)
  const requests = results.reduce((n, r) => n + r.probeRequests, 0)
  const hosts = results.map(r => r.host).join(', ')
  const release = releaseOutput(results, settings)
  const what =
    settings.mode === 'deploy' ? `release ${release} serves` : `rolled back to ${release}`
  core.notice(
    secrets.redact(`${what} on ${hosts}; ${failed} of ${requests} probe requests failed`),
    {
      title: settings.mode === 'deploy' ? 'Deployed' : 'Rolled back'
    }
  )
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`
}

/** Writes the job summary (a row per host) when the runner provides one. */
export async function writeSummary(
  results: HostResult[],
  mode: string,
  strategy = 'reload'
): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return
  const summary = core.summary.addHeading(
    `flask-zero-downtime-deploy: ${mode}${strategy === 'reload' ? '' : ` (${strategy})`} ${overallStatus(results)}`,
    2
  )
  // addTable escapes nothing: every cell passes through esc().
  summary.addTable([
    [
      { data: 'host', header: true },
      { data: 'outcome', header: true },
      { data: 'release', header: true },
      { data: 'previous', header: true },
      { data: 'failed requests', header: true },
      { data: 'steps', header: true }
    ],
    ...results.map(r => [
      esc(r.host),
      esc(r.instance ? `${r.status} (${r.instance} serves)` : r.status),
      esc(r.release ?? ''),
      esc(r.previousRelease ?? ''),
      `${r.failedRequests} of ${r.probeRequests}`,
      esc(r.steps.map(s => `${s.name} ${seconds(s.ms)}${s.ok ? '' : ' ✗'}`).join(', '))
    ])
  ])
  for (const r of results) {
    if (r.companions?.length)
      summary.addHeading(`${esc(r.host)}: companions`, 3).addTable([
        [
          { data: 'unit', header: true },
          { data: 'action', header: true },
          { data: 'result', header: true },
          { data: 'release', header: true },
          { data: 'main PID', header: true }
        ],
        ...r.companions.map(c => [
          esc(c.unit),
          esc(c.action),
          esc(
            `${c.status}${c.dirsUnverified ? " (processes' directory not verified)" : ''}${c.error ? `: ${c.error}` : ''}`
          ),
          esc(c.release ?? ''),
          c.mainPid ? String(c.mainPid) : ''
        ])
      ])
    if (r.packages?.length || r.environment)
      summary.addRaw(
        `<p>${esc(r.host)}: ${r.environment ? `environment ${esc(r.environment)}; ` : ''}packages that differ from the previous release: ${esc(r.packages?.join(', ') || 'none')}</p>`,
        true
      )
    if (r.findings) {
      summary.addHeading(`${esc(r.host)}: audit`, 3).addTable([
        [
          { data: 'severity', header: true },
          { data: 'check', header: true },
          { data: 'finding', header: true },
          { data: 'fix', header: true }
        ],
        ...r.findings.map(f => [esc(f.severity), esc(f.check), esc(f.finding), esc(f.fix)])
      ])
    }
    if (r.notVerified?.length && !r.findings)
      summary.addHeading(`${esc(r.host)}: not verified`, 3).addTable([
        [
          { data: 'not verified', header: true },
          { data: 'to allow it', header: true }
        ],
        ...r.notVerified.map(n => [esc(n.what), esc(n.allow)])
      ])
    if (r.error && !r.findings)
      summary
        .addHeading(`${esc(r.host)}: ${esc(r.status)}`, 3)
        .addCodeBlock(esc(r.error + (r.excerpt ? `\n\n${r.excerpt}` : '')))
    else if (r.excerpt && r.failedRequests)
      summary
        .addHeading(
          `${esc(r.host)}: ${esc(r.status)}, but ${r.failedRequests} of ${r.probeRequests} probe requests failed`,
          3
        )
        .addCodeBlock(esc(r.excerpt))
  }
  await summary.write()
}

/** A cell or block of the job summary: scrubbed of the run's secrets, then HTML-escaped. */
export function esc(text: string): string {
  return secrets
    .redact(text)
    .replace(
      /[&<>"']/g,
      c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string
    )
}
