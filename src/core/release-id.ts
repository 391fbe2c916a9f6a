// What a release is called, and the metadata file the action writes into it.
import type { RunStamp } from './run-stamp.js'

const RELEASE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/

export const RELEASE_ID_RULE =
  'must be 1-100 characters of letters, digits, . _ -, starting with a letter or digit'

export function isReleaseId(value: string): boolean {
  return RELEASE_ID_RE.test(value) && value !== '.' && value !== '..'
}

/** `20261125T031500Z-abc1234`: sortable UTC time plus short commit sha. */
export function defaultReleaseId(now: Date, sha: string): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')
  const short = /^[0-9a-f]{7,40}$/i.test(sha) ? sha.slice(0, 7).toLowerCase() : 'local'
  return `${stamp}-${short}`
}

/** Written into every release by the action: its id and who made it. */
export const METADATA_FILE = '.zdd-release.json'

export interface ReleaseMetadata extends RunStamp {
  id: string
}
