// Packs the local release directory into one gzip'd tar stream (uploaded over
// the SSH connection in one go), with the release metadata file added.
import { getExecOutput } from '@actions/exec'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'

export const METADATA_FILE = '.zdd-release.json'

export interface ReleaseMetadata {
  id: string
  sha: string
  actor: string
  run: string
  time: string
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

/** Packs `source` plus the metadata file into `outPath` (.tar.gz). */
export async function createArchive(
  source: string,
  metadata: ReleaseMetadata,
  outPath: string
): Promise<void> {
  const metaDir = mkdtempSync(path.join(tmpdir(), 'zdd-meta-'))
  writeFileSync(path.join(metaDir, METADATA_FILE), JSON.stringify(metadata) + '\n')
  const args = [
    '-czf',
    outPath,
    // The service user must read the release whatever the local modes are
    // (a checkout or temp directory can be 0700); nothing becomes writable to others.
    '--mode=u+rwX,go+rX,go-w',
    '--exclude=./.git',
    '--exclude=./node_modules',
    '--exclude=__pycache__',
    `--exclude=./${METADATA_FILE}`,
    '-C',
    source,
    '.',
    '-C',
    metaDir,
    METADATA_FILE
  ]
  try {
    const result = await getExecOutput('tar', args, { silent: true, ignoreReturnCode: true })
    if (result.exitCode !== 0)
      throw new Error(
        `packing ${source} failed (tar exited ${result.exitCode}): ${result.stderr.trim()}`
      )
  } finally {
    rmSync(metaDir, { recursive: true, force: true })
  }
}
