// The parts of the benchmark. Each runs the action on the kit's test hosts and records
// what it measured in the Results it is given; see bench.ts for the order.
import { execFile } from 'node:child_process'
import * as path from 'node:path'
import { promisify } from 'node:util'
import {
  appCopy,
  authorize,
  fleetInputs,
  hostDown,
  hostUp,
  ROOT,
  runAction,
  type KitHost
} from '../__tests__/integration/kit.js'
import { restoreOf, type Restore } from '../__tests__/integration/load-stats.js'
import {
  act,
  ActionFailed,
  failureOf,
  RELOAD_TIMEOUT,
  type Done,
  type Strategy
} from './action-runs.js'
import { AT_LEAST, backToBack, LEAD_IN_MS, underOpenLoad, type LoadedRun } from './loaded-run.js'
import { BROKEN_RELEASES, slowApp, type BrokenRelease } from './releases.js'

const run = promisify(execFile)

export interface RestoreRun {
  strategy: Strategy
  release: BrokenRelease
  run: LoadedRun
  /** the release that served before (from the steady window's answers) */
  oldRelease: string
  /** what the load saw after the traffic switch (undefined: traffic never moved) */
  restore?: Restore
}

/** The action against a plain ssh script doing the same steps, interleaved, no load. */
export interface WallTime {
  strategy: Strategy
  action: Done[]
  plainSeconds: number[]
}

export interface Fleet {
  oneHost: number[]
  threeHosts: number[]
  plainOneHost: number[]
  plainThreeHosts: number[]
}

export interface Results {
  runs: LoadedRun[]
  restores: RestoreRun[]
  wall: WallTime[]
  fleet?: Fleet
}

export interface Hosts {
  reload: KitHost
  'blue-green': KitHost
}

let n = 0
const nextId = (strategy: Strategy) => `${strategy === 'blue-green' ? 'g' : 'r'}${++n}`

function deploy(
  hosts: Hosts,
  strategy: Strategy,
  source: string,
  clock: () => number,
  extra: Record<string, string> = {},
  expect?: string[]
): Promise<Done> {
  const id = nextId(strategy)
  return act(
    hosts[strategy],
    { source, 'release-id': id, ...extra },
    { kind: 'deploy', strategy, id, clock, expect }
  )
}

function rollback(
  hosts: Hosts,
  strategy: Strategy,
  to: string,
  clock: () => number,
  extra: Record<string, string> = {}
): Promise<Done> {
  return act(
    hosts[strategy],
    { mode: 'rollback', 'rollback-to': to, ...extra },
    { kind: 'rollback', strategy, id: to, clock }
  )
}

/** For runs whose times on a load's clock do not matter. */
const noClock = () => 0
/** For runs timed without a load. */
const wallClock = () => Date.now()

/** Both hosts serve a release the action deployed (the first migration and pip run here). */
export async function firstDeploys(hosts: Hosts): Promise<void> {
  await Promise.all(
    (['reload', 'blue-green'] as const).map(s => deploy(hosts, s, appCopy(), noClock))
  )
}

/** Deploys, then rollbacks between the last two, under load (and, for blue-green, warm rollbacks). */
export async function deploysAndRollbacks(
  hosts: Hosts,
  strategy: Strategy,
  results: Results
): Promise<void> {
  const host = hosts[strategy]
  const ids: string[] = []
  results.runs.push(
    await underOpenLoad(
      host,
      'deploys',
      strategy,
      backToBack({ least: 3, most: 15 }, async (_, clock) => {
        const d = await deploy(hosts, strategy, appCopy(), clock)
        ids.push(d.id)
        return d
      }),
      { atLeast: AT_LEAST }
    )
  )
  const rollbacks = async (what: string, targets: string[], extra: Record<string, string>) =>
    results.runs.push(
      await underOpenLoad(
        host,
        what,
        strategy,
        backToBack({ least: 4, most: 30 }, (i, clock) =>
          rollback(hosts, strategy, targets[i % 2], clock, extra)
        ),
        { atLeast: AT_LEAST }
      )
    )
  await rollbacks('rollbacks', ids.slice(-2), {})
  if (strategy !== 'blue-green') return
  // keep-previous: warm: two deploys leave the instance of the one before running
  const warm = { 'keep-previous': 'warm' }
  const a = await deploy(hosts, strategy, appCopy(), noClock, warm)
  const b = await deploy(hosts, strategy, appCopy(), noClock, warm)
  await rollbacks('rollbacks, keep-previous: warm', [a.id, b.id], warm)
}

