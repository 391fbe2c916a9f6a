// `mode: check`: audits a host against the reference guide's checklist and
// the reload traps, changing nothing. Every finding has a severity and a fix.
import { httpGet } from './http-over-ssh.js'
import { newHostResult, timed, type Finding, type HostResult } from './host-result.js'
import type { Log } from './log.js'
import { reloadSendsHup, reloadTrap } from './preflight.js'
import { helperArgv } from './remote-helper.js'
import type { EnvCheck } from './release-checks.js'
import { readCurrentRelease, ReleaseLayout } from './release-layout.js'
import { tailLines } from './remote-command.js'
import { listWorkers, readGunicornOptions, readUnit } from './service-state.js'
import type { Settings } from './settings.js'
import { optional, toShell } from './shell-quote.js'
import type { RemoteHost } from './ssh-connection.js'
import { bindAsUpstream, readNginxUpstreams } from './nginx-upstream.js'
import { configUnseen, type GunicornCommand, type UnitInfo } from './unit-info.js'

/** Sudo rights the deploy needs, as (command text, why) pairs. */
export function requiredSudo(service: string): [string, string][] {
  return [
    [`systemctl reload ${service}`, 'the graceful reload'],
    [`systemctl restart ${service}`, 'recovery when the master died'],
    ['nginx -t', 'preflight'],
    ['pwdx', 'reading the working directory of the workers'],
    ['systemctl daemon-reload', 'picking up a changed unit']
  ]
}

/** Whether `sudo -n -l` output grants a command (literally, with a trailing *, or ALL). */
export function sudoAllows(listing: string, command: string): boolean {
  const [program, ...args] = command.split(' ')
  // sudo wraps long rules at the terminal width, continuing them on lines indented by 8 spaces.
  const lines = listing
    .replace(/\n {8,}(?=\S)/g, ' ')
    .split('\n')
    .filter(l => /NOPASSWD/.test(l))
  for (const line of lines) {
    const grants = line
      .slice(line.indexOf('NOPASSWD:') + 9)
      .split(',')
      .map(s => s.trim())
    for (const g of grants) {
      if (g === 'ALL') return true
      const [gProgram, ...gArgs] = g.split(/\s+/)
      if (!gProgram.endsWith(`/${program}`)) continue
      if (gArgs.length === 0) return true
      const wanted = args.join(' ')
      const granted = gArgs.join(' ')
      if (
        granted === wanted ||
        (granted.endsWith('*') && wanted.startsWith(granted.slice(0, -1).trimEnd()))
      )
        return true
    }
  }
  return false
}

