// A real SSH server on 127.0.0.1 (ssh2's Server) whose `exec` runs the command
// with /bin/sh on this machine, the way sshd does without a pty: in a session
// of its own, and never signalled when the client closes the channel. For
// tests of what a command leaves running after a timeout or a cancel.
import { spawn, type ChildProcess } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import ssh2 from 'ssh2'
import type { Target } from '../src/core/targets.js'
import { parseFingerprint } from '../src/transport/host-keys.js'
import { connect, type ConnectOptions, type RemoteHost } from '../src/transport/ssh-connection.js'
import { keyPair, type KeyPair } from './ssh-server.js'

export interface ShellSshServer {
  target: Target
  hostKey: KeyPair
  clientKey: KeyPair
  /** commands run, as the client sent them */
  commands: string[]
  close(): Promise<void>
}

export async function startShellSshServer(): Promise<ShellSshServer> {
  const hostKey = keyPair('ed25519')
  const clientKey = keyPair('ed25519')
  const allowed = Buffer.from(clientKey.blob, 'base64')
  const commands: string[] = []
  const clients = new Set<ssh2.Connection>()
  const children = new Set<ChildProcess>()
  const server = new ssh2.Server({ hostKeys: [hostKey.private] }, client => {
    clients.add(client)
    client.on('close', () => clients.delete(client))
    client.on('error', () => {
      /* a client that went away */
    })
    client.on('authentication', ctx => {
      if (ctx.method === 'publickey' && ctx.key.data.equals(allowed)) ctx.accept()
      else ctx.reject(['publickey'])
    })
    client.on('ready', () => {
      client.on('session', accept => {
        accept().on('exec', (acceptExec, _reject, info) => {
          commands.push(info.command)
          const stream = acceptExec()
          // detached: setsid(), as sshd does for a session without a pty
          const child = spawn('/bin/sh', ['-c', info.command], {
            detached: true,
            stdio: ['pipe', 'pipe', 'pipe']
          })
          children.add(child)
          child.stdout.on('data', (c: Buffer) => stream.write(c))
          child.stderr.on('data', (c: Buffer) => stream.stderr.write(c))
          stream.on('data', (c: Buffer) => child.stdin.write(c))
          stream.on('end', () => child.stdin.end())
          child.stdin.on('error', () => undefined)
          stream.on('error', () => undefined)
          child.on('close', code => {
            children.delete(child)
            try {
              stream.exit(code ?? 255)
              stream.end()
            } catch {
              // the client closed the channel first
            }
          })
        })
      })
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    target: { user: 'deploy', host: '127.0.0.1', port, label: `deploy@127.0.0.1:${port}` },
    hostKey,
    clientKey,
    commands,
    close: () =>
      new Promise<void>(resolve => {
        for (const child of children) {
          try {
            if (child.pid) process.kill(-child.pid, 'SIGKILL')
          } catch {
            // already gone
          }
        }
        for (const c of clients) c.end()
        server.close(() => resolve())
      })
  }
}

/** A connection to `server` with its key pinned, no retries; `extra` adds or overrides options. */
export function connectTo(
  server: ShellSshServer,
  extra: Partial<ConnectOptions> = {}
): Promise<RemoteHost> {
  return connect(server.target, {
    privateKey: server.clientKey.private,
    hostKeys: {
      kind: 'fingerprint',
      fingerprints: [parseFingerprint(server.hostKey.fingerprint)!]
    },
    timeoutSeconds: 5,
    retries: 0,
    log: () => undefined,
    ...extra
  })
}
