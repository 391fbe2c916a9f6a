// The deploy lock while it is held: a heartbeat that finds it is not ours any more
// stops the run before it changes anything more on the host.
import { describe, expect, it } from '@jest/globals'
import { LockLostError, withLock } from '../../src/host/deploy-lock.js'
import { toShell, type ShellLine } from '../../src/transport/shell-quote.js'
import type { Connection, ExecOptions, ExecResult } from '../../src/transport/ssh-connection.js'
import { ScriptedRemote } from '../../__fixtures__/scripted-remote.js'
import { recorder } from '../../__fixtures__/recording-log.js'

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
const DIR = '/srv/myapp/.deploy-lock'
const TAKEN = JSON.stringify({ taken: true, stale: false, holder: {}, age: 0 })

/**
 * A host whose lock is taken, then found not ours by every heartbeat (the helper's answers, one
 * JSON object each); `slow` waits for its signal.
 */
class LosingHost extends ScriptedRemote {
  constructor() {
    super([
      { when: / touchlock /, reply: { stdout: '{"fresh": false}\n' } },
      { when: / unlock /, reply: { stdout: '{"released": true}\n' } },
      { when: / lock /, reply: { stdout: TAKEN } },
      { when: /./, reply: {} }
    ])
  }
  exec(command: ShellLine, options?: ExecOptions): Promise<ExecResult> {
    if (!command.startsWith('slow')) return super.exec(command)
    this.commands.push(command)
    return new Promise(resolve =>
      options?.signal?.addEventListener('abort', () =>
        resolve({
          code: null,
          signal: null,
          stdout: '',
          stderr: '',
          timedOut: false,
          cancelled: true
        })
      )
    )
  }
}

const options = { timeoutSeconds: 5, staleSeconds: 4, log: recorder() } // heartbeat every second
const who = { actor: 'ana', run: 'https://run/1', release: 'r2' }

describe('a held deploy lock', () => {
  // Issue 18: the heartbeat ignored "not ours": a run whose lock another deploy had taken
  // over went on switching and reloading beside it.
  it('stops the run before its next change once the heartbeat finds the lock is not ours', async () => {
    const host = new LosingHost()
    const conn: Connection = { remote: host }
    const run = withLock(conn, DIR, who, options, async () => {
      await conn.remote.exec(toShell(['echo', 'before']))
      await sleep(1600)
      await conn.remote.exec(toShell(['mv', '-Tf', '.current.tmp', 'current']))
      return 'finished'
    })
    await expect(run).rejects.toThrow(LockLostError)
    await expect(run).rejects.toThrow(
      'the deploy lock /srv/myapp/.deploy-lock is no longer held by this run'
    )
    expect(host.commands.some(c => c.startsWith('echo before'))).toBe(true)
    expect(host.commands.some(c => c.startsWith('mv '))).toBe(false)
    expect(host.commands.some(c => / unlock /.test(c))).toBe(false) // the lock is not ours to release
    expect(conn.remote).toBe(host) // the connection is handed back as it was
  })

  it('stops a command under way when the lock is found lost', async () => {
    const host = new LosingHost()
    const conn: Connection = { remote: host }
    const started = Date.now()
    const run = withLock(conn, DIR, who, options, () =>
      conn.remote.exec('slow pip install' as ShellLine)
    )
    await expect(run).rejects.toThrow(LockLostError)
    expect(Date.now() - started).toBeLessThan(3000)
  })

  it('releases a lock that stayed ours', async () => {
    const host = new ScriptedRemote([
      { when: / touchlock /, reply: { stdout: '{"fresh": true}\n' } },
      { when: / unlock /, reply: { stdout: '{"released": true}\n' } },
      { when: / lock /, reply: { stdout: TAKEN } },
      { when: /./, reply: {} }
    ])
    const conn: Connection = { remote: host }
    expect(await withLock(conn, DIR, who, options, async () => 'done')).toBe('done')
    expect(host.commands.filter(c => / unlock /.test(c))).toHaveLength(1)
  })
})
