// The one module that owns SSH. One connection per target (optionally through
// a jump host with its own key and pins), host key pinned before
// authentication, keepalive, bounded retries with backoff. Everything else
// talks to the `RemoteHost` interface.
import { Duplex, type Readable } from 'node:stream'
import { NodeSSH, type Config } from 'node-ssh'
import type { Client, ClientChannel } from 'ssh2'
import {
  acceptsHostKey,
  hostKeyAlgorithms,
  keyTypeOf,
  pinnedKeyTypes,
  sha256Fingerprint,
  type HostKeyPolicy
} from './host-keys.js'
import {
  inProcessGroup,
  killProcessGroup,
  PROCESS_GROUP_MARKER,
  toShell,
  type ShellLine
} from './shell-quote.js'
import type { Target } from '../core/targets.js'
import { OutputTail } from './output-tail.js'
import { CommandWatch, DEFAULT_COMMAND_TIMEOUT_MS, type StopReason } from './command-limits.js'

export interface ExecOptions {
  stdin?: string | Readable
  /**
   * Reports a timeout after this many milliseconds (default DEFAULT_COMMAND_TIMEOUT_MS;
   * Infinity: no absolute limit, for a command watched by `idleTimeoutMs`): the command's
   * process group is ended first, then the channel is closed.
   */
  timeoutMs?: number
  /**
   * Stops the command the same way when it neither took any of its stdin nor printed
   * anything for this long (the result then says `stalled`).
   */
  idleTimeoutMs?: number
  /** Stops the command the same way when aborted; the result then says `cancelled`. */
  signal?: AbortSignal
  /**
   * Runs the command in a process group of its own (the default), so that a timeout or
   * `signal` ends it on the host (TERM, then KILL after 1.5 s) over the same connection.
   * With false, only the channel closes, and sshd does not signal a command without a
   * pty: it runs on.
   */
  processGroup?: boolean
  onStdout?: (chunk: Buffer) => void
  /**
   * Bytes of stdout, and of stderr, kept (default DEFAULT_MAX_OUTPUT_BYTES): past it the
   * oldest output is cut, and the kept text begins with a line saying how much.
   */
  maxOutputBytes?: number
}

export interface ExecResult {
  /** null when the channel closed without an exit status (dropped connection, timeout, signal). */
  code: number | null
  signal: string | null
  stdout: string
  stderr: string
  /** Stopped by its time limit, or (with `stalled`) by `idleTimeoutMs` (code is then null). */
  timedOut: boolean
  stalled?: boolean
  /** Stopped because `signal` was aborted (code is then null). */
  cancelled?: boolean
}

export type ChannelTarget =
  { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; socket: string }

export interface RemoteHost {
  readonly target: Target
  exec(command: ShellLine, options?: ExecOptions): Promise<ExecResult>
  /** A byte stream to a TCP port or unix socket, opened from the server's side. */
  openChannel(to: ChannelTarget): Promise<Duplex>
  /** false once the connection dropped (commands then fail without running). */
  isConnected(): boolean
  close(): Promise<void>
}

/** How to authenticate to one host and which host keys it may present. */
/** The connection a host's run uses; a cleanup after a drop replaces `remote`. */
export interface Connection {
  remote: RemoteHost
  reconnect?: () => Promise<RemoteHost>
}

export interface SshCredentials {
  privateKey: string
  passphrase?: string
  hostKeys: HostKeyPolicy
}

export interface ConnectOptions extends SshCredentials {
  jumpHost?: Target
  /** the jump host's own key and pins; default: the target's */
  jumpCredentials?: SshCredentials
  timeoutSeconds: number
  retries: number
  /** The limit of a command whose call names none (default DEFAULT_COMMAND_TIMEOUT_MS). */
  commandTimeoutMs?: number
  log: (message: string) => void
}

export class HostKeyMismatchError extends Error {
  /**
   * `presented`: the keys the host showed (`type SHA256:…`), one handshake per
   * key type; none when it offers no key of a pinned type.
   */
  constructor(target: Target, presented: string[], pinnedTypes: readonly string[] = []) {
    super(
      presented.length > 0
        ? `Host key of ${target.label} (${presented.join(', ')}) does not match the pinned known-hosts/host-fingerprint: refusing to run anything there`
        : `Host key of ${target.label} does not match the pinned known-hosts/host-fingerprint: it offers no key of the pinned types (${pinnedTypes.join(', ')}); refusing to run anything there`
    )
    this.name = 'HostKeyMismatchError'
  }
}

