// Jest hooks that start kit hosts for a describe block and remove them after it. Kept
// apart from kit.ts, which the benchmark also uses outside Jest.
import { afterAll, beforeAll } from '@jest/globals'
import { hostDown, hostUp, type HostOptions, type KitHost, type UnitVariant } from './kit.js'

/** How many hosts boot at once: a machine with two CPUs fails a 30-host burst. */
const START_AT_ONCE = Math.max(1, Number(process.env.ZDD_HOST_START_AT_ONCE) || 6)

/** Starts one host; a host that fails to boot is removed and started once more. */
async function startHost(name: string, options: HostOptions): Promise<KitHost> {
  try {
    return await hostUp(name, options)
  } catch (first) {
    await hostDown(name).catch(() => undefined)
    try {
      return await hostUp(name, options)
    } catch {
      throw first
    }
  }
}

/** Runs `fn` over `items`, at most `limit` at a time; settles like Promise.allSettled. */
async function settledInBatches<T, R>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<R>
): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length)
  let next = 0
  const lane = async () => {
    while (next < items.length) {
      const i = next++
      try {
        results[i] = { status: 'fulfilled', value: await fn(items[i]) }
      } catch (reason) {
        results[i] = { status: 'rejected', reason }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
  return results
}

/**
 * Starts every host (name -> options), a few at a time, before the enclosing describe
 * block's tests and removes them after it, also when one failed to start. The returned
 * object is filled in by then: use it inside tests and hooks, not at collection time.
 */
export function withHosts(specs: Record<string, HostOptions>): Record<string, KitHost> {
  const hosts: Record<string, KitHost> = {}
  const names = Object.keys(specs)
  beforeAll(async () => {
    const started = await settledInBatches(names, START_AT_ONCE, n => startHost(n, specs[n]))
    const failed = started.flatMap(r => (r.status === 'rejected' ? [r.reason] : []))
    if (failed.length > 0) throw failed[0]
    started.forEach((r, i) => {
      if (r.status === 'fulfilled') hosts[names[i]] = r.value
    })
  }, 1_800_000) // a suite's root filesystem may have to be built first; many hosts boot in turns
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