/** A release that takes seconds to import, deployed again and again under load. */
export async function slowImport(
  hosts: Hosts,
  strategy: Strategy,
  results: Results
): Promise<void> {
  results.runs.push(
    await underOpenLoad(
      hosts[strategy],
      'slow import (4 s)',
      strategy,
      backToBack({ least: 3, most: 5 }, (_, clock) => deploy(hosts, strategy, slowApp(), clock)),
      { atLeast: AT_LEAST }
    )
  )
}

/** The release most answers of the steady window named. */
function servingIn(loaded: LoadedRun): string {
  const counts = new Map<string, number>()
  for (const r of loaded.load.requests)
    if (r.sentAt < LEAD_IN_MS && r.release) counts.set(r.release, (counts.get(r.release) ?? 0) + 1)
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '(none)'
}

/** Each broken release deployed once under load: what it cost and how soon the old one served again. */
export async function restores(hosts: Hosts, strategy: Strategy, results: Results): Promise<void> {
  for (const release of BROKEN_RELEASES) {
    const loaded = await underOpenLoad(
      hosts[strategy],
      `restore: ${release.name}`,
      strategy,
      async clock => [
        await deploy(hosts, strategy, release.source(), clock, {}, ['rolled-back', 'failed'])
      ]
    )
    const oldRelease = servingIn(loaded)
    const switchAt = loaded.done[0].marks.switchAt
    results.restores.push({
      strategy,
      release,
      run: loaded,
      oldRelease,
      restore:
        switchAt === undefined ? undefined : restoreOf(loaded.load.requests, switchAt, oldRelease)
    })
    results.runs.push(loaded)
  }
}

const envFile = (host: KitHost) => path.join('/var/lib/zdd-hostkit/hosts', host.name, 'host.env')
const PLAIN: Record<Strategy, string> = {
  reload: 'plain-deploy.sh',
  'blue-green': 'plain-deploy-blue-green.sh'
}

async function plainDeploy(host: KitHost, strategy: Strategy, id: string): Promise<number> {
  const t0 = Date.now()
  await run(path.join(ROOT, 'bench', PLAIN[strategy]), [envFile(host), appCopy(), id])
  return (Date.now() - t0) / 1000
}

/** Deploy wall time, the action against the plain script, interleaved, no load. */
export async function wallTime(hosts: Hosts, strategy: Strategy, results: Results): Promise<void> {
  const w: WallTime = { strategy, action: [], plainSeconds: [] }
  for (let i = 0; i < 5; i++) {
    w.action.push(await deploy(hosts, strategy, appCopy(), wallClock))
    w.plainSeconds.push(await plainDeploy(hosts[strategy], strategy, `plain${++n}`))
  }
  results.wall.push(w)
}

/** 3 hosts with max-parallel 3 against one, beside the plain script on one and on three at once. */
export const FLEET_HOSTS = ['bench-f1', 'bench-f2', 'bench-f3']

export async function fleet(hosts: Hosts, results: Results): Promise<void> {
  const started = await Promise.allSettled(FLEET_HOSTS.map(name => hostUp(name, 'fixed')))
  try {
    const fleetHosts = started.map(s => {
      if (s.status === 'rejected') throw s.reason
      return s.value
    })
    await Promise.all(fleetHosts.slice(1).map(h => authorize(h, fleetHosts[0])))
    const f: Fleet = { oneHost: [], threeHosts: [], plainOneHost: [], plainThreeHosts: [] }
    const timed = async (fn: () => Promise<unknown>) => {
      const t0 = Date.now()
      await fn()
      return (Date.now() - t0) / 1000
    }
    for (let i = 0; i < 3; i++) {
      f.oneHost.push(await timed(() => deploy(hosts, 'reload', appCopy(), noClock)))
      const id = `fleet${++n}`
      f.threeHosts.push(
        await timed(async () => {
          const r = await runAction(
            fleetInputs(fleetHosts, {
              source: appCopy(),
              'release-id': id,
              'max-parallel': '3',
              'reload-timeout': RELOAD_TIMEOUT
            })
          )
          if (r.outputs.status !== 'deployed')
            throw new ActionFailed(
              `fleet deploy of ${id} ended '${r.outputs.status}':\n${failureOf(r)}`
            )
        })
      )
      f.plainOneHost.push(await plainDeploy(hosts.reload, 'reload', `plainone${++n}`))
      f.plainThreeHosts.push(
        await timed(() =>
          Promise.all(fleetHosts.map(h => plainDeploy(h, 'reload', `plainfleet${n}`)))
        )
      )
    }
    results.fleet = f
  } finally {
    await Promise.allSettled(FLEET_HOSTS.map(hostDown))
  }
}
