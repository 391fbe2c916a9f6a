// The one cutover driver: every change of what serves goes through it, under
// either strategy. It owns the sequence and its failure handling: the traffic
// probe, bring-up, traffic move and proof (the strategy's), and on a failure
// reconnect-or-give-up, the strategy's undo, the evidence, the release-log
// record. It returns an outcome for the caller to report; it writes no result.
import { collectEvidence } from '../evidence.js'
import { appendReleaseLog, logEntry, type ReleaseLogEntry } from '../release-log.js'
import { startProbe, type ProbeResult, type TrafficProbe } from '../traffic-probe.js'
import { replaceIfDropped } from '../../transport/ssh-connection.js'
import type {
  AfterProof,
  CutoverContext,
  CutoverOutcome,
  CutoverPhase,
  CutoverRequest,
  CutoverStrategy,
  ServingState
} from './types.js'

/** After a failure: a new connection when the old one dropped. */
export function reconnectIfDropped(ctx: Pick<CutoverContext, 'conn' | 'log'>): Promise<void> {
  return replaceIfDropped(ctx.conn, m => ctx.log.warning(m))
}

/** The traffic probe, from the switch to the end, while a master serves. */
function probeFrom(ctx: CutoverContext, from: ServingState): TrafficProbe | undefined {
  return ctx.probeUrl && from.alive
    ? startProbe(ctx.conn.remote, ctx.probeUrl, { maxSeconds: ctx.timeoutSeconds * 2 + 120 })
    : undefined
}

/** Stops the traffic probe and logs what it saw (never throws). */
async function stopProbe(
  probe: TrafficProbe | undefined,
  ctx: CutoverContext
): Promise<ProbeResult | undefined> {
  if (!probe) return undefined
  const p = await probe.stop().catch(() => undefined)
  if (p)
    ctx.log.info(
      `traffic probe: ${p.failed} of ${p.requests} requests failed${p.samples.length ? ` (${p.samples.join('; ')})` : ''}; releases seen: ${p.releases.join(' -> ') || 'none'}`
    )
  return p
}

/** Appends the cutover's outcome to the release log (a failure to write is a warning). */
async function record(
  ctx: CutoverContext,
  req: CutoverRequest,
  outcome: ReleaseLogEntry['outcome']
): Promise<void> {
  const written = await appendReleaseLog(
    ctx.conn.remote,
    ctx.layout.logFile,
    logEntry(ctx.run, {
      id: req.plan.release,
      previous: req.from.release,
      host: ctx.conn.remote.target.label,
      action: req.action,
      outcome
    })
  ).catch(() => false)
  if (!written) ctx.log.warning(`could not append to the release log ${ctx.layout.logFile}`)
}

function evidence(ctx: CutoverContext, unit: string): Promise<string> {
  return collectEvidence(ctx.conn.remote, {
    service: unit,
    since: ctx.since,
    nginxErrorLog: ctx.nginxErrorLog
  }).catch(e => `(could not collect logs: ${(e as Error).message})`)
}

/** Where a cutover failed: its phase, the cause, and the steps after the proof it started. */
interface Failure {
  phase: CutoverPhase
  cause: unknown
  started: AfterProof[]
}

/** The started steps after the proof, undone newest first once traffic is back. */
async function undoAfterProof(
  ctx: CutoverContext,
  started: AfterProof[],
  trafficBack: boolean
): Promise<string[]> {
  if (started.length === 0) return []
  if (!trafficBack) {
    const names = started.map(s => s.name).join(', ')
    ctx.log.error(`${names} not undone: traffic did not get back to what served before`)
    return [`${names} not undone: the switch could not be undone either`]
  }
  const notes: string[] = []
  for (const step of [...started].reverse()) {
    const note = await step
      .undo()
      .catch((e: Error) => `${step.name} could not be undone: ${e.message}`)
    if (note) notes.push(note)
  }
  return notes
}

