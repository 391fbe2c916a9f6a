// Test helpers for real hosts from hostkit/ (systemd-nspawn containers with
// sshd, systemd, Gunicorn and Nginx) and for running the bundled action
// exactly as the Actions runner does (INPUT_* variables, output files).
import { execFile, spawn } from 'node:child_process'
import {
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  cpSync,
  mkdirSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
export const ROOT = path.resolve(
  import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname),
  '..',
  '..'
)
const KIT = path.join(ROOT, 'hostkit')

export type UnitVariant = 'fixed' | 'guide' | 'preload'
/** Debian 12, Debian 13, or Debian unstable (today's Gunicorn). */
export type Suite = 'bookworm' | 'trixie' | 'sid'
/**
 * How the server is set up: `kit` is examples/server (with a UnitVariant); the others are
 * hostkit/styles/NAME.sh, servers set up the way other guides and defaults do it.
 */
export type ServerStyle =
  | 'kit'
  | 'upstream-oneline'
  | 'upstream-multiline'
  | 'tcp-localhost'
  | 'config-file'
  | 'python-m'
  | 'web-concurrency'
  | 'gthread'
  | 'other-names'
  | 'first-deploy'
  | 'deploy-user-unit'
  | 'minimal-sudo'
  | 'vhost'
  | 'tls-redirect'
  | 'mismatch'
  | 'sh-wrapper'
  | 'poetry-run'
  | 'blue-green'
  | 'blue-green-keepalive'
  | 'gunicorn-docs-systemd'
  | 'gunicorn-docs-nginx'
  | 'hardened-hidepid'
  | 'tutorial-socket'
  | 'tutorial-tcp'
  | 'tutorial-root'
  | 'tutorial-instance'
  | 'tutorial-preload'
  | 'celery'
  | 'celery-blue-green'

export interface HostOptions {
  /** only with the kit style (default fixed) */
  unit?: UnitVariant
  style?: ServerStyle
  suite?: Suite
}

export interface KitHost {
  name: string
  ip: string
  port: number
  user: string
  key: string
  knownHosts: string
  fingerprint: string
  /** the kit's unit variant, or 'style' when the style brings its own unit */
  unit: UnitVariant | 'style'
  style: ServerStyle
  suite: Suite
  /** the systemd unit, e.g. myapp */
  service: string
  releasePath: string
  /** as the health-url input: http://unix:/SOCKET:/health or http://127.0.0.1:PORT/health */
  healthUrl: string
  /** the nginx-url a user would give; '' when the action should derive it */
  nginxUrl: string
  /** module:attr of the WSGI app */
  app: string
  /** a certificate (on the runner) that verifies the host's https, or '' */
  caCert: string
  /** the host's state directory on this machine (its root filesystem is `root/` in it) */
  state: string
}

function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim())
    if (m) env[m[1]] = m[2].replace(/^['"]|['"]$/g, '')
  }
  return env
}

/**
 * The kit's name for a test's host: ZDD_HOST_PREFIX (for example `a-`) is put in front,
 * so that two test runs on one machine (with ZDD_KEEP_OTHER_HOSTS=1) never share a host.
 */
export function kitName(name: string): string {
  return `${process.env.ZDD_HOST_PREFIX ?? ''}${name}`
}

/**
 * Starts a host: `hostUp(name, 'guide')` (the kit's server with a unit variant), or
 * `hostUp(name, { style: 'vhost', suite: 'trixie' })`.
 */
export async function hostUp(
  name: string,
  options: UnitVariant | HostOptions = {}
): Promise<KitHost> {
  const opts: HostOptions = typeof options === 'string' ? { unit: options } : options
  const args = [kitName(name)]
  if (opts.unit) args.push('--unit', opts.unit)
  if (opts.suite) args.push('--suite', opts.suite)
  if (opts.style) args.push('--style', opts.style)
  const { stdout } = await run(path.join(KIT, 'host-up.sh'), args, {
    maxBuffer: 1 << 22
  })
  const env = parseEnv(stdout)
  return {
    name: env.HOST_NAME,
    ip: env.HOST_IP,
    port: Number(env.HOST_PORT),
    user: env.HOST_USER,
    key: env.HOST_KEY,
    knownHosts: env.HOST_KNOWN_HOSTS,
    fingerprint: env.HOST_FINGERPRINT,
    unit: env.HOST_UNIT as UnitVariant | 'style',
    style: env.HOST_STYLE as ServerStyle,
    suite: env.HOST_SUITE as Suite,
    service: env.HOST_SERVICE,
    releasePath: env.HOST_RELEASE_PATH,
    healthUrl: env.HOST_HEALTH_URL,
    nginxUrl: env.HOST_NGINX_URL ?? '',
    app: env.HOST_APP,
    caCert: env.HOST_CA_CERT ?? '',
    state: env.HOST_STATE
  }
}

