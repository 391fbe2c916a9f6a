// Runs a mode across the fleet: one SSH connection per host for the whole
// run, rolling batches of `max-parallel`, an optional canary first and alone,
// a failure budget, migrations once before any switch, and a fleet rollback
// of every host this run switched when the budget is exceeded.
import type { HostResult } from '../core/host-result.js'
import { newHostResult } from '../core/host-result.js'
import type { Log } from '../core/log.js'
import type { Settings } from './settings.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import type { Target } from '../core/targets.js'

/** Resolved once the fleet's migrations ran (or rejected when they cannot). */
export interface MigrationGate {
  /** The host that runs the migrations. */
  host: string
  done: Promise<void>
  open(): void
  fail(error: Error): void
}

export function migrationGate(host: string): MigrationGate {
  let open!: () => void
  let fail!: (error: Error) => void
  const done = new Promise<void>((resolve, reject) => {
    open = resolve
    fail = reject
  })
  done.catch(() => undefined)
  let settled = false
  return {
    host,
    done,
    open: () => {
      if (!settled) open()
      settled = true
    },
    fail: error => {
      if (!settled) fail(error)
      settled = true
    }
  }
}

/** Batches in order: the canary alone first, then groups of `maxParallel`. */
export function planBatches(targets: Target[], maxParallel: number, canary?: Target): Target[][] {
  const rest = targets.filter(t => t !== canary)
  const batches: Target[][] = canary ? [[canary]] : []
  for (let i = 0; i < rest.length; i += maxParallel) batches.push(rest.slice(i, i + maxParallel))
  return batches
}

export interface FleetHooks {
  /** Connects once; the connection is reused for the fleet rollback. */
  connect(target: Target, log: Log): Promise<RemoteHost>
  /** The mode's work on one host; `reconnect` replaces a dropped connection. */
  run(
    remote: RemoteHost,
    log: Log,
    gate: MigrationGate | undefined,
    reconnect: () => Promise<RemoteHost>
  ): Promise<HostResult>
  /** Switches one host back to `release` and verifies it (deploy mode only). */
  rollback?(remote: RemoteHost, log: Log, release: string): Promise<HostResult>
  logFor(target: Target, parallel: boolean): Log
  connectionsOf(target: Target): number
}

const failed = (r: HostResult) => r.status === 'failed' || r.status === 'rolled-back'

/** The fleet's order: batches (canary first), and the migration host inside the first batch. */
function planFleet(settings: Settings, top: Log) {
  const canary = settings.canary
    ? settings.targets.find(t => t.label === settings.canary)
    : undefined
  const batches = planBatches(settings.targets, settings.maxParallel, canary)
  const ordered = batches.flat()
  const migrateOn = settings.migrateHost
    ? settings.targets.find(t => t.label === settings.migrateHost)
    : ordered[0]
  const gate =
    settings.mode === 'deploy' && settings.targets.length > 1 && migrateOn
      ? migrationGate(migrateOn.label)
      : undefined
  if (gate && migrateOn && !batches[0].includes(migrateOn)) {
    // the migration host must be in the first batch: nothing switches before the migrations ran
    batches[0] = [migrateOn, ...batches[0]]
    for (let i = 1; i < batches.length; i++) batches[i] = batches[i].filter(t => t !== migrateOn)
  }
  if (settings.targets.length > 1)
    top.info(
      `fleet of ${settings.targets.length}: ${batches.map(b => `[${b.map(t => t.label).join(', ')}]`).join(' then ')}` +
        `${canary ? ' (canary first)' : ''}; up to ${settings.maxFailures} failure(s) allowed${gate ? `; migrations on ${gate.host}` : ''}`
    )
  return { canary, batches, ordered, gate }
}

/** One run across the fleet: its hosts' connections and results. */
interface FleetRun {
  settings: Settings
  hooks: FleetHooks
  gate?: MigrationGate
  remotes: Map<Target, RemoteHost>
  results: Map<Target, HostResult>
}

