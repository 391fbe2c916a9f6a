// What the deploy user may do on the host, found out up front in one round
// trip (`sudo -n -l COMMAND` answers without running anything). A deploy needs
// only SSH, write access under release-path and `sudo systemctl reload|restart`;
// every other right is an optional proof. What is missing is named, with the
// exact sudoers line or group that would allow it.
import { helperOf, type AccessAnswer } from './helper-client.js'
import { RIGHTS, rightSpec, type Right } from './service-commands.js'
import type { RemoteHost } from '../transport/ssh-connection.js'

/** `unknown`: sudo permits it, but other rules may ask for a password; it is tried. */
export type Grant = 'yes' | 'no' | 'unknown'

export interface Access {
  user: string
  uid: number
  groups: string[]
  sudo: Map<Right, Grant>
  /** Paths that were asked about, and whether the deploy user can read them. */
  readable: Map<string, boolean>
  /** Absolute program paths on the host (for sudoers lines). */
  programs: Map<string, string>
  /**
   * The hidepid= option of /proc when it hides other users' processes from the deploy
   * user (hardened hosts): ps and /proc do not show the service's processes, sudo ps does.
   */
  hidepid?: string
}

/** Something a run could not prove, and what would let it. */
export interface NotVerified {
  what: string
  allow: string
}

const PROGRAMS = ['systemctl', 'nginx', 'pwdx', 'journalctl', 'ps']

/** Rules in a `sudo -l` listing that do not carry NOPASSWD (wrapped lines joined). */
export function passwordRules(listing: string): string[] {
  return listing
    .replace(/\n {8,}(?=\S)/g, ' ')
    .split('\n')
    .filter(l => /^\s+\(/.test(l) && !/NOPASSWD:/.test(l))
    .map(l => l.trim())
}

/** Whether `sudo -n -l` output grants a command without a password (literally, with a trailing *, or ALL). */
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
      if (!gProgram.endsWith(`/${program}`) && gProgram !== program) continue
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

/**
 * The grant for one command from `sudo -n -l CMD` (exit 0: sudo permits it) and the
 * full listing: permitted and no rule asks for a password is yes; permitted only by a
 * rule that asks for one is no (sudo -n cannot use it); both kinds of rule is unknown.
 */
export function grantOf(permitted: boolean, listing: string, command: string): Grant {
  if (!permitted) return 'no'
  if (passwordRules(listing).length === 0) return 'yes'
  return sudoAllows(listing, command) ? 'unknown' : 'no'
}

export function parseAccess(answer: AccessAnswer, unit: string): Access {
  const sudo = new Map<Right, Grant>()
  RIGHTS.forEach((spec, i) => {
    const probe = answer.sudo[i] ?? { rc: 1, out: '' }
    sudo.set(spec.right, grantOf(probe.rc === 0, answer.listing.out, spec.probe(unit).join(' ')))
  })
  const programs = new Map<string, string>()
  for (const [name, where] of Object.entries(answer.which)) if (where) programs.set(name, where)
  return {
    user: answer.user,
    uid: answer.uid,
    groups: answer.groups,
    sudo,
    readable: new Map(Object.entries(answer.readable)),
    programs,
    ...(answer.hidepid ? { hidepid: answer.hidepid } : {})
  }
}

/** One round trip: every right in RIGHTS, the readability of `paths`, groups and program paths. */
export async function probeAccess(
  remote: RemoteHost,
  unit: string,
  paths: string[]
): Promise<Access> {
  const answer = await helperOf(remote).access({
    sudo: RIGHTS.map(spec => spec.probe(unit)),
    readable: paths,
    which: PROGRAMS
  })
  return parseAccess(answer, unit)
}

/** Whether the right may be used (unknown is tried, and a refusal is reported then). */
export function may(access: Access, right: Right): boolean {
  return access.uid === 0 || access.sudo.get(right) !== 'no'
}

/** Whether the deploy user reads the system journal (root, or the systemd-journal/adm group). */
export function readsJournal(access: Access): boolean {
  return access.uid === 0 || access.groups.some(g => ['systemd-journal', 'adm'].includes(g))
}

/** The sudoers line that grants `rights` to the deploy user, with the host's program paths. */
export function sudoersLine(access: Access, unit: string, rights: Right[]): string {
  const commands = rights.map(r => {
    const text = rightSpec(r).grant(unit)
    const [program, ...rest] = text.split(' ')
    const where = access.programs.get(program) ?? `/usr/bin/${program}`
    return [where, ...rest].join(' ')
  })
  return `${access.user} ALL=(root) NOPASSWD: ${commands.join(', ')}`
}

/**
 * The drop-in file for the deploy user's rules: sudo silently skips files in
 * /etc/sudoers.d whose name contains a dot, so `myapp.service` becomes `myapp`.
 */
export function sudoersFile(user: string, unit: string): string {
  return `/etc/sudoers.d/${user}-${unit.replace(/\.service$/, '').replace(/\./g, '_')}`
}

/** The proof a missing right costs, and the line that would allow it. */
export function missingRight(access: Access, unit: string, right: Right): NotVerified {
  return {
    what: `${rightSpec(right).purpose}: the deploy user may not run sudo ${rightSpec(right).grant(unit).replace(' *', '')}`,
    allow: `add to sudoers (visudo -f ${sudoersFile(access.user, unit)}): ${sudoersLine(access, unit, [right])}`
  }
}
