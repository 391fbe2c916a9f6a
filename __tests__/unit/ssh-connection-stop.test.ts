// A timeout or a cancel ends a long remote command on the host, not only its
// channel: against a real SSH server that runs commands with /bin/sh in a
// session of their own, as sshd does without a pty.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { Readable } from 'node:stream'
import { toShell } from '../../src/transport/shell-quote.js'
import type { ExecResult, RemoteHost } from '../../src/transport/ssh-connection.js'
import {
  connectTo,
  startShellSshServer,
  type ShellSshServer
} from '../../__fixtures__/shell-ssh-server.js'

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** Whether `pid` runs (a zombie does not). */
function running(pid: number): boolean {
  const stat = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).stdout
  return stat.trim() !== '' && !stat.trim().startsWith('Z')
}

async function until(what: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!what()) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await sleep(25)
  }
}

let server: ShellSshServer
let remote: RemoteHost
let dir: string

beforeAll(async () => {
  server = await startShellSshServer()
  remote = await connectTo(server)
  dir = mkdtempSync(path.join(tmpdir(), 'zdd-stop-'))
})

afterAll(async () => {
  await remote?.close()
  await server?.close()
  rmSync(dir, { recursive: true, force: true })
})

let n = 0
/** A command that writes its own pid and a child's pid, then waits for the child. */
function longCommand(script = 'sleep 30'): {
  line: ReturnType<typeof toShell>
  pids: () => number[]
} {
  const file = path.join(dir, `pids-${++n}`)
  const line = toShell([
    'sh',
    '-c',
    `${script} & echo "$$ $!" > "$1.tmp" && mv "$1.tmp" "$1"; wait`,
    'sh',
    file
  ])
  return {
    line,
    pids: () => (existsSync(file) ? readFileSync(file, 'utf8').trim().split(' ').map(Number) : [])
  }
}

describe('exec with processGroup', () => {
  it('leaves the command running after a timeout without its group (why processGroup exists)', async () => {
    const cmd = longCommand()
    const result = await remote.exec(cmd.line, { timeoutMs: 500, processGroup: false })
    expect(result.timedOut).toBe(true)
    const [shell, child] = cmd.pids()
    expect(running(child)).toBe(true)
    for (const pid of [shell, child]) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // the shell ends by itself once its child is gone
      }
    }
  })

  it('ends the command and its children on the host when the timeout passes', async () => {
    const cmd = longCommand()
    const started = Date.now()
    const result = await remote.exec(cmd.line, { timeoutMs: 500 })
    expect(result.timedOut).toBe(true)
    expect(result.code).toBeNull()
    expect(Date.now() - started).toBeLessThan(2500)
    const pids = cmd.pids()
    expect(pids).toHaveLength(2)
    await until(() => pids.every(p => !running(p)), 2000)
  })

  it('ends the command when the signal aborts, and reports it cancelled', async () => {
    const cmd = longCommand()
    const abort = new AbortController()
    const exec = remote.exec(cmd.line, { signal: abort.signal, processGroup: true })
    await until(() => cmd.pids().length === 2)
    const aborted = Date.now()
    abort.abort()
    const result = await exec
    expect(Date.now() - aborted).toBeLessThan(1500)
    expect(result.cancelled).toBe(true)
    expect(result.timedOut).toBe(false)
    expect(result.code).toBeNull()
    await until(() => cmd.pids().every(p => !running(p)), 2000)
  })

  it('sends KILL to a command that ignores TERM', async () => {
    const cmd = longCommand("trap '' TERM; sleep 30")
    const abort = new AbortController()
    const exec = remote.exec(cmd.line, { signal: abort.signal, processGroup: true })
    await until(() => cmd.pids().length === 2)
    const aborted = Date.now()
    abort.abort()
    const result = await exec
    const took = Date.now() - aborted
    expect(took).toBeGreaterThanOrEqual(1400)
    expect(took).toBeLessThan(4000)
    expect(result.cancelled).toBe(true)
    await until(() => cmd.pids().every(p => !running(p)), 2000)
  })

  it('keeps the exit status and output of a command that finishes, without the group line', async () => {
    const abort = new AbortController()
    const result = await remote.exec(toShell(['sh', '-c', 'echo out; echo err >&2; exit 3']), {
      signal: abort.signal,
      timeoutMs: 10_000
    })
    abort.abort() // after the end: changes nothing
    expect(result).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n', timedOut: false })
    expect(result.cancelled).toBeUndefined()
    expect(server.commands.at(-1)).toMatch(/^setsid -w sh -c /)
  })

  it('runs nothing when the signal was aborted before', async () => {
    const before = server.commands.length
    const result = await remote.exec(toShell(['true']), {
      signal: AbortSignal.abort(),
      processGroup: true
    })
    expect(result.cancelled).toBe(true)
    expect(result.code).toBeNull()
    expect(server.commands.length).toBe(before)
  })
})

describe('limits every command has', () => {
  let strict: RemoteHost

  beforeAll(async () => {
    strict = await connectTo(server, { commandTimeoutMs: 700 })
  })
  afterAll(() => strict?.close())

  /** `exec`, or a result saying it was still running after `ms` (the test then fails). */
  const within = async (exec: Promise<ExecResult>, ms: number) => {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<ExecResult>(resolve => {
      timer = setTimeout(() => resolve({ stillRunning: true } as unknown as ExecResult), ms)
    })
    try {
      return await Promise.race([exec, late])
    } finally {
      clearTimeout(timer)
    }
  }

  // Issue 18: a command whose call named no timeout (the lock, listing releases, prune,
  // nginx -t, flask db current) could run forever, the lock kept fresh meanwhile.
  it('stops a command whose call names no limit at the default, with everything it started', async () => {
    const cmd = longCommand()
    const started = Date.now()
    const result = await within(strict.exec(cmd.line), 20_000)
    expect(result).toMatchObject({ timedOut: true, code: null })
    expect(Date.now() - started).toBeLessThan(10_000) // the limit is 0.7 s; the machine may be busy
    await until(() => cmd.pids().length === 2 && cmd.pids().every(p => !running(p)), 10_000)
  })

  it('stops a command that takes none of its input for idleTimeoutMs, and says it stalled', async () => {
    const cmd = longCommand()
    // far more than the channel's window: the server stops taking it while sleep runs
    const input = Readable.from(
      (function* () {
        for (let i = 0; i < 200; i++) yield Buffer.alloc(64 * 1024, 'x')
      })()
    )
    const started = Date.now()
    const result = await within(
      remote.exec(cmd.line, { stdin: input, timeoutMs: Infinity, idleTimeoutMs: 600 }),
      20_000
    )
    expect(result).toMatchObject({ timedOut: true, stalled: true, code: null })
    expect(Date.now() - started).toBeLessThan(10_000)
    await until(() => cmd.pids().every(p => !running(p)), 10_000)
  })

  it('lets a slow upload that keeps moving run past idleTimeoutMs', async () => {
    async function* slowly() {
      for (let i = 0; i < 8; i++) {
        await sleep(150)
        yield Buffer.from(`chunk ${i}\n`)
      }
    }
    const result = await remote.exec(toShell(['sh', '-c', 'wc -l']), {
      stdin: Readable.from(slowly()),
      timeoutMs: Infinity,
      idleTimeoutMs: 500
    })
    expect(result).toMatchObject({ code: 0, timedOut: false })
    expect(result.stdout.trim()).toBe('8')
  })
})
