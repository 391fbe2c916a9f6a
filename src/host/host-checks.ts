// The host checks, declared once: what each reads, the rights it needs,
// whether an error blocks a deploy, and its fix. A deploy's preflight runs the
// whole table and stops only on blocking errors, all named in one message;
// `mode: check` runs the same table and reports everything. What cannot be
// read is "not verified" (a warning, an error under `strict`), never a refusal.
import { describeEnvFiles } from './env-sources.js'
import { may, missingRight, readsJournal, sudoersLine, type Access } from './access.js'
import type { Finding } from '../core/host-result.js'
import type { HostFacts } from './host-facts.js'
import { reloadSendsHup, reloadTrap } from './gunicorn/reload-traps.js'
import { RIGHTS, rightSpec, type Right } from './service-commands.js'
import { tailLines } from '../transport/remote-command.js'
import { configUnseen } from './gunicorn/unit-info.js'
import { socketOf, type Bind } from './gunicorn/bind.js'
import { socketPath } from './endpoint.js'
import type { Strategy } from '../core/strategy.js'
import { blueGreenLayout, pooledUpstream } from './blue-green/checks.js'
import { instanceUnit, otherColour } from './blue-green/instances.js'
import { companionFindings } from './companions/companion-checks.js'

export interface CheckContext {
  releasePath: string
  requiredEnv: string[]
  /** Bytes the new release needs under release-path (deploy); check mode uses a fixed floor. */
  minFreeBytes?: number
}

export interface HostCheck {
  id: string
  /** What the check reads on the host. */
  reads: string
  /** Whether an error finding stops a deploy before any change. */
  blocksDeploy: boolean
  /** Reported by mode: check only (advice, not a proof a deploy needs). */
  checkModeOnly?: boolean
  /** Only under this strategy (undefined: both). */
  strategy?: Strategy
  evaluate(facts: HostFacts, ctx: CheckContext): Finding[]
}

const ok = (check: string, finding: string): Finding => ({
  severity: 'ok',
  check,
  finding,
  fix: ''
})
const error = (check: string, finding: string, fix: string): Finding => ({
  severity: 'error',
  check,
  finding,
  fix
})
const warning = (check: string, finding: string, fix: string): Finding => ({
  severity: 'warning',
  check,
  finding,
  fix
})
const unverified = (check: string, finding: string, fix: string): Finding => ({
  severity: 'unverified',
  check,
  finding,
  fix
})

/** Whether the host has never been deployed to (no current): a first deploy starts the unit. */
export function firstDeploy(f: HostFacts): boolean {
  return !f.currentExists && !f.masterAlive
}

/** Under blue-green a deploy never reloads or restarts the serving instance: it starts the other one. */
function instanceState(f: HostFacts): Finding[] {
  const u = f.unit
  // Not loaded: the blue-green check names the template to install.
  if (u.loadState !== 'loaded') return []
  if (f.masterAlive) return [ok('unit', `${f.service} active, MainPID ${u.mainPid}`)]
  const state = `${u.activeState}/${u.subState}`
  return [
    warning(
      'unit',
      f.blueGreen?.live
        ? `${f.service}, the live instance, is not running (${state}): nothing serves until a deploy or rollback starts the other instance and moves live.sock to it`
        : `no instance serves yet (${f.service} is ${state}, live.sock not created): the first deploy starts its release in ${f.service}`,
      f.blueGreen?.live
        ? `sudo journalctl -u ${f.service} -n 100 shows why it stopped`
        : 'deploy a first release'
    )
  ]
}

