// Fleets: rolling deploys across three real hosts, a canary, a failure
// budget, one migration run per fleet, and fleet-wide rollback.
import { describe, expect, it } from '@jest/globals'
import {
  appCopy,
  authorize,
  releaseIds,
  rootSh,
  runAction,
  servedRelease,
  fleetInputs,
  hostsOf
} from './kit.js'
import { withHostGroup } from './with-host.js'

describe('fleets', () => {
  const { f1, f2, f3 } = withHostGroup({ f1: 'fixed', f2: 'fixed', f3: 'fixed' }, async () => {
    // one deploy key for the whole fleet, as in a workflow
    await Promise.all([authorize(f2, f1), authorize(f3, f1)])
  })
  const hosts = [f1, f2, f3]

  it('deploys every host with max-parallel 3, one SSH connection each, migrations once', async () => {
    const run = await runAction(
      fleetInputs(hosts, { source: appCopy(), 'release-id': 'm1', 'max-parallel': '3' })
    )
    expect(run.code).toBe(0)
    expect(run.outputs.status).toBe('deployed')
    const results = hostsOf(run)
    expect(results.map(r => r.status)).toEqual(['deployed', 'deployed', 'deployed'])
    expect(results.map(r => r.connections)).toEqual([1, 1, 1])
    expect(results.filter(r => r.steps.some(s => s.name === 'migrations'))).toHaveLength(1)
    expect(results.filter(r => r.steps.some(s => s.name === 'wait for migrations'))).toHaveLength(2)
    for (const h of hosts) expect(await servedRelease(h)).toBe('m1')
    expect(run.summary.match(/<tr>/g)?.length).toBe(4) // header + a row per host
  })

  it('stops on a host with a broken environment and rolls back the hosts already switched', async () => {
    await rootSh(hosts[1], "sed -i '/^SECRET_KEY=/d' /etc/myapp.env")
    try {
      const before = await releaseIds(hosts[2])
      const run = await runAction(
        fleetInputs(hosts, { source: appCopy(), 'release-id': 'm2', 'required-env': 'SECRET_KEY' })
      )
      expect(run.code).not.toBe(0)
      expect(run.outputs.status).toBe('failed')
      const results = hostsOf(run)
      expect(results.map(r => r.status)).toEqual(['rolled-back', 'failed', 'skipped'])
      expect(results[0].error).toContain('rolled back to m1')
      expect(results[1].error).toContain('SECRET_KEY')
      for (const h of hosts) expect(await servedRelease(h)).toBe('m1')
      expect(await releaseIds(hosts[2])).toEqual(before)
    } finally {
      await rootSh(hosts[1], 'echo SECRET_KEY=restored-for-tests >> /etc/myapp.env')
    }
  })

  it('touches no other host when the canary fails', async () => {
    const before = await Promise.all([releaseIds(hosts[0]), releaseIds(hosts[1])])
    await rootSh(hosts[2], "sed -i '/^DATABASE_URL=/d' /etc/myapp.env")
    try {
      const run = await runAction(
        fleetInputs(hosts, {
          source: appCopy(),
          'release-id': 'm3',
          canary: `deploy@${hosts[2].ip}:22`,
          'required-env': 'DATABASE_URL',
          'max-parallel': '2'
        })
      )
      expect(run.outputs.status).toBe('failed')
      expect(hostsOf(run).map(r => r.status)).toEqual(['skipped', 'skipped', 'failed'])
      expect(run.stdout).toContain('the canary')
      expect(await Promise.all([releaseIds(hosts[0]), releaseIds(hosts[1])])).toEqual(before)
      for (const h of hosts) expect(await servedRelease(h)).toBe('m1')
    } finally {
      await rootSh(
        hosts[2],
        'echo DATABASE_URL=sqlite:////srv/myapp/shared/app.db >> /etc/myapp.env'
      )
    }
  })

  it('rolls the whole fleet back', async () => {
    const deploy = await runAction(
      fleetInputs(hosts, { source: appCopy(), 'release-id': 'm4', 'max-parallel': '3' })
    )
    expect(deploy.outputs.status).toBe('deployed')
    const run = await runAction(fleetInputs(hosts, { mode: 'rollback', 'max-parallel': '3' }))
    expect(run.code).toBe(0)
    expect(hostsOf(run).map(r => [r.status, r.release])).toEqual([
      ['rolled-back', 'm1'],
      ['rolled-back', 'm1'],
      ['rolled-back', 'm1']
    ])
    for (const h of hosts) expect(await servedRelease(h)).toBe('m1')
  })
})
