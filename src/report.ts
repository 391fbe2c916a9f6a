// Outputs and the job summary, written once at the end of the run.
import * as core from '@actions/core'
import type { HostResult, HostStatus } from './host-result.js'

export function overallStatus(results: HostResult[]): HostStatus {
  if (results.some(r => r.status === 'failed' || r.status === 'skipped')) return 'failed'
  if (results.some(r => r.status === 'rolled-back')) return 'rolled-back'
  if (results.every(r => r.status === 'checked')) return 'checked'
  return 'deployed'
}

export function setOutputs(results: HostResult[]): void {
  const first = results[0]
  core.setOutput('release', first?.release ?? '')
  core.setOutput('previous-release', first?.previousRelease ?? '')
  core.setOutput('status', overallStatus(results))
  core.setOutput('rolled-back', String(results.some(r => r.rolledBack)))
  core.setOutput('failed-requests', String(results.reduce((n, r) => n + r.failedRequests, 0)))
  core.setOutput('hosts', JSON.stringify(results))
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`
}

/** Writes the job summary (a row per host) when the runner provides one. */
export async function writeSummary(results: HostResult[], mode: string): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return
  const summary = core.summary.addHeading(
    `flask-zero-downtime-deploy: ${mode} ${overallStatus(results)}`,
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
      esc(r.status),
      esc(r.release ?? ''),
      esc(r.previousRelease ?? ''),
      `${r.failedRequests} of ${r.probeRequests}`,
      esc(r.steps.map(s => `${s.name} ${seconds(s.ms)}${s.ok ? '' : ' ✗'}`).join(', '))
    ])
  ])
  for (const r of results) {
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

export function esc(text: string): string {
  return text.replace(
    /[&<>"']/g,
    c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string
  )
}
