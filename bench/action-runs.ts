// One run of the action (dist/index.js, or ZDD_ACTION_SCRIPT) for the benchmark: its
// wall time, what it reported for the host, and when (on the load's clock) it printed
// the lines that mark the traffic switch, the decision to roll back and the old release
// serving again.
import {
  annotations,
  inputsFor,
  runAction,
  type ActionRun,
  type KitHost
} from '../__tests__/integration/kit.js'

export type Strategy = 'reload' | 'blue-green'
export type Kind = 'deploy' | 'rollback'

export interface Step {
  name: string
  ms: number
  ok: boolean
}

/** One host's entry in the action's `hosts` output, as the benchmark reads it. */
export interface HostOutcome {
  release: string
  status: string
  failedRequests: number
  probeRequests: number
  connections?: number
  steps: Step[]
}

/** Lines of the action's log, on the load's clock (ms), and what they mark. */
export interface Marks {
  /** traffic could first reach the release: the HUP (reload) or live.sock moved (blue-green) */
  switchAt?: number
  /** the action decided to go back (its "Roll back to" group) */
  rollbackAt?: number
  /** reload: the way back reached the unit (its second reload, or a restart of a dead master) */
  backAt?: number
  /** the action says the old release serves again */
  restoredAt?: number
  /** `+12.3 s reloading myapp`, ... for the run's timeline */
  lines: string[]
}

export interface Done {
  kind: Kind
  strategy: Strategy
  id: string
  /** on the load's clock, ms */
  start: number
  end: number
  seconds: number
  /** the action's `status` output */
  status: string
  host: HostOutcome
  marks: Marks
  /** error annotations (or the end of the log) when the run did not deploy */
  failure?: string
}

export class ActionFailed extends Error {}

const SWITCH = /(reloading \S+|switching live\.sock to \S+)/
const ROLLBACK = /Roll back to \S+/
const BACK = /\] (reloading|restarting|starting) \S+$/
const RESTORED = /(rolled back: \S+ serves again|Traffic is back on \S+)/
const TIMELINE =
  /(reloading \S+|switching live\.sock to \S+|Roll back to \S+|rolled back: \S+ serves again|Traffic is back on \S+|\S+ stays warm|stopped \S+ once its queue was empty|the master died[^;]*|No request reached \S+)/

/** What a failed run says: its error annotations, else the end of what it printed. */
export function failureOf(run: ActionRun): string {
  const errors = annotations(run).trim()
  return errors || `${run.stdout.slice(-1500)}\n${run.stderr.slice(-500)}`.trim()
}

/** The action's default reload-timeout (the kit's tests use 30 s): the benchmark runs as users do. */
export const RELOAD_TIMEOUT = '60'

/**
 * Runs the action on `host`; throws ActionFailed unless its status is one of `expect`
 * (default: deployed for a deploy, rolled-back for a rollback).
 */
export async function act(
  host: KitHost,
  inputs: Record<string, string>,
  how: { kind: Kind; strategy: Strategy; id: string; clock: () => number; expect?: string[] }
): Promise<Done> {
  const expect = how.expect ?? [how.kind === 'deploy' ? 'deployed' : 'rolled-back']
  const marks: Marks = { lines: [] }
  const onLine = (line: string) => {
    const at = how.clock()
    if (marks.switchAt === undefined && SWITCH.test(line)) marks.switchAt = at
    if (marks.rollbackAt !== undefined && marks.backAt === undefined && BACK.test(line))
      marks.backAt = at
    if (marks.rollbackAt === undefined && ROLLBACK.test(line)) marks.rollbackAt = at
    if (marks.restoredAt === undefined && RESTORED.test(line)) marks.restoredAt = at
    const m = TIMELINE.exec(line)
    if (m) marks.lines.push(`+${(at / 1000).toFixed(1)} s ${m[1]}`)
  }
  const strategy: Record<string, string> =
    how.strategy === 'blue-green' ? { strategy: 'blue-green' } : {}
  const start = how.clock()
  const run = await runAction(
    inputsFor(host, { 'reload-timeout': RELOAD_TIMEOUT, ...strategy, ...inputs }),
    { onLine }
  )
  const end = how.clock()
  const status = run.outputs.status ?? '(none)'
  if (!expect.includes(status))
    throw new ActionFailed(
      `${how.kind} of ${how.id} on ${host.name} (${how.strategy}) ended with status ` +
        `'${status}', exit ${run.code}:\n${failureOf(run)}`
    )
  const hosts = run.outputs.hosts ? (JSON.parse(run.outputs.hosts) as HostOutcome[]) : []
  return {
    kind: how.kind,
    strategy: how.strategy,
    id: how.id,
    start,
    end,
    seconds: (end - start) / 1000,
    status,
    host: hosts[0] ?? { release: '', status, failedRequests: 0, probeRequests: 0, steps: [] },
    marks,
    failure:
      status === (how.kind === 'deploy' ? 'deployed' : 'rolled-back') ? undefined : failureOf(run)
  }
}

/** `preflight 0.45 s, lock 0.06 s, ...`: where one run spent its time. */
export function stepTimeline(d: Done): string {
  return d.host.steps.map(s => `${s.name} ${(s.ms / 1000).toFixed(2)} s`).join(', ')
}

/** The seconds of the named steps of one run, added up. */
export function stepSeconds(d: Done, names: readonly string[]): number {
  return d.host.steps.filter(s => names.includes(s.name)).reduce((n, s) => n + s.ms, 0) / 1000
}
