// A simulated deploy target for unit tests of the cutover's branches: it
// records every command, keeps the state a real host would (where `current`
// points, the unit, the Gunicorn master and its workers and their directory,
// the release log) and answers HTTP health requests from a real local HTTP
// server, so the action's own HTTP client runs unchanged. Knobs script the
// failures: a refused reload, a master that dies, old workers that stay, a
// reload that keeps the old code, a connection that drops, a release that does
// not import. The remote helper answers in types (`helper`): the import check
// from `imports`, the EnvironmentFile as fine; it has no worker watch, so
// verification polls.
import { createServer, type Server } from 'node:http'
import { connect } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import type { Duplex } from 'node:stream'
import type { Target } from '../src/core/targets.js'
import type { ImportAnswer, ImportRequest } from '../src/host/helper-client.js'
import { FakeHelper } from './fake-helper.js'
import type { ShellLine } from '../src/transport/shell-quote.js'
import type {
  ChannelTarget,
  ExecOptions,
  ExecResult,
  RemoteHost
} from '../src/transport/ssh-connection.js'

export type ReloadBehaviour =
  | 'ok'
  | 'refused'
  | 'master-dies'
  | 'old-workers-stay'
  | 'keeps-old-code'
  | 'drops-connection'
  /**
   * the new workers cannot load the app: the master stays up without workers, logs why,
   * and is stopping (it exits before a later reload reaches it)
   */
  | 'master-halts'
  /** the master dies and systemd (Restart=) starts a new one on current before anyone looks */
  | 'systemd-restarts'

export interface FakeHostState {
  current?: string
  activeState: 'active' | 'failed' | 'inactive' | 'activating'
  mainPid: number
  workers: number[]
  /** The release the workers run (their directory is releases/<it>). */
  workerRelease?: string
  releaseLog: string[]
}

const ROOT = '/srv/myapp'

export class FakeHost implements RemoteHost {
  readonly target: Target = { user: 'deploy', host: 'fake', port: 22, label: 'deploy@fake:22' }
  readonly commands: string[] = []
  /** What each reload (then each later one) does; the last entry repeats. */
  reloads: ReloadBehaviour[] = ['ok']
  /** Restarts and starts that fail to bring the master up (a release that cannot boot). */
  bootFails = new Set<string>()
  /** Releases Nginx cannot reach (it answers 502 for them while Gunicorn answers 200). */
  nginxFails = new Set<string>()
  /** Requests Nginx answered, with their status, in order. */
  readonly nginxAnswers: number[] = []
  /**
   * /proc mounted with hidepid: the deploy user's ps lists none of the service's
   * processes; `sudo ps` lists them when `sudoPs`, else sudo refuses it.
   */
  hidesProcesses?: { sudoPs: boolean }
  /** What the import check of a release answers (by default: it imports). */
  imports: (request: ImportRequest) => ImportAnswer = () => ({ ok: true, seconds: 0.4, reads: [] })
  readonly helper = new FakeHelper({
    importCheck: request => this.imports(request),
    envCheck: { exists: true, readable: true, files: [], missing: [], empty: [], count: 2 }
  })
  /** What journalctl answers (the unit's journal); read after a cursor, the lines after it. */
  journal = 'log line\n'
  /** What a reload that halts the master adds to the journal. */
  haltLog = ''
  /** The master is stopping on its own (after 'master-halts'). */
  halting = false
  /** What health names for a release, when not the release itself (e.g. an app outside releases/). */
  healthNames = new Map<string, string>()
  state: FakeHostState
  private connected = true
  private nextPid = 100
  private readonly dir = mkdtempSync(path.join(tmpdir(), 'zdd-fake-'))
  private readonly socket = path.join(this.dir, 'http.sock')
  private readonly nginxSocket = path.join(this.dir, 'nginx.sock')
  private server?: Server
  private nginx?: Server

  constructor(current: string | undefined) {
    this.state = { current, activeState: 'inactive', mainPid: 0, workers: [], releaseLog: [] }
    if (current) this.boot(current)
  }

