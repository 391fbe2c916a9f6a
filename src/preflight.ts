// Preflight: everything that must hold before the deploy touches the host.
// Read-only; each failure names the cause and the fix.
import type { Log } from './log.js'
import { findInterpreter, type Interpreter } from './release-checks.js'
import { readCurrentRelease, type ReleaseLayout } from './release-layout.js'
import { runStep, tailLines } from './remote-command.js'
import { bindAsUpstream, readNginxUpstreams } from './nginx-upstream.js'
import {
  listWorkers,
  readGunicornOptions,
  readUnit,
  realPath,
  workingDirectories
} from './service-state.js'
import { allOf, toShell } from './shell-quote.js'
import type { RemoteHost } from './ssh-connection.js'
import { configUnseen, type GunicornCommand, type UnitInfo } from './unit-info.js'

export interface ServiceSnapshot {
  unit: UnitInfo
  gunicorn: GunicornCommand
  workers: number[]
  expectedWorkers: number
  interpreter: Interpreter
  app: string
  envFile?: string
  currentRelease?: string
  /** Physical directory `current` points at. */
  currentDir?: string
  /** Physical working directory of the master (spared by pruning). */
  masterDir?: string
  releasesDir: string
}

export class PreflightError extends Error {
  constructor(cause: string, fix: string) {
    super(`${cause}\nFix: ${fix}`)
    this.name = 'PreflightError'
  }
}

const HUP_RE = /^(-HUP|-SIGHUP|-1|--signal=HUP|-sHUP)$/

/** Whether ExecReload sends HUP to the main PID (kill -HUP $MAINPID and its spellings). */
export function reloadSendsHup(execReload: string[]): boolean {
  if (execReload.length < 2 || !/(^|\/)kill$/.test(execReload[0])) return false
  const args = execReload
    .slice(1)
    .join(' ')
    .replace(/-s HUP|--signal HUP|-s SIGHUP/, '-HUP')
    .split(' ')
  return args.some(a => HUP_RE.test(a)) && args.some(a => a === '$MAINPID' || a === '${MAINPID}')
}

/** The reload traps of design.md, decided from the unit alone: a PreflightError or undefined. */
export function reloadTrap(
  unit: UnitInfo,
  gunicorn: GunicornCommand,
  releasePath: string,
  service: string
): PreflightError | undefined {
  const current = `${releasePath}/current`
  if (gunicorn.preload) {
    return new PreflightError(
      `${service} runs Gunicorn with ${gunicorn.preloadSource ?? '--preload'}: the master holds the app it loaded, so a reload (HUP) keeps serving the OLD code.`,
      'remove --preload (preload_app) from the unit or the Gunicorn config; a graceful reload can then deploy new code.'
    )
  }
  if (gunicorn.chdir === undefined && !configUnseen(gunicorn)) {
    if (unit.workingDirectory === current || unit.workingDirectory.startsWith(current + '/')) {
      return new PreflightError(
        `${service} has WorkingDirectory=${unit.workingDirectory} and no --chdir: Gunicorn remembers the RESOLVED release directory it started in, so after a reload new workers keep importing the OLD release (while answering 200).`,
        `add --chdir ${current} to ExecStart (and set WorkingDirectory=${releasePath}), then daemon-reload and restart once; see examples/server/myapp.service.`
      )
    }
  }
  if (gunicorn.chdir !== undefined && gunicorn.chdir !== current) {
    return new PreflightError(
      `${service} runs Gunicorn with --chdir ${gunicorn.chdir}, not ${current}: switching current would not change the code Gunicorn loads.`,
      `use --chdir ${current}.`
    )
  }
  return undefined
}

