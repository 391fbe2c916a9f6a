// Jest hooks that start kit hosts for a describe block and remove them after it. Kept
// apart from kit.ts, which the benchmark also uses outside Jest.
import { afterAll, beforeAll } from '@jest/globals'
import { hostDown, hostUp, type HostOptions, type KitHost, type UnitVariant } from './kit.js'

/**
 * Starts every host (name -> options) in parallel before the enclosing describe block's
 * tests and removes them after it, also when one failed to start. The returned object is
 * filled in by then: use it inside tests and hooks, not at collection time.
 */
export function withHosts(specs: Record<string, HostOptions>): Record<string, KitHost> {
  const hosts: Record<string, KitHost> = {}
  const names = Object.keys(specs)
  beforeAll(async () => {
    const started = await Promise.allSettled(names.map(n => hostUp(n, specs[n])))
    const failed = started.flatMap(r => (r.status === 'rejected' ? [r.reason] : []))
    if (failed.length > 0) throw failed[0]
    started.forEach((r, i) => {
      if (r.status === 'fulfilled') hosts[names[i]] = r.value
    })
  }, 600_000) // a suite's root filesystem may have to be built first (1-2 minutes)
  afterAll(async () => {
    await Promise.all(names.map(n => hostDown(n)))
  }, 120_000)
  return hosts
}

/**
 * As withHosts (name -> unit variant or options), but each host is an object that exists
 * already at collection time and is filled in before the block's tests, so it can be
 * destructured: `const { hk1: target, hk2: bastion } = withHostGroup({ hk1: 'fixed', hk2: 'fixed' })`.
 * `setup` runs once after every host is up (not when one failed to start).
 */
export function withHostGroup<N extends string>(
  specs: Record<N, UnitVariant | HostOptions>,
  setup?: (hosts: Record<N, KitHost>) => Promise<unknown>
): Record<N, KitHost> {
  const names = Object.keys(specs) as N[]
  const options: Record<string, HostOptions> = {}
  const hosts = {} as Record<N, KitHost>
  for (const n of names) {
    const spec = specs[n]
    options[n] = typeof spec === 'string' ? { unit: spec } : spec
    hosts[n] = {} as KitHost
  }
  const started = withHosts(options)
  beforeAll(async () => {
    // a host is missing when withHosts' hook failed: that error already fails the tests
    if (!names.every(n => started[n])) return
    for (const n of names) Object.assign(hosts[n], started[n])
    await setup?.(hosts)
  }, 600_000)
  return hosts
}

/**
 * One host for the enclosing describe block (started before its tests, removed after them):
 * `const host = withHost('dep1', 'fixed')`. The object is filled in before the tests run;
 * `setup` runs once the host is up.
 */
export function withHost(
  name: string,
  options: UnitVariant | HostOptions = {},
  setup?: (host: KitHost) => Promise<unknown>
): KitHost {
  const hosts = withHostGroup({ [name]: options }, setup && (group => setup(group[name])))
  return hosts[name]
}
