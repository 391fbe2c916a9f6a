// A RemoteHost whose channels are real TCP (or unix socket) connections made
// from this machine, with only SSH left out. Like an SSH channel, each one is
// handed out as a plain Duplex (not a net.Socket), so TLS runs over a generic
// stream exactly as it does over ssh2. `names` plays the server's /etc/hosts:
// a host name not in it cannot be resolved (no DNS lookups from tests).
import { isIP, connect, type Socket } from 'node:net'
import { Duplex } from 'node:stream'
import type { ChannelTarget, ExecResult, RemoteHost } from '../src/transport/ssh-connection.js'
import type { Target } from '../src/core/targets.js'

export class ChannelRemote implements RemoteHost {
  readonly target: Target = {
    user: 'deploy',
    host: 'server.test',
    port: 22,
    label: 'deploy@server.test:22'
  }
  /** Every channel asked for, in order. */
  readonly opened: ChannelTarget[] = []
  private readonly live = new Set<Socket>()

  constructor(private readonly names: Record<string, string> = {}) {}

  /** Channels whose connection is still open. */
  get openCount(): number {
    return this.live.size
  }

  exec(): Promise<ExecResult> {
    return Promise.reject(new Error('ChannelRemote runs no commands'))
  }

  openChannel(to: ChannelTarget): Promise<Duplex> {
    this.opened.push(to)
    let socket: Socket
    if (to.kind === 'unix') socket = connect(to.socket)
    else {
      const address = isIP(to.host) !== 0 ? to.host : this.names[to.host]
      if (address === undefined)
        return Promise.reject(new Error(`the server cannot resolve ${to.host}`))
      socket = connect(to.port, address)
    }
    this.live.add(socket)
    socket.once('close', () => this.live.delete(socket))
    return new Promise((resolve, reject) => {
      socket.once('error', reject)
      socket.once('connect', () => {
        socket.off('error', reject)
        resolve(asChannel(socket))
      })
    })
  }

  isConnected(): boolean {
    return true
  }

  close(): Promise<void> {
    for (const socket of this.live) socket.destroy()
    return Promise.resolve()
  }
}

function asChannel(socket: Socket): Duplex {
  const channel = new Duplex({
    read() {
      socket.resume()
    },
    write(chunk, encoding, callback) {
      socket.write(chunk, encoding, callback)
    },
    final(callback) {
      socket.end()
      callback()
    },
    destroy(error, callback) {
      socket.destroy()
      callback(error)
    }
  })
  socket.on('data', chunk => {
    if (!channel.push(chunk)) socket.pause()
  })
  socket.on('end', () => channel.push(null))
  socket.on('error', error => channel.destroy(error))
  socket.on('close', () => channel.destroy())
  return channel
}
