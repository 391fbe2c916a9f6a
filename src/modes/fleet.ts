// Runs a mode across the fleet: one SSH connection per host for the whole
// run, rolling batches of `max-parallel`, an optional canary first and alone,
// a failure budget, migrations once before any switch, and a fleet rollback
// of every host this run switched when the budget is exceeded.
import type { HostResult } from '../action/host-result.js'
import { newHostResult } from '../action/host-result.js'
import type { Log } from '../action/log.js'
import type { Settings } from '../action/settings.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import type { Target } from '../action/targets.js'

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

export async function runFleet(
  settings: Settings,
  hooks: FleetHooks,
  top: Log
): Promise<HostResult[]> {
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
  if (settings.targets.length > 1) {
    top.info(
      `fleet of ${settings.targets.length}: ${batches.map(b => `[${b.map(t => t.label).join(', ')}]`).join(' then ')}` +
        `${canary ? ' (canary first)' : ''}; up to ${settings.maxFailures} failure(s) allowed${gate ? `; migrations on ${gate.host}` : ''}`
    )
  }

  const remotes = new Map<Target, RemoteHost>()
  const results = new Map<Target, HostResult>()
  let failures = 0
  let stopReason: string | undefined
  try {
    for (const [index, batch] of batches.entries()) {
      if (stopReason) {
        for (const t of batch) {
          const r = newHostResult(t.label)
          r.status = 'skipped'
          r.error = `not started: ${stopReason}`
          results.set(t, r)
        }
        continue
      }
      const parallel = batch.length > 1
      await Promise.all(
        batch.map(async target => {
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
            log.error(result.error, `${settings.mode} failed on ${target.label}`)
          }
          if (gate && target.label === gate.host && result.status !== 'deployed') {
            gate.fail(new Error(`migrations did not complete on ${gate.host}`))
          }
          results.set(target, result)
        })
      )
      failures += batch.filter(t => failed(results.get(t)!)).length
      const isCanary = canary !== undefined && index === 0
      if (isCanary && failures > 0) stopReason = `the canary ${canary.label} failed`
      else if (failures > settings.maxFailures)
        stopReason = `${failures} host(s) failed, more than max-failures (${settings.maxFailures})`
    }

    if (stopReason && settings.mode === 'deploy' && settings.rollbackFleet && hooks.rollback) {
      const switched = ordered.filter(t => results.get(t)?.status === 'deployed')
      if (switched.length > 0)
        top.warning(`${stopReason}: rolling back ${switched.map(t => t.label).join(', ')}`)
      for (let i = 0; i < switched.length; i += settings.maxParallel) {
        await Promise.all(
          switched.slice(i, i + settings.maxParallel).map(async target => {
            const deployed = results.get(target)!
            const log = hooks.logFor(target, settings.maxParallel > 1)
            const back = await hooks.rollback!(
              remotes.get(target)!,
              log,
              deployed.previousRelease ?? ''
            )
            deployed.steps.push(
              ...back.steps.map(s => ({ ...s, name: `fleet rollback: ${s.name}` }))
            )
            if (back.status === 'rolled-back') {
              deployed.status = 'rolled-back'
              deployed.rolledBack = true
              deployed.error = `rolled back to ${deployed.previousRelease} because ${stopReason}`
            } else {
              deployed.status = 'failed'
              deployed.error = `fleet rollback to ${deployed.previousRelease} failed: ${back.error ?? 'unknown error'}`
            }
          })
        )
      }
    }
  } finally {
    for (const [target, remote] of remotes) {
      const r = results.get(target)
      if (r) r.connections = hooks.connectionsOf(target)
      await remote.close()
    }
  }
  return settings.targets.map(t => results.get(t)!)
}
