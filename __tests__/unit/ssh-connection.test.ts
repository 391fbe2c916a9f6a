// Host key type pinning and the jump host's own credentials, against real SSH
// servers (ssh2's Server) on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { parseFingerprint, type HostKeyPolicy } from '../../src/transport/host-keys.js'
import { inProcessGroup, toShell } from '../../src/transport/shell-quote.js'
import {
  connect,
  HostKeyMismatchError,
  type ConnectOptions,
  type SshCredentials
} from '../../src/transport/ssh-connection.js'
import {
  keyPair,
  startSshServer,
  type KeyPair,
  type TestSshServer
} from '../../__fixtures__/ssh-server.js'

function pins(...fingerprints: string[]): HostKeyPolicy {
  return {
    kind: 'fingerprint',
    fingerprints: fingerprints.map(f => {
      const parsed = parseFingerprint(f)
      if (!parsed) throw new Error(`bad fingerprint ${f}`)
      return parsed
    })
  }
}

function options(credentials: SshCredentials, extra: Partial<ConnectOptions> = {}): ConnectOptions {
  return { ...credentials, timeoutSeconds: 5, retries: 2, log: () => undefined, ...extra }
}

/** Counts what one connect() did on the server. */
async function attempt(server: TestSshServer, run: () => Promise<unknown>) {
  const before = { handshakes: server.handshakes, auth: server.authRequests }
  let error: unknown
  try {
    await run()
  } catch (e) {
    error = e
  }
  return {
    error,
    handshakes: server.handshakes - before.handshakes,
    authRequests: server.authRequests - before.auth
  }
}

describe('host key type pinning', () => {
  let client: KeyPair
  let ed25519: KeyPair
  let ecdsa: KeyPair
  let server: TestSshServer
  beforeAll(async () => {
    client = keyPair('ed25519')
    ed25519 = keyPair('ed25519')
    ecdsa = keyPair('ecdsa')
    server = await startSshServer({ hostKeys: [ecdsa, ed25519], clientKey: client })
  })
  afterAll(async () => {
    await server.close()
  })

  const connectWith = async (hostKeys: HostKeyPolicy) => {
    const remote = await connect(server.target(), options({ privateKey: client.private, hostKeys }))
    try {
      const result = await remote.exec(toShell(['true']))
      expect(result.stdout).toBe('ok\n')
    } finally {
      await remote.close()
    }
  }

  it.each([
    ['ED25519', () => ed25519],
    ['ECDSA', () => ecdsa],
    ['ssh-ed25519', () => ed25519],
    ['ecdsa-sha2-nistp256', () => ecdsa]
  ])('negotiates the %s key of a typed pin in one handshake', async (type, key) => {
    const run = await attempt(server, () => connectWith(pins(`${type} ${key().fingerprint}`)))
    expect(run.error).toBeUndefined()
    expect(run.handshakes).toBe(1)
  })

  it('accepts a pin in ssh-keygen -l form, type in parentheses', async () => {
    const run = await attempt(server, () =>
      connectWith(pins(`256 ${ecdsa.fingerprint} root@web1 (ECDSA)`))
    )
    expect(run.error).toBeUndefined()
    expect(run.handshakes).toBe(1)
  })

  it('finds an untyped pin of a key the server does not present first, one handshake per key type, authenticating only after the match', async () => {
    // ssh2 prefers ed25519: the ECDSA key is only seen on a second handshake.
    const run = await attempt(server, () => connectWith(pins(ecdsa.fingerprint)))
    expect(run.error).toBeUndefined()
    expect(run.handshakes).toBe(2)
    expect(run.authRequests).toBeGreaterThan(0)
  })

  it('connects on the first handshake when the untyped pin is the preferred key', async () => {
    const run = await attempt(server, () => connectWith(pins(ed25519.fingerprint)))
    expect(run.error).toBeUndefined()
    expect(run.handshakes).toBe(1)
  })

  it('refuses a host none of whose keys match, naming every key it presented, without authenticating or retrying', async () => {
    const stranger = keyPair('ed25519')
    const run = await attempt(server, () => connectWith(pins(stranger.fingerprint)))
    expect(run.error).toBeInstanceOf(HostKeyMismatchError)
    const message = (run.error as Error).message
    expect(message).toContain(`ssh-ed25519 ${ed25519.fingerprint}`)
    expect(message).toContain(`ecdsa-sha2-nistp256 ${ecdsa.fingerprint}`)
    expect(run.authRequests).toBe(0)
    // one handshake per key type the server has, plus the one that finds no type left
    expect(run.handshakes).toBe(3)
  })

  it('refuses a typed pin whose type the server does not have, without authenticating', async () => {
    const run = await attempt(server, () => connectWith(pins(`RSA ${ed25519.fingerprint}`)))
    expect(run.error).toBeInstanceOf(HostKeyMismatchError)
    expect((run.error as Error).message).toContain('offers no key of the pinned types (ssh-rsa)')
    expect(run.handshakes).toBe(1)
    expect(run.authRequests).toBe(0)
  })

  it('refuses a typed pin whose fingerprint belongs to a key of another type', async () => {
    const run = await attempt(server, () => connectWith(pins(`ED25519 ${ecdsa.fingerprint}`)))
    expect(run.error).toBeInstanceOf(HostKeyMismatchError)
    expect(run.authRequests).toBe(0)
  })

  it('finds the pinned key among several known_hosts types for the host', async () => {
    const stale = keyPair('ed25519')
    const name = `[127.0.0.1]:${server.target().port}`
    const hostKeys: HostKeyPolicy = {
      kind: 'known-hosts',
      entries: [
        { patterns: name, keyType: 'ssh-ed25519', key: stale.blob },
        { patterns: name, keyType: 'ecdsa-sha2-nistp256', key: ecdsa.blob }
      ]
    }
    const run = await attempt(server, () => connectWith(hostKeys))
    expect(run.error).toBeUndefined()
    expect(run.handshakes).toBe(2)
  })
})

