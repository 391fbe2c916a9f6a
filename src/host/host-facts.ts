// Everything the host checks look at, read once, side by side, over the one
// connection. Reads never refuse by themselves: what cannot be read is
// recorded as unknown, and the checks decide what that means.
import { may, probeAccess, type Access } from './access.js'
import { analyzeNginx, matchUpstream, type UpstreamVerdict } from './nginx/nginx-config.js'
import { readNginxConfig } from './nginx/nginx-read.js'
import { helperOf } from './helper-client.js'
import { envSourcesOf, type EnvCheck, type EnvSources } from './env-sources.js'
import { secretValues, secrets } from '../core/secrets.js'
import { findInterpreter, type Interpreter } from './gunicorn/gunicorn-interpreter.js'
import { parseShebang, SHEBANG_LINES } from './gunicorn/shebang.js'
import { readCurrent, type ReleaseLayout } from './release-layout.js'
import { asRoot, serviceCommands } from './service-commands.js'
import {
  readProcesses,
  type GunicornProcesses,
  type ProcessView
} from './gunicorn/gunicorn-processes.js'
import { readGunicornOptions, readUnit, realPath } from './service-state.js'
import { probeDirs, type DirAccess } from './process-dirs.js'
import { optional, toShell } from '../transport/shell-quote.js'
import { parseBind, type Bind } from './gunicorn/bind.js'
import type { ExecResult, RemoteHost } from '../transport/ssh-connection.js'
import {
  configUnseen,
  parseGunicornCommand,
  type GunicornCommand,
  type UnitInfo
} from './gunicorn/unit-info.js'
import type { Strategy } from '../core/strategy.js'
import { readCompanions, type CompanionFacts } from './companions/companion-facts.js'
import {
  instanceUnit,
  otherColour,
  readBlueGreen,
  runsSlotVenv,
  servingColour,
  type BlueGreenLayout,
  type Colour
} from './blue-green/instances.js'

/** What Nginx proxies to, against Gunicorn's bind ('match' carries the server blocks that do). */
export type NginxMatch = UpstreamVerdict

export interface HostFacts {
  service: string
  user: string
  layout: ReleaseLayout
  access: Access
  unit: UnitInfo
  gunicorn: GunicornCommand
  masterAlive: boolean
  /** The workers, as seen (none when `processes` is hidden). */
  workers: number[]
  /** How the deploy user sees the service's processes (hidden: /proc hides them, no sudo ps). */
  processes: ProcessView
  /** How the workers' working directories can be read. */
  dirs: DirAccess
  /** Physical working directory of the master, when readable. */
  masterDir?: string
  /** `nginx -t` when the deploy user may run it. */
  nginxTest?: ExecResult
  nginx: NginxMatch
  releasesWritable: boolean
  sharedExists: boolean
  currentIsLink: boolean
  /** `current` exists (as a symlink, or wrongly as a directory). */
  currentExists: boolean
  currentRelease?: string
  /** `current` is a symlink, but not to a release: its target as written (e.g. /home/app/app). */
  currentOther?: string
  /** Physical directory `current` points at (a release's, or currentOther's). */
  currentDir?: string
  /** `<release-path>/live.sock` is a symlink: the host is set up for blue-green. */
  liveLinkExists: boolean
  releasesDir: string
  freeKb: number
  interpreter: Interpreter | { error: string }
  /** Gunicorn's version as the unit's interpreter imports it, when it could be read. */
  gunicornVersion?: string
  /** The console script's #! interpreter, when Gunicorn is started through one. */
  shebang?: {
    python?: string
    /** A name looked up on PATH (`#!/usr/bin/env python3`), not a path. */
    lookedUp?: boolean
    importsGunicorn: boolean
  }
  /** The service's environment: Environment= and every EnvironmentFile (or the env-file input). */
  envSources: EnvSources
  env?: Partial<EnvCheck>
  nginxErrorLog: string
  /** strategy: blue-green: both instances, the links, and what the deploy user may do to the idle one. */
  blueGreen?: BlueGreenFacts
  /** restart-services: the other units that run the release. */
  companions: CompanionFacts[]
}

export interface BlueGreenFacts extends BlueGreenLayout {
  /** The instance `service` (and the rest of these facts) describe: the live one, else blue. */
  serving: Colour
  idleAccess: Access
  /**
   * The template runs the interpreter of its slot's release (`<slot>/.venv/bin/python`):
   * each release has its own environment. false: every release shares one venv.
   */
  perReleaseVenvs: boolean
}

/** The fact options a mode reads from the settings. */
export function factOptions(
  settings: Pick<FactOptions, 'service' | 'envFile' | 'nginxErrorLog'> & {
    strategy: Strategy
    restartServices: string[]
  },
  layout: ReleaseLayout,
  requiredEnv: string[]
): FactOptions {
  const { service, strategy, envFile, nginxErrorLog, restartServices } = settings
  return {
    service,
    strategy,
    layout,
    envFile,
    requiredEnv,
    nginxErrorLog,
    companions: restartServices
  }
}