function unitState(f: HostFacts): Finding[] {
  if (f.blueGreen) return instanceState(f)
  const u = f.unit
  if (u.loadState !== 'loaded')
    return [
      error(
        'unit',
        `${f.service} is not loaded (LoadState=${u.loadState || 'unknown'})`,
        `install /etc/systemd/system/${f.service}.service and run systemctl daemon-reload`
      )
    ]
  if (f.masterAlive) return [ok('unit', `active, MainPID ${u.mainPid}`)]
  const state = `${u.activeState}/${u.subState}`
  const action = u.activeState === 'inactive' ? 'start' : 'restart'
  if (!may(f.access, action)) {
    const m = missingRight(f.access, f.service, action)
    return [error('unit', `${f.service} is not running (${state}) and ${m.what}`, m.allow)]
  }
  if (firstDeploy(f))
    return [
      warning(
        'unit',
        `${f.service} is not running (${state}) and ${f.layout.current} does not exist yet: the first deploy switches current and runs systemctl ${action}`,
        'deploy a first release'
      )
    ]
  return [
    warning(
      'unit',
      `${f.service} is not running (${state}): a deploy switches current and runs systemctl ${action}; nothing serves until then`,
      `sudo journalctl -u ${f.service} -n 100 shows why it stopped`
    )
  ]
}

function gunicornLaunch(f: HostFacts, ctx: CheckContext): Finding[] {
  const g = f.gunicorn
  const out: Finding[] = []
  if (g.launcher.kind === 'unknown') {
    const hidden = f.processes === 'hidden' && f.masterAlive ? hiddenProcesses(f) : undefined
    out.push(
      unverified(
        'Gunicorn',
        hidden
          ? `ExecStart=${f.unit.execStart.join(' ')} does not show Gunicorn's command line (${g.launcher.reason}), and the running master's is hidden: ${hidden.why}; verification after the reload proves what it can`
          : `ExecStart=${f.unit.execStart.join(' ')} does not show Gunicorn's command line (${g.launcher.reason}): its options are read from the running master where possible, and verification after the reload proves the rest`,
        `start <venv>/bin/python -m gunicorn (or <venv>/bin/gunicorn) directly in ExecStart to let preflight read the options${hidden ? `, or ${hidden.allow}` : ''}`
      )
    )
  }
  const trap = reloadTrap(f.unit, g, ctx.releasePath, f.service)
  if (trap) {
    // A cold start loads whatever current points at; the trap bites on the next reload.
    const finding = f.masterAlive ? error : warning
    out.push(finding(g.preload ? 'preload' : 'chdir', trap.cause, trap.fix ?? ''))
  } else if (g.launcher.kind !== 'unknown') {
    out.push(
      ok('chdir', g.chdir ? `--chdir ${g.chdir}` : 'WorkingDirectory is not under current'),
      ok(
        'preload',
        g.configRead ? `no --preload, no preload_app in ${g.configFile}` : 'no --preload'
      )
    )
  }
  if (configUnseen(g))
    out.push(
      unverified(
        'config',
        `Gunicorn reads ${g.configFile}, which could not be read or sets preload_app/chdir by computation: verification after the reload catches stale code`,
        'let the deploy user read the file and assign preload_app/chdir literal values, or set them in ExecStart'
      )
    )
  return out
}

/** A unix socket directly in /run (not in a directory of its own there). */
function inRunItself(bind: Bind): boolean {
  const socket = socketOf(bind)
  return socket !== undefined && /^\/run\/[^/]+$/.test(socketPath(socket))
}

function socketInRun(f: HostFacts): Finding[] {
  const svc = f.service.replace(/\.service$/, '')
  // A socket unit's socket is created by systemd (as root), not by Gunicorn.
  if (f.gunicorn.sources.bind === 'systemd socket') return []
  return f.gunicorn.binds
    .filter(b => f.unit.user && f.unit.user !== 'root' && inRunItself(b))
    .map(bind =>
      error(
        'socket',
        `--bind ${bind.text} as User=${f.unit.user}: ${f.unit.user} cannot create a socket directly in root-owned /run, so Gunicorn fails to start (it only logs "Retrying in 1 second")`,
        `add RuntimeDirectory=${svc} and bind unix:/run/${svc}/${svc}.sock (update Nginx's proxy_pass to match)`
      )
    )
}

/**
 * What the deploy user cannot see of the service's processes (/proc mounted with
 * hidepid, no `sudo ps`), and the line that would let it: never a finding about the server.
 */
