// The switch is never the outage: what would certainly break through `current` is
// refused before anything changes, and a definite failure after the switch (Nginx
// answering 502 while Gunicorn answers) is undone at once, not at reload-timeout.
import { describe, expect, it } from '@jest/globals'
import * as path from 'node:path'
import { writeFileSync } from 'node:fs'
import {
  annotations,
  appCopy,
  appendTo,
  currentLink,
  inputsFor,
  releaseIds,
  rootSh,
  runAction,
  servedRelease,
  type KitHost
} from './kit.js'
import { problems } from './problems.js'
import { withHost } from './with-host.js'

/** Bigger than Nginx's proxy_buffer_size: Nginx answers 502, Gunicorn's own socket 200. */
function bigHeaderApp(): string {
  return appCopy(dir =>
    appendTo(
      path.join(dir, 'wsgi.py'),
      '\n\n@app.after_request\ndef big_header(response):\n    response.headers["X-Padding"] = "x" * 10000\n    return response\n'
    )
  )
}

/** What the workers of the serving master are: their count. */
async function workerCount(host: KitHost): Promise<number> {
  const out = await rootSh(host, 'pgrep -P "$(systemctl show -P MainPID myapp)" | wc -l')
  return Number(out.trim())
}

describe('a definite failure after the switch', () => {
  const host = withHost('sw1', 'fixed')

  it('is undone at once when Nginx answers 502 while Gunicorn answers (reload-timeout is not waited out)', async () => {
    const base = await runAction(inputsFor(host, { source: appCopy(), 'release-id': 'ok1' }))
    expect(base.outputs.status).toBe('deployed')
    // reload-timeout far beyond the test's own limit: waiting for it would fail the test
    const run = await runAction(
      inputsFor(host, { source: bigHeaderApp(), 'release-id': 'big1', 'reload-timeout': '600' })
    )
    expect(run.outputs).toMatchObject({ status: 'rolled-back', 'rolled-back': 'true' })
    expect(annotations(run)).toContain('Nginx cannot use the new release')
    expect(annotations(run)).toContain('upstream sent too big header')
    expect(await servedRelease(host)).toBe('ok1')
    expect(await currentLink(host)).toBe('releases/ok1')
  }, 120_000)
})

describe('what the switch would break through current', () => {
  // Gunicorn started with -c through current: it re-reads that file on every reload.
  const host = withHost('sw2', 'fixed', async h => {
    await rootSh(
      h,
      'printf "workers = 3\\nbind = \\"unix:/run/myapp/myapp.sock\\"\\n" > /srv/myapp/releases/v0/gunicorn.conf.py && ' +
        "sed -i 's|^ExecStart=.*|ExecStart=/srv/myapp/.venv/bin/gunicorn -c /srv/myapp/current/gunicorn.conf.py --chdir /srv/myapp/current wsgi:app|; /^    --/d; /^    wsgi:app/d' /etc/systemd/system/myapp.service && " +
        'systemctl daemon-reload && systemctl restart myapp && ' +
        'for i in $(seq 100); do curl -sf --unix-socket /run/myapp/myapp.sock http://x/health >/dev/null && break; sleep 0.1; done'
    )
  })

  /** The app plus a gunicorn.conf.py with `text` (none when undefined). */
  const withConf = (text: string | undefined) =>
    appCopy(dir => {
      if (text !== undefined) writeFileSync(path.join(dir, 'gunicorn.conf.py'), text)
    })

  async function refused(id: string, text: string | undefined, why: RegExp): Promise<void> {
    const before = await servedRelease(host)
    const run = await runAction(inputsFor(host, { source: withConf(text), 'release-id': id }))
    expect(run.outputs.status).toBe('failed')
    expect(annotations(run)).toMatch(why)
    expect(annotations(run)).toContain('nothing was switched')
    expect(run.stdout).not.toContain('switching current')
    expect(await servedRelease(host)).toBe(before)
    expect(await releaseIds(host)).not.toContain(id)
  }

  it(
    'refuses a release without the -c file Gunicorn re-reads through current, before any change',
    () =>
      refused(
        'noconf',
        undefined,
        /Gunicorn's -c is \/srv\/myapp\/current\/gunicorn\.conf\.py, which the new release does not have.*\n\s*Fix: add gunicorn\.conf\.py to the release/
      ),
    120_000
  )

  it(
    'refuses a release whose config file moves the bind away from what Nginx proxies to',
    () =>
      refused(
        'moved',
        'workers = 3\nbind = "unix:/run/myapp/elsewhere.sock"\n',
        /the reload applies \/srv\/myapp\/releases\/moved\/gunicorn\.conf\.py, which binds unix:\/run\/myapp\/elsewhere\.sock/
      ),
    120_000
  )

  it('deploys a release whose config file changes the worker count, and proves that many workers', async () => {
    const run = await runAction(
      inputsFor(host, {
        source: withConf('workers = 4\nbind = "unix:/run/myapp/myapp.sock"\n'),
        'release-id': 'four'
      })
    )
    expect(problems(run)).toBe('')
    expect(run.outputs.status).toBe('deployed')
    expect(run.stdout).toContain('expecting 4')
    expect(await workerCount(host)).toBe(4)
    expect(await servedRelease(host)).toBe('four')
  }, 120_000)
})
