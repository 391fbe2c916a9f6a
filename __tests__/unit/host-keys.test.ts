import { describe, expect, it } from '@jest/globals'
import { createHmac, randomBytes } from 'node:crypto'
import {
  acceptsHostKey,
  hostKeyAlgorithms,
  HOST_KEY_TYPES,
  keyTypeOf,
  parseFingerprint,
  parseKnownHosts,
  pinnedKeyTypes,
  sha256Fingerprint,
  type HostKeyPolicy
} from '../../src/transport/host-keys.js'

const KEY_A = Buffer.from('0000000b7373682d6564323535313900000020' + 'aa'.repeat(32), 'hex')
const KEY_B = Buffer.from('0000000b7373682d6564323535313900000020' + 'bb'.repeat(32), 'hex')

function knownHosts(text: string): HostKeyPolicy {
  const parsed = parseKnownHosts(text)
  if ('badLine' in parsed) throw new Error(`bad line ${parsed.badLine}`)
  return { kind: 'known-hosts', entries: parsed.entries }
}

describe('host key pinning', () => {
  it('accepts the pinned key for the named host and nothing else', () => {
    const policy = knownHosts(`# comment\n10.0.0.5 ssh-ed25519 ${KEY_A.toString('base64')}\n`)
    expect(acceptsHostKey(policy, '10.0.0.5', 22, KEY_A)).toBe(true)
    expect(acceptsHostKey(policy, '10.0.0.5', 22, KEY_B)).toBe(false)
    expect(acceptsHostKey(policy, '10.0.0.6', 22, KEY_A)).toBe(false)
    expect(acceptsHostKey(policy, '10.0.0.5', 2222, KEY_A)).toBe(false)
  })

  it('matches [host]:port entries, wildcards, negation and hashed names', () => {
    const salt = randomBytes(20)
    const hash = createHmac('sha1', salt).update('[web3]:2222').digest('base64')
    const policy = knownHosts(
      [
        `[web1]:2222 ssh-ed25519 ${KEY_A.toString('base64')}`,
        `*.example.com,!bad.example.com ssh-ed25519 ${KEY_A.toString('base64')}`,
        `|1|${salt.toString('base64')}|${hash} ssh-ed25519 ${KEY_B.toString('base64')}`
      ].join('\n')
    )
    expect(acceptsHostKey(policy, 'web1', 2222, KEY_A)).toBe(true)
    expect(acceptsHostKey(policy, 'app.example.com', 22, KEY_A)).toBe(true)
    expect(acceptsHostKey(policy, 'bad.example.com', 22, KEY_A)).toBe(false)
    expect(acceptsHostKey(policy, 'web3', 2222, KEY_B)).toBe(true)
    expect(acceptsHostKey(policy, 'web3', 22, KEY_B)).toBe(false)
  })

  it('limits the negotiated host key types to the pinned ones', () => {
    const policy = knownHosts(`web1 ssh-rsa ${KEY_A.toString('base64')}`)
    expect(pinnedKeyTypes(policy, 'web1', 22)).toEqual(['ssh-rsa'])
    expect(hostKeyAlgorithms(['ssh-rsa'])).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'])
    expect(pinnedKeyTypes(policy, 'web2', 22)).toEqual([])
  })

  it('compares SHA256 fingerprints as ssh-keygen prints them', () => {
    const fp = sha256Fingerprint(KEY_A)
    expect(fp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/)
    const policy: HostKeyPolicy = { kind: 'fingerprint', fingerprints: [{ sha256: fp }] }
    expect(acceptsHostKey(policy, 'any', 22, KEY_A)).toBe(true)
    expect(acceptsHostKey(policy, 'any', 22, KEY_B)).toBe(false)
  })

  it('refuses known_hosts markers instead of ignoring them', () => {
    expect(
      parseKnownHosts(`@cert-authority *.example.com ssh-ed25519 ${KEY_A.toString('base64')}`)
    ).toEqual({ badLine: 1 })
  })
})

describe('pinned fingerprints with a key type', () => {
  const fp = sha256Fingerprint(KEY_A)

  it.each([
    [fp, undefined],
    [`${fp}=`, undefined],
    [`ED25519 ${fp}`, ['ssh-ed25519']],
    [`ssh-ed25519 ${fp}`, ['ssh-ed25519']],
    [`RSA ${fp}`, ['ssh-rsa']],
    [`ECDSA ${fp}`, ['ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521']],
    [`ecdsa-sha2-nistp384 ${fp}`, ['ecdsa-sha2-nistp384']],
    [`256 ${fp} root@web1 (ED25519)`, ['ssh-ed25519']],
    [`256 ${fp} web1,10.0.0.5 (ECDSA)`, ['ecdsa-sha2-nistp256']],
    [`3072 ${fp} no comment (RSA)`, ['ssh-rsa']]
  ])('reads %s', (text, keyTypes) => {
    expect(parseFingerprint(text)).toEqual({ sha256: fp, keyTypes })
  })

  it.each([
    'MD5:aa:bb',
    `ED448 ${fp}`,
    `${fp} ED25519`,
    `256 ${fp} host (ED25519-SK)`,
    `100 ${fp} host (ECDSA)`,
    'SHA256:short'
  ])('refuses %s', text => {
    expect(parseFingerprint(text)).toBeUndefined()
  })

  it('reads the key type inside a key blob', () => {
    expect(keyTypeOf(KEY_A)).toBe('ssh-ed25519')
    expect(keyTypeOf(Buffer.from([0, 0]))).toBe('unknown')
  })

  it('negotiates only the pinned type when every pin names one, every type when one does not', () => {
    const typed: HostKeyPolicy = {
      kind: 'fingerprint',
      fingerprints: [parseFingerprint(`RSA ${fp}`)!, parseFingerprint(`ED25519 ${fp}`)!]
    }
    expect(pinnedKeyTypes(typed, 'any', 22)).toEqual(['ssh-ed25519', 'ssh-rsa'])
    const mixed: HostKeyPolicy = {
      kind: 'fingerprint',
      fingerprints: [parseFingerprint(`RSA ${fp}`)!, parseFingerprint(fp)!]
    }
    expect(pinnedKeyTypes(mixed, 'any', 22)).toEqual([...HOST_KEY_TYPES])
    expect(pinnedKeyTypes({ kind: 'insecure' }, 'any', 22)).toBeUndefined()
  })

  it('accepts a typed pin only for a key of that type', () => {
    const asEd25519: HostKeyPolicy = {
      kind: 'fingerprint',
      fingerprints: [parseFingerprint(`ED25519 ${fp}`)!]
    }
    const asRsa: HostKeyPolicy = {
      kind: 'fingerprint',
      fingerprints: [parseFingerprint(`RSA ${fp}`)!]
    }
    expect(acceptsHostKey(asEd25519, 'any', 22, KEY_A)).toBe(true)
    expect(acceptsHostKey(asRsa, 'any', 22, KEY_A)).toBe(false)
  })
})
