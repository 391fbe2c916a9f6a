import { describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import {
  allOf,
  appendOutput,
  eachOf,
  optional,
  quoteWord,
  splitEach,
  toShell
} from '../../src/transport/shell-quote.js'

const HOSTILE = [
  "it's",
  '$(touch /tmp/pwned)',
  '`id`',
  'a;b',
  'a\nb',
  'a b',
  '"q"',
  '\\',
  '',
  '*',
  '~',
  'ünï',
  '--flag',
  '$HOME',
  '!',
  '#x'
]

/** Runs shell text in a real sh and returns argv as the shell passed it on. */
function shellArgv(line: string): string[] {
  const out = execFileSync('/bin/sh', ['-c', `${line}`], { encoding: 'utf8' })
  return JSON.parse(out) as string[]
}

describe('toShell', () => {
  it('passes every hostile word to the remote command as one literal argument', () => {
    const line = toShell([
      'node',
      '-e',
      'process.stdout.write(JSON.stringify(process.argv.slice(1)))',
      ...HOSTILE
    ])
    expect(shellArgv(line)).toEqual(HOSTILE)
  })

  it('leaves plain words unquoted and quotes the rest', () => {
    expect(quoteWord('/srv/myapp/releases/v1')).toBe('/srv/myapp/releases/v1')
    expect(quoteWord("it's")).toBe(`'it'\\''s'`)
    expect(quoteWord('')).toBe(`''`)
  })

  it('refuses NUL bytes and empty commands', () => {
    expect(() => quoteWord('a\0b')).toThrow('NUL')
    expect(() => toShell([])).toThrow('empty')
  })

  it('chains commands with && so the first failure stops the rest', () => {
    expect(allOf(['true'], ['echo', 'a b'])).toBe(`true && echo 'a b'`)
    expect(() =>
      execFileSync('/bin/sh', ['-c', allOf(['false'], ['touch', '/nonexistent/x'])])
    ).toThrow()
  })

  it('appends output to a quoted file name', () => {
    expect(appendOutput(['printf', '%s\\n', 'x'], '/tmp/a b')).toBe(
      `printf '%s\\n' x >> '/tmp/a b'`
    )
  })
})

describe('eachOf: several reads in one round trip', () => {
  it('runs every read in a real shell and splits their outputs back apart', () => {
    const line = eachOf(
      '@@m@@',
      toShell(['printf', '%s\\n', 'first; not a command']),
      optional(['cat', '/nonexistent/file']),
      toShell(['echo', 'third'])
    )
    const out = execFileSync('sh', ['-c', line], { encoding: 'utf8' })
    expect(splitEach('@@m@@', out)).toEqual(['first; not a command\n', '', 'third\n'])
  })

  it('refuses a marker that would need quoting', () => {
    expect(() => eachOf('a b', toShell(['true']))).toThrow(/unsafe marker/)
  })
})
