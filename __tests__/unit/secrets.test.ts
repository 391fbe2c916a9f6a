// Values of the service's environment, and URL passwords, never leave through what
// the action prints or writes: log lines, annotations, the job summary, the outputs.
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { coreLog } from '../../src/action/core-log.js'
import { setOutputs, writeSummary } from '../../src/action/report.js'
import { newHostResult } from '../../src/core/host-result.js'
import {
  isSecretValue,
  redactUrlPasswords,
  SecretRegistry,
  secretValues,
  secrets
} from '../../src/core/secrets.js'

const PASSWORD = 'S3cret-pass-123'
const DATABASE_URL = `postgresql://app:${PASSWORD}@db.internal:5432/app`
const SECRET_KEY = 'k9f8d7s6a5-secret-key'
// what an app prints while it fails to import, and the journal repeats
const TRACEBACK = [
  'Traceback (most recent call last):',
  '  File "/srv/myapp/releases/r2/wsgi.py", line 12, in <module>',
  `    engine = connect("${DATABASE_URL}")`,
  `RuntimeError: cannot connect to ${DATABASE_URL} with key ${SECRET_KEY}`,
  'redis://:an-unregistered-pw@cache:6379/0 and https://user:p%40ss@example.com/x'
].join('\n')

describe('which values count as secrets', () => {
  it('counts every value of six characters or more but common words, paths and Gunicorn settings', () => {
    expect(
      secretValues({
        SECRET_KEY,
        DATABASE_URL,
        DEBUG: '1',
        FLASK_ENV: 'production',
        FEATURE: 'true',
        PORT: '8000',
        UPLOAD_DIR: '/srv/myapp/shared/uploads',
        WEB_CONCURRENCY: '3',
        GUNICORN_CMD_ARGS: '--threads 4 --bind unix:/run/a.sock',
        MAIL_PASSWORD: 'hunter',
        PEM: 'line-one-of-a-key\nline-two-of-a-key'
      })
    ).toEqual([
      SECRET_KEY,
      DATABASE_URL,
      PASSWORD,
      'hunter',
      'line-one-of-a-key\nline-two-of-a-key',
      'line-one-of-a-key',
      'line-two-of-a-key'
    ])
    expect(isSecretValue('X', 'short')).toBe(false)
    expect(isSecretValue('X', 'Localhost')).toBe(false)
  })

  it('scrubs the password of any URL, registered or not', () => {
    expect(redactUrlPasswords(TRACEBACK)).toContain('postgresql://app:***@db.internal:5432/app')
    expect(redactUrlPasswords(TRACEBACK)).toContain('redis://:***@cache:6379/0')
    expect(redactUrlPasswords(TRACEBACK)).toContain('https://user:***@example.com/x')
    expect(redactUrlPasswords('http://example.com/a:b@c d mailto:x@y')).toBe(
      'http://example.com/a:b@c d mailto:x@y'
    )
  })

  it('scrubs registered values, the longest first, and tells each new one to its listeners', () => {
    const registry = new SecretRegistry()
    const told: string[] = []
    registry.add(['abcdef'])
    registry.onAdd(v => told.push(v))
    registry.add(['abcdefgh', 'abcdef'])
    expect(told).toEqual(['abcdef', 'abcdefgh'])
    expect(registry.redact('x abcdefgh y abcdef')).toBe('x *** y ***')
    expect(registry.redactDeep({ a: ['abcdef', 2], b: { c: 'abcdefgh!' } })).toEqual({
      a: ['***', 2],
      b: { c: '***!' }
    })
  })
})

describe('what the action prints and writes', () => {
  let dir: string
  let written: string[]
  let spy: ReturnType<typeof jest.spyOn>
  const saved = { ...process.env }

  beforeEach(() => {
    secrets.add(secretValues({ SECRET_KEY, DATABASE_URL }))
    dir = mkdtempSync(path.join(tmpdir(), 'zdd-secrets-'))
    process.env.GITHUB_OUTPUT = path.join(dir, 'output')
    process.env.GITHUB_STEP_SUMMARY = path.join(dir, 'summary')
    writeFileSync(process.env.GITHUB_OUTPUT, '')
    writeFileSync(process.env.GITHUB_STEP_SUMMARY, '')
    written = []
    spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => {
      written.push(String(chunk))
      return true
    })
  })
  afterEach(() => {
    spy.mockRestore()
    process.env = { ...saved }
    rmSync(dir, { recursive: true, force: true })
  })

  // Issue 18: tracebacks and journal excerpts went to annotations, the job summary and the
  // hosts output as they were: a DATABASE_URL printed by a failing import became public.
  it('keeps them out of log lines, annotations, the summary and the outputs', async () => {
    coreLog.info(`import check:\n${TRACEBACK}`)
    coreLog.warning(TRACEBACK)
    coreLog.error(TRACEBACK, `deploy of r2 failed: ${PASSWORD}`)
    await coreLog.group(`Verify ${SECRET_KEY}`, async () => undefined)
    const result = {
      ...newHostResult('deploy@web1:22'),
      status: 'failed' as const,
      error: `the new release cannot import wsgi:app:\n${TRACEBACK}`,
      excerpt: `journal:\n${TRACEBACK}`
    }
    setOutputs([result], { mode: 'deploy', releaseId: 'r2' })
    await writeSummary([result], 'deploy')
    spy.mockRestore()
    const everything = [
      written.join(''),
      readFileSync(path.join(dir, 'output'), 'utf8'),
      readFileSync(path.join(dir, 'summary'), 'utf8')
    ].join('\n')
    for (const secret of [PASSWORD, SECRET_KEY, 'an-unregistered-pw', 'p%40ss'])
      expect(everything.includes(secret) ? secret : 'absent').toBe('absent')
    expect(everything).toContain('redis://:***@cache:6379/0') // a URL password not registered
    expect(everything).toContain('RuntimeError: cannot connect to ***') // the registered URL whole
  })
})
