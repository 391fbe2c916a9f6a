// Text printed to the log must never run a workflow command. The runner reads
// every line of a step's output (split at \n, \r and \r\n) as a command when,
// after leading whitespace, it starts with `::name` (`::set-output`, `::error`,
// `::stop-commands`, ...) or when it contains `##[name` anywhere (the older
// syntax, still parsed). @actions/core escapes the data of the commands it
// issues itself (annotations, groups), but core.info prints text as it is, so
// a line of pip, migration or journal output could set outputs, raise
// annotations or stop command processing. `plainText` makes such lines inert:
// a backslash before the `::` that starts the line (`\::error::x`), and after
// every `##[` (`##[\error]x`, as the runner itself escapes its own markers),
// so no registered command name can follow.

/**
 * What .NET's String.TrimStart() removes (char.IsWhiteSpace), plus characters
 * older runtimes also trimmed (U+180E, U+200B, U+FEFF): more than the runner
 * skips is harmless, less would not be.
 */
const LEADING_SPACE = '[\\s\\u0085\\u180e\\u200b\\ufeff]*'
const COMMAND_START = new RegExp(`^(${LEADING_SPACE})::`)
const LINE_BREAK = /(\r\n|\r|\n)/

/** `text` with every line the runner would read as a workflow command made inert. */
export function plainText(text: string): string {
  if (!text.includes('::') && !text.includes('##[')) return text
  return text
    .split(LINE_BREAK)
    .map((part, i) =>
      i % 2 === 1 ? part : part.replace(COMMAND_START, '$1\\::').replaceAll('##[', '##[\\')
    )
    .join('')
}
