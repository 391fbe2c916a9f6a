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
    const why = result.timedOut
      ? 'timed out'
      : result.code === null
        ? `ended without an exit status${result.signal ? ` (signal ${result.signal})` : ''}: the connection may have dropped`
        : `exited with status ${result.code}`
    const tail = tailLines(result.stderr || result.stdout, 15)
    super(`${step} on ${host} ${why}${tail ? `:\n${tail}` : ''}`)
    this.name = 'RemoteCommandError'
  }
}

export function tailLines(text: string, count: number): string {
  const lines = text.replace(/\s+$/, '').split('\n')
  return lines.slice(-count).join('\n')
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
