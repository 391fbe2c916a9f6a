// `mode: check`: audits a host with the same table of checks a deploy's
// preflight runs (host-checks.ts), plus the live health answers, changing
// nothing. Every finding has a severity and a fix.
import { sudoersLine } from '../host/access.js'
import { adoptedHealth, readAdopted, type Adopted } from '../host/adopted-release.js'
import { runChecks } from '../host/host-checks.js'
import { factOptions, gatherFacts, type HostFacts } from '../host/host-facts.js'
import { certificateWarning, httpGet, readCertificate } from '../transport/http-over-ssh.js'
import { nginxTarget } from '../host/verification-urls.js'
import { withPath, type HttpTarget } from '../transport/http-target.js'
import { newHostResult, timed, type Finding, type HostResult } from '../core/host-result.js'
import type { Log } from '../core/log.js'
import { ReleaseLayout } from '../host/release-layout.js'
import { RIGHTS, type Right } from '../host/service-commands.js'
import { instanceUnit } from '../host/blue-green/instances.js'
import type { Settings } from './settings.js'
import type { RemoteHost } from '../transport/ssh-connection.js'

async function healthFinding(
  remote: RemoteHost,
  url: HttpTarget,
  adopted?: Adopted
): Promise<Finding> {
  try {
    const r = await httpGet(remote, url, 5000)
    if (r.status >= 200 && r.status < 300)
      return {
        severity: 'ok',
        check: 'health',
        finding: `${url.text} answers ${r.status}`,
        fix: ''
      }
    if (adopted && adopted.healthPath !== url.path) {
      const own = withPath(url, adopted.healthPath)
      const again = await httpGet(remote, own, 5000)
      if (again.status >= 200 && again.status < 300)
        return adoptedHealth(url, r.status, own, again.status)
    }
    return {
      severity: 'error',
      check: 'health',
      finding: `${url.text} answers ${r.status}`,
      fix: 'the app must answer 2xx on the health path'
    }
  } catch (error) {
    return {
      severity: 'error',
      check: 'health',
      finding: `${url.text}: ${(error as Error).message}`,
      fix: 'check the URL; sshd must allow forwarding (AllowTcpForwarding / AllowStreamLocalForwarding)'
    }
  }
}

async function certificateFinding(remote: RemoteHost, url: HttpTarget): Promise<Finding> {
  try {
    const cert = await readCertificate(remote, url)
    const soon = certificateWarning(cert)
    return soon
      ? { severity: 'warning', check: 'certificate', finding: soon, fix: 'renew the certificate' }
      : {
          severity: 'ok',
          check: 'certificate',
          finding: `${cert.subject}: ${cert.daysLeft} days left`,
          fix: ''
        }
  } catch (error) {
    return {
      severity: 'warning',
      check: 'certificate',
      finding: `could not read the certificate of ${url.text}: ${(error as Error).message}`,
      fix: 'check the TLS server block'
    }
  }
}

/**
 * The sudoers rules granting every right the action can use (both instances under
 * blue-green); `sudo ps` only where /proc hides the service's processes from the deploy user.
 */
function sudoersLines(facts: HostFacts, service: string): string {
  const usable = RIGHTS.map(r => r.right).filter(r => r !== 'ps' || facts.processes !== 'ps')
  // restart-services: the one action each companion is moved with.
  const companions = facts.companions.map(c => sudoersLine(facts.access, c.unit, [c.action]))
  if (!facts.blueGreen)
    return [sudoersLine(facts.access, service, usable), ...companions].join('\n')
  const perInstance: Right[] = ['start', 'stop', 'restart']
  const global = usable.filter(r => r !== 'reload' && !perInstance.includes(r))
  return [
    sudoersLine(facts.access, instanceUnit(service, 'blue'), [...perInstance, ...global]),
    sudoersLine(facts.access, instanceUnit(service, 'green'), perInstance),
    ...companions
  ].join('\n')
}

function logFindings(findings: Finding[], settings: Settings, log: Log, host: string): void {
  for (const f of findings) {
    const text = `${f.check}: ${f.finding}${f.fix ? `\nFix: ${f.fix}` : ''}`
    if (f.severity === 'error' && !settings.warnOnly) log.error(text, `check ${f.check} on ${host}`)
    else if (f.severity === 'unverified') log.warning(`not verified: ${text}`)
    else if (f.severity !== 'ok') log.warning(text)
    else log.info(`ok ${f.check}: ${f.finding}`)
  }
}

export async function checkHost(
  remote: RemoteHost,
  settings: Settings,
  log: Log
): Promise<HostResult> {
  const result = newHostResult(remote.target.label)
  const findings: Finding[] = []
  result.findings = findings
  const layout = new ReleaseLayout(settings.releasePath)
  await timed(result, 'audit', async () => {
    const facts = await gatherFacts(remote, factOptions(settings, layout, settings.requiredEnv))
    findings.push(
      ...runChecks(
        facts,
        { releasePath: settings.releasePath, requiredEnv: settings.requiredEnv },
        'check'
      ).findings
    )
    if (facts.unit.loadState !== 'loaded') return
    if (!facts.masterAlive && facts.unit.loadState === 'loaded' && facts.currentIsLink)
      findings.push({
        severity: 'error',
        check: 'unit',
        finding: `${facts.service} is not running: nothing serves`,
        fix: `sudo journalctl -u ${facts.service} -n 100 shows why; fix it, or run mode: rollback`
      })
    findings.push({
      severity: 'ok',
      check: 'sudoers',
      finding: `every right the action can use: ${sudoersLines(facts, settings.service)}`,
      fix: ''
    })
    const nginxUrl = nginxTarget(settings, facts.nginx)
    const adopted = facts.masterAlive ? await readAdopted(remote, facts.currentDir) : undefined
    if (facts.masterAlive)
      for (const url of [settings.healthUrl, nginxUrl])
        findings.push(await healthFinding(remote, url, adopted))
    if (nginxUrl.kind === 'tcp' && nginxUrl.scheme === 'https')
      findings.push(await certificateFinding(remote, nginxUrl))
  })
  logFindings(findings, settings, log, remote.target.label)
  result.notVerified = findings
    .filter(f => f.severity === 'unverified')
    .map(f => ({ what: `${f.check}: ${f.finding}`, allow: f.fix }))
  const errors = findings.filter(f => f.severity === 'error')
  const failing = errors.length > 0 || (settings.strict && result.notVerified.length > 0)
  result.status = failing && !settings.warnOnly ? 'failed' : 'checked'
  if (errors.length > 0)
    result.error = `${errors.length} check(s) failed: ${errors.map(f => f.check).join(', ')}`
  return result
}