export function hiddenProcesses(f: HostFacts): { why: string; allow: string } {
  const who = f.unit.user || 'root'
  const why = f.access.hidepid
    ? `/proc is mounted with hidepid=${f.access.hidepid}, so ${f.user} cannot see the processes of ${who}`
    : `${f.user} cannot see the processes of ${who} (ps does not list MainPID ${f.unit.mainPid}; /proc may be mounted with hidepid)`
  return { why, allow: missingRight(f.access, f.service, 'ps').allow }
}

function workerCount(f: HostFacts): Finding[] {
  const configured = f.gunicorn.workers
  const running = f.workers.length
  if (f.masterAlive && f.processes === 'hidden') {
    const hidden = hiddenProcesses(f)
    const out: Finding[] = [
      unverified(
        'workers',
        `${hidden.why}: how many workers master ${f.unit.mainPid} runs, and which release they run after the reload, is not verified (${configured ?? 'unknown'} configured); verification relies on systemd (the master is kept) and on health answers naming the release, through Gunicorn and Nginx`,
        hidden.allow
      )
    ]
    if (configured !== undefined && configured < 2)
      out.push(
        error(
          'workers',
          `Gunicorn is configured for ${configured} worker(s): a reload with fewer than 2 workers is not reliably zero-downtime`,
          'run Gunicorn with --workers 2 or more'
        )
      )
    return out
  }
  if (f.masterAlive && running < 2)
    return [
      error(
        'workers',
        `Gunicorn master ${f.unit.mainPid} has ${running} worker(s): a reload with fewer than 2 workers is not reliably zero-downtime`,
        'run Gunicorn with --workers 2 or more'
      )
    ]
  if (!f.masterAlive && configured !== undefined && configured < 2)
    return [
      error(
        'workers',
        `Gunicorn is configured for ${configured} worker(s): a reload with fewer than 2 workers is not reliably zero-downtime`,
        'run Gunicorn with --workers 2 or more'
      )
    ]
  return [
    ok(
      'workers',
      `${configured ?? 'unknown'} configured, ${f.masterAlive ? running : 'none'} running`
    )
  ]
}

function upstream(f: HostFacts): Finding[] {
  const n = f.nginx
  if (n.kind === 'match')
    return [
      ok(
        'upstream',
        `Nginx proxies to ${f.blueGreen ? f.blueGreen.liveLink : "Gunicorn's bind"}${n.servers.length ? ` in server ${n.servers.map(s => s.names[0] ?? '_').join(', ')}` : ''}`
      )
    ]
  if (n.kind === 'mismatch' && f.blueGreen)
    return [
      error(
        'upstream',
        `Nginx proxies only to ${n.proxiedTo.join(', ')}, not to ${f.blueGreen.liveLink}: switching live.sock would not move traffic`,
        `proxy_pass http://unix:${f.blueGreen.liveLink}; (no upstream keepalive), then nginx -t and reload Nginx`
      )
    ]
  if (n.kind === 'mismatch')
    return [
      error(
        'upstream',
        `Nginx proxies only to ${n.proxiedTo.join(', ')}, which nothing binds: Gunicorn binds ${n.binds.join(', ')}, so the reload would not be what Nginx serves`,
        'make proxy_pass (or the upstream block) and --bind name the same socket or port, then nginx -t and reload Nginx'
      )
    ]
  return [
    unverified(
      'upstream',
      `which upstream Nginx proxies to could not be read completely (${n.reason}): verification through Nginx after the reload proves it`,
      'allow `sudo nginx -T` (it prints the whole configuration) or make /etc/nginx readable by the deploy user'
    )
  ]
}

function nginxTest(f: HostFacts): Finding[] {
  if (!f.nginxTest) {
    const m = missingRight(f.access, f.service, 'nginx-test')
    return [unverified('nginx -t', m.what, m.allow)]
  }
  if (f.nginxTest.code !== 0)
    return [
      error(
        'nginx -t',
        `nginx -t failed:\n${tailLines(f.nginxTest.stderr, 6)}`,
        'fix the Nginx configuration'
      )
    ]
  return [ok('nginx -t', 'configuration test passes')]
}