export async function hostDown(name: string): Promise<void> {
  await run(path.join(KIT, 'host-down.sh'), [kitName(name)])
}

/** Runs a command as root inside the host (not over SSH). */
export async function rootExec(host: KitHost, argv: string[]): Promise<string> {
  const { stdout } = await run(path.join(KIT, 'host-exec.sh'), [host.name, ...argv], {
    maxBuffer: 1 << 22
  })
  return stdout
}

/** Runs shell text as root inside the host. */
export function rootSh(host: KitHost, script: string): Promise<string> {
  return rootExec(host, ['/bin/sh', '-c', script])
}

/** The release directories under release-path/releases, sorted (hidden entries not listed). */
export async function releaseIds(host: KitHost): Promise<string[]> {
  return (await rootExec(host, ['ls', `${host.releasePath}/releases`]))
    .split('\n')
    .filter(Boolean)
    .sort()
}

/** Where release-path/current points, as readlink prints it (e.g. `releases/v1`). */
export async function currentLink(host: KitHost): Promise<string> {
  return (await rootExec(host, ['readlink', `${host.releasePath}/current`])).trim()
}

/** Every entry of release-path/.deploy-log.jsonl, oldest first. */
export async function deployLog(host: KitHost): Promise<Record<string, unknown>[]> {
  const text = await rootExec(host, ['cat', `${host.releasePath}/.deploy-log.jsonl`])
  return text
    .trim()
    .split('\n')
    .map(line => JSON.parse(line) as Record<string, unknown>)
}

/** How many public-key logins sshd on the host has accepted so far (of `user`, or of anyone). */
export async function acceptedLogins(host: KitHost, user?: string): Promise<number> {
  const pattern = user ? `Accepted publickey for ${user} ` : 'Accepted publickey'
  const count = await rootExec(host, [
    'sh',
    '-c',
    'journalctl -u ssh --no-pager | grep -c -- "$1" || true',
    'sh',
    pattern
  ])
  return Number(count.trim())
}

/**
 * Makes release-path/.deploy-lock look held by another deploy (its owner.json as given);
 * `age` (touch -d words such as '2 hours ago') backdates it, as a deploy that stopped leaves it.
 */
export async function holdLock(
  host: KitHost,
  owner: { actor: string; token: string },
  age?: string
): Promise<void> {
  await rootExec(host, [
    'sh',
    '-c',
    'mkdir "$1" && printf "%s\\n" "$2" > "$1/owner.json" && chown -R "$3" "$1" && ' +
      '{ [ -z "$4" ] || touch -d "$4" "$1"; }',
    'sh',
    `${host.releasePath}/.deploy-lock`,
    JSON.stringify(owner),
    host.user,
    age ?? ''
  ])
}

/** Lets `keyOwner`'s client key log in as deploy on `host` too (fleets, jump hosts share one key). */
export async function authorize(host: KitHost, keyOwner: KitHost): Promise<void> {
  const pub = readFileSync(`${keyOwner.key}.pub`, 'utf8').trim()
  await rootExec(host, [
    'sh',
    '-c',
    'printf "%s\\n" "$1" >> /home/deploy/.ssh/authorized_keys',
    'sh',
    pub
  ])
}

/** GET from the runner to the host's Nginx (the test bridge), returning status and body. */
export async function fetchFromHost(
  host: KitHost,
  urlPath = '/health'
): Promise<{ status: number; body: string; release?: string }> {
  const response = await fetch(`http://${host.ip}${urlPath}`, { signal: AbortSignal.timeout(5000) })
  const body = await response.text()
  return { status: response.status, body, release: response.headers.get('x-release') ?? undefined }
}

