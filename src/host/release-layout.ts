// The `releases/<id>` + `current` layout on the server, and the remote
// commands that read and change it.
import * as path from 'node:path'
import type { Readable } from 'node:stream'
import { RemoteCommandError, runStep } from '../transport/remote-command.js'
import { METADATA_FILE } from '../core/release-id.js'
import { isReleaseId } from '../core/release-id.js'
import { allOf, toShell, type Argv } from '../transport/shell-quote.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import { unpackInto, type ReleaseAccess } from './release-permissions.js'

export class ReleaseLayout {
  constructor(readonly root: string) {}
  get releasesDir(): string {
    return `${this.root}/releases`
  }
  get current(): string {
    return `${this.root}/current`
  }
  get sharedDir(): string {
    return `${this.root}/shared`
  }
  get lockDir(): string {
    return `${this.root}/.deploy-lock`
  }
  get logFile(): string {
    return `${this.root}/.deploy-log.jsonl`
  }
  release(id: string): string {
    return `${this.releasesDir}/${id}`
  }
  /** Where one run uploads release `id` before it holds the lock (`token`: the run's own). */
  incoming(id: string, token: string): string {
    return `${this.releasesDir}/.incoming-${id}-${token}`
  }
}

/**
 * What `current` is: no symlink (none yet, or a plain directory), the symlink to release
 * `id`, or a symlink to somewhere else (a hand-made or adopted server: `current ->
 * /home/app/app`), which is not a release the action can go back to by id.
 */
export type CurrentLink =
  { kind: 'none' } | { kind: 'release'; id: string } | { kind: 'other'; target: string }

// $1 current, $2 releases/, $3 the directory holding current. Prints the link's text, the
// physical releases/, and the physical directory the link's target is in (a relative
// target is relative to the link's directory).
const READ_CURRENT = [
  't=$(readlink -- "$1") || exit 0',
  'printf "%s\\n" "$t"',
  'readlink -f -- "$2"',
  'case $t in /*) d=$(dirname -- "$t") ;; *) d="$3/$(dirname -- "$t")" ;; esac',
  'readlink -f -- "$d"'
].join('\n')

/** Reads the output of READ_CURRENT. */
export function parseCurrent(output: string): CurrentLink {
  const [target = '', releasesDir = '', parent = ''] = output.split('\n')
  if (target === '') return { kind: 'none' }
  const id = target.replace(/\/+$/, '').split('/').pop() ?? ''
  // by where it resolves, so a symlinked release-path or an absolute link counts too
  if (isReleaseId(id) && releasesDir !== '' && parent === releasesDir)
    return { kind: 'release', id }
  return { kind: 'other', target }
}

/**
 * `current` counts as release <id> only when its target is `<id>` in release-path's
 * releases/ (a relative `releases/<id>`, or any path that resolves to that directory).
 */
export async function readCurrent(remote: RemoteHost, layout: ReleaseLayout): Promise<CurrentLink> {
  const result = await remote.exec(
    toShell(['sh', '-c', READ_CURRENT, 'sh', layout.current, layout.releasesDir, layout.root])
  )
  return parseCurrent(result.stdout)
}

/** The release `current` points at, or undefined when there is none (or it is not a release). */
export async function readCurrentRelease(
  remote: RemoteHost,
  layout: ReleaseLayout
): Promise<string | undefined> {
  const current = await readCurrent(remote, layout)
  return current.kind === 'release' ? current.id : undefined
}

/**
 * Orders release ids oldest first from `find -printf '%T@ %P'` lines: the time
 * of a release's metadata file (written when it was packed) when it has one,
 * else the directory's own time (which later writes such as __pycache__ move).
 */
export function orderReleases(findOutput: string): string[] {
  const dirTime = new Map<string, number>()
  const packedTime = new Map<string, number>()
  for (const line of findOutput.split('\n')) {
    const m = /^([0-9.]+) ([^/]+)(\/\.zdd-release\.json)?$/.exec(line.trim())
    if (!m || !isReleaseId(m[2])) continue
    ;(m[3] ? packedTime : dirTime).set(m[2], Number(m[1]))
  }
  const time = (id: string) => packedTime.get(id) ?? dirTime.get(id) ?? 0
  return [...dirTime.keys()].sort((a, b) => time(a) - time(b) || a.localeCompare(b))
}