function layout(f: HostFacts): Finding[] {
  const l = f.layout
  const out: Finding[] = []
  if (!f.releasesWritable)
    out.push(
      error(
        'layout',
        `${l.releasesDir} is missing or not writable by ${f.user}`,
        `mkdir -p ${l.releasesDir} ${l.sharedDir} && chown ${f.user} ${l.releasesDir} ${l.sharedDir}`
      )
    )
  if (f.currentIsLink && !f.currentRelease)
    out.push(
      warning(
        'layout',
        `${l.current} -> ${f.currentOther ?? '?'} is not a release in ${l.releasesDir}: nothing the action (or mode: rollback) can go back to by id. A deploy moves current to ${l.releasesDir}/<id>; if that release fails, current is pointed at ${f.currentOther ?? 'its old target'} again and the old code reloaded`,
        `to make it a release: cp -a ${f.currentDir ?? f.currentOther ?? '<the app>'} ${l.releasesDir}/initial && ln -sfn releases/initial ${l.current}, then reload`
      )
    )
  else if (!f.currentIsLink && f.currentExists)
    out.push(
      error(
        'layout',
        `${l.current} is not a symlink (it cannot be switched atomically)`,
        `move the app into ${l.releasesDir}/<id> and ln -sfn releases/<id> ${l.current}`
      )
    )
  if (f.liveLinkExists && !f.blueGreen)
    out.push(
      error(
        'layout',
        `${l.root}/live.sock exists: this host is set up for blue-green (Nginx proxies to the live instance through it), and a reload of ${f.service} would not be what serves`,
        'set strategy: blue-green and service to the template (e.g. myapp for myapp@.service)'
      )
    )
  if (out.length === 0)
    out.push(
      ok('layout', f.currentRelease ? `current -> releases/${f.currentRelease}` : 'no release yet')
    )
  return out
}

function disk(f: HostFacts, ctx: CheckContext): Finding[] {
  const freeMb = Math.round(f.freeKb / 1024)
  const needed = ctx.minFreeBytes ?? 50 * 1048576
  if (f.freeKb * 1024 < needed)
    return [
      error(
        'disk',
        `only ${freeMb} MiB free under ${f.layout.root}; about ${Math.ceil(needed / 1048576)} MiB are needed`,
        'free disk space or lower keep-releases'
      )
    ]
  if (ctx.minFreeBytes === undefined && freeMb < 200)
    return [
      warning(
        'disk',
        `${freeMb} MiB free under ${f.layout.root}`,
        'free disk space or lower keep-releases'
      )
    ]
  return [ok('disk', `${freeMb} MiB free`)]
}

function interpreter(f: HostFacts): Finding[] {
  const out: Finding[] = []
  if ('error' in f.interpreter)
    out.push(
      unverified(
        'interpreter',
        `the unit's Python interpreter could not be found (${f.interpreter.error}): the import check and pip are skipped`,
        'start Gunicorn as <venv>/bin/python -m gunicorn in ExecStart'
      )
    )
  else
    out.push(
      ok(
        'interpreter',
        `${f.interpreter.python}${f.interpreter.venv ? ` (venv ${f.interpreter.venv})` : ''}`
      )
    )
  const g = f.gunicorn
  if (g.launcher.kind === 'script' && f.shebang) {
    const venv = g.launcher.path.replace(/\/bin\/[^/]+$/, '')
    const fix = `start Gunicorn as ${venv}/bin/python -m gunicorn`
    if (!f.shebang.python)
      out.push(error('venv', `${g.launcher.path} is missing or has no #! line`, fix))
    else if (!f.shebang.importsGunicorn && f.shebang.lookedUp)
      // found through the service's PATH, which may not be the deploy user's
      out.push(
        warning(
          'venv',
          `${g.launcher.path} runs ${f.shebang.python} from the PATH, and the deploy user's ${f.shebang.python} cannot import gunicorn (the service's PATH may differ)`,
          fix
        )
      )
    else if (!f.shebang.importsGunicorn)
      out.push(
        error(
          'venv',
          `${g.launcher.path} runs ${f.shebang.python}, which cannot import gunicorn`,
          fix
        )
      )
    else if (!f.shebang.python.startsWith(venv + '/') && f.shebang.python.includes('/bin/python'))
      out.push(
        warning(
          'venv',
          `${g.launcher.path} runs ${f.shebang.python}, an interpreter outside its own venv`,
          fix
        )
      )
    else out.push(ok('venv', `${g.launcher.path} runs ${f.shebang.python}`))
  }
  return out
}

