// Fuzzing the inputs that reach remote commands: every hostile value is either
// refused at validation, or it is one the remote shell receives as one literal word.
import { describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { InputError, readSettings } from '../../src/action/inputs.js'
import { toShell } from '../../src/transport/shell-quote.js'
import { FACTS, inputs } from '../../__fixtures__/inputs.js'

const PAYLOADS = [
  '$(touch /tmp/pwned)',
  '`touch /tmp/pwned`',
  ';touch /tmp/pwned;',
  "'; touch /tmp/pwned; '",
  '"$(touch /tmp/pwned)"',
  '\ntouch /tmp/pwned\n',
  '|| touch /tmp/pwned',
  '../../etc/passwd',
  'ü $(id)',
  'a b',
  '$HOME',
  '-rf',
  '--help',
  '\\',
  '*'
]
const VALIDATED = [
  'service',
  'release-path',
  'release-id',
  'required-env',
  'shared-paths',
  'env-file',
  'nginx-url',
  'health-url',
  'host',
  'jump-host',
  'canary',
  'migrate-host',
  'nginx-error-log',
  'username',
  'port',
  'mode'
]
// shell syntax, globbing, whitespace, non-ASCII, or a `..` path segment
const DANGEROUS = /[\s;`$'"|&<>()\\*?~!#\n]|(^|\/)\.\.(\/|$)|[^\x20-\x7e]/

// A small deterministic generator (mulberry32), so a failure is reproducible.
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const ALPHABET = [
  'a',
  'Z',
  '0',
  '/',
  '.',
  '-',
  '_',
  ';',
  '$',
  '(',
  ')',
  '`',
  "'",
  '"',
  ' ',
  '\n',
  '|',
  '&',
  '<',
  '>',
  '*',
  '\\',
  '..',
  'ü',
  '{',
  '}',
  '#',
  '~',
  ':',
  '@',
  '=',
  ',',
  '\t'
]

function settle(name: string, value: string): 'refused' | string {
  const overrides: Record<string, string> = {
    [name]:
      name === 'release-path' || name === 'env-file' || name === 'nginx-error-log'
        ? `/srv/${value}`
        : value
  }
  if (name === 'rollback-to') overrides.mode = 'rollback'
  try {
    const s = readSettings(inputs(overrides), FACTS)
    return JSON.stringify(s)
  } catch (error) {
    if (!(error instanceof InputError)) throw error
    expect(error.message).toContain(`Input '${name}'`)
    return 'refused'
  }
}

describe('hostile input', () => {
  it.each(VALIDATED)('refuses every shell-special payload in %s', name => {
    for (const payload of PAYLOADS.filter(p => DANGEROUS.test(p) && p !== '*' && p !== '-rf')) {
      expect([name, payload, settle(name, payload)]).toEqual([name, payload, 'refused'])
    }
  })

  it('fuzzes 3000 random values: accepted ones never carry shell syntax into settings used remotely', () => {
    const next = random(20261125)
    for (let i = 0; i < 3000; i++) {
      const value = Array.from(
        { length: 1 + Math.floor(next() * 12) },
        () => ALPHABET[Math.floor(next() * ALPHABET.length)]
      ).join('')
      for (const name of [
        'service',
        'release-id',
        'release-path',
        'required-env',
        'shared-paths',
        'pip-args',
        'rollback-to'
      ]) {
        const outcome = settle(name, value)
        if (outcome === 'refused') continue
        const s = JSON.parse(outcome) as Record<string, unknown>
        const used = JSON.stringify([
          s.service,
          s.releaseId,
          s.releasePath,
          s.requiredEnv,
          s.sharedPaths,
          s.rollbackTo
        ])
        expect([name, value, DANGEROUS.test(used.replace(/[[\]",]/g, ''))]).toEqual([
          name,
          value,
          false
        ])
        // pip arguments are data (paths such as ../wheels are fine) but never shell syntax
        for (const arg of s.pipArgs as string[]) {
          expect([name, value, /^[A-Za-z0-9._=:/@+,-]+$/.test(arg)]).toEqual([name, value, true])
        }
      }
    }
  })

  it('passes values that are data (migrate-command words, source paths) to a real shell as literal words', () => {
    const words = PAYLOADS
    const line = toShell([
      'node',
      '-e',
      'process.stdout.write(JSON.stringify(process.argv.slice(1)))',
      ...words
    ])
    expect(
      JSON.parse(execFileSync('/bin/sh', ['-c', line], { encoding: 'utf8', cwd: '/tmp' }))
    ).toEqual(words)
  })
})
