// A run under the open load: a steady lead-in with nothing running, then deploys (or
// rollbacks) back to back, then the load drains. Every request is recorded; the windows
// (steady, each action from start to end, each action from the traffic switch to its end)
// are read from those records. When requests failed, the host's journal and Nginx error
// log around them are kept as evidence.
import { loadavg } from 'node:os'
import { rootSh, type KitHost } from '../__tests__/integration/kit.js'
import { windowStats, type Span, type WindowStats } from '../__tests__/integration/load-stats.js'
import { startOpenLoad, type OpenLoadReport } from '../__tests__/integration/open-load.js'
import type { Done, Strategy } from './action-runs.js'

/** Requests per second, through the host's Nginx. */
export const RATE = 250
/** Requests at least in a run, after its lead-in (ZDD_BENCH_REQUESTS for short runs while developing). */
export const AT_LEAST = Number(process.env.ZDD_BENCH_REQUESTS || 10_000)
/** Nothing runs for this long at the start of every run ... */
export const LEAD_IN_MS = 7000
/** ... and its requests from 1 s on (the load's own start left out) are the steady window. */
export const STEADY: Span = { from: 1000, to: LEAD_IN_MS }
/** A request with no full answer by then fails. */
export const REQUEST_TIMEOUT_SECONDS = 15
/** After the last action, the load goes on at least this long (a restore must hold). */
const TAIL_MS = 3000
/** No run under load lasts longer. */
const LOAD_CAP_SECONDS = 240

export interface LoadedRun {
  /** `deploys`, `rollbacks, keep-previous: warm`, ... */
  what: string
  strategy: Strategy
  load: OpenLoadReport
  done: Done[]
  steady: WindowStats
  /** requests sent while an action ran, from its start to its end */
  during: WindowStats
  /** requests sent from an action's traffic switch to its end */
  afterSwitch: WindowStats
  /** this machine's 1-minute load average at the start and the end */
  loadAverage: [number, number]
  evidence: string
}

/**
 * Runs `work` under load on `host` after the lead-in; `work` gets the load's clock (ms) and
 * returns the actions it ran. The load goes on until `work` ended, for at least TAIL_MS
 * and, when `atLeast`, until that many requests were sent after the lead-in. An error of
 * `work` is thrown once the load has drained.
 */
export async function underOpenLoad(
  host: KitHost,
  what: string,
  strategy: Strategy,
  work: (clock: () => number) => Promise<Done[]>,
  opts: { atLeast?: number } = {}
): Promise<LoadedRun> {
  const loadAtStart = loadavg()[0]
  const load = startOpenLoad({
    host: host.ip,
    rate: RATE,
    maxRequests: (LOAD_CAP_SECONDS * RATE) | 0,
    maxSeconds: LOAD_CAP_SECONDS,
    timeoutSeconds: REQUEST_TIMEOUT_SECONDS
  })
  await new Promise(r => setTimeout(r, LEAD_IN_MS))
  const outcome = await work(load.clock).then(
    done => ({ done }),
    (error: unknown) => ({ error })
  )
  await new Promise(r => setTimeout(r, TAIL_MS))
  const report = await load.stop({
    atLeast: opts.atLeast ? Math.round((LEAD_IN_MS / 1000) * RATE) + opts.atLeast : 0
  })
  if ('error' in outcome) throw outcome.error
  const done = outcome.done
  const spans = (from: (d: Done) => number | undefined) =>
    done.flatMap(d => {
      const at = from(d)
      return at === undefined ? [] : [{ from: at, to: d.end }]
    })
  return {
    what,
    strategy,
    load: report,
    done,
    steady: windowStats(report.requests, [STEADY], report.holdUps),
    during: windowStats(
      report.requests,
      spans(d => d.start),
      report.holdUps
    ),
    afterSwitch: windowStats(
      report.requests,
      spans(d => d.marks.switchAt),
      report.holdUps
    ),
    loadAverage: [loadAtStart, loadavg()[0]],
    evidence: await evidence(host, strategy, report).catch(
      (error: Error) =>
        `(the host's logs could not be read: ${error.message.trim().split('\n').pop()})`
    )
  }
}

/**
 * Runs `once(i)` at least `count.least` times and more while the load's clock is under
 * the time `atLeast` requests take after the lead-in (at most `count.most`).
 */
export function backToBack(
  count: { least: number; most: number; atLeast?: number },
  once: (i: number, clock: () => number) => Promise<Done>
): (clock: () => number) => Promise<Done[]> {
  const until = LEAD_IN_MS + (((count.atLeast ?? AT_LEAST) / RATE) * 1000 * 9) / 10
  return async clock => {
    const done: Done[] = []
    for (let i = 0; i < count.most && (i < count.least || clock() < until); i++)
      done.push(await once(i, clock))
    return done
  }
}

/** The host's units, for its journal. */
function unitsOf(host: KitHost, strategy: Strategy): string {
  return strategy === 'blue-green'
    ? `-u ${host.service}@blue -u ${host.service}@green`
    : `-u ${host.service}`
}

/**
 * When requests failed: the host's journal (without worker boots and exits, and without
 * the indented lines of tracebacks) and Nginx's error messages, counted, around them.
 */
async function evidence(host: KitHost, strategy: Strategy, load: OpenLoadReport): Promise<string> {
  const failed = load.requests.filter(r => r.failure !== undefined)
  if (failed.length === 0) return ''
  const epoch = (ms: number) => Math.floor((load.startedAt + ms) / 1000)
  const since = epoch(failed[0].sentAt) - 5
  const until = epoch(failed[failed.length - 1].sentAt + failed[failed.length - 1].ms) + 2
  // Nginx stamps its error log in the host's local time (UTC on the test hosts), to the second
  const stamp = (s: number) =>
    new Date(s * 1000).toISOString().slice(0, 19).replace('T', ' ').replace(/-/g, '/')
  const logs = await rootSh(
    host,
    `journalctl ${unitsOf(host, strategy)} --since @${since} --until @${until} --no-pager -o short-iso-precise | grep -v -E -e 'Booting worker|Worker exiting' -e '\\]: {2,}' | tail -n 30; ` +
      `echo '--- /var/log/nginx/error.log from ${stamp(since)} to ${stamp(until)}: each message, counted'; ` +
      `awk -v a='${stamp(since)}' -v b='${stamp(until)}' 'substr($0, 1, 19) >= a && substr($0, 1, 19) <= b' /var/log/nginx/error.log | ` +
      `sed -E 's|^[0-9/]+ [0-9:]+ ||; s|[0-9]+#[0-9]+: [*][0-9]+ ||; s|, client: .*||' | sort | uniq -c | sort -rn | head -n 8`
  )
  return logs.trim()
}
