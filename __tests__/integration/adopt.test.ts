// examples/server/adopt.sh on servers set up by hand from the common Flask tutorials
// (hostkit/styles/tutorial-*): each is converted under load through Nginx without a failed
// request, the action's mode: check is clean right after, v1 and v2 deploy and roll back
// (also to the adopted release, which predates the action and has no health route) without
// a failed request, and --undo puts the original files back, again without one. A server
// adopt.sh must refuse is refused with the reason, nothing changed.
import { describe, expect, it } from '@jest/globals'
import { execFile } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { promisify } from 'node:util'
import { underLoad, type LoadReport } from './load.js'
import {
  annotations,
  fetchNginx,
  inputsFor,
  ROOT,
  rootSh,
  runAction,
  type ActionRun,
  type KitHost,
  type ServerStyle
} from './kit.js'
import { unlessGunicornCrashed } from './problems.js'
import { withHosts } from './with-host.js'

const run = promisify(execFile)
const TIMEOUT = 900_000

interface Case {
  style: ServerStyle
  name: string
  /** the directory the tutorial's app runs from */
  appDir: string
  deployUser: string
  /** the deploy user does not exist: adopt.sh creates it with the key given */
  createUser?: boolean
  /** the host has Node.js: adopt.sh runs the action's check itself */
  node?: boolean
  /** the workflow's shared-paths (the app keeps .env and instance/ beside its code) */
  shared?: string
}

const CASES: Case[] = [
  {
    style: 'tutorial-socket',
    name: 'ad-sock',
    appDir: '/home/app/myproject',
    deployUser: 'deploy',
    node: true
  },
  {
    style: 'tutorial-tcp',
    name: 'ad-tcp',
    appDir: '/opt/flaskapp',
    deployUser: 'shipit',
    createUser: true
  },
  { style: 'tutorial-root', name: 'ad-root', appDir: '/var/www/shop', deployUser: 'deploy' },
  {
    style: 'tutorial-instance',
    name: 'ad-inst',
    appDir: '/home/ubuntu/notes',
    deployUser: 'deploy',
    shared: '.env,instance'
  }
]
const REFUSED = {
  style: 'tutorial-preload' as ServerStyle,
  name: 'ad-pre',
  appDir: '/home/app/myproject'
}
const LOAD = { path: '/', loops: 4, rate: 50, atLeast: 200, maxSeconds: 240 }

// Steps on one host run one after the other, in the order the tests start them.
const queues = new Map<string, Promise<unknown>>()
function onHost<T>(host: KitHost, step: () => Promise<T>): Promise<T> {
  const next = (queues.get(host.name) ?? Promise.resolve()).catch(() => undefined).then(step)
  queues.set(host.name, next)
  return next
}

/** Copies examples/server and the action's bundle into the host at /root/kit, as a user would. */
function pushKit(host: KitHost): void {
  const kit = path.join(host.state, 'root', 'root', 'kit')
  cpSync(path.join(ROOT, 'examples', 'server'), path.join(kit, 'examples', 'server'), {
    recursive: true
  })
  cpSync(path.join(ROOT, 'dist', 'index.js'), path.join(kit, 'dist', 'index.js'))
}

/** Runs adopt.sh as root inside the host; its exit code and everything it printed. */
async function adopt(
  host: KitHost,
  c: Case,
  ...extra: string[]
): Promise<{ code: number; out: string }> {
  const args = ['--service', host.service, '--release-path', host.releasePath]
  args.push('--deploy-user', c.deployUser, ...extra)
  try {
    const { stdout, stderr } = await run(
      path.join(ROOT, 'hostkit', 'host-exec.sh'),
      [host.name, '/root/kit/examples/server/adopt.sh', ...args],
      { maxBuffer: 1 << 24, timeout: 300_000 }
    )
    return { code: 0, out: stdout + stderr }
  } catch (e) {
    const error = e as { code?: number; stdout?: string; stderr?: string }
    return { code: Number(error.code ?? -1), out: `${error.stdout ?? ''}${error.stderr ?? ''}` }
  }
}