export interface FactOptions {
  /** The unit; under blue-green the template's name (`myapp` for myapp@.service). */
  service: string
  strategy?: Strategy
  layout: ReleaseLayout
  envFile?: string
  requiredEnv: string[]
  nginxErrorLog: string
  /** restart-services (none when undefined). */
  companions?: string[]
}

/** Whether the master is up (a unit activating between crash-loop restarts is not). */
export function isRunning(unit: UnitInfo): boolean {
  return unit.activeState === 'active' && unit.mainPid > 0
}

async function nginxMatch(
  remote: RemoteHost,
  gunicorn: GunicornCommand,
  access: Access,
  /** What Nginx must proxy to, when not Gunicorn's own bind (blue-green: live.sock). */
  proxiedBind?: Bind
): Promise<NginxMatch> {
  // Gunicorn's binds are unknown when a config file it reads could not be read.
  if (!proxiedBind && gunicorn.binds.length === 0 && configUnseen(gunicorn))
    return {
      kind: 'unknown',
      reason: `Gunicorn's bind is set in ${gunicorn.configFile}, which could not be read`
    }
  try {
    const read = await readNginxConfig(remote, { sudoDump: may(access, 'nginx-dump') })
    return matchUpstream(analyzeNginx(read), proxiedBind ? [proxiedBind] : gunicorn.binds)
  } catch (error) {
    return {
      kind: 'unknown',
      reason: `the Nginx configuration could not be read: ${(error as Error).message}`
    }
  }
}

export { probeDirs, type DirAccess }

/** `gunicorn.__version__` under the unit's interpreter (cheap: no app is imported). */
async function gunicornVersion(remote: RemoteHost, python: string): Promise<string | undefined> {
  const result = await remote.exec(
    optional([python, '-c', 'import gunicorn; print(gunicorn.__version__)'])
  )
  const version = result.stdout.trim()
  return /^\d+(\.\d+)*/.test(version) ? version : undefined
}

/**
 * The console script's interpreter (its #! line, read by parseShebang) and whether it
 * imports Gunicorn. A name looked up on PATH (`#!/usr/bin/env python3`) is run with the
 * deploy user's PATH, which may not be the service's.
 */
export async function scriptShebang(
  remote: RemoteHost,
  g: GunicornCommand
): Promise<HostFacts['shebang']> {
  if (g.launcher.kind !== 'script' || !g.launcher.path.startsWith('/')) return undefined
  const head = await remote.exec(optional(['head', '-n', String(SHEBANG_LINES), g.launcher.path]))
  const shebang = parseShebang(head.stdout)
  if (!shebang) return { importsGunicorn: false }
  const runs = await remote.exec(toShell([shebang.interpreter, '-c', 'import gunicorn']))
  return {
    python: shebang.interpreter,
    lookedUp: shebang.lookedUp,
    importsGunicorn: runs.code === 0
  }
}

async function readEnv(
  remote: RemoteHost,
  sources: EnvSources,
  required: string[]
): Promise<Partial<EnvCheck> | undefined> {
  if (sources.files.length === 0 && sources.assignments.length === 0) return undefined
  return helperOf(remote).envCheck(sources, required)
}

/**
 * The service's environment, read on the host (what the deploy user can read of it), to
 * scrub its values from everything the action prints: added to the run's secrets here,
 * never kept in the facts.
 */
async function registerEnvSecrets(remote: RemoteHost, sources: EnvSources): Promise<void> {
  if (sources.files.length === 0 && sources.assignments.length === 0) return
  const env = await helperOf(remote)
    .envValues(sources)
    .catch(() => {
      // nothing could be read: Environment= is known from the unit itself
      const known: Record<string, string> = {}
      for (const a of sources.assignments)
        known[a.slice(0, a.indexOf('='))] = a.slice(a.indexOf('=') + 1)
      return known
    })
  secrets.add(secretValues(env))
}

/**
 * Everything the checks and the later steps read, in a few parallel round trips.
 * Under blue-green: the links and both instances first, then the serving
 * instance's facts, with Nginx expected to proxy to live.sock.
 */
export async function gatherFacts(remote: RemoteHost, opts: FactOptions): Promise<HostFacts> {
  if (opts.strategy !== 'blue-green') return gatherUnitFacts(remote, opts)
  const bg = await readBlueGreen(remote, opts.service, opts.layout)
  const serving = servingColour(bg)
  const [facts, idleAccess] = await Promise.all([
    gatherUnitFacts(
      remote,
      { ...opts, service: instanceUnit(opts.service, serving) },
      parseBind(`unix:${bg.liveLink}`)
    ),
    probeAccess(remote, instanceUnit(opts.service, otherColour(serving)), [])
  ])
  const perReleaseVenvs = runsSlotVenv(opts.layout, bg.instances[serving])
  return { ...facts, blueGreen: { ...bg, serving, idleAccess, perReleaseVenvs } }
}

