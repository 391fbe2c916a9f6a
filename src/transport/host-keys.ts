// Host key pinning: which server keys a target may present. Nothing runs on a
// host whose key does not match (ssh2 asks `accepts` before authenticating).
// A pin also says which key types to negotiate: the client's host key
// algorithm list decides which of the server's keys it presents, so a pinned
// key of another type than the first one both sides support would never be seen.
import { createHash, createHmac } from 'node:crypto'

export type HostKeyPolicy =
  | { kind: 'known-hosts'; entries: KnownHostEntry[] }
  | { kind: 'fingerprint'; fingerprints: PinnedFingerprint[] }
  | { kind: 'insecure' }

export interface KnownHostEntry {
  patterns: string
  keyType: string
  /** base64 of the key blob, exactly as in known_hosts */
  key: string
}

export interface PinnedFingerprint {
  /** `SHA256:` plus base64 without padding */
  sha256: string
  /** key types (as in the key blob) this fingerprint may belong to; undefined: any */
  keyTypes?: string[]
}

/**
 * The host key types ssh2 can verify, most preferred first: the order in
 * which they are tried when a pin does not name its type.
 */
export const HOST_KEY_TYPES: readonly string[] = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
  'ssh-dss'
]

/** The names a key type goes by in `ssh-keygen -l` output and in known_hosts. */
const TYPE_NAMES: Record<string, string[]> = {
  ed25519: ['ssh-ed25519'],
  'ssh-ed25519': ['ssh-ed25519'],
  ecdsa: ['ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  rsa: ['ssh-rsa'],
  'ssh-rsa': ['ssh-rsa'],
  dsa: ['ssh-dss'],
  'ssh-dss': ['ssh-dss']
}

const KEY_TYPE_RE = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+)$/
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/
const SHA256_RE = /^SHA256:[A-Za-z0-9+/]{43}=?$/

export const FINGERPRINT_RULE =
  'each fingerprint must be SHA256:<43 base64 characters>, optionally with its key type as `ssh-keygen -lf` prints it (`256 SHA256:... host (ED25519)`) or before it (`ED25519 SHA256:...`, `ssh-ed25519 SHA256:...`); types: ED25519, ECDSA, RSA, DSA'

/**
 * Reads one pinned fingerprint: `SHA256:…`, `TYPE SHA256:…`, or a line of
 * `ssh-keygen -l` output (`BITS SHA256:… COMMENT (TYPE)`). undefined when malformed.
 */
export function parseFingerprint(text: string): PinnedFingerprint | undefined {
  const words = text.trim().split(/\s+/)
  const typed = (type: string, sha256: string, bits?: string): PinnedFingerprint | undefined => {
    let keyTypes = TYPE_NAMES[type.toLowerCase()]
    if (!keyTypes || !SHA256_RE.test(sha256)) return undefined
    // `256 SHA256:… (ECDSA)` names the curve by its size.
    if (bits && type.toLowerCase() === 'ecdsa') {
      keyTypes = keyTypes.filter(t => t.endsWith(`nistp${bits}`))
      if (keyTypes.length === 0) return undefined
    }
    return { sha256: normalizeFingerprint(sha256), keyTypes }
  }
  if (words.length === 1)
    return SHA256_RE.test(words[0]) ? { sha256: normalizeFingerprint(words[0]) } : undefined
  if (words.length === 2) return typed(words[0], words[1])
  const last = /^\(([A-Za-z0-9-]+)\)$/.exec(words[words.length - 1])
  if (last && /^[0-9]+$/.test(words[0])) return typed(last[1], words[1], words[0])
  return undefined
}

/** The key type inside an SSH public key blob (its first length-prefixed string). */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown'
  const length = keyBlob.readUInt32BE(0)
  if (length > 64 || keyBlob.length < 4 + length) return 'unknown'
  return keyBlob.subarray(4, 4 + length).toString('latin1')
}

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

function preferred(types: Iterable<string>): string[] {
  const set = new Set(types)
  return HOST_KEY_TYPES.filter(t => set.has(t))
}

/**
 * The key types (as in key blobs) a pin allows `host` to present, most
 * preferred first; undefined when any key is accepted (insecure). Empty when
 * nothing is pinned for this host. Types ssh2 cannot verify are left out.
 */
export function pinnedKeyTypes(
  policy: HostKeyPolicy,
  host: string,
  port: number
): string[] | undefined {
  switch (policy.kind) {
    case 'insecure':
      return undefined
    case 'fingerprint':
      return policy.fingerprints.some(fp => !fp.keyTypes)
        ? [...HOST_KEY_TYPES]
        : preferred(policy.fingerprints.flatMap(fp => fp.keyTypes ?? []))
    case 'known-hosts':
      return preferred(
        policy.entries.filter(e => entryMatchesHost(e, host, port)).map(e => e.keyType)
      )
  }
}

/** The host key algorithms that negotiate keys of `keyTypes`, for ssh2's `serverHostKey` list. */
export function hostKeyAlgorithms(keyTypes: readonly string[]): string[] {
  // RSA keys are negotiated with the SHA-2 signature algorithms first.
  return keyTypes.flatMap(t =>
    t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t]
  )
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
      const type = keyTypeOf(keyBlob)
      return policy.fingerprints.some(
        fp => fp.sha256 === actual && (!fp.keyTypes || fp.keyTypes.includes(type))
      )
    }
    case 'known-hosts': {
      const actual = keyBlob.toString('base64')
      return policy.entries.some(e => e.key === actual && entryMatchesHost(e, host, port))
    }
  }
}
