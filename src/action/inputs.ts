// Every input is read here, once, into one typed and validated Settings object.
// Nothing else reads inputs. A bad value fails before anything connects, with
// a message naming the input, the value (masked when secret) and the rule.
import * as path from 'node:path'
import {
  FINGERPRINT_RULE,
  type HostKeyPolicy,
  parseFingerprint,
  parseKnownHosts
} from '../transport/host-keys.js'
import { ShellWordsError, splitShellWords } from './shell-words.js'
import type { SshCredentials } from '../transport/ssh-connection.js'
import { parseTarget, parsePort, splitList, type Target, TARGET_RULE } from '../core/targets.js'
import { HTTP_TARGET_RULE, onServerLoopback, parseHttpTarget } from '../transport/http-target.js'
import { defaultReleaseId, isReleaseId, RELEASE_ID_RULE } from '../core/release-id.js'
import { MODES, STRATEGIES, type Mode, type Strategy } from '../core/strategy.js'
import type { Settings } from '../modes/settings.js'

/** Where inputs come from: `core.getInput` in the action, a map in tests. */
export type InputReader = (name: string) => string

/** Facts about the workflow run that shape defaults (release id, metadata). */
export interface RunFacts {
  sha: string
  now: Date
  workspace: string
}

export class InputError extends Error {
  constructor(input: string, shownValue: string, rule: string) {
    super(`Input '${input}' ${shownValue}: ${rule}`)
    this.name = 'InputError'
  }
}

export const SECRET_INPUTS = new Set([
  'private-key',
  'passphrase',
  'jump-private-key',
  'jump-passphrase',
  'github-token'
])

function shown(input: string, value: string): string {
  if (value === '') return 'is empty'
  if (SECRET_INPUTS.has(input)) return 'has a value (***)'
  const oneLine = value.length > 200 ? value.slice(0, 200) + '…' : value
  return `has value ${JSON.stringify(oneLine)}`
}

// systemd unit names: ASCII letters, digits, ':', '-', '_', '.', '\' and '@'.
// A backslash only appears in escaped names, which we do not need; leading '-' would read as a flag.
const SERVICE_RE = /^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9:_.@-]{0,250}$/
const SAFE_PATH_RE = /^\/[A-Za-z0-9._@+/-]*$/
const USER_RE = /^[A-Za-z_][A-Za-z0-9._-]{0,31}$/
const USER_RULE = 'must be a user name of letters, digits, . _ - (not starting with - or .)'
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/
const REL_PATH_RE = /^[A-Za-z0-9._@+-]+(\/[A-Za-z0-9._@+-]+)*$/

function isSafeAbsolutePath(value: string): boolean {
  return (
    SAFE_PATH_RE.test(value) &&
    value !== '/' &&
    !value.endsWith('/') &&
    value
      .split('/')
      .every((seg, i) => (i === 0 ? seg === '' : seg !== '' && seg !== '.' && seg !== '..'))
  )
}

/** Reads inputs and fails with the input's name, its value (masked when secret) and the rule. */
class Reader {
  constructor(readonly read: InputReader) {}

  raw(name: string): string {
    return this.read(name).trim()
  }

  fail(name: string, value: string, rule: string): never {
    throw new InputError(name, shown(name, value), rule)
  }

  required(name: string): string {
    const value = this.raw(name)
    if (value === '') this.fail(name, value, 'is required')
    return value
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.raw(name).toLowerCase()
    if (value === '') return fallback
    if (['true', 'yes', 'on', '1'].includes(value)) return true
    if (['false', 'no', 'off', '0'].includes(value)) return false
    return this.fail(name, this.raw(name), 'must be true or false')
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name)
    if (value === '') return fallback
    if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max)
      this.fail(name, value, `must be a whole number from ${min} to ${max}`)
    return Number(value)
  }

  privateKey(name: string): string {
    const key = this.read(name)
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key))
      this.fail(name, key, 'must be a PEM or OpenSSH private key (-----BEGIN ... PRIVATE KEY-----)')
    return key
  }

  /** The pins in a known-hosts input (first) or a fingerprint input; undefined when both are empty. */
  pins(knownHostsInput: string, fingerprintInput: string): HostKeyPolicy | undefined {
    const knownHostsText = this.raw(knownHostsInput)
    const fingerprintText = this.raw(fingerprintInput)
    if (knownHostsText !== '') {
      const parsed = parseKnownHosts(knownHostsText)
      if ('badLine' in parsed)
        return this.fail(
          knownHostsInput,
          knownHostsText,
          `line ${parsed.badLine} is not a 'host keytype base64key' known_hosts line (markers like @cert-authority are not supported)`
        )
      if (parsed.entries.length === 0)
        this.fail(knownHostsInput, knownHostsText, 'must hold at least one key line')
      return { kind: 'known-hosts', entries: parsed.entries }
    }
    if (fingerprintText === '') return undefined
    // One per line or comma separated; an `ssh-keygen -l` line is one entry even when its
    // comment (a known_hosts host list) has commas.
    const fingerprints = fingerprintText
      .split(/\r?\n/)
      .flatMap(line => (parseFingerprint(line) ? [line.trim()] : splitList(line)))
      .map(fp => parseFingerprint(fp) ?? this.fail(fingerprintInput, fp, FINGERPRINT_RULE))
    return { kind: 'fingerprint', fingerprints }
  }
}

