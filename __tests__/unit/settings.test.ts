import { describe, expect, it } from '@jest/globals'
import { defaultReleaseId } from '../../src/core/release-id.js'
import { InputError, readSettings } from '../../src/action/inputs.js'
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
    ['health-url', 'ftp://example.com/health'],
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

describe('jump host settings', () => {
  const JUMP_KEY =
    '-----BEGIN OPENSSH PRIVATE KEY-----\nanVtcCBrZXkgZm9yIHRoZSBiYXN0aW9u\n-----END OPENSSH PRIVATE KEY-----\n'
  const JUMP_FP = 'SHA256:' + 'J'.repeat(43)

  it("reuses the target's user, key, passphrase and pins by default", () => {
    const s = readSettings(
      inputs({ 'jump-host': 'bastion.example.com', username: 'ci', passphrase: 'pw' }),
      FACTS
    )
    expect(s.jumpHost?.label).toBe('ci@bastion.example.com:22')
    expect(s.jumpCredentials).toEqual({
      privateKey: TEST_KEY,
      passphrase: 'pw',
      hostKeys: s.hostKeys
    })
  })

  it('takes its own user, key, passphrase and fingerprint', () => {
    const s = readSettings(
      inputs({
        'jump-host': 'bastion.example.com:2222',
        'jump-username': 'hop',
        'jump-private-key': JUMP_KEY,
        'jump-passphrase': 'jump pw',
        'jump-host-fingerprint': `ED25519 ${JUMP_FP}`,
        passphrase: 'target pw'
      }),
      FACTS
    )
    expect(s.jumpHost?.label).toBe('hop@bastion.example.com:2222')
    expect(s.passphrase).toBe('target pw')
    expect(s.jumpCredentials).toEqual({
      privateKey: JUMP_KEY,
      passphrase: 'jump pw',
      hostKeys: {
        kind: 'fingerprint',
        fingerprints: [{ sha256: JUMP_FP, keyTypes: ['ssh-ed25519'] }]
      }
    })
  })

  it('keeps user@host:port in jump-host ahead of jump-username, and reads jump-known-hosts', () => {
    const key = Buffer.from('jump host key').toString('base64')
    const s = readSettings(
      inputs({
        'jump-host': 'ops@bastion:2200',
        'jump-username': 'hop',
        'jump-known-hosts': `[bastion]:2200 ssh-ed25519 ${key}`
      }),
      FACTS
    )
    expect(s.jumpHost?.label).toBe('ops@bastion:2200')
    expect(s.jumpCredentials?.hostKeys).toEqual({
      kind: 'known-hosts',
      entries: [{ patterns: '[bastion]:2200', keyType: 'ssh-ed25519', key }]
    })
    expect(s.hostKeys.kind).toBe('fingerprint')
  })

  it('uses no passphrase for its own key unless jump-passphrase is set', () => {
    const s = readSettings(
      inputs({ 'jump-host': 'bastion', 'jump-private-key': JUMP_KEY, passphrase: 'target pw' }),
      FACTS
    )
    expect(s.jumpCredentials?.passphrase).toBeUndefined()
  })

  it.each([
    ['jump-username', 'hop'],
    ['jump-private-key', JUMP_KEY],
    ['jump-passphrase', 'pw'],
    ['jump-known-hosts', 'bastion ssh-ed25519 AAAA'],
    ['jump-host-fingerprint', JUMP_FP]
  ])('refuses %s without jump-host', (name, value) => {
    expect(failure({ [name]: value }).message).toContain(
      `Input '${name}' ${name.includes('private-key') || name.includes('passphrase') ? 'has a value (***)' : ''}`
    )
    expect(failure({ [name]: value }).message).toContain("is only used with 'jump-host'")
  })

  it('refuses jump-passphrase without jump-private-key, and never shows either', () => {
    const error = failure({ 'jump-host': 'bastion', 'jump-passphrase': 'secret words' })
    expect(error.message).toContain("Input 'jump-passphrase' has a value (***)")
    expect(error.message).not.toContain('secret words')
    const badKey = failure({ 'jump-host': 'bastion', 'jump-private-key': 'secret key text' })
    expect(badKey.message).toContain("Input 'jump-private-key' has a value (***)")
    expect(badKey.message).not.toContain('secret key text')
  })

  it.each([
    ['jump-username', '-oProxyCommand=x'],
    ['jump-host-fingerprint', 'MD5:aa'],
    ['jump-known-hosts', 'bastion ssh-ed25519']
  ])('validates %s = %j', (name, value) => {
    expect(failure({ 'jump-host': 'bastion', [name]: value }).message).toContain(`Input '${name}'`)
  })
})

describe('host-fingerprint key types', () => {
  const FP = 'SHA256:' + 'B'.repeat(43)

  it('reads typed fingerprints and ssh-keygen -l lines whose comment has commas', () => {
    const s = readSettings(
      inputs({
        'host-fingerprint': `ED25519 ${FP}\n256 ${FP} web1,10.0.0.5 (ECDSA)\n${FP}, RSA ${FP}`
      }),
      FACTS
    )
    expect(s.hostKeys).toEqual({
      kind: 'fingerprint',
      fingerprints: [
        { sha256: FP, keyTypes: ['ssh-ed25519'] },
        { sha256: FP, keyTypes: ['ecdsa-sha2-nistp256'] },
        { sha256: FP },
        { sha256: FP, keyTypes: ['ssh-rsa'] }
      ]
    })
  })

  it('names the accepted forms when a fingerprint is malformed', () => {
    const error = failure({ 'host-fingerprint': `ED448 ${FP}` })
    expect(error.message).toContain(`Input 'host-fingerprint' has value "ED448 ${FP}"`)
    expect(error.message).toContain('(ED25519)')
  })
})

