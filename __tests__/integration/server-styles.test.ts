// Servers set up the way other people's guides and defaults do it (hostkit/styles/),
// not the way examples/server does: on Debian 12 every style, on Debian 13 and Debian
// sid (Gunicorn 26) some. Among them every systemd layout of Gunicorn's own deployment
// docs, and a host hardened the way security benchmarks recommend (/proc hidepid). On
// each, a good release deploys and then serves through the host's own Nginx; a
// release that fails to import never serves; and a mismatched Nginx upstream stops
// the deploy before any change. Hosts start together; the tests run side by side,
// one at a time per host. ZDD_STYLES=a,b starts (and tests) only those styles.
import { describe, expect, it } from '@jest/globals'
import { readFileSync, writeFileSync } from 'node:fs'
import {
  annotations,
  appFor,
  fetchGunicorn,
  fetchNginx,
  inputsFor,
  rootExec,
  rootSh,
  runAction,
  servedRelease,
  type ActionRun,
  type HostOptions,
  type KitHost,
  type ServerStyle,
  type Suite
} from './kit.js'
import { withHosts } from './with-host.js'

interface Case {
  name: string
  style: ServerStyle
  suite: Suite
}

const SHORT: Partial<Record<ServerStyle, string>> = {
  'upstream-oneline': 'onel',
  'upstream-multiline': 'mult',
  'tcp-localhost': 'tcp',
  'config-file': 'conf',
  'python-m': 'pym',
  'web-concurrency': 'webc',
  gthread: 'gth',
  'other-names': 'oth',
  'first-deploy': 'first',
  'deploy-user-unit': 'duser',
  'minimal-sudo': 'minsu',
  vhost: 'vhost',
  'tls-redirect': 'tls',
  mismatch: 'mism',
  'sh-wrapper': 'sh',
  'poetry-run': 'poet',
  'gunicorn-docs-systemd': 'gds',
  'gunicorn-docs-nginx': 'gdn',
  'hardened-hidepid': 'hpid'
}
const BOOKWORM: ServerStyle[] = [
  'upstream-oneline',
  'upstream-multiline',
  'tcp-localhost',
  'config-file',
  'python-m',
  'web-concurrency',
  'gthread',
  'other-names',
  'first-deploy',
  'deploy-user-unit',
  'minimal-sudo',
  'vhost',
  'tls-redirect',
  'sh-wrapper',
  'poetry-run',
  'gunicorn-docs-systemd',
  'gunicorn-docs-nginx',
  'hardened-hidepid'
]
const TRIXIE: ServerStyle[] = ['minimal-sudo', 'tls-redirect', 'upstream-oneline', 'first-deploy']
// What runs on Debian 13, and the layouts of Gunicorn's docs for today's Gunicorn.
const SID: ServerStyle[] = [
  ...TRIXIE,
  'gunicorn-docs-systemd',
  'gunicorn-docs-nginx',
  'hardened-hidepid'
]

const caseOf = (style: ServerStyle, suite: Suite): Case => ({
  name: `ss-${SHORT[style]}-${suite[0]}`,
  style,
  suite
})
const ONLY = process.env.ZDD_STYLES?.split(',').filter(Boolean)
const chosen = (style: ServerStyle) => !ONLY || ONLY.includes(style)
const CASES = [
  ...BOOKWORM.filter(chosen).map(style => caseOf(style, 'bookworm')),
  ...TRIXIE.filter(chosen).map(style => caseOf(style, 'trixie')),
  ...SID.filter(chosen).map(style => caseOf(style, 'sid'))
]
const FIRST_DEPLOY = CASES.filter(c => c.style === 'first-deploy')
const DEPLOYED_BEFORE = CASES.filter(c => c.style !== 'first-deploy')
const MISMATCH = caseOf('mismatch', 'bookworm')
const HIDEPID = CASES.filter(c => c.style === 'hardened-hidepid')
const MISMATCHES = chosen('mismatch') ? [MISMATCH] : []
/** The deploy user cannot read the EnvironmentFile, and the app reads SECRET_KEY from it at import. */
const ENV_UNREADABLE = CASES.filter(c => c.style === 'minimal-sudo')
const TIMEOUT = 240_000

/** The deploy user may not run these: the run must say what it could not verify. */
const LIMITED_SUDO: ServerStyle[] = ['minimal-sudo', 'deploy-user-unit']

