// When a remote command is stopped: its time limit passed, it made no progress
// for too long, or the caller aborted. Every command has a limit (the default
// below, unless the call names another), so no call can hang a deploy, and the
// lock it holds, forever.
import { Transform, type Readable } from 'node:stream'

/** How long a remote command may run when the call names no other limit. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 120_000

export type StopReason = 'timeout' | 'stall' | 'cancel'

export interface Limits {
  /** Absolute limit; Infinity: none (then `idleTimeoutMs` should be set). */
  timeoutMs: number
  /** Stops a command that neither took input nor printed anything for this long. */
  idleTimeoutMs?: number
  signal?: AbortSignal
}

/**
 * Watches one command: calls `stop` once, with the reason, when a limit is reached.
 * `progress` marks activity (output received, input taken); `counted` wraps a stdin
 * stream so that every chunk the channel takes marks it.
 */
export class CommandWatch {
  private last = Date.now()
  private timers: NodeJS.Timeout[] = []
  private done = false
  private readonly onAbort = () => this.fire('cancel')

  constructor(
    private readonly limits: Limits,
    private readonly stop: (why: StopReason) => void
  ) {
    if (Number.isFinite(limits.timeoutMs))
      this.timers.push(setTimeout(() => this.fire('timeout'), limits.timeoutMs))
    if (limits.idleTimeoutMs !== undefined) this.checkIdle(limits.idleTimeoutMs)
    limits.signal?.addEventListener('abort', this.onAbort, { once: true })
  }

  progress(): void {
    this.last = Date.now()
  }

  /** `stdin` passed through a stream that marks progress as the channel takes each chunk. */
  counted(stdin: string | Readable | undefined): string | Readable | undefined {
    if (stdin === undefined || typeof stdin === 'string' || this.limits.idleTimeoutMs === undefined)
      return stdin
    const counter = new Transform({
      transform: (chunk: Buffer, _encoding, callback) => {
        this.progress()
        callback(null, chunk)
      }
    })
    stdin.on('error', error => counter.destroy(error))
    return stdin.pipe(counter)
  }

  private checkIdle(idleMs: number): void {
    const left = this.last + idleMs - Date.now()
    if (left <= 0) return this.fire('stall')
    this.timers.push(setTimeout(() => this.checkIdle(idleMs), left))
  }

  private fire(why: StopReason): void {
    if (this.done) return
    this.end()
    this.stop(why)
  }

  /** The command ended: no limit applies any more. */
  end(): void {
    this.done = true
    for (const t of this.timers) clearTimeout(t)
    this.timers = []
    this.limits.signal?.removeEventListener('abort', this.onAbort)
  }
}
