// Splits a one-line command (the `migrate-command` input) into argv words the
// way a POSIX shell would: quotes and backslashes group and escape. The words
// are then run without a shell, so anything a shell would do beyond splitting
// (pipes, lists, redirections, globs, variables, command substitution, `~`,
// `NAME=value` prefixes) is refused with the reason instead of passed on as text.
import { parse, type ParseEntry } from 'shell-quote'

export class ShellWordsError extends Error {
  constructor(rule: string) {
    super(rule)
    this.name = 'ShellWordsError'
  }
}

const NO_SHELL = 'no shell runs the command'

/**
 * What shell-quote's parser lets through silently: unclosed quotes, a
 * trailing backslash, backticks (command substitution) and a leading `~`
 * outside quotes. Returns the reason, or undefined when the quoting is sound.
 */
function quotingProblem(text: string): string | undefined {
  let state: 'plain' | 'single' | 'double' = 'plain'
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (state === 'single') {
      if (c === "'") state = 'plain'
      continue
    }
    if (c === '\\') {
      if (i === text.length - 1) return 'ends with a backslash that escapes nothing'
      i++
      continue
    }
    if (c === '`')
      return `has a backtick (command substitution), which ${NO_SHELL}: put it in single quotes to pass it literally`
    if (state === 'double') {
      if (c === '"') state = 'plain'
      continue
    }
    if (c === "'") state = 'single'
    else if (c === '"') state = 'double'
    else if (c === '~' && (i === 0 || /\s/.test(text[i - 1])))
      return `starts a word with ~, which ${NO_SHELL} to expand: write the full path`
  }
  if (state !== 'plain') return `has an unclosed ${state === 'single' ? 'single' : 'double'} quote`
  return undefined
}

interface Variable {
  variable: string
}

function describe(entry: Exclude<ParseEntry, string> | Variable): string {
  if ('comment' in entry) return `has a # comment: put # in quotes when it is part of an argument`
  if ('variable' in entry) {
    const name = entry.variable
    return name === ''
      ? `has $ (a substitution), which ${NO_SHELL} to expand: put it in single quotes to pass it literally`
      : `uses $${name}, which ${NO_SHELL} to expand: write the value, or put it in single quotes to pass it literally`
  }
  if (entry.op === 'glob')
    return `has the glob pattern ${entry.pattern}, which ${NO_SHELL} to expand: quote it to pass it literally`
  return `has the shell operator ${entry.op}: it runs one command (${NO_SHELL}, so pipes, lists and redirections are not available; use a script in the release for more)`
}

/** The argv words of `text`, or a ShellWordsError naming what cannot be run without a shell. */
export function splitShellWords(text: string): string[] {
  if (/[\r\n]/.test(text)) throw new ShellWordsError('must be one line')
  const problem = quotingProblem(text)
  if (problem) throw new ShellWordsError(problem)
  // Variables come back as objects so that they can be refused, not replaced by ''.
  const entries = parse(text, (name): Variable => ({ variable: name }))
  const words: string[] = []
  for (const entry of entries) {
    if (typeof entry !== 'string') throw new ShellWordsError(describe(entry))
    words.push(entry)
  }
  if (words.length === 0) throw new ShellWordsError('must name a command')
  if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0]))
    throw new ShellWordsError(
      `starts with the assignment ${words[0]}, which ${NO_SHELL} to apply: set variables in the EnvironmentFile`
    )
  return words
}
