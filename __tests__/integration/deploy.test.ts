// mode: deploy against real hosts: every scenario asserts what the server
// actually serves afterwards, not only what the action says.
import { describe, expect, it } from '@jest/globals'
import { readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import {
  annotations,
  appCopy,
  appendTo,
  currentLink,
  deployLog,
  fetchGunicorn,
  holdLock,
  inputsFor,
  prependTo,
  printedOutput,
  releaseIds,
  rootSh,
  runAction,
  servedRelease,
  type KitHost
} from './kit.js'
import { problems, unlessGunicornCrashed } from './problems.js'
import { withHost } from './with-host.js'

async function lockPresent(host: KitHost): Promise<boolean> {
  return (
    (await rootSh(host, 'test -e /srv/myapp/.deploy-lock && echo yes || echo no')).trim() === 'yes'
  )
}

function editHealth(dir: string, newBody: string): void {
  const file = path.join(dir, 'wsgi.py')
  const source = readFileSync(file, 'utf8')
  const start = source.indexOf('@app.route("/health")')
  writeFileSync(file, source.slice(0, start) + `@app.route("/health")\ndef health():\n${newBody}\n`)
}

describe('mode: deploy', () => {
  const host = withHost('dep1', 'fixed')

  it('deploys v1 then v2 with zero failed probe requests, v2 serving through Gunicorn and Nginx', async () => {
    const v1 = await runAction(
      inputsFor(host, { source: appCopy(), 'release-id': 'v1', 'required-env': 'DATABASE_URL' })
    )
    expect(problems(v1)).toBe('')
    expect(v1.outputs.status).toBe('deployed')
    const v2 = await runAction(inputsFor(host, { source: appCopy(), 'release-id': 'v2' }))
    expect(v2.code).toBe(0)
    expect(v2.outputs).toMatchObject({
      status: 'deployed',
      release: 'v2',
      'previous-release': 'v1',
      'rolled-back': 'false',
      'failed-requests': unlessGunicornCrashed(v2, '0')
    })
    const hosts = JSON.parse(v2.outputs.hosts)
    expect(hosts[0].probeRequests).toBeGreaterThan(5)
    expect(hosts[0].steps.map((s: { name: string }) => s.name)).toEqual(
      expect.arrayContaining([
        'preflight',
        'lock',
        'upload',
        'import check',
        'migrations',
        'switch',
        'reload',
        'verify'
      ])
    )
    expect(await servedRelease(host)).toBe('v2')
    const direct = JSON.parse((await fetchGunicorn(host)).body)
    expect(direct.release).toBe('v2')
    expect(v2.summary).toContain('v2')
    expect(v2.summary).toContain('0 of')
    const log = await deployLog(host)
    expect(log.slice(-2).map(e => [e.id, e.outcome])).toEqual([
      ['v1', 'deployed'],
      ['v2', 'deployed']
    ])
    expect(log[log.length - 1]).toMatchObject({
      actor: 'integration-test',
      run: 'https://github.example/example/app/actions/runs/4242',
      sha: 'c0ffee0123456789c0ffee0123456789c0ffee01'
    })
    // the migration ran once and the database is at head
    expect(
      await rootSh(
        host,
        'cd /srv/myapp/current && set -a && . /etc/myapp.env && /srv/myapp/.venv/bin/python -m flask --app wsgi db current 2>/dev/null'
      )
    ).toContain('0001')
    expect(await lockPresent(host)).toBe(false)
  })

  it('stops a release with an ImportError before the switch; the current release keeps serving', async () => {
    const before = await servedRelease(host)
    const broken = appCopy(dir =>
      prependTo(path.join(dir, 'wsgi.py'), 'import flask_not_installed\n')
    )
    const run = await runAction(inputsFor(host, { source: broken, 'release-id': 'bad-import' }))
    expect(run.code).not.toBe(0)
    expect(run.outputs.status).toBe('failed')
    expect(run.outputs['rolled-back']).toBe('false')
    expect(annotations(run)).toContain("ModuleNotFoundError: No module named 'flask_not_installed'")
    expect(annotations(run)).toContain('never reached the reload')
    expect(await servedRelease(host)).toBe(before)
    expect(await releaseIds(host)).not.toContain('bad-import')
    expect(await lockPresent(host)).toBe(false)
  })

  it('rolls back a release whose health answers 500; the old release serves and the annotation holds the logs', async () => {
    const before = await servedRelease(host)
    const sick = appCopy(dir => editHealth(dir, '    return "database unreachable", 500'))
    const run = await runAction(
      inputsFor(host, { source: sick, 'release-id': 'sick', 'reload-timeout': '8' })
    )
    expect(run.code).not.toBe(0)
    expect(run.outputs).toMatchObject({
      status: 'rolled-back',
      'rolled-back': 'true',
      release: 'sick',
      'previous-release': before
    })
    const text = annotations(run)
    expect(text).toContain('HTTP 500')
    expect(text).toContain('journalctl -u myapp')
    expect(text).toMatch(/Booting worker|Handling signal/)
    expect(run.summary).toContain('journalctl -u myapp')
    expect(await servedRelease(host)).toBe(before)
    expect(await currentLink(host)).toBe(`releases/${before}`)
    const last = (await deployLog(host)).at(-1)
    expect(last).toMatchObject({ id: 'sick', outcome: 'rolled-back' })
    expect(await lockPresent(host)).toBe(false)
  })

  it('warns, with the logs, when a verified deploy still had failed probe requests', async () => {
    // each new worker answers 503 for its first 2 seconds: verification waits it out, the probe sees it
    const warming = appCopy(dir =>
      appendTo(
        path.join(dir, 'wsgi.py'),
        '\n\nimport time as _t\n_BOOT = _t.time()\n\n@app.before_request\ndef warming_up():\n' +
          '    if _t.time() - _BOOT < 2:\n        return "warming up", 503\n'
      )
    )
    const run = await runAction(inputsFor(host, { source: warming, 'release-id': 'warming' }))
    expect(run.outputs.status).toBe('deployed')
    expect(Number(run.outputs['failed-requests'])).toBeGreaterThan(0)
    expect(annotations(run)).toContain('traffic-probe requests failed during it')
    expect(annotations(run)).toContain('journalctl -u myapp since the deploy began')
    expect(run.summary).toContain('probe requests failed')
    expect(await servedRelease(host)).toBe('warming')
  })

  it('stops before the switch when a migration fails', async () => {
    const before = await servedRelease(host)
    const badMigration = appCopy(dir =>
      writeFileSync(
        path.join(dir, 'migrations', 'versions', '0002_broken.py'),
        'revision = "0002"\ndown_revision = "0001"\nbranch_labels = None\ndepends_on = None\n\nfrom alembic import op\n\ndef upgrade():\n    op.execute("ALTER TABLE no_such_table ADD COLUMN x INTEGER")\n\ndef downgrade():\n    pass\n'
      )
    )
    const run = await runAction(
      inputsFor(host, { source: badMigration, 'release-id': 'bad-migration' })
    )
    expect(run.code).not.toBe(0)
    expect(run.outputs.status).toBe('failed')
    expect(annotations(run)).toContain('migrations failed before the switch')
    expect(annotations(run)).toContain('no_such_table')
    expect(await servedRelease(host)).toBe(before)
    expect(await releaseIds(host)).not.toContain('bad-migration')
  })

  it('stops before the switch when a required variable is missing, without printing values', async () => {
    const before = await servedRelease(host)
    const secret = (await rootSh(host, "grep '^SECRET_KEY=' /etc/myapp.env || true"))
      .trim()
      .split('=')[1]
    const run = await runAction(
      inputsFor(host, {
        source: appCopy(),
        'release-id': 'no-env',
        'required-env': 'DATABASE_URL,SECRET_KEY,STRIPE_API_KEY'
      })
    )
    expect(run.code).not.toBe(0)
    expect(annotations(run)).toContain(
      'required variables not set or empty in /etc/myapp.env: STRIPE_API_KEY'
    )
    // as the runner shows it: the ::add-mask:: commands, which carry the value to mask it, are not shown
    if (secret) expect(printedOutput(run) + run.stderr + run.summary).not.toContain(secret)
    expect(await servedRelease(host)).toBe(before)
    expect(await releaseIds(host)).not.toContain('no-env')
  })

  it('runs pip only when requirements.txt changed, and stops before the switch when it fails', async () => {
    const withRequirement = (line: string) =>
      appCopy(d => appendTo(path.join(d, 'requirements.txt'), `${line}\n`))
    const same = await runAction(inputsFor(host, { source: appCopy(), 'release-id': 'deps-same' }))
    expect(same.outputs.status).toBe('deployed')
    expect(same.stdout).toContain(
      'requirements.txt unchanged since the current release: skipping pip'
    )
    // itsdangerous is installed (Flask needs it): pip runs and finds it satisfied
    const changed = await runAction(
      inputsFor(host, { source: withRequirement('itsdangerous'), 'release-id': 'deps-changed' })
    )
    expect(changed.outputs.status).toBe('deployed')
    expect(changed.stdout).toContain('Requirement already satisfied: itsdangerous')
    const missing = await runAction(
      inputsFor(host, {
        source: withRequirement('zdd-no-such-package==1.0'),
        'release-id': 'deps-missing'
      })
    )
    expect(missing.code).not.toBe(0)
    expect(missing.outputs.status).toBe('failed')
    expect(annotations(missing)).toContain('pip install')
    expect(annotations(missing)).toContain('zdd-no-such-package')
    expect(annotations(missing)).toContain('nothing switched')
    expect(await servedRelease(host)).toBe('deps-changed')
    expect(await releaseIds(host)).not.toContain('deps-missing')
    expect(await lockPresent(host)).toBe(false)
  })

  it('lets one of two concurrent deploys wait or fail clearly, leaving no lock behind', async () => {
    const [a, b] = await Promise.all([
      runAction(inputsFor(host, { source: appCopy(), 'release-id': 'c1', 'lock-timeout': '0' })),
      runAction(inputsFor(host, { source: appCopy(), 'release-id': 'c2', 'lock-timeout': '0' }))
    ])
    const outcomes = [a, b].map(r => r.outputs.status).sort()
    expect(outcomes).toEqual(['deployed', 'failed'])
    const loser = a.outputs.status === 'failed' ? a : b
    const winner = a.outputs.status === 'deployed' ? a : b
    expect(annotations(loser)).toContain('another deploy holds the lock')
    expect(annotations(loser)).toContain('integration-test')
    expect(await servedRelease(host)).toBe(winner.outputs.release)
    expect(await lockPresent(host)).toBe(false)
    // with a lock-timeout the second one waits and then deploys
    const [c, d] = await Promise.all([
      runAction(inputsFor(host, { source: appCopy(), 'release-id': 'w1', 'lock-timeout': '120' })),
      runAction(inputsFor(host, { source: appCopy(), 'release-id': 'w2', 'lock-timeout': '120' }))
    ])
    expect([c.outputs.status, d.outputs.status]).toEqual(['deployed', 'deployed'])
    expect(c.stdout + d.stdout).toContain('waiting for the deploy lock')
    expect(await lockPresent(host)).toBe(false)
  })

  it('takes over a stale lock with a warning', async () => {
    await holdLock(host, { actor: 'ghost', token: 'x' }, '2 hours ago')
    const run = await runAction(
      inputsFor(host, { source: appCopy(), 'release-id': 's1', 'lock-stale-after': '600' })
    )
    expect(run.outputs.status).toBe('deployed')
    expect(run.stdout).toContain('took over a stale deploy lock')
    expect(run.stdout).toContain('ghost')
    expect(await lockPresent(host)).toBe(false)
  })

  it('keeps its lock fresh during a long deploy, so it is never taken over as stale', async () => {
    // The import check of this release blocks while /tmp/hold-import exists (at most 90 s).
    const held = appCopy(d =>
      prependTo(
        path.join(d, 'wsgi.py'),
        'import os, time\n_end = time.time() + 90\n' +
          'while os.path.exists("/tmp/hold-import") and time.time() < _end:\n    time.sleep(0.2)\n'
      )
    )
    await rootSh(host, 'touch /tmp/hold-import')
    const stale = { 'lock-stale-after': '60' }
    const long = runAction(inputsFor(host, { source: held, 'release-id': 'long-lock', ...stale }))
    const lockAge = async () =>
      Number(
        await rootSh(
          host,
          'if [ -e /srv/myapp/.deploy-lock ]; then echo $(( $(date +%s) - $(stat -c %Y /srv/myapp/.deploy-lock) )); else echo -1; fi'
        )
      )
    try {
      // once the lock is held, make it look two hours old, as if the deploy had been running that long
      const until = Date.now() + 60_000
      while ((await lockAge()) < 0 && Date.now() < until) await new Promise(r => setTimeout(r, 200))
      await rootSh(host, "touch -d '2 hours ago' /srv/myapp/.deploy-lock")
      expect(await lockAge()).toBeGreaterThan(3600)
      // the running deploy's heartbeat (every lock-stale-after / 4 = 15 s) marks it alive again
      let age = await lockAge()
      while (age > 60 && Date.now() < until) {
        await new Promise(r => setTimeout(r, 500))
        age = await lockAge()
      }
      expect(age).toBeGreaterThanOrEqual(0)
      expect(age).toBeLessThanOrEqual(60)
      const second = await runAction(
        inputsFor(host, { source: appCopy(), 'release-id': 'late', 'lock-timeout': '0', ...stale })
      )
      expect(second.outputs.status).toBe('failed')
      expect(annotations(second)).toContain('another deploy holds the lock')
      expect(second.stdout).not.toContain('took over a stale deploy lock')
    } finally {
      await rootSh(host, 'rm -f /tmp/hold-import')
    }
    expect((await long).outputs.status).toBe('deployed')
    expect(await servedRelease(host)).toBe('long-lock')
    expect(await lockPresent(host)).toBe(false)
  })

  it('refuses to deploy when Nginx proxies somewhere else than the Gunicorn bind', async () => {
    const before = await servedRelease(host)
    await rootSh(
      host,
      "sed -i 's#proxy_pass http://unix:/run/myapp/myapp.sock;#proxy_pass http://127.0.0.1:9999;#' /etc/nginx/sites-available/myapp"
    )
    try {
      const run = await runAction(
        inputsFor(host, { source: appCopy(), 'release-id': 'wrong-upstream' })
      )
      expect(run.outputs.status).toBe('failed')
      expect(annotations(run)).toContain(
        'Nginx proxies only to 127.0.0.1:9999, which nothing binds: Gunicorn binds unix:/run/myapp/myapp.sock'
      )
      expect(await rootSh(host, 'ls /srv/myapp/releases')).not.toContain('wrong-upstream')
      expect(await servedRelease(host)).toBe(before)
    } finally {
      await rootSh(
        host,
        "sed -i 's#proxy_pass http://127.0.0.1:9999;#proxy_pass http://unix:/run/myapp/myapp.sock;#' /etc/nginx/sites-available/myapp"
      )
    }
  })

  it('prunes old releases but keeps current, the previous one, the master start directory and the rollback targets', async () => {
    for (const id of ['p1', 'p2', 'p3']) {
      const run = await runAction(
        inputsFor(host, { source: appCopy(), 'release-id': id, 'keep-releases': '2' })
      )
      expect(run.outputs.status).toBe('deployed')
    }
    // p3 is current, p2 the previous release and the master's directory before the last reload;
    // p1 is what mode: rollback would choose had p3 failed and gone back to p2 (pruning runs
    // beside p3's cutover, before its outcome is known)
    expect(await releaseIds(host)).toEqual(['p1', 'p2', 'p3'])
    expect(await servedRelease(host)).toBe('p3')
  })
})
