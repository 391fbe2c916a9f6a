// A simulated blue-green host for unit tests of the blue-green cutover: two
// instances of myapp@.service, each running the release its slot pointed at
// when it started, on its own socket; live.sock, current and the slots as
// symlinks; Nginx proxying to whatever live.sock points at. Every command is
// recorded and interpreted from the host's state (a small reader of the shell
// the action writes: argv words, ' && ', '; ', '2>/dev/null || true', '>>');
// the remote helper's commands are answered in types (`helper`, a HelperClient);
// health answers come from real local HTTP servers, so the action's own HTTP
// client runs unchanged. Knobs script the failures; `violations` records
// what a real host would punish (a running instance's slot repointed, the live
// instance stopped while live.sock still points at it).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createHash } from 'node:crypto'
import { connect } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import type { Duplex } from 'node:stream'
import type { Target } from '../src/core/targets.js'
import type { Colour } from '../src/host/blue-green/instances.js'
import {
  HelperError,
  type HelperClient,
  type WatchAnswer,
  type WatchSpec
} from '../src/host/helper-client.js'
import { FakeHelper } from './fake-helper.js'
import type { ReleaseLogEntry } from '../src/host/release-log.js'
import type { ShellLine } from '../src/transport/shell-quote.js'
import type {
  ChannelTarget,
  ExecOptions,
  ExecResult,
  RemoteHost
} from '../src/transport/ssh-connection.js'

export const ROOT = '/srv/myapp'
export const LIVE = `${ROOT}/live.sock`
export const CURRENT = `${ROOT}/current`
export const socketOf = (c: Colour): string => `/run/myapp-${c}/gunicorn.sock`
export const slotOf = (c: Colour): string => `${ROOT}/slots/${c}`
const COLOURS: Colour[] = ['blue', 'green']
/** What the fake's Nginx serves as the release's one static file, under /static/. */
export const STATIC_FILE = 'app.css'
const staticBody = (release: string) => `/* styles of ${release} */\n`

export interface InstanceState {
  activeState: 'active' | 'activating' | 'failed' | 'inactive'
  subState: string
  mainPid: number
  workers: number[]
  /** The release it runs: where its slot pointed when it started. */
  release?: string
}

export interface BlueGreenSetup {
  /** The release each slot points at (`../releases/<id>`). */
  slots?: Partial<Record<Colour, string>>
  /** The instances that run, each on its slot's release. */
  running?: Colour[]
  /** The instance live.sock points at; current then points at its slot's release. */
  live?: Colour
}

interface Outcome {
  code: number | null
  stdout: string
  stderr: string
}

const done = (stdout = ''): Outcome => ({ code: 0, stdout, stderr: '' })
const failed = (stderr: string, code: number | null = 1): Outcome => ({ code, stdout: '', stderr })

/** Splits shell text as toShell quotes it: bare words, '...' words, `'\''`; operators stay words. */
export function shellWords(line: string): { word: string; quoted: boolean }[] {
  const words: { word: string; quoted: boolean }[] = []
  let word = ''
  let quoted = false
  let inWord = false
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]
    if (ch === "'") {
      const end = line.indexOf("'", i + 1)
      word += line.slice(i + 1, end)
      i = end
      quoted = inWord = true
    } else if (ch === '\\' && line[i + 1] === "'") {
      word += "'"
      i++
      inWord = true
    } else if (ch === ' ' || ch === '\n') {
      if (inWord) words.push({ word, quoted })
      word = ''
      quoted = inWord = false
    } else if (ch === ';') {
      if (inWord) words.push({ word, quoted })
      words.push({ word: ';', quoted: false })
      word = ''
      quoted = inWord = false
    } else {
      word += ch
      inWord = true
    }
  }
  if (inWord) words.push({ word, quoted })
  return words
}

export class FakeBlueGreenHost implements RemoteHost {
  readonly target: Target = { user: 'deploy', host: 'fake', port: 22, label: 'deploy@fake:22' }
  /** Every command line, as sent. */
  readonly commands: string[] = []
  /** What changed, in order: `start myapp@green`, `slot green -> v2`, `live -> green`, `drain ...`. */
  readonly events: string[] = []
  /** What a real host would punish (see the header). */
  readonly violations: string[] = []
  /** Every symlink under release-path: path -> target as written. */
  readonly links = new Map<string, string>()
  readonly instances: Record<Colour, InstanceState>
  readonly releaseLog: ReleaseLogEntry[] = []

