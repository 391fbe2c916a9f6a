// bench/results.md and bench/results.json from what the parts measured.
import type { WindowStats } from '../__tests__/integration/load-stats.js'
import { stepSeconds, stepTimeline, type Done, type Strategy } from './action-runs.js'
import {
  AT_LEAST,
  LEAD_IN_MS,
  RATE,
  REQUEST_TIMEOUT_SECONDS,
  STEADY,
  type LoadedRun
} from './loaded-run.js'
import type { Fleet, RestoreRun, Results, WallTime } from './parts.js'
import { SLOW_IMPORT_SECONDS } from './releases.js'

export interface RunInfo {
  command: string
  startedAt: string
  /** e.g. `2 cores, Node v20.20.2` */
  machine: string
  /** the action's bundle and the code it was built from */
  action: string
  /** 1-minute load average at the start and the end of the whole benchmark */
  loadAverage: [number, number]
  minutes: number
  problems: string[]
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b)
export const median = (xs: number[]) => sorted(xs)[Math.floor((xs.length - 1) / 2)] ?? NaN
const secs = (x: number) => `${x.toFixed(2)} s`
const count = (x: number) => x.toLocaleString('en')
const span = (xs: number[]) =>
  xs.length ? `${secs(median(xs))} (${sorted(xs)[0].toFixed(2)}–${secs(Math.max(...xs))})` : '–'

/** From a mark of the load's clock to another, in seconds (– when either is missing). */
const between = (a?: number, b?: number) =>
  a === undefined || b === undefined ? '–' : secs((b - a) / 1000)

function window(w: WindowStats): string {
  if (w.sent === 0) return '–'
  const failed = w.failed ? `, **${count(w.failed)} failed**` : ''
  return `${w.p50} / ${w.p99} / ${w.max} (${count(w.sent)} sent${failed})`
}

const p99Ratio = (w: WindowStats, steady: WindowStats) =>
  w.sent && steady.p99 ? `${(w.p99 / steady.p99).toFixed(1)}x` : '–'

function heldUp(r: LoadedRun): string {
  const h = r.load.holdUps
  if (h.length === 0) return `never (event loop late ≤ ${r.load.eventLoopMaxMs} ms)`
  const skipped = h.reduce((n, x) => n + x.skipped, 0)
  return `${h.length}x, longest ${Math.max(...h.map(x => x.ms))} ms (${count(skipped)} requests not sent)`
}

export function loadRow(r: LoadedRun): string {
  const failed = r.load.requests.filter(q => q.failure !== undefined).length
  const kinds = `${r.done.length} ${r.done[0]?.kind ?? 'run'}${r.done.length === 1 ? '' : 's'}`
  return `| ${r.strategy} | ${r.what} | ${kinds} | **${count(failed)} of ${count(r.load.requests.length)}** | ${window(r.steady)} | ${window(r.during)} | ${window(r.afterSwitch)} | ${p99Ratio(r.during, r.steady)} / ${p99Ratio(r.afterSwitch, r.steady)} | ${span(r.done.map(d => d.seconds))} | ${heldUp(r)} |`
}

function restoreRow(x: RestoreRun): string {
  const d = x.run.done[0]
  const { switchAt, rollbackAt, backAt, restoredAt } = d.marks
  const r = x.restore
  const failed = x.run.load.requests.filter(q => q.failure !== undefined).length
  const outcome = r ? `${d.status}` : `${d.status}: traffic never moved`
  const cells = [
    x.strategy,
    x.release.name,
    outcome,
    `**${count(failed)} of ${count(x.run.load.requests.length)}**${r?.foreign ? `, ${count(r.foreign)} answered by the broken release` : ''}`,
    `**${r ? between(switchAt, r.restoredAt) : '–'}**`,
    r ? between(switchAt, r.firstBadAt) : '–',
    r ? between(r.firstBadAt, rollbackAt) : '–',
    between(rollbackAt, backAt),
    r ? between(backAt, r.restoredAt) : '–',
    between(switchAt, restoredAt),
    secs(d.seconds)
  ]
  return `| ${cells.join(' | ')} |`
}

/** From bringing the new release up to verified: reload's HUP; blue-green's start of the idle instance. */
const BRING_UP: Record<Strategy, readonly string[]> = {
  reload: ['reload', 'verify'],
  'blue-green': ['start', 'prove', 'switch', 'verify']
}

function wallRow(w: WallTime): string {
  const ours = w.action.map(d => d.seconds)
  const ratio = median(ours) / median(w.plainSeconds)
  const list = (xs: number[]) => xs.map(x => x.toFixed(2)).join(', ')
  return `| ${w.strategy} | ${secs(median(ours))} (${list(ours)}) | ${secs(median(w.plainSeconds))} (${list(w.plainSeconds)}) | **${ratio.toFixed(2)}** | ${list(w.action.map(d => stepSeconds(d, BRING_UP[w.strategy])))} s (${BRING_UP[w.strategy].join(' + ')}) | ${w.action.map(d => d.host.connections ?? '?').join(', ')} |`
}