  /** Starts the HTTP server that answers for the app (call before requests). */
  async listen(): Promise<void> {
    this.server = createServer((_req, res) => {
      const release = this.state.mainPid > 0 ? this.state.workerRelease : undefined
      if (!release) {
        res.writeHead(502).end('bad gateway')
        return
      }
      const named = this.healthNames.get(release) ?? release
      res.writeHead(200, { 'content-type': 'application/json', 'x-release': named })
      res.end(JSON.stringify({ status: 'ok', release: named }))
    })
    await new Promise<void>(resolve => this.server!.listen(this.socket, resolve))
    // Nginx: what a TCP channel reaches; it passes Gunicorn's answer on, unless it cannot reach it.
    this.nginx = createServer((_req, res) => {
      const release = this.state.mainPid > 0 ? this.state.workerRelease : undefined
      if (!release || this.nginxFails.has(release)) {
        this.nginxAnswers.push(502)
        res.writeHead(502).end('bad gateway')
        return
      }
      this.nginxAnswers.push(200)
      res.writeHead(200, { 'content-type': 'application/json', 'x-release': release })
      res.end(JSON.stringify({ status: 'ok', release }))
    })
    await new Promise<void>(resolve => this.nginx!.listen(this.nginxSocket, resolve))
  }

  async dispose(): Promise<void> {
    await new Promise(resolve => (this.server ? this.server.close(resolve) : resolve(undefined)))
    await new Promise(resolve => (this.nginx ? this.nginx.close(resolve) : resolve(undefined)))
    rmSync(this.dir, { recursive: true, force: true })
  }

  private boot(release: string): void {
    this.state.activeState = 'active'
    this.state.mainPid = this.nextPid++
    this.newWorkers(release)
  }

  private newWorkers(release: string): void {
    this.state.workers = [this.nextPid++, this.nextPid++, this.nextPid++]
    this.state.workerRelease = release
  }

  private die(): void {
    this.halting = false
    this.state.activeState = 'failed'
    this.state.mainPid = 0
    this.state.workers = []
    this.state.workerRelease = undefined
  }

  private reload(): Partial<ExecResult> {
    const behaviour = this.reloads.length > 1 ? this.reloads.shift()! : this.reloads[0]
    const release = this.state.current
    if (behaviour === 'refused') return { code: 1, stderr: 'sudo: a password is required\n' }
    if (this.halting) {
      // the stopping master exits before the HUP reaches it: systemd has nothing to reload
      this.halting = false
      this.die()
      return { code: 1, stderr: 'myapp.service is not active, cannot reload.\n' }
    }
    if (behaviour === 'drops-connection') {
      this.connected = false
      return { code: null, stderr: 'SSH connection is closed' }
    }
    if (behaviour === 'master-halts') {
      this.halting = true
      this.state.workers = []
      this.state.workerRelease = undefined
      this.journal += this.haltLog
    } else if (behaviour === 'systemd-restarts' && release) this.boot(release)
    else if (behaviour === 'master-dies' || (release && this.bootFails.has(release))) this.die()
    else if (behaviour === 'keeps-old-code') this.newWorkers(this.state.workerRelease ?? '')
    else if (behaviour === 'ok' && release) this.newWorkers(release)
    return { code: 0 }
  }

  private restart(): Partial<ExecResult> {
    this.halting = false
    const release = this.state.current
    if (!release || this.bootFails.has(release)) this.die()
    else this.boot(release)
    return { code: 0 }
  }

  private show(): string {
    const s = this.state
    return [
      'LoadState=loaded',
      `ActiveState=${s.activeState}`,
      `SubState=${s.activeState === 'active' ? 'running' : 'dead'}`,
      `MainPID=${s.mainPid}`,
      'NRestarts=0',
      'User=www-data'
    ].join('\n')
  }

  private ps(): string {
    const s = this.state
    if (s.mainPid === 0) return ''
    const master = `${s.mainPid} 1 /srv/myapp/.venv/bin/python3 /srv/myapp/.venv/bin/gunicorn wsgi:app`
    return [master, ...s.workers.map(w => `${w} ${s.mainPid} ${master.split(' 1 ')[1]}`)].join('\n')
  }

