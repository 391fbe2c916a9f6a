import { describe, expect, it } from '@jest/globals'
import { defaultReleaseId, InputError, readSettings } from '../../src/settings.js'
import { FACTS, inputs, TEST_KEY } from '../../__fixtures__/inputs.js'

function failure(overrides: Record<string, string>): InputError {
  try {
    readSettings(inputs(overrides), FACTS)
  } catch (error) {
    expect(error).toBeInstanceOf(InputError)
    return error as InputError
  }
  throw new Error('readSettings accepted invalid input')
}

describe('readSettings', () => {
  it('reads valid inputs with defaults', () => {
    const s = readSettings(inputs(), FACTS)
    expect(s.mode).toBe('deploy')
    expect(s.targets).toEqual([
      { user: 'deploy', host: 'app1.example.com', port: 22, label: 'deploy@app1.example.com:22' }
    ])
    expect(s.releaseId).toBe('20261125T031500Z-0123456')
    expect(s.source).toBe('/home/runner/work/app')
    expect(s.healthUrl).toMatchObject({ kind: 'tcp', host: '127.0.0.1', port: 80, path: '/health' })
    expect(s.nginxUrl).toMatchObject({ kind: 'tcp', host: '127.0.0.1', port: 80, path: '/health' })
    expect(s.healthChecks).toBe(3)
    expect(s.keepReleases).toBe(5)
  })

  it('parses several targets with users and ports, newline or comma separated', () => {
    const s = readSettings(
      inputs({ host: 'web1\nops@web2:2222, [::1]:2200', port: '2022', username: 'ci' }),
      FACTS
    )
    expect(s.targets.map(t => t.label)).toEqual(['ci@web1:2022', 'ops@web2:2222', 'ci@[::1]:2200'])
  })

  it('parses a unix-socket health-url', () => {
    const s = readSettings(
      inputs({ 'health-url': 'http://unix:/run/myapp/myapp.sock:/health' }),
      FACTS
    )
    expect(s.healthUrl).toMatchObject({
      kind: 'unix',
      socket: '/run/myapp/myapp.sock',
      path: '/health'
    })
  })

  it.each([
    ['host', ''],
    ['service', ''],
    ['release-path', ''],
    ['health-url', ''],
    ['private-key', '']
  ])('fails when required input %s is missing', (name, value) => {
    const error = failure({ [name]: value })
    expect(error.message).toContain(`Input '${name}'`)
    expect(error.message).toContain('is required')
  })

  it('rejects an unknown mode, naming input, value and rule', () => {
    expect(failure({ mode: 'redeploy' }).message).toBe(
      `Input 'mode' has value "redeploy": must be one of deploy, rollback, check`
    )
  })

  it.each([
    'app1.example.com:0',
    'app1:99999',
    'a b',
    'user@',
    '@host',
    'host;rm -rf /',
    'x@y@',
    'h:22:33',
    '[::1',
    '-oProxyCommand=x',
    'u$(id)@h'
  ])('rejects the malformed host entry %j', entry => {
    const error = failure({ host: entry })
    expect(error.message).toContain(`Input 'host'`)
    expect(error.message).toContain('[user@]host[:port]')
  })

  it.each(['my app', 'app;reboot', '$(id)', 'app`id`', '-app', 'app\nx', 'äpp', "a'b"])(
    'rejects the service name %j',
    service => {
      const error = failure({ service })
      expect(error.message).toContain(`Input 'service'`)
      expect(error.message).toContain('systemd unit name')
    }
  )

  it('accepts systemd unit names with @, : and .service', () => {
    expect(readSettings(inputs({ service: 'myapp@blue.service' }), FACTS).service).toBe(
      'myapp@blue.service'
    )
  })

  it.each([
    'srv/myapp',
    './myapp',
    '/srv/../etc',
    '/',
    '/srv/myapp/',
    '/srv//myapp',
    '/srv/my app',
    '/srv/$(id)'
  ])('rejects the release-path %j', releasePath => {
    const error = failure({ 'release-path': releasePath })
    expect(error.message).toContain(`Input 'release-path'`)
    expect(error.message).toContain('absolute path')
  })

  it('requires host-key pinning unless the insecure opt-out is set', () => {
    const error = failure({ 'host-fingerprint': '' })
    expect(error.message).toContain(`Input 'known-hosts'`)
    expect(error.message).toContain('insecure-skip-host-key-check')
    const s = readSettings(
      inputs({ 'host-fingerprint': '', 'insecure-skip-host-key-check': 'true' }),
      FACTS
    )
    expect(s.hostKeys.kind).toBe('insecure')
  })

  it('rejects a malformed fingerprint and known_hosts line', () => {
    expect(failure({ 'host-fingerprint': 'MD5:aa:bb' }).message).toContain('SHA256:')
    expect(failure({ 'known-hosts': 'web1 ssh-ed25519' }).message).toContain('line 1')
  })

  it('never shows the private key in an error', () => {
    const error = failure({ 'private-key': 'not a key but a secret value' })
    expect(error.message).toContain(`Input 'private-key' has a value (***)`)
    expect(error.message).not.toContain('secret value')
    expect(failure({ 'private-key': TEST_KEY, mode: 'x' }).message).not.toContain('OPENSSH')
  })

  it.each([
    ['release-id', '../etc'],
    ['release-id', 'a b'],
    ['keep-releases', '1'],
    ['reload-timeout', 'soon'],
    ['required-env', 'SECRET KEY;x'],
    ['shared-paths', '../outside'],
    ['health-url', 'https://example.com/health'],
    ['probe', 'maybe']
  ])('rejects %s = %j', (name, value) => {
    expect(failure({ [name]: value }).message).toContain(`Input '${name}'`)
  })

  it('only accepts rollback-to with mode rollback', () => {
    expect(failure({ 'rollback-to': 'v1' }).message).toContain("only used with 'mode: rollback'")
    expect(readSettings(inputs({ mode: 'rollback', 'rollback-to': 'v1' }), FACTS).rollbackTo).toBe(
      'v1'
    )
  })
})

describe('defaultReleaseId', () => {
  it('sorts by time and carries the short sha', () => {
    const a = defaultReleaseId(new Date('2026-01-02T03:04:05Z'), 'abcdef1234')
    const b = defaultReleaseId(new Date('2026-01-02T03:04:06Z'), '0000000')
    expect(a).toBe('20260102T030405Z-abcdef1')
    expect([b, a].sort()).toEqual([a, b])
    expect(defaultReleaseId(new Date('2026-01-02T03:04:05Z'), '')).toBe('20260102T030405Z-local')
  })
})

describe('fleet settings', () => {
  it('reads max-parallel, canary, max-failures and migrate-host', () => {
    const s = readSettings(
      inputs({
        host: 'web1\nweb2\nops@web3:2222',
        'max-parallel': '2',
        canary: 'web2',
        'max-failures': '1',
        'migrate-host': 'ops@web3:2222'
      }),
      FACTS
    )
    expect(s).toMatchObject({
      maxParallel: 2,
      canary: 'deploy@web2:22',
      maxFailures: 1,
      migrateHost: 'ops@web3:2222',
      rollbackFleet: true
    })
  })

  it('rejects a canary that is not one of the targets', () => {
    expect(() => readSettings(inputs({ host: 'web1,web2', canary: 'web9' }), FACTS)).toThrow(
      "Input 'canary' has value \"web9\": must be one of the targets in 'host'"
    )
  })

  it('rejects a target listed twice', () => {
    expect(() => readSettings(inputs({ host: 'web1,deploy@web1:22' }), FACTS)).toThrow(
      'each target may appear only once'
    )
  })
})