/** The public key adopt.sh is given when it creates the deploy user (copied into the host). */
function keyArgs(c: Case): string[] {
  return c.createUser ? ['--authorized-key', '/root/kit/shipit_key.pub'] : []
}

/** What adopt.sh may change, as checksums and listings: equal before adopt and after --undo. */
function serverFiles(host: KitHost, c: Pick<Case, 'appDir'>): Promise<string> {
  return rootSh(
    host,
    [
      `sha256sum /etc/systemd/system/${host.service}.service /etc/nginx/sites-available/* /etc/sudoers.d/*`,
      `ls -A /etc/systemd/system/${host.service}.service.d 2>&1 || true`,
      `find ${c.appDir} -path '*/__pycache__' -prune -o -type f ! -name '*.sqlite' -print | sort | xargs sha256sum`,
      'ls -A /srv /run/systemd/system',
      'id deploy; getent passwd shipit || echo no shipit',
      'cat /home/deploy/.ssh/authorized_keys | sha256sum'
    ].join('; ')
  )
}

/** A release of the app as the team deploys it after adopt.sh: / and a /health naming it. */
function releaseApp(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'zdd-adopt-app-'))
  writeFileSync(
    path.join(dir, 'wsgi.py'),
    `"""The tutorial app after adopt.sh: the same / and a health route that names the release."""
import json
import os
import sqlite3

from flask import Flask, jsonify

HERE = os.path.dirname(os.path.abspath(__file__))


def read_release_id():
    try:
        with open(os.path.join(HERE, ".zdd-release.json"), encoding="utf-8") as fh:
            return str(json.load(fh)["id"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def read_dotenv(path):
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                os.environ.setdefault(key.strip(), value.strip())


RELEASE = read_release_id()
if os.path.lexists(os.path.join(HERE, ".env")):
    read_dotenv(os.path.join(HERE, ".env"))
    SECRET_KEY = os.environ["SECRET_KEY"]
app = Flask(__name__, instance_path=os.path.join(HERE, "instance"))


@app.after_request
def tag_release(response):
    response.headers["X-Release"] = RELEASE
    return response


@app.route("/")
def index():
    if not os.path.isdir(app.instance_path):
        return f"release={RELEASE}\\n"
    with sqlite3.connect(os.path.join(app.instance_path, "notes.sqlite"), timeout=10) as db:
        db.execute("CREATE TABLE IF NOT EXISTS visits (at TEXT)")
        db.execute("INSERT INTO visits VALUES (datetime('now'))")
        count = db.execute("SELECT count(*) FROM visits").fetchone()[0]
    return f"release={RELEASE} visit {count}\\n"


@app.route("/health")
def health():
    return jsonify(status="ok", release=RELEASE)
`
  )
  writeFileSync(path.join(dir, 'requirements.txt'), 'flask\ngunicorn\n')
  return dir
}

/** The action's inputs for this host, as the workflow adopt.sh printed would give them. */
function inputs(host: KitHost, c: Case, extra: Record<string, string>): Record<string, string> {
  const own: Record<string, string> = c.shared ? { 'shared-paths': c.shared } : {}
  if (c.createUser) {
    own.host = `${c.deployUser}@${host.ip}:${host.port}`
    own['private-key'] = readFileSync(path.join(host.state, 'shipit_key'), 'utf8')
  }
  return inputsFor(host, { ...own, ...extra })
}

function outcome(r: ActionRun): { code: number | null; status: string; errors: string[] } {
  const errors = annotations(r)
    .split(/\n(?=::)/)
    .filter(a => a.startsWith('::error'))
  return { code: r.code, status: r.outputs.status, errors }
}

/** 'no failed probe request', else the traffic probe's log line, which shows the first failures. */
function probe(r: ActionRun): string {
  if (r.outputs['failed-requests'] === '0') return 'no failed probe request'
  return (
    /traffic probe: [^\n]*/.exec(r.stdout)?.[0] ?? `(no probe line) ${r.outputs['failed-requests']}`
  )
}

