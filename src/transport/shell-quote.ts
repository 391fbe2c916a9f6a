// The one place where text becomes remote shell syntax. Every remote command
// is an argv array; `toShell` quotes each word so the remote shell sees it as
// one literal argument, whatever it contains.

export type Argv = readonly string[]

/** Shell text built only by this module. */
export type ShellLine = string & { readonly __shellLine: unique symbol }

/** Quotes one word for a POSIX shell: wrapped in single quotes, `'` spelled `'\''`. */
export function quoteWord(word: string): string {
  if (word.includes('\0')) throw new Error('a NUL byte cannot be passed to a remote command')
  if (/^[A-Za-z0-9_./:=@%+,-]+$/.test(word)) return word
  return `'${word.replace(/'/g, `'\\''`)}'`
}

/** One command line from an argv array. */
export function toShell(argv: Argv): ShellLine {
  if (argv.length === 0) throw new Error('empty remote command')
  return argv.map(quoteWord).join(' ') as ShellLine
}

/** Commands that run one after another, stopping at the first failure. */
export function allOf(...commands: Argv[]): ShellLine {
  return commands.map(toShell).join(' && ') as ShellLine
}

/** `command >> file`: appends the command's output to a file. */
export function appendOutput(command: Argv, file: string): ShellLine {
  return `${toShell(command)} >> ${quoteWord(file)}` as ShellLine
}

/** `command 2>/dev/null || true`: a read that may find nothing. */
export function optional(command: Argv): ShellLine {
  return `${toShell(command)} 2>/dev/null || true` as ShellLine
}
