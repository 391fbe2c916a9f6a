// The reads of preflight (gatherFacts), scripted for a host set up like the server kit
// (examples/server): unit myapp as www-data, Gunicorn from /srv/myapp/.venv with three
// workers, Nginx proxying to Gunicorn's socket, release v1 current. Knobs change what a
// test is about: /proc mounted with hidepid (the deploy user's `ps` shows only its own
// processes), whether `sudo ps` is allowed, the unit's ExecStart and User, the socket
// unit that activates it, and the Nginx configuration.
import { RIGHTS, type Right } from '../src/host/service-commands.js'
import type { Rule } from './scripted-remote.js'

export interface KitHostScript {
  service?: string
  unitUser?: string
  execStart?: string
  /** `TriggeredBy=` of the service, e.g. `gunicorn.socket`. */
  triggeredBy?: string
  /** `Listen=` lines of the socket unit, e.g. `/run/gunicorn.sock (Stream)`. */
  listen?: string[]
  /** /proc's hidepid value; the deploy user's ps then lists only its own processes. */
  hidepid?: string
  /** Rights sudo refuses (every other one is granted). */
  refused?: Right[]
  /** The server block(s) of the Nginx configuration (`nginx -T`). */
  nginxServer?: string
  mainPid?: number
}

const MASTER = 31
const WORKERS = [32, 33, 34]

/** `ps -eo pid=,ppid=,args=` as procps prints it. */
function psLines(rows: [number, number, string][]): string {
  return (
    rows
      .map(([pid, ppid, args]) => `${String(pid).padStart(7)} ${String(ppid).padStart(7)} ${args}`)
      .join('\n') + '\n'
  )
}

export function kitHostRules(script: KitHostScript = {}): Rule[] {
  const service = script.service ?? 'myapp'
  const execStart =
    script.execStart ??
    '/srv/myapp/.venv/bin/gunicorn --workers 3 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app'
  const mainPid = script.mainPid ?? MASTER
  const gunicorn = `/srv/myapp/.venv/bin/python3 ${execStart}`
  const everyone = psLines([
    [1, 0, '/sbin/init'],
    [20, 1, 'sshd: deploy [priv]'],
    ...(mainPid > 0
      ? ([
          [mainPid, 1, gunicorn],
          ...WORKERS.map(w => [w, mainPid, gunicorn] as [number, number, string])
        ] as [number, number, string][])
      : []),
    [50, 20, 'sshd: deploy@notty'],
    [51, 50, 'ps -ww -eo pid=,ppid=,args=']
  ])
  const ownOnly = psLines([
    [50, 20, 'sshd: deploy@notty'],
    [51, 50, 'ps -ww -eo pid=,ppid=,args=']
  ])
  const show = [
    'LoadState=loaded',
    `ActiveState=${mainPid > 0 ? 'active' : 'inactive'}`,
    `SubState=${mainPid > 0 ? 'running' : 'dead'}`,
    `MainPID=${mainPid}`,
    'NRestarts=0',
    `ExecStart={ path=/x ; argv[]=${execStart} ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }`,
    'ExecReload={ path=/bin/kill ; argv[]=/bin/kill -s HUP $MAINPID ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }',
    `WorkingDirectory=/srv/myapp`,
    'EnvironmentFiles=',
    `User=${script.unitUser ?? 'www-data'}`,
    `FragmentPath=/etc/systemd/system/${service}.service`,
    `Id=${service}.service`,
    `TriggeredBy=${script.triggeredBy ?? ''}`
  ].join('\n')
  const refused = new Set(script.refused ?? [])
  const access = {
    user: 'deploy',
    uid: 1000,
    groups: ['deploy', 'systemd-journal', 'adm', 'www-data'],
    listing: {
      rc: 0,
      out: 'User deploy may run the following commands:\n    (root) NOPASSWD: ...'
    },
    sudo: RIGHTS.map(r => ({ rc: refused.has(r.right) ? 1 : 0, out: '' })),
    readable: {},
    which: {
      systemctl: '/usr/bin/systemctl',
      nginx: '/usr/sbin/nginx',
      pwdx: '/usr/bin/pwdx',
      journalctl: '/usr/bin/journalctl',
      ps: '/usr/bin/ps'
    },
    hidepid: script.hidepid ?? null
  }
  const server =
    script.nginxServer ??
    'server {\n  listen 80 default_server;\n  location / { proxy_pass http://unix:/run/myapp/myapp.sock; }\n}'
  const nginxDump = `nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n# configuration file /etc/nginx/nginx.conf:\nevents {}\nhttp {\n${server}\n}\n`
  const sudoRefused = (right: Right, reply: string) =>
    refused.has(right) ? { code: 1, stderr: 'sudo: a password is required\n' } : { stdout: reply }
  return [
    {
      when: /^systemctl show \S+\.socket /,
      reply: { stdout: (script.listen ?? []).map(l => `Listen=${l}`).join('\n') }
    },
    { when: /^systemctl show /, reply: { stdout: show } },
    { when: / access /, reply: { stdout: JSON.stringify(access) } },
    { when: / gunicornenv /, reply: { stdout: '{"readable": true}' } },
    {
      when: / envcheck /,
      reply: {
        stdout:
          '{"exists": true, "readable": true, "errors": [], "missing": [], "empty": [], "count": 0}'
      }
    },
    { when: /^ps -ww -eo /, reply: { stdout: script.hidepid ? ownOnly : everyone } },
    { when: /^sudo -n ps -ww -e -o pid/, reply: () => sudoRefused('ps', everyone) },
    {
      when: /^sudo -n pwdx /,
      reply: c =>
        sudoRefused(
          'pwdx',
          [...c.matchAll(/ (\d+)/g)].map(m => `${m[1]}: /srv/myapp/releases/v1`).join('\n')
        )
    },
    { when: /^sudo -n nginx -T/, reply: { stdout: nginxDump } },
    { when: /^sudo -n nginx -t/, reply: { stderr: 'syntax is ok' } },
    {
      when: /^sh -c 'test -d/,
      reply: {
        stdout:
          'releases-writable\nshared-dir\ncurrent-link\ncurrent-exists\nFilesystem 1024-blocks Used Available Capacity Mounted on\n/dev/x 100 1 10485760 1% /\n'
      }
    },
    {
      when: /^readlink -f /,
      reply: c => ({
        stdout: c.includes('current') ? '/srv/myapp/releases/v1\n' : '/srv/myapp/releases\n'
      })
    },
    { when: /^readlink /, reply: { stdout: 'releases/v1\n' } },
    // readCurrent: the link's text, the physical releases/, the physical directory of its target
    {
      when: /^sh -c 't=\$\(readlink /,
      reply: { stdout: 'releases/v1\n/srv/myapp/releases\n/srv/myapp/releases\n' }
    },
    { when: /^cat -- /, reply: { code: 1, stderr: 'cat: x: No such file or directory\n' } },
    {
      when: /^head -n \d+ /,
      reply: c => ({
        stdout: c.includes('/usr/bin/gunicorn')
          ? '#! /usr/bin/python3\n'
          : '#!/srv/myapp/.venv/bin/python3\n'
      })
    },
    {
      when: /import sys; print\(sys.executable\)/,
      reply: c => ({
        stdout: c.startsWith('/usr/bin/python3')
          ? '/usr/bin/python3\n\n'
          : '/srv/myapp/.venv/bin/python3\n/srv/myapp/.venv\n'
      })
    },
    { when: /gunicorn.__version__/, reply: { stdout: '23.0.0\n' } },
    { when: /-c 'import gunicorn'$/, reply: {} }
  ]
}