function environment(f: HostFacts, ctx: CheckContext): Finding[] {
  const env = f.env
  const sources = f.envSources
  const files = describeEnvFiles(sources)
  if (sources.files.length === 0 && sources.assignments.length === 0)
    return ctx.requiredEnv.length > 0
      ? [
          error(
            'environment',
            `required-env lists ${ctx.requiredEnv.join(', ')} but the unit has no EnvironmentFile`,
            'set env-file, or add EnvironmentFile= to the unit'
          )
        ]
      : [ok('environment', 'the unit has no EnvironmentFile')]
  const checked = env?.files ?? []
  const gone = checked.filter(c => !c.exists && !c.optional).map(c => c.path)
  if (!env || env.exists === false)
    return [
      error(
        'environment',
        `${gone.join(', ') || files} does not exist (or its directory cannot be searched by ${f.user}); systemd does not start the unit without it`,
        `create ${gone[0] ?? files} (root:www-data 640), or prefix it with - in EnvironmentFile= if it is optional`
      )
    ]
  const unreadable = checked.filter(c => c.exists && !c.readable).map(c => c.path)
  if (env.readable === false)
    return [
      unverified(
        'environment',
        `${unreadable.join(', ')} ${unreadable.length > 1 ? 'are' : 'is'} not readable by ${f.user}: the import check runs without the unit's environment and refuses only what no variable can change${ctx.requiredEnv.length ? `, and required-env (${ctx.requiredEnv.join(', ')}) is not checked` : ''}; verification after the switch proves the rest`,
        `let ${f.user} read it: chgrp www-data ${unreadable.join(' ')}; chmod 640 ${unreadable.join(' ')}; usermod -aG www-data ${f.user} (or the group that owns it)`
      )
    ]
  const unset = [...(env.missing ?? []), ...(env.empty ?? [])]
  if (unset.length > 0)
    return [
      error(
        'environment',
        `required variables not set or empty in ${files || "the unit's Environment="}: ${unset.join(', ')}`,
        `set them in ${sources.files.at(-1)?.path ?? 'an EnvironmentFile'}`
      )
    ]
  const malformed = checked.filter(c => c.errors.length > 0)
  if (malformed.length > 0)
    return [
      warning(
        'environment',
        malformed.map(c => `${c.path} lines ${c.errors.join(', ')} are not NAME=VALUE`).join('; '),
        'fix or remove those lines'
      )
    ]
  return [ok('environment', `${files || 'Environment='}: ${env.count} variables`)]
}

/** Blue-green starts the idle instance and stops the old one: both instances need start and stop. */
const BLUE_GREEN_NEEDS: Record<'start' | 'stop', string> = {
  start: 'starting the new release in the idle instance',
  stop: 'stopping the old instance once traffic has moved'
}

/** The rights a deploy cannot do without that the deploy user lacks, per unit. */
function missingRequired(f: HostFacts): { unit: string; access: Access; missing: string[][] }[] {
  if (!f.blueGreen)
    return [
      {
        unit: f.service,
        access: f.access,
        missing: RIGHTS.filter(r => r.required && !may(f.access, r.right)).map(r => [
          r.right,
          r.purpose
        ])
      }
    ]
  const bg = f.blueGreen
  return [
    { unit: f.service, access: f.access },
    { unit: instanceUnit(bg.template, otherColour(bg.serving)), access: bg.idleAccess }
  ].map(u => ({
    ...u,
    missing: Object.entries(BLUE_GREEN_NEEDS).filter(([r]) => !may(u.access, r as Right))
  }))
}