function fleetRows(f: Fleet): string[] {
  const list = (xs: number[]) => xs.map(x => x.toFixed(2)).join(', ')
  return [
    `| the action: 3 hosts (max-parallel 3) / 1 host, median | **${(median(f.threeHosts) / median(f.oneHost)).toFixed(2)}** (3 hosts: ${list(f.threeHosts)} s; 1 host: ${list(f.oneHost)} s) |`,
    `| the plain script: 3 hosts at once / 1 host, median (the cost of 3 hosts sharing this machine's cores) | ${(median(f.plainThreeHosts) / median(f.plainOneHost)).toFixed(2)} (3 hosts: ${list(f.plainThreeHosts)} s; 1 host: ${list(f.plainOneHost)} s) |`
  ]
}

function timeline(d: Done): string {
  const probe = `the action's own probe ${d.host.failedRequests} of ${d.host.probeRequests} failed`
  return (
    `+${(d.start / 1000).toFixed(1)} s .. +${(d.end / 1000).toFixed(1)} s ${d.kind} ${d.id}: ${d.status}, ${probe}\n` +
    `    ${stepTimeline(d)}` +
    (d.marks.lines.length ? `\n    ${d.marks.lines.join(', ')}` : '')
  )
}

function runDetails(r: LoadedRun): string {
  const failures = new Map<string, number>()
  for (const q of r.load.requests)
    if (q.failure !== undefined) failures.set(q.failure, (failures.get(q.failure) ?? 0) + 1)
  const reasons = [...failures.entries()].sort((a, b) => b[1] - a[1])
  const failed = r.load.requests.filter(q => q.failure !== undefined)
  const holdUps = r.load.holdUps
    .slice(0, 8)
    .map(h => `+${(h.at / 1000).toFixed(1)} s for ${h.ms} ms`)
    .join(', ')
  return [
    `### ${r.strategy}: ${r.what}`,
    '',
    `Load average ${r.loadAverage[0].toFixed(1)} at the start, ${r.loadAverage[1].toFixed(1)} at the end; ` +
      `${count(r.load.requests.length)} requests in ${r.load.seconds.toFixed(0)} s (${r.load.rate} req/s), at most ${r.load.mostInFlight} waiting at once; ` +
      `the load held up ${r.load.holdUps.length ? `${r.load.holdUps.length} times (${holdUps}${r.load.holdUps.length > 8 ? ', ...' : ''})` : 'never'}.`,
    '',
    '```',
    ...r.done.map(timeline),
    '```',
    ...(failed.length
      ? [
          '',
          `Failed: ${reasons.map(([why, k]) => `${count(k)} ${why}`).join(', ')}; sent from +${(failed[0].sentAt / 1000).toFixed(2)} s to +${(failed[failed.length - 1].sentAt / 1000).toFixed(2)} s. The host's journal and Nginx's error messages around them:`,
          '',
          '```',
          r.evidence,
          '```'
        ]
      : []),
    ''
  ].join('\n')
}

function howItMeasures(): string {
  return `**The load.** Every run sends GET /health through the host's Nginx from this machine, a new
connection per request, at ${RATE} req/s on a fixed schedule (an open load: a stalled server gets more
requests waiting, never fewer sent). Every request is counted, and recorded with when it was sent,
its status (or why it failed) and its time to the full answer. A request fails on a status other
than 2xx, a connection error, or no full answer within ${REQUEST_TIMEOUT_SECONDS} s. The first ${LEAD_IN_MS / 1000} s of every run
have nothing running: the requests sent from +${STEADY.from / 1000} s to +${STEADY.to / 1000} s are the **steady** window. Then the
deploys (or rollbacks) run back to back until at least ${count(AT_LEAST)} requests were sent after the lead-in
(a restore run has one deploy), and the load goes on 3 s after the last. **Action start→end**: the
requests sent while an action ran. **Switch→end**: those sent from its traffic switch (the HUP
under \`reload\`, live.sock moved under \`blue-green\`, as the action logs them) to its end. Times are
p50 / p99 / max in ms over every request of the window, a failed one with its time to the failure.
The load runs in one Node process on the same cores as the hosts and the action: when that process
is held up ("load held up"), the answers in flight are read that much later, and the requests it
missed meanwhile are not sent (rather than sent in one burst).`
}

