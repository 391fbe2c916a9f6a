import { describe, expect, it } from '@jest/globals'
import { healthyFacts } from '../../__fixtures__/host-facts.js'
import { runChecks } from '../../src/host/host-checks.js'

const ctx = { releasePath: '/srv/myapp', requiredEnv: [] }

describe('a deploy with the other strategy than the host is set up for', () => {
  it('refuses strategy reload on a host with live.sock (set up for blue-green)', () => {
    const { blocking } = runChecks(healthyFacts({ liveLinkExists: true }), ctx)
    expect(blocking.map(f => f.check)).toEqual(['layout'])
    expect(blocking[0].finding).toContain('/srv/myapp/live.sock exists')
    expect(blocking[0].fix).toContain('strategy: blue-green')
  })

  it('says nothing about it when there is no live.sock', () => {
    expect(runChecks(healthyFacts(), ctx).blocking).toEqual([])
  })
})