describe('jump host with its own user, key, passphrase and pins', () => {
  let targetClient: KeyPair
  let jumpClient: KeyPair
  let targetKey: KeyPair
  let jumpKey: KeyPair
  let target: TestSshServer
  let jump: TestSshServer
  const passphrase = 'jump key passphrase'
  beforeAll(async () => {
    targetClient = keyPair('ed25519')
    jumpClient = keyPair('ed25519', { passphrase })
    targetKey = keyPair('ecdsa')
    jumpKey = keyPair('ed25519')
    target = await startSshServer({ hostKeys: [targetKey], clientKey: targetClient })
    jump = await startSshServer({ hostKeys: [jumpKey], clientKey: jumpClient, forwarding: true })
  })
  afterAll(async () => {
    await Promise.all([target.close(), jump.close()])
  })

  const targetCredentials = (): SshCredentials => ({
    privateKey: targetClient.private,
    hostKeys: pins(`ECDSA ${targetKey.fingerprint}`)
  })

  it('reaches the target through the jump host, each with its own key and pins', async () => {
    const remote = await connect(
      target.target(),
      options(targetCredentials(), {
        jumpHost: jump.target('bastion'),
        jumpCredentials: {
          privateKey: jumpClient.private,
          passphrase,
          hostKeys: pins(`ED25519 ${jumpKey.fingerprint}`)
        }
      })
    )
    try {
      expect((await remote.exec(toShell(['echo', 'hi']))).stdout).toBe('ok\n')
      expect(target.commands).toContain(inProcessGroup(toShell(['echo', 'hi'])))
    } finally {
      await remote.close()
    }
  })

  it("fails with the target's key on a jump host that authorizes only its own", async () => {
    const run = await attempt(jump, () =>
      connect(
        target.target(),
        options(targetCredentials(), {
          jumpHost: jump.target('bastion'),
          jumpCredentials: {
            privateKey: targetClient.private,
            hostKeys: pins(`ED25519 ${jumpKey.fingerprint}`)
          },
          retries: 0
        })
      )
    )
    expect(String(run.error)).toMatch(/authentication methods failed/i)
    expect(run.authRequests).toBeGreaterThan(0)
  })

  it('refuses a jump host whose key does not match its pins, before authenticating and before reaching the target', async () => {
    const targetHandshakes = target.handshakes
    const run = await attempt(jump, () =>
      connect(
        target.target(),
        options(targetCredentials(), {
          jumpHost: jump.target('bastion'),
          jumpCredentials: {
            privateKey: jumpClient.private,
            passphrase,
            // the target's pins do not cover the jump host
            hostKeys: targetCredentials().hostKeys
          }
        })
      )
    )
    expect(run.error).toBeInstanceOf(HostKeyMismatchError)
    expect((run.error as Error).message).toContain(`Host key of bastion@127.0.0.1:`)
    expect(run.authRequests).toBe(0)
    expect(target.handshakes).toBe(targetHandshakes)
  })
})
