// Reads the Nginx configuration of a host: `sudo -n nginx -T` when the deploy
// user may run it (every file Nginx reads, in one round trip), otherwise the
// files themselves as the deploy user, one round trip per level of includes.
// What cannot be read is reported, never fatal: the caller decides.
import { isGlob, resolveIncludes, splitNginxDump, type NginxSources } from './nginx-syntax.js'
import { helperOf, type GlobEntry } from '../helper-client.js'
import { asRoot, serviceCommands } from '../service-commands.js'
import { toShell } from '../../transport/shell-quote.js'
import type { ExecResult, RemoteHost } from '../../transport/ssh-connection.js'

export interface ReadNginxOptions {
  /** The deploy user may run `sudo -n nginx -T`. */
  sudoDump: boolean
  /** The main configuration file; otherwise `--conf-path=` of `nginx -V`, else /etc/nginx/nginx.conf. */
  confPath?: string
  /** The nginx program for `nginx -V` (found on PATH plus the sbin directories when not given). */
  nginxProgram?: string
  /** Python on the host, for the file reader. */
  python?: string
  timeoutMs?: number
}

export interface NginxRead extends NginxSources {
  files: Map<string, string>
  globs: Map<string, string[]>
  unreadable: Map<string, string>
  /** Every file Nginx reads was read (syntax is analyseNginx's business). */
  complete: boolean
  /** What went wrong while reading, one line each (a failed `nginx -T` before the files). */
  problems: string[]
  via: 'nginx -T' | 'files'
}

export const DEFAULT_CONF_PATH = '/etc/nginx/nginx.conf'
const SBIN_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
const MAX_LEVELS = 16

function tail(result: ExecResult): string {
  const text = (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' | ')
  const status = result.timedOut ? 'timed out' : `exit ${result.code ?? 'none'}`
  return text ? `${status}: ${text}` : status
}

/** Whether the files hold everything the includes name. */
function finish(read: Omit<NginxRead, 'complete'>): NginxRead {
  const tree = resolveIncludes(read)
  const missing = [
    ...tree.unresolvedIncludes.map(p => `include ${p} was not read`),
    ...tree.unreadable.map(u => `could not read ${u}`)
  ]
  return { ...read, complete: missing.length === 0, problems: [...read.problems, ...missing] }
}

/** What a whole Nginx configuration may take (a command's output is cut past its limit). */
const CONFIG_OUTPUT_BYTES = 64 << 20

/** `sudo -n nginx -T`, split into files; undefined (and a problem noted) when it did not work. */
async function readDump(
  remote: RemoteHost,
  opts: ReadNginxOptions,
  problems: string[]
): Promise<NginxRead | undefined> {
  const dump = await remote.exec(toShell(asRoot(serviceCommands.nginxDump())), {
    timeoutMs: opts.timeoutMs ?? 30_000,
    maxOutputBytes: CONFIG_OUTPUT_BYTES
  })
  const split = splitNginxDump(dump.code === 0 ? dump.stdout : '')
  if (split.mainPath === undefined) {
    const why = dump.code === 0 ? 'printed no configuration file' : tail(dump)
    problems.push(`sudo -n nginx -T ${why}; reading the files instead`)
    return undefined
  }
  return finish({
    mainPath: split.mainPath,
    files: split.files,
    globs: new Map(),
    unreadable: new Map(),
    exhaustive: true,
    problems: [],
    via: 'nginx -T'
  })
}

/** The main configuration path Nginx was built with (`nginx -V` needs no root). */
export function confPathFromVersion(output: string): string | undefined {
  const conf = /--conf-path=(\S+)/.exec(output)?.[1]
  if (conf === undefined || conf.startsWith('/')) return conf
  const prefix = /--prefix=(\S+)/.exec(output)?.[1] ?? '/usr/local/nginx'
  return `${prefix.replace(/\/$/, '')}/${conf}`
}

async function mainConfPath(remote: RemoteHost, opts: ReadNginxOptions): Promise<string> {
  if (opts.confPath !== undefined) return opts.confPath
  const version = await remote.exec(toShell(['env', SBIN_PATH, opts.nginxProgram ?? 'nginx', '-V']))
  return confPathFromVersion(`${version.stderr}\n${version.stdout}`) ?? DEFAULT_CONF_PATH
}

/** One round trip: each pattern expanded and its files read, merged into `read`. */
async function readLevel(
  remote: RemoteHost,
  opts: ReadNginxOptions,
  patterns: string[],
  read: Omit<NginxRead, 'complete'>
): Promise<boolean> {
  let answer: Record<string, GlobEntry[]>
  try {
    answer = await helperOf(remote).readGlobs(patterns, {
      python: opts.python,
      timeoutMs: opts.timeoutMs ?? 30_000
    })
  } catch (error) {
    read.problems.push(`reading ${patterns.join(' ')} failed: ${(error as Error).message}`)
    return false
  }
  for (const [pattern, entries] of Object.entries(answer)) {
    if (isGlob(pattern))
      read.globs.set(
        pattern,
        entries.map(e => e.path)
      )
    for (const entry of entries)
      if ('text' in entry) read.files.set(entry.path, entry.text)
      else read.unreadable.set(entry.path, entry.error)
  }
  return true
}

/** The files as the deploy user: the main file, then each level of includes. */
async function readFiles(
  remote: RemoteHost,
  opts: ReadNginxOptions,
  problems: string[]
): Promise<NginxRead> {
  const mainPath = await mainConfPath(remote, opts)
  const read: Omit<NginxRead, 'complete'> = {
    mainPath,
    files: new Map(),
    globs: new Map(),
    unreadable: new Map(),
    problems,
    via: 'files'
  }
  const asked = new Set<string>()
  let pending = [mainPath]
  for (let level = 0; level < MAX_LEVELS && pending.length > 0; level++) {
    pending.forEach(p => asked.add(p))
    if (!(await readLevel(remote, opts, pending, read))) break
    pending = resolveIncludes(read).unresolvedIncludes.filter(p => !asked.has(p))
  }
  return finish(read)
}

/** Reads the host's Nginx configuration, through `sudo -n nginx -T` when allowed. */
export async function readNginxConfig(
  remote: RemoteHost,
  opts: ReadNginxOptions
): Promise<NginxRead> {
  const problems: string[] = []
  if (opts.sudoDump) {
    const dump = await readDump(remote, opts, problems)
    if (dump) return dump
  }
  return readFiles(remote, opts, problems)
}