/** Connects one host once and runs the mode on it; a connection lost later is replaced. */
async function runHost(run: FleetRun, target: Target, parallel: boolean): Promise<void> {
  const { hooks, gate, remotes } = run
  const log = hooks.logFor(target, parallel)
  let result: HostResult
  try {
    const remote = await hooks.connect(target, log)
    remotes.set(target, remote)
    const reconnect = async () => {
      const again = await hooks.connect(target, log)
      await remotes.get(target)?.close()
      remotes.set(target, again)
      return again
    }
    result = await hooks.run(remote, log, gate, reconnect)
  } catch (error) {
    result = newHostResult(target.label)
    result.error = (error as Error).message
    log.error(result.error, `${run.settings.mode} failed on ${target.label}`)
  }
  if (gate && target.label === gate.host && result.status !== 'deployed')
    gate.fail(new Error(`migrations did not complete on ${gate.host}`))
  run.results.set(target, result)
}

function skip(run: FleetRun, batch: Target[], reason: string): void {
  for (const t of batch) {
    const r = newHostResult(t.label)
    r.status = 'skipped'
    r.error = `not started: ${reason}`
    run.results.set(t, r)
  }
}

/** Rolls back one host this run switched, because the fleet stopped. */
async function rollBackHost(run: FleetRun, target: Target, reason: string): Promise<void> {
  const deployed = run.results.get(target)!
  const log = run.hooks.logFor(target, run.settings.maxParallel > 1)
  const back = await run.hooks.rollback!(
    run.remotes.get(target)!,
    log,
    deployed.previousRelease ?? ''
  )
  deployed.steps.push(...back.steps.map(s => ({ ...s, name: `fleet rollback: ${s.name}` })))
  if (back.status === 'rolled-back') {
    deployed.status = 'rolled-back'
    deployed.rolledBack = true
    deployed.error = `rolled back to ${deployed.previousRelease} because ${reason}`
  } else {
    deployed.status = 'failed'
    deployed.error = `fleet rollback to ${deployed.previousRelease} failed: ${back.error ?? 'unknown error'}`
  }
}

async function rollBackFleet(run: FleetRun, ordered: Target[], reason: string, top: Log) {
  const switched = ordered.filter(t => run.results.get(t)?.status === 'deployed')
  if (switched.length > 0)
    top.warning(`${reason}: rolling back ${switched.map(t => t.label).join(', ')}`)
  const step = run.settings.maxParallel
  for (let i = 0; i < switched.length; i += step)
    await Promise.all(switched.slice(i, i + step).map(t => rollBackHost(run, t, reason)))
}

export async function runFleet(
  settings: Settings,
  hooks: FleetHooks,
  top: Log
): Promise<HostResult[]> {
  const { canary, batches, ordered, gate } = planFleet(settings, top)
  const run: FleetRun = { settings, hooks, gate, remotes: new Map(), results: new Map() }
  let failures = 0
  let stopReason: string | undefined
  try {
    for (const [index, batch] of batches.entries()) {
      if (stopReason) {
        skip(run, batch, stopReason)
        continue
      }
      await Promise.all(batch.map(target => runHost(run, target, batch.length > 1)))
      failures += batch.filter(t => failed(run.results.get(t)!)).length
      if (canary !== undefined && index === 0 && failures > 0)
        stopReason = `the canary ${canary.label} failed`
      else if (failures > settings.maxFailures)
        stopReason = `${failures} host(s) failed, more than max-failures (${settings.maxFailures})`
    }
    if (stopReason && settings.mode === 'deploy' && settings.rollbackFleet && hooks.rollback)
      await rollBackFleet(run, ordered, stopReason, top)
  } finally {
    for (const [target, remote] of run.remotes) {
      const r = run.results.get(target)
      if (r) r.connections = hooks.connectionsOf(target)
      await remote.close()
    }
  }
  return settings.targets.map(t => run.results.get(t)!)
}