export function markdown(info: RunInfo, results: Results): string {
  const restoreRuns = results.restores
  return `# Benchmark results

Produced by \`${info.command}\` (bench/bench.ts) on ${info.startedAt} in ${info.minutes.toFixed(1)} minutes,
${info.machine}, against hostkit test hosts (systemd-nspawn containers on this machine). The action:
${info.action}. The machine's 1-minute load average was ${info.loadAverage[0].toFixed(1)} at the start and ${info.loadAverage[1].toFixed(1)} at the end
(other work shares its cores; each run's own is under [Each run](#each-run)).

${howItMeasures()}

## Under load: deploys, rollbacks, a slow import, the broken releases

| strategy | case | runs | failed of sent | steady p50 / p99 / max (ms) | action start→end | switch→end | p99 ÷ steady p99 (start→end / switch→end) | wall time, median (range) | load held up |
|---|---|---|---|---|---|---|---|---|---|
${results.runs.map(loadRow).join('\n')}

Goals: 0 failed of ≥ 10,000 at ≥ 200 req/s; for \`blue-green\`, p99 during a deploy at most 1.5x the steady p99.
The slow release is examples/app with \`time.sleep(${SLOW_IMPORT_SECONDS})\` at the top of \`wsgi.py\`.

## A release that breaks after the traffic switch: time to restore

Each broken release is deployed once under the same load (lead-in, the deploy, 3 s more). A failure
the action cannot see before the switch and that is definite after it:
${restoreRuns
  .filter((x, i, all) => all.findIndex(y => y.release.name === x.release.name) === i)
  .map(x => `- **${x.release.name}**: ${x.release.what}.`)
  .join('\n')}

| strategy | broken release | outcome | failed of sent | traffic switch → old release serving again (load) | switch → first bad answer (load) | first bad answer → "Roll back to" (log) | "Roll back to" → the way back sent (log) | the way back sent → old release serving again (load) | switch → old release serves again (action's log) | deploy wall time |
|---|---|---|---|---|---|---|---|---|---|---|
${restoreRuns.map(restoreRow).join('\n')}

"Old release serving again" (load): the answer of the old release to the first request sent after
the last failed (or foreign) one, so from then on every visitor is served by it. "First bad answer":
the first failed or foreign answer after the switch. The action's log: when it printed
"Roll back to <release>" and "rolled back: <release> serves again" (reload) or "Traffic is back on
<instance>" (blue-green), on the load's clock. "The way back sent": under reload, the rollback's own
"reloading" (or "restarting", when the master had died) line; under blue-green, live.sock moves back
inside the "Roll back to" step. Goal: at most 2 s from the switch.

Where the time goes under \`reload\`: Gunicorn's HUP stops the old workers at once, without waiting
for the new ones to load the app, so nothing with the old code is left running. The failure shows
only once the new workers have loaded the broken release (switch → first bad answer), and the way
back is a second reload (or a restart of a master that died) whose new workers load the old release
again (the way back sent → old release serving again): two imports of the app under load, each about
as long as the request stall of a normal reload deploy (its p99 above). The action's own share is
the two columns between them: seeing the failure, and sending the way back. Under \`blue-green\` the
old instance keeps running with its app loaded until the new one is proven, and the way back is
moving live.sock back.

## Deploy wall time: the action against a plain ssh script (no load)

| strategy | the action, median (all) | the plain script, median (all) | ratio | bringing the release up to verified | SSH connections per deploy |
|---|---|---|---|---|---|
${results.wall.map(wallRow).join('\n')}

Interleaved, five each, in this run. The plain scripts are \`bench/plain-deploy.sh\` (reload) and
\`bench/plain-deploy-blue-green.sh\`: one \`ssh\` per step (upload, pip, import check, migrations,
switch, reload or start the idle instance, wait for health), none of the action's checks
(preflight, lock, environment validation, \`flask db current\` = \`heads\`, worker and release
verification through Gunicorn and Nginx, traffic probe, release log, pruning).
${results.wall.map(w => `One ${w.strategy} deploy step by step (the third): ${stepTimeline(w.action[Math.min(2, w.action.length - 1)])}.`).join('\n')}
${
  results.fleet
    ? `
## Fleet

| measure | result |
|---|---|
${fleetRows(results.fleet).join('\n')}
`
    : ''
}${info.problems.length ? `\n## Parts that did not complete\n\n${info.problems.map(p => `\`\`\`\n${p}\n\`\`\``).join('\n\n')}\n` : ''}
## Each run

${results.runs.map(runDetails).join('\n')}`
}

function windowJson(w: WindowStats) {
  const { sent, failed, p50, p99, max, reasons, heldUpMs } = w
  return { sent, failed, p50, p99, max, reasons, heldUpMs }
}

/** The numbers of results.md, without the per-request records. */
export function json(info: RunInfo, results: Results): unknown {
  return {
    ...info,
    runs: results.runs.map(r => ({
      strategy: r.strategy,
      what: r.what,
      sent: r.load.requests.length,
      failed: r.load.requests.filter(q => q.failure !== undefined).length,
      steady: windowJson(r.steady),
      during: windowJson(r.during),
      afterSwitch: windowJson(r.afterSwitch),
      seconds: r.done.map(d => d.seconds),
      holdUps: r.load.holdUps,
      loadAverage: r.loadAverage
    })),
    restores: results.restores.map(x => ({
      strategy: x.strategy,
      release: x.release.name,
      status: x.run.done[0].status,
      oldRelease: x.oldRelease,
      restore: x.restore,
      marks: { ...x.run.done[0].marks, lines: undefined },
      seconds: x.run.done[0].seconds
    })),
    wall: results.wall.map(w => ({
      strategy: w.strategy,
      actionSeconds: w.action.map(d => d.seconds),
      plainSeconds: w.plainSeconds,
      bringUpSeconds: w.action.map(d => stepSeconds(d, BRING_UP[w.strategy])),
      connections: w.action.map(d => d.host.connections)
    })),
    fleet: results.fleet
  }
}
