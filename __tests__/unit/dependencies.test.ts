// The shared venv's dependency step when nothing is installed: the set is recorded
// beside the checks, not before them.
import { describe, expect, it } from '@jest/globals'
import { prepareDependencies, type DependencyContext } from '../../src/modes/dependencies.js'
import type { ShellLine } from '../../src/transport/shell-quote.js'
import type { ExecResult, RemoteHost } from '../../src/transport/ssh-connection.js'
import { recorder } from '../../__fixtures__/recording-log.js'

const done = (over: Partial<ExecResult> = {}): ExecResult => ({
  code: 0,
  signal: null,
  stdout: '',
  stderr: '',
  timedOut: false,
  ...over
})

/** A host whose `pip freeze` answers only when the test lets it. */
function hostWithSlowFreeze() {
  const commands: string[] = []
  let answerFreeze: () => void = () => undefined
  const freezeAnswered = new Promise<void>(resolve => (answerFreeze = resolve))
  const remote = {
    target: { user: 'deploy', host: 'server.test', port: 22, label: 'deploy@server.test:22' },
    async exec(command: ShellLine): Promise<ExecResult> {
      commands.push(command)
      if (command.includes('test -f')) return done({ code: 1 }) // no set recorded with current
      if (command.includes('pip freeze')) {
        await freezeAnswered
        return done({ stdout: 'Flask==2.2.2\nitsdangerous==2.1.2\n' })
      }
      return done()
    }
  } as unknown as RemoteHost
  return { remote, commands, answerFreeze }
}

function context(remote: RemoteHost): DependencyContext {
  return {
    remote,
    settings: { pipArgs: [], pipTimeoutSeconds: 900 } as unknown as DependencyContext['settings'],
    snap: {
      venvs: 'shared',
      interpreter: { python: '/srv/myapp/.venv/bin/python', venv: '/srv/myapp/.venv' },
      currentDir: '/srv/myapp/releases/v1',
      currentRelease: 'v1'
    } as unknown as DependencyContext['snap'],
    layout: {} as DependencyContext['layout'],
    log: recorder(),
    requirements: 'unchanged'
  }
}

describe('dependencies under a shared venv, requirements unchanged', () => {
  it('does not hold the checks up while the set is read for a release that has none recorded', async () => {
    const host = hostWithSlowFreeze()
    const outcome = await prepareDependencies(context(host.remote), '/srv/myapp/releases/v2')
    expect(outcome.changed).toEqual([])
    expect(outcome.restore).toBeUndefined()
    const recorded = () =>
      host.commands.filter(c => c.includes('.zdd-freeze.txt') && c.includes('cat >'))
    expect(recorded()).toEqual([])
    host.answerFreeze()
    await outcome.recording
    expect(recorded().join('\n')).toContain('/srv/myapp/releases/v2/.zdd-freeze.txt')
    // the release that served gets the same set, only when it has none
    expect(recorded().join('\n')).toMatch(/test -e .*releases\/v1\/\.zdd-freeze\.txt/)
  })

  it('copies the set recorded with the current release, reading nothing', async () => {
    const commands: string[] = []
    const remote = {
      target: { user: 'deploy', host: 'server.test', port: 22, label: 'deploy@server.test:22' },
      exec: async (command: ShellLine) => (commands.push(command), done())
    } as unknown as RemoteHost
    const outcome = await prepareDependencies(context(remote), '/srv/myapp/releases/v2')
    expect(outcome.recording).toBeUndefined()
    expect(commands.some(c => c.includes('pip freeze'))).toBe(false)
  })
})