export class HostKeyMissingError extends Error {
  constructor(target: Target) {
    super(`known-hosts has no entry for ${target.label}: refusing to connect`)
    this.name = 'HostKeyMissingError'
  }
}

/** SSH connections this process opened, per target label (a jump host counts for its target). */
export const connectionStats = { opened: 0, byTarget: new Map<string, number>() }

function countConnection(label: string): void {
  connectionStats.opened++
  connectionStats.byTarget.set(label, (connectionStats.byTarget.get(label) ?? 0) + 1)
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/**
 * Connects and authenticates to `target`, its host key checked first. When
 * the pins allow several key types, the host is asked for one type at a time
 * (the client's algorithm list decides which key a server presents): a key
 * that does not match rules its type out and the next handshake asks for the
 * remaining types, until one matches or none is left. Nothing authenticates
 * before a key matched.
 */
async function connectOnce(
  target: Target,
  credentials: SshCredentials,
  options: ConnectOptions,
  countFor: string,
  openSock?: () => Promise<Duplex>
): Promise<NodeSSH> {
  const pinned = pinnedKeyTypes(credentials.hostKeys, target.host, target.port)
  if (pinned !== undefined && pinned.length === 0) {
    throw new HostKeyMissingError(target)
  }
  let remaining = pinned
  const presented: string[] = []
  for (;;) {
    let rejected: string | undefined
    const sock = await openSock?.()
    const config: Config = {
      host: target.host,
      port: target.port,
      username: target.user,
      privateKey: credentials.privateKey,
      passphrase: credentials.passphrase,
      readyTimeout: options.timeoutSeconds * 1000,
      keepaliveInterval: 10_000,
      keepaliveCountMax: 3,
      sock: sock as Config['sock'],
      tryKeyboard: false,
      algorithms: remaining ? { serverHostKey: hostKeyAlgorithms(remaining) as never } : undefined,
      hostVerifier: (key: Buffer) => {
        const ok = acceptsHostKey(credentials.hostKeys, target.host, target.port, key)
        if (!ok) {
          rejected = keyTypeOf(key)
          presented.push(`${rejected} ${sha256Fingerprint(key)}`)
        }
        return ok
      }
    }
    const ssh = new NodeSSH()
    try {
      await ssh.connect(config)
    } catch (error) {
      sock?.destroy()
      const rejectedType = rejected
      if (rejectedType !== undefined) {
        // Ask again for the key types not yet seen; a type seen twice would loop.
        const next = (remaining ?? []).filter(t => t !== rejectedType)
        if (next.length > 0 && next.length < (remaining ?? []).length) {
          remaining = next
          continue
        }
        throw new HostKeyMismatchError(target, presented)
      }
      if (/no matching host key format/.test(String(error)))
        throw new HostKeyMismatchError(target, presented, pinned ?? [])
      throw error
    }
    countConnection(countFor)
    ssh.connection?.on('error', () => {
      /* reported through the failing exec */
    })
    return ssh
  }
}

async function withRetries<T>(
  what: string,
  options: ConnectOptions,
  attempt: () => Promise<T>
): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await attempt()
    } catch (error) {
      // A wrong host key or a refused key never gets better by retrying.
      const fatal =
        error instanceof HostKeyMismatchError ||
        error instanceof HostKeyMissingError ||
        /authentication methods failed|cannot parse privatekey|passphrase/i.test(String(error))
      if (fatal || i >= options.retries) throw error
      const delay = Math.min(1000 * 2 ** i, 15_000)
      options.log(
        `${what}: ${(error as Error).message}; retrying in ${delay / 1000}s (${i + 1}/${options.retries})`
      )
      await sleep(delay)
    }
  }
}

/**
 * A plain Duplex around a forwarded channel. ssh2's Channel overrides
 * destroy() without ever emitting 'close' for a half-closed channel, which
 * leaves HTTP clients waiting; this adapter closes the channel and itself.
 */
function asDuplex(channel: ClientChannel): Duplex {
  const duplex = new Duplex({
    read() {
      channel.resume()
    },
    write(chunk, encoding, callback) {
      channel.write(chunk, encoding, callback)
    },
    final(callback) {
      channel.end()
      callback()
    },
    destroy(error, callback) {
      channel.close()
      callback(error)
    }
  })
  channel.on('data', (chunk: Buffer) => {
    if (!duplex.push(chunk)) channel.pause()
  })
  channel.on('end', () => duplex.push(null))
  channel.on('close', () => duplex.destroy())
  channel.on('error', (error: Error) => duplex.destroy(error))
  return duplex
}

