// The companions: other systemd units that run the same release as the web
// process (a Celery worker and beat, an RQ worker), read once for preflight,
// `mode: check` and the cutover: the unit, where its code comes from (its
// working directory as configured, and as its main process has it), and
// whether the deploy user may restart (or reload) it.
import { grantOf, type Access, type Grant } from '../access.js'
import { probeDirs, type DirAccess } from '../process-dirs.js'
import { helperOf } from '../helper-client.js'
import { rightSpec } from '../service-commands.js'
import { readUnit } from '../service-state.js'
import type { UnitInfo } from '../gunicorn/unit-info.js'
import { toShell } from '../../transport/shell-quote.js'
import type { RemoteHost } from '../../transport/ssh-connection.js'

/** How a companion is moved: restarted, or reloaded where its unit defines ExecReload. */
export type CompanionAction = 'restart' | 'reload'

export interface CompanionFacts {
  unit: string
  info: UnitInfo
  /** How long systemd waits for it to stop and to start, in seconds (undefined: no limit). */
  stopSeconds?: number
  startSeconds?: number
  /**
   * Seconds after which systemd takes a start again once a crash loop used up the unit's
   * start limit (undefined: it has none); see startLimitWait.
   */
  startLimitWait?: number
  /** Where its code is taken from as configured: --workdir/--chdir in ExecStart, else WorkingDirectory. */
  configuredDir?: string
  /** The physical working directory of its main process (undefined: not running, or not readable). */
  mainDir?: string
  /** How its processes' directories are read: as the deploy user, through sudo pwdx, or not at all. */
  dirs: DirAccess
  action: CompanionAction
  /** Whether the deploy user may run `systemctl <action> <unit>` through sudo. */
  grant: Grant
}

/** systemd time spans as `systemctl show` prints them: `1min 30s`, `500ms`, `infinity`. */
export function parseTimespan(text: string): number | undefined {
  const value = text.trim()
  if (value === '' || value === 'infinity') return undefined
  const units: Record<string, number> = {
    us: 1e-6,
    ms: 1e-3,
    s: 1,
    min: 60,
    h: 3600,
    d: 86400
  }
  let total = 0
  for (const part of value.split(/\s+/)) {
    const m = /^(\d+(?:\.\d+)?)(us|ms|s|min|h|d)$/.exec(part)
    if (!m) return undefined
    total += Number(m[1]) * units[m[2]]
  }
  return total
}

/** `systemctl show --property=…` output as a map (a value may itself hold `=`). */
function showProperties(stdout: string): Map<string, string> {
  return new Map(
    stdout
      .split('\n')
      .filter(l => l.includes('='))
      .map(l => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const)
  )
}

/**
 * Seconds after which systemd takes a start of the unit again if a crash loop used up its
 * start limit (`StartLimitBurst` starts within `StartLimitIntervalUSec`): it refuses every
 * start meanwhile, ours too, and says only "failed" (Result keeps the last exit's reason);
 * undefined when the unit has no start limit.
 */
export function startLimitWait(show: string): number | undefined {
  const props = showProperties(show)
  const interval = parseTimespan(props.get('StartLimitIntervalUSec') ?? '')
  if (!(Number(props.get('StartLimitBurst')) > 0) || !interval) return undefined
  return Math.min(interval, 60) + 1
}

/** The directory a command line chdirs to: `--workdir X`, `--chdir X` (Celery, Gunicorn), `=` forms too. */
export function commandDir(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(?:workdir|chdir)(?:=(.+))?$/.exec(argv[i])
    if (m) return m[1] ?? argv[i + 1]
  }
  return undefined
}

/** What the companion's own configuration says its code is: the command's directory, else WorkingDirectory. */
export function configuredDir(info: UnitInfo): string | undefined {
  return commandDir(info.execStart) ?? (info.workingDirectory || undefined)
}

const EXTRA_PROPERTIES = [
  'TimeoutStopUSec',
  'TimeoutStartUSec',
  'StartLimitBurst',
  'StartLimitIntervalUSec'
]

/** The grant of `sudo systemctl <action> <unit>` for each companion, in one round trip. */
async function probeGrants(
  remote: RemoteHost,
  asks: { unit: string; action: CompanionAction }[]
): Promise<Grant[]> {
  if (asks.length === 0) return []
  const request = {
    sudo: asks.map(a => rightSpec(a.action).probe(a.unit)),
    readable: [],
    which: []
  }
  // which companions the deploy user may restart
  const answer = await helperOf(remote).access(request)
  if (answer.uid === 0) return asks.map(() => 'yes')
  return asks.map((a, i) =>
    grantOf(
      answer.sudo[i]?.rc === 0,
      answer.listing.out,
      rightSpec(a.action).probe(a.unit).join(' ')
    )
  )
}

/** One companion's unit, timeouts and directories. */
async function readCompanion(
  remote: RemoteHost,
  unit: string,
  access: Access
): Promise<Omit<CompanionFacts, 'grant'>> {
  const [info, extra] = await Promise.all([
    readUnit(remote, unit),
    remote.exec(
      toShell([
        'systemctl',
        'show',
        unit,
        '--no-pager',
        ...EXTRA_PROPERTIES.map(p => `--property=${p}`)
      ])
    )
  ])
  const props = showProperties(extra.stdout)
  const running = info.activeState === 'active' && info.mainPid > 0
  const dirs = await probeDirs(remote, info, running ? info.mainPid : undefined, access)
  return {
    unit,
    info,
    stopSeconds: parseTimespan(props.get('TimeoutStopUSec') ?? ''),
    startSeconds: parseTimespan(props.get('TimeoutStartUSec') ?? ''),
    startLimitWait: startLimitWait(extra.stdout),
    configuredDir: configuredDir(info),
    mainDir: dirs.masterDir,
    dirs: dirs.via,
    action: info.execReload.length > 0 ? 'reload' : 'restart'
  }
}

/** Every companion, read side by side; the rights in one more round trip. */
export async function readCompanions(
  remote: RemoteHost,
  units: string[],
  access: Access
): Promise<CompanionFacts[]> {
  if (units.length === 0) return []
  const read = await Promise.all(units.map(u => readCompanion(remote, u, access)))
  const grants = await probeGrants(remote, read)
  return read.map((c, i) => ({ ...c, grant: grants[i] }))
}