/** Release ids present under releases/, oldest first. */
export async function listReleases(remote: RemoteHost, layout: ReleaseLayout): Promise<string[]> {
  const result = await runStep(
    remote,
    'list releases',
    toShell([
      'find',
      layout.releasesDir,
      '-mindepth',
      '1',
      '-maxdepth',
      '2',
      '(',
      '-maxdepth',
      '1',
      '-type',
      'd',
      '-o',
      '-name',
      METADATA_FILE,
      ')',
      '-printf',
      '%T@ %P\\n'
    ])
  )
  return orderReleases(result.stdout)
}

/**
 * The upload has no fixed time limit (a large archive over a slow link takes what it
 * takes): it is stopped when the server takes no byte of it, and prints nothing, for this long.
 */
export const UPLOAD_STALL_MS = 60_000

/**
 * Unpacks the archive into this run's own hidden directory (`incoming`, which no
 * other run uses): it may run before the lock is held, since nothing else is written.
 * `access` says who may read the files (release-permissions.ts).
 */
export async function uploadRelease(
  remote: RemoteHost,
  incoming: string,
  archive: Readable,
  /** Who may read it (release-permissions.ts); default: everyone, as before. */
  access: ReleaseAccess = { mode: 'world', why: '', fix: '' }
): Promise<void> {
  const result = await remote.exec(allOf(...unpackInto(incoming, access)), {
    stdin: archive,
    timeoutMs: Infinity,
    idleTimeoutMs: UPLOAD_STALL_MS
  })
  if (result.stalled)
    throw new Error(
      `upload release on ${remote.target.label} stalled: the server took no data for ${UPLOAD_STALL_MS / 1000} s (a hung disk or connection), so it was stopped there`
    )
  if (result.code !== 0) throw new RemoteCommandError('upload release', result, remote.target.label)
}

/** releases/<id> exists already: nothing was placed, and nothing there may be removed. */
export class ReleaseExistsError extends Error {
  constructor(id: string, releasesDir: string) {
    super(`release ${id} already exists in ${releasesDir}; give this deploy another release-id`)
    this.name = 'ReleaseExistsError'
  }
}

/**
 * Renames the uploaded directory to releases/<id> (under the lock), only when no
 * releases/<id> exists: a release directory is either complete and this run's, or
 * not touched at all (ReleaseExistsError).
 */
export async function placeRelease(
  remote: RemoteHost,
  layout: ReleaseLayout,
  incoming: string,
  id: string
): Promise<void> {
  const target = layout.release(id)
  const result = await remote.exec(
    toShell([
      'sh',
      '-c',
      'if [ -e "$2" ] || [ -L "$2" ]; then exit 3; fi; exec mv -T "$1" "$2"',
      'sh',
      incoming,
      target
    ]),
    { timeoutMs: 30_000 }
  )
  if (result.code === 3) throw new ReleaseExistsError(id, layout.releasesDir)
  if (result.code !== 0)
    throw new RemoteCommandError('place the release', result, remote.target.label)
}

/**
 * Points `current` at the release: a new symlink renamed over the old one, so
 * there is never a moment without `current`.
 */
export async function switchCurrent(
  remote: RemoteHost,
  layout: ReleaseLayout,
  id: string,
  /** The link's text when it is not `releases/<id>` (back to a current that was not a release). */
  link = `releases/${id}`
): Promise<void> {
  await runStep(remote, 'switch current', allOf(...swapLink(link, layout.current)))
}

/** Points `link` at `target` in one rename (a reader sees the old link or the new one, never none). */
export function swapLink(target: string, link: string): Argv[] {
  const temp = `${path.posix.dirname(link)}/.${path.posix.basename(link)}.tmp`
  return [
    ['ln', '-sfn', target, temp],
    ['mv', '-Tf', temp, link]
  ]
}
