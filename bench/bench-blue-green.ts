// Blue-green benchmarks (issue 13), measured through Nginx from this machine to test hosts:
// 1. a release that takes 4 s to import, deployed again and again under load, with
//    `strategy: blue-green` and, for contrast, with `strategy: reload` (same load, same releases);
// 2. blue-green deploys and rollbacks under load, with `keep-previous: stopped` and `warm`;
// 3. deploy wall time, blue-green against reload, in the same run, and the time from
//    bringing the new release up (HUP, or starting the idle instance) to verified.
// `npm run bench` runs it after bench/bench.ts; writes bench/results-blue-green.md.
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import * as http from 'node:http'
import { loadavg } from 'node:os'
import * as path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import {
  annotations,
  appCopy,
  hostDown,
  hostUp,
  inputsFor,
  prependTo,
  ROOT,
  rootSh,
  runAction,
  type ActionRun,
  type KitHost
} from '../__tests__/integration/kit.js'

/** Requests per second and the least number of requests in every run under load. */
const RATE = 250
const AT_LEAST = 10_000
/**
 * Deploys (or rollbacks) keep starting in one run under load until WORK_SECONDS (each run
 * has its least and most number of them); none starts after START_CAP_SECONDS, and the load
 * stops at LOAD_CAP_SECONDS whatever runs.
 */
const WORK_SECONDS = (AT_LEAST / RATE) * 0.9
const START_CAP_SECONDS = 100
const LOAD_CAP_SECONDS = 150
/**
 * The load is open: requests keep being sent at RATE while the server stalls, as independent
 * clients keep arriving (a low cap would stop sending during a stall and hide it). This cap
 * only protects this machine: 8 s of RATE.
 */
const MAX_IN_FLIGHT = 2000
/** How far behind its schedule the load may fall before it drops the requests it missed. */
const BEHIND_MS = 50
/** A request that has not answered by then counts as failed. */
const REQUEST_TIMEOUT_SECONDS = 15
/** The slow release's import time (`time.sleep` at import). */
const SLOW_IMPORT_SECONDS = 4

interface Step {
  name: string
  ms: number
  ok: boolean
}

interface HostOutcome {
  release: string
  status: string
  failedRequests: number
  probeRequests: number
  steps: Step[]
}

/** One deploy or rollback: how long it took and what the action reported for the host. */
interface Done {
  kind: 'deploy' | 'rollback'
  id: string
  seconds: number
  host: HostOutcome
}

class ActionFailed extends Error {}

/** What a failed run says: its error annotations, else the end of what it printed. */
function failureOf(run: ActionRun): string {
  const errors = annotations(run).trim()
  return errors || `${run.stdout.slice(-1500)}\n${run.stderr.slice(-500)}`.trim()
}

async function act(
  host: KitHost,
  inputs: Record<string, string>,
  kind: Done['kind'],
  id: string,
  onLine?: (line: string) => void
): Promise<Done> {
  const expected = kind === 'deploy' ? 'deployed' : 'rolled-back'
  const started = Date.now()
  const run = await runAction(inputsFor(host, inputs), { onLine })
  const seconds = (Date.now() - started) / 1000
  if (run.outputs.status !== expected)
    throw new ActionFailed(
      `${kind} of ${id} on ${host.name} (${inputs.strategy ?? 'reload'}) ended with status ` +
        `'${run.outputs.status ?? '(none)'}', exit ${run.code}:\n${failureOf(run)}`
    )
  return { kind, id, seconds, host: (JSON.parse(run.outputs.hosts) as HostOutcome[])[0] }
}

interface Load {
  sent: number
  failed: number
  seconds: number
  rate: number
  /** the first failures, on the load's clock */
  failures: string[]
  /** epoch seconds of the first and last failed request (0 when none failed) */
  firstFailure: number
  lastFailure: number
  /** every request's time to its full answer, in ms */
  latencies: number[]
  /** when (on the load's clock) each request answered after more than 1 s was sent */
  slowSentAt: number[]
  /** the most requests waiting for their answers at once */
  mostInFlight: number
  /** the longest this process's event loop was late (a stall of the load itself, in ms) */
  clientLagMs: number
  /** requests not sent because this process was held up past their time */
  skipped: number
}