  // Knobs
  /** Releases whose master dies at boot (systemd then restarts it every RestartSec). */
  bootFails = new Set<string>()
  /** Releases whose health answers 500. */
  unhealthy = new Set<string>()
  /** Releases whose health names another release (stale code, a wrong build). */
  namesRelease = new Map<string, string>()
  /** Releases that answer on their own socket but not through Nginx (e.g. ALLOWED_HOSTS refuses Nginx's Host). */
  failsBehindNginx = new Set<string>()
  /** `start myapp@green`, `stop myapp@blue`: what sudo refuses. */
  sudoRefuses = new Set<string>()
  /** The drain helper finds no `ss` (exit 4), or the queue never empties (exit 3). */
  drain: 'empties' | 'no-ss' | 'stays-full' = 'empties'
  /** Links that cannot be replaced (mv fails), e.g. LIVE. */
  readOnly = new Set<string>()
  /** The host runs the helper's watchworkers (else verification polls). */
  watchHelper = true
  /** The remote helper's commands, answered from the host's state. */
  readonly helper: HelperClient
  /** Drops the connection instead of running the first command this matches (the command does not run). */
  dropWhen?: (command: string) => boolean
  /** Runs after every command, for what happens on the host meanwhile. */
  afterCommand?: (command: string) => void

  private connected = true
  private nextPid = 100
  private readonly dir = mkdtempSync(path.join(tmpdir(), 'zdd-fake-bg-'))
  private readonly servers: Server[] = []

  constructor(setup: BlueGreenSetup = {}) {
    const stopped = (): InstanceState => ({
      activeState: 'inactive',
      subState: 'dead',
      mainPid: 0,
      workers: []
    })
    this.instances = { blue: stopped(), green: stopped() }
    this.helper = new FakeHelper({
      watchWorkers: spec => this.helperCall('watchworkers', spec, () => this.watchWorkers(spec)),
      gunicornEnv: (unit, files) =>
        this.helperCall('gunicornenv', [unit, files], () => ({ readable: true }))
    })
    for (const c of COLOURS) {
      const release = setup.slots?.[c]
      if (release) this.links.set(slotOf(c), `../releases/${release}`)
    }
    for (const c of setup.running ?? []) this.boot(c)
    if (setup.live) {
      this.links.set(LIVE, socketOf(setup.live))
      const release = this.slotRelease(setup.live)
      if (release) this.links.set(CURRENT, `releases/${release}`)
    }
  }

  /** The instance live.sock points at, if it points at one. */
  get live(): Colour | undefined {
    const target = this.links.get(LIVE)
    return COLOURS.find(c => socketOf(c) === target)
  }

  /** The release current points at. */
  get current(): string | undefined {
    return /^releases\/(.+)$/.exec(this.links.get(CURRENT) ?? '')?.[1]
  }

  slotRelease(c: Colour): string | undefined {
    return /^\.\.\/releases\/(.+)$/.exec(this.links.get(slotOf(c)) ?? '')?.[1]
  }

  running(c: Colour): boolean {
    const i = this.instances[c]
    return i.activeState === 'active' && i.mainPid > 0
  }

  /** The instance's master keeps dying at boot: Restart=always keeps it activating/auto-restart. */
  crashLoop(c: Colour): void {
    const release = this.slotRelease(c)
    if (release) this.bootFails.add(release)
    this.boot(c)
  }

  /** The instance's master dies and stays dead (the unit failed). */
  kill(c: Colour): void {
    Object.assign(this.instances[c], {
      activeState: 'failed',
      subState: 'failed',
      mainPid: 0,
      workers: []
    })
  }

  /** Forgets the commands and events so far (after a test's setup reads). */
  forget(): void {
    this.commands.length = 0
    this.events.length = 0
  }

  /** Starts the HTTP servers that answer for the instances and Nginx (call before requests). */
  async listen(): Promise<void> {
    const routes = ['blue', 'green', 'nginx'] as const
    for (const route of routes) {
      const server = createServer((req, res) => this.respond(route, req, res))
      await new Promise<void>(resolve =>
        server.listen(path.join(this.dir, `${route}.sock`), resolve)
      )
      this.servers.push(server)
    }
  }

