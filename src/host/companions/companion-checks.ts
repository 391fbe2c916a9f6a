// The host checks for companions (restart-services): each exists, takes its code
// from the release path, and may be restarted (or reloaded) by the deploy user.
// Only a definite mismatch is an error; what cannot be read is left to the proof
// after the restart.
import { missingRight, sudoersLine, type Access } from '../access.js'
import type { Finding } from '../../core/host-result.js'
import { releaseOfPath } from '../prune.js'
import type { CompanionFacts } from './companion-facts.js'

const finding = (severity: Finding['severity'], text: string, fix = ''): Finding => ({
  severity,
  check: 'companion',
  finding: text,
  fix
})

/** Whether `dir` is `current` or a directory below it (a restart resolves it anew). */
export function underCurrent(dir: string, root: string): boolean {
  const current = `${root}/current`
  return dir === current || dir.startsWith(`${current}/`)
}

/** What a companion's configuration and main process say about where its code comes from. */
function codeFrom(c: CompanionFacts, ctx: CompanionCheckContext): Finding[] {
  const { root, releasesDir } = ctx
  if (c.configuredDir && underCurrent(c.configuredDir, root)) return []
  if (c.configuredDir)
    return [
      finding(
        'error',
        `${c.unit} takes its code from ${c.configuredDir}, not from ${root}/current: a restart would not move it to the new release`,
        `start it in the release: WorkingDirectory=${root}/current (or --workdir ${root}/current for Celery), then systemctl daemon-reload`
      )
    ]
  if (c.mainDir && !releaseOfPath(releasesDir, c.mainDir))
    return [
      finding(
        'error',
        `${c.unit} works in ${c.mainDir}, outside ${releasesDir}: it does not run the release`,
        `start it in the release: WorkingDirectory=${root}/current, then systemctl daemon-reload`
      )
    ]
  return [
    finding(
      'unverified',
      `${c.unit} names no working directory (no WorkingDirectory, --workdir or --chdir)${c.mainDir ? `; its main process works in ${c.mainDir}` : ''}: that a restart moves it to the new release is proven after the restart`,
      `set WorkingDirectory=${root}/current in the unit`
    )
  ]
}

/** Which release the companion runs now, against `current`. */
function runsCurrent(c: CompanionFacts, ctx: CompanionCheckContext): Finding[] {
  const running = c.mainDir ? releaseOfPath(ctx.releasesDir, c.mainDir) : undefined
  if (c.info.activeState !== 'active')
    return [
      finding(
        'warning',
        `${c.unit} is not running (${c.info.activeState}/${c.info.subState}): the next deploy starts it with the new release`,
        `sudo journalctl -u ${c.unit} -n 100 shows why`
      )
    ]
  if (running && ctx.currentRelease && running !== ctx.currentRelease)
    return [
      finding(
        'warning',
        `${c.unit} runs release ${running}, but current is ${ctx.currentRelease}: it was not restarted after the last switch`,
        `sudo systemctl restart ${c.unit} (a deploy with restart-services does it)`
      )
    ]
  return running ? [finding('ok', `${c.unit} runs release ${running}`)] : []
}

/** Under per-release environments a companion must run the release's venv, through current. */
function runsReleaseVenv(c: CompanionFacts, ctx: CompanionCheckContext): Finding[] {
  if (!ctx.perReleaseVenvs) return []
  const program = c.info.execStart[0] ?? ''
  if (underCurrent(program, ctx.root)) return []
  return [
    finding(
      'warning',
      `${c.unit} runs ${program || '(unknown)'}, not the release's environment under ${ctx.root}/current/.venv: it would run the new code on other packages than the web instances`,
      `ExecStart=${ctx.root}/current/.venv/bin/python -m celery … (or the release's own console script)`
    )
  ]
}

export interface CompanionCheckContext {
  root: string
  releasesDir: string
  currentRelease?: string
  access: Access
  /** blue-green with per-release environments (the template runs <slot>/.venv). */
  perReleaseVenvs: boolean
}

/** Every finding about the companions; errors block a deploy. */
export function companionFindings(
  companions: CompanionFacts[],
  ctx: CompanionCheckContext
): Finding[] {
  const out: Finding[] = []
  for (const c of companions) {
    if (c.info.loadState !== 'loaded') {
      out.push(
        finding(
          'error',
          `${c.unit} (restart-services) is not loaded (LoadState=${c.info.loadState || 'unknown'})`,
          `install /etc/systemd/system/${c.unit.replace(/\.service$/, '')}.service and run systemctl daemon-reload, or remove it from restart-services`
        )
      )
      continue
    }
    if (c.grant === 'no')
      out.push(
        finding(
          'error',
          `${ctx.access.user} may not run sudo systemctl ${c.action} ${c.unit} (moving it to the new release${c.action === 'reload' ? ': its unit defines ExecReload' : ''})`,
          `add to sudoers: ${sudoersLine(ctx.access, c.unit, [c.action])}`
        )
      )
    out.push(...codeFrom(c, ctx), ...runsCurrent(c, ctx), ...runsReleaseVenv(c, ctx))
    if (c.dirs === 'none') {
      const m = missingRight(ctx.access, c.unit, 'pwdx')
      out.push(
        finding(
          'unverified',
          `which release ${c.unit}'s processes run after the restart (it runs as ${c.info.user || 'root'}): only that it is active with a new main process is proven`,
          m.allow
        )
      )
    }
  }
  if (companions.length > 0 && !out.some(f => f.severity === 'error'))
    out.push(
      finding(
        'ok',
        `${companions.map(c => `${c.unit} (${c.action})`).join(', ')}: restarted onto each new release once the web release is proven`
      )
    )
  return out
}