/**
 * GET /health through the host's Nginx at `RATE` req/s, a new connection per request, while
 * `work` runs and until at least `AT_LEAST` requests were sent (at most `LOAD_CAP_SECONDS`).
 * An error of `work` is thrown once the load has drained.
 */
async function underLoad(
  host: KitHost,
  work: (clock: () => number) => Promise<void>
): Promise<Load> {
  const agent = new http.Agent({ keepAlive: false, maxSockets: MAX_IN_FLIGHT })
  const started = Date.now()
  const clock = () => (Date.now() - started) / 1000
  const load: Load = {
    sent: 0,
    failed: 0,
    seconds: 0,
    rate: 0,
    failures: [],
    firstFailure: 0,
    lastFailure: 0,
    latencies: [],
    slowSentAt: [],
    mostInFlight: 0,
    clientLagMs: 0,
    skipped: 0
  }
  const lag = monitorEventLoopDelay({ resolution: 10 })
  lag.enable()
  const failed = (what: string) => {
    const now = Date.now() / 1000
    load.failed++
    load.firstFailure ||= now
    load.lastFailure = now
    if (load.failures.length < 10) load.failures.push(`+${clock().toFixed(2)} s ${what}`)
  }
  let inFlight = 0
  const request = () =>
    new Promise<void>(resolve => {
      const t0 = Date.now()
      inFlight++
      const done = (failure?: string) => {
        if (failure) failed(failure)
        const ms = Date.now() - t0
        load.latencies.push(ms)
        if (ms > 1000) load.slowSentAt.push((t0 - started) / 1000)
        inFlight--
        resolve()
      }
      const req = http.get(
        {
          host: host.ip,
          port: 80,
          path: '/health',
          agent,
          timeout: REQUEST_TIMEOUT_SECONDS * 1000
        },
        res => {
          res.resume()
          res.on('end', () => done(res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}`))
          res.on('error', error => done(error.message))
        }
      )
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.on('error', error => done(error.message))
    })
  let workDone = false
  let workError: unknown
  const working = work(clock)
    .catch(error => (workError = error))
    .finally(() => (workDone = true))
  const pending: Promise<void>[] = []
  const interval = 1000 / RATE
  let due = started
  // a failed deploy ends the run at once: its numbers would describe nothing
  while (!workError && (!workDone || load.sent < AT_LEAST) && clock() < LOAD_CAP_SECONDS) {
    const wait = due - Date.now()
    if (wait > 0) await new Promise(r => setTimeout(r, wait))
    // When this process was held up (a busy machine), the requests it missed are not sent
    // in one burst, which independent clients never make: the schedule starts again from now.
    const behind = Date.now() - due
    if (behind > BEHIND_MS) {
      load.skipped += Math.floor(behind / interval)
      due = Date.now()
    }
    due += interval
    if (inFlight >= MAX_IN_FLIGHT) {
      await new Promise(r => setTimeout(r, 2))
      continue
    }
    load.sent++
    pending.push(request())
    load.mostInFlight = Math.max(load.mostInFlight, inFlight)
  }
  await working
  await Promise.all(pending)
  agent.destroy()
  lag.disable()
  load.clientLagMs = Math.round(lag.max / 1e6)
  load.seconds = clock()
  load.rate = Math.round(load.sent / load.seconds)
  if (workError) throw workError
  return load
}

/** What the action prints when traffic moves or an instance stops: marks on a run's timeline. */
const MARK =
  /(reloading \S+|switching live\.sock to \S+|\S+ stays warm|stopped \S+ once its queue was empty)/

/** How many deploys (or rollbacks) one run under load has, at least and at most. */
interface Count {
  least: number
  most: number
}

/** Runs `once(i)` `count.least` times, more until `WORK_SECONDS` on the load's clock. */
async function repeatWhileLoaded(
  clock: () => number,
  count: Count,
  once: (i: number, onLine: (line: string) => void) => Promise<Done>,
  timeline: string[],
  done: Done[]
): Promise<void> {
  const more = (i: number) =>
    i < count.most && (i < count.least || clock() < WORK_SECONDS) && clock() < START_CAP_SECONDS
  for (let i = 0; more(i); i++) {
    const from = clock()
    const marks: string[] = []
    const d = await once(i, line => {
      const m = MARK.exec(line)
      if (m) marks.push(`+${clock().toFixed(1)} s ${m[1]}`)
    })
    done.push(d)
    timeline.push(
      `+${from.toFixed(1)} s .. +${clock().toFixed(1)} s ${d.kind} ${d.id}: ${d.host.status}, ` +
        `the action's own probe ${d.host.failedRequests} of ${d.host.probeRequests} failed\n` +
        `    ${stepTimeline(d)}` +
        (marks.length ? `\n    ${marks.join(', ')}` : '')
    )
  }
}

/** The units serving on the host, for its journal. */
function unitsOf(host: KitHost, strategy: Strategy): string {
  return strategy === 'blue-green'
    ? `-u ${host.service}@blue -u ${host.service}@green`
    : `-u ${host.service}`
}

/** When requests failed: the host's journal and Nginx error log around the failures. */
async function evidence(host: KitHost, strategy: Strategy, load: Load): Promise<string> {
  if (load.failed === 0) return ''
  const since = Math.floor(load.firstFailure) - 5
  const until = Math.ceil(load.lastFailure) + 2
  // Nginx stamps its error log in the host's local time (UTC on the test hosts), to the second
  const stamp = (epoch: number) =>
    new Date(epoch * 1000).toISOString().slice(0, 19).replace('T', ' ').replace(/-/g, '/')
  const logs = await rootSh(
    host,
    `journalctl ${unitsOf(host, strategy)} --since @${since} --until @${until} --no-pager -o short-iso-precise | tail -n 40; ` +
      `echo '--- /var/log/nginx/error.log from ${stamp(since)} to ${stamp(until)}: each message, counted (then the first 3 lines)'; ` +
      `awk -v a='${stamp(since)}' -v b='${stamp(until)}' 'substr($0, 1, 19) >= a && substr($0, 1, 19) <= b' /var/log/nginx/error.log > /tmp/bench-errors; ` +
      `sed -E 's|^[0-9/]+ [0-9:]+ ||; s|[0-9]+#[0-9]+: [*][0-9]+ ||; s|, client: .*||' /tmp/bench-errors | sort | uniq -c | sort -rn | head -n 10; ` +
      `head -n 3 /tmp/bench-errors; rm -f /tmp/bench-errors`
  )
  return logs.trim()
}

type Strategy = 'reload' | 'blue-green'

interface LoadedRun {
  what: string
  strategy: Strategy
  load: Load
  done: Done[]
  timeline: string[]
  evidence: string
  /** this machine's 1-minute load average at the start and the end of the run */
  loadAverage: [number, number]
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b)
const median = (xs: number[]) => sorted(xs)[Math.floor(xs.length / 2)] ?? NaN
const percentile = (xs: number[], p: number) =>
  sorted(xs)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))] ?? NaN
