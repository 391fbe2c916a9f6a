// Servers set up the way other people's guides and defaults do it (hostkit/styles/),
// not the way examples/server does: on Debian 12 every style, on Debian 13 some. On
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
  'poetry-run': 'poet'
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
  'poetry-run'
]
const TRIXIE: ServerStyle[] = ['minimal-sudo', 'tls-redirect', 'upstream-oneline', 'first-deploy']

const caseOf = (style: ServerStyle, suite: Suite): Case => ({
  name: `ss-${SHORT[style]}-${suite[0]}`,
  style,
  suite
})
const ONLY = process.env.ZDD_STYLES?.split(',').filter(Boolean)
const chosen = (style: ServerStyle) => !ONLY || ONLY.includes(style)
const CASES = [
  ...BOOKWORM.filter(chosen).map(style => caseOf(style, 'bookworm')),
  ...TRIXIE.filter(chosen).map(style => caseOf(style, 'trixie'))
]
const FIRST_DEPLOY = CASES.filter(c => c.style === 'first-deploy')
const DEPLOYED_BEFORE = CASES.filter(c => c.style !== 'first-deploy')
const MISMATCH = caseOf('mismatch', 'bookworm')
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
    ...(c.style === 'tls-redirect' && c.suite === 'trixie' ? { 'nginx-url': '' } : {})
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

  forCases(CASES)(
    '$style on $suite: a good release deploys and then serves through Nginx',
    async c => {
      const host = hosts[c.name]
      const id = `good-${c.suite}`
      await onHost(host, async () => {
        const run = await runAction(inputsOf(c, host, appFor(host), id))
        expect(outcome(run)).toEqual({ code: 0, status: 'deployed', errors: [] })
        expect(run.outputs.release).toBe(id)
        if (LIMITED_SUDO.includes(c.style)) {
          expect(warnings(run)).toMatch(/not verified/i)
          expect(warnings(run)).toContain('nginx -t')
        }
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
