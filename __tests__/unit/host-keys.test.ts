import { describe, expect, it } from '@jest/globals'
import { createHmac, randomBytes } from 'node:crypto'
import {
  acceptedKeyTypes,
  acceptsHostKey,
  parseKnownHosts,
  sha256Fingerprint,
  type HostKeyPolicy
} from '../../src/host-keys.js'

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
    expect(acceptedKeyTypes(policy, 'web1', 22)).toEqual([
      'ssh-rsa',
      'rsa-sha2-512',
      'rsa-sha2-256'
    ])
    expect(acceptedKeyTypes(policy, 'web2', 22)).toEqual([])
  })

  it('compares SHA256 fingerprints as ssh-keygen prints them', () => {
    const fp = sha256Fingerprint(KEY_A)
    expect(fp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/)
    const policy: HostKeyPolicy = { kind: 'fingerprint', fingerprints: [fp] }
    expect(acceptsHostKey(policy, 'any', 22, KEY_A)).toBe(true)
    expect(acceptsHostKey(policy, 'any', 22, KEY_B)).toBe(false)
  })

  it('refuses known_hosts markers instead of ignoring them', () => {
    expect(
      parseKnownHosts(`@cert-authority *.example.com ssh-ed25519 ${KEY_A.toString('base64')}`)
    ).toEqual({ badLine: 1 })
  })
})