function rights(f: HostFacts): Finding[] {
  const out: Finding[] = []
  const lacking = missingRequired(f).filter(u => u.missing.length > 0)
  for (const u of lacking)
    out.push(
      error(
        'sudo',
        `${f.user} may not run ${u.missing.map(([r, purpose]) => `sudo ${rightSpec(r as Right).grant(u.unit)} (${purpose})`).join(', ')}`,
        `add to sudoers: ${sudoersLine(
          u.access,
          u.unit,
          u.missing.map(([r]) => r as Right)
        )}`
      )
    )
  const required = lacking
  if (f.dirs === 'none') {
    const m = missingRight(f.access, f.service, 'pwdx')
    out.push(unverified('pwdx', m.what, m.allow))
  }
  if (!may(f.access, 'daemon-reload')) {
    const m = missingRight(f.access, f.service, 'daemon-reload')
    out.push(unverified('daemon-reload', m.what, m.allow))
  }
  if (!readsJournal(f.access))
    out.push(
      unverified(
        'journal',
        `${f.user} cannot read the journal of ${f.service}: a failure report has no journal excerpt`,
        `usermod -aG systemd-journal ${f.user}`
      )
    )
  if (f.access.readable.get(f.nginxErrorLog) === false)
    out.push(
      unverified(
        'nginx log',
        `${f.user} cannot read ${f.nginxErrorLog}: a failure report has no Nginx error-log excerpt`,
        `usermod -aG adm ${f.user}`
      )
    )
  if (required.length === 0)
    out.push(
      ok(
        'sudo',
        f.blueGreen
          ? `systemctl start and stop of both instances allowed`
          : 'systemctl reload and restart allowed'
      )
    )
  return out
}

/** Whether a version (`20.1.0`) is older than `24.1.0`. */
export function olderThan(version: string, than: string): boolean {
  const a = version.split('.').map(n => parseInt(n, 10) || 0)
  const b = than.split('.').map(n => parseInt(n, 10) || 0)
  for (let i = 0; i < Math.max(a.length, b.length); i++)
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) < (b[i] ?? 0)
  return false
}

/** Gunicorn before 24.1.0 logs from its SIGCHLD handler: a reload under load can crash the master. */
function gunicornVersion(f: HostFacts): Finding[] {
  const v = f.gunicornVersion
  if (!v) return []
  if (!olderThan(v, '24.1.0')) return [ok('gunicorn version', `Gunicorn ${v}`)]
  return [
    warning(
      'gunicorn version',
      `Gunicorn ${v} logs from its SIGCHLD handler; during a reload under load this can crash the master ("RuntimeError: reentrant call inside <_io.BufferedWriter name='<stderr>'>", gunicorn issues #2564 and #3198, fixed in 24.1.0): requests fail until the action restarts it on the new release (naming the crash) or systemd does`,
      "upgrade Gunicorn in the unit's venv to 24.1.0 or newer (pip install 'gunicorn>=24.1'); until then, --log-level error avoids the crashing write (measured on the test kit: none in 450 reloads under load; --log-level warning does not help)"
    )
  ]
}

/** restart-services: each companion exists, runs the release and may be restarted. */
function companions(f: HostFacts): Finding[] {
  return companionFindings(f.companions, {
    root: f.layout.root,
    releasesDir: f.releasesDir,
    currentRelease: f.currentRelease,
    access: f.access,
    perReleaseVenvs: f.blueGreen?.perReleaseVenvs ?? false
  })
}

/** Under blue-green, whether each release gets its own environment (the template runs its slot's venv). */
function environments(f: HostFacts): Finding[] {
  const bg = f.blueGreen
  if (!bg || bg.instances[bg.serving].info.loadState !== 'loaded') return []
  if (bg.perReleaseVenvs)
    return [
      ok(
        'environments',
        `each release runs its own venv (${f.layout.root}/slots/<instance>/.venv): a deploy never touches the serving instance's packages`
      )
    ]
  const program = bg.instances[bg.serving].info.execStart[0] ?? '(unknown)'
  return [
    warning(
      'environments',
      `${bg.template}@.service runs ${program}, one environment shared by every release: a deploy's pip install changes the packages under the serving instance, and a rollback reinstalls the old release's recorded set`,
      `run each release's own venv: ExecStart=${f.layout.root}/slots/%i/.venv/bin/python -m gunicorn … in ${bg.template}@.service (examples/server/blue-green/; provision.sh --strategy blue-green updates it)`
    )
  ]
}