/** After a failure: undo (traffic back first), then the evidence, the probe's count, the record. */
async function fail(
  strategy: CutoverStrategy,
  req: CutoverRequest,
  ctx: CutoverContext,
  probe: TrafficProbe | undefined,
  failure: Failure
): Promise<CutoverOutcome> {
  const { phase, cause, started } = failure
  const message = (cause as Error)?.message ?? String(cause)
  try {
    await reconnectIfDropped(ctx)
  } catch (reconnectError) {
    const p = await stopProbe(probe, ctx)
    return {
      ok: false,
      switched: strategy.trafficMoved,
      rolledBack: false,
      error: `${message}\nCould not reconnect to clean up: ${(reconnectError as Error).message}. The lock ${ctx.layout.lockDir} is taken over after lock-stale-after; ${strategy.whereToLook}.`,
      probe: p
    }
  }
  const undo = await strategy.undo(phase, cause)
  // An annotation of its own only when traffic did not get back to what served before.
  const restored = undo.rolledBack || (undo.trafficOff && !strategy.trafficMoved)
  if (undo.note) ctx.log[restored ? 'info' : 'error'](undo.note)
  const afterUndone = await undoAfterProof(ctx, started, undo.rolledBack || undo.trafficOff)
  for (const note of afterUndone) ctx.log.info(note)
  // The journal keeps what the failing release wrote: read once traffic is back.
  const excerpt = await evidence(ctx, strategy.evidenceUnit)
  const p = await stopProbe(probe, ctx)
  await record(ctx, req, undo.rolledBack ? 'rolled-back' : 'failed')
  const notes = [undo.note, ...afterUndone].filter(Boolean)
  return {
    ok: false,
    switched: strategy.trafficMoved,
    rolledBack: undo.rolledBack,
    error: [message, ...notes].join('\n'),
    excerpt,
    instance: undo.instance,
    probe: p,
    afterUndone
  }
}

/** After a proven cutover: the old process retired, the probe's count, the record. */
async function finish(
  strategy: CutoverStrategy,
  req: CutoverRequest,
  ctx: CutoverContext,
  probe: TrafficProbe | undefined
): Promise<CutoverOutcome> {
  await strategy.retire()
  const p = await stopProbe(probe, ctx)
  let excerpt: string | undefined
  if (p && p.failed > 0) {
    // Verified, but not zero-downtime this time (e.g. the master died and was restarted): say so.
    excerpt = await evidence(ctx, strategy.evidenceUnit)
    ctx.log.warning(
      `the ${req.action} was verified, but ${p.failed} of ${p.requests} traffic-probe requests failed during it: it was not zero-downtime this time\n\n${excerpt}`
    )
  }
  await record(ctx, req, req.action === 'deploy' ? 'deployed' : 'rolled-back')
  return {
    ok: true,
    switched: true,
    rolledBack: false,
    excerpt,
    instance: strategy.instance,
    probe: p
  }
}

/**
 * Runs one cutover: bring-up, traffic move, proof and the steps after the proof; on a
 * failure the strategy's undo (at once: a definite failure is not waited out), then the
 * started steps' undo, the evidence and the record.
 */
export async function runCutover(
  strategy: CutoverStrategy,
  req: CutoverRequest,
  ctx: CutoverContext
): Promise<CutoverOutcome> {
  const probe = probeFrom(ctx, req.from)
  let phase: CutoverPhase = 'bring-up'
  const started: AfterProof[] = []
  try {
    await strategy.bringUp()
    phase = 'move'
    await strategy.moveTraffic()
    phase = 'prove'
    await strategy.prove()
    // The after-switch hook and the companions: a failure there undoes the switch too.
    phase = 'after'
    for (const step of req.afterProof ?? []) {
      started.push(step)
      await step.run()
    }
  } catch (error) {
    return fail(strategy, req, ctx, probe, { phase, cause: error, started })
  }
  return finish(strategy, req, ctx, probe)
}
