// Values that must never leave the server through anything the action prints or
// writes: the service's environment (its EnvironmentFiles and Environment=, read
// on the host when the deploy user may) and the password of any URL. The host
// layer adds values as it reads them; the action layer scrubs every line, the
// annotations, the job summary, the outputs and the GitHub deployment's
// description, and registers each value with the runner as a mask as well.

/** Lower-case values too common to be secrets (scrubbing them would only garble the log). */
const COMMON_VALUES = new Set([
  'true',
  'false',
  'yes',
  'no',
  'on',
  'off',
  'none',
  'null',
  'enabled',
  'disabled',
  'production',
  'development',
  'staging',
  'testing',
  'default',
  'localhost',
  'warning',
  'critical',
  '127.0.0.1',
  '0.0.0.0'
])

/** Variables the action reads as Gunicorn's settings, and prints as such. */
const SETTINGS = new Set(['WEB_CONCURRENCY', 'GUNICORN_CMD_ARGS'])

/** The shortest value that counts as a secret. */
export const MIN_SECRET_LENGTH = 6

/**
 * Whether an environment variable's value is scrubbed: every value of at least six
 * characters, except words too common to be secret (true, production, localhost, ...),
 * absolute paths, and Gunicorn's two settings variables.
 */
export function isSecretValue(name: string, value: string): boolean {
  const v = value.trim()
  if (v.length < MIN_SECRET_LENGTH || SETTINGS.has(name)) return false
  if (COMMON_VALUES.has(v.toLowerCase())) return false
  return !/^\/[^\s:@]*$/.test(v)
}

/** `scheme://user:PASSWORD@host`: the password, up to the last @ before a space or quote. */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@'"<>]*:)([^\s'"<>]+)@/gi

/**
 * The values of `env` (NAME -> value) that count as secrets, each line of a multi-line
 * one, and the password of a URL in one (a driver may print it alone).
 */
export function secretValues(env: Record<string, string>): string[] {
  const out = new Set<string>()
  for (const [name, value] of Object.entries(env)) {
    if (!isSecretValue(name, value)) continue
    out.add(value)
    for (const line of value.split(/\r?\n/)) if (isSecretValue(name, line)) out.add(line.trim())
    for (const m of value.matchAll(URL_PASSWORD))
      if (m[2] !== '***' && isSecretValue(name, m[2])) out.add(m[2])
  }
  return [...out]
}

/** `text` with the password of every URL in it replaced by ***. */
export function redactUrlPasswords(text: string): string {
  return text.replace(URL_PASSWORD, (whole, head: string, password: string) =>
    password === '***' ? whole : `${head}***@`
  )
}

export class SecretRegistry {
  private values: string[] = []
  private readonly listeners: ((value: string) => void)[] = []

  /** Adds values to scrub from now on; each new one is told to the listeners. */
  add(values: Iterable<string>): void {
    let added = false
    for (const value of values) {
      if (value === '' || this.values.includes(value)) continue
      this.values.push(value)
      added = true
      for (const listener of this.listeners) listener(value)
    }
    // the longest first, so a value containing another is scrubbed whole
    if (added) this.values.sort((a, b) => b.length - a.length)
  }

  /** Calls `listener` for every value added, those added before included. */
  onAdd(listener: (value: string) => void): void {
    this.listeners.push(listener)
    for (const value of this.values) listener(value)
  }

  /** `text` with every registered value, and every URL's password, replaced by ***. */
  redact(text: string): string {
    let out = text
    for (const value of this.values) if (out.includes(value)) out = out.split(value).join('***')
    return redactUrlPasswords(out)
  }

  /** A copy of `data` (from JSON) with every string in it redacted. */
  redactDeep<T>(data: T): T {
    if (typeof data === 'string') return this.redact(data) as T
    if (Array.isArray(data)) return data.map(d => this.redactDeep(d)) as T
    if (data && typeof data === 'object')
      return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, this.redactDeep(v)])) as T
    return data
  }
}

/** The run's registry: filled by the host reads, applied by everything the action prints. */
export const secrets = new SecretRegistry()
