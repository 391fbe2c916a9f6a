// Preflight: the whole table of host checks (host-checks.ts) before the deploy
// touches the host. Read-only. It stops only on blocking errors, all named in
// one message with their fixes; what it cannot read is a warning ("not
// verified", with the right that would allow it), or an error under `strict`.
import type { Access, NotVerified } from './access.js'
import type { EnvSources } from './env-sources.js'
import { firstDeploy, runChecks } from './host-checks.js'
import {
  gatherFacts,
  type BlueGreenFacts,
  type DirAccess,
  type FactOptions,
  type HostFacts
} from './host-facts.js'
import type { Finding } from '../core/host-result.js'
import type { Log } from '../core/log.js'
import type { UpstreamVerdict } from './nginx/nginx-config.js'
import { PreflightError } from './gunicorn/reload-traps.js'
import type { Interpreter } from './gunicorn/gunicorn-interpreter.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import type { GunicornCommand, UnitInfo } from './gunicorn/unit-info.js'
import type { ProcessView } from './gunicorn/gunicorn-processes.js'
import type { CompanionFacts } from './companions/companion-facts.js'

export { reloadSendsHup, reloadTrap } from './gunicorn/reload-traps.js'

export interface ServiceSnapshot {
  /** The unit that serves (under blue-green the live instance, e.g. myapp@blue). */
  service: string
  unit: UnitInfo
  gunicorn: GunicornCommand
  workers: number[]
  expectedWorkers: number
  /** How the deploy user sees the service's processes (hidden: verification relies on health). */
  processes: ProcessView
  /** Undefined when the unit's interpreter could not be found (import check and pip skipped). */
  interpreter?: Interpreter
  app: string
  /** The service's environment: Environment= and every EnvironmentFile, in order. */
  envSources: EnvSources
  /** Whether the deploy user can read every EnvironmentFile (the import check needs it). */
  envReadable: boolean
  currentRelease?: string
  /** `current` is a symlink, but not to a release: its target as written (see HostFacts). */
  currentOther?: string
  /** Physical directory `current` points at. */
  currentDir?: string
  /** Physical working directory of the master (spared by pruning). */
  masterDir?: string
  releasesDir: string
  /** The master is not running: the switch is followed by start/restart instead of a reload. */
  cold: boolean
  firstDeploy: boolean
  dirs: DirAccess
  access: Access
  notVerified: NotVerified[]
  /** What Nginx proxies to Gunicorn through (for the nginx URL and the static-file check). */
  nginx: UpstreamVerdict
  /** strategy: blue-green: the instances, slots and live.sock. */
  blueGreen?: BlueGreenFacts
  /** restart-services, as read. */
  companions: CompanionFacts[]
  /**
   * per-release: each release has its own venv (blue-green whose template runs its
   * slot's `.venv`); shared: every release runs the unit's venv.
   */
  venvs: 'per-release' | 'shared'
}

export interface PreflightOptions extends FactOptions {
  minFreeBytes: number
  strict: boolean
  log: Log
}

function describe(f: Finding): string {
  return `- ${f.check}: ${f.finding}${f.fix ? `\n  Fix: ${f.fix}` : ''}`
}

/** Logs what preflight found that is not an error, and returns what was not verified. */
function report(findings: Finding[], log: Log): NotVerified[] {
  const notVerified: NotVerified[] = []
  for (const f of findings) {
    if (f.severity === 'unverified') {
      notVerified.push({ what: `${f.check}: ${f.finding}`, allow: f.fix })
      log.warning(`not verified: ${f.check}: ${f.finding}\nTo allow it: ${f.fix}`)
    } else if (f.severity === 'warning') log.warning(`${f.check}: ${f.finding}\nFix: ${f.fix}`)
  }
  return notVerified
}

export async function preflight(
  remote: RemoteHost,
  opts: PreflightOptions
): Promise<ServiceSnapshot> {
  const { layout, log } = opts
  const facts = await gatherFacts(remote, opts)
  const { findings, blocking } = runChecks(facts, {
    releasePath: layout.root,
    requiredEnv: opts.requiredEnv,
    minFreeBytes: opts.minFreeBytes
  })
  const stops = opts.strict
    ? [...blocking, ...findings.filter(f => f.severity === 'unverified')]
    : blocking
  if (stops.length > 0) {
    const strictNote =
      opts.strict && stops.length > blocking.length
        ? '\n(strict: true makes every proof that cannot be obtained an error)'
        : ''
    throw new PreflightError(
      `preflight found ${stops.length} problem(s) on ${remote.target.label}; nothing was changed:\n${stops.map(describe).join('\n')}${strictNote}`
    )
  }
  const snapshot = snapshotOf(facts, report(findings, log))
  const i = snapshot.interpreter
  const bg = findings.find(f => f.check === 'blue-green' && f.severity === 'ok')
  if (bg) log.info(`blue-green: ${bg.finding}`)
  log.info(
    `${facts.service}: ${facts.masterAlive ? `master ${facts.unit.mainPid}, ${workersSeen(facts)}` : `not running (${facts.unit.activeState}/${facts.unit.subState})`}, ${i ? `${i.python}${i.venv ? ` (venv ${i.venv})` : ''}` : 'interpreter unknown'}, app ${snapshot.app}; current release ${facts.currentRelease ?? '(none)'}; ${Math.round(facts.freeKb / 1024)} MiB free`
  )
  return snapshot
}

/** The workers as the deploy user sees them, for the log. */
export function workersSeen(facts: Pick<HostFacts, 'processes' | 'workers'>): string {
  if (facts.processes === 'hidden') return 'its workers hidden from the deploy user'
  return `${facts.workers.length} workers${facts.processes === 'sudo' ? ' (seen through sudo ps)' : ''}`
}

/** The snapshot of a host's service as the later steps need it (no checks run here). */
export function snapshotOf(facts: HostFacts, notVerified: NotVerified[] = []): ServiceSnapshot {
  const g = facts.gunicorn
  return {
    service: facts.service,
    unit: facts.unit,
    gunicorn: g,
    workers: facts.workers,
    processes: facts.processes,
    expectedWorkers: g.workers ?? (facts.masterAlive ? facts.workers.length : 1),
    interpreter: 'error' in facts.interpreter ? undefined : facts.interpreter,
    app: g.app ?? 'wsgi:app',
    envSources: facts.envSources,
    envReadable: facts.env?.readable === true,
    currentRelease: facts.currentRelease,
    currentOther: facts.currentOther,
    currentDir: facts.currentDir,
    masterDir: facts.masterDir,
    releasesDir: facts.releasesDir,
    cold: !facts.masterAlive,
    firstDeploy: firstDeploy(facts),
    dirs: facts.dirs,
    access: facts.access,
    notVerified,
    nginx: facts.nginx,
    blueGreen: facts.blueGreen,
    companions: facts.companions,
    venvs: facts.blueGreen?.perReleaseVenvs ? 'per-release' : 'shared'
  }
}
