// How the GitHub Actions runner reads a step's output as workflow commands
// (actions/runner: ProcessInvoker reads lines with .NET's StreamReader.ReadLine,
// which ends a line at \n, \r or \r\n; ActionCommandManager tries, per line,
// the `::name props::data` syntax after String.TrimStart(), then the older
// `##[name props]data` syntax anywhere in the line; only registered command
// names count, compared without case; after `::stop-commands::TOKEN` nothing
// but `::TOKEN::` is read until it comes). Written from those rules for tests:
// what the action prints must never carry a command it did not issue.

/** The commands the runner registers (ActionCommandManager and its extensions). */
export const RUNNER_COMMANDS = [
  'set-env',
  'set-output',
  'save-state',
  'add-mask',
  'add-path',
  'add-matcher',
  'remove-matcher',
  'debug',
  'warning',
  'error',
  'notice',
  'group',
  'endgroup',
  'echo',
  'stop-commands'
]

/** char.IsWhiteSpace in .NET, what TrimStart() removes. */
const DOTNET_SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*/

export interface RunnerCommand {
  name: string
  data: string
  line: string
}

function parseV2(line: string, registered: Set<string>): RunnerCommand | undefined {
  const message = line.replace(DOTNET_SPACE, '')
  if (!message.startsWith('::')) return undefined
  const end = message.indexOf('::', 2)
  if (end < 0) return undefined
  const info = message.slice(2, end)
  const space = info.indexOf(' ')
  const name = (space < 0 ? info : info.slice(0, space)).toLowerCase()
  if (!registered.has(name)) return undefined
  return { name, data: message.slice(end + 2), line }
}

function parseV1(line: string, registered: Set<string>): RunnerCommand | undefined {
  const prefix = line.indexOf('##[')
  if (prefix < 0) return undefined
  const close = line.indexOf(']', prefix)
  if (close < 0) return undefined
  const info = line.slice(prefix + 3, close)
  const space = info.indexOf(' ')
  const name = (space < 0 ? info : info.slice(0, space)).toLowerCase()
  if (!registered.has(name)) return undefined
  return { name, data: line.slice(close + 1), line }
}

/** Every command the runner would run for this output, in order. */
export function runnerCommands(output: string): RunnerCommand[] {
  const registered = new Set(RUNNER_COMMANDS)
  const found: RunnerCommand[] = []
  let stopToken: string | undefined
  for (const line of output.split(/\r\n|\r|\n/)) {
    const command = parseV2(line, registered) ?? parseV1(line, registered)
    if (!command) continue
    if (stopToken !== undefined) {
      if (command.name === stopToken) {
        registered.delete(stopToken)
        stopToken = undefined
        found.push(command)
      }
      continue
    }
    found.push(command)
    if (command.name === 'stop-commands') {
      stopToken = command.data.toLowerCase()
      registered.add(stopToken)
    }
  }
  return found
}