/** No request failed (but for Gunicorn's own crash, when one of the action's `runs` names it). */
function noFailures(report: LoadReport, runs: ActionRun[] = []): void {
  expect({ failed: report.failed, failures: report.failures }).toEqual(
    unlessGunicornCrashed(runs, { failed: 0, failures: [] })
  )
  expect(report.total).toBeGreaterThanOrEqual(LOAD.atLeast)
}

async function visits(host: KitHost): Promise<number> {
  const body = (await fetchNginx(host, '/')).body
  return Number(/visit (\d+)/.exec(body)?.[1] ?? NaN)
}

describe('adopt.sh on tutorial-style servers', () => {
  const specs = Object.fromEntries([...CASES, REFUSED].map(c => [c.name, { style: c.style }]))
  const hosts = withHosts(specs)
  const original = new Map<string, string>()
  const visitsBefore = new Map<string, number>()

  /** One test for each case, its steps queued on the case's host behind the earlier tests' steps. */
  function eachCase(title: string, steps: (host: KitHost, c: Case) => Promise<void>): void {
    it.concurrent.each(CASES)(
      title,
      async c => {
        const host = hosts[c.name]
        await onHost(host, () => steps(host, c))
      },
      TIMEOUT
    )
  }

  eachCase('$style: without --apply it prints the plan and changes nothing', async (host, c) => {
    pushKit(host)
    if (c.createUser) {
      const key = path.join(host.state, 'shipit_key')
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key])
      cpSync(`${key}.pub`, path.join(host.state, 'root', 'root', 'kit', 'shipit_key.pub'))
    }
    if (c.node)
      cpSync(process.execPath, path.join(host.state, 'root', 'usr', 'local', 'bin', 'node'))
    original.set(c.name, await serverFiles(host, c))
    if (c.shared) visitsBefore.set(c.name, await visits(host))
    const plan = await adopt(host, c, ...keyArgs(c))
    expect({ code: plan.code, out: plan.out }).toMatchObject({ code: 0 })
    if (c.createUser) expect(plan.out).toContain(`creates the user ${c.deployUser}`)
    expect(plan.out).toContain(`+++ /etc/systemd/system/${host.service}.service.d/zdd-adopt.conf`)
    expect(plan.out).toContain('+ExecReload=/bin/kill -HUP $MAINPID')
    expect(plan.out).toMatch(
      new RegExp(`^\\+.*unix:/run/${host.service}/${host.service}\\.sock`, 'm')
    )
    expect(plan.out).toContain('nothing was changed')
    expect(await serverFiles(host, c)).toBe(original.get(c.name))
  })

  eachCase(
    '$style: --apply converts it under load through Nginx without a failed request',
    async (host, c) => {
      const key = keyArgs(c)
      const check = c.node ? ['--check-with', '/root/kit'] : []
      const [applied, load] = await underLoad(
        host,
        () => adopt(host, c, '--apply', ...key, ...check),
        LOAD
      )
      expect({ code: applied.code, out: applied.out }).toMatchObject({ code: 0 })
      noFailures(load)
      expect(applied.out).toContain(`done: ${host.service}.service serves`)
      expect(applied.out).toContain(
        `health-url: http://unix:/run/${host.service}/${host.service}.sock:/`
      )
      if (c.shared) expect(applied.out).toContain(`shared-paths: ${c.shared}`)
      if (c.node) expect(applied.out).toContain("the action's check passed: 0 error(s)")
      else expect(applied.out).toContain("the action's check was NOT run (no Node.js 20 or newer")
      const unit = await rootSh(
        host,
        `systemctl show ${host.service} -p ExecStart -p ExecReload --value`
      )
      expect(unit).toContain(`--chdir ${host.releasePath}/current`)
      expect(unit).toContain(`--bind unix:/run/${host.service}/${host.service}.sock`)
      expect(unit).toContain('kill -HUP $MAINPID')
      expect(unit).toMatch(/--workers [2-9]/)
      // the unit file itself is as it was; a second --apply has nothing to do
      expect(await rootSh(host, `sha256sum /etc/systemd/system/${host.service}.service`)).toBe(
        original.get(c.name)?.split('\n')[0] + '\n'
      )
      const again = await adopt(host, c, '--apply')
      expect(again.code).toBe(0)
      expect(again.out).toContain('nothing to do')
    }
  )

  eachCase("$style: the action's mode: check is clean right after", async (host, c) => {
    const checked = await runAction(inputs(host, c, { mode: 'check' }))
    expect(outcome(checked)).toEqual({ code: 0, status: 'checked', errors: [] })
    // the adopted release has no health route: it answers at / instead, and says so
    expect(checked.stdout).toContain('predates the action')
  })

  eachCase('$style: v1 then v2 deploy under load without a failed request', async (host, c) => {
    const [runs, load] = await underLoad(
      host,
      async () => {
        const v1 = await runAction(inputs(host, c, { source: releaseApp(), 'release-id': 'v1' }))
        const v2 = await runAction(inputs(host, c, { source: releaseApp(), 'release-id': 'v2' }))
        return [v1, v2]
      },
      LOAD
    )
    for (const r of runs) {
      expect(outcome(r)).toEqual({ code: 0, status: 'deployed', errors: [] })
      expect(probe(r)).toEqual(unlessGunicornCrashed(r, 'no failed probe request'))
    }
    noFailures(load, runs)
    expect(load.releases).toEqual(['v1', 'v2'])
    expect((await fetchNginx(host, '/health')).release).toBe('v2')
    if (c.shared) expect(await visits(host)).toBeGreaterThan(visitsBefore.get(c.name) ?? NaN)
  })

  eachCase(
    '$style: rollbacks to v1 and to the adopted release (no health route) lose no request',
    async (host, c) => {
      const adopted = (
        await rootSh(host, `ls ${host.releasePath}/releases | grep '^adopted-'`)
      ).trim()
      const [runs, load] = await underLoad(
        host,
        async () => [
          await runAction(inputs(host, c, { mode: 'rollback' })),
          await runAction(inputs(host, c, { mode: 'rollback', 'rollback-to': adopted }))
        ],
        LOAD
      )
      const none = (r: ActionRun) => unlessGunicornCrashed(r, 'no failed probe request')
      expect(runs.map(r => [outcome(r), r.outputs.release, probe(r)])).toEqual([
        [{ code: 0, status: 'rolled-back', errors: [] }, 'v1', none(runs[0])],
        [{ code: 0, status: 'rolled-back', errors: [] }, adopted, none(runs[1])]
      ])
      expect(runs[1].stdout).toContain(`${adopted} predates the action`)
      noFailures(load, runs)
      expect((await fetchNginx(host, '/')).body).not.toContain('release=')
    }
  )

  eachCase(
    '$style: --undo puts the original files back under load without a failed request',
    async (host, c) => {
      const [undone, load] = await underLoad(host, () => adopt(host, c, '--undo'), LOAD)
      expect({ code: undone.code, out: undone.out }).toMatchObject({ code: 0 })
      expect(undone.out).toContain('undone:')
      noFailures(load)
      expect(await serverFiles(host, c)).toBe(original.get(c.name))
      const served = await fetchNginx(host, '/')
      expect(served.status).toBe(200)
      expect(served.body).not.toContain('release=')
      if (c.shared) expect(await visits(host)).toBeGreaterThan(visitsBefore.get(c.name) ?? NaN)
    }
  )

  it.concurrent(
    'tutorial-preload: --preload is refused with the reason, and nothing is changed',
    async () => {
      const host = hosts[REFUSED.name]
      pushKit(host)
      const before = await serverFiles(host, REFUSED)
      const refused = await adopt(host, { ...REFUSED, deployUser: 'deploy' }, '--apply')
      expect(refused.code).toBe(3)
      expect(refused.out).toContain('refused: Gunicorn runs with --preload (the command line)')
      expect(refused.out).toContain('Nothing was changed.')
      expect(await serverFiles(host, REFUSED)).toBe(before)
      expect(await rootSh(host, 'ls -A /var/lib/zdd-adopt 2>&1 || true')).toContain('No such file')
      expect((await fetchNginx(host, '/')).status).toBe(200)
    },
    TIMEOUT
  )
})