/** mode, the targets and their defaults. */
function readTargets(r: Reader) {
  const modeText = r.raw('mode') || 'deploy'
  if (!(MODES as readonly string[]).includes(modeText))
    r.fail('mode', modeText, `must be one of ${MODES.join(', ')}`)
  const mode = modeText as Mode
  const user = r.raw('username') || 'deploy'
  if (!USER_RE.test(user)) r.fail('username', user, USER_RULE)
  const portText = r.raw('port') || '22'
  const port = parsePort(portText) ?? r.fail('port', portText, 'must be a TCP port from 1 to 65535')
  const defaults = { user, port }
  const hostText = r.required('host')
  const entries = splitList(hostText)
  if (entries.length === 0) r.fail('host', hostText, 'must name at least one target')
  const targets = entries.map(e => parseTarget(e, defaults) ?? r.fail('host', e, TARGET_RULE))
  const seen = new Set<string>()
  for (const t of targets) {
    if (seen.has(t.label)) r.fail('host', t.label, 'each target may appear only once')
    seen.add(t.label)
  }
  return { mode, defaults, targets }
}

const JUMP_INPUTS = [
  'jump-username',
  'jump-private-key',
  'jump-passphrase',
  'jump-known-hosts',
  'jump-host-fingerprint'
]

/** The key, the host key pins and the jump host with its own credentials. */
function readCredentials(r: Reader, user: string) {
  const jumpUser = r.raw('jump-username')
  if (jumpUser !== '' && !USER_RE.test(jumpUser)) r.fail('jump-username', jumpUser, USER_RULE)
  const jumpText = r.raw('jump-host')
  const jumpHost =
    jumpText === ''
      ? undefined
      : (parseTarget(jumpText, { user: jumpUser || user, port: 22 }) ??
        r.fail('jump-host', jumpText, TARGET_RULE.replace('each entry', 'the value')))
  if (r.read('private-key').trim() === '') r.fail('private-key', '', 'is required')
  const privateKey = r.privateKey('private-key')
  const passphrase = r.read('passphrase') || undefined
  const insecure = r.bool('insecure-skip-host-key-check', false)
  const hostKeys: HostKeyPolicy =
    r.pins('known-hosts', 'host-fingerprint') ??
    (insecure
      ? { kind: 'insecure' }
      : r.fail(
          'known-hosts',
          '',
          "one of 'known-hosts' or 'host-fingerprint' is required to pin the host key (only 'insecure-skip-host-key-check: true' turns this off)"
        ))
  let jumpCredentials: SshCredentials | undefined
  if (!jumpHost) {
    for (const name of JUMP_INPUTS)
      if (r.read(name).trim() !== '') r.fail(name, r.read(name), "is only used with 'jump-host'")
  } else {
    const ownKey = r.read('jump-private-key').trim() !== ''
    const jumpPassphrase = r.read('jump-passphrase')
    if (jumpPassphrase !== '' && !ownKey)
      r.fail(
        'jump-passphrase',
        jumpPassphrase,
        "is only used with 'jump-private-key' (without it, the jump host uses 'private-key' and 'passphrase')"
      )
    jumpCredentials = {
      privateKey: ownKey ? r.privateKey('jump-private-key') : privateKey,
      passphrase: ownKey ? jumpPassphrase || undefined : passphrase,
      hostKeys: r.pins('jump-known-hosts', 'jump-host-fingerprint') ?? hostKeys
    }
  }
  return { jumpHost, jumpCredentials, privateKey, passphrase, hostKeys }
}

