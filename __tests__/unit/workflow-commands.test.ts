// Remote text reaches the log through coreLog; the runner must never read a line of
// it as a workflow command (set-output, error, stop-commands, ...).
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals'
import { coreLog } from '../../src/action/core-log.js'
import { plainText } from '../../src/action/workflow-commands.js'
import { runnerCommands } from '../../__fixtures__/runner-commands.js'

/** Lines a pip run, a migration or a traceback could print. */
const HOSTILE = [
  '::set-output name=status::deployed',
  '::error title=Deployed::nothing failed',
  '  ::warning::indented',
  '\t::add-mask::hide-everything',
  '\u00a0\u2003::notice::unicode spaces before it',
  '::stop-commands::pwned',
  '::SET-OUTPUT name=rolled-back::false',
  'Collecting x ##[set-output name=release]forged',
  '##[error]old syntax',
  '::endgroup::',
  '::group::forged group'
]

describe('plainText', () => {
  it('leaves no line the runner reads as a command, whatever the line breaks', () => {
    for (const sep of ['\n', '\r', '\r\n']) {
      const text = ['pip output', ...HOSTILE, 'done'].join(sep)
      expect(runnerCommands(plainText(text))).toEqual([])
      // unescaped, the fixture reads them as the runner does (stop-commands swallows the rest)
      expect(runnerCommands(text).map(c => c.name)).toEqual([
        'set-output',
        'error',
        'warning',
        'add-mask',
        'notice',
        'stop-commands'
      ])
    }
  })

  it('changes only the lines that would run a command, and keeps them readable', () => {
    expect(plainText('ok line\n::set-output name=x::y\nhttp://a::b')).toBe(
      'ok line\n\\::set-output name=x::y\nhttp://a::b'
    )
    expect(plainText('  ::error::x')).toBe('  \\::error::x')
    expect(plainText('a ##[group]b ##[c')).toBe('a ##[\\group]b ##[\\c')
    expect(plainText('plain text')).toBe('plain text')
  })
})

describe('coreLog', () => {
  let written: string[]
  let spy: ReturnType<typeof jest.spyOn>

  beforeEach(() => {
    written = []
    spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => {
      written.push(String(chunk))
      return true
    })
  })
  afterEach(() => spy.mockRestore())

  // Issue 18: a line of pip or migration output starting with :: was run by the runner.
  it('prints remote output so that only the commands the action issues run', async () => {
    const remote = HOSTILE.join('\n')
    coreLog.info(`[deploy@web1:22] pip install\n${remote}\r${HOSTILE[0]}`)
    coreLog.warning(`migration said:\n${remote}`)
    coreLog.error(`traceback:\n${remote}`, '::set-output name=x::y')
    await coreLog.group(`Migrations ${HOSTILE[5]}\n${HOSTILE[0]}`, async () => coreLog.info(remote))
    spy.mockRestore()
    const commands = runnerCommands(written.join(''))
    expect(commands.map(c => c.name)).toEqual(['warning', 'error', 'group', 'endgroup'])
    expect(commands[0].data).toContain('%0A::set-output') // its data, on the annotation's one line
  })
})
