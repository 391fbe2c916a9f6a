// Gunicorn's own command-line options, read the way its argparse parser reads
// them: `--name value`, `--name=value`, `-xVALUE`, clustered short flags and
// unique prefixes of long names. Used for ExecStart, GUNICORN_CMD_ARGS and the
// running master's command line alike.

/** The settings that matter for a graceful reload and its verification. */
export type FlagSetting = 'config' | 'bind' | 'workers' | 'workerClass' | 'threads' | 'chdir'

interface Flag {
  setting?: FlagSetting
  takesValue: boolean
}

const VALUE: Flag = { takesValue: true }
const SWITCH: Flag = { takesValue: false }
const set = (setting: FlagSetting): Flag => ({ setting, takesValue: true })
const words = (text: string): string[] => text.trim().split(/\s+/)

const LONG_VALUE_OPTIONS = words(`
  backlog worker-connections max-requests max-requests-jitter timeout graceful-timeout
  keep-alive limit-request-line limit-request-fields limit-request-field_size reload-engine
  reload-extra-file user group umask worker-tmp-dir forwarded-allow-ips access-logfile
  access-logformat error-logfile log-file log-level logger-class log-config log-config-json
  log-syslog-to log-syslog-prefix log-syslog-facility statsd-host statsd-prefix dogstatsd-tags
  name pythonpath paste paster paste-global proxy-allow-from keyfile certfile ssl-version
  cert-reqs ca-certs ciphers env pid header-map forwarder-headers
`)

const LONG_SWITCHES = words(`
  preload reload spew check-config print-config daemon capture-output enable-stdio-inheritance
  log-syslog disable-redirect-access-to-syslog initgroups proxy-protocol
  do-handshake-on-connect suppress-ragged-eofs no-sendfile reuse-port strip-header-spaces
  permit-unconventional-http-method permit-unconventional-http-version casefold-http-method
  permit-obsolete-folding version help
`)

const LONG = new Map<string, Flag>([
  ['config', set('config')],
  ['bind', set('bind')],
  ['workers', set('workers')],
  ['worker-class', set('workerClass')],
  ['threads', set('threads')],
  ['chdir', set('chdir')],
  ...LONG_VALUE_OPTIONS.map((name): [string, Flag] => [name, VALUE]),
  ...LONG_SWITCHES.map((name): [string, Flag] => [name, SWITCH])
])

const SHORT = new Map<string, Flag>([
  ['c', set('config')],
  ['b', set('bind')],
  ['w', set('workers')],
  ['k', set('workerClass')],
  ...[...'tugmnep'].map((c): [string, Flag] => [c, VALUE]),
  ...[...'DRvh'].map((c): [string, Flag] => [c, SWITCH])
])

/** What one set of Gunicorn arguments says, values as written. */
export interface GunicornArgs {
  config?: string
  binds: string[]
  workers?: string
  workerClass?: string
  threads?: string
  chdir?: string
  preload: boolean
  /** The WSGI app: the first positional argument (Gunicorn ignores the others). */
  app?: string
  /** Words that systemd or a shell expands at start ($VAR), whose options are unknown here. */
  unresolved: string[]
}

/** A long option by its exact name or, as argparse allows, a unique prefix of one. */
function longFlag(name: string): [string, Flag] | undefined {
  const exact = LONG.get(name)
  if (exact) return [name, exact]
  const matches = [...LONG.keys()].filter(k => k.startsWith(name))
  return matches.length === 1 ? [matches[0], LONG.get(matches[0]) as Flag] : undefined
}

function record(out: GunicornArgs, flag: Flag, value: string | undefined): void {
  if (value === undefined || !flag.setting) return
  if (flag.setting === 'bind') out.binds.push(value)
  else out[flag.setting] = value
}

const APP_LIKE = /^[A-Za-z_][\w.]*(:.+)?$/

/**
 * Reads Gunicorn's arguments. Unknown long options are taken as switches. The
 * app is the first positional word that looks like `module[:expr]`, else the
 * first positional word (systemd shows argv joined with spaces, so a quoted
 * value with spaces in ExecStart comes back as several words).
 */
export function parseGunicornArgs(args: readonly string[]): GunicornArgs {
  const out: GunicornArgs = { binds: [], preload: false, unresolved: [] }
  const positional: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '--') {
      positional.push(...args.slice(i + 1))
      break
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=')
      const found = longFlag(eq > 0 ? arg.slice(2, eq) : arg.slice(2))
      if (!found) continue
      const [name, flag] = found
      if (name === 'preload') out.preload = true
      else if (flag.takesValue) record(out, flag, eq > 0 ? arg.slice(eq + 1) : args[++i])
    } else if (arg.startsWith('-') && arg.length > 1) {
      // a cluster of short switches, possibly ending in one that takes a value (-Dw3)
      for (let c = 1; c < arg.length; c++) {
        const flag = SHORT.get(arg[c])
        if (!flag?.takesValue) continue
        record(out, flag, c + 1 < arg.length ? arg.slice(c + 1) : args[++i])
        break
      }
    } else positional.push(arg)
  }
  out.unresolved = positional.filter(w => w.includes('$'))
  const candidates = positional.filter(w => !w.includes('$'))
  out.app = candidates.find(w => APP_LIKE.test(w)) ?? candidates[0]
  return out
}

/**
 * Splits text into words as Python's shlex.split does (how Gunicorn reads
 * GUNICORN_CMD_ARGS): whitespace separates, quotes group, backslash escapes
 * outside single quotes; nothing is expanded. Unbalanced quotes end the text.
 */
export function splitLikeShlex(text: string): string[] {
  const words: string[] = []
  let word: string | undefined
  let quote: "'" | '"' | undefined
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quote === "'") {
      if (c === "'") quote = undefined
      else word += c
    } else if (quote === '"') {
      if (c === '"') quote = undefined
      else if (c === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) word += text[++i]
      else word += c
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word)
      word = undefined
    } else if (c === "'" || c === '"') {
      quote = c
      word ??= ''
    } else if (c === '\\' && i + 1 < text.length) word = (word ?? '') + text[++i]
    else word = (word ?? '') + c
  }
  if (word !== undefined) words.push(word)
  return words
}