/** The service, where it lives and the URLs that prove it. */
function readService(r: Reader) {
  const { raw, fail } = bound(r)
  const service = r.required('service')
  if (!SERVICE_RE.test(service)) {
    fail(
      'service',
      service,
      'must be a systemd unit name: letters, digits and : _ . @ - (starting with a letter, digit or _; no ".."), at most 251 characters'
    )
  }

  const releasePath = r.required('release-path')
  if (!isSafeAbsolutePath(releasePath)) {
    fail(
      'release-path',
      releasePath,
      "must be an absolute path without '..', '.', '//' or a trailing '/', of letters, digits and . _ @ + - /, and not /"
    )
  }

  const healthText = r.required('health-url')
  const healthUrl =
    parseHttpTarget(healthText) ??
    fail('health-url', healthText, `${HTTP_TARGET_RULE}, requested on the server`)
  const nginxText = raw('nginx-url')
  const nginxUrl =
    nginxText === ''
      ? {
          kind: 'tcp' as const,
          scheme: 'http' as const,
          host: '127.0.0.1',
          port: 80,
          path: healthUrl.path,
          text: `http://127.0.0.1${healthUrl.path}`
        }
      : onServerLoopback(
          parseHttpTarget(nginxText) ??
            fail(
              'nginx-url',
              nginxText,
              `${HTTP_TARGET_RULE}; requested on the server (a host name at 127.0.0.1 on the URL's port, sent as Host and TLS server name)`
            )
        )

  return { service, releasePath, healthUrl, nginxUrl, nginxUrlGiven: nginxText !== '' }
}

/** How a release is brought up: the graceful reload, or blue-green with its template unit. */
function readStrategy(r: Reader, service: string) {
  const strategyText = r.raw('strategy') || 'reload'
  if (!STRATEGIES.includes(strategyText as Strategy))
    r.fail('strategy', strategyText, `must be one of ${STRATEGIES.join(', ')}`)
  const strategy = strategyText as Strategy
  const keepText = r.raw('keep-previous') || 'stopped'
  if (!['stopped', 'warm'].includes(keepText))
    r.fail('keep-previous', keepText, 'must be stopped or warm')
  if (keepText === 'warm' && strategy !== 'blue-green')
    r.fail(
      'keep-previous',
      keepText,
      'warm needs strategy: blue-green (under reload one master serves, and the old workers always leave)'
    )
  if (strategy === 'blue-green' && !/^[A-Za-z0-9_][A-Za-z0-9:_.-]*@?(\.service)?$/.test(service))
    r.fail(
      'service',
      service,
      'under strategy: blue-green, must name the template unit (myapp for myapp@.service; the action runs myapp@blue and myapp@green)'
    )
  return {
    strategy,
    keepPreviousWarm: keepText === 'warm',
    service: strategy === 'blue-green' ? service.replace(/(@?\.service|@)$/, '') : service
  }
}

/** What is uploaded as which release. */
function readRelease(r: Reader, facts: RunFacts, mode: Mode) {
  const { raw, fail, read } = bound(r)
  const sourceText = raw('source') || '.'
  const source = path.resolve(facts.workspace, sourceText)
  // gitignore patterns, one per line (a pattern may contain a comma).
  const exclude = read('exclude')
    .split(/\r?\n/)
    .map(line => line.trimEnd())
    .filter(line => line.trim() !== '')
  for (const pattern of exclude) {
    if ([...pattern].some(c => c < ' ' || c === '\u007f'))
      fail(
        'exclude',
        pattern,
        'each line must be one gitignore pattern, without control characters'
      )
  }

  const releaseIdText = raw('release-id')
  const releaseId = releaseIdText === '' ? defaultReleaseId(facts.now, facts.sha) : releaseIdText
  if (!isReleaseId(releaseId)) fail('release-id', releaseIdText, RELEASE_ID_RULE)

  const rollbackText = raw('rollback-to')
  if (rollbackText !== '' && !isReleaseId(rollbackText))
    fail('rollback-to', rollbackText, RELEASE_ID_RULE)
  if (rollbackText !== '' && mode !== 'rollback')
    fail('rollback-to', rollbackText, "is only used with 'mode: rollback'")

  return { source, exclude, releaseId, rollbackTo: rollbackText || undefined }
}