describe('exclude and migrate-command', () => {
  it('reads exclude as one gitignore pattern per line, commas and negations kept', () => {
    const s = readSettings(
      inputs({ exclude: 'tests/\n\n  *.md\n!CHANGELOG.md\nodd,name.txt  ' }),
      FACTS
    )
    expect(s.exclude).toEqual(['tests/', '  *.md', '!CHANGELOG.md', 'odd,name.txt'])
    expect(readSettings(inputs(), FACTS).exclude).toEqual([])
  })

  it('refuses control characters in an exclude pattern', () => {
    expect(failure({ exclude: 'a\u0007b' }).message).toContain(`Input 'exclude'`)
  })

  it('splits migrate-command like a shell, quotes and escapes included', () => {
    const s = readSettings(
      inputs({ 'migrate-command': `flask --app "wsgi:create_app()" db upgrade --tag 'v 2' a\\ b` }),
      FACTS
    )
    expect(s.migrateCommand).toEqual([
      'flask',
      '--app',
      'wsgi:create_app()',
      'db',
      'upgrade',
      '--tag',
      'v 2',
      'a b'
    ])
  })

  it.each([
    ['flask db upgrade && flask seed', 'operator &&'],
    ['flask db upgrade > /tmp/log', 'operator >'],
    ['flask db upgrade $EXTRA', '$EXTRA'],
    ['python migrate.py *.sql', 'glob'],
    ['flask --app "wsgi:app db upgrade', 'unclosed double quote']
  ])('refuses migrate-command %j, naming the rule', (command, rule) => {
    const message = failure({ 'migrate-command': command }).message
    expect(message).toContain(`Input 'migrate-command' has value ${JSON.stringify(command)}`)
    expect(message).toContain(rule)
    expect(message).toContain('run without a shell')
  })
})

describe('strategy and keep-previous', () => {
  it('defaults to the reload strategy, the old instance stopped', () => {
    const s = readSettings(inputs(), FACTS)
    expect(s.strategy).toBe('reload')
    expect(s.keepPreviousWarm).toBe(false)
  })

  it.each(['myapp', 'myapp@', 'myapp@.service'])(
    'reads service %j under blue-green as the template myapp',
    service => {
      const s = readSettings(inputs({ strategy: 'blue-green', service }), FACTS)
      expect(s.strategy).toBe('blue-green')
      expect(s.service).toBe('myapp')
    }
  )

  it.each(['myapp@blue', 'myapp@green.service'])(
    'refuses the instance name %j under blue-green',
    service => {
      const message = failure({ strategy: 'blue-green', service }).message
      expect(message).toContain(`Input 'service' has value ${JSON.stringify(service)}`)
      expect(message).toContain('must name the template unit (myapp for myapp@.service')
    }
  )

  it('keeps the service name as given under reload', () => {
    expect(readSettings(inputs({ service: 'myapp.service' }), FACTS).service).toBe('myapp.service')
  })

  it('refuses an unknown strategy', () => {
    expect(failure({ strategy: 'canary' }).message).toContain(
      'Input \'strategy\' has value "canary": must be one of reload, blue-green'
    )
  })

  it('keeps the old instance warm only under blue-green', () => {
    expect(
      readSettings(inputs({ strategy: 'blue-green', 'keep-previous': 'warm' }), FACTS)
        .keepPreviousWarm
    ).toBe(true)
    expect(failure({ 'keep-previous': 'warm' }).message).toContain(
      'warm needs strategy: blue-green'
    )
    expect(failure({ strategy: 'blue-green', 'keep-previous': 'running' }).message).toContain(
      'Input \'keep-previous\' has value "running": must be stopped or warm'
    )
  })
})

describe('readSettings: companions and hooks', () => {
  it('reads restart-services, the hooks and hook-timeout, with their defaults', () => {
    const none = readSettings(inputs(), FACTS)
    expect(none).toMatchObject({ restartServices: [], hookTimeoutSeconds: 600 })
    expect(none.beforeSwitch).toBeUndefined()
    const s = readSettings(
      inputs({
        'restart-services': 'myapp-worker\nmyapp-beat.service, rq@default',
        'before-switch': '  flask assets build && echo "$ZDD_RELEASE"  ',
        'after-switch': 'curl -fsS http://127.0.0.1/warm',
        'hook-timeout': '120'
      }),
      FACTS
    )
    expect(s.restartServices).toEqual(['myapp-worker', 'myapp-beat.service', 'rq@default'])
    expect(s.beforeSwitch).toBe('flask assets build && echo "$ZDD_RELEASE"')
    expect(s.afterSwitch).toBe('curl -fsS http://127.0.0.1/warm')
    expect(s.hookTimeoutSeconds).toBe(120)
  })

  it('runs hooks in deploys only', () => {
    const s = readSettings(inputs({ mode: 'rollback', 'before-switch': 'make assets' }), FACTS)
    expect(s.beforeSwitch).toBeUndefined()
  })

  it('refuses a unit name that is not one, the web unit itself, and a unit listed twice', () => {
    expect(failure({ 'restart-services': 'worker;reboot' }).message).toContain(
      'Input \'restart-services\' has value "worker;reboot"'
    )
    expect(failure({ 'restart-services': 'myapp' }).message).toContain('must not name the web unit')
    expect(failure({ 'restart-services': 'w1, w1.service' }).message).toContain('only once')
    expect(failure({ 'hook-timeout': '5' }).message).toContain('from 10 to 86400')
  })
})
