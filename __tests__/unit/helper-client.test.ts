// The typed client of the remote helper: each command's argv (quoted by toShell) and
// timeout, and its answer checked. The real helper runs on this machine through the
// real client; a host that answers anything but one JSON object of the right shape
// fails with a HelperError naming the command and the stderr tail.
import { afterAll, describe, expect, it } from '@jest/globals'
import { mkdirSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runLocally, ScriptedRemote, type Rule } from '../../__fixtures__/scripted-remote.js'
import { FakeHelper } from '../../__fixtures__/fake-helper.js'
import {
  HELPER_TIMEOUT_MS,
  HelperError,
  helperOf,
  inRelease,
  SshHelperClient,
  type LockOwner
} from '../../src/host/helper-client.js'
import type { ShellLine } from '../../src/transport/shell-quote.js'
import type { ExecOptions, ExecResult } from '../../src/transport/ssh-connection.js'

const dir = mkdtempSync(join(tmpdir(), 'zdd-helper-client-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A scripted host that also records the options of every command. */
class RecordingRemote extends ScriptedRemote {
  readonly options: (ExecOptions | undefined)[] = []
  exec(command: ShellLine, options?: ExecOptions): Promise<ExecResult> {
    this.options.push(options)
    return super.exec(command)
  }
}

/** Runs every command on this machine: the real helper answers. */
const onThisMachine = () => new RecordingRemote([{ when: /./, reply: c => runLocally(c) }])
const answering = (reply: Rule['reply']) => new RecordingRemote([{ when: /./, reply }])
const owner = (token: string): LockOwner => ({
  token,
  actor: 'ana',
  run: 'r1',
  release: 'v2',
  since: '2026-01-01T00:00:00Z'
})

describe('the helper client against the real helper', () => {
  it('takes, refreshes and releases the lock, each with its own timeout', async () => {
    const remote = onThisMachine()
    const helper = helperOf(remote)
    const lock = join(dir, 'deploy.lock')
    expect(await helper.lock(lock, owner('one'), 60)).toEqual({
      taken: true,
      stale: false,
      holder: {},
      age: 0
    })
    const second = await helper.lock(lock, owner('two'), 60)
    expect(second).toMatchObject({ taken: false, holder: { actor: 'ana', token: 'one' } })
    expect(await helper.touchLock(lock, 'two')).toEqual({ fresh: false })
    expect(await helper.touchLock(lock, 'one')).toEqual({ fresh: true })
    expect(await helper.unlock(lock, 'two')).toEqual({ released: false })
    expect(await helper.unlock(lock, 'one')).toEqual({ released: true })
    expect(remote.options.map(o => o?.timeoutMs)).toEqual([
      HELPER_TIMEOUT_MS.lock,
      HELPER_TIMEOUT_MS.lock,
      HELPER_TIMEOUT_MS.touchlock,
      HELPER_TIMEOUT_MS.touchlock,
      HELPER_TIMEOUT_MS.unlock,
      HELPER_TIMEOUT_MS.unlock
    ])
    expect(remote.commands[0]).toMatch(/^python3 -c '.*' lock \S+deploy\.lock '\{"token":"one",/s)
  })

  it('checks the environment without a value leaving the host', async () => {
    const env = join(dir, 'app.env')
    writeFileSync(env, 'SECRET_KEY=s3cr3t\nEMPTY=\n')
    const remote = onThisMachine()
    const sources = {
      assignments: ['MODE=x'],
      files: [
        { path: env, optional: false },
        { path: join(dir, 'absent.env'), optional: true }
      ]
    }
    const check = await helperOf(remote).envCheck(sources, ['SECRET_KEY', 'EMPTY', 'ABSENT'])
    expect(check).toEqual({
      exists: true,
      readable: true,
      files: [
        { path: env, optional: false, exists: true, readable: true, errors: [] },
        {
          path: join(dir, 'absent.env'),
          optional: true,
          exists: false,
          readable: false,
          errors: []
        }
      ],
      missing: ['ABSENT'],
      empty: ['EMPTY'],
      count: 3
    })
    expect(remote.commands.join('\n')).not.toContain('s3cr3t')
    // the values come back only from envvalues, read to scrub them from the log
    expect(await helperOf(remote).envValues(sources)).toEqual({
      MODE: 'x',
      SECRET_KEY: 's3cr3t',
      EMPTY: ''
    })
  })

  it('imports a release without its environment and reads the judgement', async () => {
    const code = join(dir, 'release')
    mkdirSync(code, { recursive: true })
    writeFileSync(join(code, 'wsgi.py'), 'import flask_not_installed\n')
    writeFileSync(join(code, 'good.py'), 'def app(environ, start_response):\n    return []\n')
    const helper = helperOf(onThisMachine())
    const unreadable = {
      assignments: [],
      files: [{ path: join(dir, 'absent.env'), optional: false }]
    }
    const request = { python: 'python3', env: { unreadable }, releaseDir: code }
    const broken = await helper.importCheck({ ...request, app: 'wsgi:app' })
    expect(broken).toMatchObject({
      ok: false,
      failure: { type: 'ModuleNotFoundError', file: 'wsgi.py', line: 1 },
      independent: expect.stringContaining('no module named flask_not_installed'),
      reads: []
    })
    const absent = await helper.importCheck({ ...request, app: 'absent:app' })
    expect(absent).toMatchObject({
      ok: false,
      failure: { type: 'ModuleNotFoundError', file: undefined, line: undefined },
      independent: expect.stringContaining('no module named absent')
    })
    const good = await helper.importCheck({ ...request, app: 'good:app' })
    expect(good).toMatchObject({ ok: true, file: join(code, 'good.py'), reads: [] })
  })

  it('links shared paths and reads Nginx files and the Gunicorn environment', async () => {
    const root = join(dir, 'app')
    const release = join(root, 'releases', 'v2')
    mkdirSync(release, { recursive: true })
    const helper = helperOf(onThisMachine())
    expect(await helper.linkShared(root, release, ['uploads'])).toEqual([
      { path: join(release, 'uploads'), target: join(root, 'shared', 'uploads') }
    ])
    expect(readlinkSync(join(release, 'uploads'))).toBe(join(root, 'shared', 'uploads'))
    const conf = join(dir, 'nginx.conf')
    writeFileSync(conf, 'events {}\n')
    expect(await helper.readGlobs([conf])).toEqual({
      [conf]: [{ path: conf, text: 'events {}\n' }]
    })
    const env = join(dir, 'gunicorn.env')
    writeFileSync(env, 'WEB_CONCURRENCY=4\nSECRET_KEY=x\n')
    expect(await helper.gunicornEnv(undefined, [env])).toEqual({
      readable: true,
      WEB_CONCURRENCY: '4'
    })
  })

  it('builds the launcher that runs a command in the release with the unit environment', () => {
    expect(inRelease('/v/bin/python', 'none', '/srv/r', ['flask', 'db', 'upgrade'])).toMatch(
      /^\/v\/bin\/python -c '.*' run - \/srv\/r flask db upgrade$/s
    )
    const sources = { assignments: [], files: [{ path: '/etc/a b.env', optional: false }] }
    expect(inRelease('py', { sources }, '/srv/r', ['x'])).toMatch(
      / run '\{"set":\[\],"files":\[\{"path":"\/etc\/a b\.env","optional":false\}\]\}' \/srv\/r x$/
    )
    // an EnvironmentFile the deploy user cannot read: what may be read goes with it
    expect(inRelease('py', { unreadable: sources }, '/srv/r', ['x'])).toMatch(
      / run '\?\{"set":\[\],"files":\[\{"path":"\/etc\/a b\.env","optional":false\}\]\}' \/srv\/r x$/
    )
  })
})

describe('answers that break the protocol', () => {
  const fails = (reply: Rule['reply']) => helperOf(answering(reply)).touchLock('/l', 't')

  it('names the command, the host and the stderr tail when there is no answer', async () => {
    const error = (await fails({ code: 127, stderr: 'sh: 1: python3: not found\n' }).catch(
      e => e
    )) as HelperError
    expect(error).toBeInstanceOf(HelperError)
    expect(error.message).toBe(
      "the remote helper's touchlock on deploy@server.test:22 failed: exit status 127 with no answer:\nsh: 1: python3: not found"
    )
  })

  it('refuses output that is not one JSON object', async () => {
    await expect(fails({ stdout: 'fresh\n' })).rejects.toThrow(
      'failed: exit status 0 with an answer that is not JSON'
    )
    await expect(fails({ stdout: '{"fresh": true}\n{"fresh": true}\n' })).rejects.toThrow(
      'not JSON'
    )
    await expect(fails({ stdout: '[true]\n' })).rejects.toThrow('its answer is not a JSON object')
  })

  it('names a missing or mistyped field', async () => {
    await expect(fails({ stdout: '{}' })).rejects.toThrow(
      'the remote helper\'s touchlock on deploy@server.test:22 failed: its answer has no true/false "fresh"'
    )
    await expect(fails({ stdout: '{"fresh": "yes"}' })).rejects.toThrow('no true/false "fresh"')
  })

  it('reports the error the helper answered', async () => {
    await expect(
      fails({
        code: 1,
        stdout:
          '{"error": {"type": "PermissionError", "message": "[Errno 13] Permission denied"}}\n',
        stderr: 'Traceback (most recent call last):\nPermissionError: [Errno 13]\n'
      })
    ).rejects.toThrow(
      'failed: PermissionError: [Errno 13] Permission denied:\nTraceback (most recent call last):\nPermissionError: [Errno 13]'
    )
  })

  it('tells a timeout and a dropped connection apart', async () => {
    const timedOut = (await fails({ code: null, timedOut: true }).catch(e => e)) as HelperError
    expect(timedOut.message).toContain(
      `failed: no answer within ${HELPER_TIMEOUT_MS.touchlock / 1000}s`
    )
    expect(timedOut.dropped).toBe(false)
    const dropped = (await fails({ code: null, stderr: 'SSH connection is closed' }).catch(
      e => e
    )) as HelperError
    expect(dropped.message).toContain('the connection dropped before it answered')
    expect(dropped.dropped).toBe(true)
  })

  it('waits for a worker watch as long as the watch, and a little more', async () => {
    const remote = answering({ stdout: '{"show": "", "ps": "", "dirs": ""}' })
    const spec = { show: [], ps: [], pwdx: null, mainPid: 0, old: [], workers: 1 }
    await helperOf(remote).watchWorkers({ ...spec, timeout: 2.5, interval: 0.02 })
    expect(remote.options[0]?.timeoutMs).toBe(2500 + HELPER_TIMEOUT_MS.watchworkers)
  })
})

describe('helperOf', () => {
  it('uses the helper a fake host answers with, and the SSH client otherwise', () => {
    const fake = new ScriptedRemote([], {})
    expect(helperOf(fake)).toBeInstanceOf(FakeHelper)
    expect(helperOf(new ScriptedRemote([]))).toBeInstanceOf(SshHelperClient)
  })
})
