// A release is the whole app: a Flask app with a Celery worker on Redis (Debian's
// packages; hostkit styles celery and celery-blue-green), deployed under both
// strategies with restart-services, before-switch and after-switch, and
// dependencies from wheels built on the host (zdd-dep 1.0 and 2.0; the app reports the
// version it imported in its health answer, the worker in its task result). After
// every deploy and rollback, the web workers, the worker and the packages belong to
// the same release; a failure in any of them leaves the previous release serving in full.
import { describe, expect, it } from '@jest/globals'
import { readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import {
  annotations,
  appFor,
  appendTo,
  fetchNginx,
  hostsOf,
  inputsFor,
  prependTo,
  rootSh,
  runAction,
  type ActionRun,
  type KitHost
} from './kit.js'
import { problems } from './problems.js'
import { withHost } from './with-host.js'

const SLOW = 240_000
const WORKER = 'myapp-worker'

/** Pure-Python wheels of zdd-dep, one per version, built on the host into /srv/wheels. */
const WHEELS = `
import base64, hashlib, os, sys, zipfile
os.makedirs("/srv/wheels", exist_ok=True)
for version in sys.argv[1:]:
    name = "zdd_dep-%s" % version
    files = {
        "zdd_dep/__init__.py": '__version__ = "%s"\\n' % version,
        name + ".dist-info/METADATA": "Metadata-Version: 2.1\\nName: zdd-dep\\nVersion: %s\\n" % version,
        name + ".dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: zdd-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = []
    for p, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (p, digest, len(data)))
    record.append(name + ".dist-info/RECORD,,")
    files[name + ".dist-info/RECORD"] = "\\n".join(record) + "\\n"
    with zipfile.ZipFile("/srv/wheels/%s-py3-none-any.whl" % name, "w") as z:
        for p, text in files.items():
            z.writestr(p, text)
`

async function buildWheels(host: KitHost): Promise<void> {
  await rootSh(
    host,
    `python3 -c '${WHEELS.replace(/'/g, `'\\''`)}' 1.0 2.0 && chmod -R a+rX /srv/wheels`
  )
}

const TASKS = `"""Celery tasks of the test app: who enqueued a task, who ran it, on which packages."""
import json
import os

from celery import Celery

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, ".zdd-release.json"), encoding="utf-8") as fh:
    RELEASE = json.load(fh)["id"]
app = Celery("tasks", broker=os.environ["CELERY_BROKER_URL"], backend=os.environ["CELERY_RESULT_BACKEND"])


def dep_version():
    try:
        import zdd_dep
        return zdd_dep.__version__
    except ImportError:
        return "none"


@app.task(name="tasks.whoami")
def whoami(sent_by):
    return {"sent_by": sent_by, "ran_by": RELEASE, "worker_dep": dep_version()}
`

/** The example app with a Celery task, zdd-dep==`dep` in its requirements and the version in /health. */
function wholeApp(host: KitHost, opts: { dep: string; brokenWorker?: boolean }): string {
  return appFor(host, (dir, file) => {
    const tasks = opts.brokenWorker
      ? `import sys\nif "celery" in sys.argv[0]:\n    import module_the_worker_lacks\n${TASKS}`
      : TASKS
    writeFileSync(path.join(dir, 'tasks.py'), tasks)
    appendTo(path.join(dir, 'requirements.txt'), `zdd-dep==${opts.dep}\n`)
    const source = readFileSync(file, 'utf8').replace(
      'cwd=os.getcwd(),',
      'cwd=os.getcwd(),\n        dep=__import__("zdd_dep").__version__,'
    )
    writeFileSync(file, source)
    appendTo(
      file,
      `\n\n@app.route("/task")\ndef task():\n    from tasks import whoami\n\n    return jsonify(whoami.delay(RELEASE).get(timeout=30))\n`
    )
    prependTo(file, '# the whole-app test release\n')
  })
}

const PIP = '--no-index --no-deps --find-links /srv/wheels'

function deploy(host: KitHost, inputs: Record<string, string>): Promise<ActionRun> {
  return runAction(inputsFor(host, { 'pip-args': PIP, 'restart-services': WORKER, ...inputs }))
}

/** What serves through Nginx: the release and the zdd-dep version the web workers imported. */
async function web(host: KitHost): Promise<{ release?: string; dep?: string }> {
  const r = await fetchNginx(host, '/health')
  expect(r.status).toBe(200)
  const body = JSON.parse(r.body) as { release: string; dep: string }
  return { release: body.release, dep: body.dep }
}

/** A task enqueued through Nginx by the web code, run by the worker: who sent it, who ran it. */
async function task(host: KitHost): Promise<Record<string, string>> {
  const r = await fetchNginx(host, '/task')
  expect(`${r.status} ${r.status === 200 ? '' : r.body}`).toBe('200 ')
  return JSON.parse(r.body) as Record<string, string>
}

async function workerPid(host: KitHost): Promise<number> {
  return Number((await rootSh(host, `systemctl show -P MainPID ${WORKER}`)).trim())
}

/** The release the worker's main process and its children work in (as root). */
async function workerRelease(host: KitHost): Promise<string> {
  const dirs = await rootSh(
    host,
    `p=$(systemctl show -P MainPID ${WORKER}); for q in $p $(pgrep -P $p); do readlink -f /proc/$q/cwd; done | sort -u`
  )
  return dirs
    .trim()
    .split('\n')
    .map(d => d.replace(/^\/srv\/myapp\/releases\//, ''))
    .join(',')
}

function companionsOf(run: ActionRun): { unit: string; status: string; release?: string }[] {
  return (hostsOf(run)[0] as unknown as { companions?: [] }).companions ?? []
}

function packagesOf(run: ActionRun): string[] {
  return (hostsOf(run)[0] as unknown as { packages?: string[] }).packages ?? []
}

/** The whole app serves `release` on zdd-dep `dep`: web, task sender, worker and its packages. */
async function expectWholeApp(host: KitHost, release: string, dep: string): Promise<void> {
  expect(await web(host)).toEqual({ release, dep })
  expect(await task(host)).toEqual({ sent_by: release, ran_by: release, worker_dep: dep })
  expect(await workerRelease(host)).toBe(release)
}

/** The kit's tests wait 10 s for the lock; a second run waits out a whole deploy, as users' do. */
const WAIT_FOR_LOCK = { 'lock-timeout': '240' }

/**
 * Two deploys of the whole app started 300 ms apart, on other dependency versions (`deploy`
 * gets the release id and the version): both must deploy, one after the other, the second
 * naming the first as its previous release; web, worker and packages end on the second.
 */
async function twoAtOnce(
  host: KitHost,
  deploy: (id: string, dep: string) => Promise<ActionRun>,
  ids: [string, string],
  before: string
): Promise<void> {
  const deps: Record<string, string> = { [ids[0]]: '2.0', [ids[1]]: '1.0' }
  const runs = await Promise.all([
    deploy(ids[0], deps[ids[0]]),
    new Promise<ActionRun>(resolve => setTimeout(() => resolve(deploy(ids[1], deps[ids[1]])), 300))
  ])
  expect(runs.map(r => `${r.outputs.status} ${problems(r)}`)).toEqual(['deployed ', 'deployed '])
  // whichever took the lock first, the other read the host after it
  const first = runs.findIndex(r => r.outputs['previous-release'] === before)
  expect(first).toBeGreaterThanOrEqual(0)
  const second = runs[1 - first]
  expect(second.outputs['previous-release']).toBe(ids[first])
  expect(second.stdout).toContain('waiting for the deploy lock')
  expect(companionsOf(second)).toMatchObject([
    { unit: WORKER, status: 'moved', release: ids[1 - first] }
  ])
  await expectWholeApp(host, ids[1 - first], deps[ids[1 - first]])
}

describe('the whole app under strategy: reload (Celery worker, Debian 12)', () => {
  const host = withHost('wr1', { style: 'celery' }, buildWheels)

  it(
    'deploys web and worker together with the hooks: a task the new web code enqueues runs on the new worker code and packages',
    async () => {
      const run = await deploy(host, {
        source: wholeApp(host, { dep: '1.0' }),
        'release-id': 'r1',
        'before-switch':
          'mkdir -p static && echo "$ZDD_RELEASE after $ZDD_PREVIOUS_RELEASE $(command -v python) ${SECRET_KEY:+secret-set}" > static/built.txt',
        'after-switch': 'touch "$ZDD_RELEASE_PATH/shared/after-$ZDD_RELEASE"'
      })
      expect(problems(run)).toBe('')
      expect(run.outputs.status).toBe('deployed')
      await expectWholeApp(host, 'r1', '1.0')
      expect(companionsOf(run)).toMatchObject([{ unit: WORKER, status: 'moved', release: 'r1' }])
      expect(packagesOf(run)).toEqual(['+zdd-dep 1.0'])
      expect((await fetchNginx(host, '/static/built.txt')).body).toBe(
        'r1 after v0 /srv/myapp/.venv/bin/python secret-set\n'
      )
      expect(await rootSh(host, 'ls /srv/myapp/shared')).toContain('after-r1')
      expect(run.summary).toContain('companions')
      expect(run.summary).toContain(WORKER)
      expect(await rootSh(host, 'cat /srv/myapp/releases/r1/.zdd-freeze.txt')).toBe(
        'zdd-dep==1.0\n'
      )
    },
    SLOW
  )

  it(
    'stops at a failing before-switch with nothing switched, and the packages pip changed are put back',
    async () => {
      const pid = await workerPid(host)
      const run = await deploy(host, {
        source: wholeApp(host, { dep: '2.0' }),
        'release-id': 'r2',
        'before-switch': 'echo "compiling"; exit 4'
      })
      expect(run.outputs.status).toBe('failed')
      expect(run.outputs['rolled-back']).toBe('false')
      expect(annotations(run)).toContain('before-switch')
      expect(annotations(run)).toContain('exited with status 4')
      expect(annotations(run)).toContain('compiling')
      expect(annotations(run)).toContain('nothing switched')
      expect(await workerPid(host)).toBe(pid)
      await expectWholeApp(host, 'r1', '1.0')
      expect(await rootSh(host, '/srv/myapp/.venv/bin/python -m pip freeze --local')).toBe(
        'zdd-dep==1.0\n'
      )
    },
    SLOW
  )

  it(
    'rolls back web, worker and packages when after-switch fails',
    async () => {
      const run = await deploy(host, {
        source: wholeApp(host, { dep: '2.0' }),
        'release-id': 'r3',
        'after-switch': 'echo "cache clear failed" >&2; exit 3'
      })
      expect(run.outputs.status).toBe('rolled-back')
      expect(annotations(run)).toContain('after-switch')
      expect(annotations(run)).toContain('cache clear failed')
      expect(annotations(run)).toContain('the previous packages are back: zdd-dep 2.0 -> 1.0')
      await expectWholeApp(host, 'r1', '1.0')
    },
    SLOW
  )

  it(
    'rolls back the web release too when the worker fails to start on the new release',
    async () => {
      const run = await deploy(host, {
        source: wholeApp(host, { dep: '1.0', brokenWorker: true }),
        'release-id': 'r4',
        'reload-timeout': '20'
      })
      expect(run.outputs.status).toBe('rolled-back')
      expect(annotations(run)).toContain(`${WORKER} did not`)
      expect(companionsOf(run)).toMatchObject([{ unit: WORKER, status: 'restored', release: 'r1' }])
      await expectWholeApp(host, 'r1', '1.0')
    },
    SLOW
  )

  it(
    'mode: rollback across a dependency change restores the old packages under web and worker',
    async () => {
      const deployed = await deploy(host, {
        source: wholeApp(host, { dep: '2.0' }),
        'release-id': 'r5'
      })
      expect(deployed.outputs.status).toBe('deployed')
      expect(packagesOf(deployed)).toEqual(['zdd-dep 1.0 -> 2.0'])
      await expectWholeApp(host, 'r5', '2.0')
      const back = await deploy(host, { mode: 'rollback', 'rollback-to': 'r1' })
      expect(problems(back)).toBe('')
      expect(back.outputs.status).toBe('rolled-back')
      expect(packagesOf(back)).toEqual(['zdd-dep 2.0 -> 1.0'])
      expect(back.summary).toContain('zdd-dep 2.0 -&gt; 1.0')
      await expectWholeApp(host, 'r1', '1.0')
    },
    SLOW
  )

  it(
    'mode: check reports the worker, the release it runs and its sudoers line',
    async () => {
      const run = await deploy(host, { mode: 'check' })
      expect(run.outputs.status).toBe('checked')
      const text = run.stdout
      expect(text).toContain(`ok companion: ${WORKER} runs release r1`)
      expect(text).toContain(`/usr/bin/systemctl restart ${WORKER}`)
    },
    SLOW
  )

  it(
    'deploys two runs started together one after the other: web, worker and packages end on the second',
    () =>
      twoAtOnce(
        host,
        (id, dep) =>
          deploy(host, { source: wholeApp(host, { dep }), 'release-id': id, ...WAIT_FOR_LOCK }),
        ['r6', 'r7'],
        'r1'
      ),
    SLOW
  )
})

/** The venv a release links as .venv, e.g. venvs/0123abcd (as the deploy made it). */
async function venvOf(host: KitHost, release: string): Promise<string> {
  return (await rootSh(host, `readlink /srv/myapp/releases/${release}/.venv`))
    .trim()
    .replace(/^\.\.\/\.\.\//, '')
}

/** Every file of a venv with its size and modification time: what a deploy must not change. */
function venvFingerprint(host: KitHost, venv: string): Promise<string> {
  return rootSh(host, `cd /srv/myapp/${venv} && find . -printf '%p %s %T@\\n' | sort`)
}

describe('the whole app under strategy: blue-green (Celery worker, per-release venvs, Debian 12)', () => {
  const host = withHost('wb1', { style: 'celery-blue-green' }, buildWheels)
  const bg = (inputs: Record<string, string>) => deploy(host, { strategy: 'blue-green', ...inputs })

  it(
    "deploys each release on its own venv, never touching the serving instance's, with the worker on the same",
    async () => {
      const first = await bg({ source: wholeApp(host, { dep: '1.0' }), 'release-id': 'g1' })
      expect(problems(first)).toBe('')
      expect(first.outputs.status).toBe('deployed')
      await expectWholeApp(host, 'g1', '1.0')
      const v1 = await venvOf(host, 'g1')
      expect(v1).toMatch(/^venvs\/[0-9a-f]{16}$/)
      const before = await venvFingerprint(host, v1)
      const second = await bg({ source: wholeApp(host, { dep: '2.0' }), 'release-id': 'g2' })
      expect(problems(second)).toBe('')
      expect(second.outputs.status).toBe('deployed')
      await expectWholeApp(host, 'g2', '2.0')
      const v2 = await venvOf(host, 'g2')
      expect(v2).not.toBe(v1)
      expect(await venvFingerprint(host, v1)).toBe(before)
      expect(packagesOf(second)).toEqual(['zdd-dep 1.0 -> 2.0'])
    },
    SLOW
  )

  it(
    'mode: rollback starts the old release on its own venv, and the worker with it',
    async () => {
      const back = await bg({ mode: 'rollback', 'rollback-to': 'g1' })
      expect(problems(back)).toBe('')
      expect(back.outputs.status).toBe('rolled-back')
      expect(packagesOf(back)).toEqual(['zdd-dep 2.0 -> 1.0'])
      await expectWholeApp(host, 'g1', '1.0')
    },
    SLOW
  )

  it(
    "rolls back to the old instance, and the worker to the old release, when the worker fails to start (its crash loop hitting systemd's start limit)",
    async () => {
      // 3 starts in 20 s: the broken worker's crash loop (a start every 3 s or so) is refused
      // its 4th, and the way back's restart with it, until the interval has passed
      const dropIn = `/etc/systemd/system/${WORKER}.service.d/start-limit.conf`
      await rootSh(
        host,
        `mkdir -p ${path.dirname(dropIn)} && printf '[Unit]\\nStartLimitIntervalSec=20\\nStartLimitBurst=3\\n' > ${dropIn} && systemctl daemon-reload`
      )
      try {
        const run = await bg({
          source: wholeApp(host, { dep: '2.0', brokenWorker: true }),
          'release-id': 'g3',
          'reload-timeout': '20'
        })
        expect(run.outputs.status).toBe('rolled-back')
        expect(run.stdout).toContain(
          `${WORKER}: restart failed; systemd refuses starts for a while`
        )
        expect(companionsOf(run)).toMatchObject([
          { unit: WORKER, status: 'restored', release: 'g1' }
        ])
        await expectWholeApp(host, 'g1', '1.0')
      } finally {
        await rootSh(host, `rm -f ${dropIn} && systemctl daemon-reload`)
      }
    },
    SLOW
  )

  it(
    'prunes the venvs no kept release uses',
    async () => {
      const run = await bg({
        source: wholeApp(host, { dep: '2.0' }),
        'release-id': 'g4',
        'keep-releases': '2'
      })
      expect(run.outputs.status).toBe('deployed')
      await expectWholeApp(host, 'g4', '2.0')
      const kept = (await rootSh(host, 'ls /srv/myapp/releases')).trim().split('\n').sort()
      const linked = new Set(await Promise.all(kept.map(r => venvOf(host, r))))
      const venvs = (await rootSh(host, 'ls /srv/myapp/venvs')).trim().split('\n')
      expect(venvs.map(v => `venvs/${v}`).sort()).toEqual(
        [...linked].filter(v => v.startsWith('venvs/')).sort()
      )
    },
    SLOW
  )

  it(
    'deploys two runs started together one after the other, each on its own venv: the whole app ends on the second',
    () =>
      twoAtOnce(
        host,
        (id, dep) => bg({ source: wholeApp(host, { dep }), 'release-id': id, ...WAIT_FOR_LOCK }),
        ['g5', 'g6'],
        'g4'
      ),
    SLOW
  )
})