/** Reads the process group id that `inProcessGroup` writes first to stderr. */
class GroupMarker {
  private text = ''
  private resolve: (pgid: number | undefined) => void = () => undefined
  readonly known = new Promise<number | undefined>(resolve => (this.resolve = resolve))

  feed(chunk: Buffer): void {
    if (this.text.includes('\n')) return
    this.text += chunk.toString()
    const newline = this.text.indexOf('\n')
    if (newline < 0) return
    const line = this.text.slice(0, newline)
    const id = line.startsWith(`${PROCESS_GROUP_MARKER} `) ? line.split(' ')[1] : ''
    this.resolve(/^[0-9]+$/.test(id) ? Number(id) : undefined)
  }
}

/** stderr without the line `inProcessGroup` wrote first. */
function withoutMarker(stderr: string): string {
  if (!stderr.startsWith(`${PROCESS_GROUP_MARKER} `)) return stderr
  const newline = stderr.indexOf('\n')
  return newline < 0 ? '' : stderr.slice(newline + 1)
}

/** What a command's channel reports when it closes. */
interface ChannelEnd {
  code: number | null
  signal: string | null
}

/**
 * Runs `command` on a new session channel: stdin written (or piped) and closed, each
 * output chunk handed over as it arrives (nothing is kept here), the exit status
 * reported when the channel closes.
 */
function runOnChannel(
  client: Client,
  command: string,
  io: {
    stdin?: string | Readable
    onChannel: (channel: ClientChannel) => void
    onStdout: (chunk: Buffer) => void
    onStderr: (chunk: Buffer) => void
  }
): Promise<ChannelEnd> {
  return new Promise((resolve, reject) => {
    const opened = (error: Error | undefined, channel: ClientChannel) => {
      if (error) return reject(error)
      io.onChannel(channel)
      let code: number | null = null
      let signal: string | null = null
      channel.on('data', io.onStdout)
      channel.stderr.on('data', io.onStderr)
      channel.on('exit', (c: number | null, s?: string) => {
        code = c ?? null
        signal = s ?? null
      })
      channel.on('close', () => resolve({ code, signal }))
      if (io.stdin === undefined) channel.end()
      else if (typeof io.stdin === 'string') channel.end(io.stdin)
      else io.stdin.pipe(channel)
    }
    try {
      client.exec(command, opened)
    } catch (error) {
      reject(error as Error)
    }
  })
}

/**
 * At most this many commands run at once on one connection: sshd refuses
 * session channels past MaxSessions (10 by default, lower on some hosts).
 */
export const MAX_PARALLEL_COMMANDS = 4

class SshRemoteHost implements RemoteHost {
  private running = 0
  private readonly waiting: (() => void)[] = []
  private closed = false

  constructor(
    readonly target: Target,
    private readonly ssh: NodeSSH,
    private readonly jump: NodeSSH | undefined,
    /** The limit of a command whose call names none. */
    private readonly commandTimeoutMs: number
  ) {
    // node-ssh keeps its client object after a drop; track the transport ourselves.
    ssh.connection?.on('close', () => (this.closed = true))
    ssh.connection?.on('end', () => (this.closed = true))
  }

  async exec(command: ShellLine, options: ExecOptions = {}): Promise<ExecResult> {
    if (this.running >= MAX_PARALLEL_COMMANDS)
      await new Promise<void>(resolve => this.waiting.push(resolve))
    this.running++
    try {
      return await this.execNow(command, {
        ...options,
        processGroup: options.processGroup ?? true,
        timeoutMs: options.timeoutMs ?? this.commandTimeoutMs
      })
    } finally {
      this.running--
      this.waiting.shift()?.()
    }
  }