// Steps on one host run one after the other, in the order the tests start them.
const queues = new Map<string, Promise<unknown>>()
function onHost<T>(host: KitHost, step: () => Promise<T>): Promise<T> {
  const next = (queues.get(host.name) ?? Promise.resolve()).catch(() => undefined).then(step)
  queues.set(host.name, next)
  return next
}

/** The module cannot be imported: ImportError (ModuleNotFoundError) on its first line. */
function breakImport(_dir: string, file: string): void {
  writeFileSync(file, 'import flask_not_installed\n' + readFileSync(file, 'utf8'))
}

function inputsOf(c: Case, host: KitHost, source: string, id: string): Record<string, string> {
  return inputsFor(host, {
    source,
    'release-id': id,
    // least privilege: the migrations would need the EnvironmentFile the deploy user
    // cannot read; such a team migrates another way
    ...(c.style === 'minimal-sudo' ? { migrate: 'off' } : {}),
    // the action derives the https URL from the Nginx configuration
    ...(c.style === 'tls-redirect' && c.suite !== 'bookworm' ? { 'nginx-url': '' } : {}),
    ...(c.style.startsWith('gunicorn-docs-')
      ? {
          // derived from the docs' server blocks: http://example.com/ (whose default
          // server closes every other name) and http://127.0.0.1:8000/
          'nginx-url': '',
          // the docs' units have no EnvironmentFile, so the example app has no
          // DATABASE_URL: such a team migrates another way
          migrate: 'off'
        }
      : {}),
    // the docs' unit runs the system's Gunicorn (/usr/bin/gunicorn): the dependencies
    // come from the system's packages, and the action never pip-installs into the system
    ...(c.style === 'gunicorn-docs-systemd' ? { exclude: '/requirements.txt' } : {})
  })
}

/** What a run ended with, and the ::error annotations (shown when an expectation fails). */
function outcome(run: ActionRun): { code: number | null; status: string; errors: string[] } {
  const errors = annotations(run)
    .split(/\n(?=::)/)
    .filter(a => a.startsWith('::error'))
  return { code: run.code, status: run.outputs.status, errors }
}

function warnings(run: ActionRun): string {
  return annotations(run)
    .split(/\n(?=::)/)
    .filter(a => a.startsWith('::warning'))
    .join('\n')
}

async function currentTarget(host: KitHost): Promise<string> {
  return (await rootSh(host, `readlink ${host.releasePath}/current || echo none`)).trim()
}

async function releaseDirs(host: KitHost): Promise<string[]> {
  return (await rootExec(host, ['ls', '-A', `${host.releasePath}/releases`]))
    .split('\n')
    .filter(Boolean)
    .sort()
}

/** The processes' users and command lines as `user` sees them (ps, with /proc as mounted). */
async function processesSeenBy(host: KitHost, user: string): Promise<string> {
  return rootExec(host, ['runuser', '-u', user, '--', 'ps', '-e', '-o', 'user=,args='])
}

/** The socket unit's socket file (device and inode): a reload must keep it. */
async function socketFile(host: KitHost): Promise<string> {
  return (await rootExec(host, ['stat', '-c', '%d:%i', '/run/gunicorn.sock'])).trim()
}

async function unitState(host: KitHost): Promise<string> {
  return (
    await rootExec(host, ['systemctl', 'show', '-p', 'ActiveState', '--value', host.service])
  ).trim()
}

async function mainPid(host: KitHost): Promise<string> {
  return (
    await rootExec(host, ['systemctl', 'show', '-p', 'MainPID', '--value', host.service])
  ).trim()
}

/** Adds `text` right after the line that reads SECRET_KEY, which fails without the EnvironmentFile. */
function afterTheSecret(text: string): (dir: string, file: string) => void {
  return (_dir, file) => {
    const source = readFileSync(file, 'utf8')
    const line = 'SECRET_KEY = os.environ["SECRET_KEY"]\n'
    if (!source.includes(line)) throw new Error(`${file} does not read SECRET_KEY`)
    writeFileSync(file, source.replace(line, line + text))
  }
}

/** it.concurrent.each over `cases`; nothing when ZDD_STYLES leaves none (Jest refuses an empty table). */
function forCases(cases: Case[]) {
  return (title: string, fn: (c: Case) => Promise<void>, timeout: number) => {
    if (cases.length > 0) it.concurrent.each(cases)(title, fn, timeout)
  }
}