/** Shared paths, the environment, pip and the migrations. */
function readPreparation(r: Reader) {
  const { raw, fail } = bound(r)
  const sharedText = raw('shared-paths')
  const sharedPaths = splitList(sharedText)
  for (const p of sharedPaths) {
    if (!REL_PATH_RE.test(p) || p.split('/').some(s => s === '.' || s === '..')) {
      fail(
        'shared-paths',
        p,
        "each entry must be a relative path inside the release, of letters, digits and . _ @ + - /, without '.' or '..' segments"
      )
    }
  }

  const requiredEnv = splitList(raw('required-env'))
  for (const name of requiredEnv) {
    if (!ENV_NAME_RE.test(name))
      fail(
        'required-env',
        name,
        'each entry must be a variable name: letters, digits and _, not starting with a digit'
      )
  }

  const envFileText = raw('env-file')
  if (envFileText !== '' && !isSafeAbsolutePath(envFileText)) {
    fail('env-file', envFileText, 'must be an absolute path of letters, digits and . _ @ + - /')
  }

  const pipText = raw('pip-args')
  if (/[\r\n]/.test(pipText)) fail('pip-args', pipText, 'must be one line of arguments')
  const pipArgs = splitWords(pipText)
  for (const a of pipArgs) {
    if (!/^[A-Za-z0-9._=:/@+,-]+$/.test(a)) {
      fail('pip-args', a, 'each argument must consist of letters, digits and . _ = : / @ + , -')
    }
  }

  const migrateText = (raw('migrate') || 'auto').toLowerCase()
  const migrate: 'auto' | 'off' = ['auto', 'true', 'yes'].includes(migrateText)
    ? 'auto'
    : ['off', 'false', 'no'].includes(migrateText)
      ? 'off'
      : fail(
          'migrate',
          migrateText,
          'must be auto (run Flask-Migrate when the release has migrations/) or off'
        )
  const migrateCommandText = raw('migrate-command')
  let migrateCommand: string[] | undefined
  try {
    migrateCommand = migrateCommandText === '' ? undefined : splitShellWords(migrateCommandText)
  } catch (error) {
    if (!(error instanceof ShellWordsError)) throw error
    fail(
      'migrate-command',
      migrateCommandText,
      `${error.message} (it is split into words like a shell line, with quotes, and run without a shell)`
    )
  }

  const nginxErrorLog = raw('nginx-error-log') || '/var/log/nginx/error.log'
  if (!isSafeAbsolutePath(nginxErrorLog))
    fail('nginx-error-log', nginxErrorLog, 'must be an absolute path')

  return {
    sharedPaths,
    requiredEnv,
    envFile: envFileText || undefined,
    pipArgs,
    migrate,
    migrateCommand,
    nginxErrorLog
  }
}

/** A hook is one command, run by `sh -c` on the host: it may not be empty or hold a NUL byte. */
function readHook(r: Reader, name: string): string | undefined {
  const text = r.read(name).trim()
  if (text === '') return undefined
  if (text.includes('\0')) r.fail(name, text, 'must not contain a NUL byte')
  if (text.length > 16384)
    r.fail(name, text, 'must be at most 16384 characters (put more in a script in the release)')
  return text
}

/** The companions and the hooks around the switch. */
function readWholeApp(r: Reader, mode: Mode, service: string) {
  const { raw, fail } = bound(r)
  const restartServices = splitList(raw('restart-services'))
  const seen = new Set<string>()
  for (const unit of restartServices) {
    if (!SERVICE_RE.test(unit) || unit.endsWith('@'))
      fail(
        'restart-services',
        unit,
        'each entry must be a systemd unit name: letters, digits and : _ . @ - (starting with a letter, digit or _; no "..")'
      )
    const bare = unit.replace(/\.service$/, '')
    if (bare === service.replace(/\.service$/, '') || bare.startsWith(`${service}@`))
      fail(
        'restart-services',
        unit,
        "must not name the web unit ('service'): the action moves it itself"
      )
    if (seen.has(bare)) fail('restart-services', unit, 'each unit may appear only once')
    seen.add(bare)
  }
  const beforeSwitch = readHook(r, 'before-switch')
  const afterSwitch = readHook(r, 'after-switch')
  // Hooks are a deploy's own steps: a rollback restores a release whose steps already ran.
  return {
    restartServices,
    beforeSwitch: mode === 'deploy' ? beforeSwitch : undefined,
    afterSwitch: mode === 'deploy' ? afterSwitch : undefined
  }
}