  private async execNow(command: ShellLine, options: ExecOptions): Promise<ExecResult> {
    const notRun = (stderr: string, cancelled = false): ExecResult => ({
      code: null,
      signal: null,
      stdout: '',
      stderr,
      timedOut: false,
      ...(cancelled ? { cancelled } : {})
    })
    const client = this.ssh.connection
    if (!this.isConnected() || !client) return notRun('SSH connection is closed')
    if (options.signal?.aborted) return notRun('cancelled before it started', true)
    const group = options.processGroup ? new GroupMarker() : undefined
    const stdout = new OutputTail(options.maxOutputBytes)
    const stderr = new OutputTail(options.maxOutputBytes)
    let channel: ClientChannel | undefined
    let stopped: StopReason | undefined
    let giveUp: () => void = () => undefined
    const givenUp = new Promise<void>(resolve => (giveUp = resolve))
    const stop = async (why: StopReason) => {
      stopped = why
      if (group) await this.endGroup(group)
      channel?.close()
      // A channel that never opened, or never reports its close, must not keep the caller waiting.
      setTimeout(giveUp, 1000).unref()
    }
    const watch = new CommandWatch(
      {
        timeoutMs: options.timeoutMs ?? Infinity,
        idleTimeoutMs: options.idleTimeoutMs,
        signal: options.signal
      },
      why => void stop(why)
    )
    const running = runOnChannel(client, group ? inProcessGroup(command) : command, {
      stdin: watch.counted(options.stdin),
      onChannel: c => {
        channel = c
        if (stopped) c.close()
      },
      onStdout: chunk => {
        watch.progress()
        stdout.push(chunk)
        options.onStdout?.(chunk)
      },
      onStderr: chunk => {
        watch.progress()
        stderr.push(chunk)
        group?.feed(chunk)
      }
    }).catch((error: Error) => ({ code: null, signal: null, error: error.message }))
    try {
      const ended = await Promise.race([
        running,
        givenUp.then(() => ({ code: null, signal: null }))
      ])
      const errText = stderr.text()
      const failure = 'error' in ended ? String(ended.error) : ''
      return {
        code: stopped ? null : ended.code,
        signal: ended.signal,
        stdout: stdout.text(),
        stderr: (group ? withoutMarker(errText) : errText) + failure,
        timedOut: stopped === 'timeout' || stopped === 'stall',
        ...(stopped === 'stall' ? { stalled: true } : {}),
        ...(stopped === 'cancel' ? { cancelled: true } : {})
      }
    } finally {
      watch.end()
    }
  }

  /**
   * Ends a command started with `processGroup` over this connection, not queued
   * behind other commands: TERM to its group, KILL to what is left after 1.5 s.
   */
  private async endGroup(group: GroupMarker): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const pgid = await Promise.race([
      group.known,
      new Promise<undefined>(resolve => (timer = setTimeout(() => resolve(undefined), 2000)))
    ])
    clearTimeout(timer)
    if (pgid === undefined) return
    await this.execNow(killProcessGroup(pgid), { timeoutMs: 5000 })
  }

  openChannel(to: ChannelTarget): Promise<Duplex> {
    const client = this.ssh.connection
    if (!client) return Promise.reject(new Error('SSH connection is closed'))
    return new Promise((resolve, reject) => {
      const done = (error: Error | undefined, channel: ClientChannel) =>
        error ? reject(error) : resolve(asDuplex(channel))
      if (to.kind === 'tcp') client.forwardOut('127.0.0.1', 0, to.host, to.port, done)
      else client.openssh_forwardOutStreamLocal(to.socket, done)
    })
  }

  isConnected(): boolean {
    return !this.closed && this.ssh.isConnected()
  }

  async close(): Promise<void> {
    this.ssh.dispose()
    this.jump?.dispose()
  }
}

/**
 * Opens the one connection to `target`: directly, or through the jump host
 * (authenticated with its own credentials when given, else the target's).
 */
export async function connect(target: Target, options: ConnectOptions): Promise<RemoteHost> {
  const commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS
  return withRetries(`connect ${target.label}`, options, async () => {
    if (!options.jumpHost)
      return new SshRemoteHost(
        target,
        await connectOnce(target, options, options, target.label),
        undefined,
        commandTimeoutMs
      )
    const jumpCredentials = options.jumpCredentials ?? options
    const jump = await connectOnce(options.jumpHost, jumpCredentials, options, target.label)
    // A new channel through the jump host for each handshake with the target.
    const openSock = () =>
      new Promise<Duplex>((resolve, reject) =>
        jump.connection!.forwardOut('127.0.0.1', 0, target.host, target.port, (error, stream) =>
          error ? reject(error) : resolve(stream)
        )
      )
    try {
      const ssh = await connectOnce(target, options, options, target.label, openSock)
      return new SshRemoteHost(target, ssh, jump, commandTimeoutMs)
    } catch (error) {
      jump.dispose()
      throw error
    }
  })
}

/** Whether the connection still runs commands (a drop is not always reported at once). */
export async function answers(remote: RemoteHost): Promise<boolean> {
  if (!remote.isConnected()) return false
  const probe = await remote.exec(toShell(['true']), { timeoutMs: 10_000 })
  return probe.code === 0
}

/** Opens a new connection in place of one that dropped (cleanup and rollback need one). */
export async function replaceIfDropped(conn: Connection, warn: (m: string) => void): Promise<void> {
  if (!conn.reconnect || (await answers(conn.remote))) return
  warn('the SSH connection dropped; reconnecting to clean up')
  conn.remote = await conn.reconnect()
}