const secs = (xs: number[]) => xs.map(x => x.toFixed(2)).join(', ')

function stepSeconds(d: Done, names: readonly string[]): number {
  return d.host.steps.filter(s => names.includes(s.name)).reduce((n, s) => n + s.ms, 0) / 1000
}

/** `+3.1 .. +5.0 s: 120` per stretch of requests answered after more than 1 s (sent under 1 s apart). */
function slowStretches(sentAt: number[]): string {
  const stretches: [number, number, number][] = []
  for (const t of [...sentAt].sort((a, b) => a - b)) {
    const last = stretches[stretches.length - 1]
    if (last && t - last[1] < 1) {
      last[1] = t
      last[2]++
    } else stretches.push([t, t, 1])
  }
  return stretches.map(([a, b, n]) => `+${a.toFixed(1)} .. +${b.toFixed(1)} s: ${n}`).join('; ')
}

function stepTimeline(d: Done): string {
  return d.host.steps.map(s => `${s.name} ${(s.ms / 1000).toFixed(2)} s`).join(', ')
}

/** From bringing the new release up to verified: reload's HUP; blue-green's start of the idle instance. */
const BRING_UP_TO_VERIFIED: Record<Strategy, readonly string[]> = {
  reload: ['reload', 'verify'],
  'blue-green': ['start', 'prove', 'switch', 'verify']
}

