// Host key pinning: which server keys a target may present. Nothing runs on a
// host whose key does not match (ssh2 asks `accepts` before authenticating).
import { createHash, createHmac } from 'node:crypto'

export type HostKeyPolicy =
  | { kind: 'known-hosts'; entries: KnownHostEntry[] }
  | { kind: 'fingerprint'; fingerprints: string[] }
  | { kind: 'insecure' }

export interface KnownHostEntry {
  patterns: string
  keyType: string
  /** base64 of the key blob, exactly as in known_hosts */
  key: string
}

const KEY_TYPE_RE = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+)$/
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/
export const FINGERPRINT_RE = /^SHA256:[A-Za-z0-9+/]{43}=?$/

/** Parses known_hosts text. Returns the entries, or the 1-based number of the first bad line. */
export function parseKnownHosts(text: string): { entries: KnownHostEntry[] } | { badLine: number } {
  const entries: KnownHostEntry[] = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim()
    if (line === '' || line.startsWith('#')) continue
    const fields = line.split(/\s+/)
    if (fields[0].startsWith('@')) {
      // @revoked / @cert-authority markers are not supported: refuse rather than ignore.
      return { badLine: i + 1 }
    }
    const [patterns, keyType, key] = fields
    if (!patterns || !keyType || !key || !KEY_TYPE_RE.test(keyType) || !BASE64_RE.test(key)) {
      return { badLine: i + 1 }
    }
    entries.push({ patterns, keyType, key })
  }
  return { entries }
}

function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.')
  return new RegExp(`^${body}$`, 'i')
}

/** The name ssh looks up in known_hosts: `host`, or `[host]:port` off port 22. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`
}

function hashedMatches(pattern: string, name: string): boolean {
  // |1|base64(salt)|base64(HMAC-SHA1(salt, name))
  const parts = pattern.split('|')
  if (parts.length !== 4 || parts[1] !== '1') return false
  const digest = createHmac('sha1', Buffer.from(parts[2], 'base64')).update(name).digest('base64')
  return digest === parts[3]
}

/** OpenSSH pattern-list semantics: any positive match and no negated match. */
export function entryMatchesHost(entry: KnownHostEntry, host: string, port: number): boolean {
  const name = knownHostsName(host, port)
  if (entry.patterns.startsWith('|')) return hashedMatches(entry.patterns, name)
  let matched = false
  for (const raw of entry.patterns.split(',')) {
    const negated = raw.startsWith('!')
    const pattern = negated ? raw.slice(1) : raw
    if (globToRegExp(pattern).test(name)) {
      if (negated) return false
      matched = true
    }
  }
  return matched
}

export function sha256Fingerprint(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')
}

function normalizeFingerprint(fp: string): string {
  return fp.replace(/=+$/, '')
}

/** The key types a target may offer, for ssh2's host key algorithm list (undefined: any). */
export function acceptedKeyTypes(
  policy: HostKeyPolicy,
  host: string,
  port: number
): string[] | undefined {
  if (policy.kind !== 'known-hosts') return undefined
  const types = new Set<string>()
  for (const e of policy.entries) if (entryMatchesHost(e, host, port)) types.add(e.keyType)
  // ssh-rsa keys are negotiated with the SHA-2 signature algorithms.
  if (types.has('ssh-rsa')) {
    types.add('rsa-sha2-512')
    types.add('rsa-sha2-256')
  }
  return [...types]
}

/** Decides whether `keyBlob` (raw SSH public key) is a key this target may present. */
export function acceptsHostKey(
  policy: HostKeyPolicy,
  host: string,
  port: number,
  keyBlob: Buffer
): boolean {
  switch (policy.kind) {
    case 'insecure':
      return true
    case 'fingerprint': {
      const actual = normalizeFingerprint(sha256Fingerprint(keyBlob))
      return policy.fingerprints.some(fp => normalizeFingerprint(fp) === actual)
    }
    case 'known-hosts': {
      const actual = keyBlob.toString('base64')
      return policy.entries.some(e => e.key === actual && entryMatchesHost(e, host, port))
    }
  }
}
