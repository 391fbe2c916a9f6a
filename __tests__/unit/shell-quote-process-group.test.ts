// inProcessGroup and killProcessGroup, run by a real /bin/sh on this machine.
import { describe, expect, it } from '@jest/globals'
import { execFile, spawn, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'
import {
  inProcessGroup,
  killProcessGroup,
  PROCESS_GROUP_MARKER,
  toShell
} from '../../src/transport/shell-quote.js'

const run = promisify(execFile)
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** Whether any live (not zombie) process is in group `pgid`. */
function groupAlive(pgid: number): boolean {
  const out = spawnSync('ps', ['-e', '-o', 'pgid=,stat='], { encoding: 'utf8' }).stdout
  return out
    .split('\n')
    .map(l => l.trim().split(/\s+/))
    .some(([g, stat]) => Number(g) === pgid && !stat.startsWith('Z'))
}

/**
 * Runs shell text asynchronously, so that this process keeps reaping its
 * children meanwhile (a zombie still counts as a member of its group).
 */
async function sh(line: string): Promise<string> {
  return (await run('/bin/sh', ['-c', line], { encoding: 'utf8' })).stdout
}

/** Starts `script` in a group of its own; returns the group id. */
async function startGroup(script: string): Promise<number> {
  const child = spawn('/bin/sh', ['-c', script], { detached: true, stdio: 'ignore' })
  child.unref()
  await sleep(200)
  return child.pid!
}

describe('inProcessGroup', () => {
  it('runs the command in a new process group whose id it prints first on stderr', () => {
    const line = inProcessGroup(toShell(['sh', '-c', 'ps -o pgid= -p $$; echo to-stderr >&2']))
    const run = spawnSync('/bin/sh', ['-c', line], { encoding: 'utf8' })
    const [marker, ...rest] = run.stderr.split('\n')
    const match = new RegExp(`^${PROCESS_GROUP_MARKER} ([0-9]+)$`).exec(marker)
    expect(match).not.toBeNull()
    const pgid = Number(match![1])
    expect(Number(run.stdout.trim())).toBe(pgid)
    expect(pgid).not.toBe(process.pid)
    expect(rest.join('\n')).toBe('to-stderr\n')
  })

  it('keeps the exit status and passes hostile words through unchanged', () => {
    const word = `it's $(touch /tmp/zdd-pwned) \`id\`; "q"`
    const line = inProcessGroup(toShell(['sh', '-c', 'printf %s "$1"; exit 7', 'sh', word]))
    const run = spawnSync('/bin/sh', ['-c', line], { encoding: 'utf8' })
    expect(run.status).toBe(7)
    expect(run.stdout).toBe(word)
  })
})

describe('killProcessGroup', () => {
  it('refuses ids that would reach other processes', () => {
    for (const id of [-1, 0, 1, 1.5, Number.NaN]) expect(() => killProcessGroup(id)).toThrow()
  })

  it('ends every process of the group with TERM', async () => {
    const pgid = await startGroup('sleep 30 & sleep 30 & wait')
    expect(groupAlive(pgid)).toBe(true)
    const out = await sh(killProcessGroup(pgid))
    expect(out.trim()).toBe('TERM')
    expect(groupAlive(pgid)).toBe(false)
  })

  it('sends KILL after the grace period to a group that ignores TERM', async () => {
    const pgid = await startGroup("trap '' TERM; while :; do sleep 0.1; done")
    const started = Date.now()
    const out = await sh(killProcessGroup(pgid, 500))
    expect(out.trim()).toBe('KILL')
    expect(Date.now() - started).toBeGreaterThanOrEqual(450)
    await sleep(100)
    expect(groupAlive(pgid)).toBe(false)
  })

  it('reports a group that is already gone', async () => {
    const pgid = await startGroup('exit 0')
    const out = await sh(killProcessGroup(pgid))
    expect(out.trim()).toBe('gone')
  })
})
