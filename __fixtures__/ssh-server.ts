// A real SSH server on 127.0.0.1 (ssh2's Server) for connection tests: several
// host keys, one authorized client key, `exec` answering "ok", and optional
// TCP forwarding so that it can serve as a jump host. It counts handshakes and
// authentication requests, so a test can prove nothing authenticated.
import { connect as tcpConnect, type AddressInfo } from 'node:net'
import ssh2 from 'ssh2'
import { sha256Fingerprint } from '../src/transport/host-keys.js'
import type { Target } from '../src/core/targets.js'

export interface KeyPair {
  private: string
  public: string
  /** SHA256 fingerprint, as ssh-keygen -l prints it */
  fingerprint: string
  /** the base64 key blob, as in known_hosts */
  blob: string
}

/**
 * A new key pair. ssh2's generator writes about one ed25519 key in 256 with a 31-byte
 * public key (a leading zero byte dropped), which its own parser then refuses
 * ("Malformed OpenSSH private key"): such a pair is generated again.
 */
export function keyPair(
  type: 'ed25519' | 'ecdsa' | 'rsa',
  options: { passphrase?: string } = {}
): KeyPair {
  const encryption: ssh2.utils.KeyPairOptions = options.passphrase
    ? { passphrase: options.passphrase, cipher: 'aes256-ctr', rounds: 4 }
    : {}
  for (;;) {
    const pair =
      type === 'ecdsa'
        ? ssh2.utils.generateKeyPairSync('ecdsa', { bits: 256, ...encryption })
        : type === 'rsa'
          ? ssh2.utils.generateKeyPairSync('rsa', { bits: 2048, ...encryption })
          : ssh2.utils.generateKeyPairSync('ed25519', encryption)
    if (ssh2.utils.parseKey(pair.private, options.passphrase) instanceof Error) continue
    const blob = pair.public.trim().split(/\s+/)[1]
    return { ...pair, blob, fingerprint: sha256Fingerprint(Buffer.from(blob, 'base64')) }
  }
}

export interface TestSshServer {
  target(user?: string): Target
  /** TCP connections that reached the server (one per handshake) */
  handshakes: number
  /** authentication requests of any method, on any connection */
  authRequests: number
  /** commands run */
  commands: string[]
  close(): Promise<void>
}

export async function startSshServer(options: {
  hostKeys: KeyPair[]
  clientKey: KeyPair
  /** accept direct-tcpip channels (a jump host) */
  forwarding?: boolean
}): Promise<TestSshServer> {
  const allowed = Buffer.from(options.clientKey.blob, 'base64')
  const state = { handshakes: 0, authRequests: 0, commands: [] as string[] }
  const clients = new Set<ssh2.Connection>()
  const server = new ssh2.Server({ hostKeys: options.hostKeys.map(k => k.private) }, client => {
    clients.add(client)
    client.on('close', () => clients.delete(client))
    client.on('error', () => {
      /* a client that drops after refusing our host key */
    })
    client.on('authentication', ctx => {
      state.authRequests++
      if (ctx.method === 'publickey' && ctx.key.data.equals(allowed)) ctx.accept()
      else ctx.reject(['publickey'])
    })
    client.on('ready', () => {
      client.on('session', accept => {
        accept().on('exec', (acceptExec, _reject, info) => {
          state.commands.push(info.command)
          const stream = acceptExec()
          stream.write('ok\n')
          stream.exit(0)
          stream.end()
        })
      })
      client.on('tcpip', (accept, reject, info) => {
        if (!options.forwarding) return reject()
        const socket = tcpConnect(info.destPort, info.destIP)
        socket.on('connect', () => {
          const channel = accept()
          channel.pipe(socket).pipe(channel)
          channel.on('error', () => socket.destroy())
        })
        socket.on('error', () => reject())
      })
    })
  })
  server.on('connection', () => state.handshakes++)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    target: (user = 'deploy') => ({
      user,
      host: '127.0.0.1',
      port,
      label: `${user}@127.0.0.1:${port}`
    }),
    get handshakes() {
      return state.handshakes
    },
    get authRequests() {
      return state.authRequests
    },
    get commands() {
      return state.commands
    },
    close: () =>
      new Promise<void>(resolve => {
        for (const c of clients) c.end()
        server.close(() => resolve())
      })
  }
}