/** The canary and the migration host: targets named in 'host'. */
function readFleetTargets(r: Reader, targets: Target[], defaults: { user: string; port: number }) {
  const { raw, fail } = bound(r)
  const findTarget = (name: string): string | undefined => {
    const text = raw(name)
    if (text === '') return undefined
    const parsed = parseTarget(text, defaults)
    const match = parsed && targets.find(t => t.label === parsed.label)
    if (!match)
      fail(
        name,
        text,
        `must be one of the targets in 'host' (${targets.map(t => t.label).join(', ')})`
      )
    return match?.label
  }
  const canary = findTarget('canary')
  const migrateHost = findTarget('migrate-host')

  return { canary, migrateHost }
}

function readGithub(r: Reader) {
  const { raw, fail } = bound(r)
  const githubToken = raw('github-token')
  if (/\s/.test(githubToken)) fail('github-token', githubToken, 'must be one token without spaces')
  const environment = raw('environment') || 'production'
  if (environment.length > 255 || [...environment].some(c => c < ' ' || c === '\u007f'))
    fail('environment', environment, 'must be a GitHub environment name of at most 255 characters')
  const environmentUrl = raw('environment-url') || undefined
  if (environmentUrl !== undefined && !isWebUrl(environmentUrl))
    fail('environment-url', environmentUrl, 'must be an absolute http:// or https:// URL')

  return { githubToken, environment, environmentUrl }
}

/** The reader's methods as plain functions, for the sections below. */
function bound(r: Reader) {
  return { raw: (n: string) => r.raw(n), fail: r.fail.bind(r), read: r.read }
}

export function readSettings(read: InputReader, facts: RunFacts): Settings {
  const r = new Reader(read)
  const { mode, defaults, targets } = readTargets(r)
  const credentials = readCredentials(r, defaults.user)
  const service = readService(r)
  const strategy = readStrategy(r, service.service)
  const healthExpect = r.raw('health-expect') || undefined
  const release = readRelease(r, facts, mode)
  const preparation = readPreparation(r)
  const wholeApp = readWholeApp(r, mode, strategy.service)
  const fleet = readFleetTargets(r, targets, defaults)
  const github = readGithub(r)
  return {
    mode,
    targets,
    ...credentials,
    ...service,
    ...strategy,
    healthExpect,
    healthChecks: r.int('health-checks', 3, 1, 100),
    ...release,
    reloadTimeoutSeconds: r.int('reload-timeout', 60, 5, 3600),
    connectTimeoutSeconds: r.int('connect-timeout', 20, 1, 600),
    connectRetries: r.int('connect-retries', 3, 0, 20),
    lockTimeoutSeconds: r.int('lock-timeout', 120, 0, 3600),
    lockStaleSeconds: r.int('lock-stale-after', 3600, 60, 7 * 24 * 3600),
    keepReleases: r.int('keep-releases', 5, 2, 1000),
    ...preparation,
    pipTimeoutSeconds: r.int('pip-timeout', 900, 10, 24 * 3600),
    migrateTimeoutSeconds: r.int('migrate-timeout', 1800, 10, 24 * 3600),
    ...wholeApp,
    hookTimeoutSeconds: r.int('hook-timeout', 600, 10, 24 * 3600),
    probe: r.bool('probe', true),
    warnOnly: r.bool('warn-only', false),
    strict: r.bool('strict', false),
    maxParallel: r.int('max-parallel', 1, 1, 100),
    ...fleet,
    maxFailures: r.int('max-failures', 0, 0, 1000),
    rollbackFleet: r.bool('rollback-fleet', true),
    githubDeployment: r.bool('github-deployment', true),
    ...github
  }
}

function isWebUrl(text: string): boolean {
  try {
    const url = new URL(text)
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.hostname !== ''
  } catch {
    return false
  }
}

/** Splits on whitespace; the words later travel as separate, quoted argv entries. */
function splitWords(text: string): string[] {
  return text.split(/\s+/).filter(w => w !== '')
}
