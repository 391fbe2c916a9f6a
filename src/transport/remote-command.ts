// Runs remote commands as named steps: a non-zero or missing exit code is a
// failure that carries the step name and the tail of stderr.
import type { ShellLine } from './shell-quote.js'
import type { ExecOptions, ExecResult, RemoteHost } from './ssh-connection.js'

export class RemoteCommandError extends Error {
  constructor(
    readonly step: string,
    readonly result: ExecResult,
    readonly host: string
  ) {
    const why = result.stalled
      ? 'stalled (it took no input and printed nothing for too long) and was stopped on the host'
      : result.timedOut
        ? 'timed out and was stopped on the host'
        : result.code === null
          ? `ended without an exit status${result.signal ? ` (signal ${result.signal})` : ''}: the connection may have dropped`
          : `exited with status ${result.code}`
    const tail = tailLines(result.stderr || result.stdout, 15)
    super(`${step} on ${host} ${why}${tail ? `:\n${tail}` : ''}`)
    this.name = 'RemoteCommandError'
  }
}

/** At most this many characters of a command's output go into one message. */
export const MAX_TAIL_CHARS = 8000

/**
 * The last `count` lines of `text`, and at most `maxChars` characters of them (a line of
 * progress bars can be megabytes long): what is cut is said in front.
 */
export function tailLines(text: string, count: number, maxChars = MAX_TAIL_CHARS): string {
  const lines = text.replace(/\s+$/, '').split('\n')
  const tail = lines.slice(-count).join('\n')
  if (tail.length <= maxChars) return tail
  return `[${tail.length - maxChars} characters cut] ${tail.slice(-maxChars)}`
}

/** Runs `command`; throws RemoteCommandError unless it exits 0. */
export async function runStep(
  remote: RemoteHost,
  step: string,
  command: ShellLine,
  options?: ExecOptions
): Promise<ExecResult> {
  const result = await remote.exec(command, options)
  if (result.code !== 0) throw new RemoteCommandError(step, result, remote.target.label)
  return result
}