export interface HttpAnswer {
  /** 0 when nothing answered */
  status: number
  body: string
  /** the X-Release header, else the JSON body's `release` */
  release?: string
  location?: string
}

function releaseOf(headers: Record<string, string>, body: string): string | undefined {
  if (headers['x-release']) return headers['x-release']
  try {
    const json: unknown = JSON.parse(body)
    if (json && typeof json === 'object' && 'release' in json) return String(json.release)
  } catch {
    // not JSON
  }
  return undefined
}

/** Splits `curl -i` output (no redirects followed) into status, headers and body. */
function parseCurl(out: string): HttpAnswer {
  const end = out.indexOf('\r\n\r\n')
  if (end < 0) return { status: 0, body: out }
  const [statusLine, ...lines] = out.slice(0, end).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const i = line.indexOf(':')
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
  }
  const body = out.slice(end + 4)
  return {
    status: Number(statusLine.split(' ')[1]),
    body,
    release: releaseOf(headers, body),
    location: headers.location
  }
}

/**
 * GET through the host's own Nginx from the runner, as a browser would: `target` is a
 * path on the host's public URL (its nginx-url's origin, else http://IP) or a full URL;
 * the URL's name resolves to the host (curl --resolve, so the Host header and SNI are
 * that name) and https is verified against the host's certificate. Redirects are not followed.
 */
export async function fetchNginx(host: KitHost, target = '/health'): Promise<HttpAnswer> {
  const base = host.nginxUrl ? new URL(host.nginxUrl).origin : `http://${host.ip}`
  const url = new URL(target, base)
  const port = url.port || (url.protocol === 'https:' ? '443' : '80')
  const args = ['-sS', '-i', '-m', '5', '--resolve', `${url.hostname}:${port}:${host.ip}`]
  if (host.caCert) args.push('--cacert', host.caCert)
  try {
    const { stdout } = await run('curl', [...args, url.href], { maxBuffer: 1 << 22 })
    return parseCurl(stdout)
  } catch (e) {
    return { status: 0, body: String(e) }
  }
}

/** GET the host's health-url on the host itself (Gunicorn's bind, not Nginx), as root. */
export async function fetchGunicorn(host: KitHost, urlPath = '/health'): Promise<HttpAnswer> {
  const unix = /^http:\/\/unix:([^:]+):/.exec(host.healthUrl)
  const args = unix
    ? ['--unix-socket', unix[1], `http://localhost${urlPath}`]
    : [new URL(urlPath, host.healthUrl).href]
  try {
    return parseCurl(await rootExec(host, ['curl', '-sS', '-i', '-m', '5', ...args]))
  } catch (e) {
    return { status: 0, body: String(e) }
  }
}

/** The release the host serves through Nginx right now (several requests must agree). */
export async function servedRelease(host: KitHost): Promise<string> {
  const seen = new Set<string>()
  for (let i = 0; i < 6; i++) {
    const r = await fetchNginx(host)
    seen.add(r.status === 200 ? (r.release ?? 'none') : `HTTP ${r.status}`)
  }
  return [...seen].join(',')
}

/** A copy of examples/app to modify for one scenario. */
export function appCopy(edit?: (dir: string) => void): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'zdd-app-'))
  cpSync(path.join(ROOT, 'examples', 'app'), dir, { recursive: true })
  edit?.(dir)
  return dir
}

/**
 * A copy of examples/app adapted to the host's app: its module and attribute (app:application
 * is `application` in app.py), and under the minimal-sudo style the SECRET_KEY that app reads
 * at import. `edit` gets the directory and the module file.
 */
