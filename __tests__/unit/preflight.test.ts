import { describe, expect, it } from '@jest/globals'
import { FIXED_EXEC_START, healthyFacts } from '../../__fixtures__/host-facts.js'
import { runChecks } from '../../src/host/host-checks.js'
import { reloadSendsHup, reloadTrap } from '../../src/host/preflight.js'
import {
  parseGunicornCommand,
  withConfigFile,
  type UnitInfo
} from '../../src/host/gunicorn/unit-info.js'

function unit(workingDirectory: string): UnitInfo {
  return {
    loadState: 'loaded',
    activeState: 'active',
    subState: 'running',
    mainPid: 10,
    nRestarts: 0,
    execStart: [],
    execReload: [],
    workingDirectory,
    environmentFiles: [],
    environment: [],
    user: 'www-data',
    group: '',
    fragmentPath: ''
  }
}

describe('reloadSendsHup', () => {
  it.each([
    [['/bin/kill', '-HUP', '$MAINPID'], true],
    [['/usr/bin/kill', '-s', 'HUP', '$MAINPID'], true],
    [['/bin/kill', '-HUP', '${MAINPID}'], true],
    [['/bin/kill', '-TERM', '$MAINPID'], false],
    [['/bin/kill', '-HUP', '1234'], false],
    [['/usr/bin/systemctl', 'restart', 'x'], false],
    [[], false]
  ])('%j -> %s', (argv, expected) => {
    expect(reloadSendsHup(argv)).toBe(expected)
  })
})

describe('reloadTrap', () => {
  const guide = parseGunicornCommand([
    '/srv/myapp/.venv/bin/gunicorn',
    '--workers',
    '3',
    '--bind',
    'unix:/run/myapp.sock',
    'wsgi:app'
  ])
  const fixed = parseGunicornCommand(FIXED_EXEC_START)

  it("names the guide's WorkingDirectory-without---chdir trap and its fix", () => {
    const trap = reloadTrap(unit('/srv/myapp/current'), guide, '/srv/myapp', 'myapp')
    expect(trap?.message).toContain('OLD release')
    expect(trap?.message).toContain('Fix: add --chdir /srv/myapp/current')
  })

  it('carries its cause and fix as fields, which the chdir finding takes as they are', () => {
    const trap = reloadTrap(unit('/srv/myapp/current'), guide, '/srv/myapp', 'myapp')!
    expect(trap.cause).toMatch(
      /^myapp has WorkingDirectory=\/srv\/myapp\/current and no --chdir: .*\.$/
    )
    expect(trap.fix).toMatch(/^add --chdir \/srv\/myapp\/current to ExecStart/)
    expect(trap.message).toBe(`${trap.cause}\nFix: ${trap.fix}`)
    const facts = healthyFacts({ unit: unit('/srv/myapp/current'), gunicorn: guide })
    const chdir = runChecks(facts, {
      releasePath: '/srv/myapp',
      requiredEnv: [],
      minFreeBytes: 0
    }).findings.find(f => f.check === 'chdir')
    expect(chdir).toEqual({ severity: 'error', check: 'chdir', finding: trap.cause, fix: trap.fix })
  })

  it('names --preload and its fix', () => {
    const preload = parseGunicornCommand([
      '/srv/myapp/.venv/bin/gunicorn',
      '--preload',
      '--chdir',
      '/srv/myapp/current',
      'wsgi:app'
    ])
    expect(reloadTrap(unit('/srv/myapp'), preload, '/srv/myapp', 'myapp')?.message).toContain(
      '--preload'
    )
  })

  it('accepts the corrected unit', () => {
    expect(reloadTrap(unit('/srv/myapp'), fixed, '/srv/myapp', 'myapp')).toBeUndefined()
  })

  it('reads chdir and preload_app from the config file Gunicorn reads', () => {
    const wd = unit('/srv/myapp/current')
    const conf = '/srv/myapp/current/gunicorn.conf.py'
    const chdirInFile = withConfigFile(guide, conf, "chdir = '/srv/myapp/current'\n")
    expect(reloadTrap(wd, chdirInFile, '/srv/myapp', 'myapp')).toBeUndefined()
    const preloadInFile = withConfigFile(fixed, conf, 'preload_app = True\n')
    expect(reloadTrap(unit('/srv/myapp'), preloadInFile, '/srv/myapp', 'myapp')?.message).toContain(
      `runs Gunicorn with preload_app = True in ${conf}`
    )
    const nothingInFile = withConfigFile(guide, conf, 'timeout = 30\n')
    expect(reloadTrap(wd, nothingInFile, '/srv/myapp', 'myapp')?.message).toContain('OLD release')
  })

  it('leaves an unreadable or computed config file to verification', () => {
    const wd = unit('/srv/myapp/current')
    const unread = {
      ...guide,
      configFile: '/srv/myapp/current/gunicorn.conf.py',
      configRead: false
    }
    expect(reloadTrap(wd, unread, '/srv/myapp', 'myapp')).toBeUndefined()
    const withC = parseGunicornCommand(['/v/bin/gunicorn', '-c', '/etc/g.py', 'wsgi:app'])
    expect(reloadTrap(wd, withC, '/srv/myapp', 'myapp')).toBeUndefined()
  })

  it('rejects a --chdir that does not go through current', () => {
    const pinned = parseGunicornCommand([
      '/v/bin/gunicorn',
      '--chdir',
      '/srv/myapp/releases/v0',
      'wsgi:app'
    ])
    expect(reloadTrap(unit('/srv/myapp'), pinned, '/srv/myapp', 'myapp')?.message).toContain(
      'use --chdir /srv/myapp/current'
    )
  })
})
