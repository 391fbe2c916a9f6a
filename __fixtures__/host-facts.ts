// HostFacts of a healthy host set up like the reference guide (corrected unit),
// for unit tests of the host checks; each test changes what it is about.
import type { Access } from '../src/host/access.js'
import type { BlueGreenFacts, HostFacts } from '../src/host/host-facts.js'
import type { Colour, Instance } from '../src/host/blue-green/instances.js'
import { ReleaseLayout } from '../src/host/release-layout.js'
import type { Right } from '../src/host/service-commands.js'
import { parseGunicornCommand } from '../src/host/gunicorn/unit-info.js'

export function accessWith(grants: Partial<Record<Right, 'yes' | 'no' | 'unknown'>> = {}): Access {
  const all: Right[] = [
    'reload',
    'restart',
    'start',
    'stop',
    'daemon-reload',
    'nginx-test',
    'nginx-dump',
    'pwdx',
    'ps'
  ]
  return {
    user: 'deploy',
    uid: 1000,
    groups: ['deploy', 'systemd-journal', 'adm', 'www-data'],
    sudo: new Map(all.map(r => [r, grants[r] ?? 'yes'])),
    readable: new Map([['/var/log/nginx/error.log', true]]),
    programs: new Map([
      ['systemctl', '/usr/bin/systemctl'],
      ['nginx', '/usr/sbin/nginx'],
      ['pwdx', '/usr/bin/pwdx']
    ])
  }
}

/** ExecStart of the corrected unit (examples/server/myapp.service). */
export const FIXED_EXEC_START = [
  '/srv/myapp/.venv/bin/gunicorn',
  '--workers',
  '3',
  '--chdir',
  '/srv/myapp/current',
  '--bind',
  'unix:/run/myapp/myapp.sock',
  'wsgi:app'
]

export function healthyFacts(overrides: Partial<HostFacts> = {}): HostFacts {
  const execStart = FIXED_EXEC_START
  return {
    service: 'myapp',
    user: 'deploy',
    layout: new ReleaseLayout('/srv/myapp'),
    access: accessWith(),
    unit: {
      loadState: 'loaded',
      activeState: 'active',
      subState: 'running',
      mainPid: 100,
      nRestarts: 0,
      execStart,
      execReload: ['/bin/kill', '-HUP', '$MAINPID'],
      workingDirectory: '/srv/myapp',
      environmentFiles: [{ path: '/etc/myapp.env', optional: false }],
      environment: [],
      user: 'www-data',
      group: 'www-data',
      fragmentPath: '/etc/systemd/system/myapp.service'
    },
    gunicorn: parseGunicornCommand(execStart),
    masterAlive: true,
    workers: [101, 102, 103],
    processes: 'ps',
    dirs: 'sudo',
    masterDir: '/srv/myapp',
    nginxTest: { code: 0, signal: null, stdout: '', stderr: 'syntax is ok', timedOut: false },
    nginx: { kind: 'match', servers: [], proxies: [], keepalive: [] },
    releasesWritable: true,
    sharedExists: true,
    currentIsLink: true,
    currentExists: true,
    liveLinkExists: false,
    currentRelease: 'v1',
    currentDir: '/srv/myapp/releases/v1',
    releasesDir: '/srv/myapp/releases',
    freeKb: 10 * 1024 * 1024,
    interpreter: { python: '/srv/myapp/.venv/bin/python3', venv: '/srv/myapp/.venv' },
    shebang: { python: '/srv/myapp/.venv/bin/python3', importsGunicorn: true },
    envSources: { assignments: [], files: [{ path: '/etc/myapp.env', optional: false }] },
    env: {
      exists: true,
      readable: true,
      files: [
        { path: '/etc/myapp.env', optional: false, exists: true, readable: true, errors: [] }
      ],
      missing: [],
      empty: [],
      count: 2
    },
    nginxErrorLog: '/var/log/nginx/error.log',
    companions: [],
    ...overrides
  }
}

/** ExecStart of a blue-green instance (examples/server/blue-green/myapp@.service, %i filled in). */
export function instanceExecStart(colour: Colour): string[] {
  return [
    '/srv/myapp/.venv/bin/gunicorn',
    '--workers',
    '3',
    '--chdir',
    `/srv/myapp/slots/${colour}`,
    '--bind',
    `unix:/run/myapp-${colour}/gunicorn.sock`,
    'wsgi:app'
  ]
}

/** One instance as readBlueGreen reads it: running or stopped, its slot on `release`. */
export function instanceFacts(colour: Colour, running: boolean, release?: string): Instance {
  const execStart = instanceExecStart(colour)
  const base = healthyFacts().unit
  return {
    colour,
    unit: `myapp@${colour}`,
    info: {
      ...base,
      activeState: running ? 'active' : 'inactive',
      subState: running ? 'running' : 'dead',
      mainPid: running ? (colour === 'blue' ? 100 : 200) : 0,
      execStart,
      execReload: [],
      fragmentPath: '/etc/systemd/system/myapp@.service',
      id: `myapp@${colour}`
    },
    gunicorn: parseGunicornCommand(execStart),
    socket: `/run/myapp-${colour}/gunicorn.sock`,
    slotRelease: release,
    slotTarget: release ? `../releases/${release}` : undefined
  }
}

/**
 * HostFacts of a blue-green host set up like the server kit: myapp@blue serves
 * v1 through live.sock, myapp@green is stopped with its slot on v0.
 */
export function blueGreenFacts(
  overrides: Partial<HostFacts> = {},
  blueGreen: Partial<BlueGreenFacts> = {}
): HostFacts {
  const blue = instanceFacts('blue', true, 'v1')
  const green = instanceFacts('green', false, 'v0')
  return healthyFacts({
    service: blue.unit,
    unit: blue.info,
    gunicorn: blue.gunicorn,
    blueGreen: {
      template: 'myapp',
      liveLink: '/srv/myapp/live.sock',
      liveTarget: blue.socket,
      live: 'blue',
      instances: { blue, green },
      serving: 'blue',
      idleAccess: accessWith(),
      perReleaseVenvs: true,
      ...blueGreen
    },
    ...overrides
  })
}