export function appFor(host: KitHost, edit?: (dir: string, moduleFile: string) => void): string {
  return appCopy(dir => {
    const [module, attr] = host.app.split(':')
    const file = path.join(dir, `${module}.py`)
    if (module !== 'wsgi') renameSync(path.join(dir, 'wsgi.py'), file)
    let source = readFileSync(file, 'utf8')
    if (attr !== 'app') source = source.replace(/\bapp\b(?!\.db)/g, attr)
    if (host.style === 'minimal-sudo')
      source = source.replace(
        /^RELEASE = read_release_id\(\)$/m,
        '$&\nSECRET_KEY = os.environ["SECRET_KEY"]'
      )
    if (!new RegExp(`^${attr} = Flask\\(`, 'm').test(source))
      throw new Error(`app for ${host.name}: no ${attr} = Flask(...) in ${module}.py`)
    if (host.style === 'minimal-sudo' && !source.includes('os.environ["SECRET_KEY"]'))
      throw new Error(`app for ${host.name}: SECRET_KEY is not read at import`)
    writeFileSync(file, source)
    edit?.(dir, file)
  })
}

export function appendTo(file: string, text: string): void {
  writeFileSync(file, readFileSync(file, 'utf8') + text)
}

/** Puts `text` before the file's contents (code that runs first when a module is imported). */
export function prependTo(file: string, text: string): void {
  writeFileSync(file, text + readFileSync(file, 'utf8'))
}

/**
 * What the action printed as the runner shows it: the ::add-mask:: commands, which carry
 * the masked values themselves, are not shown.
 */
export function printedOutput(run: ActionRun): string {
  return run.stdout
    .split('\n')
    .filter(l => !l.startsWith('::add-mask::'))
    .join('\n')
}

/** The ::error and ::warning annotations the action printed, as the runner shows them. */
export function annotations(run: ActionRun): string {
  return run.stdout
    .split('\n')
    .filter(l => l.startsWith('::error') || l.startsWith('::warning'))
    .map(l => l.replace(/%0A/g, '\n').replace(/%0D/g, '\r').replace(/%25/g, '%'))
    .join('\n')
}

export interface ActionRun {
  code: number | null
  stdout: string
  stderr: string
  outputs: Record<string, string>
  summary: string
}

export function inputsFor(
  host: KitHost,
  extra: Record<string, string> = {}
): Record<string, string> {
  return {
    host: `${host.user}@${host.ip}:${host.port}`,
    'private-key': readFileSync(host.key, 'utf8'),
    'known-hosts': readFileSync(host.knownHosts, 'utf8'),
    service: host.service,
    'release-path': host.releasePath,
    'health-url': host.healthUrl,
    ...(host.nginxUrl ? { 'nginx-url': host.nginxUrl } : {}),
    'pip-args': '--no-index --no-deps',
    'reload-timeout': '30',
    'lock-timeout': '10',
    ...extra
  }
}

function parseOutputs(text: string): Record<string, string> {
  const outputs: Record<string, string> = {}
  const re = /^([^<\n]+)<<(ghadelimiter_[^\n]+)\n([\s\S]*?)\n\2$/gm
  for (const m of text.matchAll(re)) outputs[m[1]] = m[3]
  return outputs
}

/**
 * The action's warning when the Gunicorn master it reloaded died of Gunicorn's own logging
 * crash (Gunicorn before 24.1, e.g. 20.1 on Debian 12: about 2 reloads in 100 on this kit's
 * bookworm hosts), and it restarted the unit.
 */
const GUNICORN_CRASH = /the Gunicorn master \d+ crashed in its own logging during the/

/** Whether Gunicorn's own logging crash happened in this run (the action said so). */
export function gunicornCrashed(run: Pick<ActionRun, 'stdout'>): boolean {
  return GUNICORN_CRASH.test(run.stdout)
}

/**
 * Notes each run in which Gunicorn crashed (noteLetPass: scripts/test.sh lists them at the
 * end), so that what tests of zero downtime let pass is seen.
 */
function noteGunicornCrash(inputs: Record<string, string>, stdout: string): void {
  if (!gunicornCrashed({ stdout })) return
  // one line per run, also for a fleet (one host per line in the input)
  const hosts = (inputs.host ?? '').split(/\s+/).filter(Boolean).join(', ')
  const what = `${inputs.mode ?? 'deploy'} ${inputs['release-id'] ?? ''} on ${hosts}`
  noteLetPass(`Gunicorn's own logging crash during the ${what}: the unit was restarted`)
}