export async function preflight(
  remote: RemoteHost,
  opts: { service: string; layout: ReleaseLayout; envFile?: string; minFreeBytes: number; log: Log }
): Promise<ServiceSnapshot> {
  const { service, layout, log } = opts
  const unit = await readUnit(remote, service)
  if (unit.loadState !== 'loaded')
    throw new PreflightError(
      `unit ${service} is not loaded (LoadState=${unit.loadState || 'unknown'})`,
      `install ${service}.service and run systemctl daemon-reload.`
    )
  if (unit.activeState !== 'active' || unit.mainPid === 0) {
    throw new PreflightError(
      `unit ${service} is not running (ActiveState=${unit.activeState}/${unit.subState}, MainPID=${unit.mainPid})`,
      `start it (sudo systemctl start ${service}) or use mode: rollback to get a working release back.`
    )
  }
  if (!reloadSendsHup(unit.execReload)) {
    throw new PreflightError(
      `unit ${service} has ExecReload=${unit.execReload.join(' ') || '(none)'}: systemctl reload would not send HUP to Gunicorn`,
      'add ExecReload=/bin/kill -HUP $MAINPID to the [Service] section and run systemctl daemon-reload.'
    )
  }
  const gunicorn = await readGunicornOptions(remote, unit)
  if (gunicorn.launcher.kind === 'unknown') {
    throw new PreflightError(
      `unit ${service} ExecStart=${unit.execStart.join(' ')} does not start Gunicorn directly`,
      'start Gunicorn as <venv>/bin/gunicorn or <venv>/bin/python -m gunicorn in ExecStart.'
    )
  }
  const trap = reloadTrap(unit, gunicorn, layout.root, service)
  if (trap) throw trap
  if (gunicorn.configFile)
    log.info(
      configUnseen(gunicorn)
        ? `Gunicorn reads ${gunicorn.configFile}, which could not be read or sets chdir/preload_app by computation: verification after the reload catches stale code`
        : `Gunicorn reads ${gunicorn.configFile}: its literal settings were taken into account`
    )

  // The remaining reads are independent: run them at once over the one connection.
  const [workers, nginx, writable, df, interpreter, current, masterDirs, releasesDir, upstreams] =
    await Promise.all([
      listWorkers(remote, unit.mainPid),
      remote.exec(toShell(['sudo', '-n', 'nginx', '-t'])),
      remote.exec(
        allOf(
          ['test', '-d', layout.releasesDir],
          ['test', '-w', layout.releasesDir],
          ['test', '-d', layout.sharedDir]
        )
      ),
      runStep(remote, 'check free disk', toShell(['df', '-Pk', layout.root])),
      findInterpreter(remote, gunicorn),
      readCurrentRelease(remote, layout).then(async id => ({
        id,
        dir: id ? await realPath(remote, layout.current) : undefined
      })),
      workingDirectories(remote, [unit.mainPid]),
      realPath(remote, layout.releasesDir).catch(() => layout.releasesDir),
      readNginxUpstreams(remote)
    ])
  if (workers.length < 2) {
    throw new PreflightError(
      `Gunicorn master ${unit.mainPid} has ${workers.length} worker(s): a reload with fewer than 2 workers is not reliably zero-downtime`,
      'run Gunicorn with --workers 2 or more.'
    )
  }
  if (nginx.code !== 0) {
    throw new PreflightError(
      `nginx -t failed:\n${tailLines(nginx.stderr, 8)}`,
      'fix the Nginx configuration (or allow the deploy user `sudo nginx -t`).'
    )
  }
  const binds = gunicorn.binds.map(bindAsUpstream)
  if (upstreams.length > 0 && binds.length > 0 && !binds.some(b => upstreams.includes(b))) {
    throw new PreflightError(
      `Nginx proxies to ${upstreams.join(', ')} but Gunicorn binds ${binds.join(', ')}: the reload would not be what Nginx serves`,
      'make proxy_pass and --bind name the same socket or port (see examples/server/nginx-myapp.conf), then nginx -t and reload Nginx.'
    )
  }
  if (writable.code !== 0) {
    throw new PreflightError(
      `${layout.releasesDir} (or ${layout.sharedDir}) is missing or not writable by ${remote.target.user}`,
      `mkdir -p ${layout.releasesDir} ${layout.sharedDir} && chown ${remote.target.user} ${layout.releasesDir} ${layout.sharedDir} (examples/server/provision.sh does this).`
    )
  }
  const freeKb = Number(df.stdout.trim().split('\n').pop()?.split(/\s+/)[3] ?? 0)
  if (freeKb * 1024 < opts.minFreeBytes) {
    throw new PreflightError(
      `only ${Math.round(freeKb / 1024)} MiB free under ${layout.releasesDir}; the release needs about ${Math.ceil(opts.minFreeBytes / 1048576)} MiB`,
      'free disk space or lower keep-releases.'
    )
  }
  const currentRelease = current.id
  const currentDir = current.dir
  const masterDir = masterDirs.get(unit.mainPid)
  const envFile = opts.envFile ?? unit.environmentFiles[0]
  log.info(
    `${service}: master ${unit.mainPid}, ${workers.length} workers, ${interpreter.python}${interpreter.venv ? ` (venv ${interpreter.venv})` : ''}, app ${gunicorn.app ?? 'wsgi:app'}; current release ${currentRelease ?? '(none)'}; ${Math.round(freeKb / 1024)} MiB free`
  )
  return {
    unit,
    gunicorn,
    workers,
    expectedWorkers: gunicorn.workers ?? workers.length,
    interpreter,
    app: gunicorn.app ?? 'wsgi:app',
    envFile,
    currentRelease,
    currentDir,
    masterDir,
    releasesDir
  }
}
