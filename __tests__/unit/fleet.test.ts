import { describe, expect, it } from '@jest/globals'
import { migrationGate, planBatches } from '../../src/modes/fleet.js'
import { parseTarget, type Target } from '../../src/core/targets.js'

const t = (name: string): Target => parseTarget(name, { user: 'deploy', port: 22 })!

describe('planBatches', () => {
  const hosts = ['a', 'b', 'c', 'd', 'e'].map(t)

  it('rolls through the fleet in batches of max-parallel', () => {
    expect(planBatches(hosts, 2).map(b => b.map(x => x.host))).toEqual([
      ['a', 'b'],
      ['c', 'd'],
      ['e']
    ])
    expect(planBatches(hosts, 1)).toHaveLength(5)
  })

  it('puts the canary first and alone', () => {
    expect(planBatches(hosts, 3, hosts[2]).map(b => b.map(x => x.host))).toEqual([
      ['c'],
      ['a', 'b', 'd'],
      ['e']
    ])
  })
})

describe('migrationGate', () => {
  it('lets waiting hosts through once the migrations ran', async () => {
    const gate = migrationGate('a')
    gate.open()
    gate.fail(new Error('too late'))
    await expect(gate.done).resolves.toBeUndefined()
  })

  it('stops waiting hosts when the migration host fails', async () => {
    const gate = migrationGate('a')
    gate.fail(new Error('migrations failed'))
    await expect(gate.done).rejects.toThrow('migrations failed')
  })
})
