// pip and migrations run as stoppable steps: in a process group of their own,
// with pip-timeout / migrate-timeout and the run's cancellation; a timeout or a
// cancel fails the step saying so, naming the input.
import { describe, expect, it } from '@jest/globals'
import type { Log } from '../../src/core/log.js'
import { installDependencies, migrate } from '../../src/host/release-checks.js'
import { RemoteCommandError } from '../../src/transport/remote-command.js'
import type { ShellLine } from '../../src/transport/shell-quote.js'
import type { ExecOptions, ExecResult } from '../../src/transport/ssh-connection.js'
import { ScriptedRemote, type Rule } from '../../__fixtures__/scripted-remote.js'

/** A ScriptedRemote that also records the options of every command. */
class RecordingRemote extends ScriptedRemote {
  readonly options: { command: string; options?: ExecOptions }[] = []
  constructor(rules: Rule[]) {
    super(rules)
  }
  exec(command: ShellLine, options?: ExecOptions): Promise<ExecResult> {
    this.options.push({ command, options })
    return super.exec(command)
  }
}

const log: Log = {
  info: () => undefined,
  warning: () => undefined,
  error: () => undefined,
  group: (_name, fn) => fn()
}

const interpreter = { python: '/srv/myapp/.venv/bin/python', venv: '/srv/myapp/.venv' }

function pipRemote(pip: Partial<ExecResult>): RecordingRemote {
  return new RecordingRemote([
    { when: /sha256sum .*releases\/new\//, reply: { stdout: 'aaaa  requirements.txt\n' } },
    { when: /sha256sum .*releases\/old\//, reply: { stdout: 'bbbb  requirements.txt\n' } },
    { when: / -m pip install /, reply: pip }
  ])
}

function install(remote: RecordingRemote, signal?: AbortSignal) {
  return installDependencies(remote, {
    interpreter,
    releaseDir: '/srv/myapp/releases/new',
    currentDir: '/srv/myapp/releases/old',
    pipArgs: ['--no-index'],
    limits: { timeoutSeconds: 900, signal },
    log
  })
}

describe('installDependencies', () => {
  it('runs pip in its own process group with pip-timeout and the run signal', async () => {
    const remote = pipRemote({ stdout: 'Successfully installed x\n' })
    const signal = new AbortController().signal
    expect(await install(remote, signal)).toBe(true)
    const pip = remote.options.find(o => / -m pip install /.test(o.command))
    expect(pip?.options).toEqual({ processGroup: true, timeoutMs: 900_000, signal })
  })

  it('fails naming pip-timeout when pip was stopped for taking too long', async () => {
    const remote = pipRemote({ code: null, timedOut: true, stderr: 'Building wheel for slow\n' })
    const error = await install(remote).catch((e: Error) => e)
    expect(error).toBeInstanceOf(Error)
    expect((error as Error).message).toMatch(
      /^pip install on deploy@server.test:22 did not finish within 900s \(pip-timeout\): it was stopped on the host/
    )
    expect((error as Error).message).toContain('Building wheel for slow')
  })

  it('says a cancelled pip was cancelled, not that the connection dropped', async () => {
    const remote = pipRemote({ code: null, cancelled: true })
    const error = (await install(remote).catch((e: Error) => e)) as Error
    expect(error.message).toBe(
      'pip install on deploy@server.test:22 was cancelled: it was stopped on the host'
    )
  })

  it('still fails with the exit status and stderr when pip fails by itself', async () => {
    const remote = pipRemote({ code: 1, stderr: 'No matching distribution found for x\n' })
    const error = await install(remote).catch((e: Error) => e)
    expect(error).toBeInstanceOf(RemoteCommandError)
    expect((error as Error).message).toContain('exited with status 1')
  })
})

describe('migrate', () => {
  const base = {
    interpreter,
    releaseDir: '/srv/myapp/releases/new',
    app: 'wsgi:app',
    mode: 'auto' as const,
    log
  }

  it('stops a migrate-command past migrate-timeout and names the input', async () => {
    const remote = new RecordingRemote([{ when: /sleep/, reply: { code: null, timedOut: true } }])
    const error = (await migrate(remote, {
      ...base,
      command: ['python3', '-c', 'import time; time.sleep(60)'],
      limits: { timeoutSeconds: 45 }
    }).catch((e: Error) => e)) as Error
    expect(error.message).toContain(
      'migrate-command on deploy@server.test:22 did not finish within 45s (migrate-timeout)'
    )
    expect(remote.options.at(-1)?.options).toMatchObject({ processGroup: true, timeoutMs: 45_000 })
  })

  it('runs flask db upgrade with migrate-timeout and the run signal, and reports a cancel', async () => {
    const remote = new RecordingRemote([
      { when: /^test -d /, reply: {} },
      { when: /db current/, reply: { stdout: 'INFO x\n' } },
      { when: /db heads/, reply: { stdout: '0001 (head)\n' } },
      { when: /db upgrade/, reply: { code: null, cancelled: true } }
    ])
    const controller = new AbortController()
    const error = (await migrate(remote, {
      ...base,
      limits: { timeoutSeconds: 1800, signal: controller.signal }
    }).catch((e: Error) => e)) as Error
    expect(error.message).toBe(
      'flask db upgrade on deploy@server.test:22 was cancelled: it was stopped on the host'
    )
    const upgrade = remote.options.find(o => /db upgrade/.test(o.command))
    expect(upgrade?.options).toEqual({
      processGroup: true,
      timeoutMs: 1_800_000,
      signal: controller.signal
    })
    // the reads of the revision have their own limit (5 minutes at most) and the run signal
    const reads = remote.options.filter(o => /db (current|heads)/.test(o.command))
    expect(reads.map(o => o.options)).toEqual([
      { timeoutMs: 300_000, signal: controller.signal },
      { timeoutMs: 300_000, signal: controller.signal }
    ])
  })

  // Issue 18: flask db current / heads ran without a timeout; a database that does not
  // answer held the deploy, and its lock, forever.
  it('fails clearly, migrating nothing, when the database revision cannot be read in time', async () => {
    const remote = new RecordingRemote([
      { when: /^test -d /, reply: {} },
      {
        when: /db current/,
        reply: { code: null, timedOut: true, stderr: 'connecting to db.internal\n' }
      },
      { when: /db heads/, reply: { stdout: '0001 (head)\n' } },
      { when: /db upgrade/, reply: {} }
    ])
    const error = (await migrate(remote, { ...base, limits: { timeoutSeconds: 60 } }).catch(
      (e: Error) => e
    )) as Error
    expect(error.message).toMatch(
      /^flask db current did not answer within 60 s \(the shorter of 300 s and migrate-timeout\): the database does not answer, or the app hangs while it is imported\. It was stopped on the host; nothing was migrated or switched\.\nconnecting to db\.internal$/
    )
    expect(remote.commands.some(c => /db upgrade/.test(c))).toBe(false)
    const current = remote.options.find(o => /db current/.test(o.command))
    expect(current?.options?.timeoutMs).toBe(60_000)
  })
})