  async dispose(): Promise<void> {
    for (const server of this.servers) {
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
    rmSync(this.dir, { recursive: true, force: true })
  }

  // --- the app, its instances and Nginx

  private respond(route: Colour | 'nginx', req: IncomingMessage, res: ServerResponse): void {
    if (route === 'nginx') {
      if (req.url?.startsWith('/static/')) {
        const release = this.current
        if (!release || req.url !== `/static/${STATIC_FILE}`) res.writeHead(404).end('not found')
        else res.writeHead(200, { 'content-type': 'text/css' }).end(staticBody(release))
        return
      }
      const live = this.live
      if (!live || !this.running(live)) {
        res.writeHead(502).end('bad gateway')
        return
      }
      if (this.failsBehindNginx.has(this.instances[live].release ?? '')) {
        res.writeHead(400).end('bad request')
        return
      }
      this.answerAs(live, res)
      return
    }
    // A stopped instance's socket is gone; a connection it held is dropped.
    if (!this.running(route)) {
      res.destroy()
      return
    }
    this.answerAs(route, res)
  }

  private answerAs(c: Colour, res: ServerResponse): void {
    const release = this.instances[c].release ?? ''
    if (this.unhealthy.has(release)) {
      res.writeHead(500, { 'content-type': 'text/html' }).end('<h1>Server Error</h1>')
      return
    }
    const named = this.namesRelease.get(release) ?? release
    res.writeHead(200, { 'content-type': 'application/json', 'x-release': named })
    res.end(JSON.stringify({ status: 'ok', release: named }))
  }

  private boot(c: Colour): void {
    const i = this.instances[c]
    const release = this.slotRelease(c)
    i.release = release
    if (!release || this.bootFails.has(release)) {
      // Restart=always: between attempts the unit is activating/auto-restart without a master.
      Object.assign(i, { activeState: 'activating', subState: 'auto-restart', mainPid: 0 })
      i.workers = []
      return
    }
    Object.assign(i, { activeState: 'active', subState: 'running', mainPid: this.nextPid++ })
    i.workers = [this.nextPid++, this.nextPid++, this.nextPid++]
  }

  private stop(c: Colour): void {
    if (this.live === c && this.running(c))
      this.violations.push(`stopped myapp@${c} while live.sock points at it`)
    Object.assign(this.instances[c], {
      activeState: 'inactive',
      subState: 'dead',
      mainPid: 0,
      workers: [],
      release: undefined
    })
  }

  private colourOfUnit(unit: string | undefined): Colour | undefined {
    const m = /^myapp@(blue|green)$/.exec(unit ?? '')
    return m ? (m[1] as Colour) : undefined
  }

  // --- commands

  private systemctl(args: string[], root: boolean): Outcome {
    const [verb, unit] = args
    const c = this.colourOfUnit(unit)
    if (verb === 'show') return c ? done(this.show(c)) : failed(`unknown unit ${unit}`)
    if (!root) return failed('Interactive authentication required.')
    if (!c) return failed(`Unit ${unit} not found.`, 5)
    if (verb === 'start') {
      this.events.push(`start ${unit}`)
      if (!this.running(c)) this.boot(c)
      return done()
    }
    if (verb === 'stop') {
      this.events.push(`stop ${unit}`)
      this.stop(c)
      return done()
    }
    return failed(`fake host: systemctl ${verb} is not expected under blue-green`)
  }

  private show(c: Colour): string {
    const i = this.instances[c]
    const argv = `/srv/myapp/.venv/bin/gunicorn --workers 3 --chdir ${slotOf(c)} --bind unix:${socketOf(c)} wsgi:app`
    return [
      'LoadState=loaded',
      `ActiveState=${i.activeState}`,
      `SubState=${i.subState}`,
      `MainPID=${i.mainPid}`,
      'NRestarts=0',
      `ExecStart={ path=/srv/myapp/.venv/bin/gunicorn ; argv[]=${argv} ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }`,
      'ExecReload=',
      `WorkingDirectory=${ROOT}`,
      'EnvironmentFiles=/etc/myapp.env (ignore_errors=no)',
      'User=www-data',
      'FragmentPath=/etc/systemd/system/myapp@.service',
      `Id=myapp@${c}`,
      ''
    ].join('\n')
  }

  private ps(): string {
    const lines: string[] = []
    for (const c of COLOURS) {
      const i = this.instances[c]
      if (i.mainPid === 0) continue
      const args = `/srv/myapp/.venv/bin/python3 /srv/myapp/.venv/bin/gunicorn --workers 3 --chdir ${slotOf(c)} --bind unix:${socketOf(c)} wsgi:app`
      lines.push(`${i.mainPid} 1 ${args}`, ...i.workers.map(w => `${w} ${i.mainPid} ${args}`))
    }
    return lines.map(l => `${l}\n`).join('')
  }

  private pwdx(pids: string[]): string {
    const out: string[] = []
    for (const pid of pids.map(Number))
      for (const c of COLOURS) {
        const i = this.instances[c]
        if (i.workers.includes(pid) || i.mainPid === pid)
          out.push(`${pid}: ${ROOT}/releases/${i.release}\n`)
      }
    return out.join('')
  }

  private link(target: string, link: string): Outcome {
    this.links.set(link, target)
    return done()
  }

  private move(from: string, to: string): Outcome {
    const target = this.links.get(from)
    if (target === undefined) return failed(`mv: cannot stat '${from}': No such file or directory`)
    if (this.readOnly.has(to))
      return failed(`mv: cannot move '${from}' to '${to}': Permission denied`)
    for (const c of COLOURS)
      if (to === slotOf(c)) {
        if (this.instances[c].mainPid > 0 || this.instances[c].activeState === 'activating')
          this.violations.push(`slots/${c} repointed while myapp@${c} runs`)
        this.events.push(`slot ${c} -> ${/[^/]+$/.exec(target)?.[0]}`)
      }
    if (to === LIVE) this.events.push(`live -> ${COLOURS.find(c => socketOf(c) === target)}`)
    if (to === CURRENT) this.events.push(`current -> ${/[^/]+$/.exec(target)?.[0]}`)
    this.links.delete(from)
    this.links.set(to, target)
    return done()
  }

  private remove(paths: string[]): Outcome {
    for (const p of paths) {
      if (this.links.delete(p)) this.events.push(`rm ${p}`)
    }
    return done()
  }

  /** `readlink LINK` (its target as written) or `readlink -f PATH` (release directories are real). */
  private readlink(args: string[]): Outcome {
    if (args[0] === '-f') {
      const link = this.links.get(args[1])
      const release = /releases\/([^/]+)$/.exec(link ?? '')?.[1]
      return done(`${release ? `${ROOT}/releases/${release}` : args[1]}\n`)
    }
    const target = this.links.get(args[args.length - 1])
    return target === undefined ? failed('') : done(`${target}\n`)
  }

  /**
   * One helper command: recorded in `commands` as `helper <name> <args as JSON>` (so
   * dropWhen and afterCommand see it), refused like a real one when the connection is down.
   */
  private helperCall<T>(command: string, args: unknown, answer: () => T): T {
    const line = `helper ${command} ${JSON.stringify(args)}`
    this.commands.push(line)
    if (this.connected && this.dropWhen?.(line)) {
      this.dropWhen = undefined
      this.connected = false
    }
    const closed = { code: null, signal: null, stdout: '', stderr: 'SSH connection is closed' }
    if (!this.connected)
      throw new HelperError(
        command,
        this.target.label,
        'the connection dropped before it answered',
        {
          ...closed,
          timedOut: false
        }
      )
    const value = answer()
    this.afterCommand?.(line)
    return value
  }

  /** The watch helper: the unit, ps and the new workers' directories, as the host has them now. */
  private watchWorkers(spec: WatchSpec): WatchAnswer {
    if (!this.watchHelper) throw new HelperError('watchworkers', this.target.label, 'no answer')
    const c = this.colourOfUnit(spec.show[2])
    if (!c) throw new HelperError('watchworkers', this.target.label, `unknown unit ${spec.show[2]}`)
    const i = this.instances[c]
    const dirs = spec.pwdx && i.mainPid > 0 ? this.pwdx(i.workers.map(String)) : ''
    return { show: this.show(c), ps: this.ps(), dirs }
  }

  private shScript(script: string, args: string[]): Outcome {
    if (script.includes('ss -xlnH')) {
      this.events.push(`drain ${args[0]}`)
      if (this.drain === 'no-ss') return { code: 4, stdout: '', stderr: '' }
      return this.drain === 'stays-full' ? { code: 3, stdout: '', stderr: '' } : done()
    }
    if (script.includes('readlink'))
      return done(args.map(p => `${this.links.get(p) ?? ''}\n`).join(''))
    return failed('fake host: unexpected sh -c script')
  }

  /** One simple command (argv). */
  private run(argv: string[]): Outcome {
    const root = argv[0] === 'sudo' && argv[1] === '-n'
    const words = root ? argv.slice(2) : argv
    if (root && this.sudoRefuses.has(words.slice(1, 3).join(' ')))
      return failed('sudo: a password is required\n')
    const [program, ...args] = words
    switch (program) {
      case 'true':
        return done()
      case 'systemctl':
        return this.systemctl(args, root)
      case 'ps':
        return done(this.ps())
      case 'pwdx':
        return done(this.pwdx(args))
      case 'ln':
        return this.link(args[1], args[2])
      case 'mv':
        return this.move(args[1], args[2])
      case 'rm':
        return this.remove(args.slice(1))
      case 'mkdir':
        return done()
      case 'readlink':
        return this.readlink(args)
      case 'sh':
        return this.shScript(args[1], args.slice(3))
      case 'cat':
        return failed(`cat: ${args[1]}: No such file or directory`)
      case 'journalctl':
        return done(`myapp journal: ${args[1]} log line\n`)
      case 'tail':
        return done('nginx error log line\n')
      case 'find':
        return done(`${staticBody('x').length} ${STATIC_FILE}\n`)
      case 'sha256sum': {
        const release = /\/releases\/([^/]+)\//.exec(args[0])?.[1] ?? ''
        return done(
          `${createHash('sha256').update(staticBody(release)).digest('hex')}  ${args[0]}\n`
        )
      }
      case 'printf':
        return done(args[0].replace('%s', args[1] ?? '').replace(/\\n$/, '\n'))
      case 'echo':
        return done(`${args.join(' ')}\n`)
      default:
        return failed(`fake host: unscripted command ${argv.join(' ')}`, 127)
    }
  }

  /** A command line: simple commands joined by '&&' and ';', each maybe `2>/dev/null || true` or `>> file`. */
  private interpret(line: string): Outcome {
    const words = shellWords(line)
    let stdout = ''
    let last: Outcome = done()
    let skip = false
    let argv: string[] = []
    let appendTo: string | undefined
    let orTrue = false
    const finish = () => {
      if (argv.length === 0) return
      let out = skip ? last : this.run(argv)
      if (!skip && appendTo !== undefined) {
        if (out.code === 0) this.releaseLog.push(JSON.parse(out.stdout) as ReleaseLogEntry)
        out = { ...out, stdout: '' }
      }
      if (!skip) stdout += out.stdout
      if (orTrue && out.code !== 0) out = { ...out, code: 0, stderr: '' }
      last = skip ? last : out
      argv = []
      appendTo = undefined
      orTrue = false
    }
    for (let i = 0; i < words.length; i++) {
      const { word, quoted } = words[i]
      if (!quoted && word === '&&') {
        finish()
        skip = skip || last.code !== 0
      } else if (!quoted && word === ';') {
        finish()
        skip = false
      } else if (!quoted && word === '2>/dev/null') continue
      else if (!quoted && word === '||' && words[i + 1]?.word === 'true') {
        orTrue = true
        i++
      } else if (!quoted && word === '>>') appendTo = words[++i].word
      else argv.push(word)
    }
    finish()
    return { ...last, stdout }
  }

  exec(command: ShellLine, _options?: ExecOptions): Promise<ExecResult> {
    this.commands.push(command)
    const closed: ExecResult = {
      code: null,
      signal: null,
      stdout: '',
      stderr: 'SSH connection is closed',
      timedOut: false
    }
    if (this.connected && this.dropWhen?.(command)) {
      this.dropWhen = undefined
      this.connected = false
    }
    if (!this.connected) return Promise.resolve(closed)
    const outcome = this.interpret(command)
    this.afterCommand?.(command)
    return Promise.resolve({ ...outcome, signal: null, timedOut: false })
  }

  /** The instance's socket, live.sock through its link, or Nginx on any TCP port. */
  openChannel(to: ChannelTarget): Promise<Duplex> {
    if (!this.connected) return Promise.reject(new Error('SSH connection is closed'))
    let route: Colour | 'nginx' | undefined
    if (to.kind === 'tcp') route = 'nginx'
    else {
      const socket = to.socket === LIVE ? this.links.get(LIVE) : to.socket
      const c = COLOURS.find(c => socketOf(c) === socket)
      if (c && this.running(c)) route = c
    }
    if (!route)
      return Promise.reject(
        new Error(`open failure: connect ${to.kind === 'unix' ? to.socket : 'tcp'}: ENOENT`)
      )
    const file = path.join(this.dir, `${route}.sock`)
    return new Promise((resolve, reject) => {
      const socket = connect(file)
      socket.once('connect', () => resolve(socket))
      socket.once('error', reject)
    })
  }

  isConnected(): boolean {
    return this.connected
  }

  /** A new connection to the same host (what reconnect() gives after a drop). */
  reconnected(): FakeBlueGreenHost {
    this.connected = true
    return this
  }

  close(): Promise<void> {
    return Promise.resolve()
  }
}
