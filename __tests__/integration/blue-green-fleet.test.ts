// strategy: blue-green across a fleet of two real hosts (style blue-green): a
// rolling deploy with its migrations run once, pruning that spares the
// releases either instance is pinned to, and the fleet rollback of a host
// already switched when the next host cannot start its idle instance.
import { describe, expect, it } from '@jest/globals'
import {
  appCopy,
  authorize,
  deployLog,
  inputsFor,
  releaseIds,
  rootSh,
  fleetInputs,
  hostsOf,
  runAction,
  servedRelease,
  type KitHost
} from './kit.js'
import { withHostGroup } from './with-host.js'

/** The fleet's inputs under strategy: blue-green. */
const bgFleet = (hosts: KitHost[], extra: Record<string, string>) =>
  fleetInputs(hosts, { strategy: 'blue-green', ...extra })

async function links(host: KitHost): Promise<string> {
  return (
    await rootSh(
      host,
      'echo "live=$(readlink /srv/myapp/live.sock) blue=$(readlink /srv/myapp/slots/blue) green=$(readlink /srv/myapp/slots/green) $(systemctl is-active myapp@blue myapp@green | tr "\\n" " ")"'
    )
  ).trim()
}

describe('blue-green fleets', () => {
  const { g1, g2 } = withHostGroup(
    { g1: { style: 'blue-green' }, g2: { style: 'blue-green' } },
    async group => authorize(group.g2, group.g1)
  )
  const hosts = [g1, g2]

  it('deploys both hosts (migrations once), then prunes but never a pinned release', async () => {
    const run = await runAction(
      bgFleet(hosts, { source: appCopy(), 'release-id': 'b1', 'max-parallel': '2' })
    )
    expect(run.code).toBe(0)
    const results = hostsOf(run)
    expect(results.map(r => [r.status, r.release, r.previousRelease])).toEqual([
      ['deployed', 'b1', 'v0'],
      ['deployed', 'b1', 'v0']
    ])
    expect(results.filter(r => r.steps.some(s => s.name === 'migrations'))).toHaveLength(1)
    for (const h of hosts) {
      expect(await servedRelease(h)).toBe('b1')
      expect(await links(h)).toBe(
        'live=/run/myapp-green/gunicorn.sock blue=../releases/v0 green=../releases/b1 inactive active'
      )
    }
    expect(run.summary).toContain('(blue-green)')
    expect(run.summary).toContain('myapp@green serves')

    // keep-releases 2: after b2 and b3, v0 and b1 are old; b2 is pinned in an instance's slot.
    for (const id of ['b2', 'b3'])
      expect(
        (
          await runAction(
            bgFleet([g1], { source: appCopy(), 'release-id': id, 'keep-releases': '2' })
          )
        ).code
      ).toBe(0)
    expect(await releaseIds(g1)).toEqual(['b2', 'b3'])
    expect(await links(g1)).toBe(
      'live=/run/myapp-green/gunicorn.sock blue=../releases/b2 green=../releases/b3 inactive active'
    )
    const log = await deployLog(g1)
    expect(log.map(e => [e.id, e.outcome])).toEqual([
      ['b1', 'deployed'],
      ['b2', 'deployed'],
      ['b3', 'deployed']
    ])
  })

  it('refuses a deploy under strategy reload on a blue-green host, before any change', async () => {
    const before = await releaseIds(g2)
    const inputs = inputsFor(g2, { source: appCopy(), 'release-id': 'r1' })
    const run = await runAction(inputs)
    expect(run.code).not.toBe(0)
    expect(run.stdout).toContain('/srv/myapp/live.sock exists: this host is set up for blue-green')
    expect(await releaseIds(g2)).toEqual(before)
    expect(await servedRelease(g2)).toBe('b1')
  })

  it('rolls the first host back when the second cannot start its idle instance', async () => {
    // g2's idle instance (blue) cannot start: its unit is masked.
    await rootSh(g2, 'systemctl mask --runtime myapp@blue')
    try {
      const before = await links(g1)
      const run = await runAction(bgFleet(hosts, { source: appCopy(), 'release-id': 'b4' }))
      expect(run.code).not.toBe(0)
      const results = hostsOf(run)
      expect(results.map(r => r.status)).toEqual(['rolled-back', 'failed'])
      expect(results[1].error).toContain('myapp@blue')
      // g1 went back to b3 by switching live.sock to the instance that served it
      expect(await servedRelease(g1)).toBe('b3')
      // (blue, stopped again, keeps b4 in its slot until the next deploy pins another release)
      expect(await links(g1)).toBe(before.replace('blue=../releases/b2', 'blue=../releases/b4'))
      expect(await servedRelease(g2)).toBe('b1')
      expect((await links(g2)).startsWith('live=/run/myapp-green/gunicorn.sock')).toBe(true)
    } finally {
      await rootSh(g2, 'systemctl unmask --runtime myapp@blue')
    }
  })
})
