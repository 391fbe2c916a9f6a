// What a command prints is kept up to a limit per stream, the newest part, with a
// line saying how much was cut: against a real SSH server running /bin/sh.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { tailLines } from '../../src/transport/remote-command.js'
import { toShell } from '../../src/transport/shell-quote.js'
import type { RemoteHost } from '../../src/transport/ssh-connection.js'
import { cutNotice, DEFAULT_MAX_OUTPUT_BYTES, OutputTail } from '../../src/transport/output-tail.js'
import {
  connectTo,
  startShellSshServer,
  type ShellSshServer
} from '../../__fixtures__/shell-ssh-server.js'

let server: ShellSshServer
let remote: RemoteHost

beforeAll(async () => {
  server = await startShellSshServer()
  remote = await connectTo(server)
})

afterAll(async () => {
  await remote?.close()
  await server?.close()
})

/** Prints `lines` numbered lines of 100 bytes to stdout (or stderr). */
function printLines(lines: number, toStderr = false): ReturnType<typeof toShell> {
  const script = `i=0; while [ $i -lt ${lines} ]; do printf 'line %08d %s\\n' $i "$1"; i=$((i + 1)); done${toStderr ? ' >&2' : ''}`
  return toShell(['sh', '-c', script, 'sh', 'x'.repeat(85)])
}

describe('exec output', () => {
  // Issue 18: remote output was buffered without a limit (a runaway command could fill the runner's memory).
  it('keeps at most the default limit of a stream, the newest part, and says how much was cut', async () => {
    const lines = 60_000 // 6,000,000 bytes
    const result = await remote.exec(printLines(lines), { timeoutMs: 60_000 })
    expect(result.code).toBe(0)
    expect(result.stdout.length).toBeLessThanOrEqual(DEFAULT_MAX_OUTPUT_BYTES + 100)
    const [notice, first] = result.stdout.split('\n')
    const cut = Number(/^\[zdd: (\d+) bytes of earlier output cut\]$/.exec(notice)?.[1])
    expect(first).toMatch(/^line \d{8} x+$/)
    expect(
      result.stdout.endsWith(`line ${String(lines - 1).padStart(8, '0')} ${'x'.repeat(85)}\n`)
    ).toBe(true)
    // what was cut and what was kept add up to everything printed
    expect(cut + result.stdout.length - notice.length - 1).toBe(lines * 100)
  }, 60_000)

  it('cuts stderr the same way, and a command may ask for a smaller or larger limit', async () => {
    const small = await remote.exec(printLines(50, true), { maxOutputBytes: 1000 })
    // (stderr begins with the process group's line, cut with the rest)
    expect(small.stderr).toMatch(/^\[zdd: 40\d\d bytes of earlier output cut\]\nline 00000040 /)
    const whole = await remote.exec(printLines(50), { maxOutputBytes: 5000 })
    expect(whole.stdout.split('\n')).toHaveLength(51)
  })

  it('decodes characters split across chunks', async () => {
    const result = await remote.exec(
      toShell(['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do printf "é€"; i=$((i + 1)); done'])
    )
    expect(result.stdout).toBe('é€'.repeat(20000))
  })
})

describe('OutputTail', () => {
  it('starts the kept text at a whole character when the tail has no line break', () => {
    const tail = new OutputTail(7)
    tail.push(Buffer.from('ab€€€'))
    expect(tail.text()).toBe(`${cutNotice(5)}\n€€`)
    expect(new OutputTail(10).text()).toBe('')
  })
})

describe('tailLines', () => {
  it('keeps the last lines, and at most so many characters of them', () => {
    expect(tailLines('a\nb\nc\n', 2)).toBe('b\nc')
    expect(tailLines(`start ${'x'.repeat(20)}`, 5, 10)).toBe(
      `[16 characters cut] ${'x'.repeat(10)}`
    )
  })
})
