// Test helpers for real hosts from hostkit/ (systemd-nspawn containers with
// sshd, systemd, Gunicorn and Nginx) and for running the bundled action
// exactly as the Actions runner does (INPUT_* variables, output files).
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync, mkdirSync } from 'node:fs'
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

export interface KitHost {
  name: string
  ip: string
  port: number
  user: string
  key: string
  knownHosts: string
  fingerprint: string
  unit: UnitVariant
}

function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim())
    if (m) env[m[1]] = m[2].replace(/^['"]|['"]$/g, '')
  }
  return env
}

export async function hostUp(name: string, unit: UnitVariant = 'fixed'): Promise<KitHost> {
  const { stdout } = await run(path.join(KIT, 'host-up.sh'), [name, '--unit', unit], {
    maxBuffer: 1 << 22
  })
  const env = parseEnv(stdout)
  return {
    name,
    ip: env.HOST_IP,
    port: Number(env.HOST_PORT),
    user: env.HOST_USER,
    key: env.HOST_KEY,
    knownHosts: env.HOST_KNOWN_HOSTS,
    fingerprint: env.HOST_FINGERPRINT,
    unit
  }
}

export async function hostDown(name: string): Promise<void> {
  await run(path.join(KIT, 'host-down.sh'), [name])
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

/** The release the host serves through Nginx right now (several requests must agree). */
export async function servedRelease(host: KitHost): Promise<string> {
  const seen = new Set<string>()
  for (let i = 0; i < 6; i++) {
    const r = await fetchFromHost(host)
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

export function appendTo(file: string, text: string): void {
  writeFileSync(file, readFileSync(file, 'utf8') + text)
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
    service: 'myapp',
    'release-path': '/srv/myapp',
    'health-url': 'http://unix:/run/myapp/myapp.sock:/health',
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
  const child = spawn(
    process.env.ZDD_ACTION_NODE || process.execPath,
    [path.join(ROOT, 'dist', 'index.js')],
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
  return result
}