/** release-path as the deploy user sees it: what is writable, the links, free space, current's release. */
async function readLayout(remote: RemoteHost, layout: ReleaseLayout) {
  const [df, current, releasesDir] = await Promise.all([
    remote.exec(
      optional([
        'sh',
        '-c',
        'test -d "$1" && test -w "$1" && echo releases-writable; test -d "$2" && echo shared-dir; test -L "$3" && echo current-link; test -e "$3" && echo current-exists; test -L "$5" && echo live-link; df -Pk "$4"',
        'sh',
        layout.releasesDir,
        layout.sharedDir,
        layout.current,
        layout.root,
        `${layout.root}/live.sock`
      ])
    ),
    readCurrent(remote, layout).then(async current => ({
      current,
      dir:
        current.kind === 'none'
          ? undefined
          : await realPath(remote, layout.current).catch(() => undefined)
    })),
    realPath(remote, layout.releasesDir).catch(() => layout.releasesDir)
  ])
  const lines = df.stdout.trim().split('\n')
  return {
    releasesWritable: lines.includes('releases-writable'),
    sharedExists: lines.includes('shared-dir'),
    currentIsLink: lines.includes('current-link'),
    currentExists: lines.includes('current-exists') || lines.includes('current-link'),
    liveLinkExists: lines.includes('live-link'),
    currentRelease: current.current.kind === 'release' ? current.current.id : undefined,
    currentOther: current.current.kind === 'other' ? current.current.target : undefined,
    currentDir: current.dir,
    releasesDir,
    freeKb: Number(lines[lines.length - 1]?.split(/\s+/)[3] ?? 0) || 0
  }
}

async function gatherUnitFacts(
  remote: RemoteHost,
  opts: FactOptions,
  proxiedBind?: Bind
): Promise<HostFacts> {
  const { layout, service } = opts
  const unit = await readUnit(remote, service)
  const envSources = envSourcesOf(unit, opts.envFile)
  // Queued first: the access probe and Gunicorn's options lead to the reads that need them.
  const accessRead = probeAccess(remote, service, [
    ...envSources.files.map(f => f.path),
    opts.nginxErrorLog
  ])
  const sideBySide = Promise.all([
    accessRead,
    readProcesses(
      remote,
      unit.mainPid,
      accessRead.then(a => ({
        hidepid: a.hidepid,
        sudoPs: may(a, 'ps'),
        ownUnit: unit.user !== '' && unit.user === remote.target.user
      }))
    ),
    readGunicornOptions(remote, unit)
  ])
  // The interpreter and a console script's #! line need only the launcher: when ExecStart
  // shows it, they are read now too, else from the running master's command line below.
  const launched = parseGunicornCommand(unit.execStart)
  const byLauncher = (g: GunicornCommand, running: GunicornProcesses | number | 'hidden') =>
    Promise.all([
      findInterpreter(remote, g, running).then(async found => ({
        found,
        version: 'error' in found ? undefined : await gunicornVersion(remote, found.python)
      })),
      scriptShebang(remote, g)
    ])
  const launcherEarly =
    launched.launcher.kind === 'unknown' ? undefined : byLauncher(launched, unit.mainPid)
  launcherEarly?.catch(() => undefined) // awaited below
  // Reads that need nothing else start now, beside the access probe and Gunicorn's options.
  const early = Promise.all([
    readLayout(remote, layout),
    readEnv(remote, envSources, opts.requiredEnv),
    registerEnvSecrets(remote, envSources)
  ])
  early.catch(() => undefined) // awaited below, after the reads it runs beside
  const [access, seen, fromUnit] = await sideBySide
  const procs = seen.processes
  // A hidden master is still MainPID to systemd (its directory is read with sudo pwdx).
  const hidden = seen.view === 'hidden' && unit.mainPid > 0
  // ExecStart that does not show Gunicorn's command line: read the running master's.
  const gunicorn =
    fromUnit.launcher.kind === 'unknown' && procs?.argv
      ? await readGunicornOptions(remote, unit, procs.argv)
      : fromUnit
  const masterAlive = isRunning(unit)
  const [[onDisk, env], dirs, nginxTest, nginx, [interpreter, shebang], companions] =
    await Promise.all([
      early,
      probeDirs(remote, unit, procs?.masterPid ?? (hidden ? unit.mainPid : undefined), access),
      may(access, 'nginx-test')
        ? remote.exec(toShell(asRoot(serviceCommands.nginxTest())))
        : Promise.resolve(undefined),
      nginxMatch(remote, gunicorn, access, proxiedBind),
      launcherEarly ?? byLauncher(gunicorn, procs ?? (hidden ? 'hidden' : unit.mainPid)),
      readCompanions(remote, opts.companions ?? [], access)
    ])
  return {
    service,
    user: remote.target.user,
    layout,
    access,
    unit,
    gunicorn,
    masterAlive,
    workers: procs?.workers ?? [],
    processes: seen.view,
    masterDir: dirs.masterDir,
    dirs: dirs.via,
    nginxTest,
    nginx,
    ...onDisk,
    interpreter: interpreter.found,
    gunicornVersion: interpreter.version,
    shebang,
    envSources,
    env,
    nginxErrorLog: opts.nginxErrorLog,
    companions
  }
}
