// Who may read a release. The release is the app's code and configuration, so it
// is not readable by every user of the host: its files belong to the deploy user
// and to the group the service runs as, which reads them (mode 640, directories
// 750), when the deploy user is a member of that group and can give files to it.
// Otherwise (the service's group is one the deploy user is not in, or a master
// running as root without Group=, whose workers Gunicorn's --user/--group may run
// as anyone) the release stays readable by everyone, as the service could not
// read it else, and the log
// says how to change that. What Nginx serves from the release itself (static
// files) is public anyway and stays readable by every user, since Nginx's worker
// may be neither the owner nor in the group.
import { toShell, type Argv } from '../transport/shell-quote.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import type { ServerBlock, UpstreamVerdict } from './nginx/nginx-config.js'

/** How a release's files are made readable to the service. */
export type ReleaseAccess =
  { mode: 'group'; group: string } | { mode: 'world'; why: string; fix: string }

/** What the host says about the service's user and group and the deploy user's groups. */
export interface AccessFacts {
  unitUser: string
  unitGroup: string
  /** The unit user's primary group ('' when unknown). */
  userGroup: string
  deployUser: string
  /** The deploy user's primary group. */
  deployGroup: string
  deployGroups: string[]
}

/** Decides the release's group from the facts (see the module comment). */
export function releaseAccess(f: AccessFacts): ReleaseAccess {
  // A master running as root may drop its workers to any user and group (Gunicorn's --user
  // and --group, as tutorials set them): only Group= says which group reads the code then.
  if (f.unitUser === '' || f.unitUser === 'root') {
    if (f.unitGroup && f.deployGroups.includes(f.unitGroup))
      return { mode: 'group', group: f.unitGroup }
    return {
      mode: 'world',
      why: `the service runs as root, and Gunicorn may run its workers as another user (--user, --group), so only "others" rights are sure to let them read it`,
      fix: `run the service as its own user (User=, Group=) and add ${f.deployUser} to that group`
    }
  }
  // the deploy user reads its own files: its own group will do
  if (f.unitUser === f.deployUser)
    return f.unitGroup && f.deployGroups.includes(f.unitGroup)
      ? { mode: 'group', group: f.unitGroup }
      : { mode: 'group', group: f.deployGroup }
  const group = f.unitGroup || f.userGroup
  if (group && f.deployGroups.includes(group)) return { mode: 'group', group }
  return {
    mode: 'world',
    why: group
      ? `${f.deployUser} is not in ${group}, the group ${f.unitUser} runs as, so only "others" rights let the service read it`
      : `the group ${f.unitUser} runs as is not known`,
    fix: group
      ? `usermod -aG ${group} ${f.deployUser} (then release files are readable by ${group} only)`
      : `set Group= in the unit and add ${f.deployUser} to that group`
  }
}

// $1: the unit. Prints User=, Group=, the user's primary group, the deploy user, its
// primary group and all its groups, one per line.
const READ_ACCESS = [
  'u=$(systemctl show -p User --value -- "$1" 2>/dev/null)',
  'g=$(systemctl show -p Group --value -- "$1" 2>/dev/null)',
  'p=$( [ -n "$u" ] && id -gn -- "$u" 2>/dev/null )',
  'printf "%s\\n%s\\n%s\\n" "$u" "$g" "$p"',
  'id -un; id -gn; id -Gn'
].join('\n')

/** Reads the facts for `unit` (under blue-green one of the template's instances). */
export async function readReleaseAccess(remote: RemoteHost, unit: string): Promise<ReleaseAccess> {
  const result = await remote.exec(toShell(['sh', '-c', READ_ACCESS, 'sh', unit]))
  const [
    unitUser = '',
    unitGroup = '',
    userGroup = '',
    deployUser = '',
    deployGroup = '',
    groups = ''
  ] = result.stdout.split('\n')
  if (result.code !== 0 || deployUser === '')
    return {
      mode: 'world',
      why: `the service's user and group could not be read (${result.stderr.trim() || `exit ${result.code}`})`,
      fix: 'check that systemctl show works for the deploy user'
    }
  return releaseAccess({
    unitUser,
    unitGroup,
    userGroup,
    deployUser,
    deployGroup,
    deployGroups: groups.split(/\s+/).filter(Boolean)
  })
}

/**
 * The commands that unpack a release into `dir` with these rights: under a group, the
 * directory belongs to it and passes it on (setgid) to everything unpacked, with umask
 * 027 (files 640, directories 750); else umask 022 (readable by everyone).
 */
export function unpackInto(dir: string, access: ReleaseAccess): Argv[] {
  // the umask applies, and the files are the deploy user's, also when it is root
  const tar = ['tar', '--no-same-permissions', '--no-same-owner', '-xzf', '-', '-C', dir]
  if (access.mode === 'world') return [['mkdir', '-p', dir], ['umask', '022'], tar]
  const owned = [
    ['chgrp', access.group, dir],
    ['chmod', '2750', dir]
  ]
  return [['mkdir', '-p', dir], ...owned, ['umask', '027'], tar]
}

/** The directory a path with Nginx variables in it serves at most: the part before the first. */
function fixedPart(path: string): string {
  const at = path.indexOf('$')
  return at < 0 ? path : path.slice(0, path.lastIndexOf('/', at) + 1)
}

/**
 * What Nginx serves itself from under `current` (roots and aliases of the server
 * blocks that proxy to Gunicorn, regular-expression locations included): the
 * subdirectories of a release, '' for the whole release. Undefined when the Nginx
 * configuration could not be read (anything may be served from it).
 */
export function servedByNginx(nginx: UpstreamVerdict, current: string): string[] | undefined {
  if (nginx.kind !== 'match') return nginx.kind === 'mismatch' ? [] : undefined
  const base = current.replace(/\/+$/, '')
  const dirs = new Set<string>()
  const add = (path: string) => {
    const dir = fixedPart(path).replace(/\/+$/, '')
    if (dir === base) dirs.add('')
    else if (dir.startsWith(`${base}/`)) dirs.add(dir.slice(base.length + 1))
  }
  for (const server of nginx.servers as ServerBlock[])
    for (const location of server.locations)
      if (location.files && !location.proxies) add(location.files.path)
  return [...dirs].sort()
}

/**
 * Makes what Nginx serves from the release readable by every user (its worker may be in
 * no group of the release): each such subtree, and the directories above it passable.
 * Everything, when the Nginx configuration could not be read. Returns what was opened.
 */
export async function openToNginx(
  remote: RemoteHost,
  releaseDir: string,
  served: string[] | undefined
): Promise<string[]> {
  const subdirs = served === undefined ? [''] : served
  if (subdirs.length === 0) return []
  if (subdirs.includes('')) {
    await remote.exec(toShell(['chmod', '-R', 'o+rX', releaseDir]))
    return ['']
  }
  const passable = new Set<string>([releaseDir])
  for (const sub of subdirs) {
    const parts = sub.split('/')
    for (let i = 1; i < parts.length; i++)
      passable.add(`${releaseDir}/${parts.slice(0, i).join('/')}`)
  }
  // what the release does not have is skipped
  await remote.exec(
    toShell([
      'sh',
      '-c',
      'x=1; for a; do if [ "$a" = -- ]; then x=; continue; fi; [ -e "$a" ] || continue; if [ -n "$x" ]; then chmod o+x -- "$a"; else chmod -R o+rX -- "$a"; fi; done',
      'sh',
      ...passable,
      '--',
      ...subdirs.map(s => `${releaseDir}/${s}`)
    ])
  )
  return subdirs
}