  private psAs(root: boolean): Partial<ExecResult> {
    if (!this.hidesProcesses) return { stdout: this.ps() }
    if (!root) return { stdout: '' }
    if (!this.hidesProcesses.sudoPs) return { code: 1, stderr: 'sudo: a password is required\n' }
    return { stdout: this.ps() }
  }

  private pwdx(command: string): string {
    const pids = [...command.matchAll(/\b(\d+)\b/g)].map(m => Number(m[1]))
    return pids
      .filter(p => this.state.workers.includes(p))
      .map(p => `${p}: ${this.dirOf(this.state.workerRelease ?? '')}`)
      .join('\n')
  }

  /** The directory a release runs in: releases/<id>, or the path itself for one outside. */
  dirOf(release: string): string {
    return release.startsWith('/') ? release : `${ROOT}/releases/${release}`
  }

  private answer(command: string): Partial<ExecResult> {
    // eachOf(): several reads in one command, each output after its marker line
    const each = /^echo (@@[\w-]+@@); /.exec(command)
    if (each) {
      const parts = command.slice(each[0].length).split(`; echo ${each[1]}; `)
      return { stdout: parts.map(p => `${each[1]}\n${this.answer(p).stdout ?? ''}\n`).join('') }
    }
    // current -> releases/<id>, or (a hand-made server) an absolute path kept as it is
    const switched = /ln -sfn (?:releases\/([A-Za-z0-9._-]+)|(\/\S+)) /.exec(command)
    if (switched) {
      this.state.current = switched[1] ?? switched[2]
      return {}
    }
    if (/systemctl reload/.test(command)) return this.reload()
    if (/systemctl (restart|start)/.test(command)) return this.restart()
    if (/systemctl stop/.test(command)) {
      this.die()
      this.state.activeState = 'inactive'
      return {}
    }
    if (/systemctl show/.test(command)) return { stdout: this.show() }
    if (/^(sudo -n )?ps -ww -e/.test(command)) return this.psAs(command.startsWith('sudo'))
    if (/pwdx/.test(command)) return { stdout: this.pwdx(command) }
    if (/>> /.test(command)) {
      this.state.releaseLog.push(command)
      return {}
    }
    if (/^rm -f .*current/.test(command)) {
      this.state.current = undefined
      return {}
    }
    if (/journalctl .*--show-cursor/.test(command))
      return {
        stdout: `-- No entries --\n-- cursor: line=${this.journal.split('\n').length - 1}\n`
      }
    const after = /--after-cursor 'line=(\d+)'|--after-cursor line=(\d+)/.exec(command)
    if (after)
      return {
        stdout: this.journal
          .split('\n')
          .slice(Number(after[1] ?? after[2]))
          .join('\n')
      }
    if (/journalctl/.test(command)) return { stdout: this.journal }
    if (/tail -n/.test(command)) return { stdout: 'log line\n' }
    if (/^true$/.test(command)) return {}
    return { code: 127, stderr: `fake host: unscripted command ${command}` }
  }

  exec(command: ShellLine, _options?: ExecOptions): Promise<ExecResult> {
    this.commands.push(command)
    if (!this.connected)
      return Promise.resolve({
        code: null,
        signal: null,
        stdout: '',
        stderr: 'SSH connection is closed',
        timedOut: false
      })
    return Promise.resolve({
      code: 0,
      signal: null,
      stdout: '',
      stderr: '',
      timedOut: false,
      ...this.answer(command)
    })
  }

  /** A unix socket reaches Gunicorn; a TCP port reaches Nginx. */
  openChannel(to: ChannelTarget): Promise<Duplex> {
    if (!this.connected) return Promise.reject(new Error('SSH connection is closed'))
    return new Promise((resolve, reject) => {
      const socket = connect(to.kind === 'tcp' ? this.nginxSocket : this.socket)
      socket.once('connect', () => resolve(socket))
      socket.once('error', reject)
    })
  }

  isConnected(): boolean {
    return this.connected
  }

  /** A new connection to the same host (what reconnect() gives after a drop). */
  reconnected(): FakeHost {
    this.connected = true
    return this
  }

  close(): Promise<void> {
    return Promise.resolve()
  }
}
