// Every systemctl, journalctl, nginx and pwdx command the action runs, as argv
// builders, and the rights they need. Execution builds its commands here, and
// the access probe and check mode derive the exact sudoers lines from the same
// list, so the two cannot drift.
import type { Argv } from '../transport/shell-quote.js'

/** What the deploy user may be allowed to do; each optional one adds a proof. */
export type Right =
  | 'reload'
  | 'restart'
  | 'start'
  | 'stop'
  | 'daemon-reload'
  | 'nginx-test'
  | 'nginx-dump'
  | 'pwdx'
  | 'ps'

export const serviceCommands = {
  reload: (unit: string): Argv => ['systemctl', 'reload', unit],
  restart: (unit: string): Argv => ['systemctl', 'restart', unit],
  start: (unit: string): Argv => ['systemctl', 'start', unit],
  stop: (unit: string): Argv => ['systemctl', 'stop', unit],
  daemonReload: (): Argv => ['systemctl', 'daemon-reload'],
  nginxTest: (): Argv => ['nginx', '-t'],
  nginxDump: (): Argv => ['nginx', '-T'],
  pwdx: (pids: number[]): Argv => ['pwdx', ...pids.map(String)],
  /**
   * Every process as `pid ppid args`, no header, never truncated: the read of the process
   * tree as root, for hosts where /proc hides other users' processes (hidepid). Spelled
   * without `,` and `=`, which a sudoers rule would have to escape.
   */
  psTree: (): Argv => ['ps', '-ww', '-e', '-o', 'pid', '-o', 'ppid', '-o', 'args', '--no-headers'],
  /** Read-only: works without sudo when dbus is installed. */
  show: (unit: string, properties: string[]): Argv => [
    'systemctl',
    'show',
    unit,
    '--no-pager',
    ...properties.map(p => `--property=${p}`)
  ],
  /** The journal's position now (`-- cursor: ...`), for reading only what comes after it. */
  journalCursor: (unit: string): Argv => [
    'journalctl',
    '-u',
    unit,
    '--no-pager',
    '-n',
    '0',
    '--show-cursor'
  ],
  /** The unit's journal after a cursor, its last `lines` lines. */
  journalAfter: (unit: string, cursor: string, lines: number): Argv => [
    'journalctl',
    '-u',
    unit,
    '--no-pager',
    '--after-cursor',
    cursor,
    '-o',
    'short-iso',
    '-n',
    String(lines)
  ],
  /** The unit's journal since a time; readable through the systemd-journal or adm group. */
  journal: (unit: string, since: string, lines: number): Argv => [
    'journalctl',
    '-u',
    unit,
    '--no-pager',
    '--since',
    since,
    '-o',
    'short-iso',
    '-n',
    String(lines)
  ]
}

/** The command as root, never prompting (a missing right fails at once). */
export function asRoot(argv: Argv): Argv {
  return ['sudo', '-n', ...argv]
}

export interface RightSpec {
  right: Right
  /** The argv `sudo -n -l` is asked about (arguments as the action passes them). */
  probe: (unit: string) => Argv
  /** The sudoers pattern that grants it (program path filled in from the host). */
  grant: (unit: string) => string
  /** What the action does with it. */
  purpose: string
  /** Whether a deploy cannot work at all without it. */
  required: boolean
}

/** One table: probing, messages and check mode's sudoers lines all read it. */
export const RIGHTS: readonly RightSpec[] = [
  {
    right: 'reload',
    probe: u => serviceCommands.reload(u),
    grant: u => `systemctl reload ${u}`,
    purpose: 'the graceful reload (HUP)',
    required: true
  },
  {
    right: 'restart',
    probe: u => serviceCommands.restart(u),
    grant: u => `systemctl restart ${u}`,
    purpose: 'recovery when the Gunicorn master died',
    required: true
  },
  {
    right: 'start',
    probe: u => serviceCommands.start(u),
    grant: u => `systemctl start ${u}`,
    purpose: 'the first deploy, when the unit is not running',
    required: false
  },
  {
    right: 'stop',
    probe: u => serviceCommands.stop(u),
    grant: u => `systemctl stop ${u}`,
    purpose: 'leaving the unit stopped when a first deploy fails',
    required: false
  },
  {
    right: 'daemon-reload',
    probe: () => serviceCommands.daemonReload(),
    grant: () => 'systemctl daemon-reload',
    purpose: 'picking up a unit file changed on disk',
    required: false
  },
  {
    right: 'nginx-test',
    probe: () => serviceCommands.nginxTest(),
    grant: () => 'nginx -t',
    purpose: 'proving the Nginx configuration is valid (nginx -t)',
    required: false
  },
  {
    right: 'nginx-dump',
    probe: () => serviceCommands.nginxDump(),
    grant: () => 'nginx -T',
    purpose: 'reading the whole Nginx configuration, includes and all (nginx -T)',
    required: false
  },
  {
    right: 'pwdx',
    probe: () => serviceCommands.pwdx([1]),
    grant: () => 'pwdx *',
    purpose: "reading the workers' working directory (which release they run)",
    required: false
  },
  {
    right: 'ps',
    probe: () => serviceCommands.psTree(),
    grant: () => serviceCommands.psTree().join(' '),
    purpose:
      "seeing the Gunicorn master and its workers where /proc hides other users' processes (hidepid)",
    required: false
  }
]

export function rightSpec(right: Right): RightSpec {
  const spec = RIGHTS.find(r => r.right === right)
  if (!spec) throw new Error(`unknown right ${right}`)
  return spec
}
