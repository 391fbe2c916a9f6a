// Packs the local release directory into one gzip'd tar stream (uploaded over
// the SSH connection in one go), with the release metadata file added. What is
// left out follows gitignore rules: the defaults below, then the source's
// `.deployignore`, then the `exclude` input; a later `!pattern` re-includes.
import { METADATA_FILE, type ReleaseMetadata } from '../core/release-id.js'
import { getExecOutput } from '@actions/exec'
import ignore, { type Ignore } from 'ignore'
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'

export const DEPLOYIGNORE_FILE = '.deployignore'

/**
 * Credential files that well-known actions write into the workspace (where the
 * source usually is): google-github-actions/auth's `gha-creds-<hex>.json` (a
 * service account key or token source) and google-github-actions/
 * get-gke-credentials' `gha-kubeconfig-<hex>` (a cluster's credentials).
 * Others write theirs outside it: aws-actions/configure-aws-credentials in
 * ~/.aws, docker/login-action in ~/.docker, azure/login in ~/.azure,
 * actions/setup-node's .npmrc in RUNNER_TEMP, actions/setup-dotnet's
 * nuget.config next to the workspace.
 */
export const CREDENTIAL_EXCLUDES: readonly string[] = ['gha-creds-*.json', 'gha-kubeconfig-*']

/**
 * Left out unless `.deployignore` or `exclude` re-includes them with `!`:
 * what a checkout, a test step, Python itself or an authentication step
 * leaves in the workspace.
 */
export const DEFAULT_EXCLUDES: readonly string[] = [
  ...CREDENTIAL_EXCLUDES,
  '/node_modules/',
  '__pycache__/',
  '*.pyc',
  '.venv/',
  'venv/',
  '.tox/',
  '.pytest_cache/',
  '.mypy_cache/',
  `/${DEPLOYIGNORE_FILE}`
]

/**
 * Never uploaded, whatever the patterns say: `.git` can hold the checkout's
 * token (actions/checkout persists it in .git/config), and the metadata file
 * is written by the action.
 */
const ALWAYS_EXCLUDED: readonly string[] = ['.git', `/${METADATA_FILE}`]

export interface ArchiveOptions {
  /** gitignore patterns applied after the defaults and `.deployignore` (the `exclude` input). */
  exclude?: readonly string[]
}

export interface ArchiveStats {
  /** size of the .tar.gz */
  bytes: number
  /** files and symlinks in the archive, the metadata file included */
  files: number
  /** the top-most paths left out, relative to the source (directories end in `/`) */
  excluded: string[]
}

export function assertSourceDirectory(source: string): void {
  let isDir: boolean
  try {
    isDir = statSync(source).isDirectory()
  } catch {
    isDir = false
  }
  if (!isDir)
    throw new Error(
      `Input 'source' has value ${JSON.stringify(source)}: must be an existing directory`
    )
}

/** The exclusion rules for `source`, in the order they apply. */
export function exclusionRules(source: string, exclude: readonly string[] = []): Ignore {
  const rules = ignore({ ignorecase: false }).add(DEFAULT_EXCLUDES)
  const deployignore = path.join(source, DEPLOYIGNORE_FILE)
  if (existsSync(deployignore)) rules.add(readFileSync(deployignore, 'utf8'))
  return rules.add(exclude).add(ALWAYS_EXCLUDED)
}

/**
 * Walks `source` without following symlinks and returns what goes into the
 * archive (paths relative to `source`, parents before children) and what was
 * left out. An excluded directory is not entered, as in git.
 */
export function selectFiles(
  source: string,
  rules: Ignore
): { entries: { path: string; isDir: boolean }[]; excluded: string[] } {
  const entries: { path: string; isDir: boolean }[] = []
  const excluded: string[] = []
  const walk = (relDir: string) => {
    const dirents = readdirSync(path.join(source, relDir), { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0
    )
    for (const d of dirents) {
      const rel = relDir === '' ? d.name : `${relDir}/${d.name}`
      const isDir = d.isDirectory()
      const kept = isDir || d.isFile() || d.isSymbolicLink()
      if (!kept || rules.ignores(isDir ? `${rel}/` : rel)) {
        excluded.push(isDir ? `${rel}/` : rel)
        continue
      }
      entries.push({ path: rel, isDir })
      if (isDir) walk(rel)
    }
  }
  walk('')
  return { entries, excluded }
}

/** Packs `source` plus the metadata file into `outPath` (.tar.gz). */
export async function createArchive(
  source: string,
  metadata: ReleaseMetadata,
  outPath: string,
  options: ArchiveOptions = {}
): Promise<ArchiveStats> {
  const { entries, excluded } = selectFiles(source, exclusionRules(source, options.exclude))
  const files = entries.filter(e => !e.isDir).length
  if (files === 0)
    throw new Error(
      `packing ${source}: no file is left to upload after the exclusions (defaults, ${DEPLOYIGNORE_FILE}, input 'exclude')`
    )
  const workDir = mkdtempSync(path.join(tmpdir(), 'zdd-meta-'))
  writeFileSync(path.join(workDir, METADATA_FILE), JSON.stringify(metadata) + '\n')
  // NUL-separated and read verbatim: any file name is one name, never an option.
  const listFile = path.join(workDir, 'files')
  writeFileSync(listFile, ['.', ...entries.map(e => `./${e.path}`)].map(p => `${p}\0`).join(''))
  const args = [
    '-czf',
    outPath,
    // The service user must read the release whatever the local modes are
    // (a checkout or temp directory can be 0700); nothing becomes writable to others.
    '--mode=u+rwX,go+rX,go-w',
    '--no-recursion',
    '-C',
    source,
    '--null',
    '--verbatim-files-from',
    '-T',
    listFile,
    '-C',
    workDir,
    METADATA_FILE
  ]
  try {
    const result = await getExecOutput('tar', args, { silent: true, ignoreReturnCode: true })
    if (result.exitCode !== 0)
      throw new Error(
        `packing ${source} failed (tar exited ${result.exitCode}): ${result.stderr.trim()}`
      )
  } finally {
    rmSync(workDir, { recursive: true, force: true })
  }
  return { bytes: statSync(outPath).size, files: files + 1, excluded }
}

/** Size and file count, e.g. `42 files, 120 KiB packed`. */
export function archiveSize(stats: ArchiveStats): string {
  return `${stats.files} files, ${Math.max(1, Math.round(stats.bytes / 1024))} KiB packed`
}

/** The log line: size, file count and the first paths left out. */
export function describeArchive(stats: ArchiveStats): string {
  const shown = stats.excluded.slice(0, 10).join(', ')
  const more = stats.excluded.length > 10 ? ` and ${stats.excluded.length - 10} more` : ''
  return archiveSize(stats) + (stats.excluded.length ? `; left out: ${shown}${more}` : '')
}
