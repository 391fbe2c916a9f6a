// The first vertical slice through dist/index.js against a real host:
// pinned host key, one archive, atomic switch, systemctl reload, health.
import { describe, expect, it } from '@jest/globals'
import {
  appCopy,
  currentLink,
  fetchGunicorn,
  inputsFor,
  rootSh,
  runAction,
  servedRelease
} from './kit.js'
import { withHost } from './with-host.js'

describe('deploy through dist/index.js', () => {
  const host = withHost('slice1', 'fixed')

  it('deploys a release that then serves through Gunicorn and Nginx', async () => {
    expect(await servedRelease(host)).toBe('v0')
    const run = await runAction(inputsFor(host, { source: appCopy(), 'release-id': 'r1' }))
    expect(run.stdout).not.toContain('::error')
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.outputs.status).toBe('deployed')
    expect(run.outputs.release).toBe('r1')
    expect(run.outputs['previous-release']).toBe('v0')
    expect(await servedRelease(host)).toBe('r1')
    const direct = (await fetchGunicorn(host)).body
    expect(JSON.parse(direct)).toMatchObject({ release: 'r1', file: '/srv/myapp/current/wsgi.py' })
    expect(await currentLink(host)).toBe('releases/r1')
    expect(
      JSON.parse(await rootSh(host, 'cat /srv/myapp/releases/r1/.zdd-release.json'))
    ).toMatchObject({
      id: 'r1',
      sha: 'c0ffee0123456789c0ffee0123456789c0ffee01',
      actor: 'integration-test'
    })
  })

  it('runs nothing on a host whose key does not match the pinned one', async () => {
    const other =
      '10.231.0.250 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOq0000000000000000000000000000000000000000000'
    const known = `${host.ip} ${other.split(' ').slice(1).join(' ')}`
    const run = await runAction(
      inputsFor(host, {
        source: appCopy(),
        'release-id': 'evil',
        'known-hosts': known,
        'connect-retries': '0'
      })
    )
    expect(run.code).not.toBe(0)
    expect(run.stdout).toContain('does not match the pinned')
    expect(await rootSh(host, 'ls /srv/myapp/releases')).not.toContain('evil')
  })
})
