// A RemoteHost that records every command and answers from a script: the first
// rule whose pattern matches the command's shell text replies. `runLocally`
// runs the command on this machine instead, for helpers worth testing for real.
// Given a HelperScript, the remote helper's commands are answered by a FakeHelper
// (`helper`) instead; without one they reach the rules as shell text, like any
// command (so the real client and the real helper can run with runLocally).
import { spawnSync } from 'node:child_process'
import type { Duplex } from 'node:stream'
import type { ShellLine } from '../src/transport/shell-quote.js'
import type { ExecResult, RemoteHost } from '../src/transport/ssh-connection.js'
import type { Target } from '../src/core/targets.js'
import { FakeHelper, type HelperScript } from './fake-helper.js'

export type Reply = Partial<ExecResult> | ((command: string) => Partial<ExecResult>)

export interface Rule {
  when: RegExp
  reply: Reply
}

/** Runs the shell text with this machine's sh. */
export function runLocally(command: string): Partial<ExecResult> {
  const done = spawnSync('sh', ['-c', command], { encoding: 'utf8' })
  return { code: done.status, stdout: done.stdout, stderr: done.stderr }
}

export class ScriptedRemote implements RemoteHost {
  readonly target: Target = {
    user: 'deploy',
    host: 'server.test',
    port: 22,
    label: 'deploy@server.test:22'
  }
  /** Every command run, in order. */
  readonly commands: string[] = []
  readonly helper?: FakeHelper

  constructor(
    private readonly rules: Rule[],
    helper?: HelperScript
  ) {
    if (helper) this.helper = new FakeHelper(helper)
  }

  exec(command: ShellLine): Promise<ExecResult> {
    this.commands.push(command)
    const rule = this.rules.find(r => r.when.test(command))
    if (!rule) return Promise.reject(new Error(`unscripted command: ${command}`))
    const reply = typeof rule.reply === 'function' ? rule.reply(command) : rule.reply
    return Promise.resolve({
      code: 0,
      signal: null,
      stdout: '',
      stderr: '',
      timedOut: false,
      ...reply
    })
  }

  openChannel(): Promise<Duplex> {
    return Promise.reject(new Error('ScriptedRemote opens no channels'))
  }

  isConnected(): boolean {
    return true
  }

  close(): Promise<void> {
    return Promise.resolve()
  }
}