/** Every check, in the order they are reported. */
export const HOST_CHECKS: readonly HostCheck[] = [
  { id: 'unit', reads: 'systemctl show', blocksDeploy: true, evaluate: unitState },
  {
    id: 'blue-green',
    reads: 'both instances, slots/ and live.sock',
    blocksDeploy: true,
    strategy: 'blue-green',
    evaluate: blueGreenLayout
  },
  {
    id: 'ExecReload',
    reads: 'the unit',
    blocksDeploy: true,
    strategy: 'reload',
    evaluate: f =>
      reloadSendsHup(f.unit.execReload)
        ? [ok('ExecReload', 'sends HUP to $MAINPID')]
        : [
            error(
              'ExecReload',
              `ExecReload=${f.unit.execReload.join(' ') || '(none)'}: systemctl reload would not send HUP to Gunicorn`,
              'add ExecReload=/bin/kill -HUP $MAINPID to the [Service] section and run systemctl daemon-reload'
            )
          ]
  },
  {
    id: 'gunicorn',
    reads: 'ExecStart and the Gunicorn config file',
    blocksDeploy: true,
    strategy: 'reload',
    evaluate: gunicornLaunch
  },
  { id: 'socket', reads: 'the unit', blocksDeploy: true, evaluate: socketInRun },
  { id: 'workers', reads: 'ps', blocksDeploy: true, strategy: 'reload', evaluate: workerCount },
  { id: 'upstream', reads: 'the Nginx configuration', blocksDeploy: true, evaluate: upstream },
  {
    id: 'keepalive',
    reads: 'the Nginx configuration',
    blocksDeploy: true,
    strategy: 'blue-green',
    evaluate: pooledUpstream
  },
  { id: 'nginx -t', reads: 'sudo nginx -t', blocksDeploy: true, evaluate: nginxTest },
  { id: 'layout', reads: 'release-path', blocksDeploy: true, evaluate: layout },
  { id: 'disk', reads: 'df', blocksDeploy: true, evaluate: disk },
  { id: 'interpreter', reads: 'the console script', blocksDeploy: false, evaluate: interpreter },
  {
    id: 'gunicorn version',
    reads: "gunicorn.__version__ under the unit's interpreter",
    blocksDeploy: false,
    checkModeOnly: true,
    // Under blue-green no HUP is sent: the crash cannot happen.
    strategy: 'reload',
    evaluate: gunicornVersion
  },
  {
    id: 'environment',
    reads: 'the EnvironmentFile (names only)',
    blocksDeploy: true,
    evaluate: environment
  },
  { id: 'rights', reads: 'sudo -n -l, groups', blocksDeploy: true, evaluate: rights },
  {
    id: 'environments',
    reads: "the template's ExecStart",
    blocksDeploy: false,
    strategy: 'blue-green',
    evaluate: environments
  },
  {
    id: 'companions',
    reads: 'restart-services: each unit, its processes, sudo -n -l',
    blocksDeploy: true,
    evaluate: companions
  }
]

export interface CheckReport {
  findings: Finding[]
  /** Errors of checks that block a deploy. */
  blocking: Finding[]
}

export function runChecks(
  facts: HostFacts,
  ctx: CheckContext,
  mode: 'deploy' | 'check' = 'deploy'
): CheckReport {
  const findings: Finding[] = []
  const blocking: Finding[] = []
  const strategy: Strategy = facts.blueGreen ? 'blue-green' : 'reload'
  for (const check of HOST_CHECKS) {
    if (check.checkModeOnly && mode !== 'check') continue
    if (check.strategy && check.strategy !== strategy) continue
    for (const finding of check.evaluate(facts, ctx)) {
      findings.push(finding)
      if (finding.severity === 'error' && check.blocksDeploy) blocking.push(finding)
    }
  }
  return { findings, blocking }
}