describe('server styles', () => {
  const specs: Record<string, HostOptions> = {}
  for (const c of [...CASES, ...MISMATCHES]) specs[c.name] = { style: c.style, suite: c.suite }
  const hosts = withHosts(specs)

  forCases(FIRST_DEPLOY)(
    '$style on $suite: a first release that fails to import leaves the unit stopped and no current',
    async c => {
      const host = hosts[c.name]
      await onHost(host, async () => {
        expect(await currentTarget(host)).toBe('none')
        const run = await runAction(
          inputsOf(c, host, appFor(host, breakImport), `broken-${c.suite}`)
        )
        expect(run.code).not.toBe(0)
        expect(run.outputs.status).not.toBe('deployed')
        expect(await currentTarget(host)).toBe('none')
        expect(['inactive', 'failed']).toContain(await unitState(host))
        expect((await fetchGunicorn(host)).status).toBe(0)
      })
    },
    TIMEOUT
  )

  forCases(MISMATCHES)(
    'mismatch: Nginx proxies to another socket than Gunicorn binds; the deploy stops before any change, naming both',
    async () => {
      const host = hosts[MISMATCH.name]
      const before = { releases: await releaseDirs(host), current: await currentTarget(host) }
      const run = await runAction(inputsOf(MISMATCH, host, appFor(host), 'mismatch-1'))
      expect(run.code).not.toBe(0)
      expect(run.outputs.status).toBe('failed')
      const errors = outcome(run).errors.join('\n')
      expect(errors).toContain('/run/myapp/other.sock')
      expect(errors).toContain('/run/myapp/myapp.sock')
      expect({ releases: await releaseDirs(host), current: await currentTarget(host) }).toEqual(
        before
      )
      expect((await fetchGunicorn(host)).release).toBe('v0')
    },
    TIMEOUT
  )

  forCases(HIDEPID)(
    '$style on $suite: /proc hides the Gunicorn processes from the deploy user, not from root',
    async c => {
      const host = hosts[c.name]
      await onHost(host, async () => {
        expect(await rootSh(host, "grep ' /proc proc ' /proc/mounts")).toContain(
          'hidepid=invisible'
        )
        expect(await processesSeenBy(host, 'root')).toMatch(/^www-data .*gunicorn/m)
        const seen = await processesSeenBy(host, 'deploy')
        expect(seen).not.toMatch(/gunicorn|www-data/)
        expect(seen).toMatch(/^deploy /m)
      })
    },
    TIMEOUT
  )

  forCases(CASES)(
    '$style on $suite: a good release deploys and then serves through Nginx',
    async c => {
      const host = hosts[c.name]
      const id = `good-${c.suite}`
      await onHost(host, async () => {
        const socket = c.style === 'gunicorn-docs-systemd' ? await socketFile(host) : ''
        const run = await runAction(inputsOf(c, host, appFor(host), id))
        expect(outcome(run)).toEqual({ code: 0, status: 'deployed', errors: [] })
        expect(run.outputs.release).toBe(id)
        if (LIMITED_SUDO.includes(c.style)) {
          expect(warnings(run)).toMatch(/not verified/i)
          expect(warnings(run)).toContain('nginx -t')
        }
        if (c.style === 'hardened-hidepid') {
          // what the deploy user cannot see is not verified, with the line that allows it
          expect(warnings(run)).toContain(
            'not verified: workers: /proc is mounted with hidepid=invisible, so deploy cannot see the processes of www-data'
          )
          expect(warnings(run)).toContain(
            'deploy ALL=(root) NOPASSWD: /usr/bin/ps -ww -e -o pid -o ppid -o args --no-headers'
          )
          expect(run.stdout).toContain('its workers are hidden from the deploy user')
        }
        // the socket unit's socket is the one Nginx reaches, and the reload keeps it
        if (socket) expect(await socketFile(host)).toBe(socket)
        if (c.style === 'minimal-sudo')
          // imported without the EnvironmentFile: the unset SECRET_KEY may be the file's
          expect(warnings(run)).toContain(
            "does not import without /etc/myapp.env, which deploy cannot read: KeyError: 'SECRET_KEY'"
          )
        expect(await servedRelease(host)).toBe(id)
        expect((await fetchGunicorn(host)).release).toBe(id)
        expect(await currentTarget(host)).toBe(`releases/${id}`)
        expect(await unitState(host)).toBe('active')
        if (c.style === 'vhost')
          expect((await fetchNginx(host, `http://${host.ip}/health`)).status).toBe(404)
        if (c.style === 'tls-redirect') {
          const plain = await fetchNginx(host, 'http://app.example.test/health')
          expect([plain.status, plain.location]).toEqual([301, 'https://app.example.test/health'])
        }
      })
    },
    TIMEOUT
  )

  forCases(DEPLOYED_BEFORE)(
    '$style on $suite: a release that fails to import never serves; the previous release keeps serving',
    async c => {
      const host = hosts[c.name]
      await onHost(host, async () => {
        const before = await servedRelease(host)
        expect(before).toMatch(/^[\w.-]+$/) // one release answering, not an HTTP error
        const current = await currentTarget(host)
        const run = await runAction(
          inputsOf(c, host, appFor(host, breakImport), `broken-${c.suite}`)
        )
        expect(run.code).not.toBe(0)
        expect(run.outputs.status).not.toBe('deployed')
        expect(await servedRelease(host)).toBe(before)
        expect((await fetchGunicorn(host)).release).toBe(before)
        expect(await currentTarget(host)).toBe(current)
      })
    },
    TIMEOUT
  )

  // (on one suite: what sudo ps shows does not depend on it)
  forCases(HIDEPID.filter(c => c.suite === 'sid'))(
    '$style on $suite: where sudo ps is allowed, the workers are seen and verified',
    async c => {
      const host = hosts[c.name]
      const rule = '/etc/sudoers.d/deploy-ps'
      await onHost(host, async () => {
        const line =
          'deploy ALL=(root) NOPASSWD: /usr/bin/ps -ww -e -o pid -o ppid -o args --no-headers'
        await rootSh(host, `echo '${line}' > ${rule} && chmod 440 ${rule} && visudo -cqf ${rule}`)
        try {
          const id = `seen-${c.suite}`
          const run = await runAction(inputsOf(c, host, appFor(host), id))
          expect(outcome(run)).toEqual({ code: 0, status: 'deployed', errors: [] })
          expect(warnings(run)).not.toContain('not verified: workers')
          expect(run.stdout).toMatch(
            new RegExp(`new workers \\([\\d, ]+\\) in ${host.releasePath}/releases/${id}`)
          )
          expect(await servedRelease(host)).toBe(id)
        } finally {
          await rootExec(host, ['rm', '-f', rule])
        }
      })
    },
    TIMEOUT
  )

  forCases(ENV_UNREADABLE)(
    '$style on $suite: without the EnvironmentFile, a release that cannot import whatever the environment is refused before the switch',
    async c => {
      const host = hosts[c.name]
      await onHost(host, async () => {
        const before = {
          served: await servedRelease(host),
          current: await currentTarget(host),
          master: await mainPid(host)
        }
        expect(before.served).toMatch(/^[\w.-]+$/)
        const broken: [string, (dir: string, file: string) => void][] = [
          // found while importing: nothing was read from the environment before it
          ['first-line', breakImport],
          // found in the source: the import stops at the unset SECRET_KEY before reaching them
          ['after-secret', afterTheSecret('import flask_not_installed\n')],
          [
            'syntax',
            (dir, file) => {
              writeFileSync(`${dir}/helpers.py`, 'def broken(:\n    pass\n')
              afterTheSecret('import helpers\n')(dir, file)
            }
          ]
        ]
        for (const [name, edit] of broken) {
          const run = await runAction(inputsOf(c, host, appFor(host, edit), `${name}-${c.suite}`))
          expect([name, run.code === 0, run.outputs.status, run.outputs['rolled-back']]).toEqual([
            name,
            false,
            'failed',
            'false'
          ])
          const errors = outcome(run).errors.join('\n')
          expect(errors).toContain('(it never reached the reload)')
          expect(errors).toContain('fails the same with any environment')
          expect(errors).toContain(
            name === 'syntax' ? 'helpers.py does not compile' : 'flask_not_installed'
          )
          expect({
            served: await servedRelease(host),
            current: await currentTarget(host),
            master: await mainPid(host)
          }).toEqual(before)
        }
      })
    },
    TIMEOUT
  )
})