/** A release whose import sleeps, as an app that loads much at import does. */
function slowApp(): string {
  return appCopy(dir =>
    prependTo(
      path.join(dir, 'wsgi.py'),
      `import time\n\ntime.sleep(${SLOW_IMPORT_SECONDS})  # a slow import (bench)\n`
    )
  )
}

function loadCell(r: LoadedRun): string {
  const l = r.load
  const kinds = r.done.length === 1 ? r.done[0].kind : `${r.done[0]?.kind ?? 'run'}s`
  return (
    `**${l.failed} of ${l.sent}** at ${l.rate} req/s, ${r.done.length} ${kinds} in ${l.seconds.toFixed(0)} s; ` +
    `answer time median ${median(l.latencies)} ms, p99 ${percentile(l.latencies, 99)} ms, ` +
    `max ${(Math.max(...l.latencies) / 1000).toFixed(2)} s, ${l.latencies.filter(ms => ms > 1000).length} answers after more than 1 s, ` +
    `at most ${l.mostInFlight} waiting at once; ` +
    `${r.done[0]?.kind ?? 'run'} wall time median ` +
    `${median(r.done.map(d => d.seconds)).toFixed(2)} s; the load itself held up at most ${l.clientLagMs} ms` +
    (l.skipped ? ` (${l.skipped} requests not sent)` : '')
  )
}