function unitFindings(
  unit: UnitInfo,
  g: GunicornCommand,
  settings: Settings,
  add: (f: Finding) => void
): void {
  const svc = settings.service
  if (!reloadSendsHup(unit.execReload))
    add({
      severity: 'error',
      check: 'ExecReload',
      finding: `ExecReload=${unit.execReload.join(' ') || '(none)'}: systemctl reload does not send HUP to Gunicorn`,
      fix: 'add ExecReload=/bin/kill -HUP $MAINPID and run systemctl daemon-reload'
    })
  else add({ severity: 'ok', check: 'ExecReload', finding: 'sends HUP to $MAINPID', fix: '' })
  if (g.launcher.kind === 'unknown') {
    add({
      severity: 'error',
      check: 'Gunicorn',
      finding: `ExecStart=${unit.execStart.join(' ')} does not start Gunicorn`,
      fix: 'start <venv>/bin/python -m gunicorn (or <venv>/bin/gunicorn) in ExecStart'
    })
    return
  }
  const trap = reloadTrap(unit, g, settings.releasePath, svc)
  if (trap) {
    const [cause, fix] = trap.message.split('\nFix: ')
    add({ severity: 'error', check: g.preload ? 'preload' : 'chdir', finding: cause, fix })
  } else {
    add({
      severity: 'ok',
      check: 'chdir',
      finding: g.chdir ? `--chdir ${g.chdir}` : 'WorkingDirectory is not under current',
      fix: ''
    })
    add({
      severity: 'ok',
      check: 'preload',
      finding: g.configRead ? `no --preload, no preload_app in ${g.configFile}` : 'no --preload',
      fix: ''
    })
  }
  if (configUnseen(g))
    add({
      severity: 'warning',
      check: 'config',
      finding: `Gunicorn reads ${g.configFile}, which could not be read or sets preload_app/chdir by computation: this audit cannot see them (a deploy still catches stale code after the reload)`,
      fix: 'let the deploy user read the file and assign preload_app/chdir literal values, or set them in ExecStart'
    })
  for (const bind of g.binds) {
    const m = /^unix:(\/run\/[^/]+)$/.exec(bind)
    if (m && unit.user && unit.user !== 'root') {
      add({
        severity: 'error',
        check: 'socket',
        finding: `--bind ${bind} as User=${unit.user}: ${unit.user} cannot create a socket directly in root-owned /run, so Gunicorn fails to start (it only logs "Retrying in 1 second")`,
        fix: `add RuntimeDirectory=${svc.replace(/\.service$/, '')} and bind unix:/run/${svc.replace(/\.service$/, '')}/${svc.replace(/\.service$/, '')}.sock (update Nginx's proxy_pass to match)`
      })
    }
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
  const add = (f: Finding) => findings.push(f)
  const layout = new ReleaseLayout(settings.releasePath)
  await timed(result, 'audit', async () => {
    const unit = await readUnit(remote, settings.service)
    if (unit.loadState !== 'loaded') {
      add({
        severity: 'error',
        check: 'unit',
        finding: `${settings.service} is not loaded (LoadState=${unit.loadState || 'unknown'})`,
        fix: `install /etc/systemd/system/${settings.service}.service (see examples/server/myapp.service)`
      })
      return
    }
    if (unit.activeState !== 'active' || unit.mainPid === 0)
      add({
        severity: 'error',
        check: 'unit',
        finding: `${settings.service} is not running (${unit.activeState}/${unit.subState})`,
        fix: `sudo journalctl -u ${settings.service} -n 100 shows why; fix it and start it`
      })
    else add({ severity: 'ok', check: 'unit', finding: `active, MainPID ${unit.mainPid}`, fix: '' })
    const g = await readGunicornOptions(remote, unit)
    unitFindings(unit, g, settings, add)

    const workers = await listWorkers(remote, unit.mainPid)
    const configured = g.workers ?? workers.length
    if (configured < 2 || (unit.mainPid > 0 && workers.length < 2))
      add({
        severity: 'error',
        check: 'workers',
        finding: `${configured} configured, ${workers.length} running: a reload with one worker is not zero-downtime`,
        fix: 'run Gunicorn with --workers 2 or more'
      })
    else
      add({
        severity: 'ok',
        check: 'workers',
        finding: `${configured} configured, ${workers.length} running`,
        fix: ''
      })

    // the upstream Nginx proxies to is Gunicorn's bind
    const upstreams = await readNginxUpstreams(remote)
    const binds = g.binds.map(bindAsUpstream)
    if (upstreams.length === 0)
      add({
        severity: 'warning',
        check: 'upstream',
        finding: 'no proxy_pass/upstream found in /etc/nginx/sites-enabled or conf.d',
        fix: 'proxy Nginx to the Gunicorn bind (see examples/server/nginx-myapp.conf)'
      })
    else if (!binds.some(b => upstreams.includes(b)))
      add({
        severity: 'error',
        check: 'upstream',
        finding: `Nginx proxies to ${upstreams.join(', ')} but Gunicorn binds ${binds.join(', ') || '(default 127.0.0.1:8000)'}`,
        fix: 'make proxy_pass and --bind name the same socket or port, then nginx -t and reload Nginx'
      })
    else
      add({
        severity: 'ok',
        check: 'upstream',
        finding: `Nginx proxies to ${binds.filter(b => upstreams.includes(b)).join(', ')}`,
        fix: ''
      })

    const nginx = await remote.exec(toShell(['sudo', '-n', 'nginx', '-t']))
    if (nginx.code !== 0)
      add({
        severity: 'error',
        check: 'nginx -t',
        finding: tailLines(nginx.stderr, 4),
        fix: 'fix the Nginx configuration, or allow the deploy user `sudo nginx -t`'
      })
    else add({ severity: 'ok', check: 'nginx -t', finding: 'configuration test passes', fix: '' })

    // release layout
    const current = await readCurrentRelease(remote, layout)
    const isLink = await remote.exec(toShell(['test', '-L', layout.current]))
    if (isLink.code !== 0 || !current)
      add({
        severity: 'error',
        check: 'layout',
        finding: `${layout.current} is not a symlink to releases/<id>`,
        fix: `move the app into ${layout.releasesDir}/<id> and ln -s releases/<id> ${layout.current}`
      })
    else
      add({ severity: 'ok', check: 'layout', finding: `current -> releases/${current}`, fix: '' })
    const writable = await remote.exec(toShell(['test', '-w', layout.releasesDir]))
    if (writable.code !== 0)
      add({
        severity: 'error',
        check: 'layout',
        finding: `${layout.releasesDir} is missing or not writable by ${remote.target.user}`,
        fix: `mkdir -p ${layout.releasesDir} ${layout.sharedDir} and chown them to ${remote.target.user}`
      })

    // the interpreter behind a console script
    if (g.launcher.kind === 'script') {
      const head = await remote.exec(optional(['head', '-n', '1', g.launcher.path]))
      const shebang = /^#!\s*(\S+)/.exec(head.stdout)?.[1]
      const scriptVenv = g.launcher.path.replace(/\/bin\/[^/]+$/, '')
      if (!shebang)
        add({
          severity: 'error',
          check: 'venv',
          finding: `${g.launcher.path} is missing or has no #! line (a --system-site-packages venv has no bin/gunicorn)`,
          fix: `start Gunicorn as ${scriptVenv}/bin/python -m gunicorn`
        })
      else {
        const runs = await remote.exec(toShell([shebang, '-c', 'import gunicorn']))
        if (runs.code !== 0)
          add({
            severity: 'error',
            check: 'venv',
            finding: `${g.launcher.path} runs ${shebang}, which cannot import gunicorn`,
            fix: `start Gunicorn as ${scriptVenv}/bin/python -m gunicorn`
          })
        else if (!shebang.startsWith(scriptVenv + '/'))
          add({
            severity: 'warning',
            check: 'venv',
            finding: `${g.launcher.path} runs ${shebang}, an interpreter outside its own venv (a moved or per-release venv)`,
            fix: `start Gunicorn as ${scriptVenv}/bin/python -m gunicorn`
          })
        else
          add({
            severity: 'ok',
            check: 'venv',
            finding: `${g.launcher.path} runs ${shebang}`,
            fix: ''
          })
      }
    }

    // environment file
    const envFile = settings.envFile ?? unit.environmentFiles[0]
    if (!envFile)
      add({
        severity: settings.requiredEnv.length ? 'error' : 'warning',
        check: 'environment',
        finding: 'the unit has no EnvironmentFile',
        fix: 'add EnvironmentFile=/etc/myapp.env (root:www-data 640)'
      })
    else {
      const env = await remote.exec(
        toShell(helperArgv('python3', 'envcheck', envFile, ...settings.requiredEnv))
      )
      const check = JSON.parse(env.stdout || '{}') as Partial<EnvCheck>
      if (!check.exists)
        add({
          severity: 'error',
          check: 'environment',
          finding: `${envFile} does not exist`,
          fix: `create ${envFile} (root:www-data 640)`
        })
      else if (!check.readable)
        add({
          severity: 'error',
          check: 'environment',
          finding: `${envFile} is not readable by ${remote.target.user}`,
          fix: `chgrp www-data ${envFile}; chmod 640 ${envFile}; usermod -aG www-data ${remote.target.user}`
        })
      else if ((check.missing ?? []).length + (check.empty ?? []).length > 0)
        add({
          severity: 'error',
          check: 'environment',
          finding: `required variables not set or empty: ${[...(check.missing ?? []), ...(check.empty ?? [])].join(', ')}`,
          fix: `set them in ${envFile}`
        })
      else if ((check.errors ?? []).length > 0)
        add({
          severity: 'warning',
          check: 'environment',
          finding: `${envFile} lines ${check.errors?.join(', ')} are not NAME=VALUE`,
          fix: 'fix or remove those lines'
        })
      else
        add({
          severity: 'ok',
          check: 'environment',
          finding: `${envFile}: ${check.count} variables${settings.requiredEnv.length ? `, ${settings.requiredEnv.join(', ')} set` : ''}`,
          fix: ''
        })
    }

    // disk
    const df = await remote.exec(optional(['df', '-Pk', settings.releasePath]))
    const freeMb = Math.round(
      Number(df.stdout.trim().split('\n').pop()?.split(/\s+/)[3] ?? 0) / 1024
    )
    if (freeMb < 200)
      add({
        severity: freeMb < 50 ? 'error' : 'warning',
        check: 'disk',
        finding: `${freeMb} MiB free under ${settings.releasePath}`,
        fix: 'free disk space or lower keep-releases'
      })
    else add({ severity: 'ok', check: 'disk', finding: `${freeMb} MiB free`, fix: '' })

    // sudo rights
    const sudo = await remote.exec(toShell(['sudo', '-n', '-l']))
    const missing = requiredSudo(settings.service).filter(([cmd]) => !sudoAllows(sudo.stdout, cmd))
    if (missing.length > 0)
      add({
        severity: 'error',
        check: 'sudo',
        finding: `${remote.target.user} may not run without a password: ${missing.map(([c, why]) => `${c} (${why})`).join('; ')}`,
        fix: 'install examples/server/sudoers-deploy as /etc/sudoers.d/deploy (visudo -cf first)'
      })
    else
      add({
        severity: 'ok',
        check: 'sudo',
        finding: 'reload, restart, daemon-reload, nginx -t and pwdx allowed',
        fix: ''
      })

    // health, through the same SSH channels a deploy uses
    for (const url of [settings.healthUrl, settings.nginxUrl]) {
      try {
        const r = await httpGet(remote, url, 5000)
        if (r.status >= 200 && r.status < 300)
          add({
            severity: 'ok',
            check: 'health',
            finding: `${url.text} answers ${r.status}`,
            fix: ''
          })
        else
          add({
            severity: 'error',
            check: 'health',
            finding: `${url.text} answers ${r.status}`,
            fix: 'the app must answer 2xx on the health path'
          })
      } catch (error) {
        add({
          severity: 'error',
          check: 'health',
          finding: `${url.text}: ${(error as Error).message}`,
          fix: 'check the URL; sshd must allow forwarding (AllowTcpForwarding / AllowStreamLocalForwarding)'
        })
      }
    }
  })
  for (const f of findings) {
    if (f.severity === 'error' || f.severity === 'warning') {
      const text = `${f.check}: ${f.finding}${f.fix ? `\nFix: ${f.fix}` : ''}`
      if (f.severity === 'error' && !settings.warnOnly)
        log.error(text, `check ${f.check} on ${remote.target.label}`)
      else log.warning(text)
    } else log.info(`ok ${f.check}: ${f.finding}`)
  }
  const errors = findings.filter(f => f.severity === 'error').length
  result.status = errors > 0 && !settings.warnOnly ? 'failed' : 'checked'
  if (errors > 0)
    result.error = `${errors} check(s) failed: ${findings
      .filter(f => f.severity === 'error')
      .map(f => f.check)
      .join(', ')}`
  return result
}