/**
 * Prints what a test of zero downtime let pass, with its cause, and adds it to
 * .test-results/let-pass, which scripts/test.sh lists at the end of the run.
 */
export function noteLetPass(line: string): void {
  console.warn(line)
  const dir = path.join(ROOT, '.test-results')
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, 'let-pass'), `${line}\n`, { flag: 'a' })
}

/** Runs dist/index.js with INPUT_* variables as the runner sets them (hyphens kept). */
export async function runAction(
  inputs: Record<string, string>,
  opts: {
    onSpawn?: (pid: number) => void
    /** Called for every line the action prints (e.g. to inject a fault at a step). */
    onLine?: (line: string, pid: number) => void
    env?: Record<string, string>
  } = {}
): Promise<ActionRun> {
  const dir = mkdtempSync(path.join(tmpdir(), 'zdd-run-'))
  const outputFile = path.join(dir, 'output')
  const summaryFile = path.join(dir, 'summary')
  writeFileSync(outputFile, '')
  writeFileSync(summaryFile, '')
  mkdirSync(path.join(dir, 'workspace'))
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    GITHUB_OUTPUT: outputFile,
    GITHUB_STEP_SUMMARY: summaryFile,
    GITHUB_WORKSPACE: path.join(dir, 'workspace'),
    GITHUB_SHA: 'c0ffee0123456789c0ffee0123456789c0ffee01',
    GITHUB_ACTOR: 'integration-test',
    GITHUB_REPOSITORY: 'example/app',
    GITHUB_RUN_ID: '4242',
    GITHUB_SERVER_URL: 'https://github.example',
    ...opts.env
  }
  for (const [name, value] of Object.entries(inputs)) env[`INPUT_${name.toUpperCase()}`] = value
  // ZDD_ACTION_NODE: another node binary (.ci/run also runs a deploy and a rollback with Node 24).
  // ZDD_ACTION_SCRIPT: another bundle (one built with ZDD_BUNDLE_OUT while dist/ is in use).
  const child = spawn(
    process.env.ZDD_ACTION_NODE || process.execPath,
    [process.env.ZDD_ACTION_SCRIPT || path.join(ROOT, 'dist', 'index.js')],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe']
    }
  )
  if (child.pid) opts.onSpawn?.(child.pid)
  let stdout = ''
  let stderr = ''
  let partial = ''
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString()
    if (!opts.onLine) return
    partial += c.toString()
    const lines = partial.split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) opts.onLine(line, child.pid ?? 0)
  })
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  const result = {
    code,
    stdout,
    stderr,
    outputs: parseOutputs(readFileSync(outputFile, 'utf8')),
    summary: readFileSync(summaryFile, 'utf8')
  }
  rmSync(dir, { recursive: true, force: true })
  noteGunicornCrash(inputs, stdout)
  // ZDD_ACTION_LOG_DIR: every run's output is kept there too, to read after a failed test.
  const logDir = process.env.ZDD_ACTION_LOG_DIR
  if (logDir) {
    mkdirSync(logDir, { recursive: true })
    const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${inputs.mode ?? 'deploy'}-${inputs['release-id'] ?? ''}.log`
    writeFileSync(path.join(logDir, name), `${stdout}\n--- stderr ---\n${stderr}`)
  }
  return result
}

/** One host's entry in the `hosts` output. */
export interface HostJson {
  host: string
  status: string
  release?: string
  previousRelease?: string
  connections?: number
  steps: { name: string }[]
  error?: string
}

/** The inputs for a fleet: every host in `host` and `known-hosts`, the rest as inputsFor the first. */
export function fleetInputs(
  hosts: KitHost[],
  extra: Record<string, string> = {}
): Record<string, string> {
  const base = inputsFor(hosts[0], extra)
  return {
    ...base,
    host: hosts.map(h => `${h.user}@${h.ip}:${h.port}`).join('\n'),
    'known-hosts': hosts.map(h => readFileSync(h.knownHosts, 'utf8')).join(''),
    ...extra
  }
}

/** The `hosts` output of a run, parsed. */
export function hostsOf(run: ActionRun): HostJson[] {
  return JSON.parse(run.outputs.hosts) as HostJson[]
}