async function main(): Promise<void> {
  const command =
    process.env.npm_lifecycle_event === 'bench'
      ? 'npm run bench'
      : `${process.env.ZDD_ACTION_SCRIPT ? `ZDD_ACTION_SCRIPT=${process.env.ZDD_ACTION_SCRIPT} ` : ''}node bench/.build/bench-blue-green.mjs`
  const bundle = process.env.ZDD_ACTION_SCRIPT || 'dist/index.js'
  const git = (args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim()
  const changedSrc = git(['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).length
  const code = `commit ${git(['rev-parse', '--short', 'HEAD'])}${changedSrc ? ` with ${changedSrc} uncommitted file(s) in src/` : ''}`
  const startedAt = new Date().toISOString()
  const machine = `${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores, load average ${loadavg()[0].toFixed(1)} at the start, Node ${process.version}`

  console.log('starting hosts ...')
  const [bg, reload] = await Promise.all([
    hostUp('bb1', { style: 'blue-green' }),
    hostUp('bb2', 'fixed')
  ])
  const problems: string[] = []
  const runs: LoadedRun[] = []
  const wall = { blueGreen: [] as Done[], reload: [] as Done[] }
  let n = 0
  const nextId = (prefix: string) => `${prefix}${++n}`
  const on = (strategy: Strategy, extra: Record<string, string> = {}) =>
    strategy === 'blue-green' ? { strategy, ...extra } : extra
  const deploy = (
    host: KitHost,
    strategy: Strategy,
    source: string,
    extra: Record<string, string> = {},
    onLine?: (line: string) => void
  ) => {
    const id = nextId(strategy === 'blue-green' ? 'g' : 'r')
    return act(host, { ...on(strategy, extra), source, 'release-id': id }, 'deploy', id, onLine)
  }
  /** One part of the bench; a failure is reported and the next part still runs. */
  const part = async (title: string, body: () => Promise<void>) => {
    console.log(`${title} ...`)
    try {
      await body()
    } catch (error) {
      const text = error instanceof ActionFailed ? error.message : String(error)
      problems.push(`${title}: ${text}`)
      console.log(`${title} FAILED: ${text}`)
    }
  }
  const loaded = async (
    what: string,
    host: KitHost,
    strategy: Strategy,
    count: Count,
    once: (i: number, onLine: (line: string) => void) => Promise<Done>
  ) => {
    const timeline: string[] = []
    const done: Done[] = []
    let load: Load
    const loadAtStart = loadavg()[0]
    try {
      load = await underLoad(host, clock => repeatWhileLoaded(clock, count, once, timeline, done))
    } catch (error) {
      if (timeline.length > 0) console.log(`${what}, before the failure:\n${timeline.join('\n')}`)
      throw error
    }
    runs.push({
      what,
      strategy,
      load,
      done,
      timeline,
      evidence: await evidence(host, strategy, load),
      loadAverage: [loadAtStart, loadavg()[0]]
    })
    console.log(`${what}: ${loadCell(runs[runs.length - 1])}`)
  }

  try {
    await part('first deploys (migrations, pip)', async () => {
      await Promise.all([deploy(bg, 'blue-green', appCopy()), deploy(reload, 'reload', appCopy())])
    })

    // 1. a release that takes 4 s to import, deployed under load, blue-green then reload
    for (const [host, strategy] of [
      [bg, 'blue-green'],
      [reload, 'reload']
    ] as const)
      await part(`slow import, ${strategy}`, () =>
        loaded(
          `release importing in ${SLOW_IMPORT_SECONDS} s, deployed under load`,
          host,
          strategy,
          { least: 3, most: 5 },
          (_, onLine) => deploy(host, strategy, slowApp(), {}, onLine)
        )
      )

    // 2. blue-green deploys, then rollbacks between the last two releases, under load
    for (const keep of ['stopped', 'warm'] as const) {
      const ids: string[] = []
      await part(`blue-green deploys, keep-previous: ${keep}`, () =>
        loaded(
          `deploys, keep-previous: ${keep}`,
          bg,
          'blue-green',
          { least: 3, most: 15 },
          async (_, onLine) => {
            const d = await deploy(bg, 'blue-green', appCopy(), { 'keep-previous': keep }, onLine)
            ids.push(d.id)
            return d
          }
        )
      )
      if (ids.length < 2) continue
      const targets = [ids[ids.length - 2], ids[ids.length - 1]]
      await part(`blue-green rollbacks, keep-previous: ${keep}`, () =>
        loaded(
          `rollbacks, keep-previous: ${keep}`,
          bg,
          'blue-green',
          { least: 4, most: 30 },
          (i, onLine) =>
            act(
              bg,
              {
                strategy: 'blue-green',
                'keep-previous': keep,
                mode: 'rollback',
                'rollback-to': targets[i % 2]
              },
              'rollback',
              targets[i % 2],
              onLine
            )
        )
      )
    }

    // 3. deploy wall time, interleaved, with no load
    await part('deploy wall time, blue-green against reload', async () => {
      for (let i = 0; i < 5; i++) {
        wall.blueGreen.push(await deploy(bg, 'blue-green', appCopy()))
        wall.reload.push(await deploy(reload, 'reload', appCopy()))
      }
    })
  } finally {
    await Promise.all(['bb1', 'bb2'].map(hostDown))
  }

  const row = (r: LoadedRun, goal: string) =>
    `| ${r.what} | ${r.strategy} | ${loadCell(r)} | ${goal} |`
  const goal = `0 failed of ≥ ${AT_LEAST.toLocaleString('en')} at ≥ 200 req/s`
  const seconds = (ds: Done[]) => ds.map(d => d.seconds)
  const bringUp = (ds: Done[], s: Strategy) => ds.map(d => stepSeconds(d, BRING_UP_TO_VERIFIED[s]))
  const wallRows =
    wall.blueGreen.length && wall.reload.length
      ? [
          `| deploy wall time, median (no load) | blue-green / reload | **${(median(seconds(wall.blueGreen)) / median(seconds(wall.reload))).toFixed(2)}** (blue-green: ${secs(seconds(wall.blueGreen))} s; reload: ${secs(seconds(wall.reload))} s) | |`,
          `| start of the idle instance to verified (steps ${BRING_UP_TO_VERIFIED['blue-green'].join(' + ')}) | blue-green | ${secs(bringUp(wall.blueGreen, 'blue-green'))} s | |`,
          `| HUP to verified (steps ${BRING_UP_TO_VERIFIED.reload.join(' + ')}) | reload | ${secs(bringUp(wall.reload, 'reload'))} s | |`,
          `| one deploy, step by step (the third timed one) | blue-green | ${stepTimeline(wall.blueGreen[Math.min(2, wall.blueGreen.length - 1)])} | |`,
          `| one deploy, step by step (the third timed one) | reload | ${stepTimeline(wall.reload[Math.min(2, wall.reload.length - 1)])} | |`
        ]
      : []
  const slowRuns = runs.filter(r => r.what.startsWith('release importing'))
  const md = `# Blue-green benchmark results

Produced by \`${command}\` (bench/bench-blue-green.ts) on ${startedAt}, ${machine}, against
hostkit test hosts (systemd-nspawn containers on this machine): \`bb1\` in the style \`blue-green\`
(examples/server's blue-green kit), \`bb2\` the kit's reload server (\`fixed\`). The action:
${bundle}, bundled from the working tree at ${code}. Every run under load sends GET /health through the host's Nginx from
this machine, a new connection per request, at ${RATE} req/s, while deploys (or rollbacks) run back
to back, until the last one ended and at least ${AT_LEAST.toLocaleString('en')} requests were sent. The load is open, as
independent clients are: requests keep being sent on schedule while the server stalls (at most
${MAX_IN_FLIGHT} waiting at once). A request fails on a status other than 200, a connection error, or no
answer within ${REQUEST_TIMEOUT_SECONDS} s. The load runs in one Node process on the same 2 cores as the hosts and
other work: when that process is held up ("the load itself held up", from its event loop's delay),
every answer in flight is read that much later, and the requests it missed meanwhile are not sent
(rather than sent in one burst). Answer times are from this machine (request sent to answer read); ratios
are measured in the same run.

| measure | strategy | result | goal |
|---|---|---|---|
${[
  ...slowRuns.map(r =>
    row(r, r.strategy === 'blue-green' ? goal : 'contrast: the same load and releases under reload')
  ),
  ...runs.filter(r => !slowRuns.includes(r)).map(r => row(r, goal)),
  ...wallRows
].join('\n')}

The slow release is examples/app with \`time.sleep(${SLOW_IMPORT_SECONDS})\` at the top of \`wsgi.py\`:
every import of it (the action's import check, the migrations' \`flask\` commands, each new
Gunicorn worker) takes ${SLOW_IMPORT_SECONDS} s. Under \`reload\`, Gunicorn stops the old workers as soon as the
new ones are forked, so requests wait (or fail) while the new workers import; under \`blue-green\` the
new instance boots beside the live one and takes traffic only once proven.
${problems.length ? `\n## Parts that did not complete\n\n${problems.map(p => `\`\`\`\n${p}\n\`\`\``).join('\n\n')}\n` : ''}
## Deploys and rollbacks during each run under load

${runs
  .map(
    r =>
      `${r.what} (${r.strategy}; this machine's load average ${r.loadAverage[0].toFixed(1)} at the start, ${r.loadAverage[1].toFixed(1)} at the end; the load's event loop late by at most ${r.load.clientLagMs} ms):\n\n\`\`\`\n${r.timeline.join('\n')}\n\`\`\`\n${
        r.load.slowSentAt.length
          ? `\nAnswers after more than 1 s, by when they were sent: ${slowStretches(r.load.slowSentAt)}\n`
          : ''
      }${
        r.load.failed
          ? `\nFailed requests: ${r.load.failed}, between ${new Date(r.load.firstFailure * 1000).toISOString()} and ${new Date(r.load.lastFailure * 1000).toISOString()}; the first ones: ${r.load.failures.join('; ')}\n\nThe host's journal and Nginx error log around them:\n\n\`\`\`\n${r.evidence}\n\`\`\`\n`
          : ''
      }`
  )
  .join('\n')}`
  writeFileSync(path.join(ROOT, 'bench', 'results-blue-green.md'), md)
  console.log(md)
  if (problems.length) process.exitCode = 1
}

await main()
