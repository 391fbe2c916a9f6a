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

/** Reads that run one after another in one round trip, each output after a `marker` line. */
export function eachOf(marker: string, ...reads: ShellLine[]): ShellLine {
  if (!/^[A-Za-z0-9@_-]+$/.test(marker)) throw new Error(`unsafe marker ${marker}`)
  return reads.map(r => `echo ${marker}; ${r}`).join('; ') as ShellLine
}

/** Splits the output of eachOf into the outputs of its reads, in order. */
export function splitEach(marker: string, output: string): string[] {
  return output.split(new RegExp(`^${marker}\\n`, 'm')).slice(1)
}

/** `command >> file`: appends the command's output to a file. */
export function appendOutput(command: Argv, file: string): ShellLine {
  return `${toShell(command)} >> ${quoteWord(file)}` as ShellLine
}

/** `command 2>/dev/null || true`: a read that may find nothing. */
export function optional(command: Argv): ShellLine {
  return `${toShell(command)} 2>/dev/null || true` as ShellLine
}

/** What `inProcessGroup` writes first to stderr, followed by the process group id. */
export const PROCESS_GROUP_MARKER = 'zdd-process-group'

/**
 * `command` in a session and process group of its own (`setsid -w`, which keeps
 * its exit status), the group id written first to stderr as one line
 * `zdd-process-group <id>`. Closing an SSH channel without a pty does not
 * signal what runs in it; `killProcessGroup(<id>)` ends the command and
 * everything it started.
 */
export function inProcessGroup(command: ShellLine): ShellLine {
  const script = `printf '${PROCESS_GROUP_MARKER} %s\\n' "$$" >&2\n${command}`
  return toShell(['setsid', '-w', 'sh', '-c', script])
}

// $1: the group id, $2: how many hundredths of a second TERM has before KILL
// (timed by /proc/uptime where it exists, else by counting rounds). A zombie
// still counts for `kill -0`, so /proc decides whether a process still runs.
const KILL_GROUP_SCRIPT = [
  'g=$1 grace=$2 t=0',
  'clock() {',
  '  if { read -r t _ </proc/uptime; } 2>/dev/null; then t=${t%.*}${t#*.}; else t=$((t + 10)); fi',
  '}',
  'running() {',
  '  kill -s 0 -- "-$g" 2>/dev/null || return 1',
  '  [ -r /proc/self/stat ] || return 0',
  '  for f in /proc/[0-9]*/stat; do',
  '    { read -r s <"$f"; } 2>/dev/null || continue',
  '    set -- ${s##*) }',
  '    [ "$3" = "$g" ] && [ "$1" != Z ] && return 0',
  '  done',
  '  return 1',
  '}',
  'kill -s TERM -- "-$g" 2>/dev/null || { echo gone; exit 0; }',
  'clock',
  'end=$((t + grace))',
  'while :; do',
  '  sleep 0.1',
  '  running || { echo TERM; exit 0; }',
  '  clock',
  '  [ "$t" -lt "$end" ] || break',
  'done',
  'kill -s KILL -- "-$g" 2>/dev/null',
  'echo KILL'
].join('\n')

/**
 * Sends TERM to every process of group `pgid`, then KILL to what is left after
 * `graceMs`. Prints how the group ended: `gone` (already), `TERM` or `KILL`.
 */
export function killProcessGroup(pgid: number, graceMs = 1500): ShellLine {
  // -1 would mean every process of the user, 0 the caller's own group.
  if (!Number.isSafeInteger(pgid) || pgid <= 1) throw new Error(`not a process group id: ${pgid}`)
  const hundredths = Math.max(1, Math.ceil(graceMs / 10))
  return toShell(['sh', '-c', KILL_GROUP_SCRIPT, 'sh', String(pgid), String(hundredths)])
}
